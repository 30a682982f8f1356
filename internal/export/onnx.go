package export

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/xcept/xcept/internal/contract"
	"github.com/xcept/xcept/internal/model"
	"github.com/xcept/xcept/internal/pyenv"
)

// DefaultONNXOpset is export.onnx_opset's default, the opset the cached
// conversions of `runtime.engine: onnxruntime` use.
const DefaultONNXOpset = 17

// ONNXConverter is the script that converts a SavedModel to ONNX; its
// content is part of a cached conversion's key.
const ONNXConverter = "export_onnx.py"

// ConvertONNX converts ref's serving model, with the weights its session
// holds now, to an ONNX file of its float signature at dst. The scratch
// SavedModel goes in a temporary folder beside dst, always removed; dst
// appears whole or not at all (the converter writes a temporary file and
// renames it).
func ConvertONNX(ctx context.Context, ref *model.Model, dst string, opset int, progress io.Writer) error {
	if err := CheckONNXFits(); err != nil {
		return err
	}
	work, err := os.MkdirTemp(filepath.Dir(dst), ".onnx-convert-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	sm := filepath.Join(work, "savedmodel")
	if err := os.Mkdir(sm, 0o755); err != nil {
		return err
	}
	if err := writeSavedModel(ref, sm); err != nil {
		return err
	}
	return ConvertSavedModelONNX(ctx, sm, dst, opset, progress)
}

// ConvertSavedModelONNX converts the serving SavedModel dir's float
// signature to an ONNX file at dst.
func ConvertSavedModelONNX(ctx context.Context, dir, dst string, opset int, progress io.Writer) error {
	return convertSignatureONNX(ctx, dir, contract.SigImages, dst, opset, progress)
}

// convertSignatureONNX converts one signature of the SavedModel in dir (of
// one input and one output) to an ONNX file at dst.
func convertSignatureONNX(ctx context.Context, dir, signature, dst string, opset int, progress io.Writer) error {
	args := []string{"--saved-model", dir, "--signature", signature, "--out", dst, "--opset", strconv.Itoa(opset)}
	if _, err := pyenv.Run(ctx, ONNXConverter, args, progress); err != nil {
		return pyenv.Failure(ctx, "", err)
	}
	if _, err := os.Stat(dst); err != nil {
		return err
	}
	return nil
}

// onnxConvertPeak is the converter's peak resident memory, measured at
// 299 px with tf2onnx's large_model (4.9 GB; 8.6 GB without it on the same
// machine: README, "Inference engines"), with some room; it hardly depends
// on the image size.
const onnxConvertPeak = 11 << 29 // 5.5 GB

// CheckONNXFits refuses a conversion that the memory available now
// (MemAvailable of /proc/meminfo, where there is one) would not hold.
func CheckONNXFits() error {
	avail, ok := memAvailable()
	if ok && avail < onnxConvertPeak {
		return fmt.Errorf("converting to ONNX takes about %.1f GB of memory and %.1f GB is available",
			float64(onnxConvertPeak)/(1<<30), float64(avail)/(1<<30))
	}
	return nil
}

func memAvailable() (int64, bool) {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
			f := strings.Fields(rest)
			if len(f) == 2 && f[1] == "kB" {
				if kb, err := strconv.ParseInt(f[0], 10, 64); err == nil {
					return kb << 10, true
				}
			}
		}
	}
	return 0, false
}
