// Package demoset makes the prepared demo datasets tests share: demodata's
// generated images, prepared with dataset.Prepare, optionally with a model
// folder linked in as the dataset's model. It is part of testenv, in a
// package of its own because the tests of the packages dataset is built
// from (imageio, tfrecord, ...) import testenv.
package demoset

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/xcept/xcept/internal/dataset"
	"github.com/xcept/xcept/internal/demodata"
	"github.com/xcept/xcept/internal/imageio"
)

// Options say what to generate and how to prepare it.
type Options struct {
	Images  demodata.Options // the demo images
	Prepare dataset.Options  // how to prepare them; Make sets Data and Out
	Model   string           // a model folder linked in as the dataset's model; "" for none
}

// Prepared is a generated image folder and the dataset prepared from it.
type Prepared struct {
	Images   string // dir/images: one sub-folder per class
	Dataset  string // dir/ds
	Manifest *dataset.Manifest
}

// PrepareOptions are fast preparation settings at size px for tests that
// need no particular ones: squash, JPEG 90, 0.8/0.1/0.1 splits, seed 42,
// two workers.
func PrepareOptions(size int) dataset.Options {
	return dataset.Options{
		ImageSize: size, Fractions: dataset.Fractions{Train: 0.8, Val: 0.1, Test: 0.1}, Seed: 42,
		Fit: imageio.Squash, Format: imageio.JPEG, Quality: 90, ShardBytes: 1 << 20,
		MaxPixels: 10_000_000, MaxFileBytes: 8 << 20, MinSide: 16, Workers: 2,
	}
}

// Make generates o.Images into dir/images and prepares them into dir/ds.
func Make(ctx context.Context, dir string, o Options) (Prepared, error) {
	images := filepath.Join(dir, "images")
	if err := demodata.Generate(images, o.Images); err != nil {
		return Prepared{Images: images}, err
	}
	return Folder(ctx, images, filepath.Join(dir, "ds"), o)
}

// Folder prepares the image folder images (made by another generator,
// such as demodata.Composite) into out as o says; o.Images is not used.
func Folder(ctx context.Context, images, out string, o Options) (Prepared, error) {
	p := Prepared{Images: images, Dataset: out}
	prep := o.Prepare
	prep.Data, prep.Out = images, out
	rep, err := dataset.Prepare(ctx, prep)
	if err != nil {
		return p, err
	}
	p.Manifest = rep.Manifest
	if o.Model != "" {
		err = os.Symlink(o.Model, filepath.Join(out, dataset.ModelDir))
	}
	return p, err
}

// Temp is Make in a temporary folder of t, failing t on an error.
func Temp(t testing.TB, o Options) Prepared {
	t.Helper()
	p, err := Make(context.Background(), t.TempDir(), o)
	if err != nil {
		t.Fatalf("preparing the demo dataset: %v", err)
	}
	return p
}
