// Package loader feeds training and evaluation: it reads a split's TFRecord
// shards, orders the records (a seeded shuffle for training, record order
// otherwise), decodes and augments them on worker goroutines, and hands out
// batches in order, a few ready ahead.
//
// Every batch depends only on the Options: the order on (Seed, Epoch), each
// image's augmentation on (Seed, Epoch, Index) or (Seed, View, Index), never
// on a shared random stream or on which worker got there first. A resumed
// run therefore replays an epoch byte for byte.
//
// Memory is bounded by the pipeline, not the dataset: at most Workers +
// Prefetch batches are being filled or waiting at once, and batches given
// back with Recycle are reused, so a steady epoch allocates no batch buffers.
// The records are read by offset (ReadAt) from an index of their positions,
// which is why the whole split can be shuffled without holding it.
package loader

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/xcept/xcept/internal/augment"
)

// Example is one decoded record.
type Example struct {
	Image []uint8 // ImageSize*ImageSize*3, RGB, row-major (HWC)
	Label int32
	File  string // image/filename
	Index int    // position of the record in the split (shard order, then record order): stable id for caches
}

// Batch is up to BatchSize examples, images concatenated (NHWC).
type Batch struct {
	Images  []uint8
	Labels  []int32
	Files   []string
	Indices []int
}

// N is the number of examples in the batch.
func (b *Batch) N() int { return len(b.Labels) }

// Example returns example i of the batch; its Image aliases b.Images.
func (b *Batch) Example(i int) Example {
	size := len(b.Images) / len(b.Labels)
	return Example{Image: b.Images[i*size : (i+1)*size], Label: b.Labels[i], File: b.Files[i], Index: b.Indices[i]}
}

// Options configure one pass over a split.
type Options struct {
	Shards        []string        // TFRecord files of one split, in manifest order
	ImageSize     int             // every image must decode to exactly this square size (error otherwise, naming the shard and record)
	Classes       int             // labels must be in [0, Classes) (error otherwise); 0: only negative labels are refused
	BatchSize     int             //
	Shuffle       bool            // seeded shuffle (training); false keeps record order (evaluation, prediction)
	ShuffleBuffer int             // 0: the whole split (it is only indices); else a tf.data-style buffer of that many records
	Seed          uint64          //
	Epoch         int             // order and augmentation depend only on (Seed, Epoch): a resumed run replays an epoch exactly
	Augment       *augment.Params // nil: none (never set it for val/test)
	Views         int             // for feature caching: with Augment, produce view View of each image (see ViewSeed); 0 = normal
	View          int             // 0 <= View < Views
	Workers       int             // decode+augment goroutines; 0 = runtime.NumCPU()
	Prefetch      int             // batches ready ahead; 0 = 2
	DropRemainder bool            // leave out the last, short batch
	// Parts > 1: this process trains part Part of every batch (a worker of
	// data-parallel training, model.Group): only the rows
	// [n·Part/Parts, n·(Part+1)/Parts) of a batch of n are decoded and
	// augmented; the others get their label, file and index but zero
	// pixels. Rows, order and augmentation are the whole batch's, whatever
	// the part.
	Part, Parts int
	// From, To: only the batches [From, To) of the pass (To 0: to its end),
	// a cluster worker's share of a split it caches or validates. Their
	// rows, labels and augmentation are the whole pass's batches'.
	From, To int
}

// validate checks what no configuration check upstream can have caught,
// and fills the defaults.
func (o *Options) validate() error {
	switch {
	case o.ImageSize < 1:
		return fmt.Errorf("loader: ImageSize %d: give the model's input size", o.ImageSize)
	case o.BatchSize < 1:
		return fmt.Errorf("loader: BatchSize %d: give at least 1", o.BatchSize)
	case o.ShuffleBuffer < 0:
		return fmt.Errorf("loader: ShuffleBuffer %d: give 0 (the whole split) or a positive size", o.ShuffleBuffer)
	case o.Classes < 0, o.Epoch < 0, o.Workers < 0, o.Prefetch < 0:
		return fmt.Errorf("loader: Classes %d, Epoch %d, Workers %d, Prefetch %d: none may be negative", o.Classes, o.Epoch, o.Workers, o.Prefetch)
	case o.Views < 0 || o.View < 0 || o.Views > 0 && o.View >= o.Views || o.Views == 0 && o.View != 0:
		return fmt.Errorf("loader: View %d of Views %d: give 0 <= View < Views, or both 0", o.View, o.Views)
	case o.Parts < 0 || o.Part < 0 || o.Parts > 0 && o.Part >= o.Parts || o.Parts == 0 && o.Part != 0:
		return fmt.Errorf("loader: Part %d of Parts %d: give 0 <= Part < Parts, or both 0", o.Part, o.Parts)
	case o.From < 0 || o.To < 0 || o.To > 0 && o.From >= o.To:
		return fmt.Errorf("loader: batches From %d To %d: give 0 <= From < To, or To 0 for the rest of the pass", o.From, o.To)
	}
	if o.Augment != nil {
		if err := o.Augment.Validate(); err != nil {
			return err
		}
		if !o.Augment.Enabled() {
			o.Augment = nil // saves the copy and the rng for nothing
		}
	}
	if o.Workers == 0 {
		o.Workers = runtime.NumCPU()
	}
	if o.Prefetch == 0 {
		o.Prefetch = 2
	}
	return nil
}

// Loader is one pass (one epoch) over a split. Next, Recycle and Len are for
// one goroutine; Close may be called from any goroutine, at any time, more
// than once.
type Loader struct {
	opts    Options
	ix      *index
	order   []int // record indices in pass order, cut to a whole number of batches with DropRemainder
	batches int

	ctx    context.Context // the caller's context: its error is Next's
	stop   context.CancelFunc
	stopCh <-chan struct{}
	closed atomic.Bool
	wg     sync.WaitGroup

	// tokens bounds the batches being filled or waiting to Workers +
	// Prefetch: the producer takes one per batch, Next gives it back when it
	// hands the batch out. With that bound, batch b's result can go to slot
	// b % len(slots) without ever meeting an unread one.
	tokens chan struct{}
	jobs   chan int
	slots  []chan result
	free   chan *Batch // recycled buffers

	next int   // batches handed out
	err  error // sticky: once Next fails it keeps failing the same way

	made     atomic.Int64 // batch buffers allocated, for tests of reuse
	inFlight atomic.Int64 // batches being filled or waiting, for tests of the bound
	peak     atomic.Int64
}

type result struct {
	batch *Batch
	err   error
}

// Open starts one pass (one epoch) over the split. Close stops the
// goroutines early and frees everything.
func Open(ctx context.Context, opts Options) (*Loader, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	ix, err := openIndex(opts.Shards)
	if err != nil {
		return nil, err
	}
	order := passOrder(ix.len(), opts.Shuffle, opts.ShuffleBuffer, opts.Seed, opts.Epoch)
	if opts.DropRemainder {
		order = order[:len(order)/opts.BatchSize*opts.BatchSize]
	}
	if opts.From > 0 || opts.To > 0 {
		end := len(order)
		if opts.To > 0 {
			end = min(end, opts.To*opts.BatchSize)
		}
		order = order[min(opts.From*opts.BatchSize, end):end]
	}
	l := &Loader{opts: opts, ix: ix, order: order, ctx: ctx}
	l.batches = (len(order) + opts.BatchSize - 1) / opts.BatchSize
	// More workers than batches would only wait.
	l.opts.Workers = max(1, min(opts.Workers, l.batches))
	depth := l.opts.Workers + opts.Prefetch
	l.tokens = make(chan struct{}, depth)
	l.jobs = make(chan int)
	l.slots = make([]chan result, depth)
	for i := range l.slots {
		l.slots[i] = make(chan result, 1)
	}
	l.free = make(chan *Batch, depth)
	inner, stop := context.WithCancel(ctx)
	l.stop, l.stopCh = stop, inner.Done()

	l.wg.Go(l.produce)
	for range l.opts.Workers {
		w := newWorker(l)
		l.wg.Go(w.run)
	}
	return l, nil
}

// produce issues the batch numbers in order, each once a token is free.
func (l *Loader) produce() {
	defer close(l.jobs)
	for b := range l.batches {
		select {
		case l.tokens <- struct{}{}:
		case <-l.stopCh:
			return
		}
		select {
		case l.jobs <- b:
		case <-l.stopCh:
			return
		}
	}
}

// Next returns the next batch. It returns io.EOF after the last batch; a
// data error names the shard file and record; after the context is
// cancelled it returns the context's error. The batch is the caller's until
// it passes it to Recycle.
func (l *Loader) Next() (*Batch, error) {
	if l.closed.Load() {
		return nil, errClosed
	}
	if l.err != nil {
		return nil, l.err
	}
	if l.next == l.batches {
		return nil, io.EOF
	}
	// A stop wins over a batch that happens to be ready, so that Next fails
	// from the first call after a cancel, not at some later one.
	select {
	case <-l.stopCh:
		return nil, l.stopped()
	default:
	}
	select {
	case r := <-l.slots[l.next%len(l.slots)]:
		l.inFlight.Add(-1) // before the token goes back, so the gauge never overcounts
		<-l.tokens
		if r.err != nil {
			l.err = r.err
			l.Recycle(r.batch)
			return nil, r.err
		}
		l.next++
		return r.batch, nil
	case <-l.stopCh:
		return nil, l.stopped()
	}
}

// stopped is Next's error once the loader has stopped: the context's
// error, or errClosed when the loader was closed, which leaves the context
// alone and is not sticky (so Next after Close always says so).
func (l *Loader) stopped() error {
	if l.closed.Load() {
		return errClosed
	}
	l.err = l.ctx.Err()
	return l.err
}

var errClosed = errors.New("loader: Next after Close")

// Recycle gives a batch's buffers back for reuse. Optional: a batch never
// recycled is simply left to the garbage collector. A batch of an earlier
// Loader with the same BatchSize and ImageSize is welcome too; any other is
// ignored. The caller must not touch b afterwards.
func (l *Loader) Recycle(b *Batch) {
	bs := l.opts.BatchSize
	if b == nil || cap(b.Images) != bs*l.opts.ImageSize*l.opts.ImageSize*3 ||
		cap(b.Labels) != bs || cap(b.Files) != bs || cap(b.Indices) != bs {
		return
	}
	select {
	case l.free <- b:
	default: // enough spares already
	}
}

// batch returns an empty batch buffer, reusing a recycled one if it can.
func (l *Loader) batch() *Batch {
	for n, p := l.inFlight.Add(1), l.peak.Load(); n > p && !l.peak.CompareAndSwap(p, n); p = l.peak.Load() {
	}
	select {
	case b := <-l.free:
		b.Images, b.Labels, b.Files, b.Indices = b.Images[:0], b.Labels[:0], b.Files[:0], b.Indices[:0]
		return b
	default:
	}
	l.made.Add(1)
	bs, pixels := l.opts.BatchSize, l.opts.ImageSize*l.opts.ImageSize*3
	return &Batch{
		Images:  make([]uint8, 0, bs*pixels),
		Labels:  make([]int32, 0, bs),
		Files:   make([]string, 0, bs),
		Indices: make([]int, 0, bs),
	}
}

// Close stops the goroutines, waits for them and closes the shard files.
func (l *Loader) Close() {
	if l.closed.Swap(true) {
		return
	}
	l.stop()
	l.wg.Wait()
	l.ix.close()
}

// Len is the number of examples in this pass (after DropRemainder:
// batches*BatchSize).
func (l *Loader) Len() int { return len(l.order) }

// Batches is the number of batches in this pass.
func (l *Loader) Batches() int { return l.batches }
