package graph

// #include "tfapi.h"
import "C"

import (
	"fmt"
	"math"
	"runtime"
	"unsafe"
)

// DType is a TensorFlow element type (TF_DataType).
type DType int

// The element types xcept uses.
const (
	Float    DType = 1
	Double   DType = 2
	Int32    DType = 3
	Uint8    DType = 4
	Int16    DType = 5
	Int8     DType = 6
	String   DType = 7
	Int64    DType = 9
	Bool     DType = 10
	BFloat16 DType = 14
	Uint16   DType = 17
	Half     DType = 19
	Resource DType = 20
	Variant  DType = 21
)

var dtypeNames = map[DType]string{Float: "float32", Double: "float64", Int32: "int32", Uint8: "uint8",
	Int16: "int16", Int8: "int8", String: "string", Int64: "int64", Bool: "bool", BFloat16: "bfloat16",
	Uint16: "uint16", Half: "float16", Resource: "resource", Variant: "variant"}

func (d DType) String() string {
	if n, ok := dtypeNames[d]; ok {
		return n
	}
	return fmt.Sprintf("dtype(%d)", int(d))
}

// elemSize is the bytes per element of fixed-size types, 0 for the others.
func (d DType) elemSize() int {
	switch d {
	case Double, Int64:
		return 8
	case Float, Int32:
		return 4
	case Half, BFloat16, Int16, Uint16:
		return 2
	case Uint8, Int8, Bool:
		return 1
	}
	return 0
}

// Scalar is a Go type with a TensorFlow counterpart of the same layout.
type Scalar interface {
	~float32 | ~float64 | ~int32 | ~int64 | ~uint8 | ~int8 | ~int16 | ~uint16 | ~bool
}

func dtypeOf[T Scalar]() DType {
	var z T
	switch any(z).(type) {
	case float32:
		return Float
	case float64:
		return Double
	case int32:
		return Int32
	case int64:
		return Int64
	case uint8:
		return Uint8
	case int8:
		return Int8
	case int16:
		return Int16
	case uint16:
		return Uint16
	case bool:
		return Bool
	}
	panic("unreachable: Scalar covers only the types above")
}

// Tensor is a TensorFlow tensor in C memory. Close it when done: the Go
// garbage collector cannot see C memory, so a finalizer is only a safety net.
type Tensor struct {
	c     *C.TF_Tensor
	dtype DType
	shape []int64
	// ownStrings: we initialised the TF_TStrings. TensorFlow 2.21 frees them
	// in TF_DeleteTensor; freeing them first is harmless (TF_StringDealloc
	// resets the string) and keeps libraries that free only the buffer from
	// leaking.
	ownStrings bool
}

// Shape is the tensor's dimensions ([] for a scalar).
func (t *Tensor) Shape() []int64 { return append([]int64{}, t.shape...) }

// DType is the tensor's element type.
func (t *Tensor) DType() DType { return t.dtype }

// Len is the number of elements.
func (t *Tensor) Len() int { return int(numElements(t.shape)) }

func numElements(shape []int64) int64 {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	return n
}

func checkShape(shape []int64, n int) error {
	for _, d := range shape {
		if d < 0 {
			return errorf(CodeInvalidArgument, "negative dimension in shape %v", shape)
		}
	}
	if numElements(shape) != int64(n) {
		return errorf(CodeInvalidArgument, "shape %v holds %d elements, got %d values", shape, numElements(shape), n)
	}
	return nil
}

// allocate makes an uninitialised tensor of nbytes.
func allocate(dtype DType, shape []int64, nbytes int) (*Tensor, error) {
	if err := Load(); err != nil {
		return nil, err
	}
	var dims *C.int64_t
	if len(shape) > 0 {
		dims = (*C.int64_t)(unsafe.Pointer(&shape[0]))
	}
	c := C.x_TF_AllocateTensor(C.TF_DataType(dtype), dims, C.int(len(shape)), C.size_t(nbytes))
	runtime.KeepAlive(shape)
	if c == nil {
		return nil, errorf(CodeResourceExhausted, "cannot allocate a %s tensor of shape %v", dtype, shape)
	}
	t := &Tensor{c: c, dtype: dtype, shape: append([]int64{}, shape...)}
	runtime.SetFinalizer(t, (*Tensor).Close)
	return t, nil
}

// bytes is the tensor's C buffer viewed as a Go slice (valid until Close).
func (t *Tensor) bytes() []byte {
	n := int(C.x_TF_TensorByteSize(t.c))
	p := C.x_TF_TensorData(t.c)
	if n == 0 || p == nil {
		return nil
	}
	return unsafe.Slice((*byte)(p), n)
}

// NewTensor copies values into a new tensor of the given shape; the element
// type follows from T (float32 → float32, int64 → int64, bool → bool, ...).
func NewTensor[T Scalar](shape []int64, values []T) (*Tensor, error) {
	return newFromBits(dtypeOf[T](), shape, values)
}

// newFromBits copies values, whose memory layout is dtype's, into a new tensor.
func newFromBits[T Scalar](dtype DType, shape []int64, values []T) (*Tensor, error) {
	if err := checkShape(shape, len(values)); err != nil {
		return nil, err
	}
	t, err := allocate(dtype, shape, len(values)*dtype.elemSize())
	if err != nil {
		return nil, err
	}
	if len(values) > 0 {
		copy(t.bytes(), unsafe.Slice((*byte)(unsafe.Pointer(&values[0])), len(values)*dtype.elemSize()))
	}
	return t, nil
}

// NewScalar is NewTensor for a single value of shape [].
func NewScalar[T Scalar](v T) (*Tensor, error) { return NewTensor([]int64{}, []T{v}) }

// NewHalf makes a float16 tensor, rounding each value to nearest even.
func NewHalf(shape []int64, values []float32) (*Tensor, error) {
	return newFromBits(Half, shape, convert(values, float32ToHalf))
}

// NewBFloat16 makes a bfloat16 tensor, rounding each value to nearest even.
func NewBFloat16(shape []int64, values []float32) (*Tensor, error) {
	return newFromBits(BFloat16, shape, convert(values, float32ToBFloat16))
}

func convert(values []float32, conv func(float32) uint16) []uint16 {
	bits := make([]uint16, len(values))
	for i, v := range values {
		bits[i] = conv(v)
	}
	return bits
}

// NewStrings makes a string tensor (TF_TString elements) holding copies of values.
func NewStrings(shape []int64, values [][]byte) (*Tensor, error) {
	if err := checkShape(shape, len(values)); err != nil {
		return nil, err
	}
	size := int(unsafe.Sizeof(C.TF_TString{}))
	t, err := allocate(String, shape, len(values)*size)
	if err != nil {
		return nil, err
	}
	t.ownStrings = true
	for i, v := range t.tstrings() {
		C.x_TF_StringInit(v)
		var p *C.char
		if len(values[i]) > 0 {
			p = (*C.char)(unsafe.Pointer(&values[i][0]))
		}
		C.x_TF_StringCopy(v, p, C.size_t(len(values[i])))
	}
	runtime.KeepAlive(values)
	return t, nil
}

// tstrings lists pointers to the elements of a string tensor.
func (t *Tensor) tstrings() []*C.TF_TString {
	n := t.Len()
	out := make([]*C.TF_TString, n)
	if n == 0 {
		return out
	}
	base := C.x_TF_TensorData(t.c)
	size := int(unsafe.Sizeof(C.TF_TString{}))
	for i := range out {
		out[i] = (*C.TF_TString)(unsafe.Add(base, i*size))
	}
	return out
}

// Close frees the tensor's C memory. It is idempotent.
func (t *Tensor) Close() {
	if t == nil || t.c == nil {
		return
	}
	if t.ownStrings {
		for _, s := range t.tstrings() {
			C.x_TF_StringDealloc(s)
		}
	}
	C.x_TF_DeleteTensor(t.c)
	t.c = nil
	runtime.SetFinalizer(t, nil)
}

func (t *Tensor) usable(want ...DType) error {
	if t == nil || t.c == nil {
		return errorf(CodeFailedPrecondition, "tensor is closed")
	}
	for _, d := range want {
		if t.dtype == d {
			return nil
		}
	}
	return errorf(CodeInvalidArgument, "tensor is %s, not %v", t.dtype, want)
}

// Values copies the elements out of t; T must match the tensor's type exactly.
func Values[T Scalar](t *Tensor) ([]T, error) {
	if err := t.usable(dtypeOf[T]()); err != nil {
		return nil, err
	}
	out := make([]T, t.Len())
	if len(out) > 0 {
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&out[0])), len(out)*t.dtype.elemSize()), t.bytes())
	}
	runtime.KeepAlive(t)
	return out, nil
}

// Float32s copies a float32, float16 or bfloat16 tensor out as float32.
func (t *Tensor) Float32s() ([]float32, error) {
	if err := t.usable(Float, Half, BFloat16); err != nil {
		return nil, err
	}
	if t.dtype == Float {
		return Values[float32](t)
	}
	conv := halfToFloat32
	if t.dtype == BFloat16 {
		conv = bfloat16ToFloat32
	}
	out := make([]float32, t.Len())
	b := t.bytes()
	for i := range out {
		out[i] = conv(uint16(b[2*i]) | uint16(b[2*i+1])<<8)
	}
	runtime.KeepAlive(t)
	return out, nil
}

// Float32 returns the value of a scalar (or one-element) float tensor.
func (t *Tensor) Float32() (float32, error) {
	v, err := t.Float32s()
	if err != nil {
		return 0, err
	}
	if len(v) != 1 {
		return 0, errorf(CodeInvalidArgument, "tensor of shape %v is not a scalar", t.shape)
	}
	return v[0], nil
}

// Strings copies a string tensor's elements out.
func (t *Tensor) Strings() ([][]byte, error) {
	if err := t.usable(String); err != nil {
		return nil, err
	}
	ts := t.tstrings()
	out := make([][]byte, len(ts))
	for i, s := range ts {
		n := C.x_TF_StringGetSize(s)
		out[i] = C.GoBytes(unsafe.Pointer(C.x_TF_StringGetDataPointer(s)), C.int(n))
	}
	runtime.KeepAlive(t)
	return out, nil
}

// float32ToHalf converts to IEEE 754 binary16, rounding to nearest even.
func float32ToHalf(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23&0xff) - 127 + 15
	mant := b & 0x7fffff
	switch {
	case b&0x7fffffff > 0x7f800000: // NaN
		return sign | 0x7e00
	case exp >= 31: // overflow and infinity
		return sign | 0x7c00
	case exp <= 0: // subnormal or zero
		if exp < -10 {
			return sign
		}
		mant |= 0x800000
		shift := uint32(14 - exp)
		half := uint16(mant >> shift)
		rest := mant & (1<<shift - 1)
		mid := uint32(1) << (shift - 1)
		if rest > mid || (rest == mid && half&1 == 1) {
			half++
		}
		return sign | half
	}
	half := uint16(exp)<<10 | uint16(mant>>13)
	rest := mant & 0x1fff
	if rest > 0x1000 || (rest == 0x1000 && half&1 == 1) {
		half++ // may carry into the exponent, which is the right result
	}
	return sign | half
}

func halfToFloat32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp == 0:
		if mant == 0 {
			return math.Float32frombits(sign)
		}
		f := float32(mant) / 1024 / 16384 // mant × 2^-24
		if sign != 0 {
			f = -f
		}
		return f
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// float32ToBFloat16 keeps the top 16 bits, rounding to nearest even.
func float32ToBFloat16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x40 // quiet NaN
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

func bfloat16ToFloat32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }
