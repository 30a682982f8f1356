package serve

import (
	"encoding/base64"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/xcept/xcept/internal/graph"
)

// AppendPredictions writes a predict response in TF Serving's shapes
// (json_tensor.cc, MakeJsonFromTensors). Row layout: {"predictions": [...]}
// with one element per row, the bare value when the signature has one
// output, else an object keyed by output. Columnar: {"outputs": ...}, the
// whole tensor, or an object of tensors. Outputs are written in key order;
// string outputs whose key ends in "_bytes" are written as {"b64": ...}.
func AppendPredictions(buf []byte, outputs map[string]*Column, f Format) ([]byte, error) {
	keys := make([]string, 0, len(outputs))
	for k := range outputs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if len(keys) == 0 {
		return nil, errorf(graph.CodeInvalidArgument, "the signature has no outputs to send")
	}
	if f == Columnar {
		return appendColumnar(buf, outputs, keys), nil
	}
	rows := -1
	for _, k := range keys {
		c := outputs[k]
		if len(c.Shape) == 0 {
			return nil, errorf(graph.CodeInvalidArgument, "output %q is a scalar: it has no rows to send as 'predictions' (use the 'inputs' layout)", k)
		}
		if rows >= 0 && c.Rows() != rows {
			return nil, errorf(graph.CodeInvalidArgument, "output %q has %d rows but %q has %d: use the 'inputs' layout", k, c.Rows(), keys[0], rows)
		}
		rows = c.Rows()
	}
	named := len(keys) > 1
	buf = append(buf, "{\n    \"predictions\": ["...)
	for r := 0; r < rows; r++ {
		if r > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, "\n        "...)
		if named {
			buf = append(buf, '{')
		}
		for i, k := range keys {
			if i > 0 {
				buf = append(buf, ", "...)
			}
			if named {
				buf = appendString(buf, k)
				buf = append(buf, ": "...)
			}
			c := outputs[k]
			n := c.rowLen()
			buf = appendValues(buf, c, isBytes(k, c), c.Shape[1:], r*n)
		}
		if named {
			buf = append(buf, '}')
		}
	}
	return append(buf, "\n    ]\n}\n"...), nil
}

func appendColumnar(buf []byte, outputs map[string]*Column, keys []string) []byte {
	buf = append(buf, "{\n    \"outputs\": "...)
	if len(keys) == 1 {
		c := outputs[keys[0]]
		buf = appendValues(buf, c, isBytes(keys[0], c), c.Shape, 0)
		return append(buf, "\n}\n"...)
	}
	buf = append(buf, '{')
	for i, k := range keys {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, "\n        "...)
		buf = appendString(buf, k)
		buf = append(buf, ": "...)
		c := outputs[k]
		buf = appendValues(buf, c, isBytes(k, c), c.Shape, 0)
	}
	return append(buf, "\n    }\n}\n"...)
}

// isBytes: TF Serving's convention for binary string outputs.
func isBytes(key string, c *Column) bool {
	return c.DType == graph.String && strings.HasSuffix(key, "_bytes")
}

// appendValues writes the elements from offset on as nested lists of shape.
func appendValues(buf []byte, c *Column, asB64 bool, shape []int64, offset int) []byte {
	if len(shape) == 0 {
		return appendElem(buf, c, asB64, offset)
	}
	inner := 1
	for _, d := range shape[1:] {
		inner *= int(d)
	}
	buf = append(buf, '[')
	for i := 0; i < int(shape[0]); i++ {
		if i > 0 {
			buf = append(buf, ", "...)
		}
		buf = appendValues(buf, c, asB64, shape[1:], offset+i*inner)
	}
	return append(buf, ']')
}

func appendElem(buf []byte, c *Column, asB64 bool, i int) []byte {
	switch d := c.Data.(type) {
	case []float32:
		return AppendFloat(buf, float64(d[i]), 32)
	case []float64:
		return AppendFloat(buf, d[i], 64)
	case []int8:
		return strconv.AppendInt(buf, int64(d[i]), 10)
	case []int16:
		return strconv.AppendInt(buf, int64(d[i]), 10)
	case []int32:
		return strconv.AppendInt(buf, int64(d[i]), 10)
	case []int64:
		return strconv.AppendInt(buf, d[i], 10)
	case []uint8:
		return strconv.AppendUint(buf, uint64(d[i]), 10)
	case []uint16:
		return strconv.AppendUint(buf, uint64(d[i]), 10)
	case []bool:
		return strconv.AppendBool(buf, d[i])
	case [][]byte:
		if asB64 {
			buf = append(buf, `{"b64": "`...)
			buf = base64.StdEncoding.AppendEncode(buf, d[i])
			return append(buf, `"}`...)
		}
		return appendString(buf, string(d[i]))
	}
	panic("serve: unknown column data type")
}

// AppendFloat writes a float as TF Serving does (json_tensor.cc,
// WriteDecimal): six significant digits when they read back to the same
// value, else the type's full precision (9 digits for float32, 17 for
// float64); ".0" after whole numbers; NaN, Infinity and -Infinity as tokens.
func AppendFloat(buf []byte, v float64, bits int) []byte {
	switch {
	case math.IsNaN(v):
		return append(buf, "NaN"...)
	case math.IsInf(v, 1):
		return append(buf, "Infinity"...)
	case math.IsInf(v, -1):
		return append(buf, "-Infinity"...)
	}
	start := len(buf)
	buf = strconv.AppendFloat(buf, v, 'g', 6, bits)
	if back, err := strconv.ParseFloat(string(buf[start:]), bits); err != nil || back != v {
		digits := 9
		if bits == 64 {
			digits = 17
		}
		buf = strconv.AppendFloat(buf[:start], v, 'g', digits, bits)
	}
	if !slices.ContainsFunc(buf[start:], func(c byte) bool { return c == '.' || c == 'e' }) {
		buf = append(buf, ".0"...)
	}
	return buf
}

// appendString writes s as a JSON string; invalid UTF-8 becomes U+FFFD.
func appendString(buf []byte, s string) []byte {
	const hex = "0123456789abcdef"
	buf = append(buf, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				buf = append(buf, '\\', c)
			case c == '\n':
				buf = append(buf, '\\', 'n')
			case c == '\r':
				buf = append(buf, '\\', 'r')
			case c == '\t':
				buf = append(buf, '\\', 't')
			case c < 0x20:
				buf = append(buf, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			default:
				buf = append(buf, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			buf = append(buf, `\ufffd`...)
		} else {
			buf = append(buf, s[i:i+size]...)
		}
		i += size
	}
	return append(buf, '"')
}
