"""Builds the xcept model folder: a trainer SavedModel, a serving SavedModel
and model.json, which describes both (printed to stdout on success).

    build_model.py --out DIR (--classes a,b,c | --labels FILE) [--arch xception] [--image-size 299]
        [--weights imagenet|none|PATH.h5] [--precision float32|mixed_bfloat16|mixed_float16]
        [--dense-units 1024] [--dropout 0.0] [--unfreeze-from block11] [--seed 42]
        [--head-optimizer adam] [--finetune-optimizer adam]
        [--init-from CHECKPOINT_PREFIX] [--jit-compile] [--gradient-checkpointing] [--overwrite]

--image-size and --unfreeze-from default to the architecture's own
(scripts/archs.json: Xception 299 px and block11). An optimizer is adam,
adamw[:weight_decay=0.004] or sgd[:momentum=0.9,nesterov=false].

Exit codes: 0 built, 2 bad arguments, 3 base weights that cannot be had,
1 anything else, 130 interrupted. A failure prints one stderr line starting
with "error: " (XCEPT_DEBUG=1 adds the traceback of an unexpected error);
progress goes to stderr too.

With --weights none the BatchNorm moving statistics are calibrated on seeded
noise (see xcept_model.calibrate_batchnorm) so that the untrained base gives
usable features; the same flags always build the same weights.

With --init-from the model's weights come from a checkpoint that a trainer
or serving model saved through its SaverDef (keys model/...), and --weights
is not loaded: fine-tuning at another --unfreeze-from rebuilds the trainer
this way. Its optimizers start fresh.

serving/ is complete for deployment: serving_default takes encoded images
(TF Serving's {"b64": ...}), and the class names are its assets/labels.txt.
"""

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import sys
import time

# tf-keras, never Keras 3 (see xcept_model.py); set before anything imports tensorflow.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

EXIT_FAILURE, EXIT_USAGE, EXIT_WEIGHTS, EXIT_INTERRUPTED = 1, 2, 3, 130
MIN_IMAGE_SIZE = 71  # Xception's smallest input (every architecture's: min_image_size in archs.json)
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
DOWNLOAD_TIMEOUT_SECONDS = 20  # an offline machine must fail fast, not hang
FORMAT_VERSION = 1
# 2: eval_head_step, --init-from, serving_default on encoded images; 3: temperature; 4: --feature-blocks;
# 5: the feature mask (set_feature_mask, feature_choices); 6: --arch, the optimizers
BUILDER_VERSION = 6
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


class UsageError(Exception):
    """A bad flag or input file found before TensorFlow is imported (exit 2)."""


class WeightsFileError(Exception):
    """A --weights file that is missing or not HDF5 (exit 3)."""


class Interrupted(Exception):
    """SIGINT or SIGTERM: unwinds so that the temporary folder is removed."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own errors: one line, exit 2
        raise UsageError(message)


def parse_args(argv):
    p = _Parser(prog="build_model.py", description="Build the xcept Keras Xception model folder.")
    p.add_argument("--out", required=True, help="output folder (built atomically)")
    names = p.add_mutually_exclusive_group(required=True)
    names.add_argument("--classes", help="comma-separated class names")
    names.add_argument("--labels", help="file with one class name per line")
    p.add_argument("--arch", default="xception", help="backbone: one of scripts/archs.json (xception, mobilenet_v2, ...)")
    p.add_argument("--image-size", type=int, help="default: the architecture's (Xception 299)")
    p.add_argument("--weights", default="imagenet", help="imagenet | none | PATH.h5")
    p.add_argument("--precision", default="float32", choices=PRECISIONS)
    p.add_argument("--dense-units", type=int, default=1024)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--unfreeze-from", help="block (Xception: block1..block14) or layer name; default: the architecture's")
    p.add_argument(
        "--feature-blocks",
        help="auto (the default: the trainer chooses between block14 alone and block4,block8,block12,block14 "
        "on the validation split) or comma-separated Xception blocks, shallowest first, whose pooled outputs the head reads",
    )
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--head-optimizer", default="adam", help="the frozen phase's optimizer (train.optimizer)")
    p.add_argument("--finetune-optimizer", default="adam", help="fine-tuning's optimizer (finetune.optimizer)")
    p.add_argument("--init-from", help="checkpoint prefix (PREFIX.index exists) whose model weights to start from")
    p.add_argument(
        "--jit-compile",
        action="store_true",
        help="XLA-compile the training and inference signatures (runtime.jit_compile; tf.function jit_compile)",
    )
    p.add_argument(
        "--gradient-checkpointing",
        action="store_true",
        help="fine-tuning recomputes the trained base's activations in the backward pass "
        "instead of keeping them (finetune.gradient_checkpointing; tf.recompute_grad)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    return p.parse_args(argv)


def read_classes(args):
    if args.classes is not None:
        names, source = args.classes.split(","), "--classes"
    else:
        try:
            with open(args.labels, encoding="utf-8") as f:
                names = [line.strip() for line in f if line.strip()]
        except OSError as e:
            raise UsageError(f"--labels {args.labels}: {e.strerror}; pass a file with one class name per line")
        except UnicodeDecodeError:
            raise UsageError(f"--labels {args.labels}: not UTF-8 text; pass a file with one class name per line")
        source = f"--labels {args.labels}"
    names = [n.strip() for n in names]
    if any(not n for n in names):
        raise UsageError(f"{source}: empty class name; remove the empty entry")
    if len(names) < 2:
        raise UsageError(f"{source}: {len(names)} class(es); a classifier needs at least 2")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UsageError(f"{source}: duplicate class name(s) {', '.join(dupes)}; class names must be unique")
    return tuple(names)


def resolve_weights(value):
    """'imagenet', 'none', or the absolute path of an HDF5 file (checked here
    so that a typo fails before TensorFlow takes seconds to import)."""
    if value in ("imagenet", "none"):
        return value
    path = os.path.abspath(value)
    try:
        with open(path, "rb") as f:
            head = f.read(len(HDF5_MAGIC))
    except OSError as e:
        raise WeightsFileError(
            f"--weights {path}: {e.strerror}; pass a Keras Xception notop .h5 file, imagenet or none"
        )
    if head != HDF5_MAGIC:
        raise WeightsFileError(
            f"--weights {path}: not an HDF5 file; pass a Keras Xception notop .h5 file, imagenet or none"
        )
    return path


def resolve_init_from(prefix):
    """The absolute prefix of an existing checkpoint, or None."""
    if prefix is None:
        return None
    path = os.path.abspath(prefix)
    if not os.path.isfile(path + ".index"):
        raise UsageError(
            f"--init-from {path}: no checkpoint there ({os.path.basename(path)}.index not found); "
            "pass a checkpoint prefix such as runs/NAME/checkpoints/best/ckpt"
        )
    return path


def validate(args):
    """Checks every flag that needs no TensorFlow; returns the config fields."""
    import backbones  # the table alone: no TensorFlow

    try:
        arch = backbones.get(args.arch)
    except KeyError as e:
        raise UsageError(e.args[0]) from None
    if args.image_size is not None and args.image_size < arch.min_image_size:
        raise UsageError(f"--image-size {args.image_size}: {arch.display} needs at least {arch.min_image_size}")
    if args.dense_units < 1:
        raise UsageError(f"--dense-units {args.dense_units}: must be at least 1")
    if not 0.0 <= args.dropout < 1.0:
        raise UsageError(f"--dropout {args.dropout}: must be in [0, 1)")
    if args.seed < 0:
        raise UsageError(f"--seed {args.seed}: must be non-negative")
    out = os.path.abspath(args.out)
    if os.path.lexists(out) and not args.overwrite:
        raise UsageError(f"--out {out}: already exists; pass --overwrite to replace it")
    if not os.path.isdir(os.path.dirname(out)):
        raise UsageError(f"--out {out}: parent folder does not exist; create it first")
    optional = {}
    if args.feature_blocks is not None and args.feature_blocks.strip() != "auto":
        # auto is ModelConfig's default; a list is the head's input, nothing to choose.
        blocks = tuple(b.strip() for b in args.feature_blocks.split(","))
        optional["feature_blocks"], optional["feature_choices"] = blocks, (blocks,)
    if args.image_size is not None:
        optional["image_size"] = args.image_size
    if args.unfreeze_from is not None:
        optional["unfreeze_from"] = args.unfreeze_from
    return dict(
        **optional,
        arch=arch.name,
        head_optimizer=args.head_optimizer,
        finetune_optimizer=args.finetune_optimizer,
        classes=read_classes(args),
        weights=resolve_weights(args.weights),
        precision=args.precision,
        dense_units=args.dense_units,
        dropout=args.dropout,
        seed=args.seed,
        init_from=resolve_init_from(args.init_from),
        jit_compile=args.jit_compile,
        gradient_checkpointing=args.gradient_checkpointing,
    )


def progress(msg):
    print(msg, file=sys.stderr, flush=True)


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def saved_signatures(directory):
    """Signature key → inputs/outputs (key → dtype, shape) as written in the
    SavedModel's MetaGraphDef: exactly what the C API will see."""
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    sm = saved_model_pb2.SavedModel()
    with open(os.path.join(directory, "saved_model.pb"), "rb") as f:
        sm.ParseFromString(f.read())
    (meta,) = sm.meta_graphs

    def tensors(infos):
        return {
            key: {
                "dtype": tf.dtypes.as_dtype(info.dtype).name,
                "shape": [d.size for d in info.tensor_shape.dim],
            }
            for key, info in infos.items()
        }

    return {
        name: {"inputs": tensors(sig.inputs), "outputs": tensors(sig.outputs)}
        for name, sig in meta.signature_def.items()
        if not name.startswith("__")  # __saved_model_init_op is not a signature to run
    }


def describe(cfg, trainer, tmp):
    import tensorflow as tf
    import tf_keras as keras
    import xcept_model as xm

    arch = cfg.backbone
    deepest = cfg.feature_blocks[-1]
    blocks = arch.blocks[: arch.blocks.index(deepest) + 1] if deepest in arch.blocks else arch.blocks
    base = trainer.base
    return {
        "format_version": FORMAT_VERSION,
        "builder_version": BUILDER_VERSION,
        # The backbone (model.arch) and what the head and Grad-CAM read of it.
        "arch": arch.name,
        "gradcam_layer": xm.block_end(base, deepest, arch).name,
        "optimizers": {
            "train": xm.optimizer_spec(*xm.parse_optimizer(cfg.head_optimizer)),
            "finetune": xm.optimizer_spec(*xm.parse_optimizer(cfg.finetune_optimizer)),
        },
        "parameters": int(trainer.model.count_params()),
        "classes": list(cfg.classes),
        "num_classes": cfg.num_classes,
        "image_size": cfg.image_size,
        "weights": cfg.weights,
        "weights_sha256": sha256_of(cfg.weights) if os.path.isabs(cfg.weights) else None,
        "precision": cfg.precision,
        # runtime.jit_compile: the signatures of xm.JIT_METHODS are XLA-compiled.
        "jit_compile": cfg.jit_compile,
        # finetune.gradient_checkpointing: finetune_step recomputes the trained
        # base's activations, in segments ending at these layers.
        "gradient_checkpointing": cfg.gradient_checkpointing,
        "recompute_segments": trainer._recompute.end_names if cfg.gradient_checkpointing else [],
        "dense_units": cfg.dense_units,
        "dropout": cfg.dropout,
        "unfreeze_from": cfg.unfreeze_from,
        "seed": cfg.seed,
        "init_from": cfg.init_from,
        "feature_blocks": list(cfg.feature_blocks),
        "feature_dim": xm.feature_dim_of(cfg.feature_blocks, arch),
        # The subsets of feature_blocks the trainer may choose the head's
        # input among (set_feature_mask), the first until it has chosen, and
        # each tap's width in the concatenated features.
        "feature_choices": [list(c) for c in cfg.feature_choices],
        "feature_widths": [arch.width(b) for b in cfg.feature_blocks],
        # The blocks the base has (--unfreeze-from may name any of them).
        "blocks": list(blocks),
        "trainable_variables": {
            "train_step": len(trainer.head_variables()),
            "train_head_step": len(trainer.head_variables()),
            "finetune_step": len(trainer.finetune_variables()),
        },
        "signatures": {
            "trainer": saved_signatures(os.path.join(tmp, "trainer")),
            "serving": saved_signatures(os.path.join(tmp, "serving")),
        },
        "tensorflow_version": tf.__version__,
        "keras_version": keras.__version__,
    }


def build(cfg, tmp):
    """Writes trainer/, serving/ and model.json into tmp; returns model.json's text."""
    import xcept_model as xm

    started = time.monotonic()
    source = f"checkpoint {cfg.init_from}" if cfg.init_from else f"weights {cfg.weights}"
    progress(f"building {cfg.backbone.display} {cfg.image_size} px, {cfg.num_classes} classes, {source}, {cfg.precision}")
    xm.check_feature_blocks(cfg.feature_blocks, cfg.unfreeze_from, cfg.backbone)
    if cfg.init_from:
        shapes = xm.checkpoint_model_shapes(cfg.init_from)
        xm.check_checkpoint_arch(cfg, shapes)
        xm.check_checkpoint_head(cfg, shapes)
    model = xm.build_keras_model(cfg)
    if cfg.init_from:
        xm.restore_model(model, cfg, shapes)
    trainer = xm.XceptModule(model, cfg, training=True)
    progress(f"saving trainer ({time.monotonic() - started:.1f} s)")
    save_trainer(trainer, cfg, os.path.join(tmp, "trainer"))
    progress(f"saving serving ({time.monotonic() - started:.1f} s)")
    # The asset's source must be named as it will be in assets/; it lives
    # in a folder of its own that is removed once saved.
    assets = os.path.join(tmp, "assets-src")
    os.mkdir(assets)
    labels = os.path.join(assets, xm.LABELS_ASSET)
    with open(labels, "w", encoding="utf-8") as f:
        f.write("".join(name + "\n" for name in cfg.classes))
    serving = xm.XceptModule(model, cfg, training=False, labels_file=labels)
    xm.save(serving, xm.serving_signatures(cfg.image_size), os.path.join(tmp, "serving"))
    shutil.rmtree(assets)
    text = json.dumps(describe(cfg, trainer, tmp), sort_keys=True, indent=2) + "\n"
    with open(os.path.join(tmp, "model.json"), "w", encoding="utf-8") as f:
        f.write(text)
    progress(f"built in {time.monotonic() - started:.1f} s")
    return text


def save_trainer(trainer, cfg, directory):
    """The trainer's signatures and their data-parallel variants (xcept_dp)."""
    import tensorflow as tf
    import xcept_dp
    import xcept_model as xm

    dim = xm.feature_dim_of(cfg.feature_blocks, cfg.backbone)
    signatures = xm.concrete_signatures(trainer, xm.trainer_signatures(cfg.image_size, dim))
    signatures.update(xcept_dp.concrete_signatures(trainer, cfg.image_size, dim))
    # tf.recompute_grad's gradient (gradient checkpointing) cannot be traced
    # again for saving; nothing differentiates the loaded steps, which hold
    # their gradients already.
    options = tf.saved_model.SaveOptions(experimental_custom_gradients=not cfg.gradient_checkpointing)
    with xm._without_keras_traces():
        tf.saved_model.save(trainer, directory, signatures=signatures, options=options)


def remove_stale_tmp(out):
    """Removes DIR.tmp-<pid> folders left by builds that were killed."""
    parent, name = os.path.split(out)
    pattern = re.compile(re.escape(name) + r"\.tmp-(\d+)$")
    for entry in os.listdir(parent):
        m = pattern.match(entry)
        if m and int(m.group(1)) != os.getpid() and not _alive(int(m.group(1))):
            shutil.rmtree(os.path.join(parent, entry), ignore_errors=True)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def publish(tmp, out):
    """Moves the finished build to out, replacing an old one only now."""
    if os.path.lexists(out):
        old = f"{out}.old-{os.getpid()}"
        os.rename(out, old)
        os.rename(tmp, out)
        shutil.rmtree(old) if os.path.isdir(old) else os.remove(old)
    else:
        os.rename(tmp, out)


def run(args):
    fields = validate(args)
    out = os.path.abspath(args.out)
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_SECONDS)
    import xcept_model as xm  # imports TensorFlow: after every cheap check

    _quiet_tensorflow()
    cfg = xm.ModelConfig(**fields)
    remove_stale_tmp(out)
    tmp = f"{out}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.mkdir(tmp)
    try:
        text = build(cfg, tmp)
        publish(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return text


def _quiet_tensorflow():
    """Keeps TensorFlow's Python-side warnings (untraced functions, absl
    notices) off stderr, where the user reads progress and the error line."""
    import logging

    import tensorflow as tf

    tf.get_logger().setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)


def _raise_interrupted(signum, frame):
    raise Interrupted(signal.Signals(signum).name)


def main(argv):
    try:
        args = parse_args(argv)  # before the redirect below, so --help goes to stdout
    except UsageError as e:
        return fail(e, EXIT_USAGE)
    # Keras prints download progress to stdout; stdout must hold only the JSON,
    # so fd 1 points at stderr during the build and the JSON goes to the original.
    json_out = os.fdopen(os.dup(1), "w")
    sys.stdout.flush()
    os.dup2(2, 1)
    signal.signal(signal.SIGTERM, _raise_interrupted)
    signal.signal(signal.SIGINT, _raise_interrupted)
    try:
        text = run(args)
    except UsageError as e:
        return fail(e, EXIT_USAGE)
    except WeightsFileError as e:
        return fail(e, EXIT_WEIGHTS)
    except Interrupted as e:
        return fail(f"interrupted by {e}; nothing was written", EXIT_INTERRUPTED)
    except Exception as e:
        return fail_from_model(e)
    json_out.write(text)
    json_out.flush()
    return 0


def fail_from_model(e):
    """Maps errors raised after TensorFlow was imported."""
    xm = sys.modules.get("xcept_model")
    if xm is not None and isinstance(e, xm.ConfigError):
        return fail(e, EXIT_USAGE)
    if xm is not None and isinstance(e, xm.WeightsError):
        return fail(e, EXIT_WEIGHTS)
    if os.environ.get("XCEPT_DEBUG"):
        import traceback

        traceback.print_exc()
    return fail(f"building the model failed: {type(e).__name__}: {e}", EXIT_FAILURE)


def fail(message, code):
    print("error: " + " ".join(str(message).split()), file=sys.stderr, flush=True)
    return code


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    sys.exit(main(sys.argv[1:]))
