package metrics

import (
	"bytes"
	"strings"
	"testing"
)

// gateReport: accuracy 0.7; recall a=0.8, b=0.5, c=0.75, d has no samples.
func gateReport() *Report {
	var rows []Row
	add := func(t, p, n int) {
		for range n {
			rows = append(rows, Row{True: t, Pred: p})
		}
	}
	add(0, 0, 8)
	add(0, 1, 2)
	add(1, 1, 3)
	add(1, 2, 3)
	add(2, 2, 3)
	add(2, 3, 1)
	return NewReport(NewConfusion([]string{"a", "b", "c", "d"}, rows))
}

func TestParseMinRecall(t *testing.T) {
	tests := []struct {
		in    string
		class string
		min   float64
		err   string
	}{
		{"0.8", "", 0.8, ""},
		{"cat=0.9", "cat", 0.9, ""},
		{"a=b=1", "a=b", 1, ""},
		{"=0.5", "", 0, "want X or CLASS=X"},
		{"cat=90", "", 0, "not a fraction from 0 to 1"},
		{"cat", "", 0, "not a fraction"},
	}
	for _, tt := range tests {
		g, err := ParseMinRecall(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: error %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || g.Class != tt.class || g.Min != tt.min {
			t.Errorf("%q: %+v, %v; want class %q min %v", tt.in, g, err, tt.class, tt.min)
		}
	}
	if _, err := MinAccuracy(1.5); err == nil {
		t.Error("--min-accuracy 1.5 accepted")
	}
}

func TestCheckGates(t *testing.T) {
	rep := gateReport()
	tests := []struct {
		name   string
		gates  []Gate
		failed string
	}{
		{"all pass", []Gate{{Metric: GateAccuracy, Min: 0.7}, {Metric: GateRecall, Min: 0.5}}, ""},
		{"accuracy", []Gate{{Metric: GateAccuracy, Min: 0.75}},
			"accuracy 0.7000 < 0.7500 by 0.0500 (--min-accuracy 0.75)"},
		{"every class skips the class with no samples", []Gate{{Metric: GateRecall, Min: 0.76}},
			`recall of "b" 0.5000 < 0.7600 by 0.2600 (--min-recall 0.76); recall of "c" 0.7500 < 0.7600 by 0.0100 (--min-recall 0.76)`},
		{"one class", []Gate{{Metric: GateRecall, Class: "a", Min: 0.8}, {Metric: GateRecall, Class: "c", Min: 0.9}},
			`recall of "c" 0.7500 < 0.9000 by 0.1500 (--min-recall c=0.9)`},
		{"named class without samples fails", []Gate{{Metric: GateRecall, Class: "d", Min: 0}},
			`recall of "d": no samples of this class, recall undefined (--min-recall d=0)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := CheckGates(rep, tt.gates)
			if err != nil {
				t.Fatal(err)
			}
			if got := FailedGates(res); got != tt.failed {
				t.Errorf("failed gates\n got %q\nwant %q", got, tt.failed)
			}
		})
	}
	if _, err := CheckGates(rep, []Gate{{Metric: GateRecall, Class: "zebra", Min: 0.5}}); err == nil ||
		!strings.Contains(err.Error(), `no class "zebra"`) {
		t.Errorf("unknown class: %v", err)
	}
}

func TestMostConfusedAndCSV(t *testing.T) {
	rep := gateReport()
	cm := NewConfusion(rep.Classes, nil)
	cm.Counts = [][]int64{{8, 2, 0, 0}, {0, 3, 3, 0}, {0, 0, 3, 1}, {0, 0, 0, 0}}
	got := cm.MostConfused(2)
	want := []Pair{{"b", "c", 3, 0.5}, {"a", "b", 2, 0.2}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("most confused %+v, want %+v", got, want)
	}
	if n := len(cm.MostConfused(100)); n != 3 {
		t.Errorf("%d confused pairs, want the 3 non-zero off-diagonal cells", n)
	}
	var buf bytes.Buffer
	if err := cm.WriteCSV(&buf); err != nil {
		t.Fatal(err)
	}
	wantCSV := `matrix,true,a,b,c,d
counts,a,8,2,0,0
counts,b,0,3,3,0
counts,c,0,0,3,1
counts,d,0,0,0,0
row_normalized,a,0.8,0.2,0,0
row_normalized,b,0,0.5,0.5,0
row_normalized,c,0,0,0.75,0.25
row_normalized,d,0,0,0,0
`
	if buf.String() != wantCSV {
		t.Errorf("confusion.csv\n%s\nwant\n%s", buf.String(), wantCSV)
	}
}
