"""Tests of the benchmark's Python parts: the Keras baseline's augmentation
against Keras's own, its input pipelines and fine-tuning boundary, the
process recorder and the report's arithmetic.

Run: .venv/bin/python -m pytest scripts/bench_test.py -q
"""

import json
import math
import os
import subprocess
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402
from tf_keras.src.preprocessing.image import apply_affine_transform  # noqa: E402

import bench_keras  # noqa: E402
import bench_report  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CLASSES = ["circle", "square"]


# --- bench_keras: augmentation ------------------------------------------------


@pytest.mark.parametrize(
    "theta,tx,ty,shear,zx,zy,flip",
    [
        (0, 0, 0, 0, 1, 1, False),
        (15, 5, -3, 10, 1.1, 0.9, False),
        (-7, -8, 9, -0.2, 0.85, 1.15, False),
        (20, 0, 6, 0.2, 1.2, 1.2, True),
        (0, 12, 0, 0, 1, 1, True),
    ],
)
def test_affine_rows_match_keras(theta, tx, ty, shear, zx, zy, flip):
    """One ImageProjectiveTransformV3 resampling reproduces Keras's
    apply_affine_transform (then flip_axis) for the same parameters."""
    size = 48
    rng = np.random.default_rng(1)
    # Smooth content: bilinear sampling then differs only by rounding.
    yy, xx = np.mgrid[0:size, 0:size]
    image = np.stack([xx * 5.0, yy * 5.0, (xx + yy) * 2.0 + rng.uniform(0, 1, (size, size))], axis=-1).astype(np.float32)
    want = apply_affine_transform(
        image.copy(), theta=theta, tx=tx, ty=ty, shear=shear, zx=zx, zy=zy,
        row_axis=0, col_axis=1, channel_axis=2, fill_mode="nearest", order=1,
    )
    if flip:
        want = want[:, ::-1]
    deg = math.pi / 180
    rows = bench_keras.affine_rows(
        *(tf.constant([v], tf.float32) for v in (theta * deg, tx, ty, shear * deg, zx, zy, -1.0 if flip else 1.0)), size
    )
    got = tf.raw_ops.ImageProjectiveTransformV3(
        images=image[None], transforms=rows, output_shape=[size, size], fill_value=0.0,
        interpolation="BILINEAR", fill_mode="NEAREST",
    )[0].numpy()
    np.testing.assert_allclose(got, want, atol=0.01)


def test_random_affine_stays_in_recipe_ranges():
    """Drawn transforms are identities on average and never exceed the
    recipe's zoom: the scale of each row lies within [0.8, 1.2]."""
    rows = bench_keras.random_affine(2000, 100, tf.random.Generator.from_seed(3)).numpy()
    scale = np.sqrt(np.abs(rows[:, 0] * rows[:, 4] - rows[:, 1] * rows[:, 3]))
    assert scale.min() >= 0.8 * 0.99 and scale.max() <= 1.2 * 1.01
    assert np.mean(rows[:, 0] < 0) == pytest.approx(0.5, abs=0.05)  # horizontal flips, half the time
    assert np.abs(np.mean(rows[:, 2] - 49.5 * (1 - rows[:, 0] - rows[:, 1]))) < 1.0  # shifts centred


# --- bench_keras: dataset, pipelines, model -------------------------------------


def write_dataset(folder, size, counts):
    """A minimal xcept dataset: manifest.json and one JPEG TFRecord shard
    per split; counts maps split → images per class."""
    os.makedirs(folder, exist_ok=True)
    splits = []
    rng = np.random.default_rng(7)
    for split, per_class in counts.items():
        name = f"{split}-00000-of-00001.tfrecord"
        with tf.io.TFRecordWriter(os.path.join(folder, name)) as w:
            for i in range(per_class * len(CLASSES)):
                label = i % len(CLASSES)
                pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                feature = {
                    "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[tf.io.encode_jpeg(pixels).numpy()])),
                    "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
                    "image/filename": tf.train.Feature(bytes_list=tf.train.BytesList(value=[f"{CLASSES[label]}/same.jpg".encode()])),
                }
                w.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
        splits.append({"name": split, "records": per_class * len(CLASSES), "shards": [{"file": name, "records": per_class * len(CLASSES)}]})
    manifest = {
        "image": {"size": size},
        "classes": [{"name": c, "label": i} for i, c in reversed(list(enumerate(CLASSES)))],  # order by label, not by listing
        "splits": splits,
    }
    with open(os.path.join(folder, "manifest.json"), "w") as f:
        json.dump(manifest, f)
    return bench_keras.Dataset(folder)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ds")
    return write_dataset(str(folder), 32, {"train": 5, "val": 2})


def test_export_writes_every_image_under_its_class(tiny, tmp_path):
    bench_keras.export_images(tiny, str(tmp_path))
    for split, per_class in (("train", 5), ("val", 2)):
        for c in CLASSES:
            files = sorted(os.listdir(tmp_path / split / c))
            # Every record has the same base name: the prefix keeps them apart.
            assert len(files) == per_class, (split, c, files)
            assert all(f.endswith("_same.jpg") for f in files)


def test_tfdata_pipeline_batches(tiny):
    train, val = bench_keras.tfdata_pipeline(tiny, batch=4, seed=1)
    shapes = [(x.shape[0], tuple(x.shape[1:]), tuple(y.shape[1:])) for x, y in train]
    assert shapes == [(4, (32, 32, 3), (2,)), (4, (32, 32, 3), (2,)), (2, (32, 32, 3), (2,))]
    x, y = next(iter(val))
    assert x.dtype == tf.float32 and -1.0 <= float(tf.reduce_min(x)) and float(tf.reduce_max(x)) <= 1.0
    assert y.numpy().sum(axis=1).tolist() == [1.0] * 4  # one-hot
    # Augmented training images differ from the plain ones; validation's do not.
    plain = tf.data.TFRecordDataset(tiny.shards("val")).map(
        lambda r: tf.io.decode_jpeg(tf.io.parse_single_example(r, bench_keras.FEATURES)["image/encoded"], channels=3)
    )
    plain = np.stack([image.numpy().astype(np.float32) / 127.5 - 1 for image in plain])
    np.testing.assert_allclose(x[0].numpy(), plain[0], atol=1e-6)
    train_images, _ = next(iter(train))
    plain_train = tf.data.TFRecordDataset(tiny.shards("train")).map(
        lambda r: tf.io.decode_jpeg(tf.io.parse_single_example(r, bench_keras.FEATURES)["image/encoded"], channels=3)
    )
    plain_train = np.stack([image.numpy().astype(np.float32) / 127.5 - 1 for image in plain_train])
    for image in train_images.numpy():
        assert np.abs(plain_train - image).mean(axis=(1, 2, 3)).min() > 0.05


def test_idg_pipeline_uses_xception_scaling(tiny, tmp_path):
    bench_keras.export_images(tiny, str(tmp_path))
    train, val = bench_keras.idg_pipeline(tiny, str(tmp_path), batch=4, seed=1)
    assert train.samples == 10 and val.samples == 4
    assert list(train.class_indices) == CLASSES
    x, y = val[0]
    assert x.shape == (4, 32, 32, 3) and y.shape == (4, 2)
    assert x.min() >= -1.0 and x.max() <= 1.0 and x.min() < -0.5  # [-1, 1], not 1/255's [0, 1]


def test_finetune_model_trains_from_the_boundary_without_batchnorm():
    ds = bench_keras.Dataset.__new__(bench_keras.Dataset)
    ds.image_size, ds.classes = 71, CLASSES
    model, _ = bench_keras.build_model(ds, "finetune", "block13", seed=1)
    base_layers = [layer for layer in model.layers if layer.weights and not isinstance(layer, keras.layers.Dense)]
    trainable = [layer.name for layer in base_layers if layer.trainable_weights]
    assert trainable[0] == "block13_sepconv1"
    assert "conv2d_3" in trainable  # block13's residual convolution belongs to it
    assert not any(isinstance(model.get_layer(n), keras.layers.BatchNormalization) for n in trainable)
    assert all(not layer.trainable_weights for layer in base_layers[: [b.name for b in base_layers].index("block13_sepconv1")])
    frozen, _ = bench_keras.build_model(ds, "frozen", "block13", seed=1)
    assert len(frozen.trainable_weights) == 4  # the two Dense layers only


def test_fit_prints_xcept_style_epoch_lines(tmp_path):
    """The contract bench_report reads: one JSON line per epoch with seconds
    and images_per_second = training images / seconds; with --phase recipe
    (make bench-real) a frozen then a fine-tuning phase, then one
    test_accuracy line from the best checkpoint on the test split."""
    write_dataset(str(tmp_path / "ds"), 71, {"train": 3, "val": 1, "test": 2})
    out = subprocess.run(
        [sys.executable, os.path.join(HERE, "bench_keras.py"), "fit", "--dataset", str(tmp_path / "ds"),
         "--pipeline", "tfdata", "--workdir", str(tmp_path / "work"), "--epochs", "2", "--batch-size", "4",
         "--phase", "recipe", "--finetune-epochs", "1", "--unfreeze-from", "block13", "--test",
         "--intra-op-threads", "1", "--inter-op-threads", "1"],
        capture_output=True, text=True, timeout=480,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    epochs = [line for line in lines if "epoch" in line]
    assert [line["epoch"] for line in epochs] == [1, 2, 1]  # two frozen epochs, then one fine-tuning epoch
    for line in epochs:
        assert line["images_per_second"] * line["seconds"] == pytest.approx(6)
        assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(line)
    assert os.path.exists(tmp_path / "work" / "best_model.h5")  # the recipe's checkpoint ran
    test = [line for line in lines if "test_accuracy" in line]
    assert len(test) == 1 and test[0]["test_images"] == 4 and 0 <= test[0]["test_accuracy"] <= 1


# --- bench_run -----------------------------------------------------------------


def test_bench_run_records_lines_cpu_and_peak_rss(tmp_path):
    events = tmp_path / "events.jsonl"
    child = (
        "import sys, time\n"
        "print('{\"epoch\": 1}', flush=True)\n"
        "block = b'x' * (300 << 20)\n"  # written, so resident: 300 MB
        "t = time.process_time()\n"
        "while time.process_time() - t < 0.3: pass\n"
        "print('late', file=sys.stderr, flush=True)\n"
        "print('{\"epoch\": 2}', flush=True)\n"
        "sys.exit(3)\n"
    )
    code = subprocess.run(
        [sys.executable, os.path.join(HERE, "bench_run.py"), "--events", str(events), "--", sys.executable, "-c", child],
        capture_output=True, text=True, timeout=60,
    )
    assert code.returncode == 3
    assert "late" in code.stderr  # the failing command's last messages are shown
    evs = [json.loads(line) for line in events.read_text().splitlines()]
    lines = [(e["fd"], e["line"]) for e in evs[:-1]]
    assert ("out", '{"epoch": 1}') in lines and ("err", "late") in lines and ("out", '{"epoch": 2}') in lines
    outs = [e for e in evs[:-1] if e["fd"] == "out"]
    assert outs[1]["cpu"] - outs[0]["cpu"] >= 0.25  # the busy loop's CPU is between the two lines
    assert outs[1]["t"] >= outs[0]["t"]
    summary = evs[-1]
    assert summary["exit"] == 3
    assert 300 * 1024 <= summary["maxrss_kb"] < 1024 * 1024


# --- bench_report --------------------------------------------------------------


def write_events(path, epochs, maxrss_mb, cache_at=None, exit_code=0):
    """epochs: (seconds, images, t, cpu) per epoch line."""
    with open(path, "w") as f:
        if cache_at is not None:
            f.write(json.dumps({"t": cache_at, "cpu": 0, "fd": "err", "line": bench_report.CACHE_NOTE + " once: ..."}) + "\n")
        for i, (seconds, images, t, cpu) in enumerate(epochs):
            line = json.dumps({"epoch": i + 1, "seconds": seconds, "images_per_second": images / seconds})
            f.write(json.dumps({"t": t, "cpu": cpu, "fd": "out", "line": line}) + "\n")
        f.write(json.dumps({"t": 99, "cpu": 1, "fd": "out", "line": '{"result": {}}'}) + "\n")
        f.write(json.dumps({"exit": exit_code, "wall": 100, "user": 1, "sys": 0, "maxrss_kb": maxrss_mb * 1024}) + "\n")


def three_epochs(per_epoch, images=100):
    """First epoch slow (warm-up), then two at per_epoch seconds."""
    return [(30.0, images, 40.0, 50.0), (per_epoch, images, 40 + per_epoch, 50 + 2 * per_epoch), (per_epoch, images, 40 + 2 * per_epoch, 50 + 4 * per_epoch)]


@pytest.fixture
def runs_dir(tmp_path):
    write_events(tmp_path / "keras-idg.jsonl", three_epochs(10.0), 3000)
    write_events(tmp_path / "keras-tfdata.jsonl", three_epochs(8.0), 2800)
    write_events(tmp_path / "keras-finetune.jsonl", three_epochs(16.0), 3200)
    cached = [(2.0, 100, 62.0, 50.0), (0.5, 100, 62.6, 50.4), (0.5, 100, 63.2, 50.8)]
    write_events(tmp_path / "xcept-cached.jsonl", cached, 1500, cache_at=20.0)
    write_events(tmp_path / "xcept-uncached.jsonl", three_epochs(10.0), 2000)  # slower than tf.data's 8 s
    write_events(tmp_path / "xcept-finetune.jsonl", three_epochs(12.0), 3300)  # faster, but more memory
    return tmp_path


def test_report_figures_and_verdicts(runs_dir, capsys):
    assert bench_report.main(["--dir", str(runs_dir), "--setting", "size=299"]) == 0
    out = capsys.readouterr().out
    rows = {line.split("  ")[0]: line for line in out.splitlines()}
    # 200 steady images in 20 s; CPU 40 s from the first to the last epoch line → 200 ms/img.
    assert "10.00" in rows["Keras frozen, ImageDataGenerator"] and " 200 " in rows["Keras frozen, ImageDataGenerator"]
    cached = rows["xcept train, feature cache"]
    assert "200" in cached and "20.00× keras-idg" in cached and "0.50×" in cached and cached.endswith("yes (≥10×: yes, RSS: yes)")
    uncached = rows["xcept train, no cache"]
    assert "0.80× keras-tfdata" in uncached and "NO (≥1×: no, RSS: yes)" in uncached
    finetune = rows["xcept finetune"]
    assert "1.33× keras-finetune" in finetune and "NO (≥1×: yes, RSS: no)" in finetune
    # Cache: notice at 20 s, first epoch line at 62 s after a 2 s epoch → 40 s.
    assert "built once in 40.0 s" in out
    assert "xcept 65 s (cache build included) vs Keras ImageDataGenerator 500 s: 7.7× less" in out
    assert "keras-idg 100 s, keras-tfdata 100 s" in out  # each process's wall time, from its summary
    assert "size: 299" in out and "TARGETS MISSED" in out


@pytest.mark.parametrize(
    "epochs,exit_code,message",
    [
        (three_epochs(8.0)[:1], 0, "1 epoch line(s)"),
        (three_epochs(8.0), 1, "exited with 1"),
    ],
)
def test_report_refuses_unusable_runs(runs_dir, capsys, epochs, exit_code, message):
    write_events(runs_dir / "keras-tfdata.jsonl", epochs, 2800, exit_code=exit_code)
    assert bench_report.main(["--dir", str(runs_dir)]) == 1
    assert message in capsys.readouterr().err
