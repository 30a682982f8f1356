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
