package serve

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// toAny rebuilds node i as encoding/json would decode it with UseNumber.
func toAny(d *jdoc, i int) any {
	switch n := d.nodes[i]; n.kind {
	case jNull:
		return nil
	case jTrue:
		return true
	case jFalse:
		return false
	case jNumber:
		return json.Number(d.text(i))
	case jString:
		return string(d.str(i))
	case jArray:
		out := []any{}
		for _, e := range d.elems(i) {
			out = append(out, toAny(d, e))
		}
		return out
	default:
		out := map[string]any{}
		for _, m := range d.members(i) {
			out[m.key] = toAny(d, m.value) // the last duplicate, as encoding/json keeps
		}
		return out
	}
}

func stdDecode(src []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(src))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if len(bytes.TrimLeft(src[dec.InputOffset():], " \t\r\n")) > 0 {
		return nil, errTrailing
	}
	return v, nil
}

var errTrailing = &json.SyntaxError{}

var jsonSeeds = []string{
	`{"instances": [{"b64": "aW1hZ2UgYnl0ZXM="}, {"b64": "YXdlc29tZSBpbWFnZSBieXRlcw=="}]}`,
	`{"signature_name": "serving_default", "inputs": {"image_bytes": [{"b64": "AA=="}]}}`,
	`{"instances": [[[1, 2]], [[3, 4]]]}`,
	`{"instances": [{"tag": "foo", "signal": [1, 2, 3, 4, 5], "sensor": [[1, 2], [3, 4]]}]}`,
	`{"inputs": {"tag": ["foo", "bar"], "signal": [[1, 2, 3, 4, 5], [3, 4, 1, 2, 5]], "sensor": [[[1, 2], [3, 4]], [[4, 5], [6, 8]]]}}`,
	`{"a": "\u00e9\ud83d\ude00\n\"\\\/", "b": [true, false, null, -0, 0.5e-3, 12E+2], "c": {}, "d": []}`,
	` [ 1 , 2 ] `,
	`"just a string"`,
	`{"dup": 1, "dup": 2}`,
	`{"x": "\ud800"}`,
}

func TestParseJSONAgreesWithEncodingJSON(t *testing.T) {
	for _, src := range jsonSeeds {
		d, err := parseJSON([]byte(src))
		if err != nil {
			t.Errorf("%s: %v", src, err)
			continue
		}
		want, err := stdDecode([]byte(src))
		if err != nil {
			t.Fatalf("%s: encoding/json: %v", src, err)
		}
		if got := toAny(d, 0); !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %#v\nwant %#v", src, got, want)
		}
	}
}

func TestParseJSONTokensAndLimits(t *testing.T) {
	d, err := parseJSON([]byte(`[NaN, Infinity, -Infinity, 1]`))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range d.elems(0) {
		got = append(got, string(d.text(e)))
	}
	if strings.Join(got, " ") != "NaN Infinity -Infinity 1" {
		t.Errorf("tokens %q", got)
	}
	if _, err := parseJSON([]byte(strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1))); err != nil {
		t.Errorf("%d levels: %v", maxDepth+1, err)
	}
	if _, err := parseJSON([]byte(strings.Repeat("[", maxDepth+2) + strings.Repeat("]", maxDepth+2))); err == nil {
		t.Errorf("%d levels accepted", maxDepth+2)
	}
	// field finds the first of duplicate keys, as rapidjson's FindMember.
	d, _ = parseJSON([]byte(`{"k": 1, "k": 2}`))
	if got := string(d.text(d.field(0, "k"))); got != "1" {
		t.Errorf("field(k) = %s, want the first, 1", got)
	}
	// Strings without escapes alias the body: base64 images are not copied.
	src := []byte(`{"b64": "QUJD"}`)
	d, _ = parseJSON(src)
	if s := d.str(d.field(0, "b64")); &s[0] != &src[9] {
		t.Error("an unescaped string was copied")
	}
}

// FuzzParseJSON checks the reader against encoding/json: both accept the
// same documents (apart from the NaN/Infinity tokens and the depth limit)
// and read the same values, and nothing panics.
func FuzzParseJSON(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		d, err := parseJSON(src)
		want, stdErr := stdDecode(src)
		if bytes.Contains(src, []byte("NaN")) || bytes.Contains(src, []byte("Infinity")) {
			return // tokens encoding/json does not know
		}
		if err != nil {
			if strings.Contains(err.Error(), "nesting deeper") {
				return
			}
			if stdErr == nil {
				t.Fatalf("refused what encoding/json reads: %v\n%q", err, src)
			}
			return
		}
		if stdErr != nil {
			t.Fatalf("read what encoding/json refuses (%v):\n%q", stdErr, src)
		}
		if got := toAny(d, 0); !reflect.DeepEqual(got, want) && !invalidUTF8(src) {
			t.Fatalf("%q:\n got %#v\nwant %#v", src, got, want)
		}
	})
}

// invalidUTF8: encoding/json replaces invalid UTF-8 in strings with U+FFFD;
// this reader keeps the bytes (they are data, as in TF Serving).
func invalidUTF8(src []byte) bool { return !utf8.Valid(src) }
