"""Cross-check xcept's Go TFRecord framing against TensorFlow itself.

usage: crosscheck.py RECORDS.json GO.tfrecord PY.tfrecord

RECORDS.json is a list of hex strings. Reads GO.tfrecord (written by the Go
Writer) with tf.data.TFRecordDataset and checks it holds exactly those
records, then writes the same records to PY.tfrecord with
tf.io.TFRecordWriter for the Go Reader to check. Run by tfrecord_test.go.
"""
import json
import sys

import tensorflow as tf


def main(records_json, go_path, py_path):
    with open(records_json) as f:
        want = [bytes.fromhex(h) for h in json.load(f)]
    got = [r.numpy() for r in tf.data.TFRecordDataset(go_path)]
    if len(got) != len(want):
        sys.exit(f"error: {go_path}: TensorFlow read {len(got)} records, want {len(want)}")
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            sys.exit(f"error: {go_path}: record {i} differs ({len(g)} bytes read, {len(w)} written)")
    with tf.io.TFRecordWriter(py_path) as writer:
        for r in want:
            writer.write(r)


if __name__ == "__main__":
    main(*sys.argv[1:])
