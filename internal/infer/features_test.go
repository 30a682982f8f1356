package infer

import (
	"bytes"
	"strings"
	"testing"

	"github.com/xcept/xcept/internal/graph"
	"github.com/xcept/xcept/internal/model"
	"github.com/xcept/xcept/internal/ort"
	"github.com/xcept/xcept/internal/testenv"
	"github.com/xcept/xcept/internal/testmodel"
)

// OpenFeatures' choice without converting anything: tensorflow is the
// model itself, silently; auto without a cached conversion is TensorFlow
// with one line saying why; an unknown engine is a usage error.
func TestOpenFeaturesChoice(t *testing.T) {
	if err := ort.Load(); err != nil {
		testenv.Unavailable(t, err.Error())
	}
	t.Setenv("XCEPT_CACHE", t.TempDir()) // no cached conversion
	m, err := model.Open(testmodel.Tiny(t), graph.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var said bytes.Buffer
	f, err := OpenFeatures(t.Context(), m, EngineOptions{Engine: EngineTensorFlow, Progress: &said})
	if err != nil || f.Engine != EngineTensorFlow || said.Len() != 0 {
		t.Fatalf("tensorflow: %+v, %v, said %q", f, err, said.String())
	}
	px := m.Info.ImageSize * m.Info.ImageSize * 3
	got, err := f.Features(make([]uint8, 2*px), 2)
	if err != nil || len(got) != 2*m.Info.FeatureDim {
		t.Fatalf("tensorflow features: %d values, %v; want %d", len(got), err, 2*m.Info.FeatureDim)
	}
	f, err = OpenFeatures(t.Context(), m, EngineOptions{Engine: EngineAuto, Progress: &said})
	if err != nil || f.Engine != EngineTensorFlow {
		t.Fatalf("auto, nothing cached: %+v, %v", f, err)
	}
	if s := said.String(); strings.Count(s, "\n") != 1 || !strings.Contains(s, "feature cache engine: tensorflow (runtime.engine auto") || !strings.Contains(s, "no cached conversion") {
		t.Errorf("auto, nothing cached, said %q: want one line saying TensorFlow and why", s)
	}
	if _, err := OpenFeatures(t.Context(), m, EngineOptions{Engine: "tf"}); err == nil {
		t.Error("engine tf: no error")
	}
}
