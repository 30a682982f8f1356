package serve

import (
	"maps"

	"github.com/xcept/xcept/internal/calibrate"
	"github.com/xcept/xcept/internal/contract"
	"github.com/xcept/xcept/internal/graph"
	evalmetrics "github.com/xcept/xcept/internal/metrics" // serve has its own metrics
)

// Rejecting wraps a loader so that every signature answering probabilities
// and classes (serving_default) also answers two outputs xcept computes
// from them: unknown (bool per row: the top probability is below the
// version's "unknown" threshold) and class (string per row: the top
// class's name, or "unknown"). The other outputs, and the other
// signatures, are unchanged: a TF Serving client that reads probabilities
// and classes reads the same answer, in REST's rows (an object keyed by
// output already) and columns and in gRPC's outputs map. threshold reads a
// version folder's threshold; a version without one is not loaded.
func Rejecting(load Loader, threshold func(dir string) (*calibrate.Rejection, error)) Loader {
	return func(dir string) (Model, error) {
		r, err := threshold(dir)
		if err != nil {
			return nil, err
		}
		m, err := load(dir)
		if err != nil {
			return nil, err
		}
		return newRejectModel(m, r), nil
	}
}

type rejectModel struct {
	Model
	reject *calibrate.Rejection
	sigs   map[string]*graph.Signature
	adds   map[string]bool // signatures answering the extra outputs
}

func newRejectModel(m Model, r *calibrate.Rejection) *rejectModel {
	rm := &rejectModel{Model: m, reject: r, sigs: map[string]*graph.Signature{}, adds: map[string]bool{}}
	for key, sig := range m.Signatures() {
		p, hasP := sig.Outputs[contract.OutProbabilities]
		c, hasC := sig.Outputs[contract.OutClasses]
		_, taken := sig.Outputs[contract.OutUnknown]
		_, taken2 := sig.Outputs[contract.OutClass]
		if !hasP || !hasC || taken || taken2 || len(p.Shape) != 2 || len(c.Shape) != 2 {
			rm.sigs[key] = sig
			continue
		}
		s := *sig
		s.Outputs = maps.Clone(sig.Outputs)
		batch := []int64{p.Shape[0]}
		s.Outputs[contract.OutUnknown] = graph.TensorInfo{Name: "xcept_serve_reject/unknown", DType: graph.Bool, Shape: batch}
		s.Outputs[contract.OutClass] = graph.TensorInfo{Name: "xcept_serve_reject/class", DType: graph.String, Shape: batch}
		rm.sigs[key], rm.adds[key] = &s, true
	}
	return rm
}

func (m *rejectModel) Signatures() map[string]*graph.Signature { return m.sigs }

func (m *rejectModel) Run(signature string, inputs map[string]*Column) (map[string]*Column, error) {
	out, err := m.Model.Run(signature, inputs)
	if err != nil || !m.adds[signature] {
		return out, err
	}
	p, c := out[contract.OutProbabilities], out[contract.OutClasses]
	probs, ok1 := p.Data.([]float32)
	names, ok2 := c.Data.([][]byte)
	if !ok1 || !ok2 || len(p.Shape) != 2 || len(c.Shape) != 2 || p.Shape[0] != c.Shape[0] || p.Shape[1] != c.Shape[1] {
		return nil, errorf(graph.CodeInternal, "%s answered probabilities %v and classes %v: cannot tell unknown images", signature, p.Shape, c.Shape)
	}
	rows, k := int(p.Shape[0]), int(p.Shape[1])
	unknown := make([]bool, rows)
	class := make([][]byte, rows)
	for r := range rows {
		row := probs[r*k : (r+1)*k]
		if unknown[r] = m.reject.Unknown(row); unknown[r] {
			class[r] = []byte(contract.UnknownClass)
			continue
		}
		class[r] = names[r*k+evalmetrics.Argmax(row)]
	}
	out[contract.OutUnknown] = &Column{DType: graph.Bool, Shape: []int64{int64(rows)}, Data: unknown}
	out[contract.OutClass] = &Column{DType: graph.String, Shape: []int64{int64(rows)}, Data: class}
	return out, nil
}
