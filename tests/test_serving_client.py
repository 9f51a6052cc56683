"""mean_tf.serving.client: tf.Examples, TF Serving REST bodies and gRPC PredictRequests, against local fakes."""
import base64
import json
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pytest

import mean_tf  # noqa: F401
import tensorflow as tf

from mean_tf.serving import client
from mean_tf.errors import MeanTFError

RAW = {"recency_days": 3.0, "net_spend": 120, "country": "France"}
EXPECTED = client.make_example(RAW).SerializeToString(deterministic=True)


def test_make_example_parses_back_with_the_raw_spec():
    serialized = client.make_example(RAW).SerializeToString(deterministic=True)
    spec = {"recency_days": tf.io.FixedLenFeature([1], tf.float32), "net_spend": tf.io.FixedLenFeature([1], tf.float32),
            "country": tf.io.FixedLenFeature([1], tf.string)}
    parsed = tf.io.parse_single_example(serialized, spec)
    assert parsed["country"].numpy().tolist() == [b"France"] and parsed["net_spend"].numpy().tolist() == [120.0]
    with pytest.raises(MeanTFError, match="country"):
        client.make_example({"country": ["a", "b"]})
    with pytest.raises(MeanTFError, match="flag"):
        client.make_example({"flag": None})


def test_rest_body_holds_base64_serialized_examples():
    body = client.rest_request_body([RAW, client.make_example(RAW)])
    assert body["signature_name"] == "serving_default" and len(body["instances"]) == 2
    decoded = [base64.b64decode(i["b64"]) for i in json.loads(json.dumps(body))["instances"]]
    assert decoded[0] == decoded[1] == EXPECTED


def test_grpc_request_has_a_string_tensor_of_examples():
    request = client.grpc_predict_request([RAW, RAW], model_name="cltv", version=3)
    assert request.model_spec.name == "cltv" and request.model_spec.version.value == 3
    tensor = request.inputs["examples"]
    assert tensor.dtype == tf.string.as_datatype_enum
    assert [d.size for d in tensor.tensor_shape.dim] == [2]
    assert tf.make_ndarray(tensor).tolist() == [EXPECTED] * 2


def test_predict_rest_posts_the_body_to_the_url():
    seen = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            seen["path"] = self.path
            seen["body"] = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            payload = json.dumps({"predictions": [{"cltv": 1.5}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}/v1/models/mean_tf:predict"
    assert client.predict_rest(url, [RAW]) == [{"cltv": 1.5}]
    thread.join(5)
    server.server_close()
    assert seen["path"] == "/v1/models/mean_tf:predict"
    assert seen["body"] == client.rest_request_body([RAW])


def test_predict_grpc_sends_a_predict_request():
    import grpc
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    class Fake(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):
            n = len(tf.make_ndarray(request.inputs["examples"]))
            response = predict_pb2.PredictResponse()
            response.outputs["cltv"].CopyFrom(tf.make_tensor_proto(np.arange(n, dtype=np.float32)))
            return response

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Fake(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        outputs = client.predict_grpc(f"127.0.0.1:{port}", [RAW, RAW, RAW])
    finally:
        server.stop(None)
    np.testing.assert_array_equal(outputs["cltv"], [0.0, 1.0, 2.0])
