package serve

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/xcept/xcept/internal/graph"
)

// Floats as TF Serving writes them (json_tensor.cc WriteDecimal): %g with
// six digits when that reads back exactly, else 9 (float) or 17 (double).
func TestAppendFloat(t *testing.T) {
	tests := []struct {
		v    float64
		bits int
		want string
	}{
		{0.5, 32, "0.5"},
		{1, 32, "1.0"},
		{-2, 64, "-2.0"},
		{0, 32, "0.0"},
		{100000, 32, "100000.0"},
		{1e6, 32, "1e+06"},
		{float64(float32(0.0001)), 32, "0.0001"},
		{float64(float32(1e-05)), 32, "1e-05"},
		{float64(float32(0.1)), 32, "0.1"},
		{float64(float32(1.0 / 3)), 32, "0.333333343"},
		{1.0 / 3, 64, "0.33333333333333331"},
		{float64(float32(123456.7)), 32, "123456.703"},
		{math.NaN(), 32, "NaN"},
		{math.Inf(1), 64, "Infinity"},
		{math.Inf(-1), 32, "-Infinity"},
	}
	for _, tt := range tests {
		if got := string(AppendFloat(nil, tt.v, tt.bits)); got != tt.want {
			t.Errorf("AppendFloat(%v, %d) = %s, want %s", tt.v, tt.bits, got, tt.want)
		}
	}
}

func probsColumn() map[string]*Column {
	return map[string]*Column{
		"probabilities": {graph.Float, []int64{2, 3}, []float32{0.25, 0.5, 0.25, float32(1.0 / 3), float32(1.0 / 3), float32(1.0 / 3)}},
		"classes":       {graph.String, []int64{2, 3}, [][]byte{[]byte("circle"), []byte("square"), []byte("tri\"angle"), []byte("circle"), []byte("square"), []byte("tri\"angle")}},
	}
}

// The response shapes of api_rest.md: one output → bare values, several →
// objects (row) or an object of tensors (columnar); _bytes outputs as b64.
func TestAppendPredictionsShapes(t *testing.T) {
	one := map[string]*Column{"probabilities": probsColumn()["probabilities"]}
	bytesOut := map[string]*Column{
		"out_bytes": {graph.String, []int64{2}, [][]byte{{0xFF, 0}, {1}}},
		"text":      {graph.String, []int64{2}, [][]byte{[]byte("ok\n"), {0xFF}}},
	}
	ints := map[string]*Column{"y": {graph.Int64, []int64{3}, []int64{-1, 0, 1 << 60}}}
	scalar := map[string]*Column{"sum": {graph.Int64, []int64{}, []int64{7}}}
	bools := map[string]*Column{"b": {graph.Bool, []int64{2, 1}, []bool{true, false}}}
	tests := []struct {
		name    string
		outputs map[string]*Column
		format  Format
	}{
		{"row_one_output", one, Row},
		{"row_two_outputs", probsColumn(), Row},
		{"columnar_one_output", one, Columnar},
		{"columnar_two_outputs", probsColumn(), Columnar},
		{"row_bytes", bytesOut, Row},
		{"columnar_bytes", bytesOut, Columnar},
		{"row_int64", ints, Row},
		{"columnar_scalar", scalar, Columnar},
		{"row_bool", bools, Row},
	}
	var all strings.Builder
	for _, tt := range tests {
		got, err := AppendPredictions(nil, tt.outputs, tt.format)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		var v any
		if err := json.Unmarshal(got, &v); err != nil {
			t.Errorf("%s: not JSON: %v\n%s", tt.name, err, got)
		}
		all.WriteString("== " + tt.name + "\n")
		all.Write(got)
	}
	golden(t, "responses.golden", []byte(all.String()))

	if _, err := AppendPredictions(nil, scalar, Row); err == nil || !strings.Contains(err.Error(), "scalar") {
		t.Errorf("a scalar output in the row layout: err = %v", err)
	}
	uneven := map[string]*Column{"a": {graph.Int64, []int64{2}, []int64{1, 2}}, "b": {graph.Int64, []int64{1}, []int64{1}}}
	if _, err := AppendPredictions(nil, uneven, Row); err == nil || !strings.Contains(err.Error(), "rows") {
		t.Errorf("outputs with different rows in the row layout: err = %v", err)
	}
}

// Row and columnar answers carry the same numbers as the columns.
func TestAppendPredictionsRoundTrip(t *testing.T) {
	cols := probsColumn()
	row, err := AppendPredictions(nil, cols, Row)
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Predictions []struct {
			Probabilities []float32 `json:"probabilities"`
			Classes       []string  `json:"classes"`
		} `json:"predictions"`
	}
	if err := json.Unmarshal(row, &r); err != nil {
		t.Fatal(err)
	}
	want := cols["probabilities"].Data.([]float32)
	for i, p := range r.Predictions {
		for j, v := range p.Probabilities {
			if v != want[3*i+j] {
				t.Errorf("row %d probability %d: %v, want %v (exactly)", i, j, v, want[3*i+j])
			}
		}
		if p.Classes[2] != `tri"angle` {
			t.Errorf("classes %q", p.Classes)
		}
	}
}
