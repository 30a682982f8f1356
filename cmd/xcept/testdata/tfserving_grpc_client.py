"""TF Serving's own Python gRPC client (tensorflow-serving-api) against a
server, printing what it answers as JSON, for serve's gRPC test.

    tfserving_grpc_client.py HOST:PORT MODEL IMAGE_FILE PIXELS_JSON
"""

import json
import sys

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2, model_service_pb2_grpc,
                                     predict_pb2, prediction_service_pb2_grpc)


def main():
    target, model, image_file, pixels_file = sys.argv[1:5]
    channel = grpc.insecure_channel(target)
    predict = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    models = model_service_pb2_grpc.ModelServiceStub(channel)
    out = {}

    req = predict_pb2.PredictRequest()
    req.model_spec.name = model
    req.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto([open(image_file, "rb").read()], dtype=tf.string))
    resp = predict.Predict(req, timeout=60)
    out["bytes"] = tf.make_ndarray(resp.outputs["probabilities"]).tolist()
    out["bytes_classes"] = [c.decode() for c in tf.make_ndarray(resp.outputs["classes"]).ravel()]
    out["bytes_version"] = resp.model_spec.version.value

    req = predict_pb2.PredictRequest()
    req.model_spec.name = model
    req.model_spec.signature_name = "predict_images"
    req.inputs["images"].CopyFrom(tf.make_tensor_proto(np.array(json.load(open(pixels_file)), dtype=np.float32)))
    out["pixels"] = tf.make_ndarray(predict.Predict(req, timeout=60).outputs["probabilities"]).tolist()

    meta = get_model_metadata_pb2.GetModelMetadataRequest()
    meta.model_spec.name = model
    meta.metadata_field.append("signature_def")
    m = predict.GetModelMetadata(meta, timeout=30)
    sigs = get_model_metadata_pb2.SignatureDefMap()
    m.metadata["signature_def"].Unpack(sigs)
    out["signatures"] = sorted(sigs.signature_def.keys())
    out["serving_inputs"] = {k: v.dtype for k, v in sigs.signature_def["serving_default"].inputs.items()}

    st = get_model_status_pb2.GetModelStatusRequest()
    st.model_spec.name = model
    out["status"] = [[v.version, get_model_status_pb2.ModelVersionStatus.State.Name(v.state)]
                     for v in models.GetModelStatus(st, timeout=30).model_version_status]

    def code_of(call):
        try:
            call()
        except grpc.RpcError as e:
            return [e.code().name, e.details()]
        return ["OK", ""]

    bad = predict_pb2.PredictRequest()
    bad.model_spec.name = model
    bad.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto([1.0, 2.0]))
    out["malformed"] = code_of(lambda: predict.Predict(bad, timeout=30))
    notimg = predict_pb2.PredictRequest()
    notimg.model_spec.name = model
    notimg.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto([b"not an image"], dtype=tf.string))
    out["not_an_image"] = code_of(lambda: predict.Predict(notimg, timeout=30))
    unknown = predict_pb2.PredictRequest()
    unknown.CopyFrom(req)
    unknown.model_spec.name = "no-such-model"
    out["unknown_model"] = code_of(lambda: predict.Predict(unknown, timeout=30))
    # Still up after the bad requests.
    out["after"] = tf.make_ndarray(predict.Predict(req, timeout=60).outputs["probabilities"]).tolist()
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
