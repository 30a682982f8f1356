package dataset

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/xcept/xcept/internal/fault"
)

// checkPaths refuses outputs that would touch the input: prepare writes a
// temporary folder beside --out and then replaces --out, so --out inside
// --data would write into the user's originals, and --data inside --out
// would delete them.
func checkPaths(data, out string) error {
	realData, err := filepath.EvalSymlinks(data)
	if err != nil {
		return fault.About(fault.BadData, fault.DataFolder, data, "%v", err)
	}
	if st, err := os.Stat(realData); err != nil || !st.IsDir() {
		return fault.About(fault.BadData, fault.DataFolder, data, "not a folder")
	}
	realOut := resolveExisting(out)
	if within(realOut, realData) {
		return fault.New(fault.BadValue, "%s %s is inside %s %s: prepare never writes into the input folder; choose an %s outside it", optOut, out, optData, data, optOut)
	}
	if within(realData, realOut) {
		return fault.New(fault.BadValue, "%s %s is inside %s %s: replacing %s would delete the input; choose another %s", optData, data, optOut, out, optOut, optOut)
	}
	st, err := os.Stat(out)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fault.About(fault.BadValue, fault.OutFolder, out, "%v", err)
	}
	if !st.IsDir() {
		return fault.New(fault.BadValue, "%s %s exists and is not a folder: choose a new folder", optOut, out)
	}
	if _, err := ReadManifest(out); err == nil {
		return nil // an xcept dataset: replaced when the new one is complete
	}
	if des, err := os.ReadDir(out); err == nil && len(des) == 0 {
		return nil
	}
	return fault.New(fault.BadValue, "%s %s exists and is not an xcept dataset (no valid %s): choose a new or empty folder, or remove it", optOut, out, ManifestFile)
}

// resolveExisting resolves symlinks in the longest existing prefix of p.
func resolveExisting(p string) string {
	var rest []string
	for cur := p; ; cur = filepath.Dir(cur) {
		if r, err := filepath.EvalSymlinks(cur); err == nil {
			return filepath.Join(append([]string{r}, rest...)...)
		}
		if filepath.Dir(cur) == cur {
			return p
		}
		rest = append([]string{filepath.Base(cur)}, rest...)
	}
}

// within reports whether p is dir or inside it (both absolute and clean).
func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// Work folders sit beside --out and carry the owning process id, so that a
// later run can tell those of a killed run (removed) from those of a run
// still going (left alone).
func workPrefix(out string) string { return "." + filepath.Base(out) + ".xcept-" }

// newWorkDir creates the temporary folder a dataset is written into.
func newWorkDir(out string) (string, error) {
	parent := filepath.Dir(out)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		if werr := fault.WriteFailedAbout(fault.OutFolder, out, err); werr != err {
			return "", werr
		}
		return "", fault.About(fault.BadValue, fault.OutFolder, out, "%v", err)
	}
	removeStale(out)
	dir, err := os.MkdirTemp(parent, fmt.Sprintf("%stmp-%d-", workPrefix(out), os.Getpid()))
	if err != nil {
		if werr := fault.WriteFailedAbout(fault.OutFolder, out, err); werr != err {
			return "", werr
		}
		return "", fault.About(fault.BadValue, fault.OutFolder, out, "cannot create a work folder beside it: %v", err)
	}
	// MkdirTemp makes the folder private; a dataset is as readable as any folder mkdir makes.
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

// removeStale deletes work folders left by prepare runs that were killed.
func removeStale(out string) {
	matches, _ := filepath.Glob(filepath.Join(filepath.Dir(out), workPrefix(out)+"*"))
	for _, m := range matches {
		rest := strings.TrimPrefix(filepath.Base(m), workPrefix(out))
		kind, tail, _ := strings.Cut(rest, "-")
		pidText, _, _ := strings.Cut(tail, "-")
		pid, err := strconv.Atoi(pidText)
		if (kind != "tmp" && kind != "old") || err != nil || pid <= 0 || alive(pid) {
			continue
		}
		os.RemoveAll(m)
	}
}

func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// publish moves the finished work folder to out, replacing a previous
// dataset there. The old one is renamed aside first, so at every moment out
// is either the old complete dataset, absent, or the new complete one.
func publish(work, out string) error {
	_, err := os.Stat(out)
	if errors.Is(err, fs.ErrNotExist) {
		return os.Rename(work, out)
	}
	old := filepath.Join(filepath.Dir(out), fmt.Sprintf("%sold-%d", workPrefix(out), os.Getpid()))
	if err := os.Rename(out, old); err != nil {
		return err
	}
	if err := os.Rename(work, out); err != nil {
		return err
	}
	return os.RemoveAll(old)
}
