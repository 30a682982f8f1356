package export

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/xcept/xcept/internal/dataset"
	"github.com/xcept/xcept/internal/fault"
	"github.com/xcept/xcept/internal/loader"
	"github.com/xcept/xcept/internal/tfexample"
	"github.com/xcept/xcept/internal/tfrecord"
)

// sample is the images an export is verified on (or calibrated with), in
// the split's record order: the pixels exactly as training and evaluation
// decode them, and the encoded bytes as a client would send them.
type sample struct {
	Size    int
	Pixels  []uint8  // N × Size × Size × 3, RGB
	Encoded [][]byte // image/encoded of each record (only when asked for)
	Labels  []int32
	Files   []string
}

// N is the number of images.
func (s *sample) N() int { return len(s.Labels) }

// image returns image i's pixels.
func (s *sample) image(i int) []uint8 {
	n := s.Size * s.Size * 3
	return s.Pixels[i*n : (i+1)*n]
}

// loadSample reads the first n images of shards (one or more splits, in
// order) through the loader, the same decoding training and evaluation use.
func loadSample(ctx context.Context, shards []string, size, classes, n int, encoded bool) (*sample, error) {
	l, err := loader.Open(ctx, loader.Options{Shards: shards, ImageSize: size, Classes: classes, BatchSize: 32})
	if err != nil {
		return nil, fault.New(fault.BadData, "%v", err)
	}
	defer l.Close()
	s := &sample{Size: size}
	for s.N() < n {
		b, err := l.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, fault.ErrInterrupted
			}
			return nil, err
		}
		take := min(b.N(), n-s.N())
		s.Pixels = append(s.Pixels, b.Images[:take*size*size*3]...)
		s.Labels = append(s.Labels, b.Labels[:take]...)
		s.Files = append(s.Files, b.Files[:take]...)
		l.Recycle(b)
	}
	if encoded {
		if err := s.readEncoded(shards); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// readEncoded reads image/encoded of the sample's records. The loader keeps
// record order without shuffling, so they are the first N records of the
// shards; the file names are checked to make sure.
func (s *sample) readEncoded(shards []string) error {
	for _, path := range shards {
		if len(s.Encoded) == s.N() {
			return nil
		}
		if err := s.readShard(path); err != nil {
			return err
		}
	}
	if len(s.Encoded) != s.N() {
		return fault.New(fault.BadData, "the shards hold %d records, the loader read %d images", len(s.Encoded), s.N())
	}
	return nil
}

func (s *sample) readShard(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fault.New(fault.BadData, "%v", err)
	}
	defer f.Close()
	r := tfrecord.NewReader(f)
	for len(s.Encoded) < s.N() {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fault.New(fault.BadData, "%s: %v", path, err)
		}
		ex, err := tfexample.Unmarshal(rec)
		if err != nil {
			return fault.New(fault.BadData, "%s: %v", path, err)
		}
		data, err := ex.Bytes(dataset.KeyEncoded)
		if err != nil {
			return fault.New(fault.BadData, "%s: %v", path, err)
		}
		i := len(s.Encoded)
		if name, err := ex.Bytes(dataset.KeyName); err == nil && string(name) != s.Files[i] {
			return fmt.Errorf("record %d of the verification images is %s in %s but the loader read %s", i, name, path, s.Files[i])
		}
		s.Encoded = append(s.Encoded, data)
	}
	return nil
}
