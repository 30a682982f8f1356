package train

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/xcept/xcept/internal/model"
)

// Peers are the workers of a cluster that build a feature cache together
// (a model in a group: model.Model.AllGather over its dp_check collective).
// Every worker calls the same Peers methods in the same order.
type Peers interface {
	Size() int
	Task() int
	Name(task int) string // "worker 1 (host:port)"
	// AllGather gives every task's values (at most 8), in task order.
	AllGather(values []float64) ([][]float64, error)
}

// groupPeers are the tasks of m's group.
type groupPeers struct{ m *model.Model }

func (p groupPeers) Size() int                                  { return p.m.Group.Size }
func (p groupPeers) Task() int                                  { return p.m.Group.Task }
func (p groupPeers) Name(task int) string                       { return p.m.Group.Name(task) }
func (p groupPeers) AllGather(v []float64) ([][]float64, error) { return p.m.AllGather(v) }

// A shared build: every worker of the cluster computes its part of every
// pass of the cache (the batches model.Group.Shard gives it: whole batches
// of the single build's, so each batch's features are the ones one process
// computes) into ROOT/.KEY.parts-BUILD/part-TASK, written through a
// temporary folder and a rename, with part.json (its build, task, batch
// ranges, labels and each file's SHA-256) last. BUILD is a random id the
// chief draws for this build alone, so a part of any other build (one whose
// worker died, or an earlier cluster's) is never read, and a part is
// trusted only once renamed and only with the SHA-256 it records. After
// every worker has its part (a collective), the chief joins the parts into
// the cache folder exactly as buildCache writes it, through a temporary
// folder and a rename, and removes the parts.
//
// The parts pay only when every worker sees the others' (ROOT on storage
// they share: the dataset's folder, as the run folder must be). A worker
// that does not see some parts says so, computes them itself and joins its
// own copy of the cache: no faster than building it alone, never wrong.
func buildShared(ctx context.Context, m *model.Model, data Data, cfg Config, key, dir string, notify Notify, engine FeatureEngine, peers Peers) error {
	task, size := peers.Task(), peers.Size()
	have, id := 0.0, 0.0
	if fileExists(filepath.Join(dir, "meta.json")) {
		have = 1
	}
	if task == 0 {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return err
		}
		id = float64(binary.LittleEndian.Uint64(b[:]) >> 12) // 52 bits: exact in a float64
	}
	g, err := peers.AllGather([]float64{have, id})
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(g, func(v []float64) bool { return v[0] == 0 }) {
		return nil // every worker has it
	}
	root := filepath.Dir(dir)
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	build := fmt.Sprintf("%013x", uint64(g[0][1]))
	parts := filepath.Join(root, "."+key+".parts-"+build)
	removeOtherParts(root, key, parts)
	passes, err := cachePasses(data, cfg)
	if err != nil {
		return err
	}
	p := partBuild{m: m, key: key, build: build, parts: parts, passes: passes, size: size, engine: engine}

	notify("computing the frozen base's features once, %s's part of %d: %s (cached in %s)", peers.Name(task), size, p.describe(task), dir)
	if err := p.gather(peers, p.write(ctx, task), "could not compute its part of the feature cache"); err != nil {
		if task == 0 {
			os.RemoveAll(parts) // every worker is past writing its part
		}
		return err
	}

	var missing []int
	for u := range size {
		if _, err := p.read(u); err != nil {
			missing = append(missing, u)
		}
	}
	if len(missing) > 0 {
		var names []string
		for _, u := range missing {
			names = append(names, peers.Name(u))
		}
		notify("the feature cache's parts of %s are not in %s here (the workers share no storage for it): computing them here too; put the dataset on storage every worker shares for the parts to pay", strings.Join(names, ", "), parts)
	}
	var joinErr error
	switch {
	case len(missing) > 0:
		for _, u := range missing {
			if joinErr = p.write(ctx, u); joinErr != nil {
				break
			}
		}
		if joinErr == nil {
			joinErr = p.join(dir)
		}
	case task == 0:
		joinErr = p.join(dir)
	}
	err = p.gather(peers, joinErr, "could not join the parts of the feature cache")
	// Every worker is past the join: the parts can go (the chief's, and
	// those of a worker that made its own).
	if task == 0 || len(missing) > 0 {
		os.RemoveAll(parts)
	}
	return err
}

// gather tells every worker whether each worker's mine succeeded: it
// returns mine, or an error naming the first worker whose failed.
func (p *partBuild) gather(peers Peers, mine error, what string) error {
	ok := 1.0
	if mine != nil {
		ok = 0
	}
	g, err := peers.AllGather([]float64{ok})
	if err != nil {
		return err
	}
	if mine != nil {
		return mine
	}
	for u, v := range g {
		if v[0] == 0 {
			return fmt.Errorf("%s %s (its own output says why)", peers.Name(u), what)
		}
	}
	return nil
}

// removeOtherParts removes the parts of other builds of key under root
// (left by a worker that died): the only build whose parts are read is
// the current one.
func removeOtherParts(root, key, keep string) {
	dirs, _ := filepath.Glob(filepath.Join(root, "."+key+".parts-*"))
	for _, d := range dirs {
		if d != keep {
			os.RemoveAll(d)
		}
	}
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// partBuild is one shared build of a cache.
type partBuild struct {
	m          *model.Model
	key, build string
	parts      string // ROOT/.KEY.parts-BUILD
	passes     []cachePass
	size       int
	engine     FeatureEngine
}

// partMeta is a part's part.json.
type partMeta struct {
	Format string     `json:"format"`
	Key    string     `json:"key"`
	Build  string     `json:"build"`
	Task   int        `json:"task"`
	Tasks  int        `json:"tasks"`
	Dim    int        `json:"dim"`
	Files  []partFile `json:"files"`
}

type partFile struct {
	Name   string  `json:"name"`
	From   int     `json:"from"` // batches [from, to) of the pass
	To     int     `json:"to"`
	SHA256 string  `json:"sha256"`
	Labels []int32 `json:"labels"`
}

const partFormat = cacheFormat + "-part-1"

// span is the batches [from, to) of pass p that task computes.
func (b *partBuild) span(p cachePass, task int) (from, to int) {
	g := model.Group{Size: b.size, Task: task}
	return g.Shard(p.batches())
}

func (b *partBuild) describe(task int) string {
	var s []string
	for _, p := range b.passes {
		from, to := b.span(p, task)
		s = append(s, fmt.Sprintf("%s batches %d-%d of %d", strings.TrimSuffix(p.file, ".f32"), from, to, p.batches()))
	}
	return strings.Join(s, ", ")
}

func (b *partBuild) dir(task int) string { return filepath.Join(b.parts, fmt.Sprintf("part-%d", task)) }

// write computes task's part into its folder.
func (b *partBuild) write(ctx context.Context, task int) error {
	if err := os.MkdirAll(b.parts, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(b.parts, fmt.Sprintf(".part-%d.tmp-", task))
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	images := 0
	for _, p := range b.passes {
		from, to := b.span(p, task)
		images += min(to*p.opts.BatchSize, p.count) - min(from*p.opts.BatchSize, p.count)
	}
	var ext Extractor
	if images > 0 {
		if ext, err = openExtractor(ctx, b.m, images, b.engine); err != nil {
			return err
		}
		defer ext.Close()
	}
	meta := partMeta{Format: partFormat, Key: b.key, Build: b.build, Task: task, Tasks: b.size, Dim: b.m.Info.FeatureDim}
	for _, p := range b.passes {
		f := partFile{Name: p.file, Labels: []int32{}}
		f.From, f.To = b.span(p, task)
		path := filepath.Join(tmp, p.file)
		if f.From == f.To {
			// No batch of this pass: an empty file.
			if err := os.WriteFile(path, nil, 0o644); err != nil {
				return err
			}
			sum := sha256.Sum256(nil)
			f.SHA256 = hex.EncodeToString(sum[:])
		} else {
			o := p.opts
			o.From, o.To = f.From, f.To
			if f.Labels, f.SHA256, err = writeFeatures(ctx, ext, o, path); err != nil {
				return err
			}
		}
		meta.Files = append(meta.Files, f)
	}
	js, err := json.Marshal(meta)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, "part.json"), js, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, b.dir(task)); err != nil && !dirExists(b.dir(task)) {
		return err
	}
	return nil
}

// read reads task's part.json and checks that it is this build's part of
// task, with the batches this build gives it.
func (b *partBuild) read(task int) (*partMeta, error) {
	js, err := os.ReadFile(filepath.Join(b.dir(task), "part.json"))
	if err != nil {
		return nil, err
	}
	var meta partMeta
	if err := json.Unmarshal(js, &meta); err != nil {
		return nil, fmt.Errorf("%s: %w", b.dir(task), err)
	}
	ok := meta.Format == partFormat && meta.Key == b.key && meta.Build == b.build && meta.Task == task &&
		meta.Tasks == b.size && meta.Dim == b.m.Info.FeatureDim && len(meta.Files) == len(b.passes)
	for i := 0; ok && i < len(b.passes); i++ {
		f, p := meta.Files[i], b.passes[i]
		from, to := b.span(p, task)
		rows := min(to*p.opts.BatchSize, p.count) - min(from*p.opts.BatchSize, p.count)
		ok = f.Name == p.file && f.From == from && f.To == to && len(f.Labels) == rows
	}
	if !ok {
		return nil, fmt.Errorf("%s: not part %d of build %s of cache %s", b.dir(task), task, b.build, b.key)
	}
	return &meta, nil
}

// join writes the cache folder dir from every part: each pass's file is
// the parts' files in task order, each checked against its SHA-256 and
// size as it is copied; a cache that is already there is kept.
func (b *partBuild) join(dir string) error {
	if fileExists(filepath.Join(dir, "meta.json")) {
		return nil
	}
	metas := make([]*partMeta, b.size)
	for u := range b.size {
		var err error
		if metas[u], err = b.read(u); err != nil {
			return err
		}
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+b.key+".tmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	meta := cacheMeta{Key: b.key, Dim: b.m.Info.FeatureDim, Views: len(b.passes) - 1}
	for i, p := range b.passes {
		labels := []int32{}
		out, err := os.Create(filepath.Join(tmp, p.file))
		if err != nil {
			return err
		}
		for u, pm := range metas {
			f := pm.Files[i]
			if err := appendPart(out, filepath.Join(b.dir(u), f.Name), int64(len(f.Labels))*int64(meta.Dim)*4, f.SHA256); err != nil {
				out.Close()
				return err
			}
			labels = append(labels, f.Labels...)
		}
		if err := out.Close(); err != nil {
			return err
		}
		switch {
		case p.val:
			meta.ValLabels = labels
		case i == 0:
			meta.TrainLabels = labels
		case !slices.Equal(labels, meta.TrainLabels):
			return fmt.Errorf("%s: the parts' labels of %s differ from those of %s", b.parts, p.file, b.passes[0].file)
		}
	}
	return landCache(tmp, dir, meta)
}

// appendPart copies the part file path to out, refusing it unless it has
// size bytes and the SHA-256 sum.
func appendPart(out io.Writer, path string, size int64, sum string) error {
	in, err := os.Open(path)
	if err != nil {
		return err
	}
	defer in.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(out, h), in)
	if err != nil {
		return err
	}
	if n != size || hex.EncodeToString(h.Sum(nil)) != sum {
		return fmt.Errorf("%s: not the file its part.json records (%d bytes, want %d, or another SHA-256): a damaged part", path, n, size)
	}
	return nil
}
