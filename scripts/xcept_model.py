"""The xcept model: a Keras backbone (model.arch: Xception by default, the
others from scripts/archs.json through backbones.py) + a classification head,
wrapped in tf.Modules whose signatures the Go side runs through the
TensorFlow C API.

The signature names, input keys and output keys of the signature tables below
(trainer_signatures, serving_signatures) are a contract with the Go side,
which states them in internal/contract/contract.go (one name per constant
there); model.json records them as saved.
"""

import contextlib
import dataclasses
import math
import os
import typing
import urllib.error

# tf-keras (legacy Keras): Keras 3 variables go missing from tf.Module training
# SavedModels under the C API. This must be set before tensorflow is imported.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

import backbones  # noqa: E402

XCEPTION = backbones.get("xception")
BLOCKS = XCEPTION.blocks  # block1..block14
LAST_LAYER = "block14_sepconv2_act"  # the last layer of Keras's Xception without its top
# The head reads the globally pooled outputs of the base's feature blocks
# ("taps"), concatenated and multiplied by a 0/1 mask; the base ends at the
# deepest tap and Grad-CAM looks at it. --feature-blocks auto (the default)
# taps MIDDLE_BLOCKS and lets the trainer choose, on the validation split,
# which of FEATURE_CHOICES the head reads (the first until it has chosen):
# on real images far from ImageNet (Fashion-MNIST, 1,000 training images)
# block4,block8,block12,block14 lifted a frozen head from 0.766 to 0.830
# test accuracy, but on real photos (the kitchen composites of the Grad-CAM
# test, 30 per class) it fell from 1.000 to 0.517 (README, "The model").
# Other architectures (model.arch) list their own middle stage ends in
# scripts/archs.json; auto chooses between their deepest tap alone and those.
MIDDLE_BLOCKS = XCEPTION.middle  # block4, block8, block12, block14: the far-domain choice
FEATURE_CHOICES = XCEPTION.choices
FEATURE_BLOCKS = MIDDLE_BLOCKS  # the taps of --feature-blocks auto
LABELS_ASSET = "labels.txt"  # the class names in the serving SavedModel's assets/
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class ConfigError(Exception):
    """A flag value that cannot build a model (exit 2)."""


class WeightsError(Exception):
    """Base weights that cannot be had (exit 3)."""


OPTIMIZERS = {  # name → its parameters and their defaults (train.optimizer, finetune.optimizer)
    "adam": {},
    "adamw": {"weight_decay": 0.004},
    "sgd": {"momentum": 0.9, "nesterov": False},
}


def parse_optimizer(spec):
    """"adam", "adamw:weight_decay=0.01", "sgd:momentum=0.9,nesterov=true"
    → (name, {parameter: value}) with every default filled in."""
    name, _, rest = spec.partition(":")
    name = name.strip()
    if name not in OPTIMIZERS:
        raise ConfigError(f"optimizer {spec}: unknown optimizer {name}; use one of {', '.join(OPTIMIZERS)}")
    params = dict(OPTIMIZERS[name])
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or key not in params:
            valid = ", ".join(params) or "none"
            raise ConfigError(f"optimizer {spec}: {name} has no parameter {key or item}; its parameters: {valid}")
        try:
            if isinstance(params[key], bool):
                if value.strip().lower() not in ("true", "false", "1", "0"):
                    raise ValueError(value)
                params[key] = value.strip().lower() in ("true", "1")
            else:
                params[key] = float(value)
        except ValueError:
            raise ConfigError(f"optimizer {spec}: {key}={value.strip()} is not a valid value") from None
    if params.get("weight_decay", 0.0) < 0 or not 0.0 <= params.get("momentum", 0.0) < 1.0:
        raise ConfigError(f"optimizer {spec}: weight_decay must be >= 0 and momentum in [0, 1)")
    return name, params


def optimizer_spec(name, params):
    """The canonical text of an optimizer (model.json, builder flags)."""
    if not params:
        return name
    text = ",".join(f"{k}={str(v).lower() if isinstance(v, bool) else repr(float(v))}" for k, v in sorted(params.items()))
    return f"{name}:{text}"


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    classes: tuple
    image_size: typing.Optional[int] = None  # None: the architecture's default (Xception 299)
    weights: str = "imagenet"  # "imagenet", "none" or an absolute .h5 path
    precision: str = "float32"
    dense_units: int = 1024
    dropout: float = 0.0
    unfreeze_from: typing.Optional[str] = None  # None: the architecture's default (Xception block11)
    feature_blocks: typing.Optional[tuple] = None  # None: the architecture's auto taps
    # The subsets of feature_blocks the head may read, each ending at the
    # deepest; the mask starts at the first. One choice: nothing to choose.
    # None: the architecture's choices for its auto taps, else all of feature_blocks.
    feature_choices: typing.Optional[tuple] = None
    seed: int = 42
    # Absolute checkpoint prefix whose model weights replace the built ones
    # (see restore_model); the base weights are then not loaded at all.
    init_from: typing.Optional[str] = None
    arch: str = backbones.DEFAULT_ARCH  # model.arch: a name in scripts/archs.json
    # The optimizers of the frozen phase (head) and of fine-tuning, as
    # parse_optimizer reads them; their slots are variables of the trainer.
    head_optimizer: str = "adam"
    finetune_optimizer: str = "adam"
    # runtime.jit_compile: trace JIT_METHODS with tf.function(jit_compile=True),
    # so that the C API runs them as one XLA cluster each (XlaLaunch).
    jit_compile: bool = False
    # finetune.gradient_checkpointing: finetune_step keeps only the trained
    # base's segment boundaries for the backward pass and recomputes each
    # segment's activations there (tf.recompute_grad; recompute_plan).
    gradient_checkpointing: bool = False

    def __post_init__(self):
        try:
            arch = backbones.get(self.arch)
        except KeyError as e:
            raise ConfigError(e.args[0]) from None
        if self.image_size is None:
            object.__setattr__(self, "image_size", arch.image_size)
        if self.unfreeze_from is None:
            object.__setattr__(self, "unfreeze_from", arch.unfreeze_from)
        if self.feature_blocks is None:
            object.__setattr__(self, "feature_blocks", arch.middle)
        if self.feature_choices is None:
            choices = arch.choices if tuple(self.feature_blocks) == arch.middle else (self.feature_blocks,)
            object.__setattr__(self, "feature_choices", choices)
        for spec in (self.head_optimizer, self.finetune_optimizer):
            parse_optimizer(spec)

    @property
    def num_classes(self):
        return len(self.classes)

    @property
    def backbone(self):
        return backbones.get(self.arch)

    @property
    def base_name(self):
        """The base's layer name in the Keras model ("xception" for Xception,
        as before other architectures came; "base" otherwise)."""
        return "xception" if self.arch == "xception" else "base"


def block_start(base, name, arch=XCEPTION):
    """Index in base.layers where fine-tuning starts: the first layer of a
    block (block11 → block11_sepconv1_act), or the layer called name. Keras
    orders layers topologically, so a block's residual Conv2D/BatchNorm
    (auto-named conv2d_N) comes after its first layer and is included."""
    names = [layer.name for layer in base.layers]
    if name in arch.blocks:
        return next(i for i, n in enumerate(names) if backbones.in_block(name, n))
    if name in names:
        return names.index(name)
    example = {"xception": "block12_sepconv1"}.get(arch.name, names[len(names) // 2])
    raise ConfigError(
        f"--unfreeze-from {name}: no such block or layer in {arch.display}; "
        f"use one of {', '.join(arch.blocks)} or a layer name such as {example}"
    )


def block_end(base, name, arch=XCEPTION):
    """The layer whose output is tap name's output. Xception: the residual
    Add that closes blocks 2–13 (the first Add after the block's last
    layer), else the block's last layer (block1_conv2_act,
    block14_sepconv2_act). Other architectures: the block's last layer (its
    residual Add where it has one), and for "top" the base's last layer."""
    layers = base.layers
    if arch.tap_rule != "xception":
        if name == "top":
            return layers[-1]
        return layers[max(i for i, layer in enumerate(layers) if backbones.in_block(name, layer.name))]
    last = max(i for i, layer in enumerate(layers) if layer.name.startswith(name + "_"))
    if name not in ("block1", "block14"):
        return next(layer for layer in layers[last + 1 :] if isinstance(layer, keras.layers.Add))
    return layers[last]


def check_feature_blocks(blocks, unfreeze_from, arch=XCEPTION):
    """Fails on names that are not taps, repeats, an order that is not the
    architecture's, and fine-tuning that would start above the deepest tap."""
    taps = arch.taps
    unknown = [b for b in blocks if b not in taps]
    if not blocks or unknown:
        raise ConfigError(
            f"--feature-blocks {','.join(blocks)}: {'no blocks' if not blocks else 'unknown block ' + unknown[0]}; "
            f"use auto, or blocks of {arch.display} in order, from {', '.join(taps)}, e.g. {','.join(arch.middle)}"
        )
    order = [taps.index(b) for b in blocks]
    if order != sorted(set(order)):
        raise ConfigError(
            f"--feature-blocks {','.join(blocks)}: list each block once, shallowest first, e.g. {','.join(arch.middle)}"
        )
    deepest = blocks[-1]
    if unfreeze_from in arch.blocks and deepest in arch.blocks and arch.blocks.index(unfreeze_from) > arch.blocks.index(deepest):
        raise ConfigError(
            f"--unfreeze-from {unfreeze_from}: the base ends at {deepest} (the deepest of --feature-blocks); "
            f"unfreeze from {deepest} or below"
        )


def feature_base(base, blocks, arch=XCEPTION, name="xception"):
    """The base cut after the deepest of blocks, with one output per block,
    named like the whole base ("xception" for Xception) so that checkpoint
    keys and layer lookups do not depend on the cut."""
    return keras.Model(base.input, [block_end(base, b, arch).output for b in blocks], name=name)


class RecomputePlan:
    """The base cut for gradient checkpointing: the base's layers by index
    (topological order, 0 the input), the last frozen-prefix layer, and the
    last layer of each trained segment. A plain object: the tf.Module that
    holds it must not track the layers along another path."""

    def __init__(self, base, prefix_end, ends):
        self.layers, self.prefix_end, self.ends = base.layers, prefix_end, ends
        self.outputs = tf.nest.flatten(base.outputs)
        self.input_id = _kt_id(self.layers[0].output)

    @property
    def end_names(self):
        return [self.layers[e].name for e in self.ends]


def _kt_id(keras_tensor):
    return str(id(keras_tensor))  # Keras's own key of a node's inputs


def recompute_plan(base, start):
    """Cuts the base's layers from index start (the first trained layer)
    upward into segments of about sqrt(n) of its n layers, each ending at a
    layer whose output is the only tensor later layers read of everything
    before it (a residual block's closing Add, any layer of a plain chain):
    the backward pass then keeps only the segment boundaries and recomputes
    one segment's activations at a time. The frozen layers below start run
    before the first segment, outside the gradient."""
    layers = base.layers
    index = {id(layer): i for i, layer in enumerate(layers)}
    first_read = []  # the lowest layer index each layer reads from
    for i, layer in enumerate(layers):
        node = layer._inbound_nodes[0]
        sources = [index[id(t._keras_history.layer)] for t in tf.nest.flatten(node.keras_inputs)]
        first_read.append(min(sources, default=i))
    cuts, later = [], len(layers)  # later: the lowest index a layer above i reads
    for i in range(len(layers) - 1, -1, -1):
        if later >= i and not isinstance(layers[i].output, (list, tuple)):
            cuts.append(i)
        later = min(later, first_read[i])
    cuts.sort()
    top = len(layers) - 1
    prefix_end = max(c for c in cuts if c < start)
    size = max(1, math.ceil(math.sqrt(top - prefix_end)))
    ends, previous = [], prefix_end
    for c in cuts:
        if c > prefix_end and (c - previous >= size or c == top):
            ends.append(c)
            previous = c
    return RecomputePlan(base, prefix_end, ends)


def _run_layers(plan, lo, hi, values, training=False):
    """Runs the base's layers lo+1..hi on values (KerasTensor key → tensor)
    as Keras's functional model runs its nodes; adds their outputs."""
    for layer in plan.layers[lo + 1 : hi + 1]:
        node = layer._inbound_nodes[0]
        flat = list(node._flat_arguments)
        for kt_id, kt_index in node._keras_inputs_ids_and_indices:
            flat[kt_index] = values[kt_id]
        args, kwargs = tf.nest.pack_sequence_as((node.call_args, node.call_kwargs), flat)
        if layer._expects_training_arg:
            kwargs = dict(kwargs, training=training)
        out = layer(*args, **kwargs)
        for kt, t in zip(tf.nest.flatten(node.outputs), tf.nest.flatten(out)):
            values[_kt_id(kt)] = t


def run_recomputed(plan, x):
    """The base's outputs (taps) on its preprocessed input x: the frozen
    prefix as usual (its outputs are constants for the gradient), then each
    trained segment under tf.recompute_grad, which keeps its input and
    recomputes its inner activations in the backward pass."""
    values = {plan.input_id: x}
    _run_layers(plan, 0, plan.prefix_end, values)
    values = {k: tf.stop_gradient(v) for k, v in values.items()}
    lo = plan.prefix_end
    for hi in plan.ends:
        first, last = _kt_id(plan.layers[lo].output), _kt_id(plan.layers[hi].output)
        inside = _segment_keys(plan, lo, hi)
        taps = [k for k in dict.fromkeys(_kt_id(t) for t in plan.outputs) if k in inside and k != last]

        def segment(carry, lo=lo, hi=hi, first=first, last=last, taps=taps):
            local = {first: carry}
            _run_layers(plan, lo, hi, local)
            return [local[last]] + [local[k] for k in taps]

        out = tf.recompute_grad(segment)(values[first])
        values.update(zip([last] + taps, out))
        lo = hi
    return [values[_kt_id(t)] for t in plan.outputs]


def _segment_keys(plan, lo, hi):
    return {_kt_id(kt) for layer in plan.layers[lo + 1 : hi + 1] for kt in tf.nest.flatten(layer._inbound_nodes[0].outputs)}


def build_base(cfg, load_weights):
    """The architecture's base without its top. load_weights(base, path, arch)
    is called for a .h5 path; ImageNet weights go through Keras' own loader
    (its cache, ~/.keras/models, then a download)."""
    shape = (cfg.image_size, cfg.image_size, 3)
    arch = cfg.backbone
    if cfg.init_from is not None:
        # Every variable, BatchNorm statistics included, comes from the
        # checkpoint: downloading or calibrating weights here would be wasted
        # (and an offline machine could not fine-tune).
        return arch.build(keras, shape)
    if cfg.weights == "imagenet":
        try:
            return arch.build(keras, shape, weights="imagenet")
        except Exception as e:
            raise WeightsError(
                f"cannot download the ImageNet weights for {arch.display} ({download_failure(e)}): "
                f"pass --weights PATH.h5 (Keras {arch.display} notop weights) or --weights none"
            ) from e
    base = arch.build(keras, shape)
    if cfg.weights == "none":
        calibrate_batchnorm(base, cfg)
    else:
        load_weights(base, cfg.weights, arch)
    return base


def calibrate_batchnorm(base, cfg, batch=8):
    """Sets every BatchNorm's moving statistics to those of one seeded batch
    of uniform noise. The base always runs in inference mode, and with the
    initial statistics (mean 0, variance 1) a randomly initialised Xception
    shrinks its input ~10⁶-fold by block14: the head would get features of
    1e-6 and could not learn. Calibrated, a weights=none model (tests, offline
    experiments) trains like a real one; its weights are unchanged."""
    norms = [layer for layer in base.layers if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in norms]
    if getattr(cfg, "backbone", XCEPTION).preprocess == "tf":  # the base sees [-1, 1]
        noise = tf.random.stateless_uniform(
            [batch, cfg.image_size, cfg.image_size, 3], seed=[cfg.seed, 0], minval=-1.0, maxval=1.0
        )
    else:  # the base scales pixels 0..255 itself
        noise = tf.random.stateless_uniform(
            [batch, cfg.image_size, cfg.image_size, 3], seed=[cfg.seed, 0], minval=0.0, maxval=255.0
        )
    try:
        for layer in norms:
            layer.momentum = 0.0  # moving statistics := this batch's statistics
        base(noise, training=True)
    finally:
        for layer, momentum in zip(norms, momenta):
            layer.momentum = momentum


def download_failure(exc):
    """A short reason for a failed weights download, without the URL: the
    innermost socket/URL error if there is one (Keras wraps it in a bare
    Exception whose message starts with the URL)."""
    seen = exc
    while seen is not None:
        if isinstance(seen, urllib.error.URLError):
            reason = seen.reason
            if isinstance(reason, OSError) and reason.strerror:
                return reason.strerror
            return " ".join(str(reason).split())
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror
        if isinstance(seen, TimeoutError):
            return "timed out"
        seen = seen.__cause__ or seen.__context__
    text = str(exc).rsplit(" -- ", 1)[-1]
    return " ".join(text.split())[:160] or type(exc).__name__


def load_h5_weights(base, path, arch=XCEPTION):
    """Loads Keras notop weights of the architecture, turning Keras' many
    failure modes (not HDF5, other architecture, wrong shapes) into one
    WeightsError."""
    try:
        base.load_weights(path)
    except Exception as e:  # h5py, ValueError on shapes/counts, OSError
        reason = " ".join(str(e).split())[:200] or type(e).__name__
        raise WeightsError(
            f"--weights {path}: cannot load as Keras {arch.display} notop weights ({reason}); "
            f"pass a file written by {arch.constructor}(include_top=False).save_weights, or --weights none"
        ) from e


def build_keras_model(cfg, load_weights=load_h5_weights):
    """The whole classifier as one functional Keras model (float input already
    scaled to [-1, 1]). Seeds and the precision policy are set here so that
    the same config always builds the same initial weights."""
    keras.backend.clear_session()
    _BASE_FUNCTIONS.clear()
    keras.utils.set_random_seed(cfg.seed)
    keras.mixed_precision.set_global_policy(cfg.precision)
    arch = cfg.backbone
    check_feature_blocks(cfg.feature_blocks, cfg.unfreeze_from, arch)
    whole = build_base(cfg, load_weights)
    if arch.name == "xception" and whole.layers[-1].name != LAST_LAYER:
        raise RuntimeError(f"Xception's last layer is {whole.layers[-1].name}, expected {LAST_LAYER}")
    base = feature_base(whole, cfg.feature_blocks, arch, cfg.base_name)
    widths = [int(t.shape[-1]) for t in tf.nest.flatten(base.outputs)]
    if widths != [arch.width(b) for b in cfg.feature_blocks]:
        raise RuntimeError(f"{arch.display}'s taps {cfg.feature_blocks} have widths {widths}, not those of scripts/archs.json")
    block_start(base, cfg.unfreeze_from, arch)  # fail before the slow part
    inputs = keras.Input(shape=(cfg.image_size, cfg.image_size, 3), name="image")
    maps = tf.nest.flatten(base(inputs, training=False))
    pool = keras.layers.GlobalAveragePooling2D(name="avg_pool")
    x = pool(maps[0]) if len(maps) == 1 else keras.layers.Concatenate(name="features")([pool(m) for m in maps])
    x = keras.layers.Dense(cfg.dense_units, activation="relu", name="fc")(x)
    # Logits and softmax are separate layers so that the loss and Grad-CAM use
    # logits; both stay float32 under mixed precision.
    x = keras.layers.Dense(cfg.num_classes, dtype="float32", name="logits")(x)
    outputs = keras.layers.Activation("softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="xcept")


OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"  # where TF keeps a checkpoint's object graph


def checkpoint_model_shapes(prefix):
    """Variable name (fc/kernel) → shape, for the Keras model's variables in
    an object-graph checkpoint written by a trainer's or serving's SaverDef
    (keys model/...). The object graph records each key's variable name, so
    a mismatch can be named in the user's terms."""
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    try:
        reader = tf.train.load_checkpoint(prefix)
        shapes = reader.get_variable_to_shape_map()
        if OBJECT_GRAPH_KEY not in shapes:
            raise ConfigError(
                f"--init-from {prefix}: not a checkpoint saved by xcept (it has no object graph); "
                "pass the prefix of a run's checkpoint"
            )
        graph = trackable_object_graph_pb2.TrackableObjectGraph()
        graph.ParseFromString(reader.get_tensor(OBJECT_GRAPH_KEY))
    except (tf.errors.OpError, ValueError) as e:
        reason = " ".join(str(e).split())[:200]
        raise ConfigError(f"--init-from {prefix}: cannot read the checkpoint ({reason})") from e
    return {
        attr.full_name: shapes[attr.checkpoint_key]
        for node in graph.nodes
        for attr in node.attributes
        if attr.checkpoint_key.startswith("model/") and attr.checkpoint_key in shapes
    }


def check_checkpoint_head(cfg, shapes):
    """Fails before the slow build on a checkpoint whose head has another
    class count or width: the common mistake (another run's checkpoint)."""
    classes, units, kernel = shapes.get("logits/bias"), shapes.get("fc/bias"), shapes.get("fc/kernel")
    if classes is None or units is None:
        raise ConfigError(
            f"--init-from {cfg.init_from}: the checkpoint has no fc and logits layers; "
            "it is not a checkpoint of an xcept model"
        )
    if (classes, units) != ([cfg.num_classes], [cfg.dense_units]):
        raise ConfigError(
            f"--init-from {cfg.init_from}: the checkpoint's model has {classes[0]} classes and "
            f"{units[0]} dense units but this one has {cfg.num_classes} classes and {cfg.dense_units} "
            "dense units; build with the classes and --dense-units of the run the checkpoint comes from"
        )
    dim = feature_dim_of(cfg.feature_blocks, cfg.backbone)
    if kernel is not None and kernel[0] != dim:
        raise ConfigError(
            f"--init-from {cfg.init_from}: the checkpoint's head reads {kernel[0]} features but "
            f"--feature-blocks {','.join(cfg.feature_blocks)} gives {dim}; "
            f"build with the --feature-blocks of the run the checkpoint comes from ({cfg.backbone.last_tap} alone "
            f"gives {cfg.backbone.widths[-1]})"
        )


# The first weighted layer of each architecture's base: a checkpoint's
# variables say which architecture it holds (MobileNetV3 Small and Large,
# and the EfficientNetV2 sizes, share a name: the shapes then differ).
FIRST_KERNELS = {
    "xception": "block1_conv1/kernel",
    "mobilenet_v2": "Conv1/kernel",
    "mobilenet_v3_small": "Conv/kernel",
    "mobilenet_v3_large": "Conv/kernel",
    "resnet50v2": "conv1_conv/kernel",
}


def check_checkpoint_arch(cfg, shapes):
    """Fails on a checkpoint of another architecture, naming it, before
    the variable-by-variable check would name one missing variable."""
    first = FIRST_KERNELS.get(cfg.arch, "stem_conv/kernel")
    if first in shapes:
        return
    others = sorted({a for a, k in FIRST_KERNELS.items() if k in shapes} | ({"efficientnetv2_b0..b3"} if "stem_conv/kernel" in shapes else set()))
    held = f"a {' or '.join(others)} model" if others else "no base this xcept knows"
    raise ConfigError(
        f"--init-from {cfg.init_from}: the checkpoint holds {held} but this model is {cfg.arch} (model.arch); "
        "build with the --arch of the run the checkpoint comes from"
    )


# Output channels of each block of Keras's Xception, whatever the image size
# (every architecture's are its "widths" in scripts/archs.json).
BLOCK_CHANNELS = dict(zip(BLOCKS, XCEPTION.widths))


def feature_dim_of(blocks, arch=XCEPTION):
    return sum(arch.width(b) for b in blocks)


def feature_mask_of(taps, chosen, arch=XCEPTION):
    """The 0/1 mask over the taps' concatenated features that keeps chosen."""
    return [1.0 if b in chosen else 0.0 for b in taps for _ in range(arch.width(b))]


def restore_model(model, cfg, shapes):
    """Loads the model's weights from the checkpoint at cfg.init_from, as
    tf.train.Checkpoint(model=...) does: by object path, so the trainer's
    and the serving module's checkpoints both work. The optimizers' values
    are left behind on purpose: a rebuilt trainer's optimizers start fresh."""
    for v in model.variables:
        name = v.name.split(":")[0]
        if name not in shapes:
            raise ConfigError(
                f"--init-from {cfg.init_from}: the checkpoint has no variable {name}; "
                f"it is not a checkpoint of an xcept {cfg.backbone.display} model with these options"
            )
        if shapes[name] != v.shape.as_list():
            raise ConfigError(
                f"--init-from {cfg.init_from}: {name} is {shapes[name]} in the checkpoint but "
                f"{v.shape.as_list()} in this model"
            )
    status = tf.train.Checkpoint(model=model).read(cfg.init_from)
    status.expect_partial()  # optimizer slots and step counters stay behind
    status.assert_existing_objects_matched()


def preprocess(images, arch=XCEPTION):
    """RGB pixel values 0..255 (uint8 or float) → what the base takes:
    float32 in [-1, 1] (Xception's, MobileNetV2's and ResNet50V2's own
    scaling, their preprocess_input), or float32 0..255 for the bases that
    hold their preprocessing (MobileNetV3, EfficientNetV2)."""
    if arch.preprocess == "tf":
        return tf.cast(images, tf.float32) / 127.5 - 1.0
    return tf.cast(images, tf.float32)


def decode_rgb(data):
    """One encoded image (JPEG, PNG, GIF's first frame, BMP, WebP) → float32
    [h, w, 3] pixel values 0..255. Transparency is composited over white,
    rounded as internal/imageio does for the training data: decode_image's
    channels=3 would drop alpha and show whatever colour transparent pixels
    hold, usually black. Undecodable bytes raise InvalidArgument."""
    # Padded so that the magic-number slices below exist for short input;
    # decoding still sees the original bytes and rejects them properly.
    head = tf.strings.substr(tf.strings.join([data, tf.constant(b"\0" * 21)]), 0, 21)
    is_png = tf.equal(tf.strings.substr(head, 0, 8), PNG_MAGIC)
    is_webp = tf.logical_and(
        tf.equal(tf.strings.substr(head, 0, 4), b"RIFF"), tf.equal(tf.strings.substr(head, 8, 4), b"WEBP")
    )
    rgba = tf.case(
        [
            (is_png, lambda: tf.io.decode_png(data, channels=4)),  # gray, palette and tRNS included
            (is_webp, lambda: _decode_webp(data, head)),
        ],
        default=lambda: _opaque(_decode_other(data, head)),
    )
    rgba = tf.ensure_shape(rgba, [None, None, 4])
    pixels = tf.cast(rgba, tf.int32)
    color, alpha = pixels[..., :3], pixels[..., 3:]
    return tf.cast((color * alpha + 255 * (255 - alpha) + 127) // 255, tf.float32)


def _decode_other(data, head):
    """JPEG as Go's image/jpeg decodes the training data (no fancy chroma
    upsampling, an accurate IDCT: within a few levels, where TensorFlow's
    defaults differ by up to 84); GIF's first frame and BMP as decode_image."""
    is_jpeg = tf.equal(tf.strings.substr(head, 0, 3), b"\xff\xd8\xff")
    return tf.cond(
        is_jpeg,
        lambda: tf.io.decode_jpeg(data, channels=3, fancy_upscaling=False, dct_method="INTEGER_ACCURATE"),
        lambda: tf.io.decode_image(data, channels=3, expand_animations=False),
    )


def _decode_webp(data, head):
    """A still WebP as RGBA. TF's decode_image(channels=3) refuses WebP with
    alpha, and with channels=0 and expand_animations=False it corrupts the
    heap on animated WebP (TF 2.21), so animations are refused first, from
    the VP8X header's animation flag, as internal/imageio refuses them."""
    flags = tf.io.decode_raw(tf.strings.substr(head, 20, 1), tf.uint8)[0]
    animated = tf.logical_and(
        tf.equal(tf.strings.substr(head, 12, 4), b"VP8X"), tf.not_equal(tf.bitwise.bitwise_and(flags, 2), 0)
    )
    check = tf.debugging.Assert(
        tf.logical_not(animated), ["animated WebP is not supported; send a still image"]
    )
    with tf.control_dependencies([check]):
        image = tf.io.decode_webp(data, channels=0)[0]  # [frames, h, w, c]: one frame here
    return tf.cond(tf.equal(tf.shape(image)[2], 4), lambda: image, lambda: _opaque(image))


def _opaque(rgb):
    """RGB → RGBA with alpha 255 everywhere."""
    alpha = tf.fill(tf.concat([tf.shape(rgb)[:2], [1]], 0), tf.constant(255, rgb.dtype))
    return tf.concat([rgb[..., :3], alpha], axis=-1)


def resize_squash(pixels, size):
    """Any h×w → size×size, aspect ratio not kept (prepare.resize squash,
    the default). Antialiased: bilinear sampling alone aliases when it
    shrinks a photo several-fold."""
    return tf.image.resize(pixels, [size, size], method="bilinear", antialias=True)


def image_spec(size, name="images"):
    return tf.TensorSpec([None, size, size, 3], tf.uint8, name=name)


def _spec(dtype, shape, name):
    return tf.TensorSpec(shape, dtype, name=name)


def training_specs(first):
    """Inputs of every training step after its first (images or features)."""
    return [
        first,
        _spec(tf.int32, [None], "labels"),
        _spec(tf.float32, [None], "sample_weight"),
        _spec(tf.float32, [], "learning_rate"),
        _spec(tf.float32, [], "label_smoothing"),
        _spec(tf.int64, [2], "seed"),
    ]


def trainer_signatures(size, feature_dim):
    """Signature name → (method name, input specs). Adding a signature is a
    method on XceptModule plus one line here; the specs' names become the
    signature's input keys, in the method's argument order."""
    images = image_spec(size)
    features = _spec(tf.float32, [None, feature_dim], "features")
    return {
        "train_step": ("train_step", training_specs(images)),
        "finetune_step": ("finetune_step", training_specs(images)),
        "train_head_step": ("train_head_step", training_specs(features)),
        "eval_step": ("eval_step", [images, _spec(tf.int32, [None], "labels")]),
        "eval_head_step": ("eval_head_step", [features, _spec(tf.int32, [None], "labels")]),
        "predict": ("predict", [images]),
        "features": ("features", [images]),
        "explain": ("explain", [images, _spec(tf.int32, [None], "class_index")]),
        "set_temperature": ("set_temperature", [_spec(tf.float32, [], "temperature")]),
        "set_feature_mask": ("set_feature_mask", [_spec(tf.float32, [feature_dim], "mask")]),
    }


def serving_signatures(size):
    """TF Serving sends serving_default's string input as {"b64": ...} in
    REST requests because its key ends in _bytes."""
    return {
        "serving_default": ("serve_encoded", [_spec(tf.string, [None], "image_bytes")]),
        "predict_images": ("predict_images", [_spec(tf.float32, [None, size, size, 3], "images")]),
        "predict": ("predict", [image_spec(size)]),
    }


def new_optimizer(cfg, spec="adam"):
    """The optimizer spec names (parse_optimizer). The learning rate is an
    input of every step; weight decay (adamw) is decoupled, scaled by it,
    and spares biases."""
    # jit_compile=False: tf-keras would XLA-compile the update on a GPU machine,
    # and a C API runtime is not guaranteed to have XLA.
    name, params = parse_optimizer(spec)
    if name == "adamw":
        opt = keras.optimizers.AdamW(
            learning_rate=1e-3, weight_decay=params["weight_decay"], beta_1=0.9, beta_2=0.999, epsilon=1e-7, jit_compile=False
        )
        opt.exclude_from_weight_decay(var_names=["bias"])
    elif name == "sgd":
        opt = keras.optimizers.SGD(learning_rate=1e-3, momentum=params["momentum"], nesterov=params["nesterov"], jit_compile=False)
    else:
        opt = keras.optimizers.Adam(learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7, jit_compile=False)
    if cfg.precision == "mixed_float16":
        opt = keras.mixed_precision.LossScaleOptimizer(opt)
    return opt


# Keras model id → (the model, its base_function), for the models built since
# build_keras_model last cleared it.
_BASE_FUNCTIONS = {}


def base_function(model, cfg):
    """The base of model as one concrete graph function: float32 pixel
    values 0..255 [None, S, S, 3] → the feature blocks' outputs, shallowest
    first (preprocess, then the base in inference mode, BatchNorm on its
    moving statistics). Every signature of the trainer and of the serving
    module calls this one function, so the base is traced once per build
    (not once per signature: 11 times, half the builder's CPU) and each
    SavedModel stores it once. Gradients flow through the call (fine-tuning
    differentiates it for the unfrozen variables it reads) and XLA compiles
    it inside a jit-compiled signature. Its variables are the model's: the
    checkpoint keys do not change."""
    held = _BASE_FUNCTIONS.get(id(model))
    if held is not None and held[0] is model:
        return held[1]
    base, arch = model.get_layer(cfg.base_name), cfg.backbone

    def feature_maps(pixels):
        return tf.nest.flatten(base(preprocess(pixels, arch), training=False))

    spec = tf.TensorSpec([None, cfg.image_size, cfg.image_size, 3], tf.float32, name="pixels")
    fn = tf.function(feature_maps, input_signature=[spec], autograph=False).get_concrete_function()
    _BASE_FUNCTIONS[id(model)] = (model, fn)
    return fn


class XceptModule(tf.Module):
    """Holds the Keras model as `model` in both the trainer and the serving
    module, so that variables have the same checkpoint keys in both."""

    def __init__(self, model, cfg, training, labels_file=None):
        super().__init__()
        self.model = model
        self._cfg = cfg  # frozen dataclass: not tracked, adds no checkpoint keys
        # Temperature scaling: predict, the serving signatures and explain
        # answer softmax(logits / temperature). Both modules track it under
        # the same checkpoint key, so the temperature Go fits on the
        # validation split and saves in the run's checkpoint travels into
        # the serving model and every export with the weights; training and
        # evaluation steps stay uncalibrated (temperature 1).
        self.temperature = tf.Variable(1.0, trainable=False, dtype=tf.float32, name="temperature")
        # Which taps the head reads (feature_choices): like the temperature,
        # set from Go, saved in the run's checkpoints and restored into the
        # serving model. A masked tap's fc weights get no gradient.
        self.feature_mask = tf.Variable(
            feature_mask_of(cfg.feature_blocks, cfg.feature_choices[0], cfg.backbone),
            trainable=False,
            dtype=tf.float32,
            name="feature_mask",
        )
        if labels_file is not None:
            # Tracked, so saving copies it to assets/; an asset has no
            # variables and adds no checkpoint keys.
            self.labels = tf.saved_model.Asset(labels_file)
        if training:
            self.head_optimizer = new_optimizer(cfg, cfg.head_optimizer)
            self.finetune_optimizer = new_optimizer(cfg, cfg.finetune_optimizer)
            # Slots must exist before saving: the graph cannot create variables.
            _inner(self.head_optimizer).build(self.head_variables())
            _inner(self.finetune_optimizer).build(self.finetune_variables())
        if training and cfg.gradient_checkpointing:
            start = block_start(self.base, cfg.unfreeze_from, cfg.backbone)
            object.__setattr__(self, "_recompute", recompute_plan(self.base, start))  # untracked (RecomputePlan)

    # Layers are looked up, not stored as attributes: another tracked path to
    # the same variables could change their checkpoint keys.
    @property
    def base(self):
        return self.model.get_layer(self._cfg.base_name)

    def head_variables(self):
        return [v for name in ("fc", "logits") for v in self.model.get_layer(name).trainable_weights]

    def finetune_variables(self):
        """Base layers from --unfreeze-from upward, BatchNorm excluded (it
        stays frozen and in inference mode), then the head."""
        layers = self.base.layers[block_start(self.base, self._cfg.unfreeze_from, self._cfg.backbone) :]
        base_vars = [
            v
            for layer in layers
            if not isinstance(layer, keras.layers.BatchNormalization)
            for v in layer.trainable_weights
        ]
        return base_vars + self.head_variables()

    # --- graph pieces -------------------------------------------------------

    def _feature_maps(self, images):
        """The feature blocks' outputs, shallowest first: a call of the
        model's one traced base function (base_function)."""
        return list(base_function(self.model, self._cfg)(tf.cast(images, tf.float32)))

    def _trained_maps(self, images):
        """_feature_maps for a step that differentiates through the base:
        with gradient checkpointing, through the recompute plan."""
        if not self._cfg.gradient_checkpointing:
            return self._feature_maps(images)
        return run_recomputed(self._recompute, preprocess(images, self._cfg.backbone))

    def _pool(self, feature_maps):
        # Cast so that features are float32 in every precision; the cast back to
        # a 16-bit compute dtype inside the head is exact.
        pool = self.model.get_layer("avg_pool")
        return tf.concat([tf.cast(pool(m), tf.float32) for m in feature_maps], axis=-1)

    def _logits(self, features, seed=None):
        hidden = self.model.get_layer("fc")(features * self.feature_mask)
        if seed is not None and self._cfg.dropout > 0:
            # Stateless: the caller's seed alone decides the mask.
            hidden = tf.nn.experimental.stateless_dropout(hidden, rate=self._cfg.dropout, seed=seed)
        return self.model.get_layer("logits")(hidden)

    def _probabilities(self, logits):
        return self.model.get_layer("probabilities")(logits)

    def _calibrated(self, logits):
        return tf.nn.softmax(tf.cast(logits, tf.float32) / self.temperature)

    def _check_class_index(self, class_index):
        n = self._cfg.num_classes
        return [tf.debugging.assert_less(class_index, n, message="class_index must be -1 or in [0, num_classes)")]

    def _check_labels(self, labels):
        n = self._cfg.num_classes
        return [
            tf.debugging.assert_non_negative(labels, message="labels must be in [0, num_classes)"),
            tf.debugging.assert_less(labels, n, message="labels must be in [0, num_classes)"),
        ]

    def _loss(self, logits, labels, sample_weight, label_smoothing):
        with tf.control_dependencies(self._check_labels(labels)):
            labels = tf.identity(labels)
        return smoothed_crossentropy(logits, labels, sample_weight, label_smoothing, self._cfg.num_classes)

    @staticmethod
    def _accuracy(logits, labels):
        hits = tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), labels)
        return tf.reduce_mean(tf.cast(hits, tf.float32))

    @staticmethod
    def _scaled(optimizer, loss):
        """The loss to differentiate: scaled under a LossScaleOptimizer
        (mixed_float16). Must be computed inside the tape."""
        if isinstance(optimizer, keras.mixed_precision.LossScaleOptimizer):
            return optimizer.get_scaled_loss(loss)
        return loss

    @staticmethod
    def _apply(optimizer, tape, target, variables, learning_rate):
        """One optimizer update at learning_rate, unscaling the gradients of a
        scaled loss (a LossScaleOptimizer skips steps whose gradients overflow)."""
        grads = tape.gradient(target, variables)
        if isinstance(optimizer, keras.mixed_precision.LossScaleOptimizer):
            grads = optimizer.get_unscaled_gradients(grads)
        optimizer.learning_rate.assign(learning_rate)
        optimizer.apply_gradients(zip(grads, variables))

    # --- signatures -------------------------------------------------------

    def train_head_step(self, features, labels, sample_weight, learning_rate, label_smoothing, seed):
        variables = self.head_variables()
        with tf.GradientTape() as tape:
            logits = self._logits(features, seed)
            loss = self._loss(logits, labels, sample_weight, label_smoothing)
            target = self._scaled(self.head_optimizer, loss)
        self._apply(self.head_optimizer, tape, target, variables, learning_rate)
        return {"loss": loss, "accuracy": self._accuracy(logits, labels)}

    def train_step(self, images, labels, sample_weight, learning_rate, label_smoothing, seed):
        # The base is frozen: computing features outside the tape saves its backward pass.
        features = self._pool(self._feature_maps(images))
        return self.train_head_step(features, labels, sample_weight, learning_rate, label_smoothing, seed)

    def finetune_step(self, images, labels, sample_weight, learning_rate, label_smoothing, seed):
        variables = self.finetune_variables()
        with tf.GradientTape() as tape:
            logits = self._logits(self._pool(self._trained_maps(images)), seed)
            loss = self._loss(logits, labels, sample_weight, label_smoothing)
            target = self._scaled(self.finetune_optimizer, loss)
        self._apply(self.finetune_optimizer, tape, target, variables, learning_rate)
        return {"loss": loss, "accuracy": self._accuracy(logits, labels)}

    def eval_head_step(self, features, labels):
        """eval_step on cached pooled features: validation without the base."""
        logits = self._logits(features)
        ones = tf.ones_like(labels, dtype=tf.float32)
        loss = self._loss(logits, labels, ones, tf.constant(0.0))
        return {"loss": loss, "probabilities": self._probabilities(logits), "logits": tf.cast(logits, tf.float32)}

    def eval_step(self, images, labels):
        return self.eval_head_step(self._pool(self._feature_maps(images)), labels)

    def predict(self, images):
        return self.predict_images(images)

    def predict_images(self, images):
        """images: pixel values 0..255, uint8 or float32 (already resized)."""
        logits = self._logits(self._pool(self._feature_maps(images)))
        return {"probabilities": self._calibrated(logits)}

    def serve_encoded(self, image_bytes):
        """Encoded images of any size → probabilities, plus the class names
        per row in label order (the layout of TF Serving's classify API)."""
        size = self._cfg.image_size
        pixels = tf.map_fn(
            lambda data: resize_squash(decode_rgb(data), size),
            image_bytes,
            fn_output_signature=tf.TensorSpec([size, size, 3], tf.float32),
        )
        predict = self.predict_images
        if self._cfg.jit_compile:
            predict = tf.function(predict, autograph=False, jit_compile=True)
        out = predict(pixels)
        names = tf.constant([list(self._cfg.classes)])
        out["classes"] = tf.tile(names, [tf.shape(image_bytes)[0], 1])
        return out

    def features(self, images):
        return {"features": self._pool(self._feature_maps(images))}

    def set_temperature(self, temperature):
        """Sets the temperature predict and serving divide logits by."""
        with tf.control_dependencies([tf.debugging.assert_positive(temperature, message="temperature must be > 0")]):
            self.temperature.assign(temperature)
        return {"temperature": tf.identity(self.temperature)}

    def set_feature_mask(self, mask):
        """Sets which taps the head reads (1 keeps a feature, 0 drops it)."""
        binary = tf.reduce_all(tf.logical_or(tf.equal(mask, 0.0), tf.equal(mask, 1.0)))
        with tf.control_dependencies([tf.debugging.Assert(binary, ["feature mask values must be 0 or 1"])]):
            self.feature_mask.assign(mask)
        return {"feature_mask": tf.identity(self.feature_mask)}

    def explain(self, images, class_index):
        """Grad-CAM: ReLU(Σ_k mean(∂y_c/∂A_k)·A_k) on the deepest feature
        block's output (block14_sepconv2_act for Xception, the base's last
        layer for the other architectures), scaled to [0, 1]
        per image, for the class logit y_c. The shallower blocks' pooled
        features enter the logit as constants: the map shows where the
        deepest block's evidence is, at its resolution."""
        checks = self._check_class_index(class_index)
        *shallower, deepest = self._feature_maps(images)
        activation = tf.cast(deepest, tf.float32)
        with tf.GradientTape() as tape:
            tape.watch(activation)
            logits = self._logits(self._pool(shallower + [activation]))
            predicted = tf.argmax(logits, axis=-1, output_type=tf.int32)
            with tf.control_dependencies(checks):
                chosen = tf.where(class_index < 0, predicted, class_index)
            score = tf.gather(logits, chosen, axis=1, batch_dims=1)
        grads = tf.cast(tape.gradient(score, activation), tf.float32)
        channel_weights = tf.reduce_mean(grads, axis=[1, 2])
        cam = tf.nn.relu(tf.einsum("bhwc,bc->bhw", activation, channel_weights))
        peak = tf.reduce_max(cam, axis=[1, 2], keepdims=True)
        return {
            "heatmap": tf.math.divide_no_nan(cam, peak),
            "probabilities": self._calibrated(logits),
            "class_index": chosen,
        }


def smoothed_crossentropy(logits, labels, sample_weight, label_smoothing, num_classes):
    """Categorical cross-entropy of smoothed one-hot labels, weighted per
    sample and reduced as Keras does (SUM_OVER_BATCH_SIZE): sum(w·l) / B.
    label_smoothing is a tensor so that Go can change it without a rebuild."""
    target = tf.one_hot(labels, num_classes) * (1.0 - label_smoothing) + label_smoothing / num_classes
    per_sample = tf.nn.softmax_cross_entropy_with_logits(labels=target, logits=logits)
    batch = tf.cast(tf.size(per_sample), tf.float32)
    return tf.reduce_sum(per_sample * sample_weight) / batch


def _inner(optimizer):
    if isinstance(optimizer, keras.mixed_precision.LossScaleOptimizer):
        return optimizer.inner_optimizer
    return optimizer


# The methods runtime.jit_compile XLA-compiles: every training and
# inference step. serve_encoded decodes images with ops XLA cannot compile:
# only its model part is compiled (serve_encoded). The setters stay plain,
# and so do the data-parallel signatures (xcept_dp: collectives). XLA
# compiles once per input shape. It ignores Assert, so the input checks
# (labels in range, explain's class index) run before the compiled call, in
# the signature's own graph: a bad label is refused as without XLA.
JIT_METHODS = frozenset(
    {"train_step", "train_head_step", "finetune_step", "eval_step", "eval_head_step", "predict", "predict_images", "features", "explain"}
)
CHECKED_INPUT = {  # method → (index of the input checked outside XLA, XceptModule's check)
    "train_step": (1, "_check_labels"),
    "train_head_step": (1, "_check_labels"),
    "finetune_step": (1, "_check_labels"),
    "eval_step": (1, "_check_labels"),
    "eval_head_step": (1, "_check_labels"),
    "explain": (1, "_check_class_index"),
}


def _jit_signature(module, method):
    """The method XLA-compiled, called after its input check (CHECKED_INPUT)."""
    compiled = tf.function(getattr(module, method), autograph=False, jit_compile=True)
    if method not in CHECKED_INPUT:
        return compiled
    index, check = CHECKED_INPUT[method]

    def checked(*args):
        with tf.control_dependencies(getattr(module, check)(args[index])):
            args = [tf.identity(a) for a in args]
        return compiled(*args)

    return checked


def concrete_signatures(module, table):
    """Traces each (method, specs) of table into a concrete function."""
    traced, out = {}, {}
    jit = getattr(module, "_cfg", None) is not None and module._cfg.jit_compile
    for key, (method, specs) in table.items():
        # Keys that share a method share one graph function.
        if method not in traced:
            fn = _jit_signature(module, method) if jit and method in JIT_METHODS else getattr(module, method)
            fn = tf.function(fn, input_signature=specs, autograph=False)
            traced[method] = fn.get_concrete_function()
        out[key] = traced[method]
    return out


def save(module, table, directory):
    signatures = concrete_signatures(module, table)
    with _without_keras_traces():
        tf.saved_model.save(module, directory, signatures=signatures)


def _without_keras_traces():
    """By default tf-keras also traces every layer's call() into the SavedModel
    (about 540 functions for Xception) so that Keras could rebuild the layers.
    Nothing here needs that: the C API runs our signatures only. Skipping them
    makes saving faster and the graph the C API loads much smaller. The switch
    is tf-keras internal, so a tf-keras without it falls back to saving traces."""
    try:
        from tf_keras.src.saving.legacy.saved_model.utils import keras_option_scope
    except ImportError:
        return contextlib.nullcontext()
    return keras_option_scope(save_traces=False, in_tf_saved_model_scope=True)
