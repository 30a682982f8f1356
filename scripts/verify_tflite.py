"""Runs a TFLite export on xcept's verification images (xcept export runs it).

    verify_tflite.py --model FILE.tflite --images IMAGES.npy --out PROBS.npy
        [--batch-size 1] [--threads N] [--signature predict_images]

Feeds the uint8 images as the model's input wants them (float32 pixel values,
or quantized with the input's own scale and zero point), writes the
probabilities (dequantized) as float32 [N, classes], and prints
{"seconds": inference time over all images, "images": N}. The interpreter is
TensorFlow's tf.lite.Interpreter with its default delegates (XNNPACK on CPUs).
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import verify_common as vc  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--images", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--signature", default="predict_images")
    return p


def interpreter_for(path, threads):
    import warnings

    import tensorflow as tf

    if not os.path.isfile(path):
        raise vc.UsageError(f"--model {path}: no such file")
    with warnings.catch_warnings():  # tf.lite.Interpreter's deprecation notice (LiteRT)
        warnings.simplefilter("ignore")
        return tf.lite.Interpreter(model_path=path, num_threads=threads)


def verify(args):
    if args.batch_size < 1:
        raise vc.UsageError(f"--batch-size {args.batch_size}: want at least 1")
    images = vc.load_images(args.images)
    interpreter = interpreter_for(args.model, args.threads)
    runner = interpreter.get_signature_runner(args.signature)
    (in_name, in_detail), = runner.get_input_details().items()
    (out_name, out_detail), = runner.get_output_details().items()
    size = tuple(int(d) for d in in_detail["shape_signature"][1:])
    if size != images.shape[1:]:
        raise vc.UsageError(f"--images {args.images}: images of {images.shape[1:]}, the model takes {size}")

    def infer(batch):
        x = vc.to_input(batch, in_detail["dtype"], in_detail["quantization"])
        y = runner(**{in_name: x})[out_name]
        return vc.from_output(y, out_detail["quantization"])

    probabilities, seconds = vc.timed_batches(images, args.batch_size, infer)
    vc.save_probabilities(args.out, probabilities)
    return {"seconds": seconds, "images": len(images)}


if __name__ == "__main__":
    sys.exit(vc.main(parse_args(), verify, sys.argv[1:]))
