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

	"github.com/xcept/xcept/internal/contract"
	"github.com/xcept/xcept/internal/pyenv"
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
	return signatureONNXKey(dir, "", opset)
}

// signatureONNXKey is SavedModelONNXKey of another signature than the
// serving model's float one ("": that one, whose keys stay as they were).
func signatureONNXKey(dir, signature string, opset int) (string, error) {
	h := sha256.New()
	if signature != "" {
		fmt.Fprintf(h, "signature %s\n", signature)
	}
	for _, f := range []string{contract.SavedModelFile, contract.VariablesIndex} {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %d\n", f, len(data))
		h.Write(data)
	}
	shards, _ := filepath.Glob(filepath.Join(dir, contract.VariablesPrefix+".data-*"))
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
	return cachedONNX(ctx, dir, "", progress)
}

// CachedFeaturesONNX returns the ONNX conversion of the features signature
// (uint8 images → the frozen base's pooled features) of the trainer
// SavedModel in dir, converting it first (reported true) when the cache has
// none for that SavedModel: once per model, keyed like CachedSavedModelONNX
// (its graph, its variables' index and data sizes, the converter, the opset).
func CachedFeaturesONNX(ctx context.Context, dir string, progress io.Writer) (string, bool, error) {
	return cachedONNX(ctx, dir, contract.SigFeatures, progress)
}

// HasFeaturesONNX says whether CachedFeaturesONNX has the trainer in dir
// converted already.
func HasFeaturesONNX(dir string) (bool, error) {
	path, err := cachedONNXPath(dir, contract.SigFeatures)
	if err != nil {
		return false, err
	}
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular(), nil
}

// cachedONNXPath is where the conversion of dir's signature is cached.
func cachedONNXPath(dir, signature string) (string, error) {
	key, err := signatureONNXKey(dir, signature, DefaultONNXOpset)
	if err != nil {
		return "", fmt.Errorf("%s: %v", dir, err)
	}
	prefix := "savedmodel-"
	if signature != "" {
		prefix = signature + "-"
	}
	return filepath.Join(ONNXCacheDir(), prefix+key+".onnx"), nil
}

func cachedONNX(ctx context.Context, dir, signature string, progress io.Writer) (string, bool, error) {
	path, err := cachedONNXPath(dir, signature)
	if err != nil {
		return "", false, err
	}
	sig, what := contract.SigImages, "SavedModel"
	if signature != "" {
		sig, what = signature, "model, "+signature
	}
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
		fmt.Fprintf(progress, "converting %s to ONNX for onnxruntime (once per %s; cached as %s)\n", dir, what, path)
	}
	// Converted under a name of this process's, then renamed: two servers
	// converting the same SavedModel never write one file.
	tmp := fmt.Sprintf("%s.%d.tmp.onnx", path, os.Getpid())
	defer os.Remove(tmp)
	if err := convertSignatureONNX(ctx, dir, sig, tmp, DefaultONNXOpset, progress); err != nil {
		return "", false, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", false, err
	}
	return path, true, nil
}
