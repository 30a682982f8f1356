"""Read xcept datasets with TensorFlow's own tf.data, as a Keras user would.

usage: read_tfrecords.py DATASET...
For every record of every split, prints one JSON line: the dataset, split,
the parsed standard features, the decoded image's shape and its mean value.
"""
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf  # noqa: E402

SPEC = {
    "image/encoded": tf.io.FixedLenFeature([], tf.string),
    "image/format": tf.io.FixedLenFeature([], tf.string),
    "image/class/label": tf.io.FixedLenFeature([], tf.int64),
    "image/class/text": tf.io.FixedLenFeature([], tf.string),
    "image/filename": tf.io.FixedLenFeature([], tf.string),
    "image/height": tf.io.FixedLenFeature([], tf.int64),
    "image/width": tf.io.FixedLenFeature([], tf.int64),
}


def parse(record, size):
    ex = tf.io.parse_single_example(record, SPEC)
    image = tf.io.decode_image(ex["image/encoded"], channels=3, expand_animations=False)
    image = tf.ensure_shape(image, [size, size, 3])  # fails unless every image has the configured size
    return image, ex


def main(datasets):
    for ds in datasets:
        with open(os.path.join(ds, "manifest.json")) as f:
            manifest = json.load(f)
        size = manifest["image"]["size"]
        for split in manifest["splits"]:
            files = [os.path.join(ds, s["file"]) for s in split["shards"]]
            if not files:
                continue
            data = tf.data.TFRecordDataset(files).map(lambda r: parse(r, size))
            for image, ex in data:
                print(json.dumps({
                    "dataset": ds,
                    "split": split["name"],
                    "filename": ex["image/filename"].numpy().decode(),
                    "label": int(ex["image/class/label"]),
                    "text": ex["image/class/text"].numpy().decode(),
                    "format": ex["image/format"].numpy().decode(),
                    "height": int(ex["image/height"]),
                    "width": int(ex["image/width"]),
                    "shape": image.shape.as_list(),
                    "mean": float(tf.reduce_mean(tf.cast(image, tf.float32))),
                }))


if __name__ == "__main__":
    main(sys.argv[1:])
