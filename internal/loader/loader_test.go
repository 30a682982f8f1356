package loader

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xcept/xcept/internal/augment"
)

// TestRecordOrder reads the train split unshuffled and unaugmented: every
// record once, in shard then record order, with the manifest's label and
// file and exactly the stored image decoded.
func TestRecordOrder(t *testing.T) {
	o := trainOptions(t)
	dir, m := prepared(t)
	if len(o.Shards) < 2 {
		t.Fatalf("want several train shards to cross shard boundaries, have %d", len(o.Shards))
	}
	want := readStored(t, o.Shards)
	manifest := map[string]int{}
	for _, f := range m.Files {
		if f.Split == "train" {
			manifest[f.Path] = f.Label
		}
	}
	if len(want) != len(manifest) {
		t.Fatalf("%d records, manifest lists %d train files", len(want), len(manifest))
	}
	if n, err := Count(m.ShardPaths(dir, "train")); err != nil || n != len(want) {
		t.Fatalf("Count = %d, %v; want %d", n, err, len(want))
	}

	batches := drain(t, o)
	got := examples(batches)
	if len(got) != len(want) {
		t.Fatalf("loader gave %d examples, the shards hold %d", len(got), len(want))
	}
	for i, ex := range got {
		w := want[i]
		if ex.Index != i || ex.File != w.file || ex.Label != w.label {
			t.Fatalf("example %d: index %d, %s label %d; want %s label %d", i, ex.Index, ex.File, ex.Label, w.file, w.label)
		}
		if label, ok := manifest[ex.File]; !ok || int32(label) != ex.Label {
			t.Errorf("%s: label %d, manifest says %d (listed: %v)", ex.File, ex.Label, label, ok)
		}
		if !bytes.Equal(ex.Image, w.rgb) {
			t.Errorf("%s: image differs from the stored image decoded", ex.File)
		}
	}
	for i, b := range batches[:len(batches)-1] {
		if b.N() != o.BatchSize {
			t.Errorf("batch %d holds %d examples, want %d", i, b.N(), o.BatchSize)
		}
	}
}

// TestShuffle: a seeded permutation of the whole split, the same for the
// same (Seed, Epoch), another for another epoch or seed.
func TestShuffle(t *testing.T) {
	o := trainOptions(t)
	o.Shuffle = true
	stored := readStored(t, o.Shards)
	identity := make([]int, len(stored))
	for i := range identity {
		identity[i] = i
	}
	epoch0 := drain(t, o)
	order0 := indices(epoch0)
	if sorted := slices.Sorted(slices.Values(order0)); !slices.Equal(sorted, identity) {
		t.Fatalf("epoch 0 is not a permutation of the records: %v", order0)
	}
	if slices.Equal(order0, identity) {
		t.Fatal("shuffled order is record order")
	}
	for _, ex := range examples(epoch0) {
		if w := stored[ex.Index]; ex.File != w.file || ex.Label != w.label || !bytes.Equal(ex.Image, w.rgb) {
			t.Fatalf("example of record %d is %s, want %s", ex.Index, ex.File, w.file)
		}
	}
	if again := indices(drain(t, o)); !slices.Equal(again, order0) {
		t.Error("the same seed and epoch gave another order")
	}
	for _, change := range []func(*Options){
		func(o *Options) { o.Epoch = 1 },
		func(o *Options) { o.Seed++ },
	} {
		other := o
		change(&other)
		if order := indices(drain(t, other)); slices.Equal(order, order0) {
			t.Errorf("seed %d epoch %d gave the same order as seed %d epoch 0", other.Seed, other.Epoch, o.Seed)
		}
	}
}

// TestShuffleBuffer checks the tf.data-style buffer: a permutation that can
// only reach buffer-1 records ahead, record order for a buffer of 1, and
// the full shuffle once the buffer holds the split.
func TestShuffleBuffer(t *testing.T) {
	const n = 1000
	for _, buffer := range []int{1, 2, 10, 100, n - 1} {
		order := passOrder(n, true, buffer, 5, 0)
		if sorted := slices.Sorted(slices.Values(order)); sorted[0] != 0 || sorted[n-1] != n-1 || len(slices.Compact(sorted)) != n {
			t.Fatalf("buffer %d: not a permutation", buffer)
		}
		ahead := 0
		for pos, i := range order {
			ahead = max(ahead, i-pos)
		}
		if ahead > buffer-1 {
			t.Errorf("buffer %d: a record came %d places early; a buffer of %d reaches only %d", buffer, ahead, buffer, buffer-1)
		}
		if buffer >= 10 && ahead < buffer/2 {
			t.Errorf("buffer %d: records come at most %d places early: the buffer is not used", buffer, ahead)
		}
		if !slices.Equal(order, passOrder(n, true, buffer, 5, 0)) || buffer > 1 && slices.Equal(order, passOrder(n, true, buffer, 5, 1)) {
			t.Errorf("buffer %d: order is not a function of (seed, epoch)", buffer)
		}
	}
	if order := passOrder(50, true, 1, 5, 0); !slices.IsSorted(order) {
		t.Errorf("buffer 1 changed the record order: %v", order)
	}

	o := trainOptions(t)
	o.Shuffle, o.ShuffleBuffer = true, 4
	order := indices(drain(t, o))
	if len(order) != len(readStored(t, o.Shards)) || slices.IsSorted(order) {
		t.Errorf("loader with a shuffle buffer of 4 gave %v", order)
	}
}

// TestDeterministic: batches are byte-identical whatever the number of
// workers and prefetched batches, augmentation included.
func TestDeterministic(t *testing.T) {
	o := trainOptions(t)
	recipe := augment.Recipe()
	o.Shuffle, o.Augment, o.BatchSize, o.Epoch = true, &recipe, 3, 2
	o.Workers, o.Prefetch = 1, 1
	want := drain(t, o)
	for _, wp := range [][2]int{{2, 1}, {4, 3}, {8, 0}} {
		o.Workers, o.Prefetch = wp[0], wp[1]
		got := drain(t, o)
		if len(got) != len(want) {
			t.Fatalf("workers %d: %d batches, want %d", wp[0], len(got), len(want))
		}
		for i := range got {
			g, w := got[i], want[i]
			if !bytes.Equal(g.Images, w.Images) || !slices.Equal(g.Labels, w.Labels) || !slices.Equal(g.Files, w.Files) || !slices.Equal(g.Indices, w.Indices) {
				t.Fatalf("workers %d prefetch %d: batch %d differs from 1 worker's", wp[0], wp[1], i)
			}
		}
	}
}

// TestParts: a worker's part of every batch (Options.Part of Parts) is the
// whole batch's rows, augmented alike, and the other rows carry their
// labels, files and indices with zero pixels.
func TestParts(t *testing.T) {
	o := trainOptions(t)
	recipe := augment.Recipe()
	o.Shuffle, o.Augment, o.BatchSize, o.Epoch = true, &recipe, 5, 1
	want := drain(t, o)
	pixels := demoSize * demoSize * 3
	for _, parts := range []int{2, 3} {
		for part := range parts {
			o.Part, o.Parts = part, parts
			got := drain(t, o)
			if len(got) != len(want) {
				t.Fatalf("part %d of %d: %d batches, want %d", part, parts, len(got), len(want))
			}
			for b := range got {
				g, w := got[b], want[b]
				if !slices.Equal(g.Labels, w.Labels) || !slices.Equal(g.Files, w.Files) || !slices.Equal(g.Indices, w.Indices) {
					t.Fatalf("part %d of %d, batch %d: labels, files or indices differ from the whole batch's", part, parts, b)
				}
				n := len(w.Labels)
				lo, hi := n*part/parts, n*(part+1)/parts
				for k := range n {
					img, full := g.Images[k*pixels:(k+1)*pixels], w.Images[k*pixels:(k+1)*pixels]
					if k >= lo && k < hi && !bytes.Equal(img, full) {
						t.Fatalf("part %d of %d, batch %d, row %d (its own): not the whole batch's image", part, parts, b, k)
					}
					if (k < lo || k >= hi) && slices.ContainsFunc(img, func(v uint8) bool { return v != 0 }) {
						t.Fatalf("part %d of %d, batch %d, row %d (another's): pixels decoded", part, parts, b, k)
					}
				}
			}
		}
	}
}

// TestBatchRange: From/To give exactly the whole pass's batches in that
// range (images, augmentation of a cached view, labels, indices), however
// the pass is cut, and bad ranges are refused.
func TestBatchRange(t *testing.T) {
	o := trainOptions(t)
	recipe := augment.Recipe()
	o.Augment, o.Views, o.View = &recipe, 3, 2
	want := drain(t, o)
	n := len(want)
	if n < 3 {
		t.Fatalf("%d batches: the test needs 3", n)
	}
	for _, r := range [][2]int{{0, 1}, {1, n - 1}, {n - 1, 0}, {1, 0}, {0, n + 5}} {
		o.From, o.To = r[0], r[1]
		got := drain(t, o)
		end := n
		if r[1] > 0 {
			end = min(n, r[1])
		}
		if len(got) != end-r[0] {
			t.Fatalf("batches [%d, %d): %d batches, want %d", r[0], r[1], len(got), end-r[0])
		}
		for i, g := range got {
			w := want[r[0]+i]
			if !bytes.Equal(g.Images, w.Images) || !slices.Equal(g.Labels, w.Labels) || !slices.Equal(g.Indices, w.Indices) {
				t.Fatalf("batches [%d, %d): batch %d is not the whole pass's batch %d", r[0], r[1], i, r[0]+i)
			}
		}
	}
	for _, r := range [][2]int{{-1, 0}, {2, 2}, {3, 1}} {
		o.From, o.To = r[0], r[1]
		if _, err := Open(t.Context(), o); err == nil || !strings.Contains(err.Error(), "From") {
			t.Errorf("batches [%d, %d): %v, want an error naming From", r[0], r[1], err)
		}
	}
}

// pcg is the random source a seed pair names.
func pcg(s1, s2 uint64) *rand.Rand { return rand.New(rand.NewPCG(s1, s2)) }

// augmented is what the loader must produce for image src from rng: the
// augmentation drawn from exactly that source.
func augmented(src []uint8, p augment.Params, rng *rand.Rand) []uint8 {
	dst := make([]uint8, len(src))
	p.Apply(dst, src, demoSize, demoSize, rng)
	return dst
}

// TestAugment: nil or disabled augmentation leaves the stored images;
// the recipe applies to each image the transform of its own seed, so it
// differs per epoch and repeats for the same epoch.
func TestAugment(t *testing.T) {
	o := trainOptions(t)
	stored := readStored(t, o.Shards)
	recipe := augment.Recipe()

	off := augment.Params{Fill: augment.FillReflect}
	o.Augment = &off
	for _, ex := range examples(drain(t, o)) {
		if !bytes.Equal(ex.Image, stored[ex.Index].rgb) {
			t.Fatalf("%s: disabled augmentation changed the image", ex.File)
		}
	}

	o.Shuffle, o.Augment = true, &recipe
	byEpoch := map[int]map[int][]uint8{}
	for _, epoch := range []int{0, 1} {
		o.Epoch = epoch
		byEpoch[epoch] = map[int][]uint8{}
		changed := 0
		for _, ex := range examples(drain(t, o)) {
			want := augmented(stored[ex.Index].rgb, recipe, pcg(EpochSeed(o.Seed, epoch, ex.Index)))
			if !bytes.Equal(ex.Image, want) {
				t.Fatalf("epoch %d, %s: not the recipe drawn from EpochSeed", epoch, ex.File)
			}
			if !bytes.Equal(ex.Image, stored[ex.Index].rgb) {
				changed++
			}
			byEpoch[epoch][ex.Index] = ex.Image
		}
		if changed < len(stored)*9/10 {
			t.Errorf("epoch %d: only %d of %d images augmented", epoch, changed, len(stored))
		}
	}
	for i, img := range byEpoch[0] {
		if bytes.Equal(img, byEpoch[1][i]) {
			t.Errorf("record %d: epochs 0 and 1 augmented it identically", i)
		}
	}
}

// TestViews: cached view v of an image is the same in every epoch (only the
// order changes) and differs from the other views.
func TestViews(t *testing.T) {
	o := trainOptions(t)
	stored := readStored(t, o.Shards)
	recipe := augment.Recipe()
	o.Shuffle, o.Augment, o.Views = true, &recipe, 3
	view := func(v, epoch int) map[int][]uint8 {
		o.View, o.Epoch = v, epoch
		out := map[int][]uint8{}
		for _, ex := range examples(drain(t, o)) {
			if want := augmented(stored[ex.Index].rgb, recipe, pcg(ViewSeed(o.Seed, v, ex.Index))); !bytes.Equal(ex.Image, want) {
				t.Fatalf("view %d epoch %d, %s: not the recipe drawn from ViewSeed", v, epoch, ex.File)
			}
			out[ex.Index] = ex.Image
		}
		return out
	}
	v1e0, v1e4, v2e0 := view(1, 0), view(1, 4), view(2, 0)
	for i, img := range v1e0 {
		if !bytes.Equal(img, v1e4[i]) {
			t.Errorf("record %d: view 1 changed between epochs 0 and 4", i)
		}
		if bytes.Equal(img, v2e0[i]) {
			t.Errorf("record %d: views 1 and 2 are identical", i)
		}
	}
}

func TestDropRemainder(t *testing.T) {
	o := trainOptions(t)
	n := len(readStored(t, o.Shards))
	o.BatchSize = 4
	if n%o.BatchSize == 0 {
		o.BatchSize = 3
	}
	if n%o.BatchSize == 0 {
		t.Fatalf("%d records divide by 3 and 4: change the demo dataset", n)
	}
	for _, drop := range []bool{false, true} {
		o.DropRemainder, o.Shuffle = drop, true
		l, err := Open(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		wantLen, wantBatches := n, (n+o.BatchSize-1)/o.BatchSize
		if drop {
			wantLen, wantBatches = n/o.BatchSize*o.BatchSize, n/o.BatchSize
		}
		if l.Len() != wantLen || l.Batches() != wantBatches {
			t.Errorf("drop %v: Len %d, Batches %d; want %d, %d", drop, l.Len(), l.Batches(), wantLen, wantBatches)
		}
		l.Close()
		batches := drain(t, o)
		last := batches[len(batches)-1].N()
		if len(batches) != wantBatches || len(examples(batches)) != wantLen {
			t.Errorf("drop %v: %d batches, %d examples; want %d, %d", drop, len(batches), len(examples(batches)), wantBatches, wantLen)
		}
		if drop && last != o.BatchSize || !drop && last != n%o.BatchSize {
			t.Errorf("drop %v: last batch holds %d", drop, last)
		}
	}
}

func TestEmptySplit(t *testing.T) {
	l, err := Open(context.Background(), Options{ImageSize: 8, BatchSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if b, err := l.Next(); b != nil || err != io.EOF || l.Len() != 0 {
		t.Errorf("empty split: Next = %v, %v; Len %d", b, err, l.Len())
	}
}

// settleGoroutines waits for the goroutine count to come back to n.
func settleGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines left, had %d:\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestStopEarly: cancelling the context or closing mid-epoch ends Next and
// every goroutine, with no batch consumed, some, or one being waited for.
func TestStopEarly(t *testing.T) {
	o := trainOptions(t)
	o.BatchSize, o.Workers, o.Prefetch = 2, 3, 1
	recipe := augment.Recipe()
	o.Augment = &recipe
	before := runtime.NumGoroutine()

	for consumed := range 3 {
		ctx, cancel := context.WithCancel(context.Background())
		l, err := Open(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		for range consumed {
			if _, err := l.Next(); err != nil {
				t.Fatal(err)
			}
		}
		cancel()
		for range 2 {
			if _, err := l.Next(); !errors.Is(err, context.Canceled) {
				t.Fatalf("after %d batches and cancel: Next = %v, want context.Canceled", consumed, err)
			}
		}
		l.Close()
		l.Close()
		settleGoroutines(t, before)
	}

	for consumed := range 3 {
		l, err := Open(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		for range consumed {
			if _, err := l.Next(); err != nil {
				t.Fatal(err)
			}
		}
		l.Close()
		if _, err := l.Next(); err == nil || err == io.EOF {
			t.Errorf("Next after Close = %v, want an error", err)
		}
		settleGoroutines(t, before)
	}

	// Close from another goroutine while Next waits, as a signal handler would.
	for range 20 {
		l, err := Open(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error)
		go func() {
			for {
				if _, err := l.Next(); err != nil {
					done <- err
					return
				}
			}
		}()
		l.Close()
		select {
		case err := <-done:
			if err == io.EOF {
				t.Error("Next reached the end although the loader was closed first")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Next still blocked 5 s after Close")
		}
	}
	settleGoroutines(t, before)
}

// TestRecycle: with every batch given back, an epoch of 100 batches makes
// no more buffers than the pipeline holds plus the caller's one, and
// reused buffers carry no stale data.
func TestRecycle(t *testing.T) {
	const size, k, classes = 16, 7, 3
	path := t.TempDir() + "/noise.tfrecord"
	recs := noiseRecords(t, 398, k, size, classes)
	writeShard(t, path, recs)
	want := make([][]uint8, k)
	for i := range want {
		want[i] = decodeStored(t, recs[i].bytes()).rgb
	}
	o := Options{Shards: []string{path}, ImageSize: size, Classes: classes, BatchSize: 4, Shuffle: true, Workers: 2, Prefetch: 2}
	l, err := Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// Buffers of another shape must not be reused (they would not fit).
	l.Recycle(&Batch{Images: make([]uint8, 0, 3), Labels: make([]int32, 0, o.BatchSize), Files: make([]string, 0, o.BatchSize), Indices: make([]int, 0, o.BatchSize)})
	l.Recycle(nil)
	seen := map[*Batch]bool{}
	for {
		b, err := l.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		seen[b] = true
		for i := range b.N() {
			ex := b.Example(i)
			if ex.Label != int32(ex.Index%classes) || !bytes.Equal(ex.Image, want[ex.Index%k]) {
				t.Fatalf("record %d: wrong label or image in a recycled batch", ex.Index)
			}
		}
		l.Recycle(b)
	}
	limit := int64(o.Workers + o.Prefetch + 1)
	if made := l.made.Load(); made > limit || len(seen) > int(limit) {
		t.Errorf("%d batch buffers made, %d distinct batches seen; want at most %d", made, len(seen), limit)
	}
	if peak := l.peak.Load(); peak > int64(o.Workers+o.Prefetch) {
		t.Errorf("%d batches in flight at once, want at most %d", peak, o.Workers+o.Prefetch)
	}
}

// waitFull waits until every pipeline slot holds a finished batch, so that
// the workers are idle and a heap measurement sees the pipeline at its
// fullest without the decoders' short-lived garbage of the moment.
func waitFull(t *testing.T, l *Loader) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		full := 0
		for _, s := range l.slots {
			full += len(s)
		}
		if full == min(len(l.slots), l.batches-l.next) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pipeline did not fill in 5 s: %d of %d slots", full, len(l.slots))
		}
		time.Sleep(time.Millisecond)
	}
}

// TestBoundedMemory reads 4000 images (27 MB decoded) without recycling:
// the live heap must stay near what Workers + Prefetch batches need.
func TestBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("reads 4000 images")
	}
	const size, n = 48, 4000
	path := t.TempDir() + "/many.tfrecord"
	writeShard(t, path, noiseRecords(t, n, 16, size, 5))
	o := Options{Shards: []string{path}, ImageSize: size, BatchSize: 16, Shuffle: true, Workers: 2, Prefetch: 2}
	batchBytes := uint64(o.BatchSize * size * size * 3)
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse
	}
	base := heap()
	l, err := Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var peak uint64
	for b := 0; ; b++ {
		batch, err := l.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		_ = batch
		if b%25 == 0 {
			waitFull(t, l)
			peak = max(peak, heap())
		}
	}
	total := uint64(n * size * size * 3)
	// The bound: the pipeline's batches and the caller's, plus 1 MB for the
	// index, the order, the workers' scratch and the runtime's own slack.
	limit := base + uint64(o.Workers+o.Prefetch+1)*batchBytes + 1<<20
	t.Logf("heap in use: %d KB before, peak %d KB; %d KB decoded in all", base>>10, peak>>10, total>>10)
	if peak > limit {
		t.Errorf("heap in use peaked at %d KB, over the %d KB bound (%d KB decoded in all)", peak>>10, limit>>10, total>>10)
	}
	if p := l.peak.Load(); p > int64(o.Workers+o.Prefetch) {
		t.Errorf("%d batches in flight at once, want at most %d", p, o.Workers+o.Prefetch)
	}
}
