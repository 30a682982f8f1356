// Package cluster is xcept's side of multi-worker data-parallel training:
// the cluster spec (TF_CONFIG, tf.distribute's and Kubeflow TFJob's
// convention, or --cluster/--task), this task's in-process TensorFlow server
// and the session options that run on it, the worker roles (task 0 is the
// chief: it alone writes the run folder), and a watchdog that notices a
// peer that is gone.
//
// The math is TensorFlow's: the trainer's dp_* signatures (scripts/xcept_dp.py)
// all-reduce the gradients with CollectiveReduceV2 on TensorFlow's
// collective runtime; internal/model feeds them (model.Group).
package cluster

import (
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/xcept/xcept/internal/fault"
	"github.com/xcept/xcept/internal/graph"
)

// EnvVar is the environment variable tf.distribute reads the cluster from
// (and that Kubeflow's TFJob sets in each replica).
const EnvVar = "TF_CONFIG"

// Job is the TensorFlow job name of every task xcept starts: a chief in
// TF_CONFIG becomes task 0 of it, as MultiWorkerMirroredStrategy orders them.
const Job = "worker"

// Spec is a cluster and this process's task in it.
type Spec struct {
	Workers []string // host:port of task i
	Task    int
}

// Size is the number of tasks.
func (s *Spec) Size() int { return len(s.Workers) }

// Chief reports whether this task writes the run folder (task 0).
func (s *Spec) Chief() bool { return s.Task == 0 }

// Name is how messages name task i: "worker 1 (10.0.0.2:2222)".
func (s *Spec) Name(i int) string { return fmt.Sprintf("worker %d (%s)", i, s.Workers[i]) }

// tfConfig is the part of TF_CONFIG xcept reads.
type tfConfig struct {
	Cluster map[string][]string `json:"cluster"`
	Task    struct {
		Type  string `json:"type"`
		Index *int   `json:"index"`
	} `json:"task"`
}

// ParseTFConfig reads TF_CONFIG's value:
//
//	{"cluster": {"worker": ["host0:2222", "host1:2222"]}, "task": {"type": "worker", "index": 1}}
//
// A "chief" job (one address) becomes task 0 and the workers follow it.
// Jobs of parameter-server training ("ps", "evaluator") are refused: xcept's
// training is synchronous all-reduce only.
func ParseTFConfig(value string) (*Spec, error) {
	var c tfConfig
	dec := json.NewDecoder(strings.NewReader(value))
	if err := dec.Decode(&c); err != nil {
		return nil, fault.New(fault.BadValue, "%s: not JSON (%v); set it as {\"cluster\":{\"worker\":[\"host:port\",...]},\"task\":{\"type\":\"worker\",\"index\":I}}", EnvVar, err)
	}
	for job := range c.Cluster {
		if job != "worker" && job != "chief" {
			return nil, fault.New(fault.BadValue, "%s: job %q is not supported: xcept trains synchronously on \"worker\" tasks (and an optional \"chief\"), not with parameter servers or evaluators", EnvVar, job)
		}
	}
	chief, workers := c.Cluster["chief"], c.Cluster["worker"]
	if len(chief) > 1 {
		return nil, fault.New(fault.BadValue, "%s: %d chief tasks; a cluster has at most one chief", EnvVar, len(chief))
	}
	if len(chief)+len(workers) == 0 {
		return nil, fault.New(fault.BadValue, "%s: the cluster has no workers; list them in cluster.worker", EnvVar)
	}
	if c.Task.Index == nil {
		return nil, fault.New(fault.BadValue, "%s: task.index is missing; give this process's index in its job", EnvVar)
	}
	idx := *c.Task.Index
	var task int
	switch c.Task.Type {
	case "chief":
		if len(chief) == 0 {
			return nil, fault.New(fault.BadValue, "%s: task.type is chief but the cluster has no chief", EnvVar)
		}
		if idx != 0 {
			return nil, fault.New(fault.BadValue, "%s: task.index %d of the chief; the chief's index is 0", EnvVar, idx)
		}
		task = 0
	case "worker":
		if idx < 0 || idx >= len(workers) {
			return nil, fault.New(fault.BadValue, "%s: task.index %d is not in cluster.worker (%d tasks, 0 to %d)", EnvVar, idx, len(workers), len(workers)-1)
		}
		task = len(chief) + idx
	default:
		return nil, fault.New(fault.BadValue, "%s: task.type %q: use \"worker\" (or \"chief\")", EnvVar, c.Task.Type)
	}
	return check(&Spec{Workers: append(append([]string{}, chief...), workers...), Task: task}, EnvVar)
}

// The options that errors name (fault.Option: the command layer names
// their flags).
const (
	optCluster fault.Option = "cluster"
	optTask    fault.Option = "task"
)

// ParseFlags builds the spec of --cluster host:port,host:port --task I.
func ParseFlags(list string, task int) (*Spec, error) {
	var workers []string
	for _, a := range strings.Split(list, ",") {
		workers = append(workers, strings.TrimSpace(a))
	}
	if task < 0 || task >= len(workers) {
		return nil, fault.New(fault.BadValue, "%s %d: not a task of %s (%d tasks, 0 to %d)", optTask, task, optCluster, len(workers), len(workers)-1)
	}
	return check(&Spec{Workers: workers, Task: task}, optCluster)
}

// Resolve is the spec of a process: --cluster/--task when given (taskSet:
// --task was passed), else TF_CONFIG's value env, else nil (one process).
// A cluster of one task is one process too.
func Resolve(list string, task int, taskSet bool, env string) (*Spec, error) {
	var s *Spec
	var err error
	switch {
	case list != "":
		if !taskSet {
			return nil, fault.New(fault.BadValue, "%s needs %s I, this process's index in it", optCluster, optTask)
		}
		s, err = ParseFlags(list, task)
	case taskSet:
		return nil, fault.New(fault.BadValue, "%s needs %s host:port,host:port,...", optTask, optCluster)
	case strings.TrimSpace(env) != "":
		s, err = ParseTFConfig(env)
	default:
		return nil, nil
	}
	if err != nil || s.Size() == 1 {
		return nil, err
	}
	return s, nil
}

// check refuses addresses that are not host:port and repeated ones; from
// is where the spec came from (optCluster or EnvVar).
func check(s *Spec, from any) (*Spec, error) {
	seen := map[string]int{}
	for i, a := range s.Workers {
		host, port, err := net.SplitHostPort(a)
		if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n <= 0 || n > 65535 {
			return nil, fault.New(fault.BadValue, "%s: task %d's address %q is not host:port", from, i, a)
		}
		if j, dup := seen[a]; dup {
			return nil, fault.New(fault.BadValue, "%s: tasks %d and %d have the same address %s", from, j, i, a)
		}
		seen[a] = i
	}
	return s, nil
}

// leader is the task that resolves collective groups: the chief.
const leader = "/job:" + Job + "/replica:0/task:0"

// Start starts this task's TensorFlow server (once per process: TensorFlow
// cannot shut one down) and returns base with the session fields that run
// on it: the server's target, this task's devices only, the group leader,
// and timeout bounding every run (a collective whose peer never comes).
//
// With runtime.device gpu the collectives run on NCCL (ConfigProto's
// experimental.collective_nccl, read by the server's collective runtime):
// one process per GPU (runtime.visible_devices) is then the multi-GPU
// layout. Untested here: this machine has no GPU.
func (s *Spec) Start(base graph.SessionOptions, timeout time.Duration) (graph.SessionOptions, error) {
	nccl := base.Device == "gpu"
	srv, err := graph.NewServer(graph.ServerDef{
		Cluster: map[string][]string{Job: s.Workers}, Job: Job, Task: s.Task,
		Config: graph.SessionOptions{CollectiveGroupLeader: leader, CollectiveNCCL: nccl},
	})
	if err != nil {
		return base, fault.New(fault.ToolFailed, "starting the TensorFlow server of %s: %v", s.Name(s.Task), err)
	}
	base.Target = srv.Target
	base.CollectiveGroupLeader = leader
	base.DeviceFilters = []string{fmt.Sprintf("/job:%s/task:%d", Job, s.Task)}
	base.OperationTimeoutMs = timeout.Milliseconds()
	base.CollectiveNCCL = nccl
	return base, nil
}
