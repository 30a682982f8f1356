package loader

import "math/rand/v2"

// Seed domains keep the streams apart: the shuffle of epoch 3 and the
// augmentation of image 3 must not be the same draws, nor view 3 of an image
// the same as its augmentation in epoch 3.
const (
	domainOrder uint64 = iota + 1
	domainEpochAugment
	domainViewAugment
)

// mix is the SplitMix64 finalizer: a bijection on uint64 that spreads every
// input bit over the output, so nearby (seed, epoch, index) triples give
// unrelated PCG seeds.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// seedPair derives the two PCG seed words for (domain, seed, a, b).
func seedPair(domain, seed, a, b uint64) (uint64, uint64) {
	const golden = 0x9e3779b97f4a7c15
	h := mix(seed ^ domain*golden)
	h = mix(h ^ a + golden)
	lo := mix(h ^ b - golden)
	return h, lo
}

// EpochSeed returns the PCG seed of the augmentation of record index in
// epoch epoch (Views == 0): the loader draws that image's transform, and
// nothing else, from rand.New(rand.NewPCG(EpochSeed(seed, epoch, index))).
// It depends on nothing else, so batches are the same with any number of
// workers and a resumed run replays an epoch exactly.
func EpochSeed(seed uint64, epoch, index int) (uint64, uint64) {
	return seedPair(domainEpochAugment, seed, uint64(epoch), uint64(index))
}

// ViewSeed is EpochSeed for cached views (Views > 0): view v of record index
// is drawn from rand.NewPCG(ViewSeed(seed, v, index)), so the K views a
// feature cache stores are fixed whatever the epoch, and a cache entry can be
// recomputed alone.
func ViewSeed(seed uint64, view, index int) (uint64, uint64) {
	return seedPair(domainViewAugment, seed, uint64(view), uint64(index))
}

// passOrder returns the record indices 0..n-1 in the order of one pass.
//
// Without shuffling it is record order. With buffer == 0 it is a uniform
// permutation: the split's index is only ints, so it always fits, and
// records are read by offset. With buffer > 0 it is the order tf.data's
// shuffle(buffer) gives over record order — each output is a uniform pick
// from a window of the next buffer records — for users who want exactly
// that (locality on slow disks); the records are still read by offset.
func passOrder(n int, shuffle bool, buffer int, seed uint64, epoch int) []int {
	if !shuffle {
		order := make([]int, n)
		for i := range order {
			order[i] = i
		}
		return order
	}
	rng := rand.New(rand.NewPCG(seedPair(domainOrder, seed, uint64(epoch), uint64(buffer))))
	if buffer == 0 || buffer >= n {
		return rng.Perm(n)
	}
	return bufferShuffle(n, buffer, rng)
}

// bufferShuffle streams 0..n-1 through a buffer of size b: emit a uniformly
// chosen buffered element and put the next input in its place; once the
// input is exhausted, drain the buffer the same way.
func bufferShuffle(n, b int, rng *rand.Rand) []int {
	order := make([]int, 0, n)
	buf := make([]int, b)
	for i := range buf {
		buf[i] = i
	}
	for next := b; len(buf) > 0; {
		k := rng.IntN(len(buf))
		order = append(order, buf[k])
		if next < n {
			buf[k] = next
			next++
		} else {
			last := len(buf) - 1
			buf[k] = buf[last]
			buf = buf[:last]
		}
	}
	return order
}
