// Package contract is the Go side of the model contract that
// scripts/xcept_model.py states on the Python side: the names of the
// SavedModels' signatures, their input and output keys, where the class
// names live, the one rule by which a labels file is read and written, and
// the one check that a model fits the data it is used with. Every package
// that runs or writes a model (model, train, infer, export, serve) and every
// one that reads labels (dataset, metrics) takes the names from here. It is
// pure Go: no TensorFlow needed.
package contract

import (
	"bytes"
	"errors"
	"os"
	"slices"
	"strings"

	"github.com/xcept/xcept/internal/fault"
)

// Signatures of the trainer SavedModel (model/trainer/).
const (
	SigTrainStep     = "train_step"
	SigFinetuneStep  = "finetune_step"
	SigTrainHeadStep = "train_head_step"
	SigEvalStep      = "eval_step"
	SigEvalHeadStep  = "eval_head_step"
	SigPredict       = "predict"
	SigFeatures      = "features"
	SigExplain       = "explain"
	// SigSetTemperature sets the temperature predict, the serving
	// signatures and explain divide the logits by (builder 3 and later).
	SigSetTemperature = "set_temperature"
	// SigSetFeatureMask sets which feature blocks the head reads, as a 0/1
	// mask over the concatenated features (builder 5 and later).
	SigSetFeatureMask = "set_feature_mask"
)

// Signatures of the serving SavedModel (model/serving/ and every SavedModel
// export): encoded images for REST clients, float pixels for callers that
// decode themselves. SigPredict is there too, on uint8 pixels.
const (
	SigServing = "serving_default"
	SigImages  = "predict_images"
)

// Input keys.
const (
	InImages         = "images"      // uint8 (float32 for predict_images) [batch, S, S, 3] RGB pixels
	InImageBytes     = "image_bytes" // string [batch]: encoded image files (serving_default)
	InFeatures       = "features"    // float32 [batch, feature_dim]: pooled base features
	InLabels         = "labels"      // int32 [batch]
	InSampleWeight   = "sample_weight"
	InLearningRate   = "learning_rate"
	InLabelSmoothing = "label_smoothing"
	InSeed           = "seed"
	InClassIndex     = "class_index" // int32 [batch]: Grad-CAM's class, -1 for the predicted one
	InTemperature    = "temperature" // float32 scalar > 0 (set_temperature)
	InFeatureMask    = "mask"        // float32 [feature_dim] of 0 and 1 (set_feature_mask)
)

// Output keys.
const (
	OutProbabilities = "probabilities" // float32 [batch, classes]
	OutClasses       = "classes"       // string [batch, classes]: the names, in labels order
	OutLoss          = "loss"
	OutAccuracy      = "accuracy"
	OutFeatures      = "features"
	OutHeatmap       = "heatmap"
	OutClassIndex    = "class_index"
	OutLogits        = "logits"      // float32 [batch, classes]: uncalibrated (eval_step, eval_head_step)
	OutTemperature   = "temperature" // float32 scalar (set_temperature)
	OutFeatureMask   = "feature_mask"
	// Added by `xcept serve` with serve.reject to serving_default's answer,
	// computed from probabilities and classes (not in the graph).
	OutUnknown = "unknown" // bool [batch]: the top probability is below the "unknown" threshold
	OutClass   = "class"   // string [batch]: the top class's name, or "unknown"
)

// UnknownClass is the answer for an image below the "unknown" threshold.
const UnknownClass = "unknown"

// Where the class names are kept.
const (
	// LabelsFile is a dataset's (and a TFLite or ONNX export's) labels file.
	LabelsFile = "labels.txt"
	// LabelsAsset is the serving SavedModel's labels file, inside the model.
	LabelsAsset = "assets/" + LabelsFile
)

// TensorFlow's SavedModel folder layout, the same for the trainer, the
// serving model and every SavedModel export: the graph, and the variables
// checkpoint, whose prefix is VariablesPrefix (its .index and .data-* files).
const (
	SavedModelFile  = "saved_model.pb"
	VariablesDir    = "variables"
	VariablesPrefix = VariablesDir + "/variables"
	VariablesIndex  = VariablesPrefix + ".index"
)

// ParseLabels reads a labels file's content, the one rule for every labels
// file xcept reads: one class name per line, the line order being the class
// index; a UTF-8 byte order mark, surrounding spaces, CRLF line ends and
// trailing blank lines are ignored; a blank line in the middle, a duplicate
// name or no name at all is an error naming the file (name) and line.
func ParseLabels(data []byte, name string) ([]string, error) {
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	lines := strings.Split(strings.TrimRight(string(data), "\r\n \t"), "\n")
	var names []string
	seen := map[string]int{}
	for i, line := range lines {
		label := strings.TrimSpace(line)
		switch {
		case label == "" && len(lines) == 1:
			return nil, fault.New(fault.BadData, "labels file %s: no class names (want one per line)", name)
		case label == "":
			return nil, fault.New(fault.BadData, "labels file %s line %d: blank line (want one class name per line)", name, i+1)
		case seen[label] > 0:
			return nil, fault.New(fault.BadData, "labels file %s line %d: class %q already on line %d", name, i+1, label, seen[label])
		}
		seen[label] = i + 1
		names = append(names, label)
	}
	return names, nil
}

// ReadLabels reads a labels file by ParseLabels's rule. A missing or
// unreadable file is a data error naming it; os.ErrNotExist stays visible
// to errors.Is.
func ReadLabels(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return nil, fault.New(fault.BadData, "labels file %s: %w", path, pe.Err)
		}
		return nil, fault.New(fault.BadData, "labels file %s: %v", path, err)
	}
	return ParseLabels(data, path)
}

// LabelsText is the content of a labels file for classes: one name per
// line, each line ended by a newline.
func LabelsText(classes []string) []byte {
	var b strings.Builder
	for _, c := range classes {
		b.WriteString(c + "\n")
	}
	return []byte(b.String())
}

// Fit describes a model or a dataset for CheckFit: its class names in label
// order, its image size (0: not known, not compared) and what to call it in
// a message.
type Fit struct {
	Name      string
	Classes   []string
	ImageSize int
	// Arch is the backbone (model.arch) of a model, or the one a run's
	// checkpoints were trained with; "" is not known, not compared.
	Arch string
}

// CheckFit refuses a model whose classes are not the data's, in the same
// order (every prediction would be mislabelled), or whose image size is not
// the data's when both are known. It is a data error (exit 4): the data is
// what does not fit the model. hint says what to do.
func CheckFit(model, data Fit, hint string) error {
	if !slices.Equal(model.Classes, data.Classes) {
		return fault.New(fault.BadData, "%s has %d classes (%s) but %s has %d (%s): %s",
			model.Name, len(model.Classes), ShortList(model.Classes), data.Name, len(data.Classes), ShortList(data.Classes), hint)
	}
	if model.Arch != "" && data.Arch != "" && model.Arch != data.Arch {
		return fault.New(fault.BadData, "%s is built on %s but %s holds %s weights (its checkpoints cannot load into it): %s", model.Name, model.Arch, data.Name, data.Arch, hint)
	}
	if model.ImageSize > 0 && data.ImageSize > 0 && model.ImageSize != data.ImageSize {
		return fault.New(fault.BadData, "%s takes %d px images but %s holds %d px ones: %s", model.Name, model.ImageSize, data.Name, data.ImageSize, hint)
	}
	return nil
}

// ShortList shortens a class list for a one-line message.
func ShortList(names []string) string {
	const shown = 6
	if len(names) <= shown {
		return strings.Join(names, ", ")
	}
	return strings.Join(names[:shown], ", ") + ", ..."
}
