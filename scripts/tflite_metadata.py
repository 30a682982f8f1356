"""Writes TFLite Model Metadata into an xcept .tflite (xcept export runs it
with the MediaPipe venv's python, .venv-mediapipe: `make mediapipe-venv`).

    tflite_metadata.py --model FILE.tflite --labels labels.txt
        --name NAME --description TEXT

The writer is MediaPipe's own (mediapipe.tasks.python.metadata.metadata_writers),
so MediaPipe Tasks' ImageClassifier loads the file as it is:
  - general info: the model's name and description;
  - input: an RGB image; normalisation mean 0, std 1, because xcept's TFLite
    input already is pixels 0..255 (float32, or uint8 for int8) and Xception's
    scaling to [-1, 1] is inside the model; the int8 input's quantisation
    (scale 1, zero point 0) is read from the file itself;
  - output: the class probabilities (softmax, no score calibration) with the
    class names as the associated file labels.txt (TENSOR_AXIS_LABELS);
    the int8 output's quantisation (1/256 steps) is read from the file.
The file is rewritten in place through a temporary file and a rename.
Prints {"metadata": true, "labels": N} on success; "error: ..." and exit 4
on bad input, exit 5 when the writer rejects the model.
"""

import argparse
import json
import os
import sys


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--labels", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--description", required=True)
    return p.parse_args()


def fail(code, msg):
    print("error: " + msg, file=sys.stderr)
    sys.exit(code)


def main():
    args = parse_args()
    try:
        with open(args.model, "rb") as f:
            model = f.read()
        with open(args.labels, encoding="utf-8") as f:
            classes = [line.rstrip("\n") for line in f if line.strip()]
    except OSError as e:
        fail(4, f"{e.filename}: {e.strerror}")
    if not classes:
        fail(4, f"{args.labels}: no class names")
    from mediapipe.tasks.python.metadata.metadata_writers import metadata_writer

    try:
        writer = metadata_writer.MetadataWriter.create(bytearray(model))
        writer.add_general_info(args.name, args.description)
        writer.add_image_input(
            [0.0], [1.0],
            description="RGB image, pixels 0..255 (float32, or uint8 for int8), squash-resized to the model's size")
        writer.add_classification_output(
            metadata_writer.Labels().add(classes),
            description="Probability of each class (softmax), in labels.txt order")
        data, _ = writer.populate()
    except Exception as e:  # the writer's own message names what it rejects
        fail(5, f"{args.model}: MediaPipe's metadata writer failed: {e}")
    tmp = args.model + ".meta.tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, args.model)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    print(json.dumps({"metadata": True, "labels": len(classes)}))


if __name__ == "__main__":
    main()
