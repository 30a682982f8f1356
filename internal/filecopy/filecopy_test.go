package filecopy

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestTree(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	os.MkdirAll(filepath.Join(src, "variables"), 0o755)
	os.WriteFile(filepath.Join(src, "saved_model.pb"), []byte("graph"), 0o644)
	os.WriteFile(filepath.Join(src, "variables", "variables.index"), []byte("index"), 0o644)
	for name, copy := range map[string]func(string, string) error{"File": File, "LinkOrFile": LinkOrFile} {
		to := filepath.Join(dst, name)
		os.Mkdir(to, 0o755)
		if err := Tree(src, to, copy); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for rel, want := range map[string]string{"saved_model.pb": "graph", "variables/variables.index": "index"} {
			if got, err := os.ReadFile(filepath.Join(to, rel)); err != nil || string(got) != want {
				t.Errorf("%s: %s = %q, %v; want %q", name, rel, got, err, want)
			}
		}
		// A second copy into the same folder never overwrites.
		if err := copy(filepath.Join(src, "saved_model.pb"), filepath.Join(to, "saved_model.pb")); !errors.Is(err, fs.ErrExist) {
			t.Errorf("%s over an existing file: %v, want it to exist already", name, err)
		}
	}
}
