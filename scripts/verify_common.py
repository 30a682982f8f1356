"""What xcept's export scripts share (export_tflite.py, export_onnx.py,
verify_tflite.py, verify_onnx.py): their contract with internal/export.

Each script prints one JSON line on stdout when it succeeds, and nothing else
there: library output is sent to stderr. A failure prints one stderr line
starting with "error: " and exits with 1 (failed), 2 (bad arguments),
3 (the format cannot be made here: a converter that is missing or refuses
the model) or 130 (interrupted).

Arrays travel as .npy files: images are uint8 [N, size, size, 3] RGB pixel
values, probabilities float32 [N, classes].
"""

import json
import os
import signal
import sys
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

EXIT_FAILURE, EXIT_USAGE, EXIT_UNSUPPORTED, EXIT_INTERRUPTED = 1, 2, 3, 130


class UsageError(Exception):
    """A bad argument or input file (exit 2)."""


class Unsupported(Exception):
    """The format cannot be produced or run here, and why (exit 3)."""


class Interrupted(Exception):
    """SIGINT or SIGTERM."""


def _raise_interrupted(signum, _frame):
    raise Interrupted(signal.Signals(signum).name)


def main(parser, work, argv):
    """Parses argv, runs work(args) with stdout pointed at stderr, and prints
    the dict it returns as the JSON line. Returns the exit code."""
    args = parser.parse_args(argv)  # argparse exits 2 on bad flags itself
    json_out = os.fdopen(os.dup(1), "w")
    sys.stdout.flush()
    os.dup2(2, 1)  # TensorFlow's converter and tf2onnx print to stdout
    signal.signal(signal.SIGTERM, _raise_interrupted)
    signal.signal(signal.SIGINT, _raise_interrupted)
    try:
        result = work(args)
    except UsageError as e:
        return fail(e, EXIT_USAGE)
    except Unsupported as e:
        return fail(e, EXIT_UNSUPPORTED)
    except Interrupted as e:
        return fail(f"interrupted by {e}", EXIT_INTERRUPTED)
    except Exception as e:  # noqa: BLE001 - the one line a user reads
        if os.environ.get("XCEPT_DEBUG"):
            import traceback

            traceback.print_exc()
        return fail(f"{os.path.basename(sys.argv[0])} failed: {type(e).__name__}: {e}", EXIT_FAILURE)
    json_out.write(json.dumps(result) + "\n")
    json_out.flush()
    return 0


def fail(message, code):
    print("error: " + " ".join(str(message).split()), file=sys.stderr, flush=True)
    return code


def progress(message):
    print(message, file=sys.stderr, flush=True)


def load_images(path):
    """The uint8 [N, size, size, 3] batch file internal/export writes."""
    import numpy as np

    try:
        images = np.load(path)
    except (OSError, ValueError) as e:
        raise UsageError(f"--images {path}: {e}") from e
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3 or len(images) == 0:
        raise UsageError(f"--images {path}: want uint8 [N, size, size, 3] RGB images, got {images.dtype} {images.shape}")
    return images


def to_input(pixels, dtype, quantization=None):
    """uint8 pixel values → the model input's dtype. A quantized input
    (scale, zero_point) gets round(x / scale + zero_point), clipped to the
    dtype, as TFLite's own quantizer computes it."""
    import numpy as np

    x = pixels.astype(np.float32)
    if quantization is None or quantization[0] == 0:
        return x.astype(dtype)
    scale, zero_point = quantization
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)


def from_output(values, quantization=None):
    """A model output → float32, dequantized as scale × (q − zero_point)."""
    import numpy as np

    if quantization is None or quantization[0] == 0:
        return values.astype(np.float32)
    scale, zero_point = quantization
    return (scale * (values.astype(np.float32) - zero_point)).astype(np.float32)


def timed_batches(images, batch_size, infer):
    """Runs infer on images in batches and returns (probabilities float32
    [N, classes], seconds spent in infer). The first batch runs once, untimed,
    before: runtimes allocate and optimise on their first call."""
    import numpy as np

    infer(images[:batch_size])
    outputs, spent = [], 0.0
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        began = time.perf_counter()
        outputs.append(infer(batch))
        spent += time.perf_counter() - began
    return np.concatenate(outputs).astype(np.float32), spent


def save_probabilities(path, probabilities):
    import numpy as np

    np.save(path, np.ascontiguousarray(probabilities, dtype=np.float32))


def numpy_dtype_name(dtype):
    import numpy as np

    return np.dtype(dtype).name
