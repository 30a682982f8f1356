package serve

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/xcept/xcept/internal/contract"
	"github.com/xcept/xcept/internal/graph"
	"github.com/xcept/xcept/internal/trust"
)

// Model is one loaded version, as the server uses it. Run is called from
// many goroutines at once.
type Model interface {
	Signatures() map[string]*graph.Signature
	// Run runs a signature on inputs fed by key and returns every output.
	Run(signature string, inputs map[string]*Column) (map[string]*Column, error)
	// Labels are the class names of assets/labels.txt (nil when absent).
	Labels() []string
	// Close waits for runs in flight, then frees the model.
	Close() error
}

// Loader loads one version folder.
type Loader func(dir string) (Model, error)

// SavedModelLoader loads version folders through the TensorFlow C API.
// Unless allowUntrusted, a version trust.Check refuses is not loaded at
// all: loading a SavedModel runs its restore and init ops.
func SavedModelLoader(opts graph.SessionOptions, allowUntrusted bool) Loader {
	return func(dir string) (Model, error) {
		if !allowUntrusted {
			if err := trust.Check(dir); err != nil {
				return nil, err
			}
		}
		s, err := graph.LoadSavedModel(dir, opts)
		if err != nil {
			return nil, err
		}
		m := &savedModel{s: s}
		if m.labels, err = readLabels(filepath.Join(dir, contract.LabelsAsset)); err != nil {
			s.Close()
			return nil, err
		}
		return m, nil
	}
}

type savedModel struct {
	s      *graph.Session
	labels []string
}

func (m *savedModel) Signatures() map[string]*graph.Signature { return m.s.MetaGraph.Signatures }
func (m *savedModel) Labels() []string                        { return m.labels }
func (m *savedModel) Close() error                            { return m.s.Close() }

func (m *savedModel) Run(signature string, inputs map[string]*Column) (map[string]*Column, error) {
	sig, err := m.s.Signature(signature)
	if err != nil {
		return nil, err
	}
	feeds := make(map[string]*graph.Tensor, len(inputs))
	defer func() {
		for _, t := range feeds {
			t.Close()
		}
	}()
	for key, c := range inputs {
		t, err := c.Tensor()
		if err != nil {
			return nil, fmt.Errorf("input %q: %w", key, err)
		}
		feeds[key] = t
	}
	keys := sig.OutputKeys()
	tensors, err := m.s.Run(signature, feeds, keys...)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, t := range tensors {
			t.Close()
		}
	}()
	out := make(map[string]*Column, len(keys))
	for i, key := range keys {
		if out[key], err = ColumnOf(tensors[i]); err != nil {
			return nil, errorf(graph.CodeUnimplemented, "output %q: %v", key, err)
		}
	}
	return out, nil
}

// readLabels reads a version's labels by contract.ParseLabels's rule; a
// missing file is no error (a SavedModel not exported by xcept).
func readLabels(path string) ([]string, error) {
	labels, err := contract.ReadLabels(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return labels, err
}
