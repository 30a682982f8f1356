package report

import (
	"encoding/csv"
	"errors"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/xcept/xcept/internal/fault"
)

// History is a training history: one row per epoch, with whatever numeric
// columns training wrote (loss, accuracy, val_*, learning_rate, ...).
type History struct {
	Epochs  []float64            // x values, increasing
	Phases  []string             // per row; "" when the file has no phase column
	Metrics []string             // numeric columns other than epoch, in file order
	Values  map[string][]float64 // per metric, NaN where a row has no value
}

// ReadHistory reads history.csv (header "epoch,phase,loss,accuracy,
// val_loss,val_accuracy,learning_rate,..."). Any column whose values all
// parse as numbers is a metric; empty cells are gaps. Epoch numbers that
// restart (one count per phase) are replaced by a running count.
func ReadHistory(path string) (*History, error) {
	f, err := os.Open(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fault.New(fault.BadData, "history file %s: %v", path, err)
	}
	defer f.Close()
	return parseHistory(f, path)
}

func parseHistory(r io.Reader, name string) (*History, error) {
	records, err := csv.NewReader(r).ReadAll()
	if err != nil {
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return nil, fault.New(fault.BadData, "history file %s line %d: %v", name, pe.Line, pe.Err)
		}
		return nil, fault.New(fault.BadData, "history file %s: %v", name, err)
	}
	if len(records) < 2 {
		return nil, fault.New(fault.BadData, "history file %s: no epochs after the header", name)
	}
	header, rows := records[0], records[1:]
	h := &History{Values: map[string][]float64{}, Phases: make([]string, len(rows))}
	epochCol := -1
	for c, col := range header {
		col = strings.TrimSpace(strings.TrimPrefix(col, "\ufeff"))
		switch col {
		case "epoch":
			epochCol = c
			continue
		case "phase":
			for i, rec := range rows {
				h.Phases[i] = rec[c]
			}
			continue
		}
		if vals, ok := numericColumn(rows, c); ok {
			h.Metrics = append(h.Metrics, col)
			h.Values[col] = vals
		}
	}
	h.Epochs = epochAxis(rows, epochCol)
	return h, nil
}

// numericColumn parses column c, empty cells as NaN; ok is false when some
// cell is not a number or no cell has one.
func numericColumn(rows [][]string, c int) ([]float64, bool) {
	vals := make([]float64, len(rows))
	any := false
	for i, rec := range rows {
		s := strings.TrimSpace(rec[c])
		if s == "" {
			vals[i] = math.NaN()
			continue
		}
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, false
		}
		vals[i], any = v, true
	}
	return vals, any
}

// epochAxis uses the epoch column when it increases throughout, else the
// row number (1, 2, ...), which keeps phases that restart counting in order.
func epochAxis(rows [][]string, col int) []float64 {
	x := make([]float64, len(rows))
	if col >= 0 {
		if vals, ok := numericColumn(rows, col); ok && increasing(vals) {
			return vals
		}
	}
	for i := range x {
		x[i] = float64(i + 1)
	}
	return x
}

func increasing(v []float64) bool {
	for i := range v {
		if math.IsNaN(v[i]) || (i > 0 && v[i] <= v[i-1]) {
			return false
		}
	}
	return true
}

// panel is one chart: a metric and its validation twin, drawn together.
type panel struct {
	title  string
	series []string // column names: base first, then val_base
}

// panels pairs each metric with its "val_" twin, in the order of the file.
func (h *History) panels() []panel {
	var out []panel
	seen := map[string]bool{}
	for _, m := range h.Metrics {
		base := strings.TrimPrefix(m, "val_")
		if seen[base] {
			continue
		}
		seen[base] = true
		p := panel{title: base}
		for _, name := range []string{base, "val_" + base} {
			if _, ok := h.Values[name]; ok {
				p.series = append(p.series, name)
			}
		}
		out = append(out, p)
	}
	return out
}
