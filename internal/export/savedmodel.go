package export

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/xcept/xcept/internal/contract"
	"github.com/xcept/xcept/internal/fault"
	"github.com/xcept/xcept/internal/filecopy"
	"github.com/xcept/xcept/internal/graph"
	"github.com/xcept/xcept/internal/model"
	"github.com/xcept/xcept/internal/trust"
)

// The SavedModel export needs no Python. A SavedModel's variables/ folder
// is exactly a checkpoint with the prefix variables/variables, so the
// export copies the serving model's graph (saved_model.pb, fingerprint.pb,
// assets/) and writes the best weights, restored into the serving session,
// through its own SaverDef save op. The serving model's variables share
// their checkpoint keys with the trainer's, which is what lets the run's
// checkpoint restore into it.

// writeSavedModel writes the serving model of ref, with the weights its
// session holds now, to dst (an existing, empty folder).
func writeSavedModel(ref *model.Model, dst string) error {
	serving := filepath.Join(ref.Dir, model.ServingDir)
	entries, err := os.ReadDir(serving)
	if err != nil {
		return fault.New(fault.ToolFailed, "%v", err)
	}
	for _, e := range entries {
		src, target := filepath.Join(serving, e.Name()), filepath.Join(dst, e.Name())
		switch {
		case e.Name() == contract.VariablesDir: // written below, from the session
		case e.IsDir():
			if err := os.Mkdir(target, 0o755); err != nil {
				return err
			}
			if err := filecopy.Tree(src, target, filecopy.File); err != nil {
				return err
			}
		case e.Type().IsRegular():
			if err := filecopy.File(src, target); err != nil {
				return err
			}
		}
	}
	if err := os.Mkdir(filepath.Join(dst, contract.VariablesDir), 0o755); err != nil {
		return err
	}
	if err := ref.Session.Save(filepath.Join(dst, contract.VariablesPrefix)); err != nil {
		return fault.New(fault.ToolFailed, "saving the best weights into the SavedModel: %v", err)
	}
	if err := ensureLabels(filepath.Join(dst, contract.LabelsAsset), ref.Info.Classes); err != nil {
		return err
	}
	if err := refreshFingerprint(dst); err != nil {
		return err
	}
	// Written last, for the graph as copied (a serving model built before
	// xcept marked its models gets its mark here).
	return trust.WriteMark(dst)
}

// ensureLabels makes path hold the class names, one per line in label
// order. Serving models built before they carried labels get the file
// written here; one that disagrees with model.json is refused.
func ensureLabels(path string, classes []string) error {
	want := string(contract.LabelsText(classes))
	got, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		return os.WriteFile(path, []byte(want), 0o644)
	}
	if err != nil {
		return err
	}
	if string(got) != want {
		return fault.New(fault.NotAModel, "the serving model's %s lists %q, model.json %q: rebuild the model with `xcept prepare`",
			contract.LabelsAsset, strings.Fields(string(got)), classes)
	}
	return nil
}

func (j *job) exportSavedModel(ctx context.Context) error {
	dst := j.st.Tmp
	if err := writeSavedModel(j.ref, dst); err != nil {
		return err
	}
	j.res.Artefact, j.res.Labels = "", contract.LabelsAsset
	size, err := dirSize(dst)
	if err != nil {
		return err
	}
	j.p.printf("wrote the SavedModel (%s); loading it back through the C API", formatBytes(size))
	s, err := graph.LoadSavedModel(dst, j.o.Session)
	if err != nil {
		return fault.New(fault.ToolFailed, "the exported SavedModel does not load: %v", err)
	}
	defer s.Close()
	for _, key := range []string{contract.SigServing, contract.SigImages} {
		if _, err := s.Signature(key); err != nil {
			return fault.New(fault.NotAModel, "the serving model lacks signature %s (%v): rebuild the model with `xcept prepare`", key, err)
		}
	}
	j.res.Signatures = savedModelSignatures(s.MetaGraph, j.src.info.ImageSize)
	classes := j.src.info.Classes
	candidates := []candidate{
		capiCandidate(capiSignature{Session: s, Signature: contract.SigServing, Input: contract.InImageBytes, Kind: inputEncoded, Classes: classes}, size, j),
		capiCandidate(capiSignature{Session: s, Signature: contract.SigImages, Input: contract.InImages, Kind: inputFloat, Classes: classes}, size, j),
	}
	return j.verify(ctx, candidates)
}

func capiCandidate(c capiSignature, size int64, j *job) candidate {
	return candidate{
		check: Check{Name: "savedmodel " + c.Signature, Runtime: runtimeCAPI, Input: c.Kind, SizeBytes: size},
		run: func(ctx context.Context) (*prediction, error) {
			return c.predict(ctx, j.sample, j.o.BatchSize)
		},
	}
}

// savedModelSignatures describes the exported signatures, sorted by key,
// serving_default first.
func savedModelSignatures(mg *graph.MetaGraph, size int) []SignatureSpec {
	keys := make([]string, 0, len(mg.Signatures))
	for k := range mg.Signatures {
		if !strings.HasPrefix(k, "__") { // __saved_model_init_op: TensorFlow's own, not callable
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b string) int {
		switch {
		case a == contract.SigServing:
			return -1
		case b == contract.SigServing:
			return 1
		}
		return strings.Compare(a, b)
	})
	var specs []SignatureSpec
	for _, k := range keys {
		sig := mg.Signatures[k]
		spec := SignatureSpec{Name: k}
		for _, in := range sig.InputKeys() {
			spec.Inputs = append(spec.Inputs, tensorSpec(in, sig.Inputs[in]))
		}
		for _, out := range sig.OutputKeys() {
			spec.Outputs = append(spec.Outputs, tensorSpec(out, sig.Outputs[out]))
		}
		specs = append(specs, spec.annotated(size))
	}
	return specs
}

func tensorSpec(key string, ti graph.TensorInfo) TensorSpec {
	return TensorSpec{Name: key, DType: ti.DType.String(), Shape: ti.Shape}
}
