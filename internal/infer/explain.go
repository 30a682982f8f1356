package infer

import (
	"fmt"
	"image"

	"github.com/xcept/xcept/internal/contract"
	"github.com/xcept/xcept/internal/graph"
	"github.com/xcept/xcept/internal/imageio"
	"github.com/xcept/xcept/internal/model"
)

// PredictedClass is the class_index asking the explain signature for the
// predicted class.
const PredictedClass = -1

// Explanation is Grad-CAM for one image: where the model looked for the
// explained class.
type Explanation struct {
	Heatmap []float32 // H×W, row-major, in [0, 1]
	H, W    int
	Probs   []float32 // every class's probability
	Class   int       // the class explained
}

// Explain runs the explain signature on n images (size×size RGB, NHWC)
// for the given classes (PredictedClass: the predicted one).
func Explain(m *model.Model, images []uint8, classes []int32) ([]Explanation, error) {
	n, s := len(classes), int64(m.Info.ImageSize)
	if int64(len(images)) != int64(n)*s*s*3 {
		return nil, fmt.Errorf("%d bytes of images is not %d images of %d×%d×3", len(images), n, s, s)
	}
	in, err := graph.NewTensor([]int64{int64(n), s, s, 3}, images)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	ci, err := graph.NewTensor([]int64{int64(n)}, classes)
	if err != nil {
		return nil, err
	}
	defer ci.Close()
	out, err := m.Session.Run(contract.SigExplain, map[string]*graph.Tensor{contract.InImages: in, contract.InClassIndex: ci},
		contract.OutHeatmap, contract.OutProbabilities, contract.OutClassIndex)
	if err != nil {
		return nil, err
	}
	for _, t := range out {
		defer t.Close()
	}
	shape := out[0].Shape()
	if len(shape) != 3 || shape[0] != int64(n) {
		return nil, fmt.Errorf("explain: heatmap of shape %v for %d images", shape, n)
	}
	heat, err := out[0].Float32s()
	if err != nil {
		return nil, err
	}
	probs, err := out[1].Float32s()
	if err != nil {
		return nil, err
	}
	chosen, err := graph.Values[int32](out[2])
	if err != nil {
		return nil, err
	}
	h, w := int(shape[1]), int(shape[2])
	k := len(probs) / n
	res := make([]Explanation, n)
	for i := range res {
		res[i] = Explanation{Heatmap: heat[i*h*w : (i+1)*h*w], H: h, W: w, Probs: probs[i*k : (i+1)*k], Class: int(chosen[i])}
	}
	return res, nil
}

// Placement is where the model's size×size input sits on the upright
// image under a resize policy: Src (image pixels) was scaled onto Dst
// (input pixels). It lets a heatmap over the input be laid back onto the
// whole image.
type Placement struct {
	Size     int
	Src, Dst image.Rectangle
}

// Place is imageio.Resize's geometry for a w×h image.
func Place(w, h, size int, fit imageio.Fit) Placement {
	src, dst := imageio.Layout(w, h, size, fit)
	return Placement{Size: size, Src: src, Dst: dst}
}

// ToInput maps an image point (pixel centre coordinates) to input
// coordinates, and reports whether the model saw it.
func (p Placement) ToInput(x, y float64) (float64, float64, bool) {
	ix := float64(p.Dst.Min.X) + (x-float64(p.Src.Min.X))*float64(p.Dst.Dx())/float64(p.Src.Dx())
	iy := float64(p.Dst.Min.Y) + (y-float64(p.Src.Min.Y))*float64(p.Dst.Dy())/float64(p.Src.Dy())
	inside := x >= float64(p.Src.Min.X) && x < float64(p.Src.Max.X) && y >= float64(p.Src.Min.Y) && y < float64(p.Src.Max.Y)
	return ix, iy, inside
}

// HeatAt returns the heat at a point of the upright image the placement
// describes (pixel i spans [i, i+1)), bilinearly interpolated between the
// heatmap's cell centres, and false where the model did not see the image.
func (e Explanation) HeatAt(p Placement, x, y float64) (float64, bool) {
	ix, iy, seen := p.ToInput(x, y)
	if !seen {
		return 0, false
	}
	hx := clamp(ix/float64(p.Size)*float64(e.W)-0.5, 0, float64(e.W-1))
	hy := clamp(iy/float64(p.Size)*float64(e.H)-0.5, 0, float64(e.H-1))
	x0, y0 := int(hx), int(hy)
	x1, y1 := min(x0+1, e.W-1), min(y0+1, e.H-1)
	fx, fy := hx-float64(x0), hy-float64(y0)
	at := func(r, c int) float64 { return float64(e.Heatmap[r*e.W+c]) }
	top := at(y0, x0)*(1-fx) + at(y0, x1)*fx
	bottom := at(y1, x0)*(1-fx) + at(y1, x1)*fx
	return top*(1-fy) + bottom*fy, true
}

func clamp(v, lo, hi float64) float64 { return max(lo, min(hi, v)) }
