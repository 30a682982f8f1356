package dataset

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// Report is what a prepare run did, for the human summary on stderr and the
// JSON summary on stdout.
type Report struct {
	Data, Out   string
	Files       int            // files examined
	Kept        int            // files in the dataset
	Classes     []string       // labels
	Images      map[string]int // records per split
	Problems    []Problem      // as in problems.json
	Conversions map[string]int // routine conversions, by kind
	Elapsed     time.Duration
	Manifest    *Manifest // nil unless the dataset was written
}

func newReport(opts *Options, sc *scanned, items []*item, p *plan, start time.Time) *Report {
	r := &Report{Data: opts.Data, Out: opts.Out, Files: len(sc.files), Kept: len(p.kept), Classes: p.classes,
		Images: map[string]int{}, Problems: p.problems, Conversions: map[string]int{}, Elapsed: time.Since(start)}
	for _, s := range Splits {
		r.Images[s] = 0
	}
	for _, it := range p.kept {
		r.Images[it.split]++
		for _, c := range it.info.Conversions {
			r.Conversions[c]++
		}
	}
	return r
}

// ByReason counts the problems per reason.
func (r *Report) ByReason() map[string]int {
	m := map[string]int{}
	for _, p := range r.Problems {
		m[p.Reason]++
	}
	return m
}

// Summary is the JSON form of a report (prepare --json).
type Summary struct {
	OK              bool           `json:"ok"`
	Data            string         `json:"data"`
	Out             string         `json:"out"`
	Files           int            `json:"files"`
	Kept            int            `json:"kept"`
	Classes         []string       `json:"classes"`
	Images          map[string]int `json:"images"`
	ProblemCount    int            `json:"problem_count"`
	ProblemsBy      map[string]int `json:"problems_by_reason"`
	FirstProblems   []Problem      `json:"first_problems"`
	Conversions     map[string]int `json:"conversions"`
	Seconds         float64        `json:"seconds"`
	ImagesPerSecond float64        `json:"images_per_second"`
}

// firstProblems is how many problems the summaries show; all are in problems.json.
const firstProblems = 10

// Summary returns the JSON summary; ok says whether the dataset was written.
func (r *Report) Summary() Summary {
	s := Summary{OK: r.Manifest != nil, Data: r.Data, Out: r.Out, Files: r.Files, Kept: r.Kept, Classes: r.Classes,
		Images: r.Images, ProblemCount: len(r.Problems), ProblemsBy: r.ByReason(),
		FirstProblems: r.Problems[:min(len(r.Problems), firstProblems)], Conversions: r.Conversions,
		Seconds: r.Elapsed.Seconds()}
	if s.Classes == nil {
		s.Classes = []string{}
	}
	if r.Elapsed > 0 {
		s.ImagesPerSecond = float64(r.Files) / r.Elapsed.Seconds()
	}
	return s
}

// WriteText prints the human summary: the outcome, the routine conversions,
// the problem counts by reason and the first problem paths.
func (r *Report) WriteText(w io.Writer) {
	if r.Manifest != nil {
		fmt.Fprintf(w, "prepared %s: kept %d of %d files, %d classes (train %d, val %d, test %d) in %.1fs, %.0f images/s\n",
			r.Out, r.Kept, r.Files, len(r.Classes), r.Images[Train], r.Images[Val], r.Images[Test],
			r.Elapsed.Seconds(), float64(r.Files)/max(r.Elapsed.Seconds(), 1e-9))
		if r.Manifest.SplitSource == "folders" {
			fmt.Fprintln(w, "splits taken from the train/ val/ test/ folders of the data (--split not used)")
		}
	}
	if len(r.Conversions) > 0 {
		fmt.Fprintf(w, "normalised: %s\n", countList(r.Conversions))
	}
	if len(r.Problems) == 0 {
		fmt.Fprintln(w, "no problems found")
		return
	}
	where := ""
	if r.Manifest != nil {
		where = fmt.Sprintf(" (all in %s/%s)", r.Out, ProblemsFile)
	}
	fmt.Fprintf(w, "%s: %s%s\n", Plural(len(r.Problems), "problem"), countList(r.ByReason()), where)
	for _, p := range r.Problems[:min(len(r.Problems), firstProblems)] {
		fmt.Fprintf(w, "  %-24s %s: %s (%s)\n", p.Reason, p.Path, p.Detail, p.Action)
	}
	if len(r.Problems) > firstProblems {
		fmt.Fprintf(w, "  ... and %d more\n", len(r.Problems)-firstProblems)
	}
}

// countList renders counts as "3 truncated, 1 not-an-image", largest first.
func countList(m map[string]int) string {
	keys := slices.Sorted(maps.Keys(m))
	slices.SortStableFunc(keys, func(a, b string) int { return m[b] - m[a] })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d %s", m[k], k)
	}
	return strings.Join(parts, ", ")
}

// Plural writes "1 problem", "2 problems".
func Plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
