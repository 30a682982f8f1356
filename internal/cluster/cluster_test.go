package cluster

import (
	"slices"
	"strings"
	"testing"

	"github.com/xcept/xcept/internal/cli"
	"github.com/xcept/xcept/internal/testenv"
)

func TestParseTFConfig(t *testing.T) {
	cases := []struct {
		name, value string
		workers     []string
		task        int
	}{
		{"workers", `{"cluster":{"worker":["a:1","b:2","c:3"]},"task":{"type":"worker","index":2}}`, []string{"a:1", "b:2", "c:3"}, 2},
		{"chief first", `{"cluster":{"chief":["c:9"],"worker":["a:1","b:2"]},"task":{"type":"worker","index":0}}`, []string{"c:9", "a:1", "b:2"}, 1},
		{"the chief", `{"cluster":{"chief":["c:9"],"worker":["a:1"]},"task":{"type":"chief","index":0}}`, []string{"c:9", "a:1"}, 0},
		{"ipv6", `{"cluster":{"worker":["[::1]:2222","[::1]:2223"]},"task":{"type":"worker","index":0}}`, []string{"[::1]:2222", "[::1]:2223"}, 0},
		// Kubeflow's TFJob adds "environment": "cloud" and other keys.
		{"extra keys", `{"cluster":{"worker":["a:1","b:1"]},"task":{"type":"worker","index":1},"environment":"cloud"}`, []string{"a:1", "b:1"}, 1},
	}
	for _, c := range cases {
		s, err := ParseTFConfig(c.value)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !slices.Equal(s.Workers, c.workers) || s.Task != c.task {
			t.Errorf("%s: %v task %d, want %v task %d", c.name, s.Workers, s.Task, c.workers, c.task)
		}
	}
}

func TestBadSpecsAreUsageErrors(t *testing.T) {
	cases := []struct {
		name, list string
		task       int
		taskSet    bool
		env, want  string
	}{
		{"not json", "", 0, false, `{"cluster":`, "TF_CONFIG: not JSON"},
		{"ps", "", 0, false, `{"cluster":{"worker":["a:1"],"ps":["p:1"]},"task":{"type":"worker","index":0}}`, `job "ps" is not supported`},
		{"no index", "", 0, false, `{"cluster":{"worker":["a:1","b:1"]},"task":{"type":"worker"}}`, "task.index is missing"},
		{"index out", "", 0, false, `{"cluster":{"worker":["a:1","b:1"]},"task":{"type":"worker","index":2}}`, "task.index 2 is not in cluster.worker (2 tasks, 0 to 1)"},
		{"type", "", 0, false, `{"cluster":{"worker":["a:1","b:1"]},"task":{"type":"evaluator","index":0}}`, `task.type "evaluator"`},
		{"no workers", "", 0, false, `{"cluster":{},"task":{"type":"worker","index":0}}`, "no workers"},
		{"no port", "", 0, false, `{"cluster":{"worker":["a","b:1"]},"task":{"type":"worker","index":0}}`, `task 0's address "a" is not host:port`},
		{"twice", "a:1,a:1", 1, true, "", "tasks 0 and 1 have the same address a:1"},
		{"flag task out", "a:1,b:1", 5, true, "", "--task 5: not a task of --cluster (2 tasks, 0 to 1)"},
		{"no task", "a:1,b:1", 0, false, "", "--cluster needs --task"},
		{"task alone", "", 1, true, "", "--task needs --cluster"},
		{"bad port", "a:1,b:x", 0, true, "", `task 1's address "b:x" is not host:port`},
	}
	for _, c := range cases {
		_, err := Resolve(c.list, c.task, c.taskSet, c.env)
		if err == nil || cli.ExitCode(err) != cli.ExitUsage || !strings.Contains(testenv.UserMessage(err), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v (exit %d), want exit 2 with %q on one line", c.name, err, cli.ExitCode(err), c.want)
		}
	}
}

func TestResolve(t *testing.T) {
	env := `{"cluster":{"worker":["a:1","b:1"]},"task":{"type":"worker","index":1}}`
	if s, err := Resolve("", 0, false, ""); s != nil || err != nil {
		t.Errorf("no cluster: %v %v", s, err)
	}
	if s, err := Resolve("", 0, false, `{"cluster":{"worker":["a:1"]},"task":{"type":"worker","index":0}}`); s != nil || err != nil {
		t.Errorf("a cluster of one is one process: %v %v", s, err)
	}
	if s, err := Resolve("", 0, false, env); err != nil || s.Task != 1 || s.Chief() || s.Name(0) != "worker 0 (a:1)" {
		t.Errorf("TF_CONFIG: %+v %v", s, err)
	}
	if s, err := Resolve("x:1,y:2", 0, true, env); err != nil || !slices.Equal(s.Workers, []string{"x:1", "y:2"}) || !s.Chief() {
		t.Errorf("the flags win over TF_CONFIG: %+v %v", s, err)
	}
}
