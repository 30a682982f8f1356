package export

import (
	"fmt"
	"os"
	"strconv"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/xcept/xcept/internal/calibrate"
)

// ONNX metadata_props keys of the calibration (onnxruntime:
// InferenceSession.get_modelmeta().custom_metadata_map).
const (
	ONNXKeyTemperature     = "xcept.temperature"
	ONNXKeyRejectScore     = "xcept.reject.score"
	ONNXKeyRejectThreshold = "xcept.reject.threshold"
	ONNXKeyRejectAccept    = "xcept.reject.accept"
)

// onnxModelMetadataProps is ModelProto.metadata_props's field number
// (onnx.proto: repeated StringStringEntryProto metadata_props = 14;
// StringStringEntryProto: key = 1, value = 2).
const onnxModelMetadataProps = 14

// calibrationProps are the metadata_props an ONNX export carries.
func calibrationProps(c *calibrate.Deployed) [][2]string {
	if c == nil {
		return nil
	}
	props := [][2]string{{ONNXKeyTemperature, strconv.FormatFloat(c.Temperature, 'g', -1, 64)}}
	if r := c.Reject; r != nil {
		props = append(props,
			[2]string{ONNXKeyRejectScore, r.Score},
			[2]string{ONNXKeyRejectThreshold, strconv.FormatFloat(r.Threshold, 'g', -1, 64)},
			[2]string{ONNXKeyRejectAccept, strconv.FormatFloat(r.Accept, 'g', -1, 64)})
	}
	return props
}

// appendONNXMetadata adds metadata_props entries to the ONNX file at path.
// A protobuf message's fields may come in any order and a repeated field's
// entries are concatenated, so appending the encoded entries to the
// serialised ModelProto adds them without rewriting the graph.
func appendONNXMetadata(path string, props [][2]string) error {
	if len(props) == 0 {
		return nil
	}
	var b []byte
	for _, p := range props {
		var entry []byte
		entry = protowire.AppendTag(entry, 1, protowire.BytesType)
		entry = protowire.AppendString(entry, p[0])
		entry = protowire.AppendTag(entry, 2, protowire.BytesType)
		entry = protowire.AppendString(entry, p[1])
		b = protowire.AppendTag(b, onnxModelMetadataProps, protowire.BytesType)
		b = protowire.AppendBytes(b, entry)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// readONNXMetadata returns the metadata_props of a serialised ModelProto
// (the test's independent check is onnxruntime's own reader).
func readONNXMetadata(data []byte) (map[string]string, error) {
	out := map[string]string{}
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		data = data[n:]
		if num != onnxModelMetadataProps || typ != protowire.BytesType {
			m := protowire.ConsumeFieldValue(num, typ, data)
			if m < 0 {
				return nil, protowire.ParseError(m)
			}
			data = data[m:]
			continue
		}
		entry, m := protowire.ConsumeBytes(data)
		if m < 0 {
			return nil, protowire.ParseError(m)
		}
		data = data[m:]
		var key, value string
		for len(entry) > 0 {
			num, typ, n := protowire.ConsumeTag(entry)
			if n < 0 || typ != protowire.BytesType {
				return nil, fmt.Errorf("metadata_props entry: field %d of wire type %d", num, typ)
			}
			v, m := protowire.ConsumeString(entry[n:])
			if m < 0 {
				return nil, protowire.ParseError(m)
			}
			switch num {
			case 1:
				key = v
			case 2:
				value = v
			}
			entry = entry[n+m:]
		}
		out[key] = value
	}
	return out, nil
}
