// Package auditrun is `xcept audit`: it gathers the frozen base's features
// of a run's images (from the feature cache where it can), runs the label
// audit (internal/audit) on the training and validation images and the
// near-duplicate search (internal/neardup) on every split, writes the
// reports and applies the gate.
package auditrun

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/xcept/xcept/internal/dataset"
	"github.com/xcept/xcept/internal/graph"
	"github.com/xcept/xcept/internal/loader"
	"github.com/xcept/xcept/internal/model"
	"github.com/xcept/xcept/internal/neardup"
	"github.com/xcept/xcept/internal/run"
	"github.com/xcept/xcept/internal/tfexample"
	"github.com/xcept/xcept/internal/tfrecord"
	"github.com/xcept/xcept/internal/train"
)

// Splits in the order their images are numbered.
var splits = []string{"train", "val", "test"}

// Set is every image of a run's dataset with its frozen-base features.
type Set struct {
	Items    []neardup.Item // split, label, file name, in splits order, then record order
	Record   []int          // Record[i]: the position of item i's record in its split
	Features []float32      // len(Items)×Dim
	Dim      int
	Classes  []string
	// Source says where the features came from, for the summary.
	Source string
	// Computed: images the base ran over in this audit (0: all cached).
	Computed int
	Shards   map[string][]string
}

// Split returns the indices of the items of the given splits.
func (s *Set) Split(names ...string) []int {
	var out []int
	for i, it := range s.Items {
		for _, n := range names {
			if it.Split == n {
				out = append(out, i)
			}
		}
	}
	return out
}

// runConfig is what the audit reads of the run's resolved config.yaml: what
// its feature cache was keyed by.
type runConfig struct {
	Seed  int64 `yaml:"seed"`
	Train struct {
		FeatureCache bool `yaml:"feature_cache"`
		CacheViews   int  `yaml:"cache_views"`
		BatchSize    int  `yaml:"batch_size"`
	} `yaml:"train"`
	Augment struct {
		Enabled bool `yaml:"enabled"`
	} `yaml:"augment"`
}

func readRunConfig(r *run.Run) (runConfig, error) {
	var c runConfig
	data, err := os.ReadFile(r.Path(run.ConfigFile))
	if errors.Is(err, os.ErrNotExist) {
		c.Train.CacheViews, c.Train.BatchSize = 5, 32 // the defaults
		return c, nil
	}
	if err != nil {
		return c, err
	}
	if err := yaml.Unmarshal(data, &c); err != nil {
		return c, fmt.Errorf("%s: %w", r.Path(run.ConfigFile), err)
	}
	if c.Train.CacheViews < 1 {
		c.Train.CacheViews = 5
	}
	if c.Train.BatchSize < 1 {
		c.Train.BatchSize = 32
	}
	return c, nil
}

// frozenModel is the model folder the run's frozen phase trained: the
// run's own model/ when train rebuilt it (another precision), else the
// dataset's. Its base is the frozen base whatever fine-tuning did later.
func frozenModel(r *run.Run) string {
	own := r.Path("model")
	if _, err := os.Stat(filepath.Join(own, model.InfoFile)); err == nil {
		return own
	}
	return filepath.Join(r.Info.Dataset, dataset.ModelDir)
}

// LoadSet gathers the features of every image of the run's dataset. The
// training and validation images come from the feature cache of the
// images as they are (no augmentation): the run's own cache when it
// trained without augmentation, else one computed now and kept beside it
// for the next audit; the test images are computed each time.
//
// progress gets progress lines; note the line that says the base must run
// (shown beside --json too).
func LoadSet(ctx context.Context, r *run.Run, sess graph.SessionOptions, progress, note func(string, ...any)) (*Set, error) {
	ds, err := dataset.ReadManifest(r.Info.Dataset)
	if err != nil {
		return nil, fmt.Errorf("run %s: dataset %s: %w", r.Dir, r.Info.Dataset, err)
	}
	rc, err := readRunConfig(r)
	if err != nil {
		return nil, err
	}
	m, err := model.Open(frozenModel(r), sess)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	shards := map[string][]string{}
	for _, s := range splits {
		shards[s] = ds.ShardPaths(r.Info.Dataset, s)
	}
	if len(shards["train"]) == 0 {
		return nil, fmt.Errorf("dataset %s has no training images", r.Info.Dataset)
	}
	data := train.Data{TrainShards: shards["train"], ValShards: shards["val"], ImageSize: ds.Image.Size, Classes: len(ds.Classes)}
	cfg := train.Config{CacheViews: rc.Train.CacheViews, BatchSize: rc.Train.BatchSize, Seed: rc.Seed} // no augmentation
	sum, err := train.ManifestSHA(r.Info.Dataset)
	if err != nil {
		return nil, err
	}
	root := train.CacheRoot(r)
	cached, err := train.Exists(m, sum, cfg, root)
	if err != nil {
		return nil, err
	}
	set := &Set{Dim: m.Info.FeatureDim, Classes: ds.ClassNames(), Shards: shards}
	var trainN, valN, testN int
	for _, c := range ds.Classes {
		trainN, valN, testN = trainN+c.Train, valN+c.Val, testN+c.Test
	}
	switch {
	case cached && rc.Train.FeatureCache && !rc.Augment.Enabled:
		set.Source = "the run's feature cache"
	case cached:
		set.Source = "the feature cache of the images as they are (made by an earlier audit, or a run trained without augmentation)"
	default:
		why := "it trained with augmentation, so its cached views are augmented copies"
		if !rc.Train.FeatureCache {
			why = "it trained without the feature cache"
		}
		note("run %s has no cached features of its images as they are (%s): running the frozen base over its %d training and %d validation images once (slower; kept for the next audit)", r.Dir, why, trainN, valN)
		set.Computed += trainN + valN
	}
	start := time.Now()
	fc, err := train.OpenFeatureCache(ctx, m, data, sum, cfg, root, progress, nil, nil)
	if err != nil {
		return nil, err
	}
	defer fc.Close()
	var test []float32
	if len(shards["test"]) > 0 {
		progress("running the frozen base over the %d test images (for leakage across splits)", testN)
		var err error
		test, _, err = train.ComputeFeatures(ctx, m, loader.Options{Shards: shards["test"], ImageSize: ds.Image.Size, Classes: len(ds.Classes), BatchSize: rc.Train.BatchSize})
		if err != nil {
			return nil, err
		}
		set.Computed += len(test) / set.Dim
	}
	if set.Computed > 0 {
		progress("frozen base features of %d images computed in %s", set.Computed, time.Since(start).Round(time.Millisecond))
	}
	for _, s := range splits {
		var feats []float32
		switch s {
		case "train":
			feats = fc.TrainView(0)
		case "val":
			feats = fc.Val()
		default:
			feats = test
		}
		recs, err := records(shards[s])
		if err != nil {
			return nil, err
		}
		if len(recs)*set.Dim != len(feats) {
			return nil, fmt.Errorf("%s split: %d records but %d feature rows (delete %s to rebuild the cache)", s, len(recs), len(feats)/set.Dim, fc.Dir)
		}
		for i, rec := range recs {
			set.Items = append(set.Items, neardup.Item{Split: s, Label: rec.label, File: rec.file})
			set.Record = append(set.Record, i)
		}
		set.Features = append(set.Features, feats...)
	}
	return set, nil
}

type record struct {
	file  string
	label int
}

// records reads the file names and labels of a split's records in order.
func records(shards []string) ([]record, error) {
	var out []record
	err := eachRecord(shards, func(_ int, ex *tfexample.Example) error {
		name, err := ex.Bytes(dataset.KeyName)
		if err != nil {
			return err
		}
		label, err := ex.Int64(dataset.KeyLabel)
		if err != nil {
			return err
		}
		out = append(out, record{file: string(name), label: int(label)})
		return nil
	})
	return out, err
}

// encoded returns the stored image bytes of the wanted records of a split.
func encoded(shards []string, want map[int]bool) (map[int][]byte, error) {
	out := map[int][]byte{}
	err := eachRecord(shards, func(i int, ex *tfexample.Example) error {
		if want[i] {
			b, err := ex.Bytes(dataset.KeyEncoded)
			if err != nil {
				return err
			}
			out[i] = b
		}
		return nil
	})
	return out, err
}

func eachRecord(shards []string, fn func(i int, ex *tfexample.Example) error) error {
	i := 0
	for _, path := range shards {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		rd := tfrecord.NewReader(f)
		for {
			rec, err := rd.Next()
			if err == io.EOF {
				break
			}
			if err == nil {
				var ex *tfexample.Example
				if ex, err = tfexample.Unmarshal(rec); err == nil {
					err = fn(i, ex)
				}
			}
			if err != nil {
				f.Close()
				return fmt.Errorf("%s record %d: %w", path, i, err)
			}
			i++
		}
		f.Close()
	}
	return nil
}
