package contract

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/xcept/xcept/internal/cli"
)

func TestReadLabels(t *testing.T) {
	tests := []struct {
		name, text string
		want       []string
		err        string
	}{
		{"plain", "daisy\nroses\n", []string{"daisy", "roses"}, ""},
		{"CRLF, BOM, no final newline", "\ufeffdaisy\r\ngolden retriever", []string{"daisy", "golden retriever"}, ""},
		{"blank line", "daisy\n\nroses\n", nil, "line 2: blank line"},
		{"duplicate", "daisy\nroses\ndaisy\n", nil, `line 3: class "daisy" already on line 1`},
		{"empty", "\n", nil, "no class names"},
	}
	dir := t.TempDir()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, "labels.txt")
			if err := os.WriteFile(path, []byte(tt.text), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := ReadLabels(path)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || cli.KindOf(err) != cli.KindData {
					t.Fatalf("error %v, want a data error containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	_, err := ReadLabels(filepath.Join(dir, "missing.txt"))
	if cli.KindOf(err) != cli.KindData || !errors.Is(err, os.ErrNotExist) ||
		!strings.Contains(err.Error(), "missing.txt: no such file") {
		t.Errorf("missing labels file: %v", err)
	}
}

func TestLabelsTextReadsBack(t *testing.T) {
	classes := []string{"daisy", "golden retriever", "rose"}
	got, err := ParseLabels(LabelsText(classes), "labels.txt")
	if err != nil || !reflect.DeepEqual(got, classes) {
		t.Errorf("read back %q, %v; want %q", got, err, classes)
	}
	if string(LabelsText(classes)) != "daisy\ngolden retriever\nrose\n" {
		t.Errorf("LabelsText = %q", LabelsText(classes))
	}
}

func TestCheckFit(t *testing.T) {
	model := Fit{Name: "the model", Classes: []string{"a", "b", "c"}, ImageSize: 96}
	tests := []struct {
		name string
		data Fit
		err  string
	}{
		{"same", Fit{Name: "the dataset", Classes: []string{"a", "b", "c"}, ImageSize: 96}, ""},
		{"size unknown", Fit{Name: "the dataset", Classes: []string{"a", "b", "c"}}, ""},
		{"other order", Fit{Name: "the dataset", Classes: []string{"b", "a", "c"}}, "the model has 3 classes (a, b, c) but the dataset has 3 (b, a, c): do it"},
		{"fewer", Fit{Name: "run r", Classes: []string{"a", "b"}}, "but run r has 2 (a, b)"},
		{"size", Fit{Name: "the dataset", Classes: []string{"a", "b", "c"}, ImageSize: 128}, "the model takes 96 px images but the dataset holds 128 px ones: do it"},
	}
	for _, tt := range tests {
		err := CheckFit(model, tt.data, "do it")
		if tt.err == "" {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.err) || cli.KindOf(err) != cli.KindData {
			t.Errorf("%s: %v; want a data error containing %q", tt.name, err, tt.err)
		}
	}
	if got := ShortList([]string{"1", "2", "3", "4", "5", "6", "7"}); got != "1, 2, 3, 4, 5, 6, ..." {
		t.Errorf("ShortList = %q", got)
	}
}
