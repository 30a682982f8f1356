package train

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"unsafe"

	"github.com/xcept/xcept/internal/contract"
	"github.com/xcept/xcept/internal/loader"
	"github.com/xcept/xcept/internal/model"
)

// FeatureCache holds the frozen base's pooled features: Views views of each
// training image (with augmentation on, the plain image and Views-1
// augmented ones; else one plain view) and one plain view of each
// validation image. The files are memory-mapped,
// so memory does not grow with the dataset; the kernel pages them in.
//
// The cache is keyed by everything its values depend on: the model (its
// model.json and trainer variables index, whose entries carry a checksum of
// every weight), the dataset (its manifest), the augmentation and the number
// of views. Any change gives another key, hence a fresh cache.
type FeatureCache struct {
	Dir         string
	Dim, Views  int
	TrainLabels []int32
	ValLabels   []int32
	train       [][]float32 // train[v][i*Dim:(i+1)*Dim]: view v of image i
	val         []float32
	maps        [][]byte
}

type cacheMeta struct {
	Key         string  `json:"key"`
	Dim         int     `json:"dim"`
	Views       int     `json:"views"`
	TrainLabels []int32 `json:"train_labels"`
	ValLabels   []int32 `json:"val_labels"`
}

const cacheFormat = "xcept-features-2" // 2: view 0 unaugmented

// CacheKey identifies the cache for a model, dataset and configuration.
func CacheKey(m *model.Model, manifestSHA string, cfg Config) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%d\n", cacheFormat, manifestSHA, cfg.CacheViews)
	aug, _ := json.Marshal(augmentation(cfg))
	h.Write(aug)
	for _, f := range []string{filepath.Join(m.Dir, model.InfoFile), filepath.Join(m.Session.Dir, contract.VariablesIndex)} {
		data, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		h.Write(data)
	}
	return hex.EncodeToString(h.Sum(nil))[:20], nil
}

// Extractor computes the frozen base's pooled features of uint8 images of
// the model's size (n × Dim): the model's own features signature on
// TensorFlow, or its conversion on onnxruntime (infer.OpenFeatures).
type Extractor interface {
	Features(images []uint8, n int) ([]float32, error)
	Close() error
}

// FeatureEngine opens the Extractor a cache build of n images (every view
// of every training image, and the validation images) runs on; the engine
// choice (runtime.engine) is its business. Nil: m itself, on TensorFlow.
type FeatureEngine func(ctx context.Context, m *model.Model, n int) (Extractor, error)

// tfExtractor is m's features signature; Close leaves m open.
type tfExtractor struct{ m *model.Model }

func (t tfExtractor) Features(images []uint8, n int) ([]float32, error) {
	return t.m.Features(images, n)
}
func (t tfExtractor) Close() error { return nil }

// OpenFeatureCache maps the cache under root for this model, data and
// configuration, computing it first when it does not exist, on what engine
// opens (nil: TensorFlow). Either engine computes the same features (to
// float rounding), so the key does not name it. With peers (the workers of
// a cluster; nil: this process alone) every worker computes its share and
// the shares are joined into the one cache (buildShared).
func OpenFeatureCache(ctx context.Context, m *model.Model, data Data, manifestSHA string, cfg Config, root string, notify Notify, engine FeatureEngine, peers Peers) (*FeatureCache, error) {
	key, err := CacheKey(m, manifestSHA, cfg)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(root, key)
	if peers != nil && peers.Size() > 1 {
		err = buildShared(ctx, m, data, cfg, key, dir, notify, engine, peers)
	} else if _, serr := os.Stat(filepath.Join(dir, "meta.json")); errors.Is(serr, os.ErrNotExist) {
		err = buildCache(ctx, m, data, cfg, key, dir, notify, engine)
	}
	if err != nil {
		return nil, err
	}
	return mapCache(dir)
}

// Exists says whether the cache for this model, data and configuration has
// been computed, under root.
func Exists(m *model.Model, manifestSHA string, cfg Config, root string) (bool, error) {
	key, err := CacheKey(m, manifestSHA, cfg)
	if err != nil {
		return false, err
	}
	_, err = os.Stat(filepath.Join(root, key, "meta.json"))
	return err == nil, nil
}

// TrainView is view v of every training image, TrainLabels' order, Dim
// values each (the mapped file: read only, valid until Close).
func (c *FeatureCache) TrainView(v int) []float32 { return c.train[v] }

// Val is the validation images' features, ValLabels' order.
func (c *FeatureCache) Val() []float32 { return c.val }

// ComputeFeatures runs the features signature over one pass of the loader
// (give no Shuffle and no Augment for the images as they are) and returns
// the rows in record order with their labels, in memory.
func ComputeFeatures(ctx context.Context, m *model.Model, o loader.Options) ([]float32, []int32, error) {
	l, err := loader.Open(ctx, o)
	if err != nil {
		return nil, nil, err
	}
	defer l.Close()
	var feats []float32
	var labels []int32
	for {
		b, err := l.Next()
		if err == io.EOF {
			return feats, labels, nil
		}
		if err != nil {
			return nil, nil, err
		}
		f, err := m.Features(b.Images, b.N())
		if err != nil {
			return nil, nil, err
		}
		feats = append(feats, f...)
		labels = append(labels, b.Labels...)
		l.Recycle(b)
	}
}

// cachePass is one file of a cache: one view of the training images or
// the validation images, and the loader pass that reads them.
type cachePass struct {
	file  string
	val   bool
	opts  loader.Options
	count int // images
}

// cachePasses are the files of the cache for data and cfg, in order: the
// training views, then the validation images.
func cachePasses(data Data, cfg Config) ([]cachePass, error) {
	views, aug := 1, augmentation(cfg)
	if aug != nil {
		views = cfg.CacheViews
	}
	n, err := loader.Count(data.TrainShards)
	if err != nil {
		return nil, err
	}
	nval, err := loader.Count(data.ValShards)
	if err != nil {
		return nil, err
	}
	opts := loader.Options{Shards: data.TrainShards, ImageSize: data.ImageSize, Classes: data.Classes, BatchSize: cfg.BatchSize, Workers: cfg.Workers, Seed: uint64(cfg.Seed)}
	var passes []cachePass
	for v := 0; v < views; v++ {
		o := opts
		// View 0 is the plain image, the rest augmented: a head that never
		// saw an unaugmented training image is judged on unaugmented ones.
		// On Fashion-MNIST (1,000 images, ImageNet weights) five augmented
		// views gave 0.797 test accuracy and no augmentation 0.824.
		if aug != nil && v > 0 {
			o.Augment, o.Views, o.View = aug, views, v
		}
		passes = append(passes, cachePass{file: fmt.Sprintf("train-%d.f32", v), opts: o, count: n})
	}
	o := opts
	o.Shards = data.ValShards
	return append(passes, cachePass{file: "val.f32", val: true, opts: o, count: nval}), nil
}

// batches is the number of batches of the pass.
func (p cachePass) batches() int { return (p.count + p.opts.BatchSize - 1) / p.opts.BatchSize }

// openExtractor opens the engine for n images (nil engine: m on TensorFlow).
func openExtractor(ctx context.Context, m *model.Model, n int, engine FeatureEngine) (Extractor, error) {
	if engine == nil {
		return tfExtractor{m}, nil
	}
	return engine(ctx, m, n)
}

// buildCache computes every feature into a temporary folder, then renames it.
func buildCache(ctx context.Context, m *model.Model, data Data, cfg Config, key, dir string, notify Notify, engine FeatureEngine) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+key+".tmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	passes, err := cachePasses(data, cfg)
	if err != nil {
		return err
	}
	total := 0
	for _, p := range passes {
		total += p.count
	}
	ext, err := openExtractor(ctx, m, total, engine)
	if err != nil {
		return err
	}
	defer ext.Close()
	notify("computing the frozen base's features once: %d training images × %d view(s) + validation (cached in %s)", passes[0].count, len(passes)-1, dir)
	meta := cacheMeta{Key: key, Dim: m.Info.FeatureDim, Views: len(passes) - 1}
	for _, p := range passes {
		labels, _, err := writeFeatures(ctx, ext, p.opts, filepath.Join(tmp, p.file))
		if err != nil {
			return err
		}
		if p.val {
			meta.ValLabels = labels
		} else {
			meta.TrainLabels = labels
		}
	}
	return landCache(tmp, dir, meta)
}

// landCache writes meta.json into the complete folder tmp and renames it
// to dir; a cache that landed there first (another process built the same
// key at once) is as good.
func landCache(tmp, dir string, meta cacheMeta) error {
	js, err := json.Marshal(meta)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, "meta.json"), js, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, dir); err != nil && !dirExists(dir) {
		return err
	}
	return nil
}

func dirExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// writeFeatures runs the extractor over one pass of the loader and writes
// the float32 rows, in record order, to path; it returns their labels and
// the file's SHA-256.
func writeFeatures(ctx context.Context, m Extractor, o loader.Options, path string) ([]int32, string, error) {
	l, err := loader.Open(ctx, o)
	if err != nil {
		return nil, "", err
	}
	defer l.Close()
	f, err := os.Create(path)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	sum := sha256.New()
	w := io.MultiWriter(f, sum)
	labels := []int32{}
	buf := make([]byte, 0, 1<<20)
	for {
		b, err := l.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, "", err
		}
		feats, err := m.Features(b.Images, b.N())
		if err != nil {
			return nil, "", err
		}
		labels = append(labels, b.Labels...)
		l.Recycle(b)
		buf = buf[:0]
		for _, x := range feats {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(x))
		}
		if _, err := w.Write(buf); err != nil {
			return nil, "", err
		}
	}
	return labels, hex.EncodeToString(sum.Sum(nil)), f.Close()
}

// mapCache memory-maps a complete cache folder.
func mapCache(dir string) (*FeatureCache, error) {
	js, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	if err != nil {
		return nil, err
	}
	var meta cacheMeta
	if err := json.Unmarshal(js, &meta); err != nil {
		return nil, fmt.Errorf("%s: %w (delete the folder to rebuild it)", dir, err)
	}
	c := &FeatureCache{Dir: dir, Dim: meta.Dim, Views: meta.Views, TrainLabels: meta.TrainLabels, ValLabels: meta.ValLabels}
	for v := 0; v < meta.Views; v++ {
		view, err := c.mmap(filepath.Join(dir, fmt.Sprintf("train-%d.f32", v)), len(meta.TrainLabels)*meta.Dim)
		if err != nil {
			c.Close()
			return nil, err
		}
		c.train = append(c.train, view)
	}
	if c.val, err = c.mmap(filepath.Join(dir, "val.f32"), len(meta.ValLabels)*meta.Dim); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// mmap maps a file of n little-endian float32 values read-only.
func (c *FeatureCache) mmap(path string, n int) ([]float32, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() != int64(n)*4 {
		return nil, fmt.Errorf("%s: %d bytes, want %d (delete %s to rebuild the cache)", path, st.Size(), n*4, c.Dir)
	}
	if n == 0 {
		return nil, nil
	}
	data, err := syscall.Mmap(int(f.Fd()), 0, n*4, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mapping %s: %w", path, err)
	}
	c.maps = append(c.maps, data)
	return unsafe.Slice((*float32)(unsafe.Pointer(&data[0])), n), nil
}

// Close unmaps the files.
func (c *FeatureCache) Close() {
	for _, m := range c.maps {
		syscall.Munmap(m)
	}
	c.maps, c.train, c.val = nil, nil, nil
}

// CachedSource trains the head (train_head_step) on cached features, and
// validates with eval_head_step: no image is decoded, no base is run.
type CachedSource struct {
	Model   *model.Model
	Cache   *FeatureCache
	Cfg     Config
	Weights []float32 // class weights, nil: unweighted
}

func (s *CachedSource) Steps() int {
	return (len(s.Cache.TrainLabels) + s.Cfg.BatchSize - 1) / s.Cfg.BatchSize
}

func (s *CachedSource) Close() { s.Cache.Close() }

// Epoch shuffles the images and picks one cached view of each, both drawn
// from (seed, epoch) alone.
func (s *CachedSource) Epoch(_ context.Context, epoch int) (Batches, error) {
	rng := rand.New(rand.NewPCG(uint64(s.Cfg.Seed), uint64(epoch)))
	n := len(s.Cache.TrainLabels)
	order := rng.Perm(n)
	views := make([]int, n)
	for i := range views {
		views[i] = rng.IntN(s.Cache.Views)
	}
	return &cachedBatches{s: s, order: order, views: views}, nil
}

func (s *CachedSource) Step(b *Batch, p model.StepParams) (model.StepResult, error) {
	return s.Model.HeadStep(b.Features, model.Batch{Labels: b.Labels, Weights: b.Weights}, p)
}

// Validate runs eval_head_step over the cached validation features.
func (s *CachedSource) Validate(ctx context.Context) (float64, float64, error) {
	return validateFeatures(ctx, s.Model, s.Cache.val, s.Cache.ValLabels, s.Cfg.BatchSize)
}

type cachedBatches struct {
	s     *CachedSource
	order []int
	views []int
	next  int
	buf   []float32
}

func (cb *cachedBatches) Next() (*Batch, error) {
	n := len(cb.order)
	if cb.next >= n {
		return nil, io.EOF
	}
	end := min(cb.next+cb.s.Cfg.BatchSize, n)
	d := cb.s.Cache.Dim
	b := &Batch{N: end - cb.next, Labels: make([]int32, 0, end-cb.next)}
	cb.buf = cb.buf[:0]
	for _, i := range cb.order[cb.next:end] {
		cb.buf = append(cb.buf, cb.s.Cache.train[cb.views[i]][i*d:(i+1)*d]...)
		b.Labels = append(b.Labels, cb.s.Cache.TrainLabels[i])
	}
	b.Features = cb.buf
	b.Weights = sampleWeights(cb.s.Weights, b.Labels)
	cb.next = end
	return b, nil
}

func (cb *cachedBatches) Close() {}
