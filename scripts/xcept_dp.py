"""Data-parallel variants of the trainer's step signatures (issue 16).

Each dp_* signature is its single-process step with three more inputs,
group_size, group_key and instance_key, and one all-reduce inside it: the
task computes the gradients of the *sum* of its shard's weighted losses,
TensorFlow's collective runtime (CollectiveReduceV2 over the distributed
runtime's gRPC, or NCCL on GPUs) adds them, with the shard's loss sum, hit
count and size, across the group, and every task applies sum / global batch.
That is exactly the gradient of the single-process step on the whole global
batch (Keras's SUM_OVER_BATCH_SIZE: sum(w·l) / B), however unevenly the
global batch is split, an empty shard included; loss and accuracy come back
as the global batch's. The old signatures stay: a single-process run never
touches these. group_size 1 makes a dp step the plain step.

One collective per step: the gradients are flattened into one vector, so a
step needs one instance key (the caller's, fresh per collective).

dp_check all-reduces a digest of what each task is about to train (config,
model, checkpoint) with Max, as [d, -d]: every task learns the group's max
and min and refuses to train when they differ.
"""

import tensorflow as tf
import tf_keras as keras

import xcept_model as xm

# Inputs every dp signature adds after its step's own.
GROUP_INPUTS = ("group_size", "group_key", "instance_key")
DIGEST_WORDS = 16  # a SHA-256 as 16-bit words, exact in float64


def group_specs():
    return [tf.TensorSpec([], tf.int32, name=n) for n in GROUP_INPUTS]


def all_reduce(x, group_size, group_key, instance_key, merge_op="Add"):
    return tf.raw_ops.CollectiveReduceV2(
        input=x, group_size=group_size, group_key=group_key, instance_key=instance_key,
        ordering_token=[], merge_op=merge_op, final_op="Id", communication_hint="auto", timeout_seconds=0.0,
    )


def sum_loss(module, logits, labels, sample_weight, label_smoothing):
    """sum(w·l) of the shard: xcept_model.smoothed_crossentropy before its
    division by the batch (which an empty shard could not do)."""
    with tf.control_dependencies(module._check_labels(labels)):
        labels = tf.identity(labels)
    n = module._cfg.num_classes
    target = tf.one_hot(labels, n) * (1.0 - label_smoothing) + label_smoothing / n
    per_sample = tf.nn.softmax_cross_entropy_with_logits(labels=target, logits=tf.cast(logits, tf.float32))
    return tf.reduce_sum(per_sample * sample_weight)


class DataParallel:
    """The dp signatures of one trainer XceptModule."""

    def __init__(self, module):
        self.m = module

    def _step(self, optimizer, variables, logits_of, labels, sample_weight, learning_rate, label_smoothing,
              group_size, group_key, instance_key):
        m = self.m
        with tf.GradientTape() as tape:
            logits = logits_of()
            total = sum_loss(m, logits, labels, sample_weight, label_smoothing)
            target = m._scaled(optimizer, total)
        grads = tape.gradient(target, variables)
        if isinstance(optimizer, keras.mixed_precision.LossScaleOptimizer):
            grads = optimizer.get_unscaled_gradients(grads)
        grads = [tf.zeros_like(v) if g is None else tf.cast(tf.convert_to_tensor(g), tf.float32)
                 for g, v in zip(grads, variables)]
        hits = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), labels), tf.float32))
        size = tf.cast(tf.shape(labels)[0], tf.float32)
        flat = tf.concat([tf.reshape(g, [-1]) for g in grads] + [tf.stack([total, hits, size])], axis=0)
        summed = all_reduce(flat, group_size, group_key, instance_key)
        stats = summed[-3:]
        batch = tf.maximum(stats[2], 1.0)
        sizes = [int(v.shape.num_elements()) for v in variables]
        parts = tf.split(summed[:-3], sizes)
        mean = [tf.reshape(p, v.shape) / batch for p, v in zip(parts, variables)]
        optimizer.learning_rate.assign(learning_rate)
        optimizer.apply_gradients(zip(mean, variables))
        return {"loss": stats[0] / batch, "accuracy": stats[1] / batch}

    def dp_train_head_step(self, features, labels, sample_weight, learning_rate, label_smoothing, seed,
                           group_size, group_key, instance_key):
        m = self.m
        return self._step(m.head_optimizer, m.head_variables(), lambda: m._logits(features, seed), labels,
                          sample_weight, learning_rate, label_smoothing, group_size, group_key, instance_key)

    def dp_train_step(self, images, labels, sample_weight, learning_rate, label_smoothing, seed,
                      group_size, group_key, instance_key):
        m = self.m
        # The base is frozen: its features are computed outside the tape.
        features = m._pool(m._feature_maps(images))
        return self.dp_train_head_step(features, labels, sample_weight, learning_rate, label_smoothing, seed,
                                       group_size, group_key, instance_key)

    def dp_finetune_step(self, images, labels, sample_weight, learning_rate, label_smoothing, seed,
                         group_size, group_key, instance_key):
        m = self.m
        return self._step(m.finetune_optimizer, m.finetune_variables(),
                          lambda: m._logits(m._pool(m._trained_maps(images)), seed), labels,
                          sample_weight, learning_rate, label_smoothing, group_size, group_key, instance_key)

    def dp_check(self, digest, group_size, group_key, instance_key):
        top = all_reduce(tf.concat([digest, -digest], 0), group_size, group_key, instance_key, merge_op="Max")
        return {"max": top[:DIGEST_WORDS], "min": -top[DIGEST_WORDS:]}


def signatures(size, feature_dim):
    """Signature name → (DataParallel method, input specs), like
    xcept_model.trainer_signatures."""
    images = xm.image_spec(size)
    features = tf.TensorSpec([None, feature_dim], tf.float32, name="features")
    return {
        "dp_train_step": ("dp_train_step", xm.training_specs(images) + group_specs()),
        "dp_finetune_step": ("dp_finetune_step", xm.training_specs(images) + group_specs()),
        "dp_train_head_step": ("dp_train_head_step", xm.training_specs(features) + group_specs()),
        "dp_check": ("dp_check", [tf.TensorSpec([DIGEST_WORDS], tf.float64, name="digest")] + group_specs()),
    }


def concrete_signatures(module, size, feature_dim):
    """The dp signatures of module, traced, for tf.saved_model.save."""
    return xm.concrete_signatures(DataParallel(module), signatures(size, feature_dim))
