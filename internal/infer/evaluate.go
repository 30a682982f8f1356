package infer

import (
	"context"
	"errors"
	"image"
	"io"
	"os"
	"runtime"
	"sync"

	"github.com/xcept/xcept/internal/dataset"
	"github.com/xcept/xcept/internal/fault"
	"github.com/xcept/xcept/internal/imageio"
	"github.com/xcept/xcept/internal/loader"
	"github.com/xcept/xcept/internal/metrics"
	"github.com/xcept/xcept/internal/tfexample"
	"github.com/xcept/xcept/internal/tfrecord"
)

// Evaluated is one evaluated image: its row, and where its record is
// (-1 for an image read from a folder).
type Evaluated struct {
	Rows    []metrics.Row
	Records []int // record index of each row in its split, -1 for files
	// Flipped (with Pixels.TTA) are the probabilities of each row's image
	// mirrored left to right.
	Flipped [][]float64
}

// predictViews predicts n images, and with m.TTA their mirror images too.
func predictViews(m *Pixels, images []uint8, n int, ev *Evaluated) ([]float32, error) {
	probs, err := m.Predict(images, n)
	if err != nil || !m.TTA {
		return probs, err
	}
	flipped, err := m.Predict(HFlip(images, n, m.Info.ImageSize), n)
	if err != nil {
		return nil, err
	}
	ev.Flipped = append(ev.Flipped, Rows(flipped, n)...)
	return probs, nil
}

// HFlip returns n square RGB images of size × size (NHWC) mirrored left
// to right.
func HFlip(images []uint8, n, size int) []uint8 {
	out := make([]uint8, len(images))
	row := size * 3
	for r := 0; r < n*size; r++ {
		src, dst := images[r*row:(r+1)*row], out[r*row:(r+1)*row]
		for x := 0; x < size; x++ {
			copy(dst[x*3:x*3+3], src[(size-1-x)*3:(size-x)*3])
		}
	}
	return out
}

// PredictRecords runs predict over a split's records in record order,
// unshuffled and unaugmented, batchSize at a time: the stored images are
// exactly what the model was validated on during training.
func PredictRecords(ctx context.Context, m *Pixels, shards []string, batchSize int) (*Evaluated, error) {
	l, err := loader.Open(ctx, loader.Options{
		Shards: shards, ImageSize: m.Info.ImageSize, Classes: m.Info.NumClasses, BatchSize: batchSize,
		Shuffle: false, Augment: nil,
	})
	if err != nil {
		return nil, err
	}
	defer l.Close()
	ev := &Evaluated{}
	for {
		b, err := l.Next()
		if err == io.EOF {
			return ev, nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, fault.ErrInterrupted
			}
			return nil, err
		}
		probs, err := predictViews(m, b.Images, b.N(), ev)
		if err != nil {
			return nil, fault.New(fault.ToolFailed, "predicting %s: %v", m.Dir, err)
		}
		for i, row := range Rows(probs, b.N()) {
			ev.Rows = append(ev.Rows, metrics.Row{File: b.Files[i], True: int(b.Labels[i]), Pred: metrics.Argmax(row), Probs: row})
			ev.Records = append(ev.Records, b.Indices[i])
		}
		l.Recycle(b)
	}
}

// PredictLabelled decodes a labelled folder's images as prepare does
// (upright, resized by fit), and predicts them batchSize at a time. A file
// that cannot be used is passed to skipped and left out.
func PredictLabelled(ctx context.Context, m *Pixels, files []LabelledFile, fit imageio.Fit, batchSize int, lim Limits,
	skipped func(*FileError)) (*Evaluated, error) {
	size := m.Info.ImageSize
	ev := &Evaluated{}
	for start := 0; start < len(files); start += batchSize {
		if ctx.Err() != nil {
			return nil, fault.ErrInterrupted
		}
		chunk := files[start:min(start+batchSize, len(files))]
		pixels, errs := squares(chunk, size, fit, lim)
		var images []uint8
		var kept []LabelledFile
		for i, f := range chunk {
			if errs[i] != nil {
				if !f.Skippable(errs[i]) {
					skipped(errs[i])
				}
				continue
			}
			images = append(images, pixels[i]...)
			kept = append(kept, f)
		}
		if len(kept) == 0 {
			continue
		}
		probs, err := predictViews(m, images, len(kept), ev)
		if err != nil {
			return nil, fault.New(fault.ToolFailed, "predicting %s: %v", m.Dir, err)
		}
		for i, row := range Rows(probs, len(kept)) {
			ev.Rows = append(ev.Rows, metrics.Row{File: kept[i].Path, True: kept[i].Label, Pred: metrics.Argmax(row), Probs: row})
			ev.Records = append(ev.Records, -1)
		}
	}
	return ev, nil
}

// squares decodes and resizes files on all cores.
func squares(files []LabelledFile, size int, fit imageio.Fit, lim Limits) ([][]uint8, []*FileError) {
	return decodeAll(files, lim, func(img *image.RGBA) []uint8 { return Square(img, size, fit) })
}

// decodeAll decodes files on all cores and makes each into what resize
// returns.
func decodeAll[T any](files []LabelledFile, lim Limits, resize func(*image.RGBA) []T) ([][]T, []*FileError) {
	pixels := make([][]T, len(files))
	errs := make([]*FileError, len(files))
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for i, f := range files {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			img, ferr := Decode(f.Input, lim)
			if ferr != nil {
				errs[i] = ferr
				return
			}
			pixels[i] = resize(img)
		}()
	}
	wg.Wait()
	return pixels, errs
}

// RecordImages reads the encoded images of the wanted records (by index
// in the split, shards in order), for thumbnails of a few of them.
func RecordImages(shards []string, want map[int]bool) (map[int][]byte, error) {
	out := map[int][]byte{}
	index := 0
	for _, path := range shards {
		if len(out) == len(want) {
			break
		}
		f, err := os.Open(path)
		if err != nil {
			return nil, fault.New(fault.BadData, "%s: %v", path, err)
		}
		r := tfrecord.NewReader(f)
		for ; ; index++ {
			rec, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				f.Close()
				return nil, fault.New(fault.BadData, "%s: %v", path, err)
			}
			if !want[index] {
				continue
			}
			ex, err := tfexample.Unmarshal(rec)
			if err != nil {
				f.Close()
				return nil, fault.New(fault.BadData, "%s record %d: %v", path, index, err)
			}
			if img, err := ex.Bytes(dataset.KeyEncoded); err == nil {
				out[index] = img
			}
		}
		f.Close()
	}
	return out, nil
}
