package report

import (
	_ "embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"io"
	"math"

	"github.com/xcept/xcept/internal/metrics"
)

// pageData is what report.html shows.
type pageData struct {
	Summary    *Summary
	ReportText string
	Confusion  []byte // PNG
	// ConfusionWide is set when the heatmap is wider than the page: shown
	// scaled, its class names would shrink past reading.
	ConfusionWide bool
	Curves        []byte // PNG, nil without a history
	Reliability   []byte // PNG, nil without probabilities
	Gallery       []galleryCard
}

// classRow is one line of the per-class table.
type classRow struct {
	Name string
	metrics.Scores
}

//go:embed report.html.tmpl
var pageTemplate string

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"pct":   func(v float64) string { return fmt.Sprintf("%.1f%%", v*100) },
	"num":   func(v float64) string { return fmt.Sprintf("%.2f", v) },
	"num4":  func(v float64) string { return fmt.Sprintf("%.4f", v) },
	"deref": func(v *float64) float64 { return *v },
	"png": func(b []byte) template.URL {
		// A data: URI keeps the page one file that works offline; it is
		// our own PNG, so marking it safe is sound.
		return template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(b))
	},
	"img": func(uri string) template.URL { return template.URL(uri) },
	// heat tints a score cell: red below 0.5, through yellow, green at 1.
	"heat": func(v float64) template.CSS {
		hue := math.Max(0, math.Min(1, v)) * 120
		return template.CSS(fmt.Sprintf("background:hsl(%.0f,70%%,92%%)", hue))
	},
	"rows": func(r *metrics.Report) []classRow {
		out := make([]classRow, len(r.Classes))
		for i, c := range r.Classes {
			out[i] = classRow{c, r.PerClass[i]}
		}
		return out
	},
	"failedCount": func(gs []metrics.GateResult) int {
		n := 0
		for _, g := range gs {
			if !g.Passed {
				n++
			}
		}
		return n
	},
}).Parse(pageTemplate))

func renderHTML(w io.Writer, d pageData) error { return page.Execute(w, d) }
