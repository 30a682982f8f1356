package serve

import (
	"bytes"
	"context"
	"encoding/base64"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/xcept/xcept/internal/graph"
)

// The request bodies of TF Serving's REST API documentation (api_rest.md),
// on the fake model's signatures: the same layouts, our inputs.
func TestParsePredictDocumentedBodies(t *testing.T) {
	img1, img2 := pngBytes(t, testImage(5, 4, 1)), jpegBytes(t, testImage(6, 3, 2))
	imgs := [][]byte{img1, img2}
	tests := []struct {
		name, body string
		format     Format
		signature  string
		want       map[string]*Column
	}{
		{"row, one unnamed input, b64 values",
			`{"instances": [{"b64": "` + b64(img1) + `"}, {"b64": "` + b64(img2) + `"}]}`,
			Row, "serving_default", map[string]*Column{"image_bytes": {graph.String, []int64{2}, imgs}}},
		{"row, named input objects, signature_name",
			`{"signature_name": "serving_default", "instances": [{"image_bytes": {"b64": "` + b64(img1) + `"}}, {"image_bytes": {"b64": "` + b64(img2) + `"}}]}`,
			Row, "serving_default", map[string]*Column{"image_bytes": {graph.String, []int64{2}, imgs}}},
		{"columnar, one unnamed input",
			`{"inputs": [{"b64": "` + b64(img1) + `"}, {"b64": "` + b64(img2) + `"}]}`,
			Columnar, "serving_default", map[string]*Column{"image_bytes": {graph.String, []int64{2}, imgs}}},
		{"columnar, named input",
			`{"inputs": {"image_bytes": [{"b64": "` + b64(img1) + `"}]}}`,
			Columnar, "serving_default", map[string]*Column{"image_bytes": {graph.String, []int64{1}, imgs[:1]}}},
		{"row, several named inputs (the doc's tag/signal/sensor example)",
			`{"signature_name": "two_inputs", "instances": [{"a": [1, 2.5], "b": 3}, {"a": [3, 4], "b": -5}]}`,
			Row, "two_inputs", map[string]*Column{
				"a": {graph.Double, []int64{2, 2}, []float64{1, 2.5, 3, 4}},
				"b": {graph.Int64, []int64{2}, []int64{3, -5}}}},
		{"columnar, several named inputs, unknown keys ignored",
			`{"signature_name": "two_inputs", "inputs": {"a": [[1, 2.5], [3, 4]], "b": [3, -5], "extra": "x"}}`,
			Columnar, "two_inputs", map[string]*Column{
				"a": {graph.Double, []int64{2, 2}, []float64{1, 2.5, 3, 4}},
				"b": {graph.Int64, []int64{2}, []int64{3, -5}}}},
		{"row, nested lists (one instance: a 4×4×3 image)",
			`{"signature_name": "predict_images", "instances": [` + nested(4, 4, 3, 0.5) + `]}`,
			Row, "predict_images", map[string]*Column{"images": {graph.Float, []int64{1, 4, 4, 3}, filled(48, 0.5)}}},
		{"NaN and Infinity tokens, exponents",
			`{"signature_name": "two_inputs", "instances": [{"a": [NaN, -Infinity], "b": 1}, {"a": [1e2, -2.5E-1], "b": 0}]}`,
			Row, "two_inputs", map[string]*Column{
				"a": {graph.Double, []int64{2, 2}, []float64{math.NaN(), math.Inf(-1), 100, -0.25}},
				"b": {graph.Int64, []int64{2}, []int64{1, 0}}}},
		{"empty signature_name is the default; escapes in a plain string are decoded",
			`{"signature_name": "", "inputs": {"image_bytes": ["` + jsonEscapeAll(img1) + `"]}}`,
			Columnar, "serving_default", map[string]*Column{"image_bytes": {graph.String, []int64{1}, imgs[:1]}}},
		{"unpadded URL-safe base64",
			`{"instances": [{"b64": "` + strings.TrimRight(base64.URLEncoding.EncodeToString(img2), "=") + `"}]}`,
			Row, "serving_default", map[string]*Column{"image_bytes": {graph.String, []int64{1}, imgs[1:]}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := ParsePredict(context.Background(), []byte(tt.body), fakeSignatures, Limits{MaxPixels: 100})
			if err != nil {
				t.Fatal(err)
			}
			if req.Format != tt.format || req.Signature != tt.signature {
				t.Errorf("format %v signature %q, want %v %q", req.Format, req.Signature, tt.format, tt.signature)
			}
			if len(req.Inputs) != len(tt.want) {
				t.Fatalf("inputs %v, want %d", keysOf(req.Inputs), len(tt.want))
			}
			for k, want := range tt.want {
				got := req.Inputs[k]
				if got == nil || got.DType != want.DType || !reflect.DeepEqual(got.Shape, want.Shape) || !sameData(got.Data, want.Data) {
					t.Errorf("input %q = %+v, want %+v", k, got, want)
				}
			}
		})
	}
}

// nested is a JSON h×w×c list of v.
func nested(h, w, c int, v float64) string {
	px := "[" + strings.TrimSuffix(strings.Repeat(AppendFloatString(v)+", ", c), ", ") + "]"
	row := "[" + strings.TrimSuffix(strings.Repeat(px+", ", w), ", ") + "]"
	return "[" + strings.TrimSuffix(strings.Repeat(row+", ", h), ", ") + "]"
}

func AppendFloatString(v float64) string { return string(AppendFloat(nil, v, 64)) }

func filled(n int, v float32) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = v
	}
	return out
}

// jsonEscapeAll writes every byte as a \u escape (bytes above 0x7F become
// code points, so only the ASCII-safe test image works here).
func jsonEscapeAll(b []byte) string {
	var sb strings.Builder
	for _, c := range b {
		if c >= 0x80 {
			sb.WriteByte(c)
			continue
		}
		sb.WriteString(`\u00`)
		sb.WriteByte("0123456789abcdef"[c>>4])
		sb.WriteByte("0123456789abcdef"[c&0xF])
	}
	return sb.String()
}

func keysOf(m map[string]*Column) []string {
	var k []string
	for key := range m {
		k = append(k, key)
	}
	return k
}

// sameData compares element slices, NaN equal to NaN.
func sameData(a, b any) bool {
	if fa, ok := a.([]float64); ok {
		fb, ok := b.([]float64)
		if !ok || len(fa) != len(fb) {
			return false
		}
		for i := range fa {
			if fa[i] != fb[i] && !(math.IsNaN(fa[i]) && math.IsNaN(fb[i])) {
				return false
			}
		}
		return true
	}
	if sa, ok := a.([][]byte); ok {
		sb, ok := b.([][]byte)
		if !ok || len(sa) != len(sb) {
			return false
		}
		for i := range sa {
			if !bytes.Equal(sa[i], sb[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}

// Every malformed request is a 400 (or TF Serving's code for it) with a
// message that says what is wrong.
func TestParsePredictErrors(t *testing.T) {
	img := pngBytes(t, testImage(5, 4, 1))
	big := pngBytes(t, testImage(200, 100, 1))
	tiff := []byte("II*\x00\x08\x00\x00\x00")
	tests := []struct {
		name, body string
		code       graph.Code
		message    string
	}{
		{"empty body", ``, graph.CodeInvalidArgument, "JSON Parse error: The document is empty"},
		{"not JSON", `instances = [1, 2]`, graph.CodeInvalidArgument, "JSON Parse error: Invalid value at offset: 0"},
		{"truncated JSON", `{"instances": [{"b64": "abc"}`, graph.CodeInvalidArgument, "Missing a comma or ']'"},
		{"trailing garbage", `{"instances": []} x`, graph.CodeInvalidArgument, "must not be followed by other values"},
		{"not an object", `[1, 2]`, graph.CodeInvalidArgument, "not a JSON object"},
		{"signature_name not a string", `{"signature_name": 100}`, graph.CodeInvalidArgument, "'signature_name' key must be a string value"},
		{"unknown signature", `{"signature_name": "nope", "instances": [1]}`, graph.CodeInvalidArgument,
			`Serving signature name: "nope" not found in signature def (this model has echo, predict_images, serving_default, total, two_inputs)`},
		{"neither key", `{"examples": []}`, graph.CodeInvalidArgument, "Missing 'inputs' or 'instances' key"},
		{"both keys", `{"instances": [], "inputs": []}`, graph.CodeInvalidArgument, "both 'instances' and 'inputs'"},
		{"instances not a list", `{"instances": {"b64": "AA=="}}`, graph.CodeInvalidArgument, "'instances' must be a list"},
		{"no instances", `{"instances": []}`, graph.CodeInvalidArgument, "No values in 'instances' list"},
		{"bad base64", `{"instances": [{"b64": "!!!notbase64"}]}`, graph.CodeInvalidArgument, "instances[0]: unable to base64 decode"},
		{"b64 with another key", `{"instances": [{"b64": "AA==", "x": 1}]}`, graph.CodeInvalidArgument, `names input "b64"`},
		{"b64 not a string", `{"inputs": [{"b64": 12}]}`, graph.CodeInvalidArgument, "not formatted correctly for base64 data"},
		{"number for a string", `{"instances": [12]}`, graph.CodeInvalidArgument, "JSON value 12 (number) is not of expected type: string"},
		{"string for a float", `{"signature_name": "predict_images", "instances": ["x", "y"]}`, graph.CodeInvalidArgument, "is not of expected type: float"},
		{"not an image", `{"instances": [{"b64": "` + b64([]byte("hello, world")) + `"}]}`, graph.CodeInvalidArgument,
			`instances[0] "image_bytes": not-an-image`},
		{"empty image", `{"instances": [{"b64": ""}]}`, graph.CodeInvalidArgument, "empty-file"},
		{"truncated header", `{"instances": [{"b64": "` + b64(img[:20]) + `"}]}`, graph.CodeInvalidArgument, "truncated"},
		{"broken TIFF", `{"instances": [{"b64": "` + b64(tiff) + `"}]}`, graph.CodeInvalidArgument, "truncated"},
		{"truncated JPEG data", `{"instances": [{"b64": "` + b64(jpegBytes(t, testImage(40, 40, 1))[:300]) + `"}]}`, graph.CodeInvalidArgument, "truncated"},
		{"too many pixels", `{"inputs": [{"b64": "` + b64(img) + `"}, {"b64": "` + b64(big) + `"}]}`, graph.CodeInvalidArgument,
			`input "image_bytes" element 1: too-large: 200×100 is 20000 pixels, over the server's limit of 10000 (serve.max_pixels)`},
		{"ragged list", `{"signature_name": "two_inputs", "inputs": {"a": [[1, 2], [3]], "b": [1, 2]}}`, graph.CodeInvalidArgument,
			"a list of 1 at nesting level 2, expected 2"},
		{"value where a list belongs", `{"signature_name": "two_inputs", "inputs": {"a": [[1, 2], 3], "b": [1, 2]}}`, graph.CodeInvalidArgument,
			"3 found at nesting level 2, expected at level 2"},
		{"instances of different shapes", `{"signature_name": "two_inputs", "instances": [{"a": [1, 2], "b": 1}, {"a": [1, 2, 3], "b": 1}]}`, graph.CodeInvalidArgument,
			"instances[1] input \"a\": shape [3] differs from the first instance's [2]"},
		{"wrong rank in the row layout", `{"signature_name": "predict_images", "instances": ` + nested(4, 4, 3, 1) + `}`, graph.CodeInvalidArgument,
			"each element is one row"},
		{"wrong size", `{"signature_name": "two_inputs", "inputs": {"a": [[1, 2, 3]], "b": [1]}}`, graph.CodeInvalidArgument,
			`input "a" has shape [1,3], but the signature takes [-1,2]`},
		{"plain list for several inputs", `{"signature_name": "two_inputs", "instances": [1, 2]}`, graph.CodeInvalidArgument,
			"'instances' is a plain list, but signature \"two_inputs\" has 2 inputs (a, b)"},
		{"missing named input, row", `{"signature_name": "two_inputs", "instances": [{"a": [1, 2]}]}`, graph.CodeInvalidArgument,
			"must name every input"},
		{"missing named input, columnar", `{"signature_name": "two_inputs", "inputs": {"a": [[1, 2]]}}`, graph.CodeInvalidArgument,
			"Missing named input: b in 'inputs' object"},
		{"unknown named input", `{"signature_name": "two_inputs", "instances": [{"a": [1, 2], "b": 1, "c": 2}]}`, graph.CodeInvalidArgument,
			`names input "c"`},
		{"objects then values", `{"signature_name": "two_inputs", "instances": [{"a": [1, 2], "b": 1}, [1, 2]]}`, graph.CodeInvalidArgument,
			"use one form"},
		{"float for an int", `{"signature_name": "two_inputs", "inputs": {"a": [[1, 2]], "b": [1.5]}}`, graph.CodeInvalidArgument,
			"JSON value 1.5 (number) is not of expected type: int64"},
		{"int out of range", `{"signature_name": "total", "inputs": [1, 3000000000]}`, graph.CodeInvalidArgument,
			"JSON value 3000000000 is out of range for int32"},
		{"lossy double", `{"signature_name": "two_inputs", "inputs": {"a": [[1e400, 2]], "b": [1]}}`, graph.CodeInvalidArgument,
			"cannot convert JSON value 1e400 to double without loss of precision"},
		{"lossy float integer", `{"signature_name": "predict_images", "instances": [` + strings.Replace(nested(4, 4, 3, 1), "1.0", "16777217", 1) + `]}`, graph.CodeInvalidArgument,
			"cannot convert JSON value 16777217 to float without loss of precision"},
		{"bool for a bool is fine, number is not", `{"signature_name": "echo", "instances": [true, 1]}`, graph.CodeInvalidArgument,
			"JSON value 1 (number) is not of expected type: bool"},
		{"null", `{"instances": [null]}`, graph.CodeInvalidArgument, "JSON value null (null) is not of expected type: string"},
		{"too deep", `{"instances": ` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, graph.CodeInvalidArgument,
			"nesting deeper than 64 levels"},
		{"control character in a string", "{\"instances\": [\"a\x01\"]}", graph.CodeInvalidArgument, "Invalid encoding in string"},
		{"bad escape", `{"instances": ["\q"]}`, graph.CodeInvalidArgument, "Invalid escape character in string"},
		{"-NaN is not a token", `{"signature_name": "two_inputs", "inputs": {"a": [[-NaN, 1]], "b": [1]}}`, graph.CodeInvalidArgument, "Invalid value"},
		{"leading zero", `{"signature_name": "total", "inputs": [01]}`, graph.CodeInvalidArgument, "Missing a comma or ']'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParsePredict(context.Background(), []byte(tt.body), fakeSignatures, Limits{MaxPixels: 10_000})
			if err == nil {
				t.Fatalf("accepted %s", tt.body)
			}
			e := asError(err)
			if e.Code != tt.code || !strings.Contains(e.Message, tt.message) {
				t.Errorf("got %v %q\nwant %v containing %q", e.Code, e.Message, tt.code, tt.message)
			}
			if strings.Contains(e.Message, "\n") {
				t.Errorf("message spans lines: %q", e.Message)
			}
		})
	}
}
