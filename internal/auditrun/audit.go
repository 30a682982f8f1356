package auditrun

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/xcept/xcept/internal/atomicfile"
	"github.com/xcept/xcept/internal/audit"
	"github.com/xcept/xcept/internal/cli"
	"github.com/xcept/xcept/internal/fault"
	"github.com/xcept/xcept/internal/graph"
	"github.com/xcept/xcept/internal/neardup"
	"github.com/xcept/xcept/internal/run"
)

// File names of the audit's reports, in its folder (RUN/audit by default).
const (
	Dir                = "audit"
	LabelIssuesJSON    = "label_issues.json"
	LabelIssuesCSV     = "label_issues.csv"
	ProbabilitiesCSV   = "probabilities.csv" // the out-of-fold probabilities of every audited image
	NearDuplicatesJSON = "near_duplicates.json"
	SummaryJSON        = "audit.json"
	ReportHTML         = "report.html"
)

// Options is everything an audit needs, already validated.
type Options struct {
	cli.Output
	Run       string
	Out       string // report folder; "" is RUN/audit
	Folds     int
	Seed      uint64
	L2        float64
	Threshold float64 // near-duplicate cosine similarity
	MaxIssues *Limit  // the --max-label-issues gate, nil: none
	Session   graph.SessionOptions
}

// Limit is --max-label-issues: a count (N) or a share of the audited
// images (FRACTION, written with a decimal point or a %).
type Limit struct {
	Text       string
	Count      int
	Fraction   float64
	IsFraction bool
}

// optMaxIssues is the option of the label-issue gate (fault.Option: the
// command layer names its flag).
const optMaxIssues fault.Option = "max-label-issues"

// ParseLimit reads N or FRACTION: "25" is 25 images, "0.02" and "2%" are
// 2% of the audited images.
func ParseLimit(s string) (*Limit, error) {
	t := strings.TrimSpace(s)
	bad := fault.New(fault.BadValue, "%s %q: want a number of images (25) or a fraction of the audited images (0.02 or 2%%)", optMaxIssues, s)
	if pct, ok := strings.CutSuffix(t, "%"); ok {
		v, err := strconv.ParseFloat(pct, 64)
		if err != nil || !(v >= 0 && v <= 100) {
			return nil, bad
		}
		return &Limit{Text: s, Fraction: v / 100, IsFraction: true}, nil
	}
	if strings.ContainsAny(t, ".eE") {
		v, err := strconv.ParseFloat(t, 64)
		if err != nil || !(v >= 0 && v <= 1) {
			return nil, bad
		}
		return &Limit{Text: s, Fraction: v, IsFraction: true}, nil
	}
	n, err := strconv.Atoi(t)
	if err != nil || n < 0 {
		return nil, bad
	}
	return &Limit{Text: s, Count: n}, nil
}

// Max is the most issues allowed among n audited images.
func (l *Limit) Max(n int) int {
	if l.IsFraction {
		return int(math.Floor(l.Fraction*float64(n) + 1e-9))
	}
	return l.Count
}

// Issue is one likely mislabelled image.
type Issue struct {
	Rank      int    `json:"rank"`
	File      string `json:"file"`
	Split     string `json:"split"`
	Given     string `json:"given"`
	Suggested string `json:"suggested"`
	// GivenProbability: the out-of-fold probability of the given label
	// (its self confidence, the ranking score); SuggestedProbability that
	// of the suggested one (the most probable class).
	GivenProbability     float64 `json:"given_probability"`
	SuggestedProbability float64 `json:"suggested_probability"`
	index                int
}

// NearDuplicate is one pair, in the shape of prepare's problems.json
// (path, reason, detail, action) with the other image and the similarity.
type NearDuplicate struct {
	Path       string  `json:"path"`
	Reason     string  `json:"reason"`
	Detail     string  `json:"detail"`
	Action     string  `json:"action"` // always "kept": the audit changes nothing
	Other      string  `json:"other"`
	Similarity float64 `json:"similarity"`
	Split      string  `json:"split"`
	OtherSplit string  `json:"other_split"`
	Class      string  `json:"class"`
	OtherClass string  `json:"other_class"`
	a, b       int
}

// Result is the audit's summary (audit.json, and the --json result).
type Result struct {
	Run            string         `json:"run"`
	Out            string         `json:"out"`
	Images         int            `json:"images"` // training + validation images audited for labels
	Folds          int            `json:"folds"`
	Features       string         `json:"features"` // where the features came from
	Computed       int            `json:"computed"` // images the base ran over in this audit
	LabelIssues    int            `json:"label_issues"`
	IssueShare     float64        `json:"label_issue_share"`
	PairsCompared  int            `json:"pairs_compared"`
	Threshold      float64        `json:"near_duplicate_threshold"`
	NearDuplicates map[string]int `json:"near_duplicates"` // by reason
	Seconds        Seconds        `json:"seconds"`
	Gate           *GateResult    `json:"gate,omitempty"`
	Report         string         `json:"report"`
}

// Seconds is where the time went (wall clock).
type Seconds struct {
	Features float64 `json:"features"`
	Heads    float64 `json:"heads"`
	Pairs    float64 `json:"pairs"`
}

// GateResult is the --max-label-issues verdict.
type GateResult struct {
	Limit  string `json:"limit"`
	Max    int    `json:"max"`
	Passed bool   `json:"passed"`
}

// Run audits the run: every report is written before the gate is judged.
func Run(ctx context.Context, o Options) (*Result, error) {
	r, err := run.Open(o.Run)
	if err != nil {
		return nil, err
	}
	out := o.Out
	if out == "" {
		out = r.Path(Dir)
	}
	if run.Inside(r.Dir, out) {
		lock, err := run.Acquire(r.Dir, "audit")
		if err != nil {
			return nil, err
		}
		defer lock.Release()
	}
	t0 := time.Now()
	set, err := LoadSet(ctx, r, o.Session, o.Progressf, o.Notef)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fault.ErrInterrupted
		}
		return nil, err
	}
	res := &Result{Run: r.Dir, Out: out, Folds: o.Folds, Features: set.Source, Computed: set.Computed, Threshold: o.Threshold,
		NearDuplicates: map[string]int{neardup.ReasonInClass: 0, neardup.ReasonAcrossClasses: 0, neardup.ReasonAcrossSplits: 0}}
	res.Seconds.Features = time.Since(t0).Seconds()

	// Label audit: the training and validation images.
	t1 := time.Now()
	idx := set.Split("train", "val")
	res.Images = len(idx)
	k := len(set.Classes)
	feats := make([]float32, 0, len(idx)*set.Dim)
	labels := make([]int, len(idx))
	for j, i := range idx {
		feats = append(feats, set.Features[i*set.Dim:(i+1)*set.Dim]...)
		labels[j] = set.Items[i].Label
	}
	o.Progressf("label audit: %d-fold heads on the features of %d training and validation images", o.Folds, len(idx))
	oof, err := audit.OutOfFold(ctx, feats, set.Dim, labels, k, o.Folds, o.L2, o.Seed)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fault.ErrInterrupted
		}
		return nil, fault.New(fault.BadData, "label audit of %s: %v", r.Dir, err)
	}
	cl, err := audit.FindLabelIssues(labels, oof.Probs, k)
	if err != nil {
		return nil, fault.New(fault.BadData, "label audit of %s: %v", r.Dir, err)
	}
	issues := make([]Issue, len(cl.Issues))
	for rank, j := range cl.Issues {
		p := oof.Probs[j*k : (j+1)*k]
		best := 0
		for c := range p {
			if p[c] > p[best] {
				best = c
			}
		}
		it := set.Items[idx[j]]
		issues[rank] = Issue{Rank: rank + 1, File: it.File, Split: it.Split, Given: set.Classes[labels[j]], Suggested: set.Classes[best],
			GivenProbability: p[labels[j]], SuggestedProbability: p[best], index: idx[j]}
	}
	res.LabelIssues = len(issues)
	if len(idx) > 0 {
		res.IssueShare = float64(len(issues)) / float64(len(idx))
	}
	res.Seconds.Heads = time.Since(t1).Seconds()

	// Near-duplicates: every split.
	t2 := time.Now()
	n := len(set.Items)
	res.PairsCompared = n * (n - 1) / 2
	o.Progressf("near-duplicates: comparing %d pairs of %d images", res.PairsCompared, n)
	pairs, err := neardup.Find(set.Items, set.Features, set.Dim, o.Threshold)
	if err != nil {
		return nil, err
	}
	dups := make([]NearDuplicate, len(pairs))
	for i, p := range pairs {
		a, b := set.Items[p.A], set.Items[p.B]
		d := NearDuplicate{Path: a.File, Reason: p.Reason, Action: "kept", Other: b.File, Similarity: p.Similarity,
			Split: a.Split, OtherSplit: b.Split, Class: set.Classes[a.Label], OtherClass: set.Classes[b.Label], a: p.A, b: p.B}
		switch p.Reason {
		case neardup.ReasonAcrossClasses:
			d.Detail = fmt.Sprintf("near-identical to %s (%s, class %s) but labelled %s: a label conflict", b.File, b.Split, d.OtherClass, d.Class)
		case neardup.ReasonAcrossSplits:
			d.Detail = fmt.Sprintf("near-identical to %s in the %s split: the %s split leaks into %s", b.File, b.Split, a.Split, b.Split)
		default:
			d.Detail = fmt.Sprintf("near-identical to %s, also %s in %s", b.File, d.Class, b.Split)
		}
		dups[i] = d
		res.NearDuplicates[p.Reason]++
	}
	res.Seconds.Pairs = time.Since(t2).Seconds()

	if o.MaxIssues != nil {
		res.Gate = &GateResult{Limit: o.MaxIssues.Text, Max: o.MaxIssues.Max(res.Images)}
		res.Gate.Passed = res.LabelIssues <= res.Gate.Max
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, fault.WriteFailed(out, err)
	}
	res.Report = filepath.Join(out, ReportHTML)
	var pb bytes.Buffer
	pw := csv.NewWriter(&pb)
	head := []string{"file", "split", "given", "fold"}
	for _, c := range set.Classes {
		head = append(head, "prob:"+c)
	}
	pw.Write(head)
	for j, i := range idx {
		rec := []string{set.Items[i].File, set.Items[i].Split, set.Classes[labels[j]], strconv.Itoa(oof.Fold[j])}
		for _, v := range oof.Probs[j*k : (j+1)*k] {
			rec = append(rec, strconv.FormatFloat(v, 'g', 17, 64))
		}
		pw.Write(rec)
	}
	pw.Flush()
	if err := writeFile(filepath.Join(out, ProbabilitiesCSV), pb.Bytes()); err != nil {
		return nil, err
	}
	if err := write(out, set, res, cl, issues, dups); err != nil {
		return nil, err
	}
	return res, nil
}

// GateError is the one line of a failed gate, nil when it passed.
func (r *Result) GateError() error {
	if r.Gate == nil || r.Gate.Passed {
		return nil
	}
	return fault.New(fault.GateFailed, "gate failed: label issues %d (%.1f%% of %d images) > %d (%s %s)",
		r.LabelIssues, 100*r.IssueShare, r.Images, r.Gate.Max, optMaxIssues, r.Gate.Limit)
}

func write(out string, set *Set, res *Result, cl *audit.Confident, issues []Issue, dups []NearDuplicate) error {
	js := struct {
		Images     int       `json:"images"`
		Classes    []string  `json:"classes"`
		Thresholds []float64 `json:"thresholds"`
		Joint      [][]int   `json:"confident_joint"`
		Issues     []Issue   `json:"issues"`
		Method     string    `json:"method"`
	}{res.Images, set.Classes, cl.Thresholds, cl.Joint, issues,
		fmt.Sprintf("confident learning (prune by noise rate, ranked by self confidence) on %d-fold out-of-fold probabilities", res.Folds)}
	if js.Issues == nil {
		js.Issues = []Issue{}
	}
	if dups == nil {
		dups = []NearDuplicate{}
	}
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	w.Write([]string{"rank", "file", "split", "given", "suggested", "given_probability", "suggested_probability"})
	for _, it := range issues {
		w.Write([]string{strconv.Itoa(it.Rank), it.File, it.Split, it.Given, it.Suggested,
			strconv.FormatFloat(it.GivenProbability, 'g', 6, 64), strconv.FormatFloat(it.SuggestedProbability, 'g', 6, 64)})
	}
	w.Flush()
	page, err := renderPage(set, res, issues, dups)
	if err != nil {
		return err
	}
	for name, v := range map[string]any{LabelIssuesJSON: js, NearDuplicatesJSON: dups, SummaryJSON: res} {
		data, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		if err := writeFile(filepath.Join(out, name), append(data, '\n')); err != nil {
			return err
		}
	}
	if err := writeFile(filepath.Join(out, LabelIssuesCSV), b.Bytes()); err != nil {
		return err
	}
	return writeFile(filepath.Join(out, ReportHTML), page)
}

func writeFile(path string, data []byte) error {
	if err := atomicfile.WriteFile(path, data); err != nil {
		return fault.WriteFailed(path, err)
	}
	return nil
}
