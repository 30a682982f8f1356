package metrics

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/xcept/xcept/internal/contract"
	"github.com/xcept/xcept/internal/fault"
)

// Labels are the class names of a dataset in index order, and the file they
// came from (named in error messages).
type Labels struct {
	Path  string
	Names []string
}

// ReadLabels reads a labels file by contract.ParseLabels's rule.
func ReadLabels(path string) (*Labels, error) {
	names, err := contract.ReadLabels(path)
	if err != nil {
		return nil, err
	}
	return &Labels{Path: path, Names: names}, nil
}

// Column names of a predictions file. Probability columns are "prob:CLASS"
// (a class name or index) or a bare class name that is not one of these.
var (
	fileColumns = []string{"file", "path", "filename"}
	trueColumns = []string{"true", "y_true"}
	predColumns = []string{"pred", "y_pred"}
	infoColumns = []string{"confidence", "top_k"}
)

const probPrefix = "prob:"

// ReadPredictions reads a predictions file: xcept's own predictions.csv, or
// any CSV with "true" and "pred" columns holding class names or indices,
// optionally a "file" column and one probability column per class.
func ReadPredictions(path string, labels *Labels) ([]Row, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fault.New(fault.BadData, "predictions file %s: %v", path, fault.Bare(err))
	}
	defer f.Close()
	return ParsePredictions(f, path, labels)
}

// columns maps a predictions file's header to what each column holds.
type columns struct {
	file, true, pred int            // -1 when absent
	probs            []int          // per class, -1 when absent
	index            map[string]int // class name -> index
}

// ParsePredictions reads predictions from r; name is the file named in errors.
func ParsePredictions(r io.Reader, name string, labels *Labels) ([]Row, error) {
	cr := csv.NewReader(bufio.NewReader(r))
	cr.ReuseRecord = false
	header, err := cr.Read()
	if err == io.EOF {
		return nil, fault.New(fault.BadData, "predictions file %s: empty (want a header with true and pred columns)", name)
	}
	if err != nil {
		return nil, csvError(name, err)
	}
	cols, err := parseHeader(header, name, labels)
	if err != nil {
		return nil, err
	}
	var rows []Row
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, csvError(name, err)
		}
		line, _ := cr.FieldPos(0)
		row, err := parseRow(rec, cols, labels)
		if err != nil {
			return nil, fault.New(fault.BadData, "predictions file %s line %d: %v", name, line, err)
		}
		rows = append(rows, row)
	}
	if len(rows) == 0 {
		return nil, fault.New(fault.BadData, "predictions file %s: no rows after the header", name)
	}
	return rows, nil
}

func csvError(name string, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return fault.New(fault.BadData, "predictions file %s line %d: %v", name, pe.Line, pe.Err)
	}
	return fault.New(fault.BadData, "predictions file %s: %v", name, err)
}

func parseHeader(header []string, name string, labels *Labels) (columns, error) {
	index := make(map[string]int, len(labels.Names))
	for i, n := range labels.Names {
		index[n] = i
	}
	cols := columns{file: -1, true: -1, pred: -1, probs: make([]int, len(labels.Names)), index: index}
	for i := range cols.probs {
		cols.probs[i] = -1
	}
	set := func(dst *int, i int, col string) error {
		if *dst >= 0 {
			return fault.New(fault.BadData, "predictions file %s line 1: column %q appears twice", name, col)
		}
		*dst = i
		return nil
	}
	for i, raw := range header {
		col := strings.TrimSpace(raw)
		if i == 0 {
			col = strings.TrimPrefix(col, "\ufeff")
		}
		lower := strings.ToLower(col)
		var err error
		switch {
		case slices.Contains(fileColumns, lower):
			err = set(&cols.file, i, col)
		case slices.Contains(trueColumns, lower):
			err = set(&cols.true, i, col)
		case slices.Contains(predColumns, lower):
			err = set(&cols.pred, i, col)
		case slices.Contains(infoColumns, lower):
			// Derived from the probabilities; recomputed, never trusted.
		case strings.HasPrefix(lower, probPrefix):
			c, ok := classIndex(col[len(probPrefix):], labels.Names, index)
			if !ok {
				return cols, fault.New(fault.BadData, "predictions file %s line 1: column %q names no class of %s (%d classes)", name, col, labels.Path, len(labels.Names))
			}
			err = set(&cols.probs[c], i, col)
		default:
			if c, ok := index[col]; ok {
				err = set(&cols.probs[c], i, col)
			}
			// Any other column (a split, a note) is not ours to judge.
		}
		if err != nil {
			return cols, err
		}
	}
	if cols.true < 0 || cols.pred < 0 {
		return cols, fault.New(fault.BadData, "predictions file %s line 1: want columns \"true\" and \"pred\" (class names or indices), found %s", name, strings.Join(header, ","))
	}
	have := 0
	for _, c := range cols.probs {
		if c >= 0 {
			have++
		}
	}
	if have > 0 && have < len(cols.probs) {
		for c, col := range cols.probs {
			if col < 0 {
				return cols, fault.New(fault.BadData, "predictions file %s line 1: probability columns for %d of %d classes, none for %q: give one per class of %s or none", name, have, len(cols.probs), labels.Names[c], labels.Path)
			}
		}
	}
	if have == 0 {
		cols.probs = nil
	}
	return cols, nil
}

// classIndex resolves a class given by name or, failing that, by index.
// Names win so that labels which are numerals keep their meaning.
func classIndex(s string, names []string, index map[string]int) (int, bool) {
	s = strings.TrimSpace(s)
	if c, ok := index[s]; ok {
		return c, true
	}
	if c, err := strconv.Atoi(s); err == nil && c >= 0 && c < len(names) {
		return c, true
	}
	return 0, false
}

func parseRow(rec []string, cols columns, labels *Labels) (Row, error) {
	var row Row
	var ok bool
	if row.True, ok = classIndex(rec[cols.true], labels.Names, cols.index); !ok {
		return row, unknownClass("true", rec[cols.true], labels)
	}
	if row.Pred, ok = classIndex(rec[cols.pred], labels.Names, cols.index); !ok {
		return row, unknownClass("pred", rec[cols.pred], labels)
	}
	if cols.file >= 0 {
		row.File = rec[cols.file]
	}
	if cols.probs == nil {
		return row, nil
	}
	row.Probs = make([]float64, len(cols.probs))
	for c, col := range cols.probs {
		p, err := strconv.ParseFloat(strings.TrimSpace(rec[col]), 64)
		if err != nil || math.IsNaN(p) || p < 0 || p > 1+1e-6 {
			return row, fmt.Errorf("probability of %q is %q, want a number from 0 to 1", labels.Names[c], rec[col])
		}
		row.Probs[c] = p
	}
	return row, nil
}

func unknownClass(column, value string, labels *Labels) error {
	return fmt.Errorf("%s class %q is not in %s (want one of its %d names or an index 0-%d)",
		column, value, labels.Path, len(labels.Names), len(labels.Names)-1)
}

// WritePredictions writes xcept's predictions.csv: file, true and pred class
// names, and when the rows have probabilities, the confidence of the
// prediction and the k most probable classes as "class:prob" joined by ";"
// (both rounded for people, ignored when read back), and
// one "prob:CLASS" column per class (exact, so the file reads back to the
// same report).
func WritePredictions(w io.Writer, classes []string, rows []Row, k int) error {
	cw := csv.NewWriter(w)
	probs := HasProbs(rows)
	header := []string{"file", "true", "pred"}
	if probs {
		header = append(header, "confidence", "top_k")
		for _, c := range classes {
			header = append(header, probPrefix+c)
		}
	}
	if err := cw.Write(header); err != nil {
		return err
	}
	for _, r := range rows {
		rec := []string{r.File, classes[r.True], classes[r.Pred]}
		if probs {
			rec = append(rec, strconv.FormatFloat(r.Confidence(), 'f', 4, 64), topKField(classes, r, k))
			for _, p := range r.Probs {
				rec = append(rec, exactFloat(p))
			}
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func topKField(classes []string, r Row, k int) string {
	ranked := r.Ranked()
	parts := make([]string, 0, k)
	for _, c := range ranked[:min(k, len(ranked))] {
		parts = append(parts, classes[c]+":"+strconv.FormatFloat(r.Probs[c], 'f', 4, 64))
	}
	return strings.Join(parts, ";")
}

// exactFloat is the shortest text that reads back as v. A float32 softmax
// value prints longer than its float32 text ("0.6000000238418579"), but
// reading the file back must give the very same ranking as the run did.
func exactFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
