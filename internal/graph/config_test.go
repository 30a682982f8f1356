package graph

import (
	"encoding/hex"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/xcept/xcept/internal/testenv"
)

// protoPrelude makes tensorflow.core.protobuf importable without
// running tensorflow/__init__.py: the generated classes below are the
// wheel's own, read in half a second instead of a full TensorFlow import.
const protoPrelude = `
import importlib.util, sys, types
tf = types.ModuleType("tensorflow")
tf.__path__ = list(importlib.util.find_spec("tensorflow").submodule_search_locations)
sys.modules["tensorflow"] = tf
`

// TestConfigProtoParsesInTensorFlow checks our hand-encoded ConfigProto with
// TensorFlow's own protobuf classes.
func TestConfigProtoParsesInTensorFlow(t *testing.T) {
	py := testenv.Python(t)
	b := encodeConfig(SessionOptions{IntraOpThreads: 3, InterOpThreads: 2, GPUMemoryGrowth: true,
		VisibleDevices: "0,1", LogDevicePlacement: true, Device: "cpu"})
	script := protoPrelude + `
from tensorflow.core.protobuf import config_pb2
c = config_pb2.ConfigProto.FromString(bytes.fromhex(sys.argv[1]))
print(c.intra_op_parallelism_threads, c.inter_op_parallelism_threads, c.gpu_options.allow_growth,
      c.gpu_options.visible_device_list, c.allow_soft_placement, c.log_device_placement, dict(c.device_count))
`
	cmd := exec.Command(py, "-c", script, hex.EncodeToString(b))
	cmd.Env = append(os.Environ(), "TF_CPP_MIN_LOG_LEVEL=3")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(out)); got != "3 2 True 0,1 True True {'GPU': 0}" {
		t.Errorf("TensorFlow parsed our ConfigProto as %q", got)
	}
}

// TestServerDefParsesInTensorFlow checks the hand-encoded ServerDef and the
// ConfigProto fields of distributed sessions with TensorFlow's protobuf classes.
func TestServerDefParsesInTensorFlow(t *testing.T) {
	py := testenv.Python(t)
	b := encodeServerDef(ServerDef{Cluster: map[string][]string{"worker": {"a:1", "b:2"}, "chief": {"c:3"}},
		Job: "worker", Task: 1, Config: SessionOptions{CollectiveGroupLeader: "/job:worker/replica:0/task:0",
			DeviceFilters: []string{"/job:worker/task:1"}, OperationTimeoutMs: 60000, CollectiveNCCL: true}})
	script := protoPrelude + `
from tensorflow.core.protobuf import tensorflow_server_pb2
s = tensorflow_server_pb2.ServerDef.FromString(bytes.fromhex(sys.argv[1]))
jobs = sorted((j.name, sorted(j.tasks.items())) for j in s.cluster.job)
c = s.default_session_config
print(jobs, s.job_name, s.task_index, s.protocol, c.experimental.collective_group_leader,
      list(c.device_filters), c.operation_timeout_in_ms, c.experimental.collective_nccl)
`
	cmd := exec.Command(py, "-c", script, hex.EncodeToString(b))
	cmd.Env = append(os.Environ(), "TF_CPP_MIN_LOG_LEVEL=3")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	want := "[('chief', [(0, 'c:3')]), ('worker', [(0, 'a:1'), (1, 'b:2')])] worker 1 grpc " +
		"/job:worker/replica:0/task:0 ['/job:worker/task:1'] 60000 True"
	if got := strings.TrimSpace(string(out)); got != want {
		t.Errorf("TensorFlow parsed our ServerDef as\n%q, want\n%q", got, want)
	}
}
