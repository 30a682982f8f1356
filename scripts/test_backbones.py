"""Tests of the backbones (model.arch, scripts/archs.json): for every
architecture, the trainer's features are tf_keras.applications' own pooled
base output, with its own preprocessing, for the same weights; the table's
blocks, taps and widths are the built model's; bad names fail with one line
that lists what is valid; the optimizers build and resume.

Run: TF_USE_LEGACY_KERAS=1 .venv/bin/python -m pytest -q scripts/test_backbones.py
"""

import functools
import os
import subprocess
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

import backbones  # noqa: E402
from conftest import scaled  # noqa: E402
import xcept_model as xm  # noqa: E402

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "build_model.py")
CLASSES = ("a", "b", "c")
# The preprocess_input of each family, as tf_keras.applications documents
# it: the parity reference applies it itself (MobileNetV3's and
# EfficientNetV2's are the identity: their models hold the scaling).
PREPROCESS = {
    "xception": keras.applications.xception.preprocess_input,
    "mobilenet_v2": keras.applications.mobilenet_v2.preprocess_input,
    "mobilenet_v3_small": keras.applications.mobilenet_v3.preprocess_input,
    "mobilenet_v3_large": keras.applications.mobilenet_v3.preprocess_input,
    "efficientnetv2_b0": keras.applications.efficientnet_v2.preprocess_input,
    "efficientnetv2_b1": keras.applications.efficientnet_v2.preprocess_input,
    "efficientnetv2_b2": keras.applications.efficientnet_v2.preprocess_input,
    "efficientnetv2_b3": keras.applications.efficientnet_v2.preprocess_input,
    "resnet50v2": keras.applications.resnet_v2.preprocess_input,
}


def size_of(arch):
    return max(backbones.get(arch).min_image_size, 64)


def tiny_cfg(arch, **kw):
    return xm.ModelConfig(classes=CLASSES, image_size=size_of(arch), weights="none", dense_units=8, arch=arch, **kw)


@functools.cache
def reference_base(arch):
    """tf_keras.applications' notop model of arch at its test size, built once
    per session: the table test reads only its structure, and the parity
    test sets all its weights before each use. Built in a fresh session,
    as the table test built its own."""
    keras.backend.clear_session()
    return backbones.get(arch).build(keras, (size_of(arch), size_of(arch), 3))


def images(size, n=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, size, size, 3)).astype(np.uint8)


def test_every_arch_has_a_reference():
    assert set(PREPROCESS) == set(backbones.names())


@pytest.mark.parametrize("arch", backbones.names())
def test_features_equal_keras_applications(arch):
    """The trainer's features (the last tap alone) are GlobalAveragePooling
    of tf_keras.applications' notop model on its preprocess_input, for the
    same (random, BatchNorm-calibrated, seeded) weights, to 1e-4."""
    a = backbones.get(arch)
    cfg = tiny_cfg(arch, feature_blocks=(a.last_tap,))
    model = xm.build_keras_model(cfg)
    module = xm.XceptModule(model, cfg, training=False)
    ours = module.features(tf.constant(images(cfg.image_size)))["features"].numpy()
    base_weights = module.base.get_weights()
    reference = reference_base(arch)
    reference.set_weights(base_weights)
    x = PREPROCESS[arch](images(cfg.image_size).astype(np.float32))
    theirs = keras.layers.GlobalAveragePooling2D()(reference(x, training=False)).numpy()
    assert ours.shape == theirs.shape == (3, a.widths[-1])
    scale = max(1.0, float(np.abs(theirs).max()))
    np.testing.assert_allclose(ours / scale, theirs / scale, atol=1e-4, rtol=0)
    assert np.abs(theirs).max() > 1e-3, "features vanish: the BatchNorm calibration did not take"


@pytest.mark.parametrize("arch", backbones.names())
def test_table_matches_the_built_base(arch):
    """Every tap exists with its width, every block has layers, the default
    unfreeze boundary is a block, and the auto taps end at the deepest."""
    a = backbones.get(arch)
    base = reference_base(arch)
    for tap, width in zip(a.taps, a.widths):
        assert xm.block_end(base, tap, a).output.shape[-1] == width, tap
    names = [layer.name for layer in base.layers]
    starts = [xm.block_start(base, b, a) for b in a.blocks]
    assert starts == sorted(starts) and len(set(starts)) == len(starts), "blocks out of order or overlapping"
    for b in a.blocks:
        assert any(backbones.in_block(b, n) for n in names), b
    assert a.unfreeze_from in a.blocks
    assert a.middle[-1] == a.last_tap and set(a.middle) <= set(a.taps)
    assert xm.block_end(base, a.last_tap, a) is base.layers[-1]


def test_in_block_does_not_take_a_longer_name():
    assert backbones.in_block("block1", "block1_conv1")
    assert not backbones.in_block("block1", "block11_sepconv1")
    assert not backbones.in_block("expanded_conv", "expanded_conv_1/expand")
    assert backbones.in_block("expanded_conv", "expanded_conv/depthwise")
    assert not backbones.in_block("block_1", "block_10_expand")
    assert backbones.in_block("block6", "block6a_expand_conv")


def test_xception_is_unchanged():
    """The default architecture's config is what it was before --arch."""
    cfg = xm.ModelConfig(classes=CLASSES)
    assert (cfg.arch, cfg.image_size, cfg.unfreeze_from, cfg.base_name) == ("xception", 299, "block11", "xception")
    assert cfg.feature_blocks == ("block4", "block8", "block12", "block14")
    assert cfg.feature_choices == (("block14",), ("block4", "block8", "block12", "block14"))
    assert xm.feature_dim_of(cfg.feature_blocks) == 728 * 3 + 2048
    assert (cfg.head_optimizer, cfg.finetune_optimizer) == ("adam", "adam")


def run_builder(tmp_path, *extra):
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
    args = ["--out", str(tmp_path / "m"), "--classes", "a,b", "--weights", "none", "--dense-units", "4", *extra]
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True, env=env, timeout=scaled(300))


@pytest.mark.parametrize(
    "extra, mentions",
    [
        (["--arch", "vgg16"], "--arch vgg16: unknown architecture; use one of xception, mobilenet_v2, mobilenet_v3_small"),
        (["--arch", "mobilenet_v2", "--image-size", "64", "--unfreeze-from", "block11"],
         "no such block or layer in MobileNetV2; use one of expanded_conv, block_1,"),
        (["--arch", "resnet50v2", "--image-size", "64", "--feature-blocks", "block14"],
         "unknown block block14; use auto, or blocks of ResNet50V2 in order, from conv2, conv3, conv4, top"),
        (["--arch", "mobilenet_v3_small", "--image-size", "16"], "--image-size 16: MobileNetV3Small needs at least 32"),
        (["--image-size", "71", "--head-optimizer", "rmsprop"], "unknown optimizer rmsprop; use one of adam, adamw, sgd"),
        (["--image-size", "71", "--finetune-optimizer", "sgd:beta=1"], "sgd has no parameter beta; its parameters: momentum, nesterov"),
    ],
)
def test_bad_names_exit_2_listing_what_is_valid(tmp_path, extra, mentions):
    proc = run_builder(tmp_path, *extra)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert proc.returncode == 2, proc.stderr
    assert len(errors) == 1 and mentions in errors[0], proc.stderr


@pytest.mark.parametrize(
    "spec, want",
    [
        ("adam", ("adam", {})),
        ("adamw", ("adamw", {"weight_decay": 0.004})),
        ("adamw:weight_decay=0.01", ("adamw", {"weight_decay": 0.01})),
        ("sgd", ("sgd", {"momentum": 0.9, "nesterov": False})),
        ("sgd:momentum=0.5,nesterov=true", ("sgd", {"momentum": 0.5, "nesterov": True})),
    ],
)
def test_optimizer_specs(spec, want):
    assert xm.parse_optimizer(spec) == want
    assert xm.parse_optimizer(xm.optimizer_spec(*want)) == want


@pytest.mark.parametrize("spec, slots", [("adam", 2), ("adamw:weight_decay=0.1", 2), ("sgd:momentum=0.9,nesterov=true", 1)])
def test_optimizer_state_saves_and_restores_exactly(tmp_path, spec, slots):
    """Two steps, a checkpoint, two more steps equal two steps, a restore of
    the checkpoint into a fresh module and the same two steps: every
    optimizer's state (slots, iterations) travels in the checkpoint."""
    a = backbones.get("mobilenet_v3_small")
    cfg = tiny_cfg(a.name, feature_blocks=(a.last_tap,), head_optimizer=spec)
    feats = tf.constant(np.random.default_rng(1).normal(size=(6, a.widths[-1])).astype(np.float32))
    labels = tf.constant([0, 1, 2, 0, 1, 2], tf.int32)
    args = (feats, labels, tf.ones([6]), tf.constant(1e-2), tf.constant(0.0), tf.constant([1, 2], tf.int64))

    def fresh():
        m = xm.XceptModule(xm.build_keras_model(cfg), cfg, training=True)
        return m, tf.function(m.train_head_step, autograph=False)

    m1, step1 = fresh()
    assert len(xm._inner(m1.head_optimizer).variables()) == 1 + slots * len(m1.head_variables())
    for _ in range(2):
        step1(*args)
    prefix = tf.train.Checkpoint(module=m1).write(str(tmp_path / "ckpt"))
    losses1 = [float(step1(*args)["loss"]) for _ in range(2)]
    weights1 = [v.numpy() for v in m1.head_variables()]
    m2, step2 = fresh()
    step2(*args)  # builds the same graph; the restore overwrites what it did
    tf.train.Checkpoint(module=m2).read(prefix).assert_existing_objects_matched()
    losses2 = [float(step2(*args)["loss"]) for _ in range(2)]
    assert losses1 == losses2
    for w1, v2 in zip(weights1, m2.head_variables()):
        np.testing.assert_array_equal(w1, v2.numpy())


def test_weight_decay_shrinks_the_kernel_but_not_the_bias():
    a = backbones.get("mobilenet_v3_small")
    cfg = tiny_cfg(a.name, feature_blocks=(a.last_tap,), head_optimizer="adamw:weight_decay=0.5")
    m = xm.XceptModule(xm.build_keras_model(cfg), cfg, training=True)
    fc = m.model.get_layer("fc")
    before = [v.numpy().copy() for v in (fc.kernel, fc.bias)]
    zeros = tf.zeros([2, a.widths[-1]])  # zero features: the kernel's gradient is 0, Adam's step too
    m.train_head_step(zeros, tf.constant([0, 1]), tf.ones([2]), tf.constant(0.1), tf.constant(0.0), tf.constant([1, 2], tf.int64))
    np.testing.assert_allclose(fc.kernel.numpy(), before[0] * (1 - 0.1 * 0.5), rtol=1e-5)
    opt = xm._inner(m.head_optimizer)
    assert opt._use_weight_decay(fc.kernel) and not opt._use_weight_decay(fc.bias)


def test_a_checkpoint_of_another_arch_is_refused(tmp_path):
    a = backbones.get("mobilenet_v2")
    cfg = tiny_cfg(a.name, feature_blocks=(a.last_tap,))
    m = xm.XceptModule(xm.build_keras_model(cfg), cfg, training=False)
    prefix = tf.train.Checkpoint(model=m.model).write(str(tmp_path / "ckpt"))
    shapes = xm.checkpoint_model_shapes(prefix)
    other = xm.ModelConfig(classes=CLASSES, image_size=64, weights="none", dense_units=8, arch="resnet50v2", init_from=prefix)
    with pytest.raises(xm.ConfigError, match="holds a mobilenet_v2 model but this model is resnet50v2"):
        xm.check_checkpoint_arch(other, shapes)
    xm.check_checkpoint_arch(cfg, shapes)  # its own: no error
