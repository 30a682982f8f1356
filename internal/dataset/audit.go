package dataset

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/xcept/xcept/internal/imageio"
)

// item is one file after the audit: what it is, what went wrong, and where
// its re-encoded image waits in the spool.
type item struct {
	source
	bytes int64
	sha   [32]byte
	info  imageio.Info
	fail  *Problem  // the file cannot be used; nothing was spooled
	notes []Problem // kept or fixed, reported only if the file ends up in the dataset
	off   int64     // spool offset of the encoded image
	n     int       // encoded length

	drop  bool   // left out by deduplication or an empty class
	split string // assigned split
	label int
}

// auditor decodes, checks, resizes and re-encodes one file at a time.
type auditor struct {
	opts   *Options
	pixels *budget
}

// auditAll audits files on opts.Workers goroutines. Encoded images go to
// spool in whatever order workers finish; items keep the scan order, and
// the dataset is later written from the spool in a seeded, stable order, so
// the output does not depend on scheduling.
func auditAll(ctx context.Context, files []source, spool io.Writer, opts *Options) ([]item, error) {
	a := &auditor{opts: opts, pixels: newBudget(2 * opts.MaxPixels)}
	workers := max(1, opts.Workers)
	type done struct {
		i   int
		it  item
		enc []byte
	}
	jobs := make(chan int)
	results := make(chan done, workers) // bounds encoded images in flight
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				it, enc := a.audit(files[i])
				results <- done{i, it, enc}
			}
		}()
	}
	go func() {
		defer close(jobs)
		for i := range files {
			select {
			case jobs <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() { wg.Wait(); close(results) }()

	items := make([]item, len(files))
	w := bufio.NewWriterSize(spool, 1<<20)
	var off int64
	var werr error
	opts.progress().Start("auditing", len(files))
	for d := range results {
		if d.enc != nil && werr == nil {
			_, werr = w.Write(d.enc)
			d.it.off, d.it.n = off, len(d.enc)
			off += int64(len(d.enc))
		}
		items[d.i] = d.it
		opts.progress().Add(1)
	}
	opts.progress().Finish()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if werr == nil {
		werr = w.Flush()
	}
	if werr != nil {
		return nil, fmt.Errorf("writing the image spool: %w", werr)
	}
	return items, nil
}

// audit reads one file fully, decodes every pixel (the only way to find a
// truncated file), and returns its re-encoded image, or the reason it fails.
func (a *auditor) audit(src source) (item, []byte) {
	it := item{source: src}
	data, size, fail := readLimited(src.abs, a.opts.MaxFileBytes)
	it.bytes = size
	if fail != nil {
		it.fail = &Problem{Path: src.rel, Reason: fail.Reason, Detail: fail.Detail, Action: ActionSkipped}
		return it, nil
	}
	it.sha = sha256.Sum256(data)
	lim := imageio.Limits{MaxPixels: a.opts.MaxPixels}
	h, err := imageio.Probe(data, lim)
	if err != nil {
		it.fail = imageFailure(src.rel, err)
		return it, nil
	}
	held := a.pixels.acquire(h.Pixels())
	enc, info, err := a.normalise(data, lim)
	a.pixels.release(held)
	it.info = info
	if err != nil {
		it.fail = imageFailure(src.rel, err)
		return it, nil
	}
	it.notes = notes(src.rel, info)
	return it, enc
}

// normalise decodes, checks the size, resizes and encodes, keeping the
// full-size pixels alive only inside this call.
func (a *auditor) normalise(data []byte, lim imageio.Limits) ([]byte, imageio.Info, error) {
	img, info, err := imageio.Decode(data, lim)
	if err != nil {
		return nil, info, err
	}
	if side := min(info.Width, info.Height); side < a.opts.MinSide {
		return nil, info, &imageio.Error{Reason: ReasonTooSmall,
			Detail: fmt.Sprintf("%d×%d: a side is under %d pixels (prepare.min_side)", info.Width, info.Height, a.opts.MinSide)}
	}
	small := imageio.Resize(img, a.opts.ImageSize, a.opts.Fit)
	enc, err := imageio.Encode(small, a.opts.Format, a.opts.Quality)
	return enc, info, err
}

func imageFailure(rel string, err error) *Problem {
	var e *imageio.Error
	if errors.As(err, &e) {
		return &Problem{Path: rel, Reason: e.Reason, Detail: e.Detail, Action: ActionSkipped}
	}
	return &Problem{Path: rel, Reason: ReasonCorrupt, Detail: err.Error(), Action: ActionSkipped}
}

// notes are the problems of a usable file: a name that lies about the
// format, and an animation cut to its first frame (TensorFlow's
// decode_image returns a 4-D tensor for an animated GIF, which breaks a
// batch). Routine conversions (grayscale, palette, CMYK, 16-bit, alpha, EXIF
// orientation) are not problems: readers cope with them, and prepare's are
// listed per file in manifest.json and counted in the summary.
func notes(rel string, info imageio.Info) []Problem {
	var ps []Problem
	if named := imageio.ExtensionFormat(rel); named != info.Format {
		detail := fmt.Sprintf("named %s, content is %s; read as %s", extOf(rel), info.Format.Name(), info.Format.Name())
		ps = append(ps, Problem{Path: rel, Reason: ReasonExtension, Detail: detail, Action: ActionKept})
	}
	for _, c := range info.Conversions {
		if c == imageio.ConvFirstFrame {
			ps = append(ps, Problem{Path: rel, Reason: ReasonAnimated, Action: ActionFixed,
				Detail: fmt.Sprintf("animated, %d frames: the first frame is used", info.Frames)})
		}
	}
	return ps
}

func extOf(rel string) string {
	for i := len(rel) - 1; i >= 0 && rel[i] != '/'; i-- {
		if rel[i] == '.' {
			return `"` + rel[i:] + `"`
		}
	}
	return "without an extension"
}

// readLimited reads a whole file unless it is larger than limit bytes.
func readLimited(path string, limit int64) ([]byte, int64, *imageio.Error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, &imageio.Error{Reason: ReasonUnreadable, Detail: err.Error()}
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, 0, &imageio.Error{Reason: ReasonUnreadable, Detail: err.Error()}
	}
	if limit > 0 && st.Size() > limit {
		return nil, st.Size(), &imageio.Error{Reason: ReasonTooLarge,
			Detail: fmt.Sprintf("%s on disk, over the limit of %s (prepare.max_file_mb)", humanBytes(st.Size()), humanBytes(limit))}
	}
	data, err := io.ReadAll(io.LimitReader(f, st.Size()+1))
	if err != nil {
		return nil, st.Size(), &imageio.Error{Reason: ReasonUnreadable, Detail: err.Error()}
	}
	if len(data) == 0 {
		return nil, 0, &imageio.Error{Reason: ReasonEmptyFile, Detail: "the file has no bytes"}
	}
	return data, int64(len(data)), nil
}

// humanBytes writes a size the way people read it: 1.5 MB, 300 KB.
func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.0f KB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
