package graph

// #include "tfapi.h"
import "C"

import (
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"
	"unsafe"
)

// SessionOptions configure a session. Zero values let TensorFlow decide.
type SessionOptions struct {
	Tags            []string // MetaGraphDef tags; default {"serve"}
	IntraOpThreads  int      // threads inside one op (0: all cores)
	InterOpThreads  int      // ops run in parallel (0: TensorFlow decides)
	GPUMemoryGrowth bool     // allocate GPU memory as needed instead of all at once
	// VisibleDevices restricts TensorFlow to some GPUs, as a comma-separated
	// list of indices ("0", "1,2"); "" sees them all.
	VisibleDevices string
	// Device is runtime.device: "cpu" gives the session no GPU at all
	// (ConfigProto device_count {"GPU": 0}); "", "auto" and "gpu" let
	// TensorFlow use its GPUs (internal/device enforces "gpu").
	Device string
	// LogDevicePlacement makes TensorFlow log where each op runs (--verbose).
	LogDevicePlacement bool

	// Target is the TensorFlow server a session runs on (Server.Target);
	// "" runs in process. DeviceFilters restrict the session to some devices
	// of the cluster ("/job:worker/task:1"), CollectiveGroupLeader names the
	// task that resolves collective groups ("/job:worker/replica:0/task:0"),
	// and OperationTimeoutMs bounds every run (0: no bound): see server.go.
	Target                string
	DeviceFilters         []string
	CollectiveGroupLeader string
	OperationTimeoutMs    int64
	// CollectiveNCCL makes collectives on GPUs use NCCL
	// (Experimental.collective_nccl; the ops' communication_hint is "auto").
	CollectiveNCCL bool
}

// Session is a SavedModel loaded into a TensorFlow session. Run, Save and
// Restore are safe from many goroutines; Close waits for runs in flight.
type Session struct {
	Dir       string
	MetaGraph *MetaGraph

	mu     sync.RWMutex // read-held by runs, write-held by Close
	c      *C.TF_Session
	graph  *C.TF_Graph
	closed bool
}

// newSessionOptions makes TF_SessionOptions holding opts' ConfigProto; the
// caller deletes them.
func newSessionOptions(opts SessionOptions) (*C.TF_SessionOptions, error) {
	copts := C.x_TF_NewSessionOptions()
	cfg := encodeConfig(opts)
	st := newStatus()
	C.x_TF_SetConfig(copts, unsafe.Pointer(&cfg[0]), C.size_t(len(cfg)), st.c)
	runtime.KeepAlive(cfg)
	if err := st.done(); err != nil {
		C.x_TF_DeleteSessionOptions(copts)
		return nil, err
	}
	return copts, nil
}

// LoadSavedModel loads the SavedModel in dir and decodes its MetaGraphDef.
func LoadSavedModel(dir string, opts SessionOptions) (*Session, error) {
	if err := Load(); err != nil {
		return nil, err
	}
	tags := opts.Tags
	if len(tags) == 0 {
		tags = []string{"serve"}
	}
	copts, err := newSessionOptions(opts)
	if err != nil {
		return nil, err
	}
	defer C.x_TF_DeleteSessionOptions(copts)
	if opts.Target != "" {
		ct := C.CString(opts.Target)
		C.x_TF_SetTarget(copts, ct)
		C.free(unsafe.Pointer(ct))
	}

	cdir := C.CString(dir)
	defer C.free(unsafe.Pointer(cdir))
	ctags := make([]*C.char, len(tags))
	for i, t := range tags {
		ctags[i] = C.CString(t)
		defer C.free(unsafe.Pointer(ctags[i]))
	}
	graph := C.x_TF_NewGraph()
	meta := C.x_TF_NewBuffer()
	defer C.x_TF_DeleteBuffer(meta)
	st := newStatus()
	c := C.x_TF_LoadSessionFromSavedModel(copts, nil, cdir, &ctags[0], C.int(len(ctags)), graph, meta, st.c)
	if err := st.done(); err != nil {
		C.x_TF_DeleteGraph(graph)
		return nil, err
	}
	s := &Session{Dir: dir, c: c, graph: graph}
	mg, err := ParseMetaGraph(C.GoBytes(meta.data, C.int(meta.length)))
	if err == nil {
		err = s.checkNames(mg)
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	s.MetaGraph = mg
	runtime.SetFinalizer(s, (*Session).Close)
	return s, nil
}

// checkNames makes sure every tensor the MetaGraphDef names exists, so a bad
// model fails at load, not in the middle of training.
func (s *Session) checkNames(mg *MetaGraph) error {
	for _, sig := range mg.Signatures {
		for _, set := range []map[string]TensorInfo{sig.Inputs, sig.Outputs} {
			for key, ti := range set {
				if _, err := s.output(ti.Name); err != nil {
					return fmt.Errorf("signature %s, %s: %w", sig.Key, key, err)
				}
			}
		}
	}
	if sd := mg.Saver; sd != nil {
		for _, name := range []string{sd.FilenameTensor, sd.SaveTensor, sd.RestoreOp} {
			if _, err := s.output(name); err != nil {
				return fmt.Errorf("saver: %w", err)
			}
		}
	}
	return nil
}

// output resolves "op:index" in the graph.
func (s *Session) output(name string) (C.TF_Output, error) {
	opName, idx, err := splitTensorName(name)
	if err != nil {
		return C.TF_Output{}, err
	}
	cname := C.CString(opName)
	defer C.free(unsafe.Pointer(cname))
	op := C.x_TF_GraphOperationByName(s.graph, cname)
	if op == nil {
		return C.TF_Output{}, errorf(CodeNotFound, "no operation %q in the graph", opName)
	}
	// A bare op name (a run target such as the restore op) may have no outputs.
	if strings.Contains(name, ":") && idx >= int(C.x_TF_OperationNumOutputs(op)) {
		return C.TF_Output{}, errorf(CodeNotFound, "operation %q has no output %d", opName, idx)
	}
	return C.TF_Output{oper: op, index: C.int(idx)}, nil
}

// Signature returns the signature key, or an error listing the valid keys.
func (s *Session) Signature(key string) (*Signature, error) {
	if sig, ok := s.MetaGraph.Signatures[key]; ok {
		return sig, nil
	}
	keys := make([]string, 0, len(s.MetaGraph.Signatures))
	for k := range s.MetaGraph.Signatures {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return nil, errorf(CodeNotFound, "%s has no signature %q (it has %s)", s.Dir, key, strings.Join(keys, ", "))
}

// Run runs a signature with feeds by input key and returns the outputs named
// by fetches (output keys), in that order. The caller closes the results.
func (s *Session) Run(signature string, feeds map[string]*Tensor, fetches ...string) ([]*Tensor, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	sig, err := s.Signature(signature)
	if err != nil {
		return nil, err
	}
	in, vals, err := s.feeds(sig, feeds)
	if err != nil {
		return nil, err
	}
	out := make([]C.TF_Output, len(fetches))
	for i, key := range fetches {
		ti, ok := sig.Outputs[key]
		if !ok {
			return nil, errorf(CodeInvalidArgument, "signature %s has no output %q (outputs: %s)",
				signature, key, strings.Join(sig.OutputKeys(), ", "))
		}
		if out[i], err = s.output(ti.Name); err != nil {
			return nil, err
		}
	}
	return s.run(in, vals, out, nil)
}

// feeds checks every input of sig is fed once, with its dtype and a
// compatible shape, and resolves the graph outputs to feed.
func (s *Session) feeds(sig *Signature, feeds map[string]*Tensor) ([]C.TF_Output, []*C.TF_Tensor, error) {
	for key := range feeds {
		if _, ok := sig.Inputs[key]; !ok {
			return nil, nil, errorf(CodeInvalidArgument, "signature %s has no input %q (inputs: %s)",
				sig.Key, key, strings.Join(sig.InputKeys(), ", "))
		}
	}
	keys := sig.InputKeys()
	in := make([]C.TF_Output, len(keys))
	vals := make([]*C.TF_Tensor, len(keys))
	for i, key := range keys {
		ti := sig.Inputs[key]
		t, ok := feeds[key]
		if !ok {
			return nil, nil, errorf(CodeInvalidArgument, "signature %s: input %q (%s%v) is not fed", sig.Key, key, ti.DType, ti.Shape)
		}
		if err := t.usable(ti.DType); err != nil {
			return nil, nil, errorf(CodeInvalidArgument, "signature %s, input %q: %s", sig.Key, key, err.(*Error).Message)
		}
		if !shapeFits(ti.Shape, t.shape) {
			return nil, nil, errorf(CodeInvalidArgument, "signature %s, input %q: shape %v does not fit %v", sig.Key, key, t.shape, ti.Shape)
		}
		var err error
		if in[i], err = s.output(ti.Name); err != nil {
			return nil, nil, err
		}
		vals[i] = t.c
	}
	return in, vals, nil
}

func shapeFits(want, got []int64) bool {
	if want == nil {
		return true
	}
	if len(want) != len(got) {
		return false
	}
	for i := range want {
		if want[i] >= 0 && want[i] != got[i] {
			return false
		}
	}
	return true
}

// run calls TF_SessionRun. The caller holds s.mu for reading.
func (s *Session) run(in []C.TF_Output, vals []*C.TF_Tensor, out []C.TF_Output, targets []*C.TF_Operation) ([]*Tensor, error) {
	outVals := make([]*C.TF_Tensor, len(out))
	var pin *C.TF_Output
	var pval **C.TF_Tensor
	var pout *C.TF_Output
	var poutVal **C.TF_Tensor
	var ptarget **C.TF_Operation
	if len(in) > 0 {
		pin, pval = &in[0], &vals[0]
	}
	if len(out) > 0 {
		pout, poutVal = &out[0], &outVals[0]
	}
	if len(targets) > 0 {
		ptarget = &targets[0]
	}
	st := newStatus()
	C.x_TF_SessionRun(s.c, nil, pin, pval, C.int(len(in)), pout, poutVal, C.int(len(out)),
		ptarget, C.int(len(targets)), nil, st.c)
	runtime.KeepAlive(in)
	runtime.KeepAlive(vals)
	runtime.KeepAlive(out)
	runtime.KeepAlive(targets)
	if err := st.done(); err != nil {
		return nil, err
	}
	result := make([]*Tensor, len(outVals))
	for i, c := range outVals {
		result[i] = wrapOutput(c)
	}
	return result, nil
}

// wrapOutput takes ownership of a tensor TensorFlow returned.
func wrapOutput(c *C.TF_Tensor) *Tensor {
	n := int(C.x_TF_NumDims(c))
	shape := make([]int64, n)
	for i := range shape {
		shape[i] = int64(C.x_TF_Dim(c, C.int(i)))
	}
	t := &Tensor{c: c, dtype: DType(C.x_TF_TensorType(c)), shape: shape}
	runtime.SetFinalizer(t, (*Tensor).Close)
	return t
}

// Save writes every variable to the checkpoint prefix (prefix.index and
// prefix.data-*) through the SaverDef's save op.
func (s *Session) Save(prefix string) error {
	return s.checkpoint(prefix, true)
}

// Restore loads every variable from the checkpoint prefix through the
// SaverDef's restore op. Keys the model lacks are ignored, so a serving model
// restores from a trainer checkpoint.
func (s *Session) Restore(prefix string) error {
	return s.checkpoint(prefix, false)
}

func (s *Session) checkpoint(prefix string, save bool) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	sd := s.MetaGraph.Saver
	if sd == nil {
		return errorf(CodeFailedPrecondition, "%s has no SaverDef (a model without variables?)", s.Dir)
	}
	name, err := NewStrings([]int64{}, [][]byte{[]byte(prefix)})
	if err != nil {
		return err
	}
	defer name.Close()
	feed, err := s.output(sd.FilenameTensor)
	if err != nil {
		return err
	}
	in, vals := []C.TF_Output{feed}, []*C.TF_Tensor{name.c}
	if save {
		out, err := s.output(sd.SaveTensor)
		if err != nil {
			return err
		}
		res, err := s.run(in, vals, []C.TF_Output{out}, nil)
		for _, t := range res {
			t.Close()
		}
		return err
	}
	op, err := s.output(sd.RestoreOp)
	if err != nil {
		return err
	}
	_, err = s.run(in, vals, nil, []*C.TF_Operation{op.oper})
	return err
}

// Close waits for runs in flight, then frees the session. It is idempotent.
func (s *Session) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	runtime.SetFinalizer(s, nil)
	st := newStatus()
	C.x_TF_CloseSession(s.c, st.c)
	err := st.done()
	st = newStatus()
	C.x_TF_DeleteSession(s.c, st.c)
	if err2 := st.done(); err == nil {
		err = err2
	}
	C.x_TF_DeleteGraph(s.graph)
	s.c, s.graph = nil, nil
	return err
}

// Device is one device of a session, as TF_SessionListDevices lists it.
type Device struct {
	Name        string `json:"name"` // "/job:localhost/replica:0/task:0/device:CPU:0"
	Type        string `json:"type"` // "CPU", "GPU"
	MemoryBytes int64  `json:"memory_bytes"`
}

// Devices lists the devices the session runs on.
func (s *Session) Devices() ([]Device, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	return listDevices(s.c)
}

// ListDevices lists the devices a session with opts would run on, through a
// session on an empty graph (no model needed: xcept version, the device guard).
func ListDevices(opts SessionOptions) ([]Device, error) {
	if err := Load(); err != nil {
		return nil, err
	}
	copts, err := newSessionOptions(opts)
	if err != nil {
		return nil, err
	}
	defer C.x_TF_DeleteSessionOptions(copts)
	graph := C.x_TF_NewGraph()
	defer C.x_TF_DeleteGraph(graph)
	st := newStatus()
	c := C.x_TF_NewSession(graph, copts, st.c)
	if err := st.done(); err != nil {
		return nil, err
	}
	devices, err := listDevices(c)
	st = newStatus()
	C.x_TF_CloseSession(c, st.c)
	st.done()
	st = newStatus()
	C.x_TF_DeleteSession(c, st.c)
	st.done()
	return devices, err
}

func listDevices(c *C.TF_Session) ([]Device, error) {
	st := newStatus()
	list := C.x_TF_SessionListDevices(c, st.c)
	if err := st.done(); err != nil {
		return nil, err
	}
	defer C.x_TF_DeleteDeviceList(list)
	n := int(C.x_TF_DeviceListCount(list))
	devices := make([]Device, 0, n)
	for i := 0; i < n; i++ {
		var d Device
		st := newStatus()
		d.Name = C.GoString(C.x_TF_DeviceListName(list, C.int(i), st.c))
		d.Type = C.GoString(C.x_TF_DeviceListType(list, C.int(i), st.c))
		d.MemoryBytes = int64(C.x_TF_DeviceListMemoryBytes(list, C.int(i), st.c))
		if err := st.done(); err != nil {
			return nil, err
		}
		devices = append(devices, d)
	}
	return devices, nil
}

// Variable reads a variable's current value by its name in the graph (for a
// Keras layer weight: "layer_name/kernel"). TensorFlow 2's SavedModel export
// reads every variable once as "<name>/Read/ReadVariableOp", which is the
// node fetched here.
func (s *Session) Variable(name string) (*Tensor, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	out, err := s.output(name + "/Read/ReadVariableOp:0")
	if err != nil {
		return nil, errorf(CodeNotFound, "%s: no variable %q", s.Dir, name)
	}
	res, err := s.run(nil, nil, []C.TF_Output{out}, nil)
	if err != nil {
		return nil, err
	}
	return res[0], nil
}
