"""Tests of build_model.py: the saved signatures are the contract the Go
side runs through the C API, so they are checked as saved, by loading them.

Run: .venv/bin/python -m pytest scripts -q
"""

import io
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

import build_model  # noqa: E402
from conftest import scaled  # noqa: E402
import xcept_model as xm  # noqa: E402

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "build_model.py")
SIZE = 71  # Xception's minimum: the fastest model that is still Xception
CLASSES = ("cat", "dog", "fox")
N = len(CLASSES)
HEATMAP = 3  # block14's spatial size at 71 px
DROPOUT = 0.2
UNFREEZE = "block13"  # the shared model's; the --init-from model unfreezes block12
FEATURES = 728 * 3 + 2048  # pooled block4, block8, block12 and block14: the taps of --feature-blocks auto


def run_builder(*args, env=None, timeout=300):
    full_env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2", **(env or {}))
    return subprocess.run(
        [sys.executable, SCRIPT, *args], capture_output=True, text=True, env=full_env, timeout=scaled(timeout)
    )


def error_lines(proc):
    return [line for line in proc.stderr.splitlines() if line.startswith("error: ")]


def tiny_args(out, *extra):
    return ["--out", str(out), "--classes", ",".join(CLASSES), "--image-size", str(SIZE),
            "--weights", "none", "--dense-units", "32", *extra]


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """The one float32 model most tests share (dropout on, so that the seed input matters)."""
    out = tmp_path_factory.mktemp("build") / "model"
    started = time.monotonic()
    proc = run_builder(*tiny_args(out, "--dropout", str(DROPOUT), "--unfreeze-from", UNFREEZE))
    seconds = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    print(f"\ntiny model ({SIZE} px) built in {seconds:.1f} s", file=sys.stderr)
    return out, proc.stdout


@pytest.fixture()
def trainer(built):
    return tf.saved_model.load(str(built[0] / "trainer"))


def batch(n_per_class=2, seed=0):
    """A fixed, learnable batch: each class has its own brightness and stripes."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for c in range(N):
        for _ in range(n_per_class):
            img = rng.integers(0, 60, size=(SIZE, SIZE, 3)) + 60 * c
            img[:, :: 2 + c] += 60
            images.append(np.clip(img, 0, 255))
            labels.append(c)
    return tf.constant(np.array(images, np.uint8)), tf.constant(labels, tf.int32)


def step_inputs(images, labels, lr=1e-3, smoothing=0.1, seed=(1, 2), weights=None):
    b = int(labels.shape[0])
    return dict(
        images=images,
        labels=labels,
        sample_weight=tf.constant(weights if weights is not None else [1.0] * b, tf.float32),
        learning_rate=tf.constant(lr, tf.float32),
        label_smoothing=tf.constant(smoothing, tf.float32),
        seed=tf.constant(seed, tf.int64),
    )


def variable(fn, name):
    (v,) = [v for v in fn.variables if v.name == name + ":0"]
    return v


# --- the contract ----------------------------------------------------------

IMAGES = ("uint8", [-1, SIZE, SIZE, 3])
TRAIN_INPUTS = {
    "labels": ("int32", [-1]), "sample_weight": ("float32", [-1]), "learning_rate": ("float32", []),
    "label_smoothing": ("float32", []), "seed": ("int64", [2]),
}
GROUP_INPUTS = {"group_size": ("int32", []), "group_key": ("int32", []), "instance_key": ("int32", [])}
TRAIN_OUTPUTS = {"loss": ("float32", []), "accuracy": ("float32", [])}
PROBS = ("float32", [-1, N])
EXPECTED = {
    "trainer": {
        "train_step": ({"images": IMAGES, **TRAIN_INPUTS}, TRAIN_OUTPUTS),
        "finetune_step": ({"images": IMAGES, **TRAIN_INPUTS}, TRAIN_OUTPUTS),
        "train_head_step": ({"features": ("float32", [-1, FEATURES]), **TRAIN_INPUTS}, TRAIN_OUTPUTS),
        "eval_step": ({"images": IMAGES, "labels": ("int32", [-1])}, {"loss": ("float32", []), "probabilities": PROBS, "logits": PROBS}),
        "eval_head_step": (
            {"features": ("float32", [-1, FEATURES]), "labels": ("int32", [-1])},
            {"loss": ("float32", []), "probabilities": PROBS, "logits": PROBS},
        ),
        "dp_train_step": ({"images": IMAGES, **TRAIN_INPUTS, **GROUP_INPUTS}, TRAIN_OUTPUTS),
        "dp_finetune_step": ({"images": IMAGES, **TRAIN_INPUTS, **GROUP_INPUTS}, TRAIN_OUTPUTS),
        "dp_train_head_step": ({"features": ("float32", [-1, FEATURES]), **TRAIN_INPUTS, **GROUP_INPUTS}, TRAIN_OUTPUTS),
        "dp_check": ({"digest": ("float64", [16]), **GROUP_INPUTS}, {"max": ("float64", [16]), "min": ("float64", [16])}),
        "set_temperature": ({"temperature": ("float32", [])}, {"temperature": ("float32", [])}),
        "set_feature_mask": ({"mask": ("float32", [FEATURES])}, {"feature_mask": ("float32", [FEATURES])}),
        "predict": ({"images": IMAGES}, {"probabilities": PROBS}),
        "features": ({"images": IMAGES}, {"features": ("float32", [-1, FEATURES])}),
        "explain": (
            {"images": IMAGES, "class_index": ("int32", [-1])},
            {"heatmap": ("float32", [-1, HEATMAP, HEATMAP]), "probabilities": PROBS, "class_index": ("int32", [-1])},
        ),
    },
    "serving": {
        "serving_default": ({"image_bytes": ("string", [-1])}, {"probabilities": PROBS, "classes": ("string", [-1, N])}),
        "predict_images": ({"images": ("float32", [-1, SIZE, SIZE, 3])}, {"probabilities": PROBS}),
        "predict": ({"images": IMAGES}, {"probabilities": PROBS}),
    },
}


def as_pairs(specs):
    return {k: (s.dtype.name, [-1 if d is None else d for d in s.shape.as_list()]) for k, s in specs.items()}


@pytest.mark.parametrize("part", ["trainer", "serving"])
def test_loaded_signatures_match_the_contract(built, part):
    loaded = tf.saved_model.load(str(built[0] / part))
    assert sorted(loaded.signatures) == sorted(EXPECTED[part])
    for key, (inputs, outputs) in EXPECTED[part].items():
        fn = loaded.signatures[key]
        assert as_pairs(fn.structured_input_signature[1]) == inputs, key
        assert as_pairs(fn.structured_outputs) == outputs, key


def test_model_json_describes_the_build(built):
    out, stdout = built
    text = (out / "model.json").read_text()
    assert stdout == text, "stdout must be exactly model.json"
    meta = json.loads(text)
    assert text == json.dumps(meta, sort_keys=True, indent=2) + "\n"
    want = {
        "format_version": 1, "builder_version": build_model.BUILDER_VERSION, "classes": list(CLASSES), "num_classes": N,
        "image_size": SIZE, "weights": "none", "weights_sha256": None, "precision": "float32",
        "dense_units": 32, "dropout": DROPOUT, "unfreeze_from": UNFREEZE, "seed": 42, "feature_dim": FEATURES, "feature_blocks": list(xm.FEATURE_BLOCKS),
        "feature_choices": [["block14"], ["block4", "block8", "block12", "block14"]], "feature_widths": [728, 728, 728, 2048],
        "init_from": None,
        "blocks": [f"block{i}" for i in range(1, 15)],
        "tensorflow_version": tf.__version__, "keras_version": keras.__version__,
    }
    assert {k: meta[k] for k in want} == want
    # block13..block14: 2 + 2 separable convs (2 kernels each) + block13's residual conv;
    # head: 2 kernels + 2 biases.
    assert meta["trainable_variables"] == {"train_step": 4, "train_head_step": 4, "finetune_step": 4 * 2 + 1 + 4}
    for part, sigs in EXPECTED.items():
        for key, (inputs, outputs) in sigs.items():
            got = meta["signatures"][part][key]
            assert {k: (v["dtype"], v["shape"]) for k, v in got["inputs"].items()} == inputs
            assert {k: (v["dtype"], v["shape"]) for k, v in got["outputs"].items()} == outputs
    assert sorted(meta["signatures"]["trainer"]) == sorted(EXPECTED["trainer"])
    assert not list(out.parent.glob("model.tmp-*")), "the temporary folder must be gone"


# --- training -------------------------------------------------------------

def test_train_step_halves_the_loss_on_a_fixed_batch(trainer):
    """Measured with eval_step (no dropout, no smoothing): the training loss
    itself jumps with each step's dropout mask."""
    images, labels = batch()
    evaluate = lambda: float(trainer.signatures["eval_step"](images=images, labels=labels)["loss"])  # noqa: E731
    step = trainer.signatures["train_step"]
    before = evaluate()
    losses = [float(step(**step_inputs(images, labels, lr=3e-3, seed=(7, i)))["loss"]) for i in range(30)]
    after = evaluate()
    assert after <= before / 2, (before, after, losses)
    assert np.mean(losses[-5:]) < np.mean(losses[:5]), losses


def test_train_head_step_on_features_trains_the_same_head(built):
    """Two fresh copies: one takes train_step on images, the other
    train_head_step on the features signature's output. Same seed → the
    same loss and the same head afterwards."""
    a = tf.saved_model.load(str(built[0] / "trainer"))
    b = tf.saved_model.load(str(built[0] / "trainer"))
    images, labels = batch()
    inputs = step_inputs(images, labels, lr=1e-2, seed=(3, 4))
    for _ in range(2):
        out_a = a.signatures["train_step"](**inputs)
        features = b.signatures["features"](images=images)["features"]
        head_inputs = dict(inputs, features=features)
        del head_inputs["images"]
        out_b = b.signatures["train_head_step"](**head_inputs)
        np.testing.assert_allclose(out_a["loss"], out_b["loss"], rtol=1e-5)
    for name in ("fc/kernel", "logits/bias"):
        np.testing.assert_allclose(
            variable(a.signatures["train_step"], name).numpy(),
            variable(b.signatures["train_head_step"], name).numpy(), rtol=1e-5, atol=1e-7)


def test_train_step_leaves_the_base_alone(trainer):
    step = trainer.signatures["train_step"]
    base_kernel = variable(step, "block14_sepconv2/pointwise_kernel")
    before = base_kernel.numpy()
    step(**step_inputs(*batch(), lr=1e-2))
    np.testing.assert_array_equal(base_kernel.numpy(), before)


def test_dropout_follows_the_seed_input(trainer):
    images, labels = batch()
    step = trainer.signatures["train_step"]
    # learning_rate 0 keeps the weights, so only the seed changes between calls.
    loss = lambda seed: float(step(**step_inputs(images, labels, lr=0.0, seed=seed))["loss"])  # noqa: E731
    assert loss((5, 6)) == loss((5, 6))
    assert loss((5, 6)) != loss((5, 7))


def test_sample_weight_scales_the_loss_as_keras_reduces_it(trainer):
    images, labels = batch()
    step = trainer.signatures["train_step"]
    one = float(step(**step_inputs(images, labels, lr=0.0))["loss"])
    two = float(step(**step_inputs(images, labels, lr=0.0, weights=[2.0] * 6))["loss"])
    none = float(step(**step_inputs(images, labels, lr=0.0, weights=[0.0] * 6))["loss"])
    assert two == pytest.approx(2 * one, rel=1e-5)
    assert none == 0.0


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_loss_is_keras_categorical_crossentropy(smoothing):
    rng = np.random.default_rng(1)
    logits = tf.constant(rng.normal(size=(5, 4)), tf.float32)
    labels = tf.constant([0, 3, 1, 1, 2], tf.int32)
    weights = tf.constant([1.0, 0.5, 0.0, 2.0, 1.0], tf.float32)
    got = xm.smoothed_crossentropy(logits, labels, weights, tf.constant(smoothing), 4)
    keras_loss = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=smoothing)
    want = keras_loss(tf.one_hot(labels, 4), logits, sample_weight=weights)
    assert float(got) == pytest.approx(float(want), rel=1e-5)


def test_eval_step_loss_is_the_mean_crossentropy_of_its_probabilities(trainer):
    images, labels = batch()
    out = trainer.signatures["eval_step"](images=images, labels=labels)
    p = out["probabilities"].numpy()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
    want = -np.mean(np.log(p[np.arange(len(p)), labels.numpy()]))
    assert float(out["loss"]) == pytest.approx(want, rel=1e-4)


def test_eval_head_step_on_features_equals_eval_step(trainer):
    """The cached-feature path validates exactly as the image path does."""
    images, labels = batch()
    want = trainer.signatures["eval_step"](images=images, labels=labels)
    features = trainer.signatures["features"](images=images)["features"]
    got = trainer.signatures["eval_head_step"](features=features, labels=labels)
    assert float(got["loss"]) == pytest.approx(float(want["loss"]), rel=1e-5, abs=1e-5)
    np.testing.assert_allclose(got["probabilities"], want["probabilities"], rtol=1e-5, atol=1e-5)
    with pytest.raises(tf.errors.InvalidArgumentError):
        trainer.signatures["eval_head_step"](features=features, labels=tf.fill(labels.shape, N))


_instance_keys = itertools.count(1)


def group_of_one():
    """A collective group of this process alone. TensorFlow remembers every
    instance key's shape for the process's life: each collective takes a fresh one."""
    return dict(group_size=tf.constant(1), group_key=tf.constant(1), instance_key=tf.constant(next(_instance_keys)))


@pytest.mark.parametrize("step", ["train_step", "finetune_step", "train_head_step"])
def test_dp_step_of_a_group_of_one_is_the_plain_step(built, step):
    """xcept_dp: a dp step all-reduces the gradients of the shard's loss sum
    and divides by the global batch; alone in its group it must be the plain
    step (same loss, accuracy and weights), class weights and dropout included."""
    a = tf.saved_model.load(str(built[0] / "trainer"))
    b = tf.saved_model.load(str(built[0] / "trainer"))
    images, labels = batch()
    inputs = step_inputs(images, labels, lr=3e-3, weights=[0.5, 1.0, 2.0, 1.0, 1.5, 1.0])
    if step == "train_head_step":
        inputs["features"] = a.signatures["features"](images=images)["features"]
        del inputs["images"]
    for i in range(3):
        inputs["seed"] = tf.constant([7, i], tf.int64)
        plain = a.signatures[step](**inputs)
        dp = b.signatures["dp_" + step](**inputs, **group_of_one())
        np.testing.assert_allclose(float(dp["loss"]), float(plain["loss"]), rtol=1e-5)
        np.testing.assert_allclose(float(dp["accuracy"]), float(plain["accuracy"]), rtol=1e-6)
    # The rule of cmd/xcept's sameWeights (the cluster test): relative L2
    # difference at most 1e-5, and no value off by more than 1e-5 in the
    # head, 1e-4 in the base. An all-reduce of one rounds its sum in its own
    # order, and Adam divides each gradient by its running magnitude: an
    # element whose gradient is near zero moves by a step of about lr
    # whichever way its rounding falls (measured: 5 of block14's 3.1M values
    # off by up to 3.0e-5 after 3 fine-tuning steps at lr 3e-3, in a fresh
    # clone's suite; the same run elsewhere within 1e-5).
    for name, limit in (("fc/kernel", 1e-5), ("logits/kernel", 1e-5), ("block14_sepconv2/pointwise_kernel", 1e-4)):
        va = variable(a.signatures["finetune_step"], name).numpy().astype(np.float64)
        vb = variable(b.signatures["finetune_step"], name).numpy().astype(np.float64)
        worst = float(np.max(np.abs(vb - va)))
        rel = float(np.linalg.norm(vb - va) / max(np.linalg.norm(va), 1e-30))
        assert worst <= limit and rel <= 1e-5, f"{name}: off by up to {worst:.3g} (limit {limit}), relative L2 {rel:.3g} (limit 1e-5)"


def test_dp_check_returns_the_groups_max_and_min(trainer):
    digest = tf.constant(np.arange(16, dtype=np.float64) * 4099.0)
    out = trainer.signatures["dp_check"](digest=digest, **group_of_one())
    np.testing.assert_array_equal(out["max"].numpy(), digest.numpy())
    np.testing.assert_array_equal(out["min"].numpy(), digest.numpy())


def test_finetune_step_trains_only_the_unfrozen_blocks(trainer):
    step = trainer.signatures["finetune_step"]
    watched = {
        "unfrozen": "block13_sepconv1/pointwise_kernel",
        "residual": "conv2d_3/kernel",  # block13's shortcut conv, after block13's first layer
        "frozen": "block12_sepconv3/pointwise_kernel",
        "bn_gamma": "block13_sepconv1_bn/gamma",
        "bn_mean": "block13_sepconv1_bn/moving_mean",
        "bn_var": "block14_sepconv2_bn/moving_variance",
        "head": "logits/kernel",
    }
    before = {k: variable(step, name).numpy() for k, name in watched.items()}
    step(**step_inputs(*batch(), lr=1e-2))
    changed = {k: not np.array_equal(variable(step, watched[k]).numpy(), v) for k, v in before.items()}
    assert changed == {"unfrozen": True, "residual": True, "frozen": False, "bn_gamma": False,
                       "bn_mean": False, "bn_var": False, "head": True}


def test_explain_gives_normalised_heatmaps(trainer):
    images, _ = batch(n_per_class=1)
    predicted = np.argmax(trainer.signatures["predict"](images=images)["probabilities"].numpy(), axis=1)
    out = trainer.signatures["explain"](images=images, class_index=tf.constant([-1, 2, 0], tf.int32))
    heat = out["heatmap"].numpy()
    assert heat.shape == (3, HEATMAP, HEATMAP)
    assert heat.min() >= 0.0 and heat.max() <= 1.0
    for h in heat:
        assert h.max() == pytest.approx(1.0) or h.max() == 0.0
    assert out["class_index"].numpy().tolist() == [predicted[0], 2, 0]
    with pytest.raises(tf.errors.InvalidArgumentError):
        trainer.signatures["explain"](images=images, class_index=tf.constant([N, 0, 0], tf.int32))


# --- checkpoints: as the Go side will use them, through the SaverDef ------

class V1Model:
    """A SavedModel loaded the way the C API does (TF_LoadSessionFromSavedModel):
    a graph and a session, signatures run by their tensor names."""

    def __init__(self, directory):
        self.graph = tf.Graph()
        self.sess = tf.compat.v1.Session(graph=self.graph)
        with self.graph.as_default():
            self.meta = tf.compat.v1.saved_model.loader.load(self.sess, ["serve"], directory)

    def run(self, signature, **feeds):
        sig = self.meta.signature_def[signature]
        fetches = {k: v.name for k, v in sig.outputs.items()}
        return self.sess.run(fetches, {sig.inputs[k].name: v for k, v in feeds.items()})

    def save(self, prefix):
        saver = self.meta.saver_def
        return self.sess.run(saver.save_tensor_name, {saver.filename_tensor_name: prefix})

    def restore(self, prefix):
        saver = self.meta.saver_def
        self.sess.run(saver.restore_op_name, {saver.filename_tensor_name: prefix})


@pytest.fixture(scope="session")
def trained(built, tmp_path_factory):
    """The shared model after a train_step and a finetune_step (which change
    the head and the unfrozen base), saved through the trainer's SaverDef as
    the Go side saves runs. Returns the prefix and the trained predictions."""
    trainer = V1Model(str(built[0] / "trainer"))
    images, labels = batch()
    feeds = {k: v.numpy() for k, v in step_inputs(images, labels, lr=1e-2).items()}
    trainer.run("train_step", **feeds)
    trainer.run("finetune_step", **feeds)
    probabilities = trainer.run("predict", images=images.numpy())["probabilities"]
    prefix = str(tmp_path_factory.mktemp("ckpt") / "last")  # SaveV2 does not create folders: the caller must
    trainer.save(prefix)
    return prefix, probabilities


def png(pixels):
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def test_serving_restores_a_trainer_checkpoint(built, trained):
    prefix, want = trained
    images = batch()[0].numpy()
    serving = V1Model(str(built[0] / "serving"))
    untrained = serving.run("predict", images=images)["probabilities"]
    assert not np.allclose(untrained, want, atol=1e-6), "training must have changed the predictions"
    serving.restore(prefix)
    got = {
        "predict": serving.run("predict", images=images),
        "predict_images": serving.run("predict_images", images=images.astype(np.float32)),
        # Lossless and already the model's size: serving_default sees the same pixels.
        "serving_default": serving.run("serving_default", image_bytes=np.array([png(i) for i in images], object)),
    }
    for key, out in got.items():
        np.testing.assert_allclose(out["probabilities"], want, rtol=1e-5, atol=1e-7, err_msg=key)
    # The checkpoint is also an ordinary object-graph checkpoint.
    keys = tf.train.list_variables(prefix)
    assert any(k.startswith("model/") for k, _ in keys) and any(k.startswith("head_optimizer/") for k, _ in keys)


def test_export_is_a_copy_with_the_runs_weights_saved_in(built, trained, tmp_path):
    """What `xcept export --format savedmodel` does without Python: copy
    serving/, restore the run's checkpoint into a session on it, and save
    through its SaverDef over the copy's variables/. The copy must then be a
    complete model for TensorFlow Serving (loaded here as it loads it)."""
    prefix, want = trained
    export = tmp_path / "export" / "1"  # TF Serving wants a version folder
    shutil.copytree(built[0] / "serving", export)
    session = V1Model(str(built[0] / "serving"))
    session.restore(prefix)
    session.save(str(export / "variables" / "variables"))
    images = batch()[0].numpy()
    got = TF2Serving(str(export)).run("serving_default", image_bytes=np.array([png(i) for i in images], object))
    np.testing.assert_allclose(got["probabilities"], want, rtol=1e-5, atol=1e-7)
    assert (export / "assets" / "labels.txt").read_text(encoding="utf-8").split() == list(CLASSES)


def test_temperature_travels_from_the_trainer_checkpoint_into_serving(built, trained, tmp_path):
    """set_temperature on the trainer, saved through its SaverDef, makes the
    serving signatures answer softmax(logits / T) while eval_step stays
    uncalibrated: what the Go side does after fitting T on the validation split."""
    prefix, _ = trained
    images, labels = batch()
    trainer = V1Model(str(built[0] / "trainer"))
    trainer.restore(prefix)
    raw = trainer.run("eval_step", images=images.numpy(), labels=labels.numpy())
    np.testing.assert_allclose(raw["probabilities"], tf.nn.softmax(raw["logits"]).numpy(), rtol=1e-5, atol=1e-7)
    t = 2.5
    assert trainer.run("set_temperature", temperature=np.float32(t))["temperature"] == pytest.approx(t)
    calibrated_prefix = str(tmp_path / "calibrated")
    trainer.save(calibrated_prefix)
    want = tf.nn.softmax(raw["logits"] / t).numpy()
    np.testing.assert_allclose(trainer.run("predict", images=images.numpy())["probabilities"], want, rtol=1e-5, atol=1e-7)
    after = trainer.run("eval_step", images=images.numpy(), labels=labels.numpy())
    np.testing.assert_allclose(after["probabilities"], raw["probabilities"], rtol=1e-6, atol=1e-7)
    serving = V1Model(str(built[0] / "serving"))
    serving.restore(calibrated_prefix)
    np.testing.assert_allclose(serving.run("predict", images=images.numpy())["probabilities"], want, rtol=1e-5, atol=1e-7)
    got = serving.run("serving_default", image_bytes=np.array([png(i) for i in images.numpy()], object))
    np.testing.assert_allclose(got["probabilities"], want, rtol=1e-5, atol=1e-7)
    with pytest.raises(tf.errors.InvalidArgumentError):
        trainer.run("set_temperature", temperature=np.float32(0))


def test_feature_mask_travels_from_the_trainer_checkpoint_into_serving(built, tmp_path):
    """set_feature_mask on the trainer (all four taps instead of block14
    alone), saved through its SaverDef, makes the serving model answer what
    the trainer answers with that mask (the built weights: no saturation)."""
    images, _ = batch()
    trainer = V1Model(str(built[0] / "trainer"))
    block14 = trainer.run("predict", images=images.numpy())["probabilities"]
    mask = np.ones([FEATURES], np.float32)
    np.testing.assert_array_equal(trainer.run("set_feature_mask", mask=mask)["feature_mask"], mask)
    every = trainer.run("predict", images=images.numpy())["probabilities"]
    assert np.abs(every - block14).max() > 1e-4
    masked_prefix = str(tmp_path / "masked")
    trainer.save(masked_prefix)
    serving = V1Model(str(built[0] / "serving"))
    np.testing.assert_allclose(serving.run("predict", images=images.numpy())["probabilities"], block14, rtol=1e-5, atol=1e-7)
    serving.restore(masked_prefix)
    np.testing.assert_allclose(serving.run("predict", images=images.numpy())["probabilities"], every, rtol=1e-5, atol=1e-7)


# --- serving: complete for export and TF Serving ----------------------------

def picture(height=97, width=83, seed=5):
    """A photo-like picture that is not the model's size, so resizing matters."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 // width, y * 255 // height, (x + y) * 255 // (width + height)], axis=-1)
    return np.clip(base + rng.integers(-30, 30, size=base.shape), 0, 255).astype(np.uint8)


def encode(pixels, fmt, **options):
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, fmt, **options)
    return buf.getvalue()


def resized(data):
    """What serving_default must feed predict_images for an opaque image."""
    if data[:3] == b"\xff\xd8\xff":  # JPEG, decoded as Go decodes the training data
        image = tf.io.decode_jpeg(data, channels=3, fancy_upscaling=False, dct_method="INTEGER_ACCURATE")
    else:
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
    return tf.image.resize(image, [SIZE, SIZE], method="bilinear", antialias=True)


def over_white(rgba):
    """internal/imageio's alpha-over-white compositing, rounded as it rounds."""
    c, a = rgba[..., :3].astype(np.int64), rgba[..., 3:].astype(np.int64)
    return ((c * a + 255 * (255 - a) + 127) // 255).astype(np.float32)


class TF2Serving:
    """tf.saved_model.load, with the V1Model calling convention."""

    def __init__(self, directory):
        self.loaded = tf.saved_model.load(directory)

    def run(self, signature, **feeds):
        return {k: v.numpy() for k, v in self.loaded.signatures[signature](**feeds).items()}


@pytest.fixture(scope="module", params=["tf2", "v1"])
def serving(request, built):
    """The serving model as TensorFlow Serving or Python loads it (tf2) and
    as the C API does (v1)."""
    directory = str(built[0] / "serving")
    return TF2Serving(directory) if request.param == "tf2" else V1Model(directory)


def serve(model, images):
    return model.run("serving_default", image_bytes=np.array(images, object))


def test_serving_default_decodes_and_resizes_like_predict_images(serving):
    pixels = picture()
    formats = {
        "jpeg": encode(pixels, "JPEG", quality=90),
        "png": encode(pixels, "PNG"),
        "gif": encode(pixels, "GIF"),
        "bmp": encode(pixels, "BMP"),
        "webp": encode(pixels, "WEBP", quality=90),
    }
    out = serve(serving, list(formats.values()))
    want = serving.run("predict_images", images=np.stack([resized(d).numpy() for d in formats.values()]))
    np.testing.assert_allclose(out["probabilities"], want["probabilities"], rtol=1e-5, atol=1e-5)
    # JPEG and PNG of one picture differ only by JPEG's loss.
    np.testing.assert_allclose(out["probabilities"][0], out["probabilities"][1], atol=5e-2)
    assert out["classes"].tolist() == [[c.encode() for c in CLASSES]] * len(formats)


def test_serving_default_composites_transparency_over_white(serving):
    rgba = np.concatenate([picture(), np.zeros((97, 83, 1), np.uint8)], axis=-1)
    rgba[..., 3] = np.linspace(0, 255, 83, dtype=np.uint8)[None, :]  # transparent left, opaque right
    images = [encode(rgba, "PNG"), encode(rgba, "WEBP", lossless=True)]
    want_pixels = tf.image.resize(over_white(rgba), [SIZE, SIZE], method="bilinear", antialias=True)
    want = serving.run("predict_images", images=np.stack([want_pixels.numpy()] * 2))
    got = serve(serving, images)
    np.testing.assert_allclose(got["probabilities"], want["probabilities"], rtol=1e-5, atol=1e-5)
    dropped = serving.run("predict_images", images=resized(images[0]).numpy()[None])  # alpha thrown away
    assert not np.allclose(got["probabilities"][0], dropped["probabilities"][0], atol=1e-5)


def animated_webp():
    frames = [Image.fromarray(picture(seed=1)), Image.fromarray(picture(seed=2))]
    buf = io.BytesIO()
    frames[0].save(buf, "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    return buf.getvalue()


@pytest.mark.parametrize("name, data", [
    ("garbage", b"this is not an image"),
    ("empty", b""),
    ("truncated png", encode(picture(), "PNG")[:200]),
    ("animated webp", animated_webp()),  # TF's decoder would corrupt the heap on it
])
def test_serving_default_refuses_undecodable_bytes(serving, name, data):
    with pytest.raises(tf.errors.InvalidArgumentError):
        serve(serving, [encode(picture(), "PNG"), data])
    assert serve(serving, [encode(picture(), "PNG")])["probabilities"].shape == (1, N), "the model still serves"


def test_serving_carries_the_labels_asset(built):
    assets = built[0] / "serving" / "assets"
    assert os.listdir(assets) == ["labels.txt"]
    assert (assets / "labels.txt").read_text(encoding="utf-8") == "".join(c + "\n" for c in CLASSES)
    assert not (built[0] / "assets-src").exists() and sorted(os.listdir(built[0])) == ["model.json", "serving", "trainer"]


def test_saved_model_cli_lists_the_serving_signatures(built):
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    proc = subprocess.run([cli, "show", "--dir", str(built[0] / "serving"), "--all"], capture_output=True, text=True,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), timeout=scaled(120))
    assert proc.returncode == 0, proc.stderr
    listed = re.findall(r"^signature_def\['(\w+)'\]", proc.stdout, re.M)
    assert sorted(listed) == ["__saved_model_init_op", "predict", "predict_images", "serving_default"]
    assert "inputs['image_bytes']" in proc.stdout and "DT_STRING" in proc.stdout


# --- --init-from: a trainer rebuilt from a run's checkpoint -----------------

@pytest.fixture(scope="module")
def rebuilt(built, trained, tmp_path_factory):
    """The shared model's checkpoint rebuilt with block12 unfrozen. --weights
    imagenet with an empty Keras cache: nothing may be downloaded."""
    prefix, _ = trained
    out, keras_home = tmp_path_factory.mktemp("init") / "model", tmp_path_factory.mktemp("keras")
    args = tiny_args(out, "--dropout", str(DROPOUT), "--unfreeze-from", "block12", "--init-from", prefix)
    args[args.index("none")] = "imagenet"
    started = time.monotonic()
    proc = run_builder(*args, env={"KERAS_HOME": str(keras_home)})
    assert proc.returncode == 0, proc.stderr
    print(f"\n--init-from model ({SIZE} px) built in {time.monotonic() - started:.1f} s", file=sys.stderr)
    assert not (keras_home / "models").exists(), "ImageNet weights were fetched for nothing"
    return out, json.loads(proc.stdout)


def test_init_from_starts_from_the_checkpoints_model(rebuilt, trained):
    out, meta = rebuilt
    prefix, want = trained
    assert meta["init_from"] == prefix and meta["unfreeze_from"] == "block12" and meta["weights"] == "imagenet"
    assert meta["trainable_variables"]["finetune_step"] == 7 * 2 + 1 + 4
    images = batch()[0].numpy()
    for part in ("trainer", "serving"):
        got = V1Model(str(out / part)).run("predict", images=images)["probabilities"]
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6, err_msg=part)
    # Every model value is the checkpoint's; the optimizers start fresh.
    source, saved = tf.train.load_checkpoint(prefix), tf.train.load_checkpoint(str(out / "trainer" / "variables" / "variables"))
    model_keys = [k for k in source.get_variable_to_shape_map() if k.startswith("model/")]
    assert len(model_keys) > 200
    for key in model_keys:
        np.testing.assert_array_equal(saved.get_tensor(key), source.get_tensor(key), err_msg=key)
    iterations = "finetune_optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE"
    assert source.get_tensor(iterations) == 1 and saved.get_tensor(iterations) == 0


def test_init_from_finetunes_the_new_boundary(rebuilt):
    loaded = tf.saved_model.load(str(rebuilt[0] / "trainer"))  # holds the variables
    step = loaded.signatures["finetune_step"]
    watched = {"block12": "block12_sepconv1/pointwise_kernel", "block11": "block11_sepconv3/pointwise_kernel"}
    before = {k: variable(step, name).numpy() for k, name in watched.items()}
    step(**step_inputs(*batch(), lr=1e-2))
    changed = {k: not np.array_equal(variable(step, watched[k]).numpy(), v) for k, v in before.items()}
    assert changed == {"block12": True, "block11": False}


@pytest.mark.parametrize("name, edit, mentions", [
    ("missing", lambda args, prefix: args + ["--init-from", prefix + "-nope"], ["last-nope.index not found"]),
    ("other classes", lambda args, prefix: [*args[:3], "a,b,c,d", *args[4:], "--init-from", prefix],
     ["has 3 classes and 32 dense units", "this one has 4 classes and 32 dense units"]),
    ("other dense units", lambda args, prefix: [*args[:-1], "64", "--init-from", prefix],
     ["has 3 classes and 32 dense units", "this one has 3 classes and 64 dense units"]),
])
def test_init_from_refuses_what_does_not_fit(tmp_path, trained, name, edit, mentions):
    prefix, _ = trained
    proc = run_builder(*edit(tiny_args(tmp_path / "model"), prefix))
    assert proc.returncode == 2, proc.stderr
    (line,) = error_lines(proc)
    assert line.startswith("error: --init-from ") and prefix in line
    for m in mentions:
        assert m in line
    assert not (tmp_path / "model").exists()


# --- building from flags ------------------------------------------------------

def test_same_seed_builds_the_same_initial_weights():
    def weights(seed):
        cfg = xm.ModelConfig(classes=("a", "b"), image_size=SIZE, weights="none", dense_units=8, seed=seed)
        model = xm.build_keras_model(cfg)
        return [model.get_layer("xception").get_layer("block1_conv1").kernel.numpy(),
                model.get_layer("fc").kernel.numpy()]

    first, again, other = weights(1), weights(1), weights(2)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(first, other):
        assert not np.array_equal(a, b)


@pytest.mark.parametrize(
    "name, extra, code, mentions",
    [
        ("image size", ["--image-size", "64"], 2, "--image-size 64"),
        ("one class", ["--classes", "only"], 2, "--classes"),
        ("duplicate class", ["--classes", "a,b,a"], 2, "duplicate class name(s) a"),
        ("missing h5", ["--weights", "/nonexistent/w.h5"], 3, "/nonexistent/w.h5"),
        ("garbage h5", ["--weights", "GARBAGE"], 3, "not an HDF5 file"),
        ("unknown flag", ["--colour", "red"], 2, "--colour"),
        ("unknown layer", ["--unfreeze-from", "block99"], 2, "block1, block2"),
    ],
)
def test_bad_arguments_fail_with_one_error_line(tmp_path, name, extra, code, mentions):
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"this is not HDF5\n" * 10)
    extra = [str(garbage) if a == "GARBAGE" else a for a in extra]
    out = tmp_path / "model"
    proc = run_builder(*tiny_args(out), *extra)
    assert proc.returncode == code, proc.stderr
    (line,) = error_lines(proc)
    assert mentions in line
    assert proc.stdout == ""
    assert os.listdir(tmp_path) == ["garbage.h5"], "a failed build leaves nothing behind"


def test_existing_output_needs_overwrite(tmp_path):
    out = tmp_path / "model"
    out.mkdir()
    proc = run_builder(*tiny_args(out))
    assert proc.returncode == 2
    (line,) = error_lines(proc)
    assert "--overwrite" in line and str(out) in line


def test_labels_file_is_read_and_checked(tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("rose\n\ntulip\n  daisy \n")
    args = build_model.parse_args(["--out", str(tmp_path / "m"), "--labels", str(labels)])
    assert build_model.read_classes(args) == ("rose", "tulip", "daisy")
    missing = build_model.parse_args(["--out", "x", "--labels", str(tmp_path / "nope.txt")])
    with pytest.raises(build_model.UsageError, match="nope.txt"):
        build_model.read_classes(missing)


def test_publish_replaces_only_when_complete(tmp_path):
    out, tmp = tmp_path / "model", tmp_path / f"model.tmp-{os.getpid()}"
    out.mkdir()
    (out / "old").write_text("old")
    tmp.mkdir()
    (tmp / "new").write_text("new")
    build_model.publish(str(tmp), str(out))
    assert sorted(os.listdir(out)) == ["new"]
    assert sorted(os.listdir(tmp_path)) == ["model"]


def test_stale_temporary_folders_of_dead_builds_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f"model.tmp-{int(dead.stdout)}"
    live = tmp_path / f"model.tmp-{os.getpid()}"
    other = tmp_path / "other.tmp-1"
    for d in (stale, live, other):
        d.mkdir()
    build_model.remove_stale_tmp(str(tmp_path / "model"))
    assert sorted(os.listdir(tmp_path)) == sorted([live.name, other.name])


# --weights imagenet offline with an empty Keras cache fails fast with one
# line naming the way out and leaves no model: checked through xcept by the
# Go test TestImageNetWeightsOfflineIsOneLine (exit 5, the builder's line,
# under 90 s) and through make demo's probe by
# test_demo_weights.py::test_real_xcept_with_an_empty_keras_cache.


# A model built from --weights PATH.h5 holds the file's weights and records
# its path and SHA-256: checked on the real ImageNet .h5 by the Go tests
# TestBuildFromH5Weights (a kernel read with h5py equals the model's, the
# SHA-256) and TestRealWeightsFeaturesMatchKeras (the path), whose model the
# suite builds anyway; a builder run of its own here cost a model build.


def test_h5_of_another_model_is_refused(tmp_path):
    keras.backend.clear_session()
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    path = tmp_path / "dense.h5"
    other.save_weights(str(path))
    proc = run_builder("--out", str(tmp_path / "model"), "--classes", "a,b", "--image-size", str(SIZE),
                       "--weights", str(path))
    assert proc.returncode == 3, proc.stderr
    (line,) = error_lines(proc)
    assert str(path) in line
    assert not (tmp_path / "model").exists()


# mixed_bfloat16 training on a CPU is checked end to end by the Go test
# TestTrainMixedBFloat16 (cmd/xcept): the run builds its bfloat16 model,
# its feature cache (features), validation (eval_step) and calibration run
# through the C API, which reads their outputs as float32, and the loss
# falls over 4 epochs; a builder run of its own here cost a model build.


def test_mixed_float16_scales_the_loss_inside_the_tape():
    """In process, head only (float16 convolutions are slow on CPU): the scaled
    loss must be taken inside the tape, or there are no gradients at all."""
    cfg = xm.ModelConfig(classes=CLASSES, image_size=SIZE, weights="none", precision="mixed_float16", dense_units=8)
    try:
        module = xm.XceptModule(xm.build_keras_model(cfg), cfg, training=True)
        assert isinstance(module.head_optimizer, keras.mixed_precision.LossScaleOptimizer)
        step = tf.function(module.train_head_step)
        features = tf.constant(np.random.default_rng(0).uniform(size=(6, FEATURES)), tf.float32)
        labels = tf.constant([0, 0, 1, 1, 2, 2], tf.int32)
        inputs = {k: v for k, v in step_inputs(None, labels, lr=1e-2).items() if k != "images"}
        losses = [float(step(features=features, **inputs)["loss"]) for _ in range(10)]
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert losses[-1] < losses[0], losses


@pytest.mark.parametrize(
    "blocks, unfreeze, message",
    [
        (("block4", "block15"), "block3", "unknown block block15"),
        ((), "block3", "no blocks"),
        (("block8", "block4"), "block3", "shallowest first"),
        (("block4", "block4"), "block3", "list each block once"),
        (("block4", "block8"), "block11", "the base ends at block8"),
    ],
)
def test_feature_blocks_are_checked(blocks, unfreeze, message):
    with pytest.raises(xm.ConfigError, match=message):
        xm.check_feature_blocks(blocks, unfreeze)


def test_the_feature_mask_chooses_what_the_head_reads():
    """auto: the head starts on block14 alone (the middle taps' features do
    not move the logits, and their fc weights get no update); with the mask
    of all taps they do. A mask that is not 0/1 is refused."""
    cfg = xm.ModelConfig(classes=CLASSES, image_size=SIZE, weights="none", dense_units=8)
    assert cfg.feature_choices == xm.FEATURE_CHOICES
    module = xm.XceptModule(xm.build_keras_model(cfg), cfg, training=True)
    rng = np.random.default_rng(1)
    features = rng.uniform(size=(6, FEATURES)).astype(np.float32)
    other = features.copy()
    middle = FEATURES - 2048
    other[:, :middle] = rng.uniform(size=(6, middle))
    labels = tf.constant([0, 0, 1, 1, 2, 2], tf.int32)
    logits = lambda f: module.eval_head_step(tf.constant(f), labels)["logits"].numpy()  # noqa: E731
    np.testing.assert_array_equal(logits(features), logits(other))
    kernel = module.model.get_layer("fc").kernel
    before = kernel.numpy()
    inputs = {k: v for k, v in step_inputs(None, labels, lr=1e-2).items() if k != "images"}
    module.train_head_step(tf.constant(features), **inputs)
    after = kernel.numpy()
    np.testing.assert_array_equal(after[:middle], before[:middle])
    assert not np.array_equal(after[middle:], before[middle:])
    module.set_feature_mask(tf.ones([FEATURES]))
    assert not np.array_equal(logits(features), logits(other))
    with pytest.raises(tf.errors.InvalidArgumentError, match="0 or 1"):
        module.set_feature_mask(tf.fill([FEATURES], 0.5))
    explicit = xm.ModelConfig(classes=CLASSES, image_size=SIZE, weights="none", feature_blocks=("block4", "block14"))
    assert explicit.feature_choices == (("block4", "block14"),)


def test_block_ends_are_the_residual_adds():
    """Block N of 2..13 ends at its residual Add (add_{N-2} in a fresh Keras
    session), block1 and block14 at their last activation; channels as stated."""
    keras.backend.clear_session()
    base = keras.applications.Xception(include_top=False, weights=None, input_shape=(SIZE, SIZE, 3))
    want = {"block1": "block1_conv2_act", "block14": "block14_sepconv2_act"}
    want.update({f"block{i}": "add" if i == 2 else f"add_{i - 2}" for i in range(2, 14)})
    for block in xm.BLOCKS:
        layer = xm.block_end(base, block)
        assert layer.name == want[block], block
        assert layer.output.shape[-1] == xm.BLOCK_CHANNELS[block], block


def test_a_shallow_feature_block_cuts_the_base():
    """--feature-blocks block4: the base ends at block4 (blocks 5–14 are not
    computed at all), the head reads 728 features and Grad-CAM sees block4."""
    cfg = xm.ModelConfig(classes=CLASSES, image_size=SIZE, weights="none", dense_units=8,
                         feature_blocks=("block3", "block4"), unfreeze_from="block4")
    module = xm.XceptModule(xm.build_keras_model(cfg), cfg, training=True)
    assert module.base.layers[-1].name == "add_2"
    assert not any(layer.name.startswith("block5_") for layer in module.base.layers)
    images = tf.zeros([2, SIZE, SIZE, 3], tf.uint8)
    assert module.features(images)["features"].shape == (2, 256 + 728)
    heat = module.explain(images, tf.constant([-1, 0]))["heatmap"]
    assert heat.shape == (2, 5, 5)  # block4's grid at 71 px
