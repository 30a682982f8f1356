"""Writes the small SavedModel the graph package's fast tests load.

Usage: make_model.py OUT_DIR. A tf.Module (no Keras) with one variable per
dtype family, so the binding's tensors, signatures, runs and checkpoints are
tested in seconds, independently of the Xception builder.
"""
import sys

import tensorflow as tf


class Toy(tf.Module):
    def __init__(self):
        super().__init__()
        self.w = tf.Variable([[1.0, 2.0], [3.0, 4.0]], name="w")
        self.count = tf.Variable(0, dtype=tf.int64, name="count")
        self.lin = tf.Variable([0.5, -0.25], name="lin")

    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
    def affine(self, x):
        return {"y": tf.matmul(x, self.w)}

    @tf.function(input_signature=[tf.TensorSpec([], tf.float32, name="delta")])
    def bump(self, delta):
        self.w.assign_add(tf.fill([2, 2], delta))
        self.count.assign_add(1)
        return {"count": self.count.read_value()}

    @tf.function(input_signature=[
        tf.TensorSpec(None, tf.string, name="s"),
        tf.TensorSpec(None, tf.int32, name="i32"),
        tf.TensorSpec(None, tf.int64, name="i64"),
        tf.TensorSpec(None, tf.uint8, name="u8"),
        tf.TensorSpec(None, tf.bool, name="b"),
        tf.TensorSpec(None, tf.float16, name="f16"),
        tf.TensorSpec(None, tf.bfloat16, name="bf16"),
        tf.TensorSpec(None, tf.float64, name="f64"),
    ])
    def echo(self, s, i32, i64, u8, b, f16, bf16, f64):
        # Identity per dtype, plus a string op to prove TF read our TF_TStrings.
        return {"s": s, "s_len": tf.strings.length(s), "i32": i32, "i64": i64, "u8": u8,
                "b": b, "f16": f16, "bf16": bf16, "f64": f64}

    @tf.function(input_signature=[
        tf.TensorSpec([None], tf.float32, name="x"),
        tf.TensorSpec([], tf.int32, name="group_size"),
        tf.TensorSpec([], tf.int32, name="group_key"),
        tf.TensorSpec([], tf.int32, name="instance_key"),
    ])
    def allreduce(self, x, group_size, group_key, instance_key):
        # The mean of x over the tasks of a collective group, by TensorFlow's
        # collective runtime (server_test.go); group_size 1 is the identity.
        y = tf.raw_ops.CollectiveReduceV2(
            input=x, group_size=group_size, group_key=group_key, instance_key=instance_key,
            ordering_token=[], merge_op="Add", final_op="Div", communication_hint="auto",
            timeout_seconds=0.0)
        return {"y": y}

    @tf.function(input_signature=[
        tf.TensorSpec([None, 2], tf.float32, name="x"),
        tf.TensorSpec([None], tf.float32, name="y"),
        tf.TensorSpec([], tf.float32, name="lr"),
        tf.TensorSpec([], tf.int32, name="group_size"),
        tf.TensorSpec([], tf.int32, name="group_key"),
        tf.TensorSpec([], tf.int32, name="instance_key"),
    ])
    def train_step(self, x, y, lr, group_size, group_key, instance_key):
        # One SGD step of least squares on lin whose gradient is the mean over
        # the group's tasks (each with an equal shard of the global batch), as
        # a data-parallel trainer does; with group_size 1 a plain step.
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(tf.linalg.matvec(x, self.lin) - y))
        grad = tape.gradient(loss, self.lin)

        def mean(t, key):
            return tf.raw_ops.CollectiveReduceV2(
                input=t, group_size=group_size, group_key=group_key, instance_key=key,
                ordering_token=[], merge_op="Add", final_op="Div", communication_hint="auto",
                timeout_seconds=0.0)
        grad = mean(grad, 2 * instance_key)
        loss = mean(loss, 2 * instance_key + 1)
        with tf.control_dependencies([self.lin.assign_sub(lr * grad)]):
            return {"loss": tf.identity(loss), "lin": self.lin.read_value()}


toy = Toy()
tf.saved_model.save(toy, sys.argv[1], signatures={
    "affine": toy.affine, "bump": toy.bump, "echo": toy.echo,
    "allreduce": toy.allreduce, "train_step": toy.train_step})
