package graph

// #include "tfapi.h"
import "C"

import (
	"fmt"
	"runtime"
	"sort"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"
)

// Server is an in-process TensorFlow server (TF_NewServer): one task of a
// cluster, reachable by the other tasks over gRPC. Sessions whose
// SessionOptions.Target is the server's Target run on TensorFlow's
// distributed runtime, which is what executes collective ops
// (CollectiveReduceV2) across the tasks.
//
// A started server lives until the process exits: TensorFlow's gRPC server
// has no clean shutdown (TF_ServerStop reports "Clean shutdown is not
// currently implemented" and TF_DeleteServer aborts the process on it), so
// there is no Close. Make one server per process.
type Server struct {
	Target string // grpc://localhost:PORT, for SessionOptions.Target

	c *C.TF_Server
}

// ServerDef is the part of TensorFlow's ServerDef xcept sets: the cluster
// (job name to task addresses, task i at index i), this task, and the
// session config every session on the server starts from (the collective
// group leader is read from it when the server builds its collective runtime).
type ServerDef struct {
	Cluster map[string][]string
	Job     string
	Task    int
	Config  SessionOptions
}

// ServerDef field numbers (tensorflow/core/protobuf/tensorflow_server.proto,
// cluster.proto).
const (
	sdCluster   = 1
	sdJobName   = 2
	sdTaskIndex = 3
	sdConfig    = 4
	sdProtocol  = 5
	cdJob       = 1
	jdName      = 1
	jdTasks     = 2 // map<int32, string>
	mapKey      = 1
	mapValue    = 2
)

func encodeServerDef(d ServerDef) []byte {
	var cluster []byte
	jobs := make([]string, 0, len(d.Cluster))
	for j := range d.Cluster {
		jobs = append(jobs, j)
	}
	sort.Strings(jobs)
	for _, j := range jobs {
		var job []byte
		job = protowire.AppendTag(job, jdName, protowire.BytesType)
		job = protowire.AppendString(job, j)
		for i, addr := range d.Cluster[j] {
			var e []byte
			e = protowire.AppendTag(e, mapKey, protowire.VarintType)
			e = protowire.AppendVarint(e, uint64(i))
			e = protowire.AppendTag(e, mapValue, protowire.BytesType)
			e = protowire.AppendString(e, addr)
			job = protowire.AppendTag(job, jdTasks, protowire.BytesType)
			job = protowire.AppendBytes(job, e)
		}
		cluster = protowire.AppendTag(cluster, cdJob, protowire.BytesType)
		cluster = protowire.AppendBytes(cluster, job)
	}
	var b []byte
	b = protowire.AppendTag(b, sdCluster, protowire.BytesType)
	b = protowire.AppendBytes(b, cluster)
	b = protowire.AppendTag(b, sdJobName, protowire.BytesType)
	b = protowire.AppendString(b, d.Job)
	b = protowire.AppendTag(b, sdTaskIndex, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(d.Task))
	b = protowire.AppendTag(b, sdConfig, protowire.BytesType)
	b = protowire.AppendBytes(b, encodeConfig(d.Config))
	b = protowire.AppendTag(b, sdProtocol, protowire.BytesType)
	b = protowire.AppendString(b, "grpc")
	return b
}

// NewServer creates and starts the server of task d.Task of job d.Job. It
// listens on the port of its own address in d.Cluster.
func NewServer(d ServerDef) (*Server, error) {
	if err := Load(); err != nil {
		return nil, err
	}
	if d.Task < 0 || d.Task >= len(d.Cluster[d.Job]) {
		return nil, fmt.Errorf("task %d of job %q is not in the cluster (%d tasks)", d.Task, d.Job, len(d.Cluster[d.Job]))
	}
	b := encodeServerDef(d)
	st := newStatus()
	c := C.x_TF_NewServer(unsafe.Pointer(&b[0]), C.size_t(len(b)), st.c)
	runtime.KeepAlive(b)
	if err := st.done(); err != nil {
		return nil, err
	}
	st = newStatus()
	C.x_TF_ServerStart(c, st.c)
	if err := st.done(); err != nil {
		C.x_TF_DeleteServer(c)
		return nil, err
	}
	s := &Server{c: c, Target: C.GoString(C.x_TF_ServerTarget(c))}
	return s, nil
}
