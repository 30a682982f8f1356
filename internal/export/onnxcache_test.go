package export

import (
	"os"
	"path/filepath"
	"testing"
)

// A SavedModel's conversion key changes with its graph, its weights (the
// variables index) and its data files' sizes, and with nothing else: a
// cached conversion is never used for a SavedModel it was not made from.
func TestSavedModelONNXKey(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("saved_model.pb", "graph")
	write("variables/variables.index", "index")
	write("variables/variables.data-00000-of-00001", "weights")
	key := func() string {
		k, err := SavedModelONNXKey(dir, DefaultONNXOpset)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	k0 := key()
	if key() != k0 {
		t.Fatal("the key is not stable")
	}
	if k, _ := SavedModelONNXKey(dir, DefaultONNXOpset+1); k == k0 {
		t.Error("another opset has the same key")
	}
	for _, change := range []struct{ file, content string }{
		{"saved_model.pb", "graph 2"},
		{"variables/variables.index", "index 2"},
		{"variables/variables.data-00000-of-00001", "weights, longer"},
	} {
		write(change.file, change.content)
		k := key()
		if k == k0 {
			t.Errorf("changing %s left the key %s", change.file, k)
		}
		k0 = k
	}
	os.Remove(filepath.Join(dir, "variables", "variables.index"))
	if _, err := SavedModelONNXKey(dir, DefaultONNXOpset); err == nil {
		t.Error("a SavedModel without its variables index has a key")
	}
}

// The trainer's features conversion has a key of its own (the signature is
// hashed in), the serving model's keeps its old one, and HasFeaturesONNX
// finds a conversion only under its own name in xcept's cache folder.
func TestFeaturesONNXKey(t *testing.T) {
	t.Setenv("XCEPT_CACHE", t.TempDir())
	dir := t.TempDir()
	for name, content := range map[string]string{"saved_model.pb": "graph", "variables/variables.index": "index"} {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	serving, err := SavedModelONNXKey(dir, DefaultONNXOpset)
	if err != nil {
		t.Fatal(err)
	}
	features, err := signatureONNXKey(dir, "features", DefaultONNXOpset)
	if err != nil {
		t.Fatal(err)
	}
	if features == serving {
		t.Fatalf("the features conversion has the serving conversion's key %s", serving)
	}
	if ok, err := HasFeaturesONNX(dir); ok || err != nil {
		t.Fatalf("HasFeaturesONNX of an empty cache: %v, %v", ok, err)
	}
	os.MkdirAll(ONNXCacheDir(), 0o755)
	os.WriteFile(filepath.Join(ONNXCacheDir(), "savedmodel-"+features+".onnx"), nil, 0o644)
	if ok, _ := HasFeaturesONNX(dir); ok {
		t.Error("HasFeaturesONNX found the serving conversion's file name")
	}
	path, err := cachedONNXPath(dir, "features")
	if err != nil || filepath.Base(path) != "features-"+features+".onnx" {
		t.Fatalf("cachedONNXPath: %s, %v", path, err)
	}
	os.WriteFile(path, nil, 0o644)
	if ok, _ := HasFeaturesONNX(dir); !ok {
		t.Error("HasFeaturesONNX does not find the conversion")
	}
}
