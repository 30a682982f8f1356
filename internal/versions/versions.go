// Package versions owns TF Serving's version folders: a model's base folder
// holds one sub-folder per version, named by its number (BASE/1/, BASE/2/,
// ...), each a SavedModel. xcept export writes them, xcept serve and xcept
// predict --model read them, all by the rules here.
//
// A version name is decimal digits only, any non-negative int64 (TF Serving
// serves a folder named 0, so serve and predict do too); export never writes
// version 0, numbering from 1. A version folder is complete once it holds
// saved_model.pb and variables/variables.index: an export writes them last
// (or renames the whole folder into place), so a folder still being copied
// in is not read half-written. Other names (hidden temporary folders, files)
// are ignored, as TF Serving ignores them.
package versions

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/xcept/xcept/internal/contract"
)

// completeFiles are the files that make a version folder complete.
var completeFiles = []string{contract.SavedModelFile, contract.VariablesIndex}

// Version is one complete version folder.
type Version struct {
	Number int64
	Dir    string
	// Stamp is the sizes and modification times of the files that make the
	// folder complete: it changes when the version is rewritten.
	Stamp string
}

// Name is the folder name of version n.
func Name(n int64) string { return strconv.FormatInt(n, 10) }

// Parse parses a version folder name: decimal digits only (no sign), within
// int64.
func Parse(name string) (int64, bool) {
	if name == "" {
		return 0, false
	}
	for _, c := range name {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(name, 10, 64)
	if err != nil {
		return 0, false
	}
	return n, true
}

// Scan lists the complete version folders of base, newest first.
func Scan(base string) ([]Version, error) { return ScanFunc(base, Complete) }

// ScanFunc is Scan with complete deciding which folders are complete
// versions (Complete, CompleteONNX, CompleteAny).
func ScanFunc(base string, complete func(dir string) (string, bool)) ([]Version, error) {
	entries, err := os.ReadDir(base)
	if err != nil {
		return nil, err
	}
	var out []Version
	for _, e := range entries {
		n, ok := Parse(e.Name())
		if !ok {
			continue
		}
		v := Version{Number: n, Dir: filepath.Join(base, e.Name())}
		if v.Stamp, ok = complete(v.Dir); ok {
			out = append(out, v)
		}
	}
	slices.SortFunc(out, func(a, b Version) int { return cmp.Compare(b.Number, a.Number) })
	return out, nil
}

// Newest is the newest complete version folder of base; ok is false when
// base has none (or cannot be read).
func Newest(base string) (Version, bool) {
	vs, err := Scan(base)
	if err != nil || len(vs) == 0 {
		return Version{}, false
	}
	return vs[0], true
}

// ONNXLabels is the labels file beside an ONNX export's model.
const ONNXLabels = "labels.txt"

// ONNXModel is the one .onnx file of an ONNX export's version folder
// (NAME.onnx, as xcept export --format onnx writes it), or "" when there
// is not exactly one.
func ONNXModel(dir string) string {
	m, _ := filepath.Glob(filepath.Join(dir, "*.onnx"))
	if len(m) != 1 {
		return ""
	}
	return m[0]
}

// CompleteONNX says whether dir is a complete ONNX version (one .onnx file
// and labels.txt), and returns their stamp.
func CompleteONNX(dir string) (string, bool) {
	model := ONNXModel(dir)
	if model == "" {
		return "", false
	}
	var stamp string
	for _, f := range []string{filepath.Base(model), ONNXLabels} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil || !st.Mode().IsRegular() {
			return "", false
		}
		stamp += fmt.Sprintf("%s:%d:%d;", f, st.Size(), st.ModTime().UnixNano())
	}
	return stamp, true
}

// CompleteAny is a complete SavedModel version or, failing that, a
// complete ONNX one (what serve takes on onnxruntime).
func CompleteAny(dir string) (string, bool) {
	if stamp, ok := Complete(dir); ok {
		return stamp, true
	}
	return CompleteONNX(dir)
}

// Complete says whether dir holds the files of a complete version, and
// returns their stamp.
func Complete(dir string) (string, bool) {
	var stamp string
	for _, f := range completeFiles {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil || !st.Mode().IsRegular() {
			return "", false
		}
		stamp += fmt.Sprintf("%s:%d:%d;", f, st.Size(), st.ModTime().UnixNano())
	}
	return stamp, true
}

// Next is the number a new version of base gets: one more than the largest
// version folder, complete or not (one being written is taken), and 1 when
// there is none or base does not exist yet.
func Next(base string) (int64, error) {
	entries, err := os.ReadDir(base)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, err
	}
	var latest int64
	for _, e := range entries {
		if n, ok := Parse(e.Name()); ok && e.IsDir() && n > latest {
			latest = n
		}
	}
	return latest + 1, nil
}
