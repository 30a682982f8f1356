package tfexample

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/xcept/xcept/internal/pyenv"
	"github.com/xcept/xcept/internal/testenv"
	"github.com/xcept/xcept/internal/tfrecord"
)

var update = flag.Bool("update", false, "rewrite the committed fuzz seed corpus in testdata/fuzz")

// imageExample is the shape xcept prepare writes: the standard
// image-classification keys.
func imageExample() *Example {
	jpeg := make([]byte, 3000)
	for i := range jpeg {
		jpeg[i] = byte(i * 7)
	}
	return &Example{Features: map[string]Feature{
		"image/encoded":     BytesFeature(jpeg),
		"image/format":      BytesFeature([]byte("jpeg")),
		"image/class/label": Int64Feature(3),
		"image/class/text":  BytesFeature([]byte("tulips")),
		"image/filename":    BytesFeature([]byte("tulips/01 été.jpg")),
		"image/height":      Int64Feature(299),
		"image/width":       Int64Feature(320),
	}}
}

// edgeExample holds the values codecs get wrong: empty lists of each kind,
// empty bytes, extreme and negative int64s, NaN, infinities and -0.
func edgeExample() *Example {
	return &Example{Features: map[string]Feature{
		"empty/bytes":  BytesFeature(),
		"empty/float":  FloatFeature(),
		"empty/int64":  Int64Feature(),
		"bytes/many":   BytesFeature([]byte{}, []byte("a"), []byte{0, 0xff}, bytes.Repeat([]byte("x"), 300)),
		"int64/edges":  Int64Feature(0, -1, 1, math.MinInt64, math.MaxInt64, 1<<35),
		"float/edges":  FloatFeature(0, float32(math.Copysign(0, -1)), 1.5, -2.25, float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), math.MaxFloat32, math.SmallestNonzeroFloat32),
		"ключ/unicode": FloatFeature(0.1),
	}}
}

func TestGoldenEncoding(t *testing.T) {
	// Encoded by hand from the .proto definitions: Example{features:
	// Features{feature: {"a": Feature{int64_list: Int64List{value: [1]}}}}}.
	want := "0a0c" + "0a0a" + "0a0161" + "1205" + "1a03" + "0a0101"
	got := hex.EncodeToString((&Example{Features: map[string]Feature{"a": Int64Feature(1)}}).Marshal())
	if got != want {
		t.Fatalf("Marshal = %s, want %s", got, want)
	}
}

func TestRoundTrip(t *testing.T) {
	tests := map[string]*Example{
		"image": imageExample(),
		"edges": edgeExample(),
		"none":  {Features: map[string]Feature{}},
		// Kept out of the TensorFlow cross-check: Python's upb runtime, in its
		// deterministic output, puts a key after the longer keys it is a
		// prefix of ("" last, "ab" before "a"), against byte order, so the
		// bytes would differ although both sides parse the same example.
		"empty key": {Features: map[string]Feature{"": Int64Feature(7), "a": FloatFeature(1)}},
	}
	for name, ex := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := Unmarshal(ex.Marshal())
			if err != nil {
				t.Fatal(err)
			}
			assertSameExample(t, got, ex)
		})
	}
}

// assertSameExample compares bit for bit, so NaN equals NaN and -0 differs from 0.
func assertSameExample(t *testing.T, got, want *Example) {
	t.Helper()
	if len(got.Features) != len(want.Features) {
		t.Fatalf("got %d features, want %d", len(got.Features), len(want.Features))
	}
	for k, w := range want.Features {
		g, ok := got.Features[k]
		if !ok {
			t.Errorf("feature %q missing", k)
			continue
		}
		if g.Kind() != w.Kind() || !reflect.DeepEqual(g.Bytes, w.Bytes) || !reflect.DeepEqual(g.Int64, w.Int64) || !sameFloats(g.Float, w.Float) {
			t.Errorf("feature %q = %+v, want %+v", k, g, w)
		}
	}
}

func sameFloats(a, b []float32) bool {
	if (a == nil) != (b == nil) || len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

func TestMarshalIsDeterministic(t *testing.T) {
	a := edgeExample()
	b := &Example{Features: map[string]Feature{}}
	keys := make([]string, 0, len(a.Features))
	for k := range a.Features {
		keys = append(keys, k)
	}
	for i := len(keys) - 1; i >= 0; i-- { // a different insertion order
		b.Features[keys[i]] = a.Features[keys[i]]
	}
	first := a.Marshal()
	for range 20 { // map iteration order is random: try it many times
		if !bytes.Equal(a.Marshal(), first) || !bytes.Equal(b.Marshal(), first) {
			t.Fatal("equal examples marshalled to different bytes")
		}
	}
}

func TestMarshalPanicsOnTwoKinds(t *testing.T) {
	ex := &Example{Features: map[string]Feature{"bad": {Bytes: [][]byte{}, Int64: []int64{1}}}}
	if err := ex.Validate(); err == nil || !strings.Contains(err.Error(), `"bad"`) {
		t.Errorf("Validate = %v, want an error naming \"bad\"", err)
	}
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), `"bad"`) {
			t.Errorf("Marshal recovered %v, want a panic naming \"bad\"", r)
		}
	}()
	ex.Marshal()
}

// Hand-built wire messages for decoding what Go's encoder never writes.
func msg(fields ...[]byte) []byte { return bytes.Join(fields, nil) }

func lenField(num protowire.Number, body []byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), body)
}

func varintField(num protowire.Number, v uint64) []byte {
	return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), v)
}

func fixed32Field(num protowire.Number, v uint32) []byte {
	return protowire.AppendFixed32(protowire.AppendTag(nil, num, protowire.Fixed32Type), v)
}

func exampleWith(entries ...[]byte) []byte {
	var features []byte
	for _, e := range entries {
		features = append(features, lenField(1, e)...)
	}
	return lenField(1, features)
}

func entry(key string, feature []byte) []byte {
	return msg(lenField(1, []byte(key)), lenField(2, feature))
}

func TestUnmarshalWireVariants(t *testing.T) {
	minus3 := int64(-3)
	tests := []struct {
		name string
		wire []byte
		want map[string]Feature
	}{
		{"unpacked int64", exampleWith(entry("n", lenField(3, msg(varintField(1, 5), varintField(1, uint64(minus3)))))),
			map[string]Feature{"n": Int64Feature(5, -3)}},
		{"unpacked float", exampleWith(entry("f", lenField(2, msg(fixed32Field(1, math.Float32bits(1.5)), fixed32Field(1, math.Float32bits(-2)))))),
			map[string]Feature{"f": FloatFeature(1.5, -2)}},
		{"packed and unpacked mixed", exampleWith(entry("n", lenField(3, msg(varintField(1, 1), lenField(1, []byte{2, 3}))))),
			map[string]Feature{"n": Int64Feature(1, 2, 3)}},
		{"oneof: last member wins", exampleWith(entry("k", msg(lenField(1, lenField(1, []byte("x"))), lenField(3, lenField(1, []byte{9}))))),
			map[string]Feature{"k": Int64Feature(9)}},
		{"same member twice merges", exampleWith(entry("k", msg(lenField(1, lenField(1, []byte("x"))), lenField(1, lenField(1, []byte("y")))))),
			map[string]Feature{"k": BytesFeature([]byte("x"), []byte("y"))}},
		{"duplicate key: last wins", exampleWith(entry("k", lenField(3, lenField(1, []byte{1}))), entry("k", lenField(3, lenField(1, []byte{2})))),
			map[string]Feature{"k": Int64Feature(2)}},
		{"unknown fields skipped", msg(varintField(7, 1), exampleWith(msg(fixed32Field(9, 0), entry("k", msg(lenField(3, lenField(1, []byte{4})), varintField(8, 1)))))),
			map[string]Feature{"k": Int64Feature(4)}},
		{"entry without value", exampleWith(lenField(1, []byte("k"))),
			map[string]Feature{"k": {}}},
		{"repeated features merge", msg(exampleWith(entry("a", lenField(3, nil))), exampleWith(entry("b", lenField(2, nil)))),
			map[string]Feature{"a": Int64Feature(), "b": FloatFeature()}},
		{"empty message", nil, map[string]Feature{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Unmarshal(tt.wire)
			if err != nil {
				t.Fatal(err)
			}
			assertSameExample(t, got, &Example{Features: tt.want})
		})
	}
}

func TestUnmarshalErrors(t *testing.T) {
	good := imageExample().Marshal()
	tests := map[string][]byte{
		"truncated":        good[:len(good)-1],
		"bad tag":          {0x00},
		"overlong varint":  bytes.Repeat([]byte{0xff}, 11),
		"bad packed int64": exampleWith(entry("n", lenField(3, lenField(1, []byte{0x80})))),
		"bad packed float": exampleWith(entry("f", lenField(2, lenField(1, []byte{1, 2, 3})))),
	}
	for name, wire := range tests {
		t.Run(name, func(t *testing.T) {
			if ex, err := Unmarshal(wire); err == nil {
				t.Fatalf("Unmarshal = %+v, want an error", ex)
			} else if !strings.HasPrefix(err.Error(), "tf.Example: ") {
				t.Errorf("error %q does not say it is about a tf.Example", err)
			}
		})
	}
}

func TestUnmarshalDoesNotAlias(t *testing.T) {
	wire := (&Example{Features: map[string]Feature{"b": BytesFeature([]byte("abc"))}}).Marshal()
	ex, err := Unmarshal(wire)
	if err != nil {
		t.Fatal(err)
	}
	for i := range wire {
		wire[i] = 0
	}
	if got, _ := ex.Bytes("b"); string(got) != "abc" {
		t.Fatalf("value changed to %q when the input was overwritten", got)
	}
}

func TestSingleValueGetters(t *testing.T) {
	ex := &Example{Features: map[string]Feature{
		"b": BytesFeature([]byte("x")), "i": Int64Feature(4), "f": FloatFeature(2.5),
		"two": Int64Feature(1, 2), "none": {},
	}}
	if v, err := ex.Bytes("b"); err != nil || string(v) != "x" {
		t.Errorf("Bytes = %q, %v", v, err)
	}
	if v, err := ex.Int64("i"); err != nil || v != 4 {
		t.Errorf("Int64 = %d, %v", v, err)
	}
	if v, err := ex.Float("f"); err != nil || v != 2.5 {
		t.Errorf("Float = %g, %v", v, err)
	}
	errs := map[string]error{}
	_, errs["missing"] = ex.Int64("nope")
	_, errs["wrong kind"] = ex.Int64("b")
	_, errs["two values"] = ex.Int64("two")
	_, errs["no kind"] = ex.Float("none")
	wants := map[string]string{
		"missing": `no feature "nope"`, "wrong kind": `"b" is a bytes_list, want a int64_list`,
		"two values": `"two" has 2 values`, "no kind": `"none" has no kind set`,
	}
	for name, err := range errs {
		if err == nil || !strings.Contains(err.Error(), wants[name]) {
			t.Errorf("%s: err = %v, want %q", name, err, wants[name])
		}
	}
}

// describe turns examples into crosscheck.py's JSON description.
func describe(examples []*Example) ([]byte, error) {
	descs := make([]map[string][2]any, len(examples))
	for i, ex := range examples {
		d := map[string][2]any{}
		for k, f := range ex.Features {
			switch f.Kind() {
			case "bytes_list":
				hexes := make([]string, len(f.Bytes))
				for j, b := range f.Bytes {
					hexes[j] = hex.EncodeToString(b)
				}
				d[k] = [2]any{"bytes", hexes}
			case "float_list":
				bits := make([]uint32, len(f.Float))
				for j, x := range f.Float {
					bits[j] = math.Float32bits(x)
				}
				d[k] = [2]any{"float", bits}
			case "int64_list":
				d[k] = [2]any{"int64", f.Int64}
			default:
				return nil, fmt.Errorf("feature %q has no kind", k)
			}
		}
		descs[i] = d
	}
	return json.Marshal(descs)
}

// TestTensorFlowCrossCheck: Go-written Examples parse in TensorFlow to the
// same values (and are byte-identical to protobuf's deterministic output);
// TensorFlow-written Examples unmarshal in Go to the same values.
func TestTensorFlowCrossCheck(t *testing.T) {
	py := testenv.Python(t)
	dir := t.TempDir()
	examples := []*Example{imageExample(), edgeExample()}
	desc, err := describe(examples)
	if err != nil {
		t.Fatal(err)
	}
	var file bytes.Buffer
	w := tfrecord.NewWriter(&file)
	for _, ex := range examples {
		if err := w.Write(ex.Marshal()); err != nil {
			t.Fatal(err)
		}
	}
	goPath, pyPath, jsonPath := filepath.Join(dir, "go.tfrecord"), filepath.Join(dir, "py.tfrecord"), filepath.Join(dir, "examples.json")
	for path, data := range map[string][]byte{goPath: file.Bytes(), jsonPath: desc} {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(py, "testdata/crosscheck.py", jsonPath, goPath, pyPath)
	cmd.Env = pyenv.Env()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("crosscheck.py: %v\n%s", err, out)
	}
	f, err := os.Open(pyPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rd := tfrecord.NewReader(f)
	for i := 0; ; i++ {
		rec, err := rd.Next()
		if err == io.EOF {
			if i != len(examples) {
				t.Fatalf("TensorFlow wrote %d examples, want %d", i, len(examples))
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got, err := Unmarshal(rec)
		if err != nil {
			t.Fatalf("example %d from TensorFlow: %v", i, err)
		}
		assertSameExample(t, got, examples[i])
	}
}

func fuzzSeeds() [][]byte {
	return [][]byte{
		nil,
		imageExample().Marshal(),
		edgeExample().Marshal(),
		exampleWith(entry("n", lenField(3, msg(varintField(1, 5), lenField(1, []byte{2, 3}))))),
		exampleWith(entry("f", lenField(2, msg(fixed32Field(1, 7), lenField(1, []byte{1, 2, 3}))))),
	}
}

// FuzzUnmarshal checks that no input panics Unmarshal, and that whatever it
// accepts survives a Marshal/Unmarshal round trip unchanged.
func FuzzUnmarshal(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, wire []byte) {
		ex, err := Unmarshal(wire)
		if err != nil {
			if ex != nil || !strings.HasPrefix(err.Error(), "tf.Example: ") {
				t.Fatalf("Unmarshal = %v, %v", ex, err)
			}
			return
		}
		once := ex.Marshal()
		again, err := Unmarshal(once)
		if err != nil {
			t.Fatalf("re-encoded example does not decode: %v", err)
		}
		if !bytes.Equal(again.Marshal(), once) {
			t.Fatal("Marshal/Unmarshal round trip changed the example")
		}
	})
}

// TestFuzzSeedCorpus keeps the committed corpus in testdata/fuzz/FuzzUnmarshal
// equal to fuzzSeeds; -update rewrites it.
func TestFuzzSeedCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzUnmarshal")
	if *update {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for i, s := range fuzzSeeds() {
		path := filepath.Join(dir, fmt.Sprintf("seed%02d", i))
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s)
		if *update {
			if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if got, err := os.ReadFile(path); err != nil || string(got) != body {
			t.Errorf("%s is missing or stale (err %v): run go test -run TestFuzzSeedCorpus -update", path, err)
		}
	}
}

func benchExample() *Example {
	ex := imageExample()
	ex.Features["image/encoded"] = BytesFeature(bytes.Repeat([]byte{0xab}, 64<<10))
	return ex
}

func BenchmarkMarshal(b *testing.B) {
	ex := benchExample()
	b.SetBytes(int64(len(ex.Marshal())))
	b.ReportAllocs()
	for b.Loop() {
		ex.Marshal()
	}
}

func BenchmarkUnmarshal(b *testing.B) {
	wire := benchExample().Marshal()
	b.SetBytes(int64(len(wire)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Unmarshal(wire); err != nil {
			b.Fatal(err)
		}
	}
}
