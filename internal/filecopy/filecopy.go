// Package filecopy copies files and folders into folders xcept assembles
// from others' files: an export's SavedModel (the serving model's assets), a
// cluster worker's scratch copy of a run, a test's copy of a shared model.
// A copy never replaces a file: its destination must not exist yet.
package filecopy

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// File copies the regular file src to dst, a new file (an existing dst is
// an error, never overwritten).
func File(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// LinkOrFile hard-links dst to src where it can (the same file system) and
// copies it (File) where it cannot: for files that are only ever replaced,
// never changed in place, such as checkpoints and SavedModels.
func LinkOrFile(src, dst string) error {
	if os.Link(src, dst) == nil {
		return nil
	}
	return File(src, dst)
}

// Tree copies the folders and regular files under src into dst, which must
// exist, keeping their relative paths; each file by copy (File or
// LinkOrFile). Other entries (sockets, devices) are skipped: nothing a model
// or a run holds.
func Tree(src, dst string, copy func(src, dst string) error) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil || rel == "." {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.Mkdir(target, 0o755)
		case d.Type().IsRegular():
			return copy(path, target)
		}
		return nil
	})
}
