package calibrate

import (
	"fmt"
	"maps"
	"slices"
)

// OOD is how well the rejection score tells known held-out images (of the
// model's classes) from out-of-distribution ones (of none of them), and
// what the run's threshold does to each.
type OOD struct {
	Score     string  `json:"score"`     // the rejection score (ScoreLogOdds)
	Threshold float64 `json:"threshold"` // the run's, chosen on the validation split
	// Confidence is the threshold as a top probability (Rejection.Confidence).
	Confidence float64 `json:"confidence"`
	Accept     float64 `json:"accept"` // the share of known images it was chosen to accept
	Known      int     `json:"known_images"`
	Images     int     `json:"ood_images"`
	// AUROC of known against OOD images by the score: the probability that
	// a known image scores above an OOD one (0.5: no better than chance).
	AUROC float64 `json:"auroc"`
	// KnownAccepted is the share of the known held-out images the threshold
	// accepts (Accept on the validation split; close to it when the held-out
	// images are like the validation ones), OODAccepted the share of OOD
	// images it accepts (wrongly: they are answered as a class).
	KnownAccepted float64 `json:"known_accepted"`
	OODAccepted   float64 `json:"ood_accepted"`
}

// MeasureOOD scores known and OOD rows of calibrated probabilities (n × k,
// row-major) by r's score against r's threshold.
func MeasureOOD(known, ood []float32, k int, r *Rejection) (*OOD, error) {
	if r == nil {
		return nil, fmt.Errorf("no \"unknown\" threshold to measure")
	}
	ks, err := ScoresOf(r.Score, known, k)
	if err != nil {
		return nil, err
	}
	os, err := ScoresOf(r.Score, ood, k)
	if err != nil {
		return nil, err
	}
	auroc, err := AUROC(ks, os)
	if err != nil {
		return nil, err
	}
	return &OOD{
		Score: r.Score, Threshold: r.Threshold, Confidence: r.Confidence, Accept: r.Accept, Known: len(ks), Images: len(os), AUROC: auroc,
		KnownAccepted: AcceptedShare(ks, r.Threshold), OODAccepted: AcceptedShare(os, r.Threshold),
	}, nil
}

// TTA compares predictions with and without test-time augmentation on the
// same images.
type TTA struct {
	Views   []string `json:"views"` // the views averaged, "identity" first
	Without Scores   `json:"without"`
	With    Scores   `json:"with"`
}

// MeasureTTA scores plain probabilities and the mean of them with each
// other view's (all n × k, row-major, the same rows).
func MeasureTTA(labels []int32, k int, plain []float32, views map[string][]float32) (*TTA, error) {
	without, err := Score(plain, labels, k)
	if err != nil {
		return nil, err
	}
	mean := MeanViews(plain, views)
	with, err := Score(mean, labels, k)
	if err != nil {
		return nil, err
	}
	t := &TTA{Views: []string{"identity"}, Without: without, With: with}
	t.Views = append(t.Views, slices.Sorted(maps.Keys(views))...)
	return t, nil
}

// MeanViews is the element-wise mean of plain and every view.
func MeanViews(plain []float32, views map[string][]float32) []float32 {
	sum := make([]float64, len(plain))
	for i, p := range plain {
		sum[i] = float64(p)
	}
	for _, v := range views {
		for i, p := range v {
			sum[i] += float64(p)
		}
	}
	out := make([]float32, len(plain))
	n := float64(1 + len(views))
	for i, s := range sum {
		out[i] = float32(s / n)
	}
	return out
}
