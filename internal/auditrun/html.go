package auditrun

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"html/template"
	"net/http"
)

// galleryLimit bounds the pictures report.html shows of each list (every
// entry is in the JSON and CSV files).
const galleryLimit = 48

type picture struct {
	URI     template.URL
	Caption string
}

type issueCard struct {
	Issue
	Picture picture
}

type pairCard struct {
	NearDuplicate
	A, B picture
}

// renderPage is report.html: the summary, a gallery of the most likely
// label issues and one of the near-duplicate pairs, one self-contained file.
func renderPage(set *Set, res *Result, issues []Issue, dups []NearDuplicate) ([]byte, error) {
	want := map[string]map[int]bool{}
	need := func(i int) {
		s := set.Items[i].Split
		if want[s] == nil {
			want[s] = map[int]bool{}
		}
		want[s][set.Record[i]] = true
	}
	for _, it := range issues[:min(galleryLimit, len(issues))] {
		need(it.index)
	}
	for _, d := range dups[:min(galleryLimit, len(dups))] {
		need(d.a)
		need(d.b)
	}
	images := map[string]map[int][]byte{}
	for s, w := range want {
		m, err := encoded(set.Shards[s], w)
		if err != nil {
			return nil, err
		}
		images[s] = m
	}
	pic := func(i int) picture {
		it := set.Items[i]
		data := images[it.Split][set.Record[i]]
		// The records hold xcept's own JPEG or PNG at the model's size.
		uri := "data:" + http.DetectContentType(data) + ";base64," + base64.StdEncoding.EncodeToString(data)
		return picture{URI: template.URL(uri), Caption: it.File}
	}
	var d struct {
		R      *Result
		Issues []issueCard
		More   int
		Pairs  []pairCard
		MoreP  int
	}
	d.R = res
	for _, it := range issues[:min(galleryLimit, len(issues))] {
		d.Issues = append(d.Issues, issueCard{it, pic(it.index)})
	}
	d.More = len(issues) - len(d.Issues)
	for _, p := range dups[:min(galleryLimit, len(dups))] {
		d.Pairs = append(d.Pairs, pairCard{p, pic(p.a), pic(p.b)})
	}
	d.MoreP = len(dups) - len(d.Pairs)
	var b bytes.Buffer
	if err := page.Execute(&b, d); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

var page = template.Must(template.New("audit").Funcs(template.FuncMap{
	"pct":  func(v float64) string { return fmt.Sprintf("%.1f%%", v*100) },
	"num3": func(v float64) string { return fmt.Sprintf("%.3f", v) },
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>xcept audit: {{.R.Run}}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse}td,th{padding:.2em .6em;border-bottom:1px solid #ddd;text-align:left}
.grid{display:flex;flex-wrap:wrap;gap:12px}.card{width:170px;font-size:12px;word-break:break-all}
.card img,.pair img{width:160px;height:160px;object-fit:contain;background:#eee;image-rendering:pixelated}
.pair{display:flex;flex-wrap:wrap;gap:6px;align-items:flex-start;font-size:12px;width:360px;word-break:break-all;border:1px solid #ddd;padding:6px}
.given{color:#b00}.suggested{color:#070}.fail{color:#b00;font-weight:bold}.pass{color:#070}
</style></head><body>
<h1>Audit of {{.R.Run}}</h1>
<table>
<tr><th>images audited for labels (train + val)</th><td>{{.R.Images}}</td></tr>
<tr><th>likely label issues</th><td>{{.R.LabelIssues}} ({{pct .R.IssueShare}})</td></tr>
<tr><th>method</th><td>confident learning (prune by noise rate, ranked by self confidence) on {{.R.Folds}}-fold out-of-fold probabilities of heads fitted on the frozen base's features</td></tr>
<tr><th>features</th><td>{{.R.Features}}; the base ran over {{.R.Computed}} images in this audit</td></tr>
<tr><th>near-duplicate pairs (cosine ≥ {{num3 .R.Threshold}}, {{.R.PairsCompared}} pairs compared)</th><td>{{range $k, $v := .R.NearDuplicates}}{{$k}}: {{$v}}<br>{{end}}</td></tr>
{{with .R.Gate}}<tr><th>gate --max-label-issues {{.Limit}}</th><td class="{{if .Passed}}pass{{else}}fail{{end}}">{{if .Passed}}passed{{else}}failed{{end}} (at most {{.Max}})</td></tr>{{end}}
</table>
<h2>Likely mislabelled images</h2>
<p>Most likely first: the lowest out-of-fold probability of the given label. Every one is in label_issues.csv and label_issues.json.</p>
<div class="grid">{{range .Issues}}<div class="card"><img src="{{.Picture.URI}}" alt="{{.File}}"><br>#{{.Rank}} {{.File}} ({{.Split}})<br>
<span class="given">given {{.Given}} ({{num3 .GivenProbability}})</span><br><span class="suggested">suggested {{.Suggested}} ({{num3 .SuggestedProbability}})</span></div>{{else}}<p>None found.</p>{{end}}</div>
{{if .More}}<p>… and {{.More}} more in label_issues.csv.</p>{{end}}
<h2>Near-duplicates</h2>
<p>Pairs whose frozen-base features are near-identical (re-encoded, resized, cropped or recoloured copies), most similar first. Every pair is in near_duplicates.json.</p>
<div class="grid">{{range .Pairs}}<div class="pair"><div><img src="{{.A.URI}}" alt="{{.Path}}"><br>{{.Path}}<br>{{.Class}}, {{.Split}}</div>
<div><img src="{{.B.URI}}" alt="{{.Other}}"><br>{{.Other}}<br>{{.OtherClass}}, {{.OtherSplit}}</div>
<div style="width:100%"><b>{{.Reason}}</b>, similarity {{num3 .Similarity}}</div></div>{{else}}<p>None found.</p>{{end}}</div>
{{if .MoreP}}<p>… and {{.MoreP}} more in near_duplicates.json.</p>{{end}}
</body></html>
`))
