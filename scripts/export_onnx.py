"""Converts an xcept SavedModel to ONNX with tf2onnx (xcept export runs it).

    export_onnx.py --saved-model DIR --out FILE.onnx [--signature predict_images] [--opset 17]

The converted signature is the float one, predict_images (ONNX has no image
decoder): input "images" float32 [batch, size, size, 3], RGB pixel values
0..255, squash-resized by the caller; Xception's scaling to [-1, 1] is inside.
Output "probabilities" float32 [batch, classes].

When tf2onnx is missing or cannot convert the model, the script says so and
why on one line, leaves no file, and exits 3. Prints the model's inputs and
outputs as JSON, read back with onnxruntime.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import verify_common as vc  # noqa: E402

ONNX_DTYPES = {"tensor(float)": "float32", "tensor(uint8)": "uint8", "tensor(string)": "string"}
BATCH = "batch"  # the symbolic name of the batch dimension in the ONNX graph


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--saved-model", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--signature", default="predict_images")
    p.add_argument("--opset", type=int, default=17)
    return p


def import_converter():
    try:
        import onnx
        import onnxruntime
        import tf2onnx
    except ImportError as e:
        raise vc.Unsupported(
            f"ONNX export needs tf2onnx, onnx and onnxruntime in xcept's Python environment ({e}): "
            "`make setup` installs the pinned versions"
        ) from e
    return tf2onnx, onnx, onnxruntime


def signature_function(saved_model, name):
    """The SavedModel's signature as a tf.function of one named input, which
    tf2onnx converts; the input keeps the signature's name, shape and dtype."""
    import tensorflow as tf

    if not os.path.isfile(os.path.join(saved_model, "saved_model.pb")):
        raise vc.UsageError(f"--saved-model {saved_model}: no saved_model.pb there")
    loaded = tf.saved_model.load(saved_model)
    if name not in loaded.signatures:
        raise vc.UsageError(f"--signature {name}: the SavedModel has {sorted(loaded.signatures)}")
    fn = loaded.signatures[name]
    (key, spec), = fn.structured_input_signature[1].items()
    spec = tf.TensorSpec(spec.shape, spec.dtype, name=key)

    @tf.function(input_signature=[spec])
    def call(x):
        return fn(**{key: x})

    return call, spec, loaded


def name_batch_dimension(model):
    """tf2onnx names unknown dimensions unk__N; the batch is clearer."""
    for value in list(model.graph.input) + list(model.graph.output):
        dim = value.type.tensor_type.shape.dim[0]
        if not dim.HasField("dim_value"):
            dim.dim_param = BATCH


def tensor_spec(arg):
    return {
        "name": arg.name,
        "dtype": ONNX_DTYPES.get(arg.type, arg.type),
        "shape": [d if isinstance(d, int) else -1 for d in arg.shape],
    }


def convert(args):
    tf2onnx, onnx, ort = import_converter()
    import tensorflow as tf

    call, spec, _keep = signature_function(args.saved_model, args.signature)
    vc.progress(f"converting {args.saved_model} ({args.signature}) with tf2onnx {tf2onnx.__version__}, opset {args.opset}")
    try:
        model, _ = tf2onnx.convert.from_function(call, input_signature=[spec], opset=args.opset)
    except Exception as e:  # noqa: BLE001 - whatever tf2onnx raises, the user reads one line
        raise vc.Unsupported(
            f"tf2onnx {tf2onnx.__version__} cannot convert this TensorFlow {tf.__version__} SavedModel "
            f"({type(e).__name__}: {e}); no ONNX file was written"
        ) from e
    name_batch_dimension(model)
    tmp = args.out + ".tmp"
    try:
        onnx.save(model, tmp)
        session = ort.InferenceSession(tmp, providers=["CPUExecutionProvider"])
        os.replace(tmp, args.out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return {
        "name": args.signature,
        "inputs": [tensor_spec(a) for a in session.get_inputs()],
        "outputs": [tensor_spec(a) for a in session.get_outputs()],
    }


if __name__ == "__main__":
    sys.exit(vc.main(parse_args(), convert, sys.argv[1:]))
