"""Converts an xcept SavedModel to TensorFlow Lite (xcept export runs it).

    export_tflite.py --saved-model DIR --out FILE.tflite
        [--signature predict_images] [--quantize none|float16|dynamic|int8]
        [--representative IMAGES.npy]

The converter is the project's own TensorFlow. The converted signature is
the float one, predict_images: TFLite has no image decoder, so the caller
decodes and squash-resizes; Xception's scaling to [-1, 1] stays inside.

  none     float32 weights and compute.
  float16  float16 weights (half the size), float32 compute on CPUs.
  dynamic  int8 weights, activations quantized on the fly; float32 in and out.
  int8     full integer: int8 weights and activations, calibrated on
           --representative (uint8 [N, size, size, 3] training images), and
           uint8 input and output. uint8 because that is what pixels are: the
           input range is pinned to 0..255 so its scale is 1 and its zero
           point 0, and the raw RGB bytes go in unchanged; the output is the
           probability in 1/256 steps. Integer-only accelerators need both.

Prints the converted signature's inputs and outputs as JSON (see
verify_common.py for the exit codes).
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import verify_common as vc  # noqa: E402

QUANTIZATIONS = ("none", "float16", "dynamic", "int8")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--saved-model", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--signature", default="predict_images")
    p.add_argument("--quantize", choices=QUANTIZATIONS, default="none")
    p.add_argument("--representative", help="uint8 [N, size, size, 3] .npy of calibration images (int8)")
    return p


def representative_dataset(images, input_name):
    """Calibration samples, one image each, as float32 pixel values. The
    first image's first two pixels are set to black and white so that the
    calibrated input range is exactly 0..255 (two pixels of one image move
    no other range measurably)."""
    import numpy as np

    def gen():
        for i, image in enumerate(images):
            x = image.astype(np.float32)[None]
            if i == 0:
                x[0, 0, 0, :], x[0, 0, 1, :] = 0.0, 255.0
            yield {input_name: x}

    return gen


def converter_for(args):
    import tensorflow as tf

    if not os.path.isfile(os.path.join(args.saved_model, "saved_model.pb")):
        raise vc.UsageError(f"--saved-model {args.saved_model}: no saved_model.pb there")
    converter = tf.lite.TFLiteConverter.from_saved_model(args.saved_model, signature_keys=[args.signature])
    if args.quantize == "none":
        return converter
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if args.quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif args.quantize == "int8":
        if not args.representative:
            raise vc.UsageError("--quantize int8 needs --representative IMAGES.npy (calibration images)")
        images = vc.load_images(args.representative)
        converter.representative_dataset = representative_dataset(images, "images")
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.uint8
    return converter


def tensor_spec(name, detail):
    spec = {
        "name": name,
        "dtype": vc.numpy_dtype_name(detail["dtype"]),
        "shape": [int(d) for d in detail["shape_signature"]],
    }
    scale, zero_point = detail["quantization"]
    if scale != 0:
        spec["quantization"] = {"scale": float(scale), "zero_point": int(zero_point)}
    return spec


def signature_spec(path, signature):
    """The converted signature's inputs and outputs, read back from the file."""
    import warnings

    import tensorflow as tf

    with warnings.catch_warnings():  # tf.lite.Interpreter's deprecation notice (LiteRT)
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(model_path=path)
    runner = interpreter.get_signature_runner(signature)
    inputs, outputs = runner.get_input_details(), runner.get_output_details()
    return {
        "name": signature,
        "inputs": [tensor_spec(k, inputs[k]) for k in sorted(inputs)],
        "outputs": [tensor_spec(k, outputs[k]) for k in sorted(outputs)],
    }


def convert(args):
    converter = converter_for(args)
    vc.progress(f"converting {args.saved_model} ({args.signature}) to TFLite, quantization {args.quantize}")
    data = converter.convert()
    tmp = args.out + ".tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, args.out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return signature_spec(args.out, args.signature)


if __name__ == "__main__":
    sys.exit(vc.main(parse_args(), convert, sys.argv[1:]))
