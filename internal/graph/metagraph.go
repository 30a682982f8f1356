package graph

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
)

// TensorInfo describes one input or output of a signature.
type TensorInfo struct {
	Name  string  // graph tensor name, "op:index"
	DType DType   //
	Shape []int64 // -1 for an unknown dimension; nil when the rank is unknown
}

// Signature is one SignatureDef of a MetaGraphDef, keyed by input and output
// key (the names the Keras builder gave them, not graph tensor names).
type Signature struct {
	Key     string
	Method  string
	Inputs  map[string]TensorInfo
	Outputs map[string]TensorInfo
}

// InputKeys and OutputKeys are the keys in sorted order.
func (s *Signature) InputKeys() []string  { return sortedKeys(s.Inputs) }
func (s *Signature) OutputKeys() []string { return sortedKeys(s.Outputs) }

func sortedKeys(m map[string]TensorInfo) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// SaverDef names the graph's checkpoint ops.
type SaverDef struct {
	FilenameTensor string // string scalar to feed with the checkpoint prefix
	SaveTensor     string // fetch it to save
	RestoreOp      string // run it as a target to restore
}

// MetaGraph is the part of a MetaGraphDef xcept needs.
type MetaGraph struct {
	Tags              []string
	TensorFlowVersion string
	Signatures        map[string]*Signature
	Saver             *SaverDef // nil when the model has no variables
}

// MetaGraphDef field numbers (tensorflow/core/protobuf/meta_graph.proto and friends).
const (
	mgMetaInfo  = 1
	mgSaverDef  = 3
	mgSignature = 5

	miTags      = 4
	miTFVersion = 5

	sdFilename = 1
	sdSave     = 2
	sdRestore  = 3

	sigInputs  = 1
	sigOutputs = 2
	sigMethod  = 3

	tiName  = 1
	tiDType = 2
	tiShape = 3

	shapeDim     = 2
	shapeUnknown = 3
	dimSize      = 1
)

// ParseMetaGraph decodes a serialized MetaGraphDef, skipping the GraphDef.
func ParseMetaGraph(b []byte) (*MetaGraph, error) {
	mg := &MetaGraph{Signatures: map[string]*Signature{}}
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		switch {
		case num == mgMetaInfo && typ == protowire.BytesType:
			return mg.parseMetaInfo(v)
		case num == mgSaverDef && typ == protowire.BytesType:
			sd, err := parseSaverDef(v)
			mg.Saver = sd
			return err
		case num == mgSignature && typ == protowire.BytesType:
			key, val, err := parseMapEntry(v)
			if err != nil {
				return err
			}
			sig, err := parseSignature(key, val)
			mg.Signatures[key] = sig
			return err
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("decoding MetaGraphDef: %w", err)
	}
	return mg, nil
}

func (mg *MetaGraph) parseMetaInfo(b []byte) error {
	return eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case miTags:
			mg.Tags = append(mg.Tags, string(v))
		case miTFVersion:
			mg.TensorFlowVersion = string(v)
		}
		return nil
	})
}

func parseSaverDef(b []byte) (*SaverDef, error) {
	sd := &SaverDef{}
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case sdFilename:
			sd.FilenameTensor = string(v)
		case sdSave:
			sd.SaveTensor = string(v)
		case sdRestore:
			sd.RestoreOp = string(v)
		}
		return nil
	})
	return sd, err
}

// parseMapEntry splits a map<string, Message> entry into key and value bytes.
func parseMapEntry(b []byte) (key string, val []byte, err error) {
	err = eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if typ == protowire.BytesType && num == 1 {
			key = string(v)
		} else if typ == protowire.BytesType && num == 2 {
			val = v
		}
		return nil
	})
	return key, val, err
}

func parseSignature(key string, b []byte) (*Signature, error) {
	sig := &Signature{Key: key, Inputs: map[string]TensorInfo{}, Outputs: map[string]TensorInfo{}}
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case sigInputs, sigOutputs:
			k, val, err := parseMapEntry(v)
			if err != nil {
				return err
			}
			ti, err := parseTensorInfo(val)
			if err != nil {
				return err
			}
			if num == sigInputs {
				sig.Inputs[k] = ti
			} else {
				sig.Outputs[k] = ti
			}
		case sigMethod:
			sig.Method = string(v)
		}
		return nil
	})
	return sig, err
}

func parseTensorInfo(b []byte) (TensorInfo, error) {
	var ti TensorInfo
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error {
		switch {
		case num == tiName && typ == protowire.BytesType:
			ti.Name = string(v)
		case num == tiDType && typ == protowire.VarintType:
			ti.DType = DType(n)
		case num == tiShape && typ == protowire.BytesType:
			shape, err := parseShape(v)
			ti.Shape = shape
			return err
		}
		return nil
	})
	return ti, err
}

func parseShape(b []byte) ([]int64, error) {
	shape := []int64{}
	unknownRank := false
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error {
		switch {
		case num == shapeDim && typ == protowire.BytesType:
			size := int64(0)
			err := eachField(v, func(num protowire.Number, typ protowire.Type, _ []byte, n uint64) error {
				if num == dimSize && typ == protowire.VarintType {
					size = int64(n)
				}
				return nil
			})
			shape = append(shape, size)
			return err
		case num == shapeUnknown && typ == protowire.VarintType:
			unknownRank = n != 0
		}
		return nil
	})
	if unknownRank {
		return nil, err
	}
	return shape, err
}

// eachField calls fn for every field of a message: v holds the bytes of a
// length-delimited field, n the value of a varint or fixed field.
func eachField(b []byte, fn func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error) error {
	for len(b) > 0 {
		num, typ, tagLen := protowire.ConsumeTag(b)
		if tagLen < 0 {
			return protowire.ParseError(tagLen)
		}
		b = b[tagLen:]
		var v []byte
		var n uint64
		var m int
		switch typ {
		case protowire.VarintType:
			n, m = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var x uint32
			x, m = protowire.ConsumeFixed32(b)
			n = uint64(x)
		case protowire.Fixed64Type:
			n, m = protowire.ConsumeFixed64(b)
		case protowire.BytesType:
			v, m = protowire.ConsumeBytes(b)
		default:
			m = protowire.ConsumeFieldValue(num, typ, b)
		}
		if m < 0 {
			return protowire.ParseError(m)
		}
		b = b[m:]
		if err := fn(num, typ, v, n); err != nil {
			return err
		}
	}
	return nil
}

// splitTensorName splits "op:1" into ("op", 1); a bare "op" is output 0.
func splitTensorName(name string) (string, int, error) {
	op, idx, found := strings.Cut(name, ":")
	if !found {
		return name, 0, nil
	}
	i, err := strconv.Atoi(idx)
	if err != nil || i < 0 {
		return "", 0, fmt.Errorf("bad tensor name %q", name)
	}
	return op, i, nil
}

// ConfigProto field numbers (tensorflow/core/protobuf/config.proto).
const (
	cfgDeviceCount   = 1 // map<string, int32>: most devices of each type
	cfgIntraOp       = 2
	cfgInterOp       = 5
	cfgGPUOptions    = 6
	cfgSoftPlacement = 7
	cfgLogPlacement  = 8
	cfgDeviceFilters = 4  // repeated string
	cfgOpTimeoutMs   = 11 // operation_timeout_in_ms
	cfgExperimental  = 16
	expGroupLeader   = 1 // Experimental.collective_group_leader
	expNCCL          = 7 // Experimental.collective_nccl
	gpuAllowGrowth   = 4
	gpuVisibleDevice = 5
)

// encodeConfig serialises the ConfigProto for SessionOptions.
func encodeConfig(o SessionOptions) []byte {
	var b []byte
	if o.Device == "cpu" {
		var entry []byte
		entry = protowire.AppendTag(entry, 1, protowire.BytesType)
		entry = protowire.AppendString(entry, "GPU")
		entry = protowire.AppendTag(entry, 2, protowire.VarintType)
		entry = protowire.AppendVarint(entry, 0)
		b = protowire.AppendTag(b, cfgDeviceCount, protowire.BytesType)
		b = protowire.AppendBytes(b, entry)
	}
	if o.IntraOpThreads > 0 {
		b = protowire.AppendTag(b, cfgIntraOp, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(o.IntraOpThreads))
	}
	if o.InterOpThreads > 0 {
		b = protowire.AppendTag(b, cfgInterOp, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(o.InterOpThreads))
	}
	var gpu []byte
	if o.GPUMemoryGrowth {
		gpu = protowire.AppendTag(gpu, gpuAllowGrowth, protowire.VarintType)
		gpu = protowire.AppendVarint(gpu, 1)
	}
	if o.VisibleDevices != "" {
		gpu = protowire.AppendTag(gpu, gpuVisibleDevice, protowire.BytesType)
		gpu = protowire.AppendString(gpu, o.VisibleDevices)
	}
	if len(gpu) > 0 {
		b = protowire.AppendTag(b, cfgGPUOptions, protowire.BytesType)
		b = protowire.AppendBytes(b, gpu)
	}
	// Soft placement lets ops without a GPU kernel fall back to the CPU.
	b = protowire.AppendTag(b, cfgSoftPlacement, protowire.VarintType)
	b = protowire.AppendVarint(b, 1)
	if o.LogDevicePlacement {
		b = protowire.AppendTag(b, cfgLogPlacement, protowire.VarintType)
		b = protowire.AppendVarint(b, 1)
	}
	for _, f := range o.DeviceFilters {
		b = protowire.AppendTag(b, cfgDeviceFilters, protowire.BytesType)
		b = protowire.AppendString(b, f)
	}
	if o.OperationTimeoutMs > 0 {
		b = protowire.AppendTag(b, cfgOpTimeoutMs, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(o.OperationTimeoutMs))
	}
	var exp []byte
	if o.CollectiveGroupLeader != "" {
		exp = protowire.AppendTag(exp, expGroupLeader, protowire.BytesType)
		exp = protowire.AppendString(exp, o.CollectiveGroupLeader)
	}
	if o.CollectiveNCCL {
		exp = protowire.AppendTag(exp, expNCCL, protowire.VarintType)
		exp = protowire.AppendVarint(exp, 1)
	}
	if len(exp) > 0 {
		b = protowire.AppendTag(b, cfgExperimental, protowire.BytesType)
		b = protowire.AppendBytes(b, exp)
	}
	return b
}
