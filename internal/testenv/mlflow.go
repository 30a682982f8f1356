package testenv

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// MLflowServer is a real `mlflow server` on loopback (SQLite backend, local
// artifact store under Dir), stopped when the test ends.
type MLflowServer struct {
	URI  string
	Dir  string
	py   string
	port int
	cmd  *exec.Cmd
	t    testing.TB
}

// StartMLflow starts a server with a fresh store.
func StartMLflow(t testing.TB) *MLflowServer {
	t.Helper()
	s := &MLflowServer{py: MLflowPython(t), Dir: t.TempDir(), t: t}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	s.URI = fmt.Sprintf("http://127.0.0.1:%d", s.port)
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// Start (re)starts the server on the same port and store.
func (s *MLflowServer) Start() {
	s.t.Helper()
	cmd := exec.Command(s.py, "-m", "mlflow", "server",
		"--backend-store-uri", "sqlite:///"+filepath.Join(s.Dir, "mlflow.db"),
		"--artifacts-destination", filepath.Join(s.Dir, "artifacts"),
		"--host", "127.0.0.1", "--port", fmt.Sprint(s.port), "--workers", "1")
	cmd.Dir = s.Dir
	// No job runner: xcept uses the tracking API only, and the runner's
	// consumer processes (MLflow's GenAI jobs) would cost seconds of CPU at
	// every start and keep polling while the tests run.
	cmd.Env = append(os.Environ(), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false")
	log, err := os.Create(filepath.Join(s.Dir, fmt.Sprintf("server-%d.log", time.Now().UnixNano())))
	if err != nil {
		s.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.cmd = cmd
	deadline := time.Now().Add(120 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(s.URI + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(300 * time.Millisecond)
	}
	data, _ := os.ReadFile(log.Name())
	s.Stop()
	s.t.Fatalf("mlflow server did not answer on %s within 120 s:\n%s", s.URI, data)
}

// Stop kills the server and every process it started.
func (s *MLflowServer) Stop() {
	if s.cmd == nil {
		return
	}
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	s.cmd.Wait()
	s.cmd = nil
}
