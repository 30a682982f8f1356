"""Keras baselines of `make bench` (scripts/bench.sh): the recipe's model.fit,
on the same prepared dataset, image size, batch and threads as xcept.

    bench_keras.py export --dataset DS --out DIR
        writes DS's train and val records as DIR/{train,val}/CLASS/*.jpg, the
        image folder ImageDataGenerator.flow_from_directory reads: the same
        images (the same bytes xcept trains on) and the same split.
    bench_keras.py fit --dataset DS --pipeline idg|tfdata --phase frozen|finetune ...
        trains and prints one JSON line per epoch on stdout (epoch, seconds,
        images_per_second, loss, ...), as `xcept --json train` does.

The model is the recipe's: Xception(include_top=False, weights=None) →
GlobalAveragePooling → Dense(1024, relu) → Dense(N, softmax), Adam, with the
recipe's callbacks (ModelCheckpoint of the best val_accuracy to .h5,
EarlyStopping, ReduceLROnPlateau). Two deliberate departures from the
recipe, neither of which changes speed: inputs are scaled by Xception's own
preprocess_input ([-1, 1]) instead of 1/255, and validation images are not
augmented. As in xcept's weights=none model, the random base's BatchNorm
statistics are calibrated once, so that the head can learn.

Epoch seconds run from on_epoch_begin to the end of validation, before the
checkpoint is written: xcept's epoch `seconds` cover the same span.
"""

import argparse
import json
import math
import os
import sys
import time
import types

# tf-keras is the Keras of the recipe (tf.keras in TF 2.x, which had
# ImageDataGenerator); it must be chosen before tensorflow is imported.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

import xcept_model  # noqa: E402  (xcept's fine-tuning boundary and weights=none BatchNorm calibration)

# The recipe's ImageDataGenerator augmentation, which is also xcept's default.
RECIPE = dict(
    rotation_range=20,
    width_shift_range=0.2,
    height_shift_range=0.2,
    shear_range=0.2,
    zoom_range=0.2,
    horizontal_flip=True,
    fill_mode="nearest",
)

FEATURES = {
    "image/encoded": tf.io.FixedLenFeature([], tf.string),
    "image/class/label": tf.io.FixedLenFeature([], tf.int64),
    "image/filename": tf.io.FixedLenFeature([], tf.string),
}


# --- the prepared dataset ------------------------------------------------------


class Dataset:
    """What bench_keras needs of an xcept dataset folder (manifest.json)."""

    def __init__(self, folder):
        with open(os.path.join(folder, "manifest.json")) as f:
            manifest = json.load(f)
        self.folder = folder
        self.image_size = manifest["image"]["size"]
        self.classes = [c["name"] for c in sorted(manifest["classes"], key=lambda c: c["label"])]
        self.splits = {s["name"]: s for s in manifest["splits"]}

    def shards(self, split):
        return [os.path.join(self.folder, s["file"]) for s in self.splits[split]["shards"]]

    def count(self, split):
        return self.splits[split]["records"]


def export_images(ds, out):
    """Writes the train and val records' encoded images to out/SPLIT/CLASS/.
    A numbered prefix keeps names unique when two classes share a file name."""
    for split in ("train", "val"):
        n = 0
        for record in tf.data.TFRecordDataset(ds.shards(split)):
            ex = tf.io.parse_single_example(record, FEATURES)
            label = int(ex["image/class/label"])
            name = os.path.basename(ex["image/filename"].numpy().decode("utf-8", "replace"))
            folder = os.path.join(out, split, ds.classes[label])
            os.makedirs(folder, exist_ok=True)
            stem = os.path.splitext(name)[0]
            with open(os.path.join(folder, f"{n:06d}_{stem}.jpg"), "wb") as f:
                f.write(ex["image/encoded"].numpy())
            n += 1
        if n != ds.count(split):
            raise SystemExit(f"{ds.folder}: {split} holds {n} records, the manifest says {ds.count(split)}")


# --- the model -----------------------------------------------------------------


def build_model(ds, phase, unfreeze_from, seed, weights=None):
    """The recipe's model. frozen: the whole base is frozen. finetune: base
    layers from unfreeze_from upward train, BatchNormalization excepted (a
    frozen BatchNorm runs in inference mode in tf-keras), as xcept's
    finetune_step does. weights: a Keras Xception notop .h5, or None for a
    random base."""
    keras.backend.clear_session()  # layer names (conv2d_N) as in a fresh process
    keras.utils.set_random_seed(seed)
    size = ds.image_size
    base = keras.applications.Xception(weights=weights, include_top=False, input_shape=(size, size, 3))
    if weights is None:
        # As xcept's weights=none model: without it the random base's features
        # vanish and the head cannot learn (speed is the same either way, but a
        # baseline that learns shows it is a working trainer).
        xcept_model.calibrate_batchnorm(base, types.SimpleNamespace(image_size=size, seed=seed))
    set_phase(base, phase, unfreeze_from)
    x = keras.layers.GlobalAveragePooling2D()(base.output)
    x = keras.layers.Dense(1024, activation="relu")(x)
    outputs = keras.layers.Dense(len(ds.classes), activation="softmax")(x)
    return keras.Model(inputs=base.input, outputs=outputs), base


def set_phase(base, phase, unfreeze_from):
    if phase == "frozen":
        base.trainable = False
        return
    base.trainable = True
    start = xcept_model.block_start(base, unfreeze_from)
    for i, layer in enumerate(base.layers):
        layer.trainable = i >= start and not isinstance(layer, keras.layers.BatchNormalization)


# --- input pipelines -----------------------------------------------------------


def idg_pipeline(ds, images, batch, seed):
    """The recipe's flow_from_directory generators (Xception's scaling)."""
    preprocess = keras.applications.xception.preprocess_input
    size = (ds.image_size, ds.image_size)
    train = keras.preprocessing.image.ImageDataGenerator(preprocessing_function=preprocess, **RECIPE)
    val = keras.preprocessing.image.ImageDataGenerator(preprocessing_function=preprocess)
    common = dict(target_size=size, batch_size=batch, class_mode="categorical", classes=ds.classes)
    return (
        train.flow_from_directory(os.path.join(images, "train"), shuffle=True, seed=seed, **common),
        val.flow_from_directory(os.path.join(images, "val"), shuffle=False, **common),
    )


def affine_rows(theta, tx, ty, shear, zx, zy, flip, size):
    """ImageProjectiveTransformV3 rows [a0 a1 a2 b0 b1 b2 c0 c1], which map
    an output pixel (x, y) = (column, row) to the input point it samples,
    for ImageDataGenerator's transform: about the image centre, rotate ·
    shift · shear · zoom (Keras's matrix order), then a horizontal flip when
    flip is -1. Angles in radians, shifts in pixels; each argument holds one
    value per image. Keras builds its matrix in (column, row) order too (it
    swaps axes before scipy), so its tx is a column shift."""
    cos, sin = tf.cos(theta), tf.sin(theta)
    # The linear part R·Sh·Z ...
    m00, m01 = cos * zx, (-cos * tf.sin(shear) - sin * tf.cos(shear)) * zy
    m10, m11 = sin * zx, (-sin * tf.sin(shear) + cos * tf.cos(shear)) * zy
    # ... and the shift, rotated (R·T).
    t0, t1 = cos * tx - sin * ty, sin * tx + cos * ty
    # input = c + M·F·(output - c) + t, F mirroring the column.
    a0, a1, b0, b1 = m00 * flip, m01, m10 * flip, m11
    c = (size - 1) / 2.0
    a2 = c + t0 - (a0 + a1) * c
    b2 = c + t1 - (b0 + b1) * c
    zero = tf.zeros_like(a0)
    return tf.stack([a0, a1, a2, b0, b1, b2, zero, zero], axis=-1)


def random_affine(n, size, rng):
    """n transforms drawn as ImageDataGenerator(**RECIPE) draws them."""
    deg = math.pi / 180
    rot, shift = RECIPE["rotation_range"], RECIPE["width_shift_range"] * size
    shear, zoom = RECIPE["shear_range"], RECIPE["zoom_range"]
    return affine_rows(
        theta=rng.uniform([n], -rot, rot) * deg,
        tx=rng.uniform([n], -shift, shift),
        ty=rng.uniform([n], -shift, shift),
        shear=rng.uniform([n], -shear, shear) * deg,
        zx=rng.uniform([n], 1 - zoom, 1 + zoom),
        zy=rng.uniform([n], 1 - zoom, 1 + zoom),
        flip=tf.where(rng.uniform([n]) < 0.5, -1.0, 1.0),
        size=size,
    )


def augment_batch(images, size, rng):
    """One bilinear resampling per image with nearest fill, as Keras's
    apply_affine_transform (scipy, order 1, mode nearest)."""
    n = tf.shape(images)[0]
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=random_affine(n, size, rng),
        output_shape=[size, size],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="NEAREST",
    )


def tfdata_pipeline(ds, batch, seed):
    """TFRecordDataset on xcept's shards → parse, decode (parallel) →
    shuffle → batch → augment (vectorised over the batch) → prefetch."""
    size, classes = ds.image_size, len(ds.classes)
    rng = tf.random.Generator.from_seed(seed)

    def decode(record):
        ex = tf.io.parse_single_example(record, FEATURES)
        image = tf.io.decode_jpeg(ex["image/encoded"], channels=3)
        image = tf.ensure_shape(image, [size, size, 3])
        return image, tf.one_hot(ex["image/class/label"], classes)

    def scale(images, labels):
        return tf.cast(images, tf.float32) / 127.5 - 1.0, labels

    def augmented(images, labels):
        return scale(augment_batch(images, size, rng), labels)

    auto = tf.data.AUTOTUNE
    train = (
        tf.data.TFRecordDataset(ds.shards("train"))
        .shuffle(ds.count("train"), seed=seed, reshuffle_each_iteration=True)
        .map(decode, num_parallel_calls=auto)
        .batch(batch)
        .map(augmented, num_parallel_calls=auto)
        .prefetch(auto)
    )
    val = tf.data.TFRecordDataset(ds.shards("val")).map(decode, num_parallel_calls=auto).batch(batch).map(scale).prefetch(auto)
    return train, val


def tfdata_eval(ds, split, batch):
    """A split's images in order, unaugmented, scaled as in training."""
    size, classes = ds.image_size, len(ds.classes)

    def decode(record):
        ex = tf.io.parse_single_example(record, FEATURES)
        image = tf.ensure_shape(tf.io.decode_jpeg(ex["image/encoded"], channels=3), [size, size, 3])
        return tf.cast(image, tf.float32) / 127.5 - 1.0, tf.one_hot(ex["image/class/label"], classes)

    return tf.data.TFRecordDataset(ds.shards(split)).map(decode, num_parallel_calls=tf.data.AUTOTUNE).batch(batch).prefetch(tf.data.AUTOTUNE)


# --- training ------------------------------------------------------------------


class EpochTimer(keras.callbacks.Callback):
    """Prints xcept-style epoch JSON lines. It must come first in the
    callback list, so that its on_epoch_end (after validation) runs before
    the checkpoint is written."""

    def __init__(self, images, out=sys.stdout):
        super().__init__()
        self.images, self.out = images, out

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self.start
        line = {"epoch": epoch + 1, "seconds": seconds, "images_per_second": self.images / seconds}
        line.update({k: float(v) for k, v in (logs or {}).items()})
        print(json.dumps(line), file=self.out, flush=True)


def recipe_callbacks(workdir):
    return [
        keras.callbacks.ModelCheckpoint(
            os.path.join(workdir, "best_model.h5"), monitor="val_accuracy", save_best_only=True, mode="max"
        ),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=10, restore_best_weights=True),
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.2, patience=5, min_lr=1e-7),
    ]


def fit(args):
    # Before any op runs: TensorFlow fixes its thread pools on first use.
    tf.config.threading.set_intra_op_parallelism_threads(args.intra_op_threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.inter_op_threads)
    ds = Dataset(args.dataset)
    if args.pipeline == "idg":
        if not args.images:
            raise SystemExit("--pipeline idg needs --images DIR (made by `bench_keras.py export`)")
        train, val = idg_pipeline(ds, args.images, args.batch_size, args.seed)
    else:
        train, val = tfdata_pipeline(ds, args.batch_size, args.seed)
    phase = "frozen" if args.phase == "recipe" else args.phase
    model, base = build_model(ds, phase, args.unfreeze_from, args.seed, args.weights)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=args.lr), loss="categorical_crossentropy", metrics=["accuracy"])
    os.makedirs(args.workdir, exist_ok=True)
    callbacks = [EpochTimer(ds.count("train"))] + recipe_callbacks(args.workdir)
    model.fit(train, validation_data=val, epochs=args.epochs, callbacks=callbacks, verbose=0)
    if args.phase == "recipe":
        # The recipe's second phase: the best frozen-phase model (EarlyStopping
        # restored it, or the last epoch was the best), top blocks unfrozen,
        # recompiled at the fine-tuning learning rate, the same callbacks.
        set_phase(base, "finetune", args.unfreeze_from)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=args.finetune_lr), loss="categorical_crossentropy", metrics=["accuracy"])
        callbacks = [EpochTimer(ds.count("train"))] + recipe_callbacks(args.workdir)
        model.fit(train, validation_data=val, epochs=args.finetune_epochs, callbacks=callbacks, verbose=0)
    if args.test:
        # The recipe ends with the best checkpoint (ModelCheckpoint, val_accuracy).
        model.load_weights(os.path.join(args.workdir, "best_model.h5"))
        loss, acc = model.evaluate(tfdata_eval(ds, "test", args.batch_size), verbose=0)
        print(json.dumps({"test_loss": float(loss), "test_accuracy": float(acc), "test_images": ds.count("test")}), flush=True)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("export", help="write a dataset's train and val images as a class-folder tree")
    e.add_argument("--dataset", required=True)
    e.add_argument("--out", required=True)
    f = sub.add_parser("fit", help="train the recipe's model with model.fit")
    f.add_argument("--dataset", required=True, help="xcept prepared dataset (image size, classes, shards)")
    f.add_argument("--pipeline", choices=("idg", "tfdata"), required=True)
    f.add_argument("--phase", choices=("frozen", "finetune", "recipe"), default="frozen", help="recipe: frozen for --epochs, then fine-tuned for --finetune-epochs")
    f.add_argument("--images", help="image folder from `export` (--pipeline idg)")
    f.add_argument("--workdir", required=True, help="where the recipe's best_model.h5 goes")
    f.add_argument("--epochs", type=int, default=3)
    f.add_argument("--batch-size", type=int, default=32)
    f.add_argument("--lr", type=float, default=1e-4)
    f.add_argument("--finetune-epochs", type=int, default=3, help="--phase recipe: epochs of the second phase")
    f.add_argument("--finetune-lr", type=float, default=1e-5, help="--phase recipe: learning rate of the second phase")
    f.add_argument("--weights", help="Keras Xception notop .h5 (default: a random base, BatchNorm calibrated)")
    f.add_argument("--test", action="store_true", help="afterwards, evaluate the best checkpoint on the test split and print test_accuracy")
    f.add_argument("--unfreeze-from", default="block11")
    f.add_argument("--intra-op-threads", type=int, default=0)
    f.add_argument("--inter-op-threads", type=int, default=0)
    f.add_argument("--seed", type=int, default=42)
    return p.parse_args(argv)


def main(argv):
    args = parse_args(argv)
    if args.command == "export":
        export_images(Dataset(args.dataset), args.out)
    else:
        fit(args)


if __name__ == "__main__":
    main(sys.argv[1:])
