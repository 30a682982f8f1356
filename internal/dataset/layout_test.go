package dataset

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/xcept/xcept/internal/cli"
)

func TestSplitFolders(t *testing.T) {
	data := t.TempDir()
	put := func(rel string, c, i int) { writeTestFile(t, filepath.Join(data, rel), goodImage(t, c, i)) }
	for i := range 4 {
		put(filepathf("train/cats/c%d.jpg", i), 0, i)
		put(filepathf("train/dogs/d%d.jpg", i), 1, i)
	}
	put("validation/cats/c10.jpg", 0, 10)
	put("validation/dogs/d10.jpg", 1, 10)
	put("validation/dogs/copy_of_train.jpg", 1, 0) // leaks a training image
	put("test/cats/c20.jpg", 0, 20)                // no test dogs
	o := testOptions(data, filepath.Join(t.TempDir(), "ds"))
	rep := mustPrepare(t, o)
	m := rep.Manifest
	if m.SplitSource != "folders" {
		t.Errorf("split_source %q", m.SplitSource)
	}
	var text bytes.Buffer
	rep.WriteText(&text)
	if !strings.Contains(text.String(), "splits taken from the train/ val/ test/ folders") {
		t.Errorf("summary does not say where the splits come from:\n%s", text.String())
	}
	got := map[string]string{}
	for _, f := range m.Files {
		got[f.Path] = f.Split + " " + f.Class
	}
	want := map[string]string{
		"train/cats/c0.jpg": "train cats", "train/dogs/d3.jpg": "train dogs",
		"validation/cats/c10.jpg": "val cats", "validation/dogs/d10.jpg": "val dogs", "test/cats/c20.jpg": "test cats",
	}
	for p, w := range want {
		if got[p] != w {
			t.Errorf("%s: %q, want %q", p, got[p], w)
		}
	}
	if len(m.Files) != 11 {
		t.Errorf("%d files kept, want 11", len(m.Files))
	}
	var reasons []string
	for _, p := range rep.Problems {
		reasons = append(reasons, p.Path+" "+p.Reason)
	}
	wantReasons := []string{"train/dogs, validation/dogs class-split-empty", "validation/dogs/copy_of_train.jpg duplicate-across-splits"}
	if !slices.Equal(reasons, wantReasons) {
		t.Errorf("problems %q, want %q", reasons, wantReasons)
	}
}

func TestDataErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string][]byte // relative path -> content; nil content: a good image
		split Fractions
		kind  cli.Kind
		msg   string
	}{
		{"one class", map[string][]byte{"cats/a.jpg": nil, "cats/b.jpg": nil}, Fractions{Train: 1}, cli.KindData, "at least two"},
		{"no class folders", map[string][]byte{"a.jpg": nil}, Fractions{Train: 1}, cli.KindData, "no class folders"},
		{"nothing usable", map[string][]byte{"cats/a.jpg": []byte("x"), "dogs/b.jpg": []byte("")}, Fractions{Train: 1}, cli.KindData, "no usable image"},
		{"mixed layout", map[string][]byte{"train/cats/a.jpg": nil, "dogs/b.jpg": nil}, Fractions{Train: 1}, cli.KindData, "mixes split folders"},
		{"val and validation", map[string][]byte{"train/cats/a.jpg": nil, "val/cats/b.jpg": nil, "validation/cats/c.jpg": nil}, Fractions{Train: 1}, cli.KindData, "both val/ and validation/"},
		{"class only in val", map[string][]byte{"train/cats/a.jpg": nil, "val/cats/b.jpg": nil, "val/dogs/c.jpg": nil}, Fractions{Train: 1}, cli.KindData, `no training images for class "dogs"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := t.TempDir()
			i := 0
			for rel, content := range tt.files {
				if content == nil {
					content = goodImage(t, 0, 50+i)
					i++
				}
				writeTestFile(t, filepath.Join(data, rel), content)
			}
			o := testOptions(data, filepath.Join(t.TempDir(), "ds"))
			o.Fractions = tt.split
			_, err := Prepare(context.Background(), o)
			if cli.KindOf(err) != tt.kind || err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Prepare = %v, want kind %d containing %q", err, tt.kind, tt.msg)
			}
		})
	}
}

// TestSmallClassWarnsOrFails draws a one-image class: landing in train it is
// a warning (training goes on), landing elsewhere a data error.
func TestSmallClassWarnsOrFails(t *testing.T) {
	o := testOptions("", "")
	find := func(split string) []byte {
		for i := 100; ; i++ {
			img := goodImage(t, 1, i)
			if drawSplit(o.Seed, sha256.Sum256(img), o.Fractions) == split {
				return img
			}
		}
	}
	for _, split := range []string{Train, Val} {
		t.Run(split, func(t *testing.T) {
			data := t.TempDir()
			for i := range 6 {
				writeTestFile(t, filepath.Join(data, "cats", filepathf("%d.jpg", i)), goodImage(t, 0, i))
			}
			writeTestFile(t, filepath.Join(data, "dogs", "only.jpg"), find(split))
			o.Data, o.Out = data, filepath.Join(t.TempDir(), "ds")
			rep, err := Prepare(context.Background(), o)
			if split == Val {
				if cli.KindOf(err) != cli.KindData || !strings.Contains(err.Error(), "no training images") {
					t.Fatalf("Prepare = %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			i := slices.IndexFunc(rep.Problems, func(p Problem) bool { return p.Reason == ReasonClassTooSmall })
			if i < 0 || rep.Problems[i].Path != "dogs" || rep.Problems[i].Action != ActionKept {
				t.Errorf("problems %+v lack a class-too-small warning for dogs", rep.Problems)
			}
		})
	}
}

func TestReportText(t *testing.T) {
	rep := &Report{Out: "ds", Files: 3, Kept: 2, Classes: []string{"a", "b"}, Images: map[string]int{Train: 2},
		Conversions: map[string]int{"grayscale": 1},
		Problems:    []Problem{{Path: "a/x.jpg", Reason: ReasonTruncated, Detail: "JPEG data ends early", Action: ActionSkipped}},
		Manifest:    &Manifest{}}
	var b bytes.Buffer
	rep.WriteText(&b)
	for _, want := range []string{"kept 2 of 3 files, 2 classes (train 2, val 0, test 0)", "normalised: 1 grayscale",
		"1 problem: 1 truncated (all in ds/problems.json)", "truncated                a/x.jpg: JPEG data ends early (skipped)"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, b.String())
		}
	}
	s := rep.Summary()
	if !s.OK || s.ProblemCount != 1 || s.ProblemsBy[ReasonTruncated] != 1 || len(s.FirstProblems) != 1 {
		t.Errorf("summary %+v", s)
	}
	if errors.Is(nil, context.Canceled) {
		t.Fatal("unreachable")
	}
}
