package serve

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/xcept/xcept/internal/contract"
	"github.com/xcept/xcept/internal/graph"
	"github.com/xcept/xcept/internal/versions"
)

// explainEmpty says why dir holds no version to serve, pointing at the
// usual mistake: a SavedModel (or an xcept model folder) given directly,
// without TF Serving's version folder.
func explainEmpty(dir string) string {
	switch {
	case fileExists(filepath.Join(dir, contract.SavedModelFile)):
		return fmt.Sprintf("%s is a SavedModel itself, but serve (like TF Serving) expects version folders: move it to %s",
			dir, filepath.Join(dir, versions.Name(1)))
	case hasONNXVersion(dir):
		return fmt.Sprintf("%s holds an ONNX export (DIR/<version>/NAME.onnx): serve it with --engine onnxruntime (runtime.engine)", dir)
	case fileExists(filepath.Join(dir, "serving", contract.SavedModelFile)):
		return fmt.Sprintf("%s is an xcept model folder: export it first (xcept export), then serve the export", dir)
	}
	return fmt.Sprintf("%s has no complete version folder (%s with %s and %s); export one with xcept export",
		dir, filepath.Join(dir, versions.Name(1)), contract.SavedModelFile, contract.VariablesIndex)
}

// hasONNXVersion says whether base holds a complete ONNX version folder.
func hasONNXVersion(base string) bool {
	vs, _ := versions.ScanFunc(base, versions.CompleteONNX)
	return len(vs) > 0
}

func fileExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}

// servable is one loaded version and the requests using it.
type servable struct {
	version  int64
	dir      string
	model    Model
	runner   *runner
	inflight sync.WaitGroup
}

// manager keeps the newest version loaded and swaps in new ones: a new
// version is loaded and warmed up while the old one serves, swapped in
// atomically, and the old one is closed once its requests have finished.
type manager struct {
	dir      string
	load     Loader
	complete func(dir string) (string, bool) // which version folders are complete
	batch    BatchConfig
	met      *metrics
	logf     func(format string, args ...any)

	mu      sync.RWMutex
	current *servable
	states  map[int64]VersionState

	pollMu   sync.Mutex       // one load at a time
	failed   map[int64]string // version → stamp of the files that failed to load
	retiring sync.WaitGroup   // old versions draining
}

// acquire returns the current version, counted as in use until release.
func (m *manager) acquire() *servable {
	m.mu.RLock()
	defer m.mu.RUnlock()
	s := m.current
	if s != nil {
		s.inflight.Add(1)
	}
	return s
}

func (s *servable) release() { s.inflight.Done() }

// statuses lists every version seen, newest first (TF Serving's order).
func (m *manager) statuses() []VersionState {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]VersionState, 0, len(m.states))
	for _, st := range m.states {
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b VersionState) int { return cmp.Compare(b.Version, a.Version) })
	return out
}

func (m *manager) setState(st VersionState) {
	m.mu.Lock()
	m.states[st.Version] = st
	m.mu.Unlock()
}

// poll loads the newest complete version when it is not the one being
// served. A version that failed to load is skipped until its files change.
func (m *manager) poll() error {
	m.pollMu.Lock()
	defer m.pollMu.Unlock()
	vs, err := versions.ScanFunc(m.dir, m.complete)
	if err != nil {
		return fmt.Errorf("reading %s: %w", m.dir, err)
	}
	m.mu.RLock()
	cur := m.current
	m.mu.RUnlock()
	for _, v := range vs {
		if cur != nil && v.Number == cur.version {
			return nil
		}
		if stamp, ok := m.failed[v.Number]; ok && stamp == v.Stamp {
			continue
		}
		return m.swapIn(v)
	}
	if cur == nil {
		if len(vs) > 0 {
			return fmt.Errorf("no version of %s loads (see the errors above)", m.dir)
		}
		return errors.New(explainEmpty(m.dir))
	}
	return nil
}

// swapIn loads v, warms it up and makes it the current version.
func (m *manager) swapIn(v versions.Version) error {
	m.setState(VersionState{Version: v.Number, State: StateLoading})
	start := time.Now()
	s, err := m.open(v)
	if err != nil {
		m.failed[v.Number] = v.Stamp
		e := asError(err)
		m.setState(VersionState{Version: v.Number, State: StateEnd, Err: e})
		m.met.reloaded(false)
		m.logf("version %d (%s) failed to load: %s", v.Number, v.Dir, e.Message)
		return fmt.Errorf("version %d (%s): %s", v.Number, v.Dir, e.Message)
	}
	delete(m.failed, v.Number)
	m.mu.Lock()
	old := m.current
	m.current = s
	m.states[v.Number] = VersionState{Version: v.Number, State: StateAvailable}
	if old != nil {
		m.states[old.version] = VersionState{Version: old.version, State: StateUnloading}
	}
	m.mu.Unlock()
	m.met.reloaded(true)
	m.met.setVersion(v.Number)
	m.logf("serving version %d from %s (loaded in %.1fs%s)", v.Number, v.Dir, time.Since(start).Seconds(), labelsNote(s.model))
	if old != nil {
		m.retiring.Add(1)
		go func() {
			defer m.retiring.Done()
			m.retire(old)
			m.logf("version %d unloaded: its last requests finished", old.version)
		}()
	}
	return nil
}

func labelsNote(m Model) string {
	if l := m.Labels(); len(l) > 0 {
		return fmt.Sprintf(", %d classes", len(l))
	}
	return ""
}

// retire waits for a replaced version's requests, then frees it.
func (m *manager) retire(s *servable) {
	s.inflight.Wait()
	s.runner.close()
	if err := s.model.Close(); err != nil {
		m.logf("closing version %d: %v", s.version, err)
	}
	m.setState(VersionState{Version: s.version, State: StateEnd})
}

func (m *manager) open(v versions.Version) (*servable, error) {
	model, err := m.load(v.Dir)
	if err != nil {
		return nil, err
	}
	if err := checkLabels(model); err != nil {
		model.Close()
		return nil, err
	}
	if err := warmUp(model); err != nil {
		model.Close()
		return nil, err
	}
	return &servable{version: v.Number, dir: v.Dir, model: model, runner: newRunner(model, m.batch, m.met)}, nil
}

// checkLabels makes sure assets/labels.txt names one class per probability.
func checkLabels(m Model) error {
	labels := m.Labels()
	sig, ok := m.Signatures()[DefaultSignature]
	if labels == nil || !ok {
		return nil
	}
	if p, ok := sig.Outputs[contract.OutProbabilities]; ok && len(p.Shape) == 2 && p.Shape[1] >= 0 && int(p.Shape[1]) != len(labels) {
		return invalidf("%s names %d classes, but %s gives %d probabilities", contract.LabelsAsset, len(labels), DefaultSignature, p.Shape[1])
	}
	return nil
}

// warmUp runs serving_default once on a small image before the version
// takes traffic: TensorFlow's first run of a graph optimises it and is many
// times slower than the next ones. A model that cannot classify an image is
// refused here, while the previous version still serves.
func warmUp(m Model) error {
	sig, ok := m.Signatures()[DefaultSignature]
	if !ok {
		return nil
	}
	inputs := map[string]*Column{}
	for key, ti := range sig.Inputs {
		c, ok := warmUpInput(ti)
		if !ok {
			return nil // a signature this server cannot make an input for
		}
		inputs[key] = c
	}
	if _, err := m.Run(DefaultSignature, inputs); err != nil {
		return fmt.Errorf("warm-up run of %s: %w", DefaultSignature, err)
	}
	return nil
}

// warmUpInput is one row for an input: a grey PNG for strings, zeros for numbers.
func warmUpInput(ti graph.TensorInfo) (*Column, bool) {
	if len(ti.Shape) == 0 || ti.Shape[0] != -1 {
		return nil, false
	}
	shape := append([]int64{1}, ti.Shape[1:]...)
	n := 1
	for _, d := range shape {
		if d < 0 {
			return nil, false
		}
		n *= int(d)
	}
	if ti.DType == graph.String {
		data := make([][]byte, n)
		for i := range data {
			data[i] = greyPNG
		}
		return &Column{DType: graph.String, Shape: shape, Data: data}, true
	}
	return &Column{DType: ti.DType, Shape: shape, Data: zerosOf(ti.DType, n)}, Supported(ti.DType)
}

func zerosOf(dt graph.DType, n int) any {
	switch dt {
	case graph.Float, graph.Half, graph.BFloat16:
		return make([]float32, n)
	case graph.Double:
		return make([]float64, n)
	case graph.Int8:
		return make([]int8, n)
	case graph.Int16:
		return make([]int16, n)
	case graph.Int32:
		return make([]int32, n)
	case graph.Int64:
		return make([]int64, n)
	case graph.Uint8:
		return make([]uint8, n)
	case graph.Uint16:
		return make([]uint16, n)
	case graph.Bool:
		return make([]bool, n)
	}
	return make([][]byte, n)
}

var greyPNG = func() []byte {
	img := image.NewGray(image.Rect(0, 0, 8, 8))
	for i := range img.Pix {
		img.Pix[i] = 128
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		panic(err)
	}
	return buf.Bytes()
}()

// watch polls until ctx is done, logging each new polling error once
// (load failures are logged when they happen).
func (m *manager) watch(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	last := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			msg := ""
			if err := m.poll(); err != nil {
				msg = err.Error()
			}
			if msg != last && msg != "" && !strings.HasPrefix(msg, "version ") {
				m.logf("%s", msg)
			}
			last = msg
		}
	}
}

// close unloads the current version after its requests finish.
func (m *manager) close() {
	m.pollMu.Lock()
	defer m.pollMu.Unlock()
	m.mu.Lock()
	cur := m.current
	m.current = nil
	m.mu.Unlock()
	if cur != nil {
		m.retire(cur)
	}
	m.retiring.Wait()
}
