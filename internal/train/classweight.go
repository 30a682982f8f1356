package train

import (
	"os"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/xcept/xcept/internal/fault"
)

// ClassWeights resolves train.class_weight for the classes (in label order):
// "none" gives nil (every sample weighs 1), "balanced" the dataset's
// balanced weights (n / (classes × n_class), as scikit-learn computes them),
// anything else is a YAML or JSON file mapping class names to weights;
// classes it does not name weigh 1.
func ClassWeights(spec string, classes []string, balanced []float64) ([]float32, error) {
	switch spec {
	case "none":
		return nil, nil
	case "balanced":
		w := make([]float32, len(balanced))
		for i, b := range balanced {
			w[i] = float32(b)
		}
		return w, nil
	}
	data, err := os.ReadFile(spec)
	if err != nil {
		return nil, fault.New(fault.BadValue, "train.class_weight %s: %v (use none, balanced or a YAML/JSON file of class: weight)", spec, err)
	}
	var byName map[string]float64
	if err := yaml.Unmarshal(data, &byName); err != nil {
		return nil, fault.New(fault.BadValue, "train.class_weight %s: not a map of class name to weight: %v", spec, oneLine(err.Error()))
	}
	index := map[string]int{}
	for i, c := range classes {
		index[c] = i
	}
	w := make([]float32, len(classes))
	for i := range w {
		w[i] = 1
	}
	for name, v := range byName {
		i, ok := index[name]
		if !ok {
			return nil, fault.New(fault.BadValue, "train.class_weight %s: unknown class %q (classes: %s)", spec, name, strings.Join(classes, ", "))
		}
		if !(v >= 0) {
			return nil, fault.New(fault.BadValue, "train.class_weight %s: class %q has weight %v; weights must be >= 0", spec, name, v)
		}
		w[i] = float32(v)
	}
	return w, nil
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
