package audit

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
)

// Head settings of the out-of-fold fits. The head is a softmax regression
// (one Dense layer, the product head's last) on standardised features: its
// objective is convex, so a fold's fit depends on no initialisation, epoch
// count or learning rate, and it runs in Go with no TensorFlow session.
const (
	// DefaultL2 is the weight decay λ of mean cross-entropy + λ/2·‖W‖²,
	// measured on the digits benchmark (scripts/audit/bench_audit.sh, README:
	// audit): precision/recall on the flipped labels 0.513/0.800 at 1e-3,
	// 0.556/0.700 at 1e-2, 0.581/0.720 at 3e-2, 0.610/0.720 at 1e-1 and 3e-1.
	DefaultL2 = 1e-1
	// maxIter bounds L-BFGS (it stops earlier once the gradient is small):
	// 100 iterations find the same issues as 300 within one image on the
	// digits benchmark (63 vs 62) in a third of the time.
	maxIter = 100
	gradTol = 1e-5
	memory  = 10
)

// OOF holds out-of-fold predicted probabilities: row i was predicted by a
// head that never saw image i.
type OOF struct {
	Probs []float64 // len(labels)×K, row-major
	Folds int
	Fold  []int // Fold[i]: the fold image i was held out in
}

// OutOfFold splits the images into folds stratified by label (each class
// shuffled with seed, dealt round-robin), fits one head per fold on the
// others and predicts the held-out fold. features is n×dim row-major.
func OutOfFold(ctx context.Context, features []float32, dim int, labels []int, k, folds int, l2 float64, seed uint64) (*OOF, error) {
	n := len(labels)
	if dim <= 0 || len(features) != n*dim {
		return nil, fmt.Errorf("%d feature values for %d images of dimension %d", len(features), n, dim)
	}
	if folds < 2 {
		return nil, fmt.Errorf("--folds %d: needs at least 2", folds)
	}
	if n < folds {
		return nil, fmt.Errorf("%d images cannot be split into %d folds", n, folds)
	}
	fold := StratifiedFolds(labels, k, folds, seed)
	out := &OOF{Probs: make([]float64, n*k), Folds: folds, Fold: fold}
	for f := 0; f < folds; f++ {
		var train, held []int
		for i, g := range fold {
			if g == f {
				held = append(held, i)
			} else {
				train = append(train, i)
			}
		}
		h, err := FitHead(ctx, features, dim, labels, train, k, l2)
		if err != nil {
			return nil, err
		}
		for _, i := range held {
			h.Predict(features[i*dim:(i+1)*dim], out.Probs[i*k:(i+1)*k])
		}
	}
	return out, nil
}

// StratifiedFolds deals each class's images, in a seeded shuffle, to the
// folds in turn, continuing where the previous class stopped, so every fold
// holds about its share of every class.
func StratifiedFolds(labels []int, k, folds int, seed uint64) []int {
	rng := rand.New(rand.NewPCG(seed, 0x6f6f66))
	byClass := make([][]int, k)
	for i, l := range labels {
		byClass[l] = append(byClass[l], i)
	}
	fold := make([]int, len(labels))
	next := 0
	for _, members := range byClass {
		rng.Shuffle(len(members), func(a, b int) { members[a], members[b] = members[b], members[a] })
		for _, i := range members {
			fold[i] = next % folds
			next++
		}
	}
	return fold
}

// Head is a fitted softmax regression on standardised features.
type Head struct {
	Dim, K    int
	Mean, Inv []float64 // standardisation: (x − Mean)·Inv
	W         []float64 // K×Dim
	B         []float64 // K
}

// Predict writes softmax(W·z + b) for one feature row into p (len K).
func (h *Head) Predict(x []float32, p []float64) {
	z := make([]float64, h.Dim)
	for j := range z {
		z[j] = (float64(x[j]) - h.Mean[j]) * h.Inv[j]
	}
	for c := 0; c < h.K; c++ {
		p[c] = h.B[c] + dot(h.W[c*h.Dim:(c+1)*h.Dim], z)
	}
	softmax(p)
}

// FitHead fits a head on the rows of features listed in rows by L-BFGS.
func FitHead(ctx context.Context, features []float32, dim int, labels, rows []int, k int, l2 float64) (*Head, error) {
	n := len(rows)
	if n == 0 {
		return nil, fmt.Errorf("no images to fit a head on")
	}
	h := &Head{Dim: dim, K: k, Mean: make([]float64, dim), Inv: make([]float64, dim)}
	for _, r := range rows {
		x := features[r*dim : (r+1)*dim]
		for j, v := range x {
			h.Mean[j] += float64(v)
		}
	}
	for j := range h.Mean {
		h.Mean[j] /= float64(n)
	}
	for _, r := range rows {
		x := features[r*dim : (r+1)*dim]
		for j, v := range x {
			d := float64(v) - h.Mean[j]
			h.Inv[j] += d * d
		}
	}
	for j := range h.Inv {
		sd := math.Sqrt(h.Inv[j] / float64(n))
		if sd < 1e-8 {
			h.Inv[j] = 0 // a constant feature carries nothing
		} else {
			h.Inv[j] = 1 / sd
		}
	}
	z := make([]float64, n*dim)
	y := make([]int, n)
	for i, r := range rows {
		x := features[r*dim : (r+1)*dim]
		for j, v := range x {
			z[i*dim+j] = (float64(v) - h.Mean[j]) * h.Inv[j]
		}
		y[i] = labels[r]
	}
	obj := &softmaxObjective{z: z, y: y, n: n, dim: dim, k: k, l2: l2}
	theta := make([]float64, k*dim+k)
	if err := lbfgs(ctx, obj.eval, theta); err != nil {
		return nil, err
	}
	h.W, h.B = theta[:k*dim], theta[k*dim:]
	return h, nil
}

// softmaxObjective is mean cross-entropy + λ/2·‖W‖² (the bias is not
// decayed) and its gradient; θ = (W row-major K×dim, b).
type softmaxObjective struct {
	z         []float64
	y         []int
	n, dim, k int
	l2        float64
}

func (o *softmaxObjective) eval(theta, grad []float64) float64 {
	k, dim := o.k, o.dim
	w, b := theta[:k*dim], theta[k*dim:]
	workers := max(1, min(runtime.GOMAXPROCS(0), o.n/64))
	grads := make([][]float64, workers)
	losses := make([]float64, workers)
	var wg sync.WaitGroup
	for t := 0; t < workers; t++ {
		wg.Add(1)
		go func(t int) {
			defer wg.Done()
			g := make([]float64, len(theta))
			p := make([]float64, k)
			loss := 0.0
			for i := t; i < o.n; i += workers {
				x := o.z[i*dim : (i+1)*dim]
				for c := 0; c < k; c++ {
					p[c] = b[c] + dot(w[c*dim:(c+1)*dim], x)
				}
				loss -= logSoftmaxAt(p, o.y[i])
				softmax(p)
				p[o.y[i]] -= 1
				for c := 0; c < k; c++ {
					axpy(p[c], x, g[c*dim:(c+1)*dim])
					g[k*dim+c] += p[c]
				}
			}
			grads[t], losses[t] = g, loss
		}(t)
	}
	wg.Wait()
	inv := 1 / float64(o.n)
	loss := 0.0
	for j := range grad {
		grad[j] = 0
	}
	for t := range grads {
		loss += losses[t]
		for j, v := range grads[t] {
			grad[j] += v
		}
	}
	loss *= inv
	for j := range grad {
		grad[j] *= inv
	}
	for j := 0; j < k*dim; j++ {
		loss += o.l2 / 2 * w[j] * w[j]
		grad[j] += o.l2 * w[j]
	}
	return loss
}

// lbfgs minimises f from x (updated in place): limited-memory BFGS with a
// backtracking Armijo line search.
func lbfgs(ctx context.Context, f func(x, g []float64) float64, x []float64) error {
	n := len(x)
	g := make([]float64, n)
	fx := f(x, g)
	var ss, ys [][]float64
	var rhos []float64
	d := make([]float64, n)
	xn := make([]float64, n)
	gn := make([]float64, n)
	alpha := make([]float64, memory)
	for it := 0; it < maxIter; it++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if math.Sqrt(dot(g, g)) < gradTol {
			return nil
		}
		// Two-loop recursion: d = −H·g.
		copy(d, g)
		for i := len(ss) - 1; i >= 0; i-- {
			alpha[i] = rhos[i] * dot(ss[i], d)
			axpy(-alpha[i], ys[i], d)
		}
		if m := len(ss); m > 0 {
			scale(dot(ss[m-1], ys[m-1])/dot(ys[m-1], ys[m-1]), d)
		} else {
			scale(1/max(1, math.Sqrt(dot(g, g))), d)
		}
		for i := range ss {
			beta := rhos[i] * dot(ys[i], d)
			axpy(alpha[i]-beta, ss[i], d)
		}
		scale(-1, d)
		slope := dot(g, d)
		if slope >= 0 { // not a descent direction: restart from the gradient
			ss, ys, rhos = nil, nil, nil
			copy(d, g)
			scale(-1/max(1, math.Sqrt(dot(g, g))), d)
			slope = dot(g, d)
		}
		step, fn := 1.0, 0.0
		for ls := 0; ; ls++ {
			for i := range x {
				xn[i] = x[i] + step*d[i]
			}
			fn = f(xn, gn)
			if fn <= fx+1e-4*step*slope || ls == 30 {
				break
			}
			step /= 2
		}
		if fn > fx { // no progress along d: converged as far as it goes
			return nil
		}
		s := make([]float64, n)
		y := make([]float64, n)
		for i := range x {
			s[i], y[i] = xn[i]-x[i], gn[i]-g[i]
		}
		if sy := dot(s, y); sy > 1e-12 {
			if len(ss) == memory {
				ss, ys, rhos = ss[1:], ys[1:], rhos[1:]
			}
			ss, ys, rhos = append(ss, s), append(ys, y), append(rhos, 1/sy)
		}
		converged := fx-fn <= 1e-10*max(1, math.Abs(fx))
		copy(x, xn)
		copy(g, gn)
		fx = fn
		if converged {
			return nil
		}
	}
	return nil
}

func dot(a, b []float64) float64 {
	s := 0.0
	for i, v := range a {
		s += v * b[i]
	}
	return s
}

func axpy(a float64, x, y []float64) {
	for i, v := range x {
		y[i] += a * v
	}
}

func scale(a float64, x []float64) {
	for i := range x {
		x[i] *= a
	}
}

func softmax(p []float64) {
	m := p[0]
	for _, v := range p {
		m = max(m, v)
	}
	s := 0.0
	for i, v := range p {
		p[i] = math.Exp(v - m)
		s += p[i]
	}
	for i := range p {
		p[i] /= s
	}
}

func logSoftmaxAt(p []float64, c int) float64 {
	m := p[0]
	for _, v := range p {
		m = max(m, v)
	}
	s := 0.0
	for _, v := range p {
		s += math.Exp(v - m)
	}
	return p[c] - m - math.Log(s)
}
