package model

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"sync/atomic"

	"github.com/xcept/xcept/internal/contract"
	"github.com/xcept/xcept/internal/fault"
	"github.com/xcept/xcept/internal/graph"
)

// Group makes a model one task of a data-parallel cluster: its training
// steps take the task's shard of every global batch and run the trainer's
// dp_* signatures (scripts/xcept_dp.py), whose CollectiveReduceV2 adds every
// task's gradients, so each task applies the global batch's gradient. Every
// task must run the same steps in the same order: the instance keys, one
// per collective, count them.
type Group struct {
	Size, Task int
	// Name(i) names task i in messages ("worker 1 (host:port)").
	Name func(i int) string
}

// instanceKey is the last instance key used in this process: TensorFlow
// remembers each key's shapes for the process's life, so every collective
// of the process (of any Model) takes the next.
var instanceKey atomic.Int32

// Signature names of the data-parallel trainer (xcept_dp.py): DP+step is a
// step's variant, SigCheck the digest all-reduce.
const (
	DP       = "dp_"
	SigCheck = "dp_check"
)

const groupKey = 1 // one group: every task of the cluster

// Shard is the rows [lo, hi) of a global batch of n that task takes: as
// equal as integers allow, the first tasks' shards never larger.
func (g *Group) Shard(n int) (lo, hi int) {
	return n * g.Task / g.Size, n * (g.Task + 1) / g.Size
}

func (g *Group) add(f *feeds) {
	for key, v := range map[string]int32{"group_size": int32(g.Size), "group_key": groupKey, "instance_key": instanceKey.Add(1)} {
		t, err := graph.NewScalar(v)
		f.add(key, t, err)
	}
}

// SupportsGroups reports whether the trainer has the data-parallel signatures.
func (m *Model) SupportsGroups() bool {
	_, err := m.Session.Signature(SigCheck)
	return err == nil
}

// groupStep is Step and HeadStep in a group: the task's shard of the
// images (or features) of b, through signature's dp_ variant.
func (m *Model) groupStep(signature string, images []uint8, features []float32, b Batch, p StepParams) (StepResult, error) {
	g := m.Group
	lo, hi := g.Shard(b.N())
	shard := Batch{Labels: b.Labels[lo:hi]}
	if b.Weights != nil {
		shard.Weights = b.Weights[lo:hi]
	}
	var f feeds
	defer f.close()
	if features != nil {
		d := m.Info.FeatureDim
		if len(features) != b.N()*d {
			return StepResult{}, fmt.Errorf("%d features is not %d images of %d", len(features), b.N(), d)
		}
		t, err := graph.NewTensor([]int64{int64(hi - lo), int64(d)}, features[lo*d:hi*d])
		f.add(contract.InFeatures, t, err)
	} else if hi == lo && signature == contract.SigTrainStep {
		// An empty shard (a last global batch smaller than the group): the
		// frozen base adds nothing, and TensorFlow's fused CPU convolution
		// gives an empty batch its input's shape ("input depth must be
		// evenly divisible by filter depth: 3 vs 32"), so the head step runs
		// on no features: the same all-reduce, since dp_train_step is the
		// base and then dp_train_head_step.
		t, err := graph.NewTensor([]int64{0, int64(m.Info.FeatureDim)}, []float32{})
		f.add(contract.InFeatures, t, err)
		signature = contract.SigTrainHeadStep
	} else {
		per := len(images) / max(b.N(), 1)
		t, err := m.imagesTensor(images[lo*per:hi*per], hi-lo)
		f.add(contract.InImages, t, err)
	}
	g.add(&f)
	r, err := m.step(DP+signature, &f, shard, p)
	return r, g.failed(err)
}

// Check all-reduces digest (what this task is about to train: its
// configuration, model and checkpoint) and fails unless every task of the
// group has the same; the first collective of a run, so it also waits for
// every task to start.
func (m *Model) Check(digest [sha256.Size]byte) error {
	words := make([]float64, sha256.Size/2)
	for i := range words {
		words[i] = float64(int(digest[2*i])<<8 | int(digest[2*i+1]))
	}
	hi, lo, err := m.maxMin(words)
	if err != nil {
		return err
	}
	for i := range words {
		if hi[i] != lo[i] {
			return fault.New(fault.BadValue, "the %d workers of the cluster are not training the same thing (their configuration, dataset, model or checkpoint differ): start every worker with the same flags, configuration and %s on shared storage", m.Group.Size, fault.Option("run"))
		}
	}
	return nil
}

// checkWords is dp_check's input length (xcept_dp.DIGEST_WORDS).
const checkWords = sha256.Size / 2

// maxMin runs dp_check: the group's elementwise maximum and minimum of
// every task's checkWords words.
func (m *Model) maxMin(words []float64) (hi, lo []float64, err error) {
	var f feeds
	defer f.close()
	t, err := graph.NewTensor([]int64{int64(len(words))}, words)
	f.add("digest", t, err)
	m.Group.add(&f)
	if f.err != nil {
		return nil, nil, f.err
	}
	out, err := m.Session.Run(SigCheck, f.m, "max", "min")
	if err != nil {
		return nil, nil, m.Group.failed(err)
	}
	defer out[0].Close()
	defer out[1].Close()
	if hi, err = graph.Values[float64](out[0]); err != nil {
		return nil, nil, err
	}
	lo, err = graph.Values[float64](out[1])
	return hi, lo, err
}

// AllGather gives every task the values of every task, in task order: each
// task passes the same number of values, at most checkWords/2. It runs on
// dp_check, so any trainer with the data-parallel signatures has it: each
// value travels as two 32-bit halves of its bits (integers a float64 holds
// exactly), a task's words in its own slot and zeros in the others', so
// the maximum of every slot is its owner's word and the values come back
// bit for bit (NaN, infinities and -0 included); a round carries the
// slots of checkWords / (2·len(values)) tasks.
func (m *Model) AllGather(values []float64) ([][]float64, error) {
	return allGather(m.Group.Size, m.Group.Task, values, func(words []float64) ([]float64, error) {
		hi, _, err := m.maxMin(words)
		return hi, err
	})
}

// allGather is AllGather for task of a group of size over reduceMax, the group's
// elementwise maximum of every task's checkWords words.
func allGather(size, task int, values []float64, reduceMax func([]float64) ([]float64, error)) ([][]float64, error) {
	per := 2 * len(values)
	if per == 0 || per > checkWords {
		return nil, fmt.Errorf("AllGather: %d values; give 1 to %d", len(values), checkWords/2)
	}
	slots := checkWords / per
	out := make([][]float64, size)
	for first := 0; first < size; first += slots {
		words := make([]float64, checkWords)
		if k := task - first; k >= 0 && k < slots {
			for i, v := range values {
				bits := math.Float64bits(v)
				words[k*per+2*i], words[k*per+2*i+1] = float64(bits>>32), float64(bits&0xffffffff)
			}
		}
		hi, err := reduceMax(words)
		if err != nil {
			return nil, err
		}
		for k := 0; k < slots && first+k < size; k++ {
			vals := make([]float64, len(values))
			for i := range vals {
				vals[i] = math.Float64frombits(uint64(hi[k*per+2*i])<<32 | uint64(hi[k*per+2*i+1]))
			}
			out[first+k] = vals
		}
	}
	return out, nil
}

// Barrier returns once every task has reached it: a task that exits right
// after its last collective could cut off a peer still receiving from it.
func (m *Model) Barrier() error {
	return m.Check([sha256.Size]byte{})
}

// taskInMessage finds "/job:worker/replica:0/task:N" in TensorFlow's messages.
var taskInMessage = regexp.MustCompile(`/task:(\d+)`)

// failed turns a collective's failure because a peer died, left or is too
// slow (DeadlineExceeded after the operation timeout, Unavailable,
// Aborted, Cancelled) into a fault.PeerLost that names the peer.
func (g *Group) failed(err error) error {
	var te *graph.Error
	if err == nil || !errors.As(err, &te) {
		return err
	}
	switch te.Code {
	case graph.CodeDeadlineExceeded, graph.CodeUnavailable, graph.CodeAborted, graph.CodeCancelled:
	default:
		return err
	}
	peer := "a peer"
	if g.Size == 2 {
		peer = g.Name(1 - g.Task)
	} else if sub := taskInMessage.FindStringSubmatch(te.Message); sub != nil {
		if i, _ := strconv.Atoi(sub[1]); i != g.Task && i < g.Size {
			peer = g.Name(i)
		}
	}
	what := "did not answer in time"
	if te.Code != graph.CodeDeadlineExceeded {
		what = "is gone"
	}
	return fault.New(fault.PeerLost, "%s of the cluster: %s %s (tensorflow %s); the last complete checkpoint is kept: restart every worker with %s",
		g.Name(g.Task), peer, what, te.Code, fault.Option("resume"))
}
