package graph

// The TensorFlow C API is opened with dlopen rather than linked at build time:
//   - TensorFlow's static initialisers print log lines on stderr as soon as the
//     library loads; loading it ourselves lets us silence them (unless verbose)
//     instead of printing noise before every command, even `xcept --help`;
//   - commands that need no TensorFlow (prepare --no-model, evaluate
//     --predictions, demo-data) run where libtensorflow is absent;
//   - the 1 GB library is not linked into every test binary.
// The headers come from .tf/include and the binary's rpath names .tf/lib:
// `make setup` points both at the pinned tensorflow-cpu wheel, or at the
// libtensorflow named by TF_ROOT (an official tarball or a GPU build).

/*
#cgo CFLAGS: -I${SRCDIR}/../../.tf/include
#cgo LDFLAGS: -ldl -Wl,-rpath,${SRCDIR}/../../.tf/lib
#include "tfapi.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unsafe"
)

// libNames are the C API libraries tried in each folder: the wheel's
// libtensorflow_cc and the official tarball's libtensorflow.
var libNames = []string{"libtensorflow_cc.so.2", "libtensorflow.so.2"}

var (
	loadOnce sync.Once
	loadErr  error
	quiet    = true
)

// SetVerbose lets TensorFlow's own load-time logs through to stderr. Call it
// before the first use of the package.
func SetVerbose(v bool) { quiet = !v }

// Load opens libtensorflow once. Every entry point of the package calls it;
// commands call it early to report a missing library clearly.
//
// Search order: $XCEPT_LIBTENSORFLOW (a library file, or a folder holding
// one or holding lib/), then the sonames through the binary's rpath (.tf/lib)
// and the system's library path.
func Load() error {
	loadOnce.Do(func() { loadErr = load() })
	return loadErr
}

func load() error {
	if quiet && os.Getenv("TF_CPP_MIN_LOG_LEVEL") == "" {
		// TensorFlow's runtime logs (loader progress, CPU features, a failed
		// cuInit on machines without a GPU) are noise to users; errors reach
		// them through TF_Status. --verbose keeps them.
		os.Setenv("TF_CPP_MIN_LOG_LEVEL", "3")
	}
	var tried []string
	var candidates []string
	if p := os.Getenv("XCEPT_LIBTENSORFLOW"); p != "" {
		if st, err := os.Stat(p); err != nil {
			return fmt.Errorf("XCEPT_LIBTENSORFLOW=%s: %v", p, err)
		} else if st.IsDir() {
			for _, dir := range []string{p, filepath.Join(p, "lib")} {
				for _, n := range libNames {
					candidates = append(candidates, filepath.Join(dir, n))
				}
			}
		} else {
			candidates = append(candidates, p)
		}
	} else {
		candidates = append(candidates, libNames...)
	}
	for _, c := range candidates {
		if strings.Contains(c, "/") {
			if _, err := os.Stat(c); err != nil {
				continue
			}
		}
		cpath := C.CString(c)
		msg := C.xcept_tf_open(cpath, boolInt(quiet))
		C.free(unsafe.Pointer(cpath))
		if msg == nil {
			return nil
		}
		tried = append(tried, C.GoString(msg))
	}
	if len(tried) == 0 {
		tried = candidates
	}
	return errors.New("cannot load libtensorflow (" + strings.Join(tried, "; ") +
		"): run `make setup`, or set XCEPT_LIBTENSORFLOW to libtensorflow_cc.so.2 or to an official libtensorflow folder")
}

func boolInt(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// Version is TensorFlow's version as reported by TF_Version.
func Version() (string, error) {
	if err := Load(); err != nil {
		return "", err
	}
	return C.GoString(C.x_TF_Version()), nil
}

// LibraryPath is the file the C API was loaded from, symlinks resolved.
func LibraryPath() (string, error) {
	if err := Load(); err != nil {
		return "", err
	}
	p := C.GoString(C.xcept_tf_path())
	if real, err := filepath.EvalSymlinks(p); err == nil {
		p = real
	}
	return p, nil
}
