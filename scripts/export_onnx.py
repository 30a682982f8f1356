"""Converts an xcept SavedModel to ONNX with tf2onnx (xcept export runs it).

    export_onnx.py --saved-model DIR --out FILE.onnx [--signature predict_images] [--opset 17]

The converted signature is the float one, predict_images (ONNX has no image
decoder): input "images" float32 [batch, size, size, 3], RGB pixel values
0..255, squash-resized by the caller; Xception's scaling to [-1, 1] is inside.
Output "probabilities" float32 [batch, classes].

When tf2onnx is missing or cannot convert the model, the script says so and
why on one line, leaves no file, and exits 3. Prints the model's inputs and
outputs as JSON, read back with onnxruntime.

The conversion runs in two processes, to bound its peak memory: a child
loads the SavedModel and freezes the signature (variables to constants,
then TensorFlow's grappler passes, as tf2onnx's from_function does) into a
GraphDef file, and exits; this process, which never loads the SavedModel,
converts that GraphDef with tf2onnx. The ONNX model is the one from_function
makes; the two peaks no longer add up (measured in README, "Inference
engines").
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
    p.add_argument("--freeze-only", action="store_true", help=argparse.SUPPRESS)  # the child's stage
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


def freeze(args):
    """The child's stage: the frozen, grappler-optimised GraphDef to
    --out, and its input and output names (and tf2onnx's renaming of them
    to the signature's keys) to --out.json."""
    import json

    from tf2onnx import tf_loader
    from tf2onnx.convert import tensor_names_from_structed
    import tensorflow as tf

    call, spec, _keep = signature_function(args.saved_model, args.signature)
    concrete = call.get_concrete_function(spec)
    inputs = [t.name for t in concrete.inputs if t.dtype != tf.dtypes.resource]
    outputs = [t.name for t in concrete.outputs if t.dtype != tf.dtypes.resource]
    renames = tensor_names_from_structed(concrete, inputs, outputs)
    with tf.device("/cpu:0"):
        graph_def = tf_loader.from_function(concrete, inputs, outputs)
    with open(args.out, "wb") as f:
        f.write(graph_def.SerializeToString())
    with open(args.out + ".json", "w") as f:
        json.dump({"name": concrete.name.decode() if isinstance(concrete.name, bytes) else concrete.name, "inputs": inputs, "outputs": outputs, "renames": renames}, f)
    return {"nodes": len(graph_def.node)}


def frozen_graph(args, work):
    """Runs the freezing stage in a child process and reads back its GraphDef."""
    import json
    import subprocess

    import tensorflow as tf

    path = os.path.join(work, "frozen.pb")
    cmd = [sys.executable, os.path.abspath(__file__), "--saved-model", args.saved_model,
           "--signature", args.signature, "--out", path, "--freeze-only"]
    child = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if child.returncode != 0:
        lines = [l for l in child.stderr.strip().splitlines() if l.strip()]
        message = lines[-1] if lines else f"exit {child.returncode}"
        if child.returncode == vc.EXIT_USAGE:
            raise vc.UsageError(message)
        raise vc.Unsupported(f"freezing the signature failed: {message}")
    graph_def = tf.compat.v1.GraphDef()
    with open(path, "rb") as f:
        graph_def.ParseFromString(f.read())
    with open(path + ".json") as f:
        names = json.load(f)
    return graph_def, names


def inline_weights(model, external):
    """Puts the tensors tf2onnx's large_model kept aside (external) back into
    the model's constants, so that it is one self-contained .onnx file."""
    from onnx import TensorProto

    def tensors(graph):
        yield from graph.initializer
        for node in graph.node:
            for a in node.attribute:
                if a.HasField("t"):
                    yield a.t
                yield from a.tensors
                if a.HasField("g"):
                    yield from tensors(a.g)
                for g in a.graphs:
                    yield from tensors(g)

    data = external.name_to_tensor_data
    for t in tensors(model.graph):
        if t.data_location == TensorProto.EXTERNAL:
            where = {e.key: e.value for e in t.external_data}
            t.raw_data = data.pop(where["location"])
            t.data_location = TensorProto.DEFAULT
            del t.external_data[:]
    if data:
        raise ValueError(f"{len(data)} tensors tf2onnx kept aside are not in the model")


def convert(args):
    if args.freeze_only:
        return freeze(args)
    import tempfile

    tf2onnx, onnx, ort = import_converter()
    import tensorflow as tf

    vc.progress(f"converting {args.saved_model} ({args.signature}) with tf2onnx {tf2onnx.__version__}, opset {args.opset}")
    with tempfile.TemporaryDirectory(prefix=".onnx-freeze-", dir=os.path.dirname(os.path.abspath(args.out))) as work:
        graph_def, names = frozen_graph(args, work)
    # large_model: tf2onnx takes the weights out of the GraphDef before
    # importing it, so TensorFlow's graph and tf2onnx's own never hold them
    # too; at 299 px the peak fell from 8.6 to 4.8 GB (README, "Inference
    # engines"), the ONNX model's outputs the same to the last bit. The
    # weights come back into the one .onnx file (inline_weights). Its
    # optimizers' errors are caught as without it (TF2ONNX_CATCH_ERRORS).
    os.environ.setdefault("TF2ONNX_CATCH_ERRORS", "TRUE")
    import numpy as np

    if not hasattr(np, "product"):
        np.product = np.prod  # tf2onnx 1.17's large_model still calls the alias NumPy 2 removed
    try:
        # What tf2onnx.convert.from_function runs once it has frozen the
        # function (tf2onnx 1.17, pinned); from_graph_def would freeze and
        # optimise it again.
        with tf.device("/cpu:0"):
            model, external = tf2onnx.convert._convert_common(
                graph_def, name=names["name"], continue_on_error=True, opset=args.opset, large_model=True,
                input_names=names["inputs"], output_names=names["outputs"], tensors_to_rename=names["renames"])
        inline_weights(model, external)
    except Exception as e:  # noqa: BLE001 - whatever tf2onnx raises, the user reads one line
        raise vc.Unsupported(
            f"tf2onnx {tf2onnx.__version__} cannot convert this TensorFlow {tf.__version__} SavedModel "
            f"({type(e).__name__}: {e}); no ONNX file was written"
        ) from e
    del graph_def
    name_batch_dimension(model)
    tmp = args.out + ".tmp"
    try:
        onnx.save(model, tmp)
        del model
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
