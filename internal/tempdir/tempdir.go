// Package tempdir makes the hidden work folders that xcept fills before
// renaming them into place, in a way that lets a later run tell the folders
// of a killed process (removed) from those of one still running (left alone).
//
// A folder is named PREFIX<pid>-<random> and its creator holds an exclusive
// flock(2) on it for as long as it works there. The kernel drops the lock
// when the process ends, however it ends (kill -9 included), so a folder is
// provably stale when its lock can be taken and the process named in it is
// not alive (the pid covers the instant between mkdir and flock).
package tempdir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Dir is a work folder held by this process.
type Dir struct {
	Path string
	f    *os.File
}

// Make creates parent/PREFIX<pid>-<random> (mode 0755) and locks it.
func Make(parent, prefix string) (*Dir, error) {
	path, err := os.MkdirTemp(parent, fmt.Sprintf("%s%d-", prefix, os.Getpid()))
	if err != nil {
		return nil, err
	}
	// MkdirTemp makes the folder private; what is published from it is as
	// readable as any folder mkdir makes.
	if err := os.Chmod(path, 0o755); err != nil {
		os.Remove(path)
		return nil, err
	}
	f, err := os.Open(path)
	if err == nil {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err != nil {
			f.Close()
		}
	}
	if err != nil {
		os.Remove(path)
		return nil, err
	}
	return &Dir{Path: path, f: f}, nil
}

// Release drops the lock, leaving the folder (renamed into place, or
// already removed) where it is. Idempotent.
func (d *Dir) Release() {
	if d != nil && d.f != nil {
		d.f.Close()
		d.f = nil
	}
}

// Remove deletes the folder and drops the lock. Idempotent.
func (d *Dir) Remove() {
	if d == nil {
		return
	}
	if d.f != nil {
		os.RemoveAll(d.Path)
	}
	d.Release()
}

// Sweep removes the folders PREFIX<pid>-* in parent left by processes that
// have ended, and returns them. Folders of live processes stay.
func Sweep(parent, prefix string) []string {
	matches, _ := filepath.Glob(filepath.Join(parent, prefix+"*"))
	var removed []string
	for _, m := range matches {
		if Stale(m, prefix) && os.RemoveAll(m) == nil {
			removed = append(removed, m)
		}
	}
	return removed
}

// Stale reports whether path, a folder named PREFIX<pid>-*, belongs to a
// process that has ended.
func Stale(path, prefix string) bool {
	pidText, _, ok := strings.Cut(strings.TrimPrefix(filepath.Base(path), prefix), "-")
	pid, err := strconv.Atoi(pidText)
	if !ok || err != nil || pid <= 0 || Alive(pid) {
		return false
	}
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.IsDir() {
		return false
	}
	if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		return false // a live process holds it (its pid was reused by another)
	}
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return true
}

// Alive reports whether a process with this pid exists.
func Alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
