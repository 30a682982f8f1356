package export

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/xcept/xcept/internal/calibrate"
	"github.com/xcept/xcept/internal/contract"
	"github.com/xcept/xcept/internal/fault"
	"github.com/xcept/xcept/internal/pyenv"
)

// TFLite and ONNX are converted by scripts of the project's venv from the
// same SavedModel the savedmodel format publishes, written to the scratch
// folder first. Both take the float signature predict_images: neither
// runtime can decode image bytes.

// Scripts run for each format.
var (
	converters = map[string]string{TFLite: "export_tflite.py", ONNX: "export_onnx.py"}
	verifiers  = map[string]string{TFLite: "verify_tflite.py", ONNX: "verify_onnx.py"}
	runtimes   = map[string]string{TFLite: runtimeTFLite, ONNX: runtimeONNX}
)

func (j *job) exportConverted(ctx context.Context) error {
	sm := filepath.Join(j.work, "savedmodel")
	if err := os.Mkdir(sm, 0o755); err != nil {
		return err
	}
	if err := writeSavedModel(j.ref, sm); err != nil {
		return err
	}
	file := j.o.artefactFile(j.name)
	artefact := filepath.Join(j.st.Tmp, file)
	args, err := j.converterArgs(ctx, sm, artefact)
	if err != nil {
		return err
	}
	j.p.printf("converting with %s", converters[j.o.Format])
	started := time.Now()
	stdout, err := pyenv.Run(ctx, converters[j.o.Format], args, j.p.writer())
	if err != nil {
		return pyenv.Failure(ctx, "", err)
	}
	var spec SignatureSpec
	if err := json.Unmarshal(lastLine(stdout), &spec); err != nil {
		return fault.New(fault.ToolFailed, "%s printed %q, not the model's input and output spec", converters[j.o.Format], lastLine(stdout))
	}
	j.res.Signatures = []SignatureSpec{spec.annotated(j.src.info.ImageSize)}
	if err := os.WriteFile(filepath.Join(j.st.Tmp, contract.LabelsFile), contract.LabelsText(j.src.info.Classes), 0o644); err != nil {
		return err
	}
	j.res.Artefact, j.res.Labels = file, contract.LabelsFile
	if _, err := os.Stat(artefact); err != nil {
		return fault.New(fault.ToolFailed, "%s wrote no %s: %v", converters[j.o.Format], file, err)
	}
	switch j.o.Format {
	case TFLite:
		if err := j.writeMetadata(ctx, artefact); err != nil {
			return err
		}
	case ONNX:
		if err := appendONNXMetadata(artefact, calibrationProps(j.res.Calibration)); err != nil {
			return err
		}
	}
	info, err := os.Stat(artefact)
	if err != nil {
		return err
	}
	j.p.printf("wrote %s (%s) in %.1fs", file, formatBytes(info.Size()), time.Since(started).Seconds())
	return j.verify(ctx, []candidate{j.pythonCandidate(artefact, info.Size())})
}

// converterArgs are the converter's flags; for int8 they include the
// calibration images, drawn from the training split in record order
// (prepare stores each split's records shuffled).
func (j *job) converterArgs(ctx context.Context, savedModel, artefact string) ([]string, error) {
	args := []string{"--saved-model", savedModel, "--signature", contract.SigImages, "--out", artefact}
	switch j.o.Format {
	case ONNX:
		return append(args, "--opset", strconv.Itoa(j.o.ONNXOpset)), nil
	}
	args = append(args, "--quantize", j.o.Quantize)
	if j.o.Quantize != QuantInt8 {
		return args, nil
	}
	info := j.src.info
	rep, err := loadSample(ctx, j.src.trainShards, info.ImageSize, info.NumClasses, j.o.RepresentativeImages, false)
	if err != nil {
		return nil, err
	}
	if rep.N() == 0 {
		return nil, fault.New(fault.BadData, "dataset %s has no training images to calibrate int8 with", j.src.run.Info.Dataset)
	}
	path := filepath.Join(j.work, "representative.npy")
	if err := writeNpyUint8(path, []int{rep.N(), rep.Size, rep.Size, 3}, rep.Pixels); err != nil {
		return nil, err
	}
	j.p.printf("calibrating int8 on %d training images", rep.N())
	return append(args, "--representative", path), nil
}

// pythonCandidate runs the artefact in its own runtime on the sample.
func (j *job) pythonCandidate(artefact string, size int64) candidate {
	name := j.o.Format + " " + j.o.Quantize
	if j.o.Format == TFLite && j.o.Quantize == QuantNone {
		name = "tflite float32"
	} else if j.o.Format == ONNX {
		name = "onnx"
	}
	input := inputFloat
	if j.o.Quantize == QuantInt8 {
		input = inputUint8
	}
	return candidate{
		check: Check{Name: name, Runtime: runtimes[j.o.Format], Input: input, SizeBytes: size},
		run: func(ctx context.Context) (*prediction, error) {
			images := filepath.Join(j.work, "images.npy")
			s := j.sample
			if err := writeNpyUint8(images, []int{s.N(), s.Size, s.Size, 3}, s.Pixels); err != nil {
				return nil, err
			}
			rt := pythonRuntime{Script: verifiers[j.o.Format], Model: artefact, Images: images, WorkDir: j.work, Threads: j.o.threads()}
			return rt.predict(ctx, s.N(), len(j.src.info.Classes), j.o.BatchSize, j.p)
		},
	}
}

// metadataScript writes TFLite Model Metadata with MediaPipe's writer.
const metadataScript = "tflite_metadata.py"

// writeMetadata puts TFLite Model Metadata (name, description, the labels as
// an associated file, the input's normalisation, the output as probabilities)
// into the .tflite with the MediaPipe venv, before verification, so the file
// verified is the file published. Without that venv the export goes on
// without metadata and says so on one warning line; export.json records
// which ("tflite_metadata").
func (j *job) writeMetadata(ctx context.Context, artefact string) error {
	py, err := pyenv.MediaPipePython()
	if err != nil {
		fmt.Fprintf(os.Stderr, "warning: %s has no TFLite Model Metadata (MediaPipe Tasks cannot load it): %v\n", filepath.Base(artefact), err)
		return nil
	}
	info := j.src.info
	desc := fmt.Sprintf("xcept Xception image classifier of %d classes (dataset %s), %s; input RGB pixels 0..255 squash-resized to %d×%d, output class probabilities",
		len(info.Classes), j.src.run.Info.Dataset, j.describe(), info.ImageSize, info.ImageSize) + calibrationNote(j.res.Calibration)
	args := []string{"--model", artefact, "--labels", filepath.Join(j.st.Tmp, contract.LabelsFile), "--name", j.name, "--description", desc}
	if _, err := pyenv.RunWith(ctx, py, metadataScript, args, j.p.writer()); err != nil {
		return pyenv.Failure(ctx, "", err)
	}
	j.res.TFLiteMetadata = true
	j.p.printf("wrote TFLite Model Metadata (MediaPipe's writer: labels, normalisation, probabilities)")
	return nil
}

// calibrationNote is what a TFLite description says of the calibration.
func calibrationNote(c *calibrate.Deployed) string {
	if c == nil {
		return ""
	}
	note := fmt.Sprintf(", calibrated (temperature %.4g)", c.Temperature)
	if r := c.Reject; r != nil {
		note += fmt.Sprintf("; answer \"unknown\" below %s (%s; accepts %.0f%% of the validation images)", r.Describe(), scoreNote(r.Score), 100*r.Accept)
	}
	return note
}

// scoreNote defines a rejection score in a description.
func scoreNote(score string) string {
	if score == calibrate.ScoreLogOdds {
		return "log-odds: log(top probability / the sum of the other probabilities)"
	}
	return "the top probability"
}
