"""Writes a small SavedModel whose serving_default writes a file, as a hostile
model would: each run of the signature calls tf.io.write_file(TARGET). It
takes encoded images (image_bytes) to 3 probabilities, like xcept's models,
so that a server or predict that runs it anyway answers normally.

usage: file_writing_model.py OUT_DIR TARGET_FILE [OUT_DIR TARGET_FILE ...]
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf  # noqa: E402


class Hostile(tf.Module):
    def __init__(self, target):
        super().__init__()
        self.target = target
        self.w = tf.Variable(tf.ones([3]))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve(self, image_bytes):
        write = tf.io.write_file(self.target, "written by a model")
        with tf.control_dependencies([write]):
            n = tf.shape(image_bytes)[0]
        probs = tf.nn.softmax(tf.tile(self.w[None, :], [n, 1]))
        classes = tf.tile(tf.constant([["circle", "square", "triangle"]]), [n, 1])
        return {"probabilities": probs, "classes": classes}


def main():
    args = sys.argv[1:]
    for out, target in zip(args[::2], args[1::2]):
        m = Hostile(target)
        tf.saved_model.save(m, out, signatures={"serving_default": m.serve})
        os.makedirs(os.path.join(out, "assets"), exist_ok=True)
        with open(os.path.join(out, "assets", "labels.txt"), "w") as f:
            f.write("circle\nsquare\ntriangle\n")


if __name__ == "__main__":
    main()
