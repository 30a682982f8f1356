package tbevents

import (
	"encoding/json"
	"errors"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/xcept/xcept/internal/pyenv"
	"github.com/xcept/xcept/internal/testenv"
	"github.com/xcept/xcept/internal/tfrecord"
)

// event is the part of a tensorflow.Event these tests look at.
type event struct {
	wallTime    float64
	step        int64
	fileVersion string
	scalars     map[string]float32
	tags        []string // in file order
}

// readEvents decodes an event file independently of the writer's encoder.
func readEvents(t *testing.T, path string) []event {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var events []event
	rd := tfrecord.NewReader(f)
	for {
		rec, err := rd.Next()
		if err == io.EOF {
			return events
		}
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, decodeEvent(t, rec))
	}
}

func decodeEvent(t *testing.T, b []byte) event {
	e := event{scalars: map[string]float32{}}
	fields(t, b, func(num protowire.Number, v []byte) {
		switch num {
		case fieldEventWallTime:
			bits, _ := protowire.ConsumeFixed64(v)
			e.wallTime = math.Float64frombits(bits)
		case fieldEventStep:
			x, _ := protowire.ConsumeVarint(v)
			e.step = int64(x)
		case fieldEventFileVersion:
			e.fileVersion = string(v)
		case fieldEventSummary:
			fields(t, v, func(_ protowire.Number, value []byte) {
				var tag string
				var x float32
				fields(t, value, func(num protowire.Number, v []byte) {
					switch num {
					case fieldValueTag:
						tag = string(v)
					case fieldValueSimpleValue:
						bits, _ := protowire.ConsumeFixed32(v)
						x = math.Float32frombits(bits)
					}
				})
				e.scalars[tag] = x
				e.tags = append(e.tags, tag)
			})
		}
	})
	return e
}

// fields calls fn with each field's body (length-delimited) or raw value.
func fields(t *testing.T, b []byte, fn func(protowire.Number, []byte)) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			t.Fatalf("bad tag: %v", protowire.ParseError(n))
		}
		b = b[n:]
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			t.Fatalf("bad field %d: %v", num, protowire.ParseError(m))
		}
		v := b[:m]
		if typ == protowire.BytesType {
			v, _ = protowire.ConsumeBytes(v)
		}
		fn(num, v)
		b = b[m:]
	}
}

func fixClock(t *testing.T, at time.Time) {
	old := now
	now = func() time.Time { return at }
	t.Cleanup(func() { now = old })
}

func TestFileNameAndFirstEvent(t *testing.T) {
	at := time.Unix(1700000000, 250_000_000)
	fixClock(t, at)
	dir := filepath.Join(t.TempDir(), "runs", "a") // created on demand
	w, err := NewWriter(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	host, _ := os.Hostname()
	if want := filepath.Join(dir, "events.out.tfevents.1700000000."+host); w.Path() != want {
		t.Errorf("Path = %s, want %s", w.Path(), want)
	}
	// The file_version event is on disk before any Flush.
	events := readEvents(t, w.Path())
	if len(events) != 1 || events[0].fileVersion != FileVersion || events[0].wallTime != 1700000000.25 {
		t.Fatalf("events = %+v, want one file_version %q event at 1700000000.25", events, FileVersion)
	}
}

func TestSameSecondWritersDoNotCollide(t *testing.T) {
	fixClock(t, time.Unix(1700000000, 0))
	dir := t.TempDir()
	seen := map[string]bool{}
	for range 3 {
		w, err := NewWriter(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		if seen[w.Path()] {
			t.Fatalf("two writers share %s", w.Path())
		}
		seen[w.Path()] = true
		if ok, _ := regexp.MatchString(`^events\.out\.tfevents\.1700000000\.[^/]+$`, filepath.Base(w.Path())); !ok {
			t.Errorf("%s does not look like a TensorBoard event file name", w.Path())
		}
	}
}

func TestScalarsFlushAndClose(t *testing.T) {
	fixClock(t, time.Unix(1700000000, 0))
	w, err := NewWriter(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.AddScalar("loss", 3, 0.1); err != nil {
		t.Fatal(err)
	}
	if err := w.AddScalars(4, map[string]float64{"val_loss": 0.5, "accuracy": 0.75, "loss": -1e-3}); err != nil {
		t.Fatal(err)
	}
	if n := len(readEvents(t, w.Path())); n != 1 {
		t.Fatalf("%d events on disk before Flush, want only the file_version one", n)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	events := readEvents(t, w.Path())
	if len(events) != 3 {
		t.Fatalf("%d events on disk after Flush, want 3", len(events))
	}
	if e := events[1]; e.step != 3 || e.scalars["loss"] != float32(0.1) || e.wallTime != 1700000000 {
		t.Errorf("event 1 = %+v", e)
	}
	e := events[2]
	if e.step != 4 || e.scalars["accuracy"] != 0.75 || e.scalars["val_loss"] != 0.5 || e.scalars["loss"] != float32(-1e-3) {
		t.Errorf("event 2 = %+v", e)
	}
	if want := []string{"accuracy", "loss", "val_loss"}; !equalStrings(e.tags, want) {
		t.Errorf("tags in file order %v, want sorted %v", e.tags, want)
	}
	for range 2 {
		if err := w.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	if err := w.AddScalar("loss", 5, 1); !errors.Is(err, ErrClosed) {
		t.Errorf("AddScalar after Close = %v, want ErrClosed", err)
	}
	if err := w.Flush(); !errors.Is(err, ErrClosed) {
		t.Errorf("Flush after Close = %v, want ErrClosed", err)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestNewWriterErrorNamesThePath(t *testing.T) {
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := NewWriter(filepath.Join(file, "logs"))
	if err == nil || !regexp.MustCompile(regexp.QuoteMeta(file)).MatchString(err.Error()) {
		t.Fatalf("err = %v, want it to name %s", err, file)
	}
}

// trainingCurves is what a short training run logs: per-epoch metrics.
func trainingCurves() map[string][]float64 {
	curves := map[string][]float64{}
	for step := range 12 {
		s := float64(step)
		curves["loss"] = append(curves["loss"], 2.3/(1+s)+0.01)
		curves["accuracy"] = append(curves["accuracy"], 1-0.9/(1+s))
		curves["val_loss"] = append(curves["val_loss"], 2.4/(1+0.8*s)+0.05)
		curves["learning_rate"] = append(curves["learning_rate"], 1e-4*math.Pow(0.5, float64(step/4)))
	}
	return curves
}

// TestTensorBoardReadsScalars has TensorBoard's own readers, the legacy
// EventAccumulator and the data provider behind the web UI, read what Go
// wrote: same tags, steps and values at float32 precision.
func TestTensorBoardReadsScalars(t *testing.T) {
	py := testenv.Python(t)
	dir := t.TempDir()
	w, err := NewWriter(dir)
	if err != nil {
		t.Fatal(err)
	}
	curves := trainingCurves()
	for step := range curves["loss"] {
		// One tag on its own, the rest together, as a training loop may.
		if err := w.AddScalar("learning_rate", int64(step), curves["learning_rate"][step]); err != nil {
			t.Fatal(err)
		}
		epoch := map[string]float64{}
		for _, tag := range []string{"loss", "accuracy", "val_loss"} {
			epoch[tag] = curves[tag][step]
		}
		if err := w.AddScalars(int64(step), epoch); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, "testdata/read_scalars.py", dir)
	cmd.Env = pyenv.Env()
	cmd.Stderr = &testWriter{t}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("read_scalars.py: %v", err)
	}
	var got map[string]map[string][][2]float64
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("read_scalars.py printed %q: %v", out, err)
	}
	for _, reader := range []string{"legacy", "ui"} {
		if len(got[reader]) != len(curves) {
			t.Errorf("%s reader found tags %v, want %d tags", reader, keys(got[reader]), len(curves))
		}
		for tag, want := range curves {
			points := got[reader][tag]
			if len(points) != len(want) {
				t.Errorf("%s reader: %s has %d points, want %d", reader, tag, len(points), len(want))
				continue
			}
			for step, p := range points {
				if p[0] != float64(step) || p[1] != float64(float32(want[step])) {
					t.Errorf("%s reader: %s point %d = (step %g, %g), want (step %d, %g)", reader, tag, step, p[0], p[1], step, float32(want[step]))
				}
			}
		}
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// testWriter sends a subprocess's stderr to the test log, shown on failure.
type testWriter struct{ t *testing.T }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

func BenchmarkAddScalars(b *testing.B) {
	w, err := NewWriter(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	epoch := map[string]float64{"loss": 0.5, "accuracy": 0.8, "val_loss": 0.6, "learning_rate": 1e-4}
	for i := 0; b.Loop(); i++ {
		if err := w.AddScalars(int64(i), epoch); err != nil {
			b.Fatal(err)
		}
	}
}
