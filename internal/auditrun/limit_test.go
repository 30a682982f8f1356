package auditrun

import "testing"

func TestParseLimit(t *testing.T) {
	for _, c := range []struct {
		in      string
		n, want int // want: the most issues allowed among n images; -1: a usage error
	}{
		{"25", 1000, 25},
		{"0", 1000, 0},
		{"0.02", 1150, 23},
		{"0.05", 1150, 57},
		{"2%", 1150, 23},
		{"100%", 40, 40},
		{"1.0", 40, 40},
		{"1", 40, 1}, // an integer is a count, not a share
		{"1.5", 40, -1},
		{"-3", 40, -1},
		{"many", 40, -1},
		{"120%", 40, -1},
		{"", 40, -1},
	} {
		l, err := ParseLimit(c.in)
		switch {
		case c.want < 0 && err == nil:
			t.Errorf("ParseLimit(%q) = %+v, want an error", c.in, l)
		case c.want >= 0 && err != nil:
			t.Errorf("ParseLimit(%q): %v", c.in, err)
		case c.want >= 0 && l.Max(c.n) != c.want:
			t.Errorf("ParseLimit(%q).Max(%d) = %d, want %d", c.in, c.n, l.Max(c.n), c.want)
		}
	}
}
