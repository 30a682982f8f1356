package dataset

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/xcept/xcept/internal/atomicfile"
	"github.com/xcept/xcept/internal/contract"
)

// File names inside a prepared dataset folder.
const (
	ManifestFile = "manifest.json" // written last: its presence marks a finished dataset
	ProblemsFile = "problems.json"
	ModelDir     = "model"
)

// ManifestFormat and ManifestVersion identify an xcept dataset; prepare only
// ever replaces a folder whose manifest carries them.
const (
	ManifestFormat  = "xcept-dataset"
	ManifestVersion = 1
)

// Manifest describes a prepared dataset completely: how it was made, the
// classes and their counts, the shards, and every kept file. It holds no
// time stamps or absolute paths, so the same data and seed give the same
// bytes on any machine.
type Manifest struct {
	Format      string       `json:"format"`
	Version     int          `json:"version"`
	Seed        int64        `json:"seed"`
	SplitSource string       `json:"split_source"` // "hash": drawn by prepare; "folders": train/ val/ test/ in the data
	Fractions   Fractions    `json:"split_fractions"`
	Image       ImageSpec    `json:"image"`
	Classes     []Class      `json:"classes"` // in label order
	Splits      []SplitFiles `json:"splits"`
	Problems    int          `json:"problems"` // entries in problems.json
	Files       []File       `json:"files"`    // kept files, by path
}

// Fractions are the shares of the drawn split.
type Fractions struct {
	Train float64 `json:"train"`
	Val   float64 `json:"val"`
	Test  float64 `json:"test"`
}

// ImageSpec says how the images in the records were made.
type ImageSpec struct {
	Size    int    `json:"size"`              // square side in pixels
	Resize  string `json:"resize"`            // squash | center-crop | pad
	Format  string `json:"format"`            // jpeg | png, as in image/format
	Quality int    `json:"quality,omitempty"` // JPEG quality
}

// Class is one label with its per-split counts. Weight is the "balanced"
// class weight on the training split, n_train / (classes × n_train_class),
// the formula of scikit-learn's compute_class_weight.
type Class struct {
	Name   string  `json:"name"`
	Label  int     `json:"label"`
	Train  int     `json:"train"`
	Val    int     `json:"val"`
	Test   int     `json:"test"`
	Weight float64 `json:"weight"`
}

// SplitFiles lists one split's TFRecord shards.
type SplitFiles struct {
	Name    string  `json:"name"`
	Records int     `json:"records"`
	Shards  []Shard `json:"shards"`
}

// Shard is one TFRecord file, relative to the dataset folder.
type Shard struct {
	File    string `json:"file"`
	Records int    `json:"records"`
}

// File is one kept input file. Width and Height are as people see it (EXIF
// orientation applied), Bytes its size on disk, SHA256 that of its bytes.
type File struct {
	Path        string   `json:"path"`
	SHA256      string   `json:"sha256"`
	Class       string   `json:"class"`
	Label       int      `json:"label"`
	Split       string   `json:"split"`
	Format      string   `json:"format"`
	Width       int      `json:"width"`
	Height      int      `json:"height"`
	Bytes       int64    `json:"bytes"`
	Conversions []string `json:"conversions,omitempty"`
}

// ReadManifest reads dir/manifest.json and checks that it is an xcept
// dataset this version understands.
func ReadManifest(dir string) (*Manifest, error) {
	data, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, ManifestFile), err)
	}
	if m.Format != ManifestFormat {
		return nil, fmt.Errorf("%s: not an xcept dataset manifest", filepath.Join(dir, ManifestFile))
	}
	if m.Version != ManifestVersion {
		return nil, fmt.Errorf("%s: dataset version %d, this xcept reads version %d: prepare it again", filepath.Join(dir, ManifestFile), m.Version, ManifestVersion)
	}
	return &m, nil
}

// ClassNames returns the class names in label order.
func (m *Manifest) ClassNames() []string {
	names := make([]string, len(m.Classes))
	for i, c := range m.Classes {
		names[i] = c.Name
	}
	return names
}

// Fit describes the dataset in dir for contract.CheckFit.
func (m *Manifest) Fit(dir string) contract.Fit {
	return contract.Fit{Name: "the dataset " + dir, Classes: m.ClassNames(), ImageSize: m.Image.Size}
}

// ShardPaths returns the paths of a split's shards under dir.
func (m *Manifest) ShardPaths(dir, split string) []string {
	for _, s := range m.Splits {
		if s.Name == split {
			paths := make([]string, len(s.Shards))
			for i, sh := range s.Shards {
				paths[i] = filepath.Join(dir, sh.File)
			}
			return paths
		}
	}
	return nil
}

// writeJSON writes v indented, with a final newline, and syncs it.
func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, append(data, '\n'))
}
