package main

import (
	"encoding/json"
	"image"
	"image/jpeg"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	_ "image/png"

	"github.com/xcept/xcept/internal/auditrun"
	"github.com/xcept/xcept/internal/demodata"
	"github.com/xcept/xcept/internal/testenv"
	"github.com/xcept/xcept/internal/testenv/demoset"
	"github.com/xcept/xcept/internal/testmodel"
)

var auditData testenv.Once[string]

// auditDataset is a prepared demo dataset (3 classes of 40, 96 px, the tiny
// test model) with six images moved to another class's folder (their names
// start with "flip-") and one image planted again as a JPEG of quality 60
// (named "copy-…"), prepared by demoset, made once per test binary.
func auditDataset(t *testing.T) string {
	t.Helper()
	modelDir := testmodel.Tiny(t)
	return auditData.Get(t, "audit dataset", func() (string, error) {
		dir, err := os.MkdirTemp("", "xcept-audit-")
		if err != nil {
			return "", err
		}
		images := filepath.Join(dir, "images")
		gen := demodata.Defaults()
		gen.Classes, gen.PerClass, gen.Width, gen.Height, gen.Seed, gen.Format = 3, 40, 96, 96, 11, "png"
		if err := demodata.Generate(images, gen); err != nil {
			return "", err
		}
		classes, err := os.ReadDir(images)
		if err != nil {
			return "", err
		}
		for i := 0; i < 6; i++ {
			from, to := classes[i%3].Name(), classes[(i+1)%3].Name()
			files, err := os.ReadDir(filepath.Join(images, from))
			if err != nil {
				return "", err
			}
			f := files[i].Name()
			if err := os.Rename(filepath.Join(images, from, f), filepath.Join(images, to, "flip-"+f)); err != nil {
				return "", err
			}
		}
		files, _ := os.ReadDir(filepath.Join(images, classes[0].Name()))
		name := files[len(files)/2].Name()
		src := filepath.Join(images, classes[0].Name(), name)
		if err := reencode(src, filepath.Join(images, classes[0].Name(), "copy-"+strings.TrimSuffix(name, ".png")+".jpg")); err != nil {
			return "", err
		}
		p, err := demoset.Folder(t.Context(), images, filepath.Join(dir, "ds"), demoset.Options{Prepare: demoset.PrepareOptions(96), Model: modelDir})
		return p.Dataset, err
	})
}

func reencode(src, dst string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		return err
	}
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if err := jpeg.Encode(out, img, &jpeg.Options{Quality: 60}); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func auditJSON(t *testing.T, args ...string) (*auditrun.Result, string) {
	t.Helper()
	code, stdout, stderr := runXcept(t, nil, append([]string{"--json", "audit"}, args...)...)
	if code != 0 {
		t.Fatalf("audit %v: exit %d: %s", args, code, stderr)
	}
	var res auditrun.Result
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("audit --json printed %q: %v", stdout, err)
	}
	return &res, stderr
}

// TestAudit: a run trained without augmentation is audited from its own
// feature cache; the reports are written; the planted flips are among the
// issues and the re-encoded copy is a near-duplicate; the gate passes at
// the count and fails one below it with one line (exit 3); bad flags exit 2.
func TestAudit(t *testing.T) {
	ds := auditDataset(t)
	cfg := writeTrainConfig(t, "augment:\n  enabled: false\n")
	runDir := filepath.Join(t.TempDir(), "plain")
	if code, _, stderr := runXcept(t, nil, "--config", cfg, "-q", "train", "--data", ds, "--run", runDir, "--epochs", "1"); code != 0 {
		t.Fatalf("train: exit %d: %s", code, stderr)
	}
	// The tiny test model's base is random: its re-encoded copy scores
	// 0.8, where the real base's threshold is measured (README).
	res, stderr := auditJSON(t, "--config", cfg, "--run", runDir, "--near-duplicate-threshold", "0.75")
	if res.Features != "the run's feature cache" || strings.Contains(stderr, "slower") {
		t.Errorf("features from %q (stderr %q), want the run's feature cache", res.Features, stderr)
	}
	out := filepath.Join(runDir, auditrun.Dir)
	for _, f := range []string{auditrun.LabelIssuesJSON, auditrun.LabelIssuesCSV, auditrun.NearDuplicatesJSON, auditrun.SummaryJSON, auditrun.ReportHTML, auditrun.ProbabilitiesCSV} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("%s not written: %v", f, err)
		}
	}
	var issues struct {
		Images int
		Issues []auditrun.Issue
	}
	data, err := os.ReadFile(filepath.Join(out, auditrun.LabelIssuesJSON))
	if err != nil || json.Unmarshal(data, &issues) != nil {
		t.Fatalf("label_issues.json: %v", err)
	}
	if issues.Images != res.Images || len(issues.Issues) != res.LabelIssues || res.Images < 90 {
		t.Fatalf("label_issues.json: %d images, %d issues; result %d, %d", issues.Images, len(issues.Issues), res.Images, res.LabelIssues)
	}
	flips := 0
	for _, it := range issues.Issues {
		if strings.Contains(it.File, "flip-") {
			flips++
			if it.Suggested == it.Given {
				t.Errorf("issue %+v suggests its given label", it)
			}
		}
	}
	t.Logf("%d issues of %d images, %d of them flipped (%d flipped in train+val at most 6)", res.LabelIssues, res.Images, flips, 6)
	if flips < 2 {
		t.Errorf("only %d flipped images among the issues %+v", flips, issues.Issues)
	}
	var dups []auditrun.NearDuplicate
	data, err = os.ReadFile(filepath.Join(out, auditrun.NearDuplicatesJSON))
	if err != nil || json.Unmarshal(data, &dups) != nil {
		t.Fatalf("near_duplicates.json: %v", err)
	}
	if !slices.ContainsFunc(dups, func(d auditrun.NearDuplicate) bool {
		return strings.Contains(d.Path+d.Other, "copy-") && d.Action == "kept" && d.Detail != ""
	}) {
		t.Errorf("the re-encoded copy is not reported: %+v", dups)
	}
	page, _ := os.ReadFile(filepath.Join(out, auditrun.ReportHTML))
	if !strings.Contains(string(page), "data:image/") || !strings.Contains(string(page), "Likely mislabelled images") {
		t.Error("report.html has no gallery")
	}

	n := strconv.Itoa(res.LabelIssues)
	if r, _ := auditJSON(t, "--config", cfg, "--run", runDir, "--max-label-issues", n); r.Gate == nil || !r.Gate.Passed {
		t.Errorf("--max-label-issues %s: gate %+v, want passed", n, r.Gate)
	}
	code, stdout, stderr := runXcept(t, nil, "--config", cfg, "audit", "--run", runDir, "--max-label-issues", strconv.Itoa(res.LabelIssues-1))
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if last := lines[len(lines)-1]; code != 3 || !strings.HasPrefix(last, "xcept: gate failed: label issues "+strconv.Itoa(res.LabelIssues)) || !strings.Contains(last, "--max-label-issues") {
		t.Errorf("gate one below: exit %d, last line %q, stdout %q", code, last, stdout)
	}
	for _, args := range [][]string{
		{"audit"},
		{"audit", "--run", runDir, "--folds", "1"},
		{"audit", "--run", runDir, "--max-label-issues", "many"},
		{"audit", "--run", runDir, "--max-label-issues", "1.5"},
		{"audit", "--run", runDir, "--near-duplicate-threshold", "0"},
	} {
		if code, _, stderr := runXcept(t, nil, args...); code != 2 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("%v: exit %d, stderr %q; want 2 and one line", args, code, stderr)
		}
	}
}

// TestAuditWithoutCachedFeatures: a run trained with augmentation has only
// augmented views cached; the audit runs the base itself, says so, and
// caches the features for the next audit.
func TestAuditWithoutCachedFeatures(t *testing.T) {
	ds := auditDataset(t)
	// Three views, not TestAudit's two: a cache key of its own, so no plain
	// cache made by another test exists yet.
	cfg := writeTrainConfig(t, "")
	data, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte(strings.Replace(string(data), "cache_views: 2", "cache_views: 3", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	runDir := filepath.Join(t.TempDir(), "augmented")
	if code, _, stderr := runXcept(t, nil, "--config", cfg, "-q", "train", "--data", ds, "--run", runDir, "--epochs", "1"); code != 0 {
		t.Fatalf("train: exit %d: %s", code, stderr)
	}
	first, stderr := auditJSON(t, "--config", cfg, "--run", runDir)
	if first.Computed == 0 || !strings.Contains(stderr, "has no cached features of its images as they are") || !strings.Contains(stderr, "slower") {
		t.Errorf("first audit: computed %d, stderr %q: want the base run and said", first.Computed, stderr)
	}
	second, stderr := auditJSON(t, "--config", cfg, "--run", runDir, "--out", filepath.Join(t.TempDir(), "again"))
	if strings.Contains(stderr, "slower") || !strings.Contains(second.Features, "an earlier audit") || second.Computed >= first.Computed {
		t.Errorf("second audit: %q, computed %d (first %d), stderr %q", second.Features, second.Computed, first.Computed, stderr)
	}
	if second.LabelIssues != first.LabelIssues {
		t.Errorf("the same features gave %d then %d issues", first.LabelIssues, second.LabelIssues)
	}
}
