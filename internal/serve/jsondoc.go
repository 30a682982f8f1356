package serve

import (
	"fmt"
	"strconv"
	"unicode/utf8"
)

// A small JSON reader made for predict requests. encoding/json would do, but
// an image sent as nested float lists is hundreds of thousands of numbers:
// as []any that is tens of megabytes per request, and it rejects the NaN and
// Infinity tokens TF Serving's REST API accepts. Here a document is a flat
// slice of 16-byte nodes in document order; numbers keep their text (so
// each input's dtype decides how to read them, without a float64 detour for
// int64), and strings without escapes alias the request body (so base64
// images are not copied before decoding).

type jkind uint8

const (
	jNull jkind = iota
	jFalse
	jTrue
	jNumber
	jString
	jArray
	jObject
)

var jkindNames = [...]string{"null", "false", "true", "number", "string", "array", "object"}

func (k jkind) String() string { return jkindNames[k] }

// jnode is one value. For a number, src[a:b] is its text. For a string,
// strs[a] is its decoded bytes. For an array or object, a is the number of
// elements (members) and b the index one past its last descendant; an
// object's members are a key string node followed by the value's nodes.
type jnode struct {
	kind jkind
	a, b int32
}

type jdoc struct {
	src   []byte
	nodes []jnode
	strs  [][]byte
}

// maxDepth bounds nesting: a rank-4 image batch in a named row request is 7
// levels deep, and recursion on hostile input must stay shallow.
const maxDepth = 64

// parseJSON reads one JSON value filling the whole of src.
func parseJSON(src []byte) (*jdoc, error) {
	if len(src) > 1<<31-1 {
		return nil, fmt.Errorf("JSON Parse error: the document is larger than 2 GiB")
	}
	p := &jparser{doc: &jdoc{src: src}}
	p.skipSpace()
	if p.pos == len(src) {
		return nil, fmt.Errorf("JSON Parse error: The document is empty")
	}
	if err := p.value(0); err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.pos != len(src) {
		return nil, p.errorf("The document root must not be followed by other values")
	}
	return p.doc, nil
}

type jparser struct {
	doc *jdoc
	pos int
}

func (p *jparser) errorf(format string, args ...any) error {
	return fmt.Errorf("JSON Parse error: %s at offset: %d", fmt.Sprintf(format, args...), p.pos)
}

func (p *jparser) skipSpace() {
	for p.pos < len(p.doc.src) {
		switch p.doc.src[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *jparser) add(n jnode) int {
	p.doc.nodes = append(p.doc.nodes, n)
	return len(p.doc.nodes) - 1
}

func (p *jparser) value(depth int) error {
	if depth > maxDepth {
		return p.errorf("nesting deeper than %d levels", maxDepth)
	}
	src := p.doc.src
	if p.pos >= len(src) {
		return p.errorf("Invalid value")
	}
	switch c := src[p.pos]; {
	case c == '{':
		return p.container(depth, '}', true)
	case c == '[':
		return p.container(depth, ']', false)
	case c == '"':
		return p.str()
	case c == 't':
		return p.literal("true", jTrue)
	case c == 'f':
		return p.literal("false", jFalse)
	case c == 'n':
		return p.literal("null", jNull)
	case c == '-' || c == 'N' || c == 'I' || (c >= '0' && c <= '9'):
		return p.number()
	}
	return p.errorf("Invalid value")
}

func (p *jparser) literal(word string, k jkind) error {
	if len(p.doc.src)-p.pos < len(word) || string(p.doc.src[p.pos:p.pos+len(word)]) != word {
		return p.errorf("Invalid value")
	}
	p.add(jnode{kind: k})
	p.pos += len(word)
	return nil
}

// container reads an array or an object; the node is written before its
// children so that the document stays in order.
func (p *jparser) container(depth int, closer byte, object bool) error {
	kind := jArray
	if object {
		kind = jObject
	}
	at := p.add(jnode{kind: kind})
	p.pos++ // the opener
	count := int32(0)
	p.skipSpace()
	if p.pos < len(p.doc.src) && p.doc.src[p.pos] == closer {
		p.pos++
		p.doc.nodes[at] = jnode{kind: kind, a: 0, b: int32(len(p.doc.nodes))}
		return nil
	}
	for {
		p.skipSpace()
		if object {
			if p.pos >= len(p.doc.src) || p.doc.src[p.pos] != '"' {
				return p.errorf("Missing a name for object member")
			}
			if err := p.str(); err != nil {
				return err
			}
			p.skipSpace()
			if p.pos >= len(p.doc.src) || p.doc.src[p.pos] != ':' {
				return p.errorf("Missing a colon after a name of object member")
			}
			p.pos++
			p.skipSpace()
		}
		if err := p.value(depth + 1); err != nil {
			return err
		}
		count++
		p.skipSpace()
		if p.pos >= len(p.doc.src) {
			if object {
				return p.errorf("Missing a comma or '}' after an object member")
			}
			return p.errorf("Missing a comma or ']' after an array element")
		}
		switch p.doc.src[p.pos] {
		case ',':
			p.pos++
			continue
		case closer:
			p.pos++
			p.doc.nodes[at] = jnode{kind: kind, a: count, b: int32(len(p.doc.nodes))}
			return nil
		}
		if object {
			return p.errorf("Missing a comma or '}' after an object member")
		}
		return p.errorf("Missing a comma or ']' after an array element")
	}
}

// number checks JSON's number grammar, plus the NaN, Infinity and -Infinity
// tokens TF Serving accepts, and records the text.
func (p *jparser) number() error {
	src, start := p.doc.src, p.pos
	i := start
	negative := i < len(src) && src[i] == '-'
	if negative {
		i++
	}
	for _, tok := range []string{"NaN", "Infinity"} {
		if tok == "NaN" && negative {
			continue
		}
		if len(src)-i >= len(tok) && string(src[i:i+len(tok)]) == tok {
			p.pos = i + len(tok)
			p.add(jnode{kind: jNumber, a: int32(start), b: int32(p.pos)})
			return nil
		}
	}
	digits := func() int {
		n := 0
		for i < len(src) && src[i] >= '0' && src[i] <= '9' {
			i++
			n++
		}
		return n
	}
	switch {
	case i < len(src) && src[i] == '0':
		i++
	case digits() == 0:
		p.pos = i
		return p.errorf("Invalid value")
	}
	if i < len(src) && src[i] == '.' {
		i++
		if digits() == 0 {
			p.pos = i
			return p.errorf("Missing fraction part in number")
		}
	}
	if i < len(src) && (src[i] == 'e' || src[i] == 'E') {
		i++
		if i < len(src) && (src[i] == '+' || src[i] == '-') {
			i++
		}
		if digits() == 0 {
			p.pos = i
			return p.errorf("Missing exponent in number")
		}
	}
	p.pos = i
	p.add(jnode{kind: jNumber, a: int32(start), b: int32(i)})
	return nil
}

// str reads a string. Without escapes its bytes alias the body.
func (p *jparser) str() error {
	src := p.doc.src
	p.pos++ // the quote
	start := p.pos
	for i := start; i < len(src); i++ {
		switch c := src[i]; {
		case c == '"':
			p.pos = i + 1
			return p.addString(src[start:i:i])
		case c == '\\':
			return p.escapedString(start, i)
		case c < 0x20:
			p.pos = i
			return p.errorf("Invalid encoding in string")
		}
	}
	p.pos = len(src)
	return p.errorf("Missing a closing quotation mark in string")
}

func (p *jparser) addString(b []byte) error {
	p.doc.strs = append(p.doc.strs, b)
	p.add(jnode{kind: jString, a: int32(len(p.doc.strs) - 1)})
	return nil
}

// escapedString decodes a string from its first backslash at i onwards.
func (p *jparser) escapedString(start, i int) error {
	src := p.doc.src
	out := append([]byte{}, src[start:i]...)
	for i < len(src) {
		c := src[i]
		switch {
		case c == '"':
			p.pos = i + 1
			return p.addString(out)
		case c < 0x20:
			p.pos = i
			return p.errorf("Invalid encoding in string")
		case c != '\\':
			out = append(out, c)
			i++
			continue
		}
		if i+1 >= len(src) {
			break
		}
		switch e := src[i+1]; e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, n, ok := unicodeEscape(src[i:])
			if !ok {
				p.pos = i
				return p.errorf("Incorrect hex digit after \\u escape in string")
			}
			out = utf8.AppendRune(out, r)
			i += n
			continue
		default:
			p.pos = i
			return p.errorf("Invalid escape character in string")
		}
		i += 2
	}
	p.pos = len(src)
	return p.errorf("Missing a closing quotation mark in string")
}

// unicodeEscape decodes \uXXXX, or a surrogate pair \uD83D\uDE00, at the
// start of b, returning the rune and the bytes consumed. A lone surrogate
// becomes U+FFFD, as Go's encoding/json does.
func unicodeEscape(b []byte) (rune, int, bool) {
	hex := func(b []byte) (rune, bool) {
		if len(b) < 6 || b[0] != '\\' || b[1] != 'u' {
			return 0, false
		}
		v, err := strconv.ParseUint(string(b[2:6]), 16, 16)
		return rune(v), err == nil
	}
	r, ok := hex(b)
	if !ok {
		return 0, 0, false
	}
	if r >= 0xD800 && r < 0xDC00 {
		if lo, ok := hex(b[6:]); ok && lo >= 0xDC00 && lo < 0xE000 {
			return (r-0xD800)<<10 | (lo - 0xDC00) + 0x10000, 12, true
		}
		return utf8.RuneError, 6, true
	}
	if r >= 0xDC00 && r < 0xE000 {
		return utf8.RuneError, 6, true
	}
	return r, 6, true
}

// next is the index of the node after i's subtree.
func (d *jdoc) next(i int) int {
	if k := d.nodes[i].kind; k == jArray || k == jObject {
		return int(d.nodes[i].b)
	}
	return i + 1
}

// elems lists the node indexes of an array's elements.
func (d *jdoc) elems(i int) []int {
	n := int(d.nodes[i].a)
	out := make([]int, 0, n)
	for c := i + 1; len(out) < n; c = d.next(c) {
		out = append(out, c)
	}
	return out
}

// member is one key and value node of an object.
type member struct {
	key   string
	value int
}

// members lists an object's members in document order.
func (d *jdoc) members(i int) []member {
	n := int(d.nodes[i].a)
	out := make([]member, 0, n)
	for c := i + 1; len(out) < n; {
		key := string(d.strs[d.nodes[c].a])
		out = append(out, member{key, c + 1})
		c = d.next(c + 1)
	}
	return out
}

// field is the value of the first member named key, or -1. Later duplicates
// are ignored, as TF Serving's parser (rapidjson) does.
func (d *jdoc) field(i int, key string) int {
	n := int(d.nodes[i].a)
	for c, k := i+1, 0; k < n; k++ {
		if string(d.strs[d.nodes[c].a]) == key {
			return c + 1
		}
		c = d.next(c + 1)
	}
	return -1
}

// text is a number's text.
func (d *jdoc) text(i int) []byte { return d.src[d.nodes[i].a:d.nodes[i].b] }

// str is a string's bytes.
func (d *jdoc) str(i int) []byte { return d.strs[d.nodes[i].a] }

// isB64 reports whether node i is TF Serving's binary form {"b64": "..."}:
// an object with exactly one member, "b64", holding a string.
func (d *jdoc) isB64(i int) bool {
	n := d.nodes[i]
	if n.kind != jObject || n.a != 1 {
		return false
	}
	v := d.field(i, "b64")
	return v >= 0 && d.nodes[v].kind == jString
}

// describe shows a value in an error message, shortened: requests carry
// megabytes of base64.
func (d *jdoc) describe(i int) string {
	const limit = 60
	var s string
	switch n := d.nodes[i]; n.kind {
	case jNumber:
		s = string(d.src[n.a:n.b])
	case jString:
		s = strconv.Quote(string(d.strs[n.a]))
	case jNull, jTrue, jFalse:
		s = n.kind.String()
	case jArray:
		s = fmt.Sprintf("a list of %d", n.a)
	case jObject:
		keys := []string{}
		for _, m := range d.members(i) {
			keys = append(keys, strconv.Quote(m.key))
		}
		s = fmt.Sprintf("an object with keys %v", keys)
	}
	if r := []rune(s); len(r) > limit {
		s = string(r[:limit]) + "…"
	}
	return s
}
