package train

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/xcept/xcept/internal/augment"
	"github.com/xcept/xcept/internal/dataset"
	"github.com/xcept/xcept/internal/demodata"
	"github.com/xcept/xcept/internal/model"
	"github.com/xcept/xcept/internal/testenv/demoset"
)

// hub simulates a cluster's collectives for goroutine workers: every
// AllGather call of a round returns the values of all size calls, and
// after(round) runs once all have arrived, before any returns.
type hub struct {
	size   int
	after  func(round int)
	mu     sync.Mutex
	cond   *sync.Cond
	round  int
	vals   [][]float64
	result map[int][][]float64
}

func newHub(size int) *hub {
	h := &hub{size: size, result: map[int][][]float64{}}
	h.cond = sync.NewCond(&h.mu)
	return h
}

type hubPeer struct {
	h    *hub
	task int
}

func (p hubPeer) Size() int            { return p.h.size }
func (p hubPeer) Task() int            { return p.task }
func (p hubPeer) Name(task int) string { return fmt.Sprintf("worker %d", task) }

func (p hubPeer) AllGather(v []float64) ([][]float64, error) {
	h := p.h
	h.mu.Lock()
	defer h.mu.Unlock()
	round := h.round
	if h.vals == nil {
		h.vals = make([][]float64, h.size)
	}
	h.vals[p.task] = slices.Clone(v)
	if !slices.ContainsFunc(h.vals, func(x []float64) bool { return x == nil }) {
		if h.after != nil {
			h.after(round)
		}
		h.result[round], h.vals = h.vals, nil
		h.round++
		h.cond.Broadcast()
	}
	for h.result[round] == nil {
		h.cond.Wait()
	}
	return h.result[round], nil
}

// pixelFeatures is a stand-in for the base: each image's features are
// sums of strided pixels, so they depend on the image alone. fail, when
// set, fails the call that reaches it.
type pixelFeatures struct {
	dim  int
	fail *int
	mu   *sync.Mutex
}

func (f pixelFeatures) Features(images []uint8, n int) ([]float32, error) {
	if f.fail != nil {
		f.mu.Lock()
		*f.fail--
		left := *f.fail
		f.mu.Unlock()
		if left == 0 {
			return nil, errors.New("the extractor failed")
		}
	}
	out := make([]float32, n*f.dim)
	per := len(images) / max(n, 1)
	for i := range n {
		for j, v := range images[i*per : (i+1)*per] {
			out[i*f.dim+j%f.dim] += float32(v) / 255
		}
	}
	return out, nil
}
func (pixelFeatures) Close() error { return nil }

// cacheFiles is every file of a cache folder by name.
func cacheFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, e := range entries {
		if files[e.Name()], err = os.ReadFile(filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	return files
}

// TestSharedCacheEqualsOneProcess: workers building the feature cache in
// parts (uneven batches, a worker with no validation batch, augmented
// views) join exactly the files one process writes; parts of another
// build are never read and are removed; a worker that fails mid-build, or
// a damaged part, leaves no cache for a later run to trust, and the parts
// are gone; workers that share no storage each compute the parts they do
// not see and get the same cache.
func TestSharedCacheEqualsOneProcess(t *testing.T) {
	gen := demodata.Defaults()
	gen.Classes, gen.PerClass, gen.Width, gen.Height, gen.Seed = 3, 12, 32, 32, 4
	prep := demoset.PrepareOptions(32)
	prep.Fractions = dataset.Fractions{Train: 0.75, Val: 0.25}
	demo := demoset.Temp(t, demoset.Options{Images: gen, Prepare: prep})
	data := Data{TrainShards: demo.Manifest.ShardPaths(demo.Dataset, "train"), ValShards: demo.Manifest.ShardPaths(demo.Dataset, "val"), ImageSize: 32, Classes: 3}
	recipe := augment.Recipe()
	cfg := Config{BatchSize: 5, Seed: 3, CacheViews: 2, Augment: recipe, Workers: 1}
	m := &model.Model{Info: &model.Info{FeatureDim: 5}}
	engine := func(context.Context, *model.Model, int) (Extractor, error) { return pixelFeatures{dim: 5}, nil }
	quiet := func(string, ...any) {}
	const key = "testkey"

	want := filepath.Join(t.TempDir(), key)
	if err := buildCache(t.Context(), m, data, cfg, key, want, quiet, engine); err != nil {
		t.Fatal(err)
	}
	wantFiles := cacheFiles(t, want)
	passes, _ := cachePasses(data, cfg)
	t.Logf("%d training images, %d validation images in batches of %d", passes[0].count, passes[2].count, cfg.BatchSize)
	if passes[2].batches() >= 3 {
		t.Fatalf("%d validation batches: the test wants 3 workers, one with none", passes[2].batches())
	}

	// build runs size workers; roots[i] is worker i's cache root.
	build := func(size int, roots []string, h *hub, fail func(task int) *int) []error {
		errs := make([]error, size)
		var wg sync.WaitGroup
		for task := range size {
			wg.Go(func() {
				eng := engine
				if fail != nil && fail(task) != nil {
					f := pixelFeatures{dim: 5, fail: fail(task), mu: &sync.Mutex{}}
					eng = func(context.Context, *model.Model, int) (Extractor, error) { return f, nil }
				}
				errs[task] = buildShared(t.Context(), m, data, cfg, key, filepath.Join(roots[task], key), quiet, eng, hubPeer{h, task})
			})
		}
		wg.Wait()
		return errs
	}
	same := func(what, dir string) {
		t.Helper()
		got := cacheFiles(t, dir)
		if len(got) != len(wantFiles) {
			t.Fatalf("%s: files %v, want %d", what, slices.Collect(maps.Keys(got)), len(wantFiles))
		}
		for name, w := range wantFiles {
			if !bytes.Equal(got[name], w) {
				t.Errorf("%s: %s differs from one process's", what, name)
			}
		}
	}
	left := func(what, root string) {
		t.Helper()
		entries, _ := os.ReadDir(root)
		for _, e := range entries {
			if e.Name() != key {
				t.Errorf("%s: %s left in the cache root", what, e.Name())
			}
		}
	}

	shared := t.TempDir()
	all := []string{shared, shared, shared}
	// Another build's parts (a cluster that died building): one
	// complete-looking and wrong,
	stale := filepath.Join(shared, "."+key+".parts-0000000000001", "part-1")
	os.MkdirAll(stale, 0o755)
	os.WriteFile(filepath.Join(stale, "part.json"), []byte(`{"format":"`+partFormat+`","key":"`+key+`","build":"0000000000001","task":1,"tasks":3}`), 0o644)
	os.WriteFile(filepath.Join(stale, "train-0.f32"), []byte("garbage"), 0o644)
	// and one that worker died writing.
	os.MkdirAll(filepath.Join(filepath.Dir(stale), ".part-0.tmp-123"), 0o755)

	// A worker whose extractor fails on its second batch.
	two := 2
	errs := build(3, all, newHub(3), func(task int) *int {
		if task == 1 {
			return &two
		}
		return nil
	})
	if errs[1] == nil || !strings.Contains(errs[1].Error(), "the extractor failed") ||
		errs[0] == nil || !strings.Contains(errs[0].Error(), "worker 1 could not compute its part") {
		t.Fatalf("a failing worker: errors %v", errs)
	}
	if fileExists(filepath.Join(shared, key, "meta.json")) {
		t.Fatal("a failed build left a cache")
	}
	left("after a failing worker", shared) // its parts, and the other build's

	// A part damaged after it was written: the join refuses it.
	h := newHub(3)
	h.after = func(round int) {
		if round == 1 {
			parts, _ := filepath.Glob(filepath.Join(shared, "."+key+".parts-*", "part-2", "train-1.f32"))
			for _, p := range parts {
				data, _ := os.ReadFile(p)
				data[0] ^= 1
				os.WriteFile(p, data, 0o644)
			}
		}
	}
	errs = build(3, all, h, nil)
	if errs[0] == nil || !strings.Contains(errs[0].Error(), "damaged part") || errs[2] == nil || !strings.Contains(errs[2].Error(), "worker 0 could not join") {
		t.Fatalf("a damaged part: errors %v", errs)
	}
	if fileExists(filepath.Join(shared, key, "meta.json")) {
		t.Fatal("a damaged part made a cache")
	}
	left("after the failures", shared)

	for _, err := range build(3, all, newHub(3), nil) {
		if err != nil {
			t.Fatal(err)
		}
	}
	same("3 workers sharing the root", filepath.Join(shared, key))
	left("3 workers sharing the root", shared)

	// Every worker has it now: nothing is computed (a first call to the
	// extractor would fail), nothing changes.
	for _, err := range build(3, all, newHub(3), func(int) *int { first := 1; return &first }) {
		if err != nil {
			t.Fatal(err)
		}
	}
	same("3 workers, cache present", filepath.Join(shared, key))

	// No storage shared: each computes what it does not see.
	apart := []string{t.TempDir(), t.TempDir()}
	for _, err := range build(2, apart, newHub(2), nil) {
		if err != nil {
			t.Fatal(err)
		}
	}
	for i, root := range apart {
		same(fmt.Sprintf("worker %d of 2 sharing nothing", i), filepath.Join(root, key))
		left(fmt.Sprintf("worker %d of 2 sharing nothing", i), root)
	}
}
