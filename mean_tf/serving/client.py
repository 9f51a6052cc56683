"""Client side of a pushed mean-tf model served by TF Serving: build tf.Examples and the REST / gRPC requests.

The model's `serving_default` signature takes one input, `examples`: serialized tf.train.Example
protos holding the raw features (no label). TF Serving's REST API takes them base64-encoded:

    POST http://HOST:8501/v1/models/mean_tf:predict
    {"signature_name": "serving_default", "instances": [{"b64": "<base64 of a serialized tf.Example>"}]}

and answers {"predictions": [{"cltv": 123.4, "bucket_probs": [...]}]}. gRPC (port 8500) takes a
`PredictRequest` whose `inputs["examples"]` is a string tensor of the serialized protos.
"""
from __future__ import annotations

import base64
import json
import urllib.request
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Union

import mean_tf  # noqa: F401  (pins tf.keras to Keras 2 before TensorFlow loads)
import tensorflow as tf

from mean_tf.contract import SERVING_INPUT, SERVING_SIGNATURE
from mean_tf.errors import MeanTFError

# The name the README starts TF Serving with (`--model_name=mean`).
MODEL_NAME = "mean"
Raw = Union[tf.train.Example, bytes, Mapping[str, object]]


def make_example(features: Mapping[str, object]) -> tf.train.Example:
    """A tf.Example from {name: value}: str values become bytes_list, numbers float_list (one value each)."""
    feature = {}
    for name, value in features.items():
        if isinstance(value, (list, tuple)):
            if len(value) != 1:
                raise MeanTFError(f"feature {name!r}: expected one value, got {len(value)}")
            value = value[0]
        if isinstance(value, bytes):
            feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
        elif isinstance(value, str):
            feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode("utf-8")]))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[float(value)]))
        else:
            raise MeanTFError(f"feature {name!r}: value {value!r} is neither a number nor a string")
    return tf.train.Example(features=tf.train.Features(feature=feature))


def serialize(examples: Iterable[Raw]) -> List[bytes]:
    """Serialized tf.Example protos from Examples, dicts of feature values or already serialized bytes."""
    out = []
    for example in examples:
        if isinstance(example, bytes):
            out.append(example)
        elif isinstance(example, tf.train.Example):
            out.append(example.SerializeToString(deterministic=True))
        elif isinstance(example, Mapping):
            out.append(make_example(example).SerializeToString(deterministic=True))
        else:
            raise MeanTFError(f"cannot serialize {type(example).__name__} as a tf.Example")
    return out


def rest_request_body(examples: Iterable[Raw], signature_name: str = SERVING_SIGNATURE) -> Dict:
    """TF Serving REST predict body: {"signature_name": ..., "instances": [{"b64": ...}, ...]}."""
    return {"signature_name": signature_name,
            "instances": [{"b64": base64.b64encode(s).decode("ascii")} for s in serialize(examples)]}


def grpc_predict_request(examples: Iterable[Raw], model_name: str = MODEL_NAME, signature_name: str = SERVING_SIGNATURE,
                         version: Optional[int] = None):
    """A tensorflow_serving.apis.predict_pb2.PredictRequest for the `examples` input."""
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = version
    serialized = serialize(examples)
    request.inputs[SERVING_INPUT].CopyFrom(tf.make_tensor_proto(serialized, dtype=tf.string, shape=[len(serialized)]))
    return request


def predict_rest(url: str, examples: Sequence[Raw], timeout: float = 30.0) -> List[Dict]:
    """POST to TF Serving's REST predict URL (http://HOST:8501/v1/models/NAME:predict); returns the predictions."""
    request = urllib.request.Request(url, data=json.dumps(rest_request_body(examples)).encode("utf-8"),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())["predictions"]


def predict_grpc(target: str, examples: Sequence[Raw], model_name: str = MODEL_NAME, timeout: float = 30.0) -> Dict:
    """Call TF Serving's gRPC Predict at `target` (HOST:8500); returns {output name: numpy array}."""
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    with grpc.insecure_channel(target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response = stub.Predict(grpc_predict_request(examples, model_name), timeout)
    return {name: tf.make_ndarray(tensor) for name, tensor in response.outputs.items()}
