package export

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/xcept/xcept/internal/atomicfile"
	"github.com/xcept/xcept/internal/tempdir"
	"github.com/xcept/xcept/internal/versions"
)

// An export is built in a hidden temporary folder beside its final place,
// verified there, and renamed to <base>/<version> only when everything
// passed. TF Serving scans <base> for integer folder names only, so it never
// sees the temporary folder; a failure or interrupt removes it and every
// folder the export created, so nothing half-written is ever left.

// staging is one export being built.
type staging struct {
	Base    string // <out>/<name>: the versions' parent
	Tmp     string // the hidden folder being filled
	tmp     *tempdir.Dir
	created []string
}

// stage creates base (and any missing parents, remembered for abort) and a
// temporary folder in it.
func stage(base string) (*staging, error) {
	s := &staging{Base: base}
	if err := s.mkdirAll(base); err != nil {
		s.abort()
		return nil, err
	}
	// Folders of exports killed before they finished (kill -9, power
	// loss) are removed here; those of exports still running stay.
	tempdir.Sweep(base, tmpPrefix)
	tempdir.Sweep(base, workPrefix)
	tmp, err := tempdir.Make(base, tmpPrefix)
	if err != nil {
		s.abort()
		return nil, err
	}
	s.tmp, s.Tmp = tmp, tmp.Path
	return s, nil
}

// Prefixes of the hidden folders an export works in, beside its versions.
const (
	tmpPrefix  = ".export-tmp-"  // becomes the new version
	workPrefix = ".export-work-" // scratch files, always removed
)

// mkdirAll is os.MkdirAll that records the folders it made, outermost first.
func (s *staging) mkdirAll(dir string) error {
	dir = filepath.Clean(dir)
	st, err := os.Stat(dir)
	if err == nil {
		if !st.IsDir() {
			return &fs.PathError{Op: "mkdir", Path: dir, Err: syscall.ENOTDIR}
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if parent := filepath.Dir(dir); parent != dir {
		if err := s.mkdirAll(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	s.created = append(s.created, dir)
	return nil
}

// commit renames the temporary folder to the next free version and returns
// its path. A version someone else took meanwhile is skipped, never
// overwritten: rename(2) refuses to replace a non-empty folder.
func (s *staging) commit() (string, int64, error) {
	for attempt := 0; ; attempt++ {
		v, err := versions.Next(s.Base)
		if err != nil {
			return "", 0, err
		}
		final := filepath.Join(s.Base, versions.Name(v))
		err = os.Rename(s.Tmp, final)
		if err == nil {
			s.tmp.Release()
			s.Tmp, s.created = "", nil
			return final, v, atomicfile.SyncDir(s.Base)
		}
		if attempt < 10 && (errors.Is(err, fs.ErrExist) || errors.Is(err, syscall.ENOTEMPTY)) {
			continue
		}
		return "", 0, err
	}
}

// abort removes the temporary folder and the folders stage created, if
// they hold nothing else by now.
func (s *staging) abort() {
	if s.Tmp != "" {
		s.tmp.Remove()
		s.Tmp = ""
	}
	for i := len(s.created) - 1; i >= 0; i-- {
		os.Remove(s.created[i]) // fails, as wanted, on a folder someone else filled
	}
	s.created = nil
}

// dirSize is the total size of the regular files under dir.
func dirSize(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			total += info.Size()
		}
		return nil
	})
	return total, err
}

// syncTree flushes every file and folder under dir to disk, so that the
// rename that publishes an export never makes visible data still in cache.
func syncTree(dir string) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && !d.Type().IsRegular() {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		err = f.Sync()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	})
}
