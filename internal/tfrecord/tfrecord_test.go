package tfrecord

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/xcept/xcept/internal/pyenv"
	"github.com/xcept/xcept/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite the committed fuzz seed corpus in testdata/fuzz")

// sampleRecords covers the edge sizes: empty, one byte, a bufio buffer's
// worth and more, so framing across buffer boundaries is exercised.
func sampleRecords() [][]byte {
	sizes := []int{0, 1, 7, 255, 64 << 10, 64<<10 + 13, 200_000}
	recs := make([][]byte, len(sizes))
	for i, n := range sizes {
		r := make([]byte, n)
		for j := range r {
			r[j] = byte(j*31 + i)
		}
		recs[i] = r
	}
	return recs
}

// encode frames recs in memory. A bytes.Buffer cannot fail a write, so an
// error here is a bug in Writer itself.
func encode(recs [][]byte) []byte {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	for _, r := range recs {
		if err := w.Write(r); err != nil {
			panic(err)
		}
	}
	return buf.Bytes()
}

func readAll(r io.Reader) ([][]byte, error) {
	rd := NewReader(r)
	var out [][]byte
	for {
		rec, err := rd.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, rec)
	}
}

func TestMaskedCRCKnownValues(t *testing.T) {
	tests := []struct {
		in   string
		want uint32
	}{
		// crc32c("") = 0, so the masked value is the mask delta itself.
		{"", 0xa282ead8},
		// crc32c("123456789") = 0xe3069283, the standard check value; masked
		// by hand: rotr 15 = 0x2507c60d, + 0xa282ead8 = 0xc78ab0e5.
		{"123456789", 0xc78ab0e5},
	}
	for _, tt := range tests {
		if got := MaskedCRC([]byte(tt.in)); got != tt.want {
			t.Errorf("MaskedCRC(%q) = %#08x, want %#08x", tt.in, got, tt.want)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	recs := sampleRecords()
	got, err := readAll(bytes.NewReader(encode(recs)))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(recs) {
		t.Fatalf("read %d records, wrote %d", len(got), len(recs))
	}
	for i := range recs {
		if !bytes.Equal(got[i], recs[i]) {
			t.Errorf("record %d differs", i)
		}
	}
}

func TestRecordsAreTheCallersToKeep(t *testing.T) {
	rd := NewReader(bytes.NewReader(encode([][]byte{[]byte("first"), []byte("second")})))
	a, _ := rd.Next()
	if _, err := rd.Next(); err != nil {
		t.Fatal(err)
	}
	if string(a) != "first" {
		t.Fatalf("first record changed to %q after reading the next one", a)
	}
}

func TestEmptyInputIsCleanEOF(t *testing.T) {
	if _, err := NewReader(bytes.NewReader(nil)).Next(); err != io.EOF {
		t.Fatalf("Next on empty input = %v, want io.EOF", err)
	}
}

// Cutting the file anywhere but a record boundary must be reported as
// truncation, naming the part that was cut; at a boundary it is a clean end.
func TestTruncation(t *testing.T) {
	recs := [][]byte{[]byte("hello"), []byte("tfrecord"), {}}
	file := encode(recs)
	boundaries := map[int]int{0: 0} // offset -> records before it
	off := 0
	for i, r := range recs {
		off += headerSize + len(r) + footerSize
		boundaries[off] = i + 1
	}
	for cut := 0; cut < len(file); cut++ {
		got, err := readAll(bytes.NewReader(file[:cut]))
		if n, ok := boundaries[cut]; ok {
			if err != nil || len(got) != n {
				t.Errorf("cut at boundary %d: got %d records, err %v; want %d, nil", cut, len(got), err, n)
			}
			continue
		}
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "truncated") {
			t.Errorf("cut at %d: err = %v, want a truncation error", cut, err)
		}
	}
}

func TestCorruption(t *testing.T) {
	file := encode([][]byte{[]byte("payload")})
	tests := []struct {
		name string
		at   int
		want string
	}{
		{"length", 0, "length CRC mismatch"},
		{"length crc", 9, "length CRC mismatch"},
		{"data", headerSize + 2, "data CRC mismatch"},
		{"data crc", len(file) - 1, "data CRC mismatch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := bytes.Clone(file)
			bad[tt.at] ^= 0x40
			_, err := readAll(bytes.NewReader(bad))
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if !strings.Contains(err.Error(), "offset 0") {
				t.Errorf("err = %v, want it to name the record's offset", err)
			}
		})
	}
}

// A header whose CRC is right but whose length is absurd must not make the
// reader allocate that much before finding the file is short.
func TestHugeLengthOnShortFile(t *testing.T) {
	var hdr [headerSize]byte
	binary.LittleEndian.PutUint64(hdr[:8], MaxRecordSize)
	binary.LittleEndian.PutUint32(hdr[8:], MaskedCRC(hdr[:8]))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := readAll(bytes.NewReader(append(hdr[:], "short"...)))
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "truncated data") {
		t.Fatalf("err = %v, want truncated data", err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
		t.Errorf("reading a 17-byte file allocated %d MiB", alloc>>20)
	}
	binary.LittleEndian.PutUint64(hdr[:8], MaxRecordSize+1)
	binary.LittleEndian.PutUint32(hdr[8:], MaskedCRC(hdr[:8]))
	if _, err := readAll(bytes.NewReader(hdr[:])); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "exceeds") {
		t.Fatalf("err = %v, want a length limit error", err)
	}
}

type failingReader struct{ err error }

func (f failingReader) Read([]byte) (int, error) { return 0, f.err }

func TestIOErrorIsNotCorruption(t *testing.T) {
	boom := errors.New("disk on fire")
	_, err := NewReader(failingReader{boom}).Next()
	if !errors.Is(err, boom) || errors.Is(err, ErrCorrupt) {
		t.Fatalf("err = %v, want the I/O error and not ErrCorrupt", err)
	}
}

// TestTensorFlowCrossCheck writes records with Go and has TensorFlow read
// them, then has TensorFlow write the same records and reads them with Go.
// The two files must be byte-identical, since the format is deterministic.
func TestTensorFlowCrossCheck(t *testing.T) {
	py := testenv.Python(t)
	dir := t.TempDir()
	recs := sampleRecords()
	goFile := encode(recs)
	goPath, pyPath, jsonPath := filepath.Join(dir, "go.tfrecord"), filepath.Join(dir, "py.tfrecord"), filepath.Join(dir, "records.json")
	hexes := make([]string, len(recs))
	for i, r := range recs {
		hexes[i] = hex.EncodeToString(r)
	}
	js, _ := json.Marshal(hexes)
	for path, data := range map[string][]byte{goPath: goFile, jsonPath: js} {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(py, "testdata/crosscheck.py", jsonPath, goPath, pyPath)
	cmd.Env = pyenv.Env()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("crosscheck.py: %v\n%s", err, out)
	}
	pyFile, err := os.ReadFile(pyPath)
	if err != nil {
		t.Fatal(err)
	}
	got, err := readAll(bytes.NewReader(pyFile))
	if err != nil {
		t.Fatalf("reading TensorFlow's file: %v", err)
	}
	if len(got) != len(recs) {
		t.Fatalf("read %d records from TensorFlow's file, want %d", len(got), len(recs))
	}
	for i := range recs {
		if !bytes.Equal(got[i], recs[i]) {
			t.Errorf("TensorFlow's record %d differs", i)
		}
	}
	if !bytes.Equal(pyFile, goFile) {
		t.Errorf("TensorFlow's file (%d bytes) differs from Go's (%d bytes)", len(pyFile), len(goFile))
	}
}

func fuzzSeeds() [][]byte {
	valid := encode([][]byte{[]byte("a"), {}, []byte("tf.Example bytes")})
	return [][]byte{
		{},
		valid,
		valid[:len(valid)-3],
		valid[:headerSize+1],
		append(bytes.Clone(valid[:headerSize]), 0xff, 0xff),
	}
}

// FuzzReader checks that no input makes the Reader panic, and that whatever
// it accepts re-encodes to exactly the bytes it consumed.
func FuzzReader(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rd := NewReader(bytes.NewReader(data))
		var recs [][]byte
		for {
			rec, err := rd.Next()
			if err != nil {
				if err != io.EOF && !errors.Is(err, ErrCorrupt) {
					t.Fatalf("unexpected error kind: %v", err)
				}
				break
			}
			recs = append(recs, rec)
		}
		if re := encode(recs); !bytes.Equal(re, data[:rd.Offset()]) {
			t.Fatalf("accepted records re-encode to %d bytes, consumed %d", len(re), rd.Offset())
		}
	})
}

// TestFuzzSeedCorpus keeps the committed corpus in testdata/fuzz/FuzzReader
// equal to fuzzSeeds; -update rewrites it.
func TestFuzzSeedCorpus(t *testing.T) {
	checkSeedCorpus(t, "FuzzReader", fuzzSeeds())
}

func checkSeedCorpus(t *testing.T, name string, seeds [][]byte) {
	t.Helper()
	dir := filepath.Join("testdata", "fuzz", name)
	if *update {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for i, s := range seeds {
		path := filepath.Join(dir, fmt.Sprintf("seed%02d", i))
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s)
		if *update {
			if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != body {
			t.Errorf("%s is missing or stale (err %v): run go test -run TestFuzzSeedCorpus -update", path, err)
		}
	}
}

const benchRecordSize = 64 << 10 // a typical JPEG of a 299x299 photo

func BenchmarkWrite(b *testing.B) {
	rec := bytes.Repeat([]byte{0x5a}, benchRecordSize)
	w := NewWriter(io.Discard)
	b.SetBytes(benchRecordSize)
	for b.Loop() {
		if err := w.Write(rec); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRead(b *testing.B) {
	const n = 64
	recs := make([][]byte, n)
	for i := range recs {
		recs[i] = bytes.Repeat([]byte{byte(i)}, benchRecordSize)
	}
	file := encode(recs)
	b.SetBytes(benchRecordSize)
	var src bytes.Reader
	var rd *Reader
	for i := 0; b.Loop(); i++ {
		if i%n == 0 {
			src.Reset(file)
			rd = NewReader(&src)
		}
		if _, err := rd.Next(); err != nil {
			b.Fatal(err)
		}
	}
}
