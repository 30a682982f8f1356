"""Cross-check xcept's Go tf.Example codec against TensorFlow itself.

usage: crosscheck.py EXAMPLES.json GO.tfrecord PY.tfrecord

EXAMPLES.json describes examples as a list of {key: [kind, values]}, kind one
of "bytes" (values hex), "float" (values as uint32 bit patterns, so NaN and
-0 survive JSON) or "int64". GO.tfrecord holds the same examples serialized
by the Go code. This script checks that
  - tf.io.parse_single_example reads each Go example to the described values,
  - tf.train.Example parses it to the same message, and Go's bytes equal
    protobuf's deterministic serialization of it,
then writes the examples with tf.train.Example and tf.io.TFRecordWriter to
PY.tfrecord for the Go side to read. Run by tfexample_test.go.
"""
import json
import sys

import numpy as np
import tensorflow as tf

DTYPES = {"bytes": tf.string, "float": tf.float32, "int64": tf.int64}


def to_python(kind, values):
    if kind == "bytes":
        return [bytes.fromhex(v) for v in values]
    if kind == "float":
        return np.array(values, dtype=np.uint32).view(np.float32).tolist()
    return [int(v) for v in values]


def to_feature(kind, values):
    v = to_python(kind, values)
    if kind == "bytes":
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=v))
    if kind == "float":
        return tf.train.Feature(float_list=tf.train.FloatList(value=v))
    return tf.train.Feature(int64_list=tf.train.Int64List(value=v))


def to_example(desc):
    return tf.train.Example(features=tf.train.Features(
        feature={k: to_feature(kind, vals) for k, (kind, vals) in desc.items()}))


def comparable(kind, values):
    """Values in a form where equal means bit-identical (NaN == NaN)."""
    if kind == "float":
        return np.asarray(values, dtype=np.float32).view(np.uint32).tolist()
    if kind == "bytes":
        return [bytes(v) for v in values]
    return [int(v) for v in values]


def check(i, desc, serialized):
    where = f"example {i}"
    spec = {k: tf.io.VarLenFeature(DTYPES[kind]) for k, (kind, _) in desc.items()}
    parsed = tf.io.parse_single_example(serialized, spec)
    for k, (kind, vals) in desc.items():
        got = comparable(kind, parsed[k].values.numpy().tolist())
        want = comparable(kind, to_python(kind, vals))
        if got != want:
            sys.exit(f"error: {where}: parse_single_example read {k!r} as {got!r}, want {want!r}")
    msg = tf.train.Example.FromString(serialized)
    for k, (kind, vals) in desc.items():
        f = msg.features.feature[k]
        which = f.WhichOneof("kind")
        if which != kind + "_list":
            sys.exit(f"error: {where}: feature {k!r} is {which}, want {kind}_list")
        got = comparable(kind, getattr(f, which).value)
        if got != comparable(kind, to_python(kind, vals)):
            sys.exit(f"error: {where}: tf.train.Example read {k!r} as {got!r}")
    if set(msg.features.feature) != set(desc):
        sys.exit(f"error: {where}: keys {sorted(msg.features.feature)}, want {sorted(desc)}")
    if msg.SerializeToString(deterministic=True) != serialized:
        sys.exit(f"error: {where}: Go's bytes differ from protobuf's deterministic serialization")


def main(examples_json, go_path, py_path):
    with open(examples_json) as f:
        descs = json.load(f)
    records = [r.numpy() for r in tf.data.TFRecordDataset(go_path)]
    if len(records) != len(descs):
        sys.exit(f"error: {go_path}: {len(records)} records, want {len(descs)}")
    for i, (desc, rec) in enumerate(zip(descs, records)):
        check(i, desc, rec)
    with tf.io.TFRecordWriter(py_path) as writer:
        for desc in descs:
            writer.write(to_example(desc).SerializeToString())


if __name__ == "__main__":
    main(*sys.argv[1:])
