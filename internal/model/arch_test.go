package model

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xcept/xcept/internal/cli"
	"github.com/xcept/xcept/internal/contract"
)

func TestArchTableHasXceptionFirstAndEveryIssueBackbone(t *testing.T) {
	names := ArchNames()
	want := []string{"xception", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large",
		"efficientnetv2_b0", "efficientnetv2_b1", "efficientnetv2_b2", "efficientnetv2_b3", "resnet50v2"}
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Fatalf("archs %v, want %v", names, want)
	}
	for _, a := range Archs() {
		if a.ImageSize < a.MinImageSize || a.Display == "" || len(a.Blocks) == 0 || len(a.Taps) == 0 {
			t.Errorf("%s: incomplete entry %+v", a.Name, a)
		}
		if a.Middle[len(a.Middle)-1] != a.Taps[len(a.Taps)-1] {
			t.Errorf("%s: the auto taps %v do not end at the deepest tap %s", a.Name, a.Middle, a.Taps[len(a.Taps)-1])
		}
	}
}

func TestUnknownArchIsAUsageErrorListingTheValidOnes(t *testing.T) {
	_, err := LookupArch("vgg16")
	if cli.KindOf(err) != cli.KindUsage {
		t.Fatalf("kind %v (%v), want usage", cli.KindOf(err), err)
	}
	msg := err.Error()
	if !strings.Contains(msg, "model.arch vgg16: unknown architecture; use one of xception, mobilenet_v2,") || strings.Contains(msg, "\n") {
		t.Errorf("message %q", msg)
	}
	s := Spec{Arch: "vgg16", Classes: []string{"a", "b"}, ImageSize: 96, Weights: "none", Precision: "float32", DenseUnits: 1}
	if err := s.Validate(); cli.KindOf(err) != cli.KindUsage {
		t.Errorf("Validate: %v", err)
	}
}

func TestResolveTakesTheArchitecturesDefaults(t *testing.T) {
	for _, c := range []struct {
		in             Spec
		arch, unfreeze string
		size           int
	}{
		{Spec{}, "xception", "block11", 299},
		{Spec{UnfreezeFrom: "auto"}, "xception", "block11", 299},
		{Spec{Arch: "mobilenet_v2"}, "mobilenet_v2", "block_11", 224},
		{Spec{Arch: "efficientnetv2_b3", ImageSize: 64, UnfreezeFrom: "block5"}, "efficientnetv2_b3", "block5", 64},
		{Spec{Arch: "resnet50v2"}, "resnet50v2", "conv5", 224},
	} {
		got, err := c.in.Resolve()
		if err != nil || got.Arch != c.arch || got.UnfreezeFrom != c.unfreeze || got.ImageSize != c.size {
			t.Errorf("Resolve(%+v) = %s %s %d (%v), want %s %s %d", c.in, got.Arch, got.UnfreezeFrom, got.ImageSize, err, c.arch, c.unfreeze, c.size)
		}
	}
}

func TestImageSizeMinimumIsTheArchitectures(t *testing.T) {
	base := Spec{Classes: []string{"a", "b"}, Weights: "none", Precision: "float32", DenseUnits: 1}
	for _, c := range []struct {
		arch string
		size int
		ok   bool
	}{{"xception", 64, false}, {"xception", 71, true}, {"mobilenet_v3_small", 32, true}, {"mobilenet_v3_small", 31, false}} {
		s := base
		s.Arch, s.ImageSize = c.arch, c.size
		err := s.Validate()
		if (err == nil) != c.ok {
			t.Errorf("%s %d px: %v", c.arch, c.size, err)
		}
		if err != nil && (cli.KindOf(err) != cli.KindUsage || !strings.Contains(err.Error(), "needs at least")) {
			t.Errorf("%s %d px: %v", c.arch, c.size, err)
		}
	}
	s := base
	s.ImageSize, s.HeadOptimizer = 96, "rmsprop"
	if err := s.Validate(); cli.KindOf(err) != cli.KindUsage || !strings.Contains(err.Error(), "train.optimizer rmsprop: unknown optimizer; use one of adam, adamw, sgd") {
		t.Errorf("optimizer: %v", err)
	}
}

func TestOlderModelsAreXceptionWithAdam(t *testing.T) {
	dir := t.TempDir()
	info := map[string]any{"format_version": 1, "builder_version": 5, "classes": []string{"a", "b"}, "num_classes": 2, "image_size": 96}
	data, _ := json.Marshal(info)
	if err := os.WriteFile(filepath.Join(dir, InfoFile), data, 0o644); err != nil {
		t.Fatal(err)
	}
	i, err := ReadInfo(dir)
	if err != nil {
		t.Fatal(err)
	}
	if i.Arch() != "xception" || i.Optimizer("train") != "adam" || i.Optimizer("finetune") != "adam" || !strings.HasPrefix(i.String(), "Xception 96 px") {
		t.Errorf("arch %s, optimizers %s %s, %s", i.Arch(), i.Optimizer("train"), i.Optimizer("finetune"), i)
	}
	if err := contract.CheckFit(i.Fit(), contract.Fit{Name: "run r", Classes: []string{"a", "b"}, Arch: "mobilenet_v2"}, "train a new run"); err == nil ||
		!strings.Contains(err.Error(), "the model is built on xception but run r holds mobilenet_v2 weights") {
		t.Errorf("another architecture's run: %v", err)
	}
	if err := contract.CheckFit(i.Fit(), contract.Fit{Name: "run r", Classes: []string{"a", "b"}}, "hint"); err != nil {
		t.Errorf("a run from before architectures: %v", err)
	}
}
