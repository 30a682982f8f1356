package graph

import (
	"encoding/hex"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/xcept/xcept/internal/testenv"
)

// TestConfigProtoParsesInTensorFlow checks our hand-encoded ConfigProto with
// TensorFlow's own protobuf classes.
func TestConfigProtoParsesInTensorFlow(t *testing.T) {
	py := testenv.Python(t)
	b := encodeConfig(SessionOptions{IntraOpThreads: 3, InterOpThreads: 2, GPUMemoryGrowth: true,
		VisibleDevices: "0,1", LogDevicePlacement: true, Device: "cpu"})
	script := `
import sys
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
