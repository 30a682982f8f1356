package serve

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/xcept/xcept/internal/graph"
	pb "github.com/xcept/xcept/internal/serve/grpcapi/pb"
)

// gRPC API names in the request metrics.
const (
	apiGRPCPredict  = "grpc_predict"
	apiGRPCMetadata = "grpc_metadata"
	apiGRPCStatus   = "grpc_status"
)

// grpcAPI answers TF Serving's gRPC PredictionService and ModelService from
// the same model versions, batcher and limits as the REST API.
type grpcAPI struct {
	pb.UnimplementedPredictionServiceServer
	pb.UnimplementedModelServiceServer
	s *Server
}

// GRPC returns a gRPC server with TF Serving's PredictionService (Predict,
// GetModelMetadata), ModelService (GetModelStatus) and the standard
// grpc.health.v1 health service, whose status follows the served model.
func (s *Server) GRPC() (*grpc.Server, *health.Server) {
	g := grpc.NewServer(
		grpc.MaxRecvMsgSize(int(s.cfg.MaxBodyBytes)),
		grpc.UnaryInterceptor(s.grpcInstrument),
	)
	api := &grpcAPI{s: s}
	pb.RegisterPredictionServiceServer(g, api)
	pb.RegisterModelServiceServer(g, api)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(g, hs)
	s.setHealth(hs)
	return g, hs
}

// setHealth marks the server and the model SERVING while a version is loaded.
func (s *Server) setHealth(hs *health.Server) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if cur := s.mgr.acquire(); cur != nil {
		cur.release()
		st = healthpb.HealthCheckResponse_SERVING
	}
	hs.SetServingStatus("", st)
	hs.SetServingStatus(s.cfg.Name, st)
}

// grpcInstrument bounds each call by the request timeout, turns errors into
// TF Serving's status codes, counts and times calls in the same metrics as
// REST, and keeps a panic from taking the server down.
func (s *Server) grpcInstrument(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
	api := ""
	switch info.FullMethod {
	case pb.PredictionService_Predict_FullMethodName:
		api = apiGRPCPredict
	case pb.PredictionService_GetModelMetadata_FullMethodName:
		api = apiGRPCMetadata
	case pb.ModelService_GetModelStatus_FullMethodName:
		api = apiGRPCStatus
	default: // health checks
		return h(ctx, req)
	}
	start := time.Now()
	s.met.inFlight.Add(1)
	defer s.met.inFlight.Add(-1)
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	func() {
		defer func() {
			if p := recover(); p != nil {
				err = errorf(graph.CodeInternal, "internal error: %v", p)
			}
		}()
		resp, err = h(ctx, req)
	}()
	code, errCode := 200, ""
	if err != nil {
		e := asError(s.contextError(ctx, err))
		code, errCode = e.HTTPStatus(), statusName(e.Code)
		// TensorFlow's error codes are gRPC's, number for number.
		err = status.Error(codes.Code(e.Code), oneLine(e.Message))
	}
	s.met.request(api, code, time.Since(start), errCode)
	return resp, err
}

// servableForSpec resolves a ModelSpec as servableFor resolves a URL.
func (s *Server) servableForSpec(spec *pb.ModelSpec) (*servable, error) {
	if spec == nil || spec.GetName() == "" {
		return nil, invalidf("Missing ModelSpec")
	}
	version := ""
	if v := spec.GetVersion(); v != nil {
		version = strconv.FormatInt(v.GetValue(), 10)
	}
	return s.servableFor(spec.GetName(), version, spec.GetVersionLabel())
}

func modelSpec(name string, version int64, signature string) *pb.ModelSpec {
	return &pb.ModelSpec{Name: name, VersionChoice: &pb.ModelSpec_Version{Version: wrapperspb.Int64(version)}, SignatureName: signature}
}

// Predict runs a signature on the request's tensors through the batcher.
func (a *grpcAPI) Predict(ctx context.Context, r *pb.PredictRequest) (*pb.PredictResponse, error) {
	s := a.s
	cur, err := s.servableForSpec(r.GetModelSpec())
	if err != nil {
		return nil, err
	}
	defer cur.release()
	sigs := cur.model.Signatures()
	req := &PredictRequest{Signature: r.GetModelSpec().GetSignatureName(), Format: Columnar, Inputs: map[string]*Column{}}
	if req.Signature == "" {
		req.Signature = DefaultSignature
	}
	sig, ok := sigs[req.Signature]
	if !ok {
		return nil, invalidf("Serving signature name: %q not found in signature def (this model has %s)", req.Signature, strings.Join(servingSignatures(sigs), ", "))
	}
	for key, tp := range r.GetInputs() {
		ti, ok := sig.Inputs[key]
		if !ok {
			return nil, invalidf("input tensor alias not found in signature: %s. Inputs expected to be in the set {%s}.", key, strings.Join(sig.InputKeys(), ", "))
		}
		c, err := columnFromProto(key, tp, ti.DType)
		if err != nil {
			return nil, err
		}
		req.Inputs[key] = c
	}
	for _, key := range sig.InputKeys() {
		if _, ok := req.Inputs[key]; !ok {
			return nil, invalidf("input size does not match signature: %d!=%d len({%s}) != len({%s})",
				len(req.Inputs), len(sig.Inputs), strings.Join(slices.Sorted(maps.Keys(req.Inputs)), ", "), strings.Join(sig.InputKeys(), ", "))
		}
	}
	if err := req.checkImages(ctx, sig, s.cfg.Limits); err != nil {
		return nil, err
	}
	out, err := cur.runner.Predict(ctx, req.Signature, req.Inputs, req.RowPixels)
	if err != nil {
		return nil, err
	}
	keys := sig.OutputKeys()
	if f := r.GetOutputFilter(); len(f) > 0 {
		for _, k := range f {
			if _, ok := sig.Outputs[k]; !ok {
				return nil, invalidf("output tensor alias not found in signature: %s Outputs expected to be in the set {%s}.", k, strings.Join(keys, ", "))
			}
		}
		keys = f
	}
	resp := &pb.PredictResponse{ModelSpec: modelSpec(s.cfg.Name, cur.version, req.Signature), Outputs: map[string]*pb.TensorProto{}}
	for _, k := range keys {
		tp, err := protoFromColumn(out[k])
		if err != nil {
			return nil, err
		}
		resp.Outputs[k] = tp
	}
	return resp, nil
}

// GetModelMetadata answers the signature_def field, the only one TF Serving has.
func (a *grpcAPI) GetModelMetadata(ctx context.Context, r *pb.GetModelMetadataRequest) (*pb.GetModelMetadataResponse, error) {
	if len(r.GetMetadataField()) == 0 {
		return nil, invalidf("GetModelMetadataRequest must specify at least one metadata_field")
	}
	for _, f := range r.GetMetadataField() {
		if f != "signature_def" {
			return nil, invalidf("Metadata field %s is not supported", f)
		}
	}
	cur, err := a.s.servableForSpec(r.GetModelSpec())
	if err != nil {
		return nil, err
	}
	defer cur.release()
	m := &pb.SignatureDefMap{SignatureDef: map[string]*pb.SignatureDef{}}
	for key, sig := range cur.model.Signatures() {
		sd := &pb.SignatureDef{Inputs: map[string]*pb.TensorInfo{}, Outputs: map[string]*pb.TensorInfo{}, MethodName: sig.Method}
		for k, ti := range sig.Inputs {
			sd.Inputs[k] = tensorInfoProto(ti)
		}
		for k, ti := range sig.Outputs {
			sd.Outputs[k] = tensorInfoProto(ti)
		}
		m.SignatureDef[key] = sd
	}
	anyMap, err := anypb.New(m)
	if err != nil {
		return nil, err
	}
	return &pb.GetModelMetadataResponse{ModelSpec: modelSpec(a.s.cfg.Name, cur.version, ""), Metadata: map[string]*anypb.Any{"signature_def": anyMap}}, nil
}

func tensorInfoProto(ti graph.TensorInfo) *pb.TensorInfo {
	out := &pb.TensorInfo{Encoding: &pb.TensorInfo_Name{Name: ti.Name}, Dtype: pb.DataType(ti.DType), TensorShape: shapeProto(ti.Shape)}
	if ti.Shape == nil {
		out.TensorShape = &pb.TensorShapeProto{UnknownRank: true}
	}
	return out
}

func shapeProto(shape []int64) *pb.TensorShapeProto {
	sp := &pb.TensorShapeProto{}
	for _, d := range shape {
		sp.Dim = append(sp.Dim, &pb.TensorShapeProto_Dim{Size: d})
	}
	return sp
}

var stateProto = map[string]pb.ModelVersionStatus_State{
	StateLoading: pb.ModelVersionStatus_LOADING, StateAvailable: pb.ModelVersionStatus_AVAILABLE,
	StateUnloading: pb.ModelVersionStatus_UNLOADING, StateEnd: pb.ModelVersionStatus_END,
}

// GetModelStatus lists the versions as the REST status API does.
func (a *grpcAPI) GetModelStatus(ctx context.Context, r *pb.GetModelStatusRequest) (*pb.GetModelStatusResponse, error) {
	spec := r.GetModelSpec()
	if spec.GetName() == "" {
		return nil, invalidf("Missing model name in request.")
	}
	if spec.GetVersionLabel() != "" {
		return nil, invalidf("Unrecognized servable version label: %s (xcept serve has no version labels)", spec.GetVersionLabel())
	}
	if spec.GetName() != a.s.cfg.Name {
		return nil, notFoundf("Could not find any versions of model %s (this server has model %q)", spec.GetName(), a.s.cfg.Name)
	}
	want := int64(-1)
	if v := spec.GetVersion(); v != nil {
		want = v.GetValue()
	}
	resp := &pb.GetModelStatusResponse{}
	for _, st := range a.s.mgr.statuses() {
		if want >= 0 && st.Version != want {
			continue
		}
		vs := &pb.ModelVersionStatus{Version: st.Version, State: stateProto[st.State], Status: &pb.StatusProto{}}
		if st.Err != nil {
			vs.Status.ErrorCode, vs.Status.ErrorMessage = pb.Code(st.Err.Code), st.Err.Message
		}
		resp.ModelVersionStatus = append(resp.ModelVersionStatus, vs)
	}
	if len(resp.ModelVersionStatus) == 0 {
		if want >= 0 {
			return nil, notFoundf("Could not find version %d of model %s", want, spec.GetName())
		}
		return nil, notFoundf("Could not find any versions of model %s", spec.GetName())
	}
	return resp, nil
}

// columnFromProto reads a TensorProto (typed value fields or
// tensor_content, little-endian) of the dtype the signature takes. As in
// TensorFlow, a single value fills the whole shape.
func columnFromProto(key string, tp *pb.TensorProto, want graph.DType) (*Column, error) {
	if graph.DType(tp.GetDtype()) != want {
		return nil, invalidf("input %q: expects a %v tensor, but %v is provided", key, want, graph.DType(tp.GetDtype()))
	}
	if tp.GetTensorShape() == nil || tp.GetTensorShape().GetUnknownRank() {
		return nil, invalidf("input %q: the tensor has no shape", key)
	}
	shape := []int64{}
	n := int64(1)
	for _, d := range tp.GetTensorShape().GetDim() {
		if d.GetSize() < 0 {
			return nil, invalidf("input %q: dimension %d is negative", key, d.GetSize())
		}
		shape = append(shape, d.GetSize())
		if n *= d.GetSize(); n > math.MaxInt32 {
			return nil, invalidf("input %q: shape %s is too large", key, shapeString(shape))
		}
	}
	c := &Column{DType: want, Shape: shape}
	var err error
	switch want {
	case graph.Float:
		c.Data, err = values(key, int(n), tp.GetFloatVal(), tp.GetTensorContent(), 4, func(b []byte) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(b)) })
	case graph.Double:
		c.Data, err = values(key, int(n), tp.GetDoubleVal(), tp.GetTensorContent(), 8, func(b []byte) float64 { return math.Float64frombits(binary.LittleEndian.Uint64(b)) })
	case graph.Int32:
		c.Data, err = values(key, int(n), tp.GetIntVal(), tp.GetTensorContent(), 4, func(b []byte) int32 { return int32(binary.LittleEndian.Uint32(b)) })
	case graph.Int64:
		c.Data, err = values(key, int(n), tp.GetInt64Val(), tp.GetTensorContent(), 8, func(b []byte) int64 { return int64(binary.LittleEndian.Uint64(b)) })
	case graph.Uint8:
		c.Data, err = values(key, int(n), narrow[uint8](tp.GetIntVal()), tp.GetTensorContent(), 1, func(b []byte) uint8 { return b[0] })
	case graph.Int8:
		c.Data, err = values(key, int(n), narrow[int8](tp.GetIntVal()), tp.GetTensorContent(), 1, func(b []byte) int8 { return int8(b[0]) })
	case graph.Int16:
		c.Data, err = values(key, int(n), narrow[int16](tp.GetIntVal()), tp.GetTensorContent(), 2, func(b []byte) int16 { return int16(binary.LittleEndian.Uint16(b)) })
	case graph.Uint16:
		c.Data, err = values(key, int(n), narrow[uint16](tp.GetIntVal()), tp.GetTensorContent(), 2, func(b []byte) uint16 { return binary.LittleEndian.Uint16(b) })
	case graph.Bool:
		c.Data, err = values(key, int(n), tp.GetBoolVal(), tp.GetTensorContent(), 1, func(b []byte) bool { return b[0] != 0 })
	case graph.String:
		c.Data, err = values(key, int(n), tp.GetStringVal(), nil, 0, func([]byte) []byte { return nil })
	default:
		return nil, invalidf("input %q: %v tensors are not supported over gRPC by xcept serve", key, want)
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

// narrow converts int_val (TensorFlow's field for every small integer type).
func narrow[T uint8 | int8 | int16 | uint16](vs []int32) []T {
	if vs == nil {
		return nil
	}
	out := make([]T, len(vs))
	for i, v := range vs {
		out[i] = T(v)
	}
	return out
}

func values[T any](key string, n int, typed []T, content []byte, size int, decode func([]byte) T) ([]T, error) {
	switch {
	case len(content) > 0:
		if len(content) != n*size {
			return nil, invalidf("input %q: tensor_content has %d bytes, the shape needs %d", key, len(content), n*size)
		}
		out := make([]T, n)
		for i := range out {
			out[i] = decode(content[i*size:])
		}
		return out, nil
	case len(typed) == n:
		return typed, nil
	case len(typed) == 1 && n > 1:
		out := make([]T, n)
		for i := range out {
			out[i] = typed[0]
		}
		return out, nil
	}
	return nil, invalidf("input %q: %d values for a shape of %d elements", key, len(typed), n)
}

// protoFromColumn writes an output in TensorFlow's typed value fields, as
// TF Serving does.
func protoFromColumn(c *Column) (*pb.TensorProto, error) {
	if c == nil {
		return nil, errorf(graph.CodeInternal, "the model gave no such output")
	}
	tp := &pb.TensorProto{Dtype: pb.DataType(c.DType), TensorShape: shapeProto(c.Shape)}
	switch d := c.Data.(type) {
	case []float32:
		if c.DType != graph.Float {
			// float16 and bfloat16 outputs travel as float32 in Go.
			tp.Dtype = pb.DataType_DT_FLOAT
		}
		tp.FloatVal = d
	case []float64:
		tp.DoubleVal = d
	case []int32:
		tp.IntVal = d
	case []int64:
		tp.Int64Val = d
	case []uint8:
		tp.IntVal = widen(d)
	case []int8:
		tp.IntVal = widen(d)
	case []int16:
		tp.IntVal = widen(d)
	case []uint16:
		tp.IntVal = widen(d)
	case []bool:
		tp.BoolVal = d
	case [][]byte:
		tp.StringVal = d
	default:
		return nil, errorf(graph.CodeInternal, "output of %T cannot be sent", c.Data)
	}
	return tp, nil
}

func widen[T uint8 | int8 | int16 | uint16](vs []T) []int32 {
	out := make([]int32, len(vs))
	for i, v := range vs {
		out[i] = int32(v)
	}
	return out
}

// ServeGRPC answers gRPC on ln until ctx is done, then drains like Serve:
// health turns NOT_SERVING, calls in flight get grace to finish.
func (s *Server) ServeGRPC(ctx context.Context, ln net.Listener, grace time.Duration) error {
	g, hs := s.GRPC()
	errc := make(chan error, 1)
	go func() { errc <- g.Serve(ln) }()
	// Health follows reloads: a cheap poll of what is being served.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case err := <-errc:
			return err
		case <-tick.C:
			s.setHealth(hs)
		case <-ctx.Done():
			hs.Shutdown()
			done := make(chan struct{})
			go func() { g.GracefulStop(); close(done) }()
			select {
			case <-done:
			case <-time.After(grace):
				g.Stop()
				return fmt.Errorf("gRPC calls still running after %v; stopped them", grace)
			}
			if err := <-errc; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				return err
			}
			return nil
		}
	}
}
