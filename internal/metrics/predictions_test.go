package metrics

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/xcept/xcept/internal/cli"
)

var flowers = &Labels{Path: "labels.txt", Names: []string{"daisy", "roses", "tulips"}}

func TestParsePredictions(t *testing.T) {
	tests := []struct {
		name string
		csv  string
		want []Row
	}{
		{
			name: "names",
			csv:  "true,pred\ndaisy,roses\ntulips,tulips\n",
			want: []Row{{True: 0, Pred: 1}, {True: 2, Pred: 2}},
		},
		{
			name: "indices and a file column, other columns ignored",
			csv:  "file,split,y_true,y_pred\na.jpg,test,0,2\nb.jpg,test,1, 1\n",
			want: []Row{{File: "a.jpg", True: 0, Pred: 2}, {File: "b.jpg", True: 1, Pred: 1}},
		},
		{
			name: "bare class-name probability columns, BOM and CRLF",
			csv:  "\ufefftrue,pred,daisy,roses,tulips\r\ndaisy,daisy,0.7,0.2,0.1\r\n",
			want: []Row{{True: 0, Pred: 0, Probs: []float64{0.7, 0.2, 0.1}}},
		},
		{
			name: "prob: columns by name and index, in any order",
			csv:  "pred,true,prob:2,prob:roses,prob:0\nroses,tulips,0.25,0.5,0.25\n",
			want: []Row{{True: 2, Pred: 1, Probs: []float64{0.25, 0.5, 0.25}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePredictions(strings.NewReader(tt.csv), "p.csv", flowers)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParsePredictionsErrors(t *testing.T) {
	tests := []struct {
		name, csv, want string
	}{
		{"empty", "", "p.csv: empty"},
		{"no pred column", "true,guess\n0,1\n", `p.csv line 1: want columns "true" and "pred"`},
		{"unknown class", "true,pred\ndaisy,roses\nlily,roses\n", `p.csv line 3: true class "lily" is not in labels.txt`},
		{"index out of range", "true,pred\n0,3\n", `p.csv line 2: pred class "3" is not in labels.txt (want one of its 3 names or an index 0-2)`},
		{"short row", "true,pred\n0\n", "p.csv line 2: wrong number of fields"},
		{"bad probability", "true,pred,prob:0,prob:1,prob:2\n0,0,0.5,x,0.5\n", `p.csv line 2: probability of "roses" is "x"`},
		{"negative probability", "true,pred,prob:0,prob:1,prob:2\n0,0,0.5,-0.1,0.5\n", `p.csv line 2: probability of "roses"`},
		{"partial probabilities", "true,pred,daisy,roses\n0,0,0.5,0.5\n", `probability columns for 2 of 3 classes, none for "tulips"`},
		{"prob column for no class", "true,pred,prob:lily\n0,0,1\n", `column "prob:lily" names no class of labels.txt`},
		{"duplicate column", "true,pred,y_true\n0,0,0\n", `column "y_true" appears twice`},
		{"no rows", "true,pred\n", "p.csv: no rows after the header"},
		{"unterminated quote", "true,pred\n\"0,1\n", "p.csv line 2:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParsePredictions(strings.NewReader(tt.csv), "p.csv", flowers)
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			if cli.KindOf(err) != cli.KindData {
				t.Errorf("kind %v, want a data error", cli.KindOf(err))
			}
			if !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q, want one line containing %q", err, tt.want)
			}
		})
	}
}

func TestPredictionsRoundTrip(t *testing.T) {
	rows := []Row{
		{File: "imgs/a,1.jpg", True: 0, Pred: 1, Probs: []float64{0.25, float64(float32(0.6)), 0.15}},
		{File: "imgs/b.jpg", True: 2, Pred: 2, Probs: []float64{0.1, 0.1, 0.8}},
	}
	var buf bytes.Buffer
	if err := WritePredictions(&buf, flowers.Names, rows, 2); err != nil {
		t.Fatal(err)
	}
	wantHead := "file,true,pred,confidence,top_k,prob:daisy,prob:roses,prob:tulips\n" +
		"\"imgs/a,1.jpg\",daisy,roses,0.6000,roses:0.6000;daisy:0.2500,0.25,0.6000000238418579,0.15\n"
	if !strings.HasPrefix(buf.String(), wantHead) {
		t.Errorf("predictions.csv starts\n%s\nwant\n%s", buf.String(), wantHead)
	}
	back, err := ParsePredictions(&buf, "predictions.csv", flowers)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, rows) {
		t.Errorf("read back %+v, wrote %+v", back, rows)
	}
}

func TestTopKTiesKeepLabelOrder(t *testing.T) {
	rows := []Row{
		{True: 2, Pred: 0, Probs: []float64{0.4, 0.3, 0.3}}, // rank: 0, 1, 2
		{True: 1, Pred: 0, Probs: []float64{0.4, 0.3, 0.3}},
	}
	for _, tt := range []struct {
		k    int
		want float64
	}{{1, 0}, {2, 0.5}, {3, 1}, {10, 1}} {
		if got, ok := TopK(rows, tt.k); !ok || got != tt.want {
			t.Errorf("top-%d = %v, %v; want %v", tt.k, got, ok, tt.want)
		}
	}
	if _, ok := TopK([]Row{{True: 0, Pred: 0}}, 1); ok {
		t.Error("top-k without probabilities reported ok")
	}
}
