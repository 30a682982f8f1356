package run

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/xcept/xcept/internal/fault"
)

// LockFile is the file in a run folder that its one writer holds an
// exclusive flock(2) on, and that records who that writer is.
const LockFile = ".lock"

// Holder is who holds a run folder's lock, as recorded in LockFile.
type Holder struct {
	PID     int       `json:"pid"`
	Verb    string    `json:"verb"` // train, finetune, export, evaluate
	Started time.Time `json:"started"`
	Host    string    `json:"host"`
}

func (h Holder) String() string {
	if h.PID == 0 {
		return "another process (it has not recorded itself yet)"
	}
	s := fmt.Sprintf("xcept %s (pid %d", h.Verb, h.PID)
	if host, _ := os.Hostname(); h.Host != "" && h.Host != host {
		s += " on " + h.Host
	}
	return s + ", started " + h.Started.Local().Format("2006-01-02 15:04:05") + ")"
}

// BusyError says that another process is writing the run folder.
type BusyError struct {
	Dir    string
	Holder Holder
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("in use by %s: wait for it to finish, or choose another run folder", e.Holder)
}

// Lock is a held run-folder lock. The kernel releases it when the process
// ends, however it ends, so a lock left by a killed process is never stale:
// the next writer simply takes it (and rewrites the holder record).
type Lock struct {
	f       *os.File
	dir     string
	created bool // the run folder did not exist before Acquire
}

// Acquire makes dir (and its parents) if needed and takes its writer lock
// for verb. If another process holds it, the error is a *BusyError of kind
// reason fault.Busy naming the holder. Readers that write nothing into the run
// (predict, explain, export elsewhere) need no lock.
func Acquire(dir, verb string) (*Lock, error) {
	_, statErr := os.Stat(dir)
	created := errors.Is(statErr, os.ErrNotExist)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fault.About(fault.CannotWrite, fault.RunFolder, dir, "%v", err)
	}
	path := filepath.Join(dir, LockFile)
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fault.About(fault.CannotWrite, fault.RunFolder, dir, "cannot write its lock file: %v", err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, &fault.Error{Reason: fault.Busy, Subject: fault.RunFolder, Path: dir, Err: &BusyError{Dir: dir, Holder: readHolder(path)}}
			}
			return nil, fault.About(fault.CannotWrite, fault.RunFolder, dir, "locking %s: %v", path, err)
		}
		// A releasing holder may have removed the file between our open
		// and our flock: then we hold a lock nobody else can see. Retry.
		if same(f, path) {
			l := &Lock{f: f, dir: dir, created: created}
			if err := l.record(verb); err != nil {
				l.Release()
				return nil, fault.About(fault.CannotWrite, fault.RunFolder, dir, "cannot write its lock file: %v", err)
			}
			return l, nil
		}
		f.Close()
	}
}

// Inside reports whether path is the run folder dir or inside it: a
// command writing there must hold the run's lock.
func Inside(dir, path string) bool {
	d, err1 := filepath.Abs(dir)
	p, err2 := filepath.Abs(path)
	if err1 != nil || err2 != nil {
		return true
	}
	rel, err := filepath.Rel(d, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

func same(f *os.File, path string) bool {
	a, err1 := f.Stat()
	b, err2 := os.Stat(path)
	return err1 == nil && err2 == nil && os.SameFile(a, b)
}

func (l *Lock) record(verb string) error {
	host, _ := os.Hostname()
	data, _ := json.Marshal(Holder{PID: os.Getpid(), Verb: verb, Started: time.Now().UTC().Truncate(time.Second), Host: host})
	if err := l.f.Truncate(0); err != nil {
		return err
	}
	_, err := l.f.WriteAt(append(data, '\n'), 0)
	return err
}

func readHolder(path string) Holder {
	var h Holder
	data, err := os.ReadFile(path)
	if err == nil {
		json.Unmarshal(data, &h)
	}
	return h
}

// Release gives the lock up. A run folder that Acquire created and that
// still holds nothing but the lock (the command failed before writing
// anything) is removed again. Release is idempotent.
func (l *Lock) Release() {
	if l == nil || l.f == nil {
		return
	}
	if l.created && onlyLock(l.dir) {
		os.Remove(filepath.Join(l.dir, LockFile))
		os.Remove(l.dir)
	}
	l.f.Close()
	l.f = nil
}

func onlyLock(dir string) bool {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range entries {
		if e.Name() != LockFile {
			return false
		}
	}
	return true
}
