package export

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/xcept/xcept/internal/contract"
	"github.com/xcept/xcept/internal/fault"
	"github.com/xcept/xcept/internal/graph"
	"github.com/xcept/xcept/internal/pyenv"
)

// A run of one model on the verification images: its probabilities
// (images × classes) and the mean time per image.
type prediction struct {
	Probs   []float32
	PerItem time.Duration
}

// Input kinds of the C API signatures xcept runs.
const (
	inputEncoded = "encoded image bytes"
	inputFloat   = "float32 pixels 0..255"
	inputUint8   = "uint8 pixels"
)

// capiSignature runs one signature of a loaded SavedModel on the sample in
// batches. The first batch runs once untimed first: TensorFlow optimises and
// allocates on the first call, which no server pays per request.
type capiSignature struct {
	Session   *graph.Session
	Signature string
	Input     string // feed key
	Kind      string // inputEncoded | inputFloat | inputUint8
	Classes   []string
}

func (c capiSignature) predict(ctx context.Context, s *sample, batch int) (*prediction, error) {
	n, k := s.N(), len(c.Classes)
	probs := make([]float32, 0, n*k)
	if err := c.warmUp(s, min(batch, n)); err != nil {
		return nil, err
	}
	var spent time.Duration
	for start := 0; start < n; start += batch {
		if ctx.Err() != nil {
			return nil, fault.ErrInterrupted
		}
		end := min(start+batch, n)
		began := time.Now()
		p, err := c.run(s, start, end, false)
		spent += time.Since(began)
		if err != nil {
			return nil, err
		}
		probs = append(probs, p...)
	}
	return &prediction{Probs: probs, PerItem: spent / time.Duration(n)}, nil
}

// warmUp runs the first batch once; for serving_default it also checks the
// class names the signature returns against the model's.
func (c capiSignature) warmUp(s *sample, n int) error {
	_, err := c.run(s, 0, n, c.Kind == inputEncoded)
	return err
}

// run feeds images [start, end) and returns their probabilities.
func (c capiSignature) run(s *sample, start, end int, checkClasses bool) ([]float32, error) {
	in, err := c.tensor(s, start, end)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	fetch := []string{contract.OutProbabilities}
	if checkClasses {
		fetch = append(fetch, contract.OutClasses)
	}
	out, err := c.Session.Run(c.Signature, map[string]*graph.Tensor{c.Input: in}, fetch...)
	if err != nil {
		return nil, fault.New(fault.ToolFailed, "running %s of %s: %v", c.Signature, c.Session.Dir, err)
	}
	for _, t := range out {
		defer t.Close()
	}
	probs, err := out[0].Float32s()
	if err != nil {
		return nil, err
	}
	if len(probs) != (end-start)*len(c.Classes) {
		return nil, fault.New(fault.ToolFailed, "%s of %s returned %d probabilities for %d images of %d classes",
			c.Signature, c.Session.Dir, len(probs), end-start, len(c.Classes))
	}
	if checkClasses {
		if err := c.checkClasses(out[1], end-start); err != nil {
			return nil, err
		}
	}
	return probs, nil
}

func (c capiSignature) tensor(s *sample, start, end int) (*graph.Tensor, error) {
	size := int64(s.Size)
	shape := []int64{int64(end - start), size, size, 3}
	pixels := s.Pixels[start*s.Size*s.Size*3 : end*s.Size*s.Size*3]
	switch c.Kind {
	case inputEncoded:
		return graph.NewStrings([]int64{int64(end - start)}, s.Encoded[start:end])
	case inputFloat:
		f := make([]float32, len(pixels))
		for i, p := range pixels {
			f[i] = float32(p)
		}
		return graph.NewTensor(shape, f)
	}
	return graph.NewTensor(shape, pixels)
}

// checkClasses makes sure every row of the classes output names the model's
// classes in label order: a client reads its answer from them.
func (c capiSignature) checkClasses(t *graph.Tensor, n int) error {
	names, err := t.Strings()
	if err != nil {
		return err
	}
	k := len(c.Classes)
	if len(names) != n*k {
		return fault.New(fault.ToolFailed, "%s of %s returned %d class names for %d images of %d classes", c.Signature, c.Session.Dir, len(names), n, k)
	}
	for i, name := range names {
		if string(name) != c.Classes[i%k] {
			return fault.New(fault.ToolFailed, "%s of %s names class %d %q, the model calls it %q", c.Signature, c.Session.Dir, i%k, name, c.Classes[i%k])
		}
	}
	return nil
}

// pythonRuntime runs an artefact with a verify script of the project's venv
// (the TFLite interpreter, onnxruntime) on images.npy and reads back the
// probabilities it wrote.
type pythonRuntime struct {
	Script  string // verify_tflite.py | verify_onnx.py
	Model   string // the artefact
	Images  string // the sample as uint8 .npy
	WorkDir string
	Threads int
}

// scriptTiming is what a verify script prints on stdout.
type scriptTiming struct {
	Seconds float64 `json:"seconds"` // inference time over every image, warm-up excluded
	Images  int     `json:"images"`
}

func (p pythonRuntime) predict(ctx context.Context, n, classes, batch int, progress *progress) (*prediction, error) {
	out := filepath.Join(p.WorkDir, "probabilities-"+filepath.Base(p.Model)+".npy")
	args := []string{"--model", p.Model, "--images", p.Images, "--out", out,
		"--batch-size", strconv.Itoa(batch), "--threads", strconv.Itoa(p.Threads)}
	stdout, err := pyenv.Run(ctx, p.Script, args, progress.writer())
	if err != nil {
		return nil, pyenv.Failure(ctx, "", err)
	}
	var timing scriptTiming
	if err := json.Unmarshal(lastLine(stdout), &timing); err != nil || timing.Images != n {
		return nil, fault.New(fault.ToolFailed, "%s printed %q, not its timing for %d images", p.Script, lastLine(stdout), n)
	}
	probs, shape, err := readNpyFloat32(out)
	if err != nil {
		return nil, fault.New(fault.ToolFailed, "%s: %v", p.Script, err)
	}
	if !slices.Equal(shape, []int{n, classes}) {
		return nil, fault.New(fault.ToolFailed, "%s wrote probabilities of shape %v, want [%d %d]", p.Script, shape, n, classes)
	}
	perItem := time.Duration(timing.Seconds * float64(time.Second) / float64(n))
	return &prediction{Probs: probs, PerItem: perItem}, nil
}

// lastLine is the last line of a script's stdout: the scripts print their
// JSON result last, after anything a library printed.
func lastLine(b []byte) []byte {
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	return bytes.TrimSpace(lines[len(lines)-1])
}

// perImage formats a duration per image in milliseconds.
func perImage(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
