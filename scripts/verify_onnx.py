"""Runs an ONNX export on xcept's verification images (xcept export runs it).

    verify_onnx.py --model FILE.onnx --images IMAGES.npy --out PROBS.npy
        [--batch-size 1] [--threads N]

onnxruntime on the CPU execution provider; the uint8 images are fed as
float32 pixel values. Writes the probabilities as float32 [N, classes] and
prints {"seconds": inference time over all images, "images": N}.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import verify_common as vc  # noqa: E402

NUMPY_DTYPES = {"tensor(float)": "float32", "tensor(uint8)": "uint8"}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--images", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--threads", type=int, default=0, help="0: onnxruntime decides")
    return p


def session_for(path, threads):
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise vc.Unsupported(f"running ONNX needs onnxruntime in xcept's Python environment ({e}): run `make setup`") from e
    if not os.path.isfile(path):
        raise vc.UsageError(f"--model {path}: no such file")
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(threads, 0)
    return ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])


def verify(args):
    if args.batch_size < 1:
        raise vc.UsageError(f"--batch-size {args.batch_size}: want at least 1")
    images = vc.load_images(args.images)
    session = session_for(args.model, args.threads)
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    if inp.type not in NUMPY_DTYPES:
        raise vc.UsageError(f"--model {args.model}: input {inp.name} is {inp.type}, not an image tensor")
    dtype = NUMPY_DTYPES[inp.type]

    def infer(batch):
        return session.run([out.name], {inp.name: vc.to_input(batch, dtype)})[0]

    probabilities, seconds = vc.timed_batches(images, args.batch_size, infer)
    vc.save_probabilities(args.out, probabilities)
    return {"seconds": seconds, "images": len(images)}


if __name__ == "__main__":
    sys.exit(vc.main(parse_args(), verify, sys.argv[1:]))
