package infer

import (
	"errors"
	"fmt"
	"image"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/xcept/xcept/internal/contract"
	"github.com/xcept/xcept/internal/dataset"
	"github.com/xcept/xcept/internal/fault"
	"github.com/xcept/xcept/internal/imageio"
)

// FileError is one input file that could not be used. Reason is a stable
// machine-readable code, the same as prepare's problems.json uses.
type FileError struct {
	Path   string `json:"-"`
	Reason string `json:"reason"`
	Detail string `json:"detail"`
}

func (e *FileError) Error() string { return e.Path + ": " + e.Reason + ": " + e.Detail }

// Reasons that are not image problems (those come from imageio).
const (
	ReasonNotFound      = "not-found"
	ReasonUnreadable    = dataset.ReasonUnreadable
	ReasonModelRejected = "model-rejected" // TensorFlow refused an image Go decoded
)

// Limits bound what one input file may cost, like prepare's limits.
type Limits struct {
	MaxFileBytes int64 // 0: none
	imageio.Limits
}

// Input is one file named on the command line or found in a folder given
// there. A file found in a folder that is not an image by content nor by
// name (a README, a .DS_Store) is skipped rather than reported.
type Input struct {
	Path    string
	InDir   bool
	Missing bool // named on the command line but not there
}

// ExpandPaths turns command-line arguments into input files, in argument
// order; a folder contributes its files (hidden ones left out, sub-folders
// included) in lexical order, so the output order never depends on the
// file system.
func ExpandPaths(args []string) []Input {
	var out []Input
	for _, arg := range args {
		st, err := os.Stat(arg)
		switch {
		case err != nil:
			out = append(out, Input{Path: arg, Missing: true})
		case st.IsDir():
			out = append(out, walkFolder(arg)...)
		default:
			out = append(out, Input{Path: arg})
		}
	}
	return out
}

func walkFolder(root string) []Input {
	var out []Input
	filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			// An unreadable sub-folder is reported as an input of its own.
			out = append(out, Input{Path: path, InDir: true})
			return nil
		}
		if path != root && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() || d.Type()&fs.ModeSymlink != 0 {
			out = append(out, Input{Path: path, InDir: true})
		}
		return nil
	})
	return out
}

// ReadFile reads an input file within the byte limit.
func ReadFile(in Input, lim Limits) ([]byte, *FileError) {
	if in.Missing {
		return nil, &FileError{Path: in.Path, Reason: ReasonNotFound, Detail: "no such file or folder"}
	}
	f, err := os.Open(in.Path)
	if err != nil {
		return nil, fileError(in.Path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fileError(in.Path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, &FileError{Path: in.Path, Reason: ReasonUnreadable, Detail: "not a regular file"}
	}
	if lim.MaxFileBytes > 0 && st.Size() > lim.MaxFileBytes {
		return nil, &FileError{Path: in.Path, Reason: imageio.ReasonTooLarge,
			Detail: fmt.Sprintf("%d MB on disk, over the limit of %d MB (prepare.max_file_mb)", st.Size()>>20, lim.MaxFileBytes>>20)}
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, fileError(in.Path, err)
	}
	return data, nil
}

func fileError(path string, err error) *FileError {
	if errors.Is(err, fs.ErrNotExist) {
		return &FileError{Path: path, Reason: ReasonNotFound, Detail: "no such file"}
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return &FileError{Path: path, Reason: ReasonUnreadable, Detail: err.Error()}
}

// imageError wraps a decoding failure of path.
func imageError(path string, err error) *FileError {
	var ie *imageio.Error
	if errors.As(err, &ie) {
		return &FileError{Path: path, Reason: ie.Reason, Detail: ie.Detail}
	}
	return &FileError{Path: path, Reason: imageio.ReasonCorrupt, Detail: err.Error()}
}

// Skippable reports a folder entry that is no image by content or by
// name: predicting a folder should not complain about its README.
func (in Input) Skippable(err *FileError) bool {
	return in.InDir && err.Reason == imageio.ReasonNotImage && imageio.ExtensionFormat(in.Path) == imageio.Unknown
}

// Decode reads and decodes an input file to upright, opaque RGB, exactly
// as prepare does.
func Decode(in Input, lim Limits) (*image.RGBA, *FileError) {
	data, ferr := ReadFile(in, lim)
	if ferr != nil {
		return nil, ferr
	}
	img, _, err := imageio.Decode(data, lim.Limits)
	if err != nil {
		return nil, imageError(in.Path, err)
	}
	return img, nil
}

// Square resizes an upright image to the model's size×size input under the
// dataset's resize policy (as prepare did) and returns its RGB bytes.
func Square(img *image.RGBA, size int, fit imageio.Fit) []uint8 {
	sq := imageio.Resize(img, size, fit)
	out := make([]uint8, size*size*3)
	for i, j := 0, 0; i < len(sq.Pix); i, j = i+4, j+3 {
		out[j], out[j+1], out[j+2] = sq.Pix[i], sq.Pix[i+1], sq.Pix[i+2]
	}
	return out
}

// LabelledFile is one image of a labelled folder.
type LabelledFile struct {
	Input
	Label int
}

// ScanLabelled lists a folder with one sub-folder per class, as prepare
// reads it: every class folder's name must be one of classes (an unknown
// one is a data error naming it); classes without a folder are fine.
// Files are in class-folder order, then lexical order.
func ScanLabelled(dir string, classes []string, flag fault.Option) ([]LabelledFile, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fault.New(fault.BadData, "%s %s: %v", flag, dir, fileError(dir, err).Detail)
	}
	index := map[string]int{}
	for i, c := range classes {
		index[c] = i
	}
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if st, err := os.Stat(filepath.Join(dir, e.Name())); err == nil && st.IsDir() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		return nil, fault.New(fault.BadData, "%s %s: no class folders (want one sub-folder per class: %s)", flag, dir, contract.ShortList(classes))
	}
	var files []LabelledFile
	for _, name := range names {
		label, ok := index[name]
		if !ok {
			return nil, fault.New(fault.BadData, "%s %s: class folder %q is not a class of the model (%s)", flag, dir, name, contract.ShortList(classes))
		}
		for _, in := range walkFolder(filepath.Join(dir, name)) {
			files = append(files, LabelledFile{Input: in, Label: label})
		}
	}
	if len(files) == 0 {
		return nil, fault.New(fault.BadData, "%s %s: the class folders hold no files", flag, dir)
	}
	return files, nil
}
