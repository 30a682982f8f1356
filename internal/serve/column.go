package serve

import (
	"fmt"

	"github.com/xcept/xcept/internal/graph"
)

// Column is a tensor in Go memory: one request's input, or one run's output.
// Requests are batched and split in this form, so that only whole batches
// cross into C memory.
type Column struct {
	DType graph.DType
	Shape []int64
	// Data holds the elements in row-major order: []float32 (float32,
	// float16 and bfloat16), []float64, []int8, []int16, []int32, []int64,
	// []uint8, []uint16, []bool, or [][]byte for strings.
	Data any
}

// Rows is the size of the first dimension (1 for a scalar).
func (c *Column) Rows() int {
	if len(c.Shape) == 0 {
		return 1
	}
	return int(c.Shape[0])
}

// rowLen is the number of elements in one row.
func (c *Column) rowLen() int {
	n := 1
	for _, d := range c.Shape[min(1, len(c.Shape)):] {
		n *= int(d)
	}
	return n
}

// Len is the number of elements.
func (c *Column) Len() int { return ops(c.DType).length(c.Data) }

// SliceRows returns rows [lo, hi) sharing c's memory.
func (c *Column) SliceRows(lo, hi int) *Column {
	shape := append([]int64{int64(hi - lo)}, c.Shape[1:]...)
	n := c.rowLen()
	return &Column{DType: c.DType, Shape: shape, Data: ops(c.DType).slice(c.Data, lo*n, hi*n)}
}

// ConcatRows joins columns of one dtype and row shape along the first dimension.
func ConcatRows(cols []*Column) *Column {
	if len(cols) == 1 {
		return cols[0]
	}
	rows := int64(0)
	parts := make([]any, len(cols))
	for i, c := range cols {
		rows += c.Shape[0]
		parts[i] = c.Data
	}
	shape := append([]int64{rows}, cols[0].Shape[1:]...)
	return &Column{DType: cols[0].DType, Shape: shape, Data: ops(cols[0].DType).concat(parts)}
}

// Tensor copies the column into a new C tensor; the caller closes it.
func (c *Column) Tensor() (*graph.Tensor, error) { return ops(c.DType).tensor(c.Shape, c.Data) }

// ColumnOf copies a tensor's elements out of C memory.
func ColumnOf(t *graph.Tensor) (*Column, error) {
	o, ok := dtypeOps[t.DType()]
	if !ok {
		return nil, fmt.Errorf("output of type %s cannot be sent as JSON", t.DType())
	}
	data, err := o.values(t)
	if err != nil {
		return nil, err
	}
	dt := t.DType()
	if dt == graph.Half || dt == graph.BFloat16 {
		dt = graph.Float // Float32s widened it
	}
	return &Column{DType: dt, Shape: t.Shape(), Data: data}, nil
}

// typeOps are a dtype's operations on a Column's Data.
type typeOps struct {
	length func(any) int
	slice  func(data any, lo, hi int) any
	concat func(parts []any) any
	tensor func(shape []int64, data any) (*graph.Tensor, error)
	values func(*graph.Tensor) (any, error)
}

func ops(dt graph.DType) typeOps {
	o, ok := dtypeOps[dt]
	if !ok {
		panic(fmt.Sprintf("serve: no column operations for %s", dt))
	}
	return o
}

// Supported reports whether tensors of dt can be read from and written to JSON.
func Supported(dt graph.DType) bool {
	_, ok := dtypeOps[dt]
	return ok
}

var dtypeOps = map[graph.DType]typeOps{
	graph.Float:  scalarOps[float32](),
	graph.Double: scalarOps[float64](),
	graph.Int8:   scalarOps[int8](),
	graph.Int16:  scalarOps[int16](),
	graph.Int32:  scalarOps[int32](),
	graph.Int64:  scalarOps[int64](),
	graph.Uint8:  scalarOps[uint8](),
	graph.Uint16: scalarOps[uint16](),
	graph.Bool:   scalarOps[bool](),
	graph.String: {
		length: func(d any) int { return len(d.([][]byte)) },
		slice:  func(d any, lo, hi int) any { return d.([][]byte)[lo:hi] },
		concat: concatOf[[]byte],
		tensor: func(shape []int64, d any) (*graph.Tensor, error) { return graph.NewStrings(shape, d.([][]byte)) },
		values: func(t *graph.Tensor) (any, error) { return t.Strings() },
	},
	graph.Half:     halfOps(graph.NewHalf),
	graph.BFloat16: halfOps(graph.NewBFloat16),
}

func scalarOps[T graph.Scalar]() typeOps {
	return typeOps{
		length: func(d any) int { return len(d.([]T)) },
		slice:  func(d any, lo, hi int) any { return d.([]T)[lo:hi] },
		concat: concatOf[T],
		tensor: func(shape []int64, d any) (*graph.Tensor, error) { return graph.NewTensor(shape, d.([]T)) },
		values: func(t *graph.Tensor) (any, error) { return graph.Values[T](t) },
	}
}

// halfOps keep 16-bit floats as float32 in Go.
func halfOps(make16 func([]int64, []float32) (*graph.Tensor, error)) typeOps {
	o := scalarOps[float32]()
	o.tensor = func(shape []int64, d any) (*graph.Tensor, error) { return make16(shape, d.([]float32)) }
	o.values = func(t *graph.Tensor) (any, error) { return t.Float32s() }
	return o
}

func concatOf[T any](parts []any) any {
	n := 0
	for _, p := range parts {
		n += len(p.([]T))
	}
	out := make([]T, 0, n)
	for _, p := range parts {
		out = append(out, p.([]T)...)
	}
	return out
}
