package serve

import (
	"encoding/json"
	"strconv"

	"github.com/xcept/xcept/internal/graph"
)

// The JSON of TF Serving's GetModelStatusResponse and GetModelMetadataResponse,
// as its REST API prints them (protobuf JSON with primitive fields always
// printed and proto field names kept; int64 values are strings).

type statusJSON struct {
	Versions []versionStatusJSON `json:"model_version_status"`
}

type versionStatusJSON struct {
	Version string `json:"version"`
	State   string `json:"state"`
	Status  struct {
		ErrorCode    string `json:"error_code"`
		ErrorMessage string `json:"error_message"`
	} `json:"status"`
}

// Version states (tensorflow_serving/apis/get_model_status.proto).
const (
	StateLoading   = "LOADING"
	StateAvailable = "AVAILABLE"
	StateUnloading = "UNLOADING"
	StateEnd       = "END"
)

// VersionState is what the status API says about one version.
type VersionState struct {
	Version int64
	State   string
	Err     *Error // why a load failed; nil otherwise
}

func versionStatus(v VersionState) versionStatusJSON {
	j := versionStatusJSON{Version: strconv.FormatInt(v.Version, 10), State: v.State}
	j.Status.ErrorCode = "OK"
	if v.Err != nil {
		j.Status.ErrorCode = statusName(v.Err.Code)
		j.Status.ErrorMessage = v.Err.Message
	}
	return j
}

type metadataJSON struct {
	ModelSpec struct {
		Name          string `json:"name"`
		SignatureName string `json:"signature_name"`
		Version       string `json:"version"`
	} `json:"model_spec"`
	Metadata struct {
		SignatureDef struct {
			SignatureDef map[string]signatureJSON `json:"signature_def"`
		} `json:"signature_def"`
	} `json:"metadata"`
}

type signatureJSON struct {
	Inputs     map[string]tensorInfoJSON `json:"inputs"`
	Outputs    map[string]tensorInfoJSON `json:"outputs"`
	MethodName string                    `json:"method_name"`
	Defaults   struct{}                  `json:"defaults"`
}

type tensorInfoJSON struct {
	DType       string `json:"dtype"`
	TensorShape struct {
		Dim         []dimJSON `json:"dim"`
		UnknownRank bool      `json:"unknown_rank"`
	} `json:"tensor_shape"`
	Name string `json:"name"`
}

type dimJSON struct {
	Size string `json:"size"`
	Name string `json:"name"`
}

// dtypeNames are the DataType enum names (tensorflow/core/framework/types.proto).
var dtypeNames = map[graph.DType]string{
	1: "DT_FLOAT", 2: "DT_DOUBLE", 3: "DT_INT32", 4: "DT_UINT8", 5: "DT_INT16", 6: "DT_INT8",
	7: "DT_STRING", 8: "DT_COMPLEX64", 9: "DT_INT64", 10: "DT_BOOL", 11: "DT_QINT8", 12: "DT_QUINT8",
	13: "DT_QINT32", 14: "DT_BFLOAT16", 15: "DT_QINT16", 16: "DT_QUINT16", 17: "DT_UINT16",
	18: "DT_COMPLEX128", 19: "DT_HALF", 20: "DT_RESOURCE", 21: "DT_VARIANT", 22: "DT_UINT32", 23: "DT_UINT64",
}

func dtypeName(d graph.DType) string {
	if n, ok := dtypeNames[d]; ok {
		return n
	}
	return "DT_INVALID"
}

func tensorInfo(ti graph.TensorInfo) tensorInfoJSON {
	j := tensorInfoJSON{DType: dtypeName(ti.DType), Name: ti.Name}
	j.TensorShape.Dim = []dimJSON{}
	j.TensorShape.UnknownRank = ti.Shape == nil
	for _, d := range ti.Shape {
		j.TensorShape.Dim = append(j.TensorShape.Dim, dimJSON{Size: strconv.FormatInt(d, 10)})
	}
	return j
}

// metadata is the model metadata response for one loaded version.
func metadata(name string, version int64, sigs map[string]*graph.Signature) ([]byte, error) {
	var m metadataJSON
	m.ModelSpec.Name = name
	m.ModelSpec.Version = strconv.FormatInt(version, 10)
	m.Metadata.SignatureDef.SignatureDef = map[string]signatureJSON{}
	for key, sig := range sigs {
		s := signatureJSON{Inputs: map[string]tensorInfoJSON{}, Outputs: map[string]tensorInfoJSON{}, MethodName: sig.Method}
		for k, ti := range sig.Inputs {
			s.Inputs[k] = tensorInfo(ti)
		}
		for k, ti := range sig.Outputs {
			s.Outputs[k] = tensorInfo(ti)
		}
		m.Metadata.SignatureDef.SignatureDef[key] = s
	}
	return marshal(m)
}

func marshal(v any) ([]byte, error) {
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
