package dataset

import (
	"bufio"
	"cmp"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/xcept/xcept/internal/tfexample"
	"github.com/xcept/xcept/internal/tfrecord"
)

// tf.Example keys, the standard image-classification ones, so that
// TensorFlow's own readers understand the records.
const (
	KeyEncoded = "image/encoded"
	KeyFormat  = "image/format"
	KeyLabel   = "image/class/label"
	KeyText    = "image/class/text"
	KeyName    = "image/filename"
	KeyHeight  = "image/height"
	KeyWidth   = "image/width"
	KeySHA256  = "image/key/sha256" // of the original file, to join records with manifest.json
)

// ShardName is the file name of shard i of n of a split.
func ShardName(split string, i, n int) string {
	return fmt.Sprintf("%s-%05d-of-%05d.tfrecord", split, i, n)
}

// writeSplit writes one split's records into dir, in a seeded order that
// mixes the classes (a small shuffle buffer over class-sorted records gives
// one-class batches), cut into shards of about opts.ShardBytes.
func writeSplit(dir, split string, recs []*item, spool io.ReaderAt, classes []string, opts *Options) (SplitFiles, error) {
	out := SplitFiles{Name: split, Records: len(recs), Shards: []Shard{}}
	if len(recs) == 0 {
		return out, nil
	}
	keys := make(map[*item]uint64, len(recs))
	var total int64
	for _, it := range recs {
		keys[it] = seededHash(opts.Seed, "order", it.sha)
		total += int64(it.n)
	}
	slices.SortFunc(recs, func(a, b *item) int { return cmp.Or(cmp.Compare(keys[a], keys[b]), cmp.Compare(a.rel, b.rel)) })
	n := int(min(int64(len(recs)), max(1, (total+opts.ShardBytes-1)/opts.ShardBytes)))
	for i := range n {
		part := recs[i*len(recs)/n : (i+1)*len(recs)/n]
		name := ShardName(split, i, n)
		if err := writeShard(filepath.Join(dir, name), part, spool, classes, opts); err != nil {
			return out, err
		}
		out.Shards = append(out.Shards, Shard{File: name, Records: len(part)})
	}
	return out, nil
}

func writeShard(path string, recs []*item, spool io.ReaderAt, classes []string, opts *Options) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	w := tfrecord.NewWriter(bw)
	var buf []byte
	for _, it := range recs {
		buf = slices.Grow(buf[:0], it.n)[:it.n]
		if _, err := spool.ReadAt(buf, it.off); err != nil {
			return fmt.Errorf("reading the image spool: %w", err)
		}
		if err := w.Write(example(it, buf, classes, opts).Marshal()); err != nil {
			return err
		}
		opts.progress().Add(1)
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return f.Close()
}

func example(it *item, encoded []byte, classes []string, opts *Options) *tfexample.Example {
	return &tfexample.Example{Features: map[string]tfexample.Feature{
		KeyEncoded: tfexample.BytesFeature(encoded),
		KeyFormat:  tfexample.BytesFeature([]byte(opts.Format)),
		KeyLabel:   tfexample.Int64Feature(int64(it.label)),
		KeyText:    tfexample.BytesFeature([]byte(classes[it.label])),
		KeyName:    tfexample.BytesFeature([]byte(it.rel)),
		KeyHeight:  tfexample.Int64Feature(int64(opts.ImageSize)),
		KeyWidth:   tfexample.Int64Feature(int64(opts.ImageSize)),
		KeySHA256:  tfexample.BytesFeature([]byte(hex.EncodeToString(it.sha[:]))),
	}}
}
