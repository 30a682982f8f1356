package explain

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/xcept/xcept/internal/cli"
	"github.com/xcept/xcept/internal/infer"
	"github.com/xcept/xcept/internal/testenv"
)

func TestParseClass(t *testing.T) {
	classes := []string{"circle", "square", "7"}
	tests := []struct {
		in   string
		want int32
		err  string
	}{
		{"", infer.PredictedClass, ""},
		{"square", 1, ""},
		{"0", 0, ""},
		{"7", 2, ""}, // a class named like an index is the class
		{"3", 0, "--class 3: not a class of the model (want a name or an index 0-2: circle, square, 7)"},
		{"zebra", 0, "--class zebra"},
	}
	for _, tt := range tests {
		got, err := ParseClass(tt.in, classes)
		switch {
		case tt.err == "" && (err != nil || got != tt.want):
			t.Errorf("ParseClass(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		case tt.err != "" && (err == nil || !strings.Contains(testenv.UserMessage(err), tt.err) || cli.KindOf(err) != cli.KindUsage):
			t.Errorf("ParseClass(%q) error %v, want a usage error with %q", tt.in, err, tt.err)
		}
	}
}

func TestOverlayPathsDoNotCollide(t *testing.T) {
	x := &explainer{out: "out", names: map[string]bool{}}
	var got []string
	for _, src := range []string{"a/photo.jpg", "b/photo.png", "c/photo.jpg", "photo-2.jpg"} {
		got = append(got, x.overlayPath(src))
	}
	want := []string{"photo", "photo-2", "photo-3", "photo-2-2"}
	for i := range want {
		if w := filepath.Join("out", want[i]+".gradcam.png"); got[i] != w {
			t.Errorf("overlay %d: %s, want %s", i, got[i], w)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, tt := range []struct {
		o    Options
		want string
	}{
		{Options{Run: "r", Paths: []string{"a.jpg"}, Batch: 1}, ""},
		{Options{Paths: []string{"a.jpg"}, Batch: 1}, "--run runs/NAME is required"},
		{Options{Run: "r", Batch: 1}, "no images"},
		{Options{Run: "r", Paths: []string{"a.jpg"}}, "--batch 0"},
	} {
		err := tt.o.Validate()
		if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(testenv.UserMessage(err), tt.want)) {
			t.Errorf("Validate(%+v) = %v, want %q", tt.o, err, tt.want)
		}
	}
}
