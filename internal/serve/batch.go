package serve

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/xcept/xcept/internal/graph"
)

// BatchConfig shapes how requests become session runs.
type BatchConfig struct {
	// MaxBatch is the most rows one run takes; requests arriving together
	// are joined up to it, larger ones are split. 0 turns batching off:
	// every request is one run.
	MaxBatch int
	// Timeout is how long the first request of a batch waits for others.
	// 0 joins only requests already waiting.
	Timeout time.Duration
	// Workers is how many runs may be in flight at once.
	Workers int
	// MaxQueue is how many requests (or parts of split requests) may wait
	// for a run; beyond it requests fail fast with 503.
	MaxQueue int
	// MaxBatchPixels bounds the decoded pixels of the images of one run
	// (from their headers): requests are joined only within it, and larger
	// ones split. 0: no limit.
	MaxBatchPixels int64
}

// batchObserver receives each run's size and duration, and each part of
// a request dropped unrun because its caller had gone (the metrics).
type batchObserver interface {
	observeBatch(rows int, run time.Duration)
	dropped(rows int)
}

// runner runs one loaded version: a queue per signature that joins
// concurrent requests into batches, and run slots shared by all queues so
// that at most Workers runs are in flight.
type runner struct {
	model Model
	cfg   BatchConfig
	obs   batchObserver
	slots chan struct{}
	stop  chan struct{}
	wg    sync.WaitGroup

	mu     sync.Mutex
	queues map[string]chan *task
}

type task struct {
	ctx    context.Context
	inputs map[string]*Column
	rows   int
	pixels int64
	result chan taskResult // buffered: a worker never waits for an abandoned request
}

type taskResult struct {
	outputs map[string]*Column
	err     error
}

func newRunner(m Model, cfg BatchConfig, obs batchObserver) *runner {
	cfg.Workers = max(1, cfg.Workers)
	cfg.MaxQueue = max(1, cfg.MaxQueue)
	return &runner{model: m, cfg: cfg, obs: obs, slots: make(chan struct{}, cfg.Workers),
		stop: make(chan struct{}), queues: map[string]chan *task{}}
}

// close stops the queues' workers. Callers make sure no request is in
// flight; the model itself is closed by the owner.
func (r *runner) close() {
	close(r.stop)
	r.wg.Wait()
}

// Predict runs a checked request's inputs through signature, batched with
// other requests when the signature allows it, and returns every output
// with the request's rows. rowPixels are each row's image pixels (nil when
// it has none). A context error means the caller gave up.
func (r *runner) Predict(ctx context.Context, signature string, inputs map[string]*Column, rowPixels []int64) (map[string]*Column, error) {
	sig := r.model.Signatures()[signature]
	rows, ok := batchRows(sig, inputs)
	if !ok {
		return r.direct(ctx, signature, inputs, rows)
	}
	if len(rowPixels) != rows {
		rowPixels = make([]int64, rows)
	}
	bounds := r.split(rowPixels)
	if len(bounds) > r.cfg.MaxQueue {
		return nil, r.neverFits(rows, len(bounds))
	}
	parts := []map[string]*Column{inputs}
	if len(bounds) > 1 {
		parts = splitRows(inputs, bounds)
	}
	q := r.queue(signature)
	tasks := make([]*task, len(parts))
	for i, p := range parts {
		tasks[i] = &task{ctx: ctx, inputs: p, rows: bounds[i].hi - bounds[i].lo, pixels: bounds[i].pixels, result: make(chan taskResult, 1)}
		select {
		case q <- tasks[i]:
		default:
			return nil, errorf(graph.CodeUnavailable, "the server is saturated: %d requests are already waiting for the model (serve.max_queue); retry later", r.cfg.MaxQueue)
		}
	}
	outs := make([]map[string]*Column, len(tasks))
	for i, t := range tasks {
		select {
		case res := <-t.result:
			if res.err != nil {
				return nil, res.err
			}
			outs[i] = res.outputs
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return joinRows(outs), nil
}

// part is rows lo..hi of a request, and their pixels.
type part struct {
	lo, hi int
	pixels int64
}

// split cuts a request's rows into the parts that each fit one run: at
// most MaxBatch rows (when batching) and MaxBatchPixels pixels (when set;
// a row over it alone is a part of its own, which the limits prevent).
func (r *runner) split(rowPixels []int64) []part {
	var parts []part
	cur := part{}
	for i, px := range rowPixels {
		full := r.cfg.MaxBatch > 0 && cur.hi-cur.lo >= r.cfg.MaxBatch
		over := r.cfg.MaxBatchPixels > 0 && cur.pixels+px > r.cfg.MaxBatchPixels
		if cur.hi > cur.lo && (full || over) {
			parts = append(parts, cur)
			cur = part{lo: i, hi: i}
		}
		cur.hi++
		cur.pixels += px
	}
	return append(parts, cur)
}

// neverFits is a request that needs more runs than the queue can ever
// hold: it could never be served, so it is refused as too large (413),
// not as a saturated server (503).
func (r *runner) neverFits(rows, runs int) *Error {
	limits := fmt.Sprintf("%d images (serve.max_batch)", r.cfg.MaxBatch)
	if r.cfg.MaxBatch == 0 {
		limits = ""
	}
	if r.cfg.MaxBatchPixels > 0 {
		if limits != "" {
			limits += " and "
		}
		limits += fmt.Sprintf("%d pixels (serve.max_batch_pixels)", r.cfg.MaxBatchPixels)
	}
	return &Error{Code: graph.CodeResourceExhausted, Status: http.StatusRequestEntityTooLarge,
		Message: fmt.Sprintf("the request's %d instances need %d model runs of at most %s, more than the %d that can wait at once (serve.max_queue): send fewer instances per request",
			rows, runs, limits, r.cfg.MaxQueue)}
}

// batchRows returns the request's rows and whether it can join a batch:
// every input and output of the signature has a free first dimension and
// every other input dimension fixed (so rows of different requests
// concatenate), and all inputs have the same, non-zero, number of rows.
func batchRows(sig *graph.Signature, inputs map[string]*Column) (int, bool) {
	for _, ti := range sig.Outputs {
		if len(ti.Shape) == 0 || ti.Shape[0] != -1 {
			return 0, false
		}
	}
	rows := -1
	for key, ti := range sig.Inputs {
		if len(ti.Shape) == 0 || ti.Shape[0] != -1 {
			return 0, false
		}
		for _, d := range ti.Shape[1:] {
			if d < 0 {
				return 0, false
			}
		}
		c := inputs[key]
		if rows >= 0 && c.Rows() != rows {
			return 0, false
		}
		rows = c.Rows()
	}
	return rows, rows > 0
}

func splitRows(inputs map[string]*Column, bounds []part) []map[string]*Column {
	parts := make([]map[string]*Column, len(bounds))
	for i, b := range bounds {
		p := make(map[string]*Column, len(inputs))
		for k, c := range inputs {
			p[k] = c.SliceRows(b.lo, b.hi)
		}
		parts[i] = p
	}
	return parts
}

func joinRows(parts []map[string]*Column) map[string]*Column {
	if len(parts) == 1 {
		return parts[0]
	}
	out := map[string]*Column{}
	for k := range parts[0] {
		cols := make([]*Column, len(parts))
		for i, p := range parts {
			cols[i] = p[k]
		}
		out[k] = ConcatRows(cols)
	}
	return out
}

// direct runs a request that cannot be batched on its own, in a run slot.
func (r *runner) direct(ctx context.Context, signature string, inputs map[string]*Column, rows int) (map[string]*Column, error) {
	select {
	case r.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	done := make(chan taskResult, 1)
	r.wg.Add(1) // close waits for it: the caller may have given up on it
	go func() {
		defer r.wg.Done()
		defer func() { <-r.slots }()
		if ctx.Err() != nil { // gave up while waiting for the slot
			if r.obs != nil {
				r.obs.dropped(max(1, rows))
			}
			done <- taskResult{err: ctx.Err()}
			return
		}
		out, err := r.run(signature, inputs, rows)
		done <- taskResult{out, err}
	}()
	select {
	case res := <-done:
		return res.outputs, res.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// queue returns the signature's queue, starting its workers on first use.
func (r *runner) queue(signature string) chan *task {
	r.mu.Lock()
	defer r.mu.Unlock()
	q, ok := r.queues[signature]
	if !ok {
		q = make(chan *task, r.cfg.MaxQueue)
		r.queues[signature] = q
		for range r.cfg.Workers {
			r.wg.Add(1)
			go r.work(signature, q)
		}
	}
	return q
}

// work forms batches from q and runs them until the runner stops.
func (r *runner) work(signature string, q chan *task) {
	defer r.wg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var carry *task // a request that did not fit the last batch
	for {
		first := carry
		carry = nil
		if first == nil {
			select {
			case first = <-q:
			case <-r.stop:
				return
			}
		}
		if r.abandoned(first) {
			continue
		}
		batch := []*task{first}
		if r.cfg.MaxBatch > 0 {
			batch, carry = r.collect(q, batch, timer)
		}
		r.execute(signature, batch)
	}
}

// abandoned answers a request whose caller has gone (timed out, hung up)
// instead of running it.
func (r *runner) abandoned(t *task) bool {
	if err := t.ctx.Err(); err != nil {
		t.result <- taskResult{err: err}
		if r.obs != nil {
			r.obs.dropped(t.rows)
		}
		return true
	}
	return false
}

// collect adds waiting requests to batch until it holds MaxBatch rows or
// Timeout has passed. A request that would overflow the batch is returned
// to start the next one.
func (r *runner) collect(q chan *task, batch []*task, timer *time.Timer) ([]*task, *task) {
	rows, pixels := batch[0].rows, batch[0].pixels
	var deadline <-chan time.Time
	if r.cfg.Timeout > 0 {
		timer.Reset(r.cfg.Timeout)
		defer timer.Stop()
		deadline = timer.C
	}
	for rows < r.cfg.MaxBatch {
		var t *task
		if deadline == nil {
			select {
			case t = <-q:
			default:
				return batch, nil
			}
		} else {
			select {
			case t = <-q:
			case <-deadline:
				return batch, nil
			case <-r.stop:
				return batch, nil
			}
		}
		if r.abandoned(t) {
			continue
		}
		if rows+t.rows > r.cfg.MaxBatch || r.cfg.MaxBatchPixels > 0 && pixels+t.pixels > r.cfg.MaxBatchPixels {
			return batch, t
		}
		batch = append(batch, t)
		rows += t.rows
		pixels += t.pixels
	}
	return batch, nil
}

// execute runs a batch in a run slot and hands each request its rows.
// Requests whose callers gave up while the batch waited for its slot are
// dropped, not run.
func (r *runner) execute(signature string, batch []*task) {
	r.slots <- struct{}{}
	defer func() { <-r.slots }()
	batch = slices.DeleteFunc(batch, r.abandoned)
	if len(batch) == 0 {
		return
	}
	rows := 0
	parts := make([]map[string]*Column, len(batch))
	for i, t := range batch {
		rows += t.rows
		parts[i] = t.inputs
	}
	out, err := r.run(signature, joinRows(parts), rows)
	if err != nil && len(batch) > 1 && asError(err).Code == graph.CodeInvalidArgument {
		// One request's data (an image TensorFlow cannot decode past its
		// header) fails the whole batch: rerun each alone so that only
		// its sender gets the error.
		for _, t := range batch {
			if r.abandoned(t) {
				continue
			}
			out, err := r.run(signature, t.inputs, t.rows)
			t.result <- taskResult{out, err}
		}
		return
	}
	if err != nil {
		for _, t := range batch {
			t.result <- taskResult{err: err}
		}
		return
	}
	lo := 0
	for _, t := range batch {
		res := make(map[string]*Column, len(out))
		for k, c := range out {
			res[k] = c.SliceRows(lo, lo+t.rows)
		}
		lo += t.rows
		t.result <- taskResult{outputs: res}
	}
}

// run is one session run, which must give every output rows rows. A panic
// becomes an internal error: it must not take the server down.
func (r *runner) run(signature string, inputs map[string]*Column, rows int) (out map[string]*Column, err error) {
	defer func() {
		if p := recover(); p != nil {
			out, err = nil, errorf(graph.CodeInternal, "running %s: %v", signature, p)
		}
	}()
	start := time.Now()
	out, err = r.model.Run(signature, inputs)
	if err != nil {
		if e := asError(err); e.Code == graph.CodeInvalidArgument {
			return nil, invalidf("%s refused the input: %s", signature, e.Message)
		}
		return nil, err
	}
	if r.obs != nil {
		r.obs.observeBatch(rows, time.Since(start))
	}
	for k, c := range out {
		if sig := r.model.Signatures()[signature]; len(sig.Outputs[k].Shape) > 0 && sig.Outputs[k].Shape[0] == -1 && c.Rows() != rows {
			return nil, errorf(graph.CodeInternal, "output %q has %d rows for %d input rows", k, c.Rows(), rows)
		}
	}
	return out, nil
}

// String describes the configuration for the startup line.
func (c BatchConfig) String() string {
	workers := fmt.Sprintf("%d workers", c.Workers)
	if c.Workers == 1 {
		workers = "1 worker"
	}
	if c.MaxBatch == 0 {
		return "batching off, " + workers
	}
	return fmt.Sprintf("batches of up to %d images, %v wait, %s", c.MaxBatch, c.Timeout, workers)
}
