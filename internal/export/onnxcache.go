package export

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"

	"github.com/xcept/xcept/internal/pyenv"
	"github.com/xcept/xcept/internal/versions"
	"github.com/xcept/xcept/scripts"
)

// ONNXCacheDir is where conversions of SavedModel exports are cached:
// xcept's cache folder ($XCEPT_CACHE, else the user cache folder), onnx/.
// An export folder is never written to: it may be read-only, or shared.
func ONNXCacheDir() string { return filepath.Join(pyenv.CacheDir(), "onnx") }

// SavedModelONNXKey is the cache key of a SavedModel folder's conversion:
// a hash of its graph (saved_model.pb), its variables' index (which holds
// every tensor's CRC32C and size, so changed weights change it), the data
// files' names and sizes, the converter scripts and the opset.
func SavedModelONNXKey(dir string, opset int) (string, error) {
	h := sha256.New()
	for _, f := range []string{versions.SavedModelFile, versions.VariablesIndex} {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %d\n", f, len(data))
		h.Write(data)
	}
	shards, _ := filepath.Glob(filepath.Join(dir, "variables", "variables.data-*"))
	for _, s := range shards {
		st, err := os.Stat(s)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "data %s %d\n", filepath.Base(s), st.Size())
	}
	return ConversionKey(h, opset)
}

// ConversionKey ends a conversion cache key: the converter's scripts and the
// opset are hashed into h after the caller's model identity, so that a
// change of either gives a fresh conversion.
func ConversionKey(h hash.Hash, opset int) (string, error) {
	for _, name := range []string{ONNXConverter, "verify_common.py"} {
		script, err := scripts.FS.ReadFile(name)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "script %s %d\n", name, len(script))
		h.Write(script)
	}
	fmt.Fprintf(h, "opset %d\n", opset)
	return hex.EncodeToString(h.Sum(nil))[:20], nil
}

// CachedSavedModelONNX returns the ONNX conversion of the serving
// SavedModel in dir (an export's version folder), converting it first
// (reported true) when the cache has none for it. A conversion that would
// not fit in memory is not started (CheckONNXFits).
func CachedSavedModelONNX(ctx context.Context, dir string, progress io.Writer) (string, bool, error) {
	key, err := SavedModelONNXKey(dir, DefaultONNXOpset)
	if err != nil {
		return "", false, fmt.Errorf("%s: %v", dir, err)
	}
	path := filepath.Join(ONNXCacheDir(), "savedmodel-"+key+".onnx")
	if st, err := os.Stat(path); err == nil && st.Mode().IsRegular() {
		return path, false, nil
	}
	if err := CheckONNXFits(); err != nil {
		return "", false, err
	}
	if err := os.MkdirAll(ONNXCacheDir(), 0o755); err != nil {
		return "", false, err
	}
	if progress != nil {
		fmt.Fprintf(progress, "converting %s to ONNX for onnxruntime (once per SavedModel; cached as %s)\n", dir, path)
	}
	// Converted under a name of this process's, then renamed: two servers
	// converting the same SavedModel never write one file.
	tmp := fmt.Sprintf("%s.%d.tmp.onnx", path, os.Getpid())
	defer os.Remove(tmp)
	if err := ConvertSavedModelONNX(ctx, dir, tmp, DefaultONNXOpset, progress); err != nil {
		return "", false, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", false, err
	}
	return path, true, nil
}
