// Package pyenv finds xcept's own Python virtual environment and runs the
// embedded Python scripts (the Keras builder, the converters) with it, so
// users never type "python" themselves.
package pyenv

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"

	"github.com/xcept/xcept/internal/atomicfile"
	"github.com/xcept/xcept/internal/fault"
	"github.com/xcept/xcept/scripts"
)

// DefaultPython is the interpreter recorded at build time by the Makefile
// (-ldflags -X), so an installed binary keeps finding the project's venv.
var DefaultPython string

// ErrNoPython says that no virtual environment was found.
var ErrNoPython = errors.New("no Python environment for xcept: run `make setup`, or set XCEPT_PYTHON to a python with tensorflow-cpu and tf-keras")

// Python returns the interpreter to run scripts with. Order: $XCEPT_PYTHON,
// the build-time default, .venv beside the binary's parent folder, and .venv
// in the working folder or any folder above it (for go test in a package).
func Python() (string, error) {
	if p := os.Getenv("XCEPT_PYTHON"); p != "" {
		if !isFile(p) {
			return "", fmt.Errorf("XCEPT_PYTHON=%s: no such file", p)
		}
		return p, nil
	}
	var candidates []string
	if DefaultPython != "" {
		candidates = append(candidates, DefaultPython)
	}
	if exe, err := os.Executable(); err == nil {
		candidates = append(candidates, filepath.Join(filepath.Dir(exe), "..", ".venv", "bin", "python"))
	}
	if wd, err := os.Getwd(); err == nil {
		for dir := wd; ; dir = filepath.Dir(dir) {
			candidates = append(candidates, filepath.Join(dir, ".venv", "bin", "python"))
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	for _, c := range candidates {
		if isFile(c) {
			return c, nil
		}
	}
	return "", ErrNoPython
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// ScriptPath writes the embedded scripts (all of them: they import each
// other) to a cache folder keyed by their content, so concurrent runs and
// upgrades never see a half-written or stale copy, and returns name's path.
func ScriptPath(name string) (string, error) {
	if _, err := fs.Stat(scripts.FS, name); err != nil {
		return "", fmt.Errorf("embedded script %s: %w", name, err)
	}
	names, err := fs.Glob(scripts.FS, "*.py")
	if err != nil {
		return "", err
	}
	names = append(names, scripts.Data...)
	sort.Strings(names)
	h := sha256.New()
	files := map[string][]byte{}
	for _, n := range names {
		data, _ := scripts.FS.ReadFile(n)
		files[n] = data
		fmt.Fprintf(h, "%s\x00%d\x00", n, len(data))
		h.Write(data)
	}
	dir := filepath.Join(CacheDir(), "scripts", hex.EncodeToString(h.Sum(nil)[:8]))
	for _, n := range names {
		if err := writeOnce(filepath.Join(dir, n), files[n]); err != nil {
			return "", err
		}
	}
	return filepath.Join(dir, name), nil
}

// writeOnce writes data to path through a temporary file and a rename,
// unless path already holds exactly data.
func writeOnce(path string, data []byte) error {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, data)
}

// CacheDir is $XCEPT_CACHE, else the user cache folder, else the temp folder.
func CacheDir() string {
	if d := os.Getenv("XCEPT_CACHE"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "xcept")
	}
	return filepath.Join(os.TempDir(), "xcept-cache")
}

// Env is the environment scripts run with: legacy Keras (tf-keras), whose
// tf.Module training signatures load under the C API, and quiet TensorFlow logs.
func Env() []string {
	env := os.Environ()
	env = append(env, "TF_USE_LEGACY_KERAS=1", "PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1")
	if os.Getenv("TF_CPP_MIN_LOG_LEVEL") == "" {
		env = append(env, "TF_CPP_MIN_LOG_LEVEL=2")
	}
	return env
}

// ScriptError is a script that exited non-zero. Message is its last line on
// stderr that starts with "error: " (the scripts' convention for the one line
// a user should read), or the last non-empty line otherwise.
type ScriptError struct {
	Script   string
	ExitCode int
	Message  string
}

func (e *ScriptError) Error() string {
	return fmt.Sprintf("%s failed (exit %d): %s", e.Script, e.ExitCode, e.Message)
}

// Failure is what a failed Run means: the scripts' exit code 2 is a bad
// flag value (fault.BadValue), 130 or a cancelled ctx an interrupt, anything
// else a tool failure (fault.ToolFailed). where, when not empty, prefixes
// the script's one-line message (the folder it was building, say).
func Failure(ctx context.Context, where string, err error) error {
	if ctx.Err() != nil {
		return fault.ErrInterrupted
	}
	prefix := ""
	if where != "" {
		prefix = where + ": "
	}
	var se *ScriptError
	if !errors.As(err, &se) {
		return fault.New(fault.ToolFailed, "%s%v", prefix, err)
	}
	switch se.ExitCode {
	case 2:
		return fault.New(fault.BadValue, "%s", se.Message)
	case 130:
		return fault.ErrInterrupted
	}
	return fault.New(fault.ToolFailed, "%s%s", prefix, se.Message)
}

// Run runs the embedded script name with args. The script's stderr is copied
// to stderr (nil discards it) and its stdout is returned.
func Run(ctx context.Context, name string, args []string, stderr io.Writer) ([]byte, error) {
	py, err := Python()
	if err != nil {
		return nil, err
	}
	return RunWith(ctx, py, name, args, stderr)
}

// RunWith runs the embedded script name with the python py (another venv's,
// such as MediaPipePython's), like Run.
func RunWith(ctx context.Context, py, name string, args []string, stderr io.Writer) ([]byte, error) {
	path, err := ScriptPath(name)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, py, append([]string{path}, args...)...)
	cmd.Env = Env()
	var out bytes.Buffer
	tail := &lastLines{}
	cmd.Stdout = &out
	cmd.Stderr = tail
	if stderr != nil {
		cmd.Stderr = io.MultiWriter(quiet(stderr), tail)
	}
	err = runChild(cmd)
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return out.Bytes(), &ScriptError{Script: name, ExitCode: exitErr.ExitCode(), Message: tail.message()}
	}
	return out.Bytes(), err
}

// runChild runs cmd so that it dies with xcept: the kernel sends it SIGKILL
// when its parent goes, a kill -9 of xcept included (otherwise a converter
// would keep running, and writing, for minutes). The parent-death signal
// follows the OS thread that started the child, so the goroutine keeps that
// thread until the child has exited.
func runChild(cmd *exec.Cmd) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	return cmd.Run()
}

// lastLines keeps the tail of a stream to find the script's error line.
type lastLines struct{ buf []byte }

func (l *lastLines) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	if len(l.buf) > 64<<10 {
		l.buf = l.buf[len(l.buf)-32<<10:]
	}
	return len(p), nil
}

func (l *lastLines) message() string {
	lines := strings.Split(strings.TrimSpace(string(l.buf)), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if msg, ok := strings.CutPrefix(strings.TrimSpace(lines[i]), "error: "); ok {
			return msg
		}
	}
	for i := len(lines) - 1; i >= 0; i-- {
		if s := strings.TrimSpace(lines[i]); s != "" {
			return s
		}
	}
	return "no message"
}

// MediaPipeVenv is the folder of the MediaPipe venv `make mediapipe-venv`
// makes: MediaPipe's pins (numpy<2, protobuf<5) conflict with TensorFlow's.
const MediaPipeVenv = ".venv-mediapipe"

// ErrNoMediaPipe says how to get the MediaPipe venv.
var ErrNoMediaPipe = errors.New("no " + MediaPipeVenv + " (MediaPipe's metadata writer): run `make mediapipe-venv`, or set XCEPT_MEDIAPIPE_PYTHON to a python with mediapipe==0.10.21")

// MediaPipePython is $XCEPT_MEDIAPIPE_PYTHON, else the python of the
// .venv-mediapipe beside xcept's own venv (its symlink resolved, so worktrees
// sharing one venv share this one too), beside the binary's folder, or in the
// working folder or a parent.
func MediaPipePython() (string, error) {
	if p := os.Getenv("XCEPT_MEDIAPIPE_PYTHON"); p != "" {
		if !isFile(p) {
			return "", fmt.Errorf("XCEPT_MEDIAPIPE_PYTHON=%s: no such file", p)
		}
		return p, nil
	}
	var roots []string
	if py, err := Python(); err == nil {
		venv := filepath.Dir(filepath.Dir(py))
		roots = append(roots, filepath.Dir(venv))
		if real, err := filepath.EvalSymlinks(venv); err == nil {
			roots = append(roots, filepath.Dir(real))
		}
	}
	if exe, err := os.Executable(); err == nil {
		roots = append(roots, filepath.Join(filepath.Dir(exe), ".."))
	}
	if wd, err := os.Getwd(); err == nil {
		for dir := wd; ; dir = filepath.Dir(dir) {
			roots = append(roots, dir)
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	for _, r := range roots {
		if c := filepath.Join(r, MediaPipeVenv, "bin", "python"); isFile(c) {
			return c, nil
		}
	}
	return "", ErrNoMediaPipe
}
