"""Tests of the export converters and verifiers (export_tflite.py,
export_onnx.py, verify_tflite.py, verify_onnx.py) on a toy SavedModel with
the model's float signature, so that they take seconds: the Go tests run the
same scripts on a real Xception export.

Run: .venv/bin/python -m pytest scripts/verify_export_test.py -q
"""

import argparse
import os
import subprocess
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

import export_onnx  # noqa: E402
import export_tflite  # noqa: E402
import verify_common as vc  # noqa: E402
from conftest import scaled  # noqa: E402
import verify_onnx  # noqa: E402
import verify_tflite  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SIZE, CLASSES = 16, 3


class Toy(tf.Module):
    """predict_images as the real model has it: pixel values 0..255 in,
    [-1, 1] scaling inside, softmax probabilities out."""

    def __init__(self):
        super().__init__()
        rng = np.random.default_rng(3)
        self.kernel = tf.Variable(rng.normal(0, 0.5, (3, 3, 3, 8)).astype(np.float32))
        self.dense = tf.Variable(rng.normal(0, 1.0, (8, CLASSES)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([None, SIZE, SIZE, 3], tf.float32, name="images")])
    def predict_images(self, images):
        x = images / 127.5 - 1.0
        x = tf.nn.relu(tf.nn.conv2d(x, self.kernel, 1, "SAME"))
        x = tf.reduce_mean(x, axis=[1, 2])
        return {"probabilities": tf.nn.softmax(x @ self.dense)}


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("toy") / "savedmodel")
    module = Toy()
    tf.saved_model.save(module, d, signatures={"predict_images": module.predict_images})
    return d, module


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Mid-range pixels only (20..230): calibration alone would not give
    the int8 input a 0..255 range."""
    rng = np.random.default_rng(5)
    x = rng.integers(20, 231, (12, SIZE, SIZE, 3), dtype=np.uint8)
    path = str(tmp_path_factory.mktemp("images") / "images.npy")
    np.save(path, x)
    return path, x


def tflite(toy_dir, out, quantize, representative=None):
    args = argparse.Namespace(saved_model=toy_dir, out=out, signature="predict_images", quantize=quantize, representative=representative)
    return export_tflite.convert(args)


def verify(module, model, images_path, out, batch_size=5):
    args = argparse.Namespace(model=model, images=images_path, out=out, batch_size=batch_size, threads=1, signature="predict_images")
    timing = module.verify(args)
    return np.load(out), timing


def expected(module, x):
    return module.predict_images(tf.constant(x.astype(np.float32)))["probabilities"].numpy()


@pytest.mark.parametrize("quantize,tolerance", [("none", 1e-5), ("float16", 5e-3), ("dynamic", 5e-2)])
def test_float_input_tflite_matches_tensorflow(toy, images, tmp_path, quantize, tolerance):
    d, module = toy
    path, x = images
    model = str(tmp_path / "m.tflite")
    spec = tflite(d, model, quantize)
    assert spec == {
        "name": "predict_images",
        "inputs": [{"name": "images", "dtype": "float32", "shape": [-1, SIZE, SIZE, 3]}],
        "outputs": [{"name": "probabilities", "dtype": "float32", "shape": [-1, CLASSES]}],
    }
    probs, timing = verify(verify_tflite, model, path, str(tmp_path / "p.npy"))
    assert probs.dtype == np.float32 and probs.shape == (len(x), CLASSES)
    assert timing["images"] == len(x) and timing["seconds"] > 0
    np.testing.assert_allclose(probs, expected(module, x), atol=tolerance)


def test_int8_takes_raw_pixel_bytes(toy, images, tmp_path):
    d, module = toy
    path, x = images
    model = str(tmp_path / "m.tflite")
    spec = tflite(d, model, "int8", representative=path)
    (inp,), (out,) = spec["inputs"], spec["outputs"]
    assert inp["dtype"] == "uint8" and inp["quantization"] == {"scale": 1.0, "zero_point": 0}
    assert out["dtype"] == "uint8" and out["quantization"] == {"scale": 1 / 256, "zero_point": 0}
    probs, _ = verify(verify_tflite, model, path, str(tmp_path / "p.npy"), batch_size=4)
    want = expected(module, x)
    assert np.abs(probs - want).max() < 0.05
    assert (probs.argmax(1) == want.argmax(1)).mean() >= 0.75


def test_int8_needs_calibration_images(toy, tmp_path):
    with pytest.raises(vc.UsageError, match="--representative"):
        tflite(toy[0], str(tmp_path / "m.tflite"), "int8")


def test_onnx_matches_tensorflow(toy, images, tmp_path):
    d, module = toy
    path, x = images
    model = str(tmp_path / "m.onnx")
    spec = export_onnx.convert(argparse.Namespace(saved_model=d, out=model, signature="predict_images", opset=17, freeze_only=False))
    assert spec["inputs"] == [{"name": "images", "dtype": "float32", "shape": [-1, SIZE, SIZE, 3]}]
    assert spec["outputs"] == [{"name": "probabilities", "dtype": "float32", "shape": [-1, CLASSES]}]
    import onnx

    dims = onnx.load(model).graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == export_onnx.BATCH
    probs, _ = verify(verify_onnx, model, path, str(tmp_path / "p.npy"), batch_size=7)
    np.testing.assert_allclose(probs, expected(module, x), atol=1e-5)


def test_onnx_without_tf2onnx_says_so_and_writes_nothing(toy, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # import tf2onnx now raises ImportError
    model = tmp_path / "m.onnx"
    with pytest.raises(vc.Unsupported, match="ONNX export needs tf2onnx"):
        export_onnx.convert(argparse.Namespace(saved_model=toy[0], out=str(model), signature="predict_images", opset=17, freeze_only=False))
    assert list(tmp_path.iterdir()) == []


def test_quantization_round_trip():
    pixels = np.array([0, 1, 127, 128, 254, 255], dtype=np.uint8)
    assert (vc.to_input(pixels, np.uint8, (1.0, 0)) == pixels).all()
    assert (vc.to_input(pixels, np.int8, (1.0, -128)) == pixels.astype(np.int16) - 128).all()
    np.testing.assert_array_equal(vc.to_input(pixels, np.uint8, (2.0, 10)), [10, 10, 74, 74, 137, 138])  # halves round to even
    np.testing.assert_array_equal(vc.to_input(pixels, np.uint8, (0.5, 0)), [0, 2, 254, 255, 255, 255])  # clipped
    assert vc.to_input(pixels, np.float32).dtype == np.float32
    np.testing.assert_allclose(vc.from_output(np.array([0, 128, 255], np.uint8), (1 / 256, 0)), [0, 0.5, 255 / 256])
    assert vc.from_output(np.array([0.25], np.float32), (0.0, 0)).tolist() == [0.25]


def test_timed_batches_warms_up_and_keeps_order():
    calls = []

    def infer(batch):
        calls.append(len(batch))
        return batch[:, :1].astype(np.float32)

    images = np.arange(7, dtype=np.uint8).reshape(7, 1)
    probs, seconds = vc.timed_batches(images, 3, infer)
    assert calls == [3, 3, 3, 1]  # the warm-up batch, then 3 + 3 + 1
    assert probs[:, 0].tolist() == list(range(7)) and seconds >= 0


def run_script(name, *args):
    return subprocess.run([sys.executable, os.path.join(HERE, name), *args], capture_output=True, text=True, timeout=scaled(120))


@pytest.mark.parametrize("script", ["verify_tflite.py", "verify_onnx.py"])
def test_bad_images_file_is_a_usage_error(script, tmp_path):
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((2, 4, 4), np.float32))
    r = run_script(script, "--model", "m", "--images", str(bad), "--out", str(tmp_path / "p.npy"))
    assert r.returncode == vc.EXIT_USAGE and r.stdout == ""
    assert r.stderr.strip().splitlines()[-1].startswith("error: --images")


def test_stdout_holds_only_the_json_line(toy, images, tmp_path):
    """verify_onnx.py as xcept runs it: onnxruntime and numpy may print, but
    stdout is one JSON line."""
    model = str(tmp_path / "m.onnx")
    export_onnx.convert(argparse.Namespace(saved_model=toy[0], out=model, signature="predict_images", opset=17, freeze_only=False))
    r = run_script("verify_onnx.py", "--model", model, "--images", images[0], "--out", str(tmp_path / "p.npy"), "--batch-size", "4")
    assert r.returncode == 0, r.stderr
    import json

    assert len(r.stdout.splitlines()) == 1 and json.loads(r.stdout)["images"] == len(images[1])
