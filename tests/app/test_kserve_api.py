"""KServe v2 / Open Inference Protocol through the real app on the tiny models."""

from __future__ import annotations

import json
import struct

import numpy as np


def test_server_health_and_metadata(tiny_client):
    assert tiny_client.get("/v2/health/live").json() == {"live": True}
    # Strict readiness: the tiny repository holds a version that failed to load.
    ready = tiny_client.get("/v2/health/ready")
    assert ready.status_code == 503 and ready.json()["ready"] is False
    assert any("'broken'" in r for r in ready.json()["reasons"])
    server = tiny_client.get("/v2").json()
    assert server["name"] and server["version"] and "binary_tensor_data" in server["extensions"]


def test_model_metadata_and_readiness(tiny_client):
    meta = tiny_client.get("/v2/models/tiny_image").json()
    assert meta["name"] == "tiny_image" and meta["versions"] == ["1", "2"]
    assert meta["inputs"] == [{"name": "pixels", "datatype": "UINT8", "shape": [-1, 8, 8, 1]}]
    assert meta["outputs"] == [{"name": "output_0", "datatype": "FP32", "shape": [-1, 3]}]
    assert meta["parameters"]["device"] == "/CPU:0" and meta["parameters"]["version"] == "2"
    text = tiny_client.get("/v2/models/tiny_text/versions/1").json()
    assert text["inputs"][0]["datatype"] == "BYTES"
    assert tiny_client.get("/v2/models/tiny_image/ready").status_code == 200
    assert tiny_client.get("/v2/models/tiny_image/versions/1/ready").json()["ready"] is True
    broken = tiny_client.get("/v2/models/broken/ready")
    assert broken.status_code == 503 and broken.json()["ready"] is False


def pixels_tensor(values: list[int]) -> dict:
    data = np.repeat(np.asarray(values, dtype=np.uint8), 64).tolist()
    return {"name": "pixels", "shape": [len(values), 8, 8, 1], "datatype": "UINT8", "data": data}


def test_infer_json_tensors(tiny_client):
    reply = tiny_client.post(
        "/v2/models/tiny_image/versions/1/infer",
        json={"id": "req-1", "inputs": [pixels_tensor([20, 240])]},
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["model_name"] == "tiny_image" and body["model_version"] == "1"
    assert body["id"] == "req-1"
    (out,) = body["outputs"]
    assert out["name"] == "output_0" and out["datatype"] == "FP32" and out["shape"] == [2, 3]
    assert np.asarray(out["data"]).reshape(2, 3).argmax(axis=1).tolist() == [0, 2]


def test_infer_accepts_nested_data_and_other_numeric_datatypes(tiny_client):
    nested = np.full((1, 8, 8, 1), 240).tolist()
    for datatype in ("INT32", "INT64", "FP32", "FP64", "UINT8"):
        reply = tiny_client.post(
            "/v2/models/tiny_image/versions/1/infer",
            json={
                "inputs": [
                    {"name": "pixels", "shape": [1, 8, 8, 1], "datatype": datatype, "data": nested}
                ]
            },
        )
        assert reply.status_code == 200, (datatype, reply.text)
        assert np.argmax(reply.json()["outputs"][0]["data"]) == 2


def test_bytes_inputs_as_json_strings(tiny_client):
    reply = tiny_client.post(
        "/v2/models/tiny_text/infer",
        json={
            "inputs": [
                {"name": "text", "shape": [2, 1], "datatype": "BYTES", "data": ["good", "bad"]}
            ],
            "outputs": [{"name": "output_0"}],
        },
    )
    assert reply.status_code == 200, reply.text
    data = reply.json()["outputs"][0]["data"]
    assert data[0] > 0.9 and data[1] < 0.1


def test_only_the_requested_outputs_come_back(tiny_client):
    reply = tiny_client.post(
        "/v2/models/tiny_multi/infer",
        json={
            "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}],
            "outputs": [{"name": "output_1"}],
        },
    ).json()
    assert [o["name"] for o in reply["outputs"]] == ["output_1"]


def test_an_output_requested_twice_is_refused(tiny_client):
    """Each would be computed and sent again: 100,000 copies of one output (2 MB) made a 17 MB
    reply in 0.8 s."""
    reply = tiny_client.post(
        "/v2/models/tiny_multi/infer",
        json={
            "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}],
            "outputs": [{"name": "output_1"}, {"name": "output_0"}, {"name": "output_1"}],
        },
    )
    assert reply.status_code == 400 and reply.json() == {
        "error": "output 'output_1' requested twice"
    }


def test_error_messages_quote_a_clients_names_briefly(tiny_client):
    """An error names what was wrong, not all of it: its reply stays small."""
    x = {"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}
    unknown_output = tiny_client.post(
        "/v2/models/tiny_multi/infer", json={"inputs": [x], "outputs": [{"name": "o" * 100_000}]}
    )
    assert unknown_output.status_code == 400 and len(unknown_output.content) < 400
    assert "(100000 characters)" in unknown_output.json()["error"]
    many = {f"k{i}": [1.0] for i in range(5_000)}
    unknown_inputs = tiny_client.post("/v1/models/tiny_multi:predict", json={"inputs": many})
    error = unknown_inputs.json()["error"]
    assert unknown_inputs.status_code == 400 and len(error) < 400
    assert error.startswith("unknown input(s) ['k0', 'k1',") and "and 4990 more" in error
    signature = tiny_client.post(
        "/v1/models/tiny_multi:predict", json={"signature_name": "s" * 100_000, "inputs": {}}
    )
    assert signature.status_code == 400 and len(signature.content) < 400


def test_classification_extension_returns_top_k_labels(tiny_client):
    reply = tiny_client.post(
        "/v2/models/tiny_image/versions/1/infer",
        json={
            "inputs": [pixels_tensor([240])],
            "outputs": [{"name": "output_0", "parameters": {"classification": 2}}],
        },
    ).json()
    (out,) = reply["outputs"]
    assert out["datatype"] == "BYTES" and out["shape"] == [1, 2]
    score, index, label = out["data"][0].split(":")
    assert (index, label) == ("2", "two") and float(score) > 0.5


def test_binary_tensor_data_extension_in_and_out(tiny_client):
    """Triton's binary format, as tritonclient sends it (the real client is tested elsewhere)."""
    raw = np.full((2, 8, 8, 1), [[[[20]]], [[[240]]]], dtype=np.uint8).tobytes()
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "pixels",
                    "shape": [2, 8, 8, 1],
                    "datatype": "UINT8",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    reply = tiny_client.post(
        "/v2/models/tiny_image/versions/1/infer",
        content=header + raw,
        headers={
            "Inference-Header-Content-Length": str(len(header)),
            "Content-Type": "application/octet-stream",
        },
    )
    assert reply.status_code == 200, reply.text
    split = int(reply.headers["Inference-Header-Content-Length"])
    meta = json.loads(reply.content[:split])
    (out,) = meta["outputs"]
    size = out["parameters"]["binary_data_size"]
    values = np.frombuffer(reply.content[split : split + size], dtype="<f4").reshape(out["shape"])
    assert values.argmax(axis=1).tolist() == [0, 2]


def test_binary_bytes_input(tiny_client):
    items = [b"good good", b"bad"]
    raw = b"".join(struct.pack("<I", len(s)) + s for s in items)
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "text",
                    "shape": [2, 1],
                    "datatype": "BYTES",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ]
        }
    ).encode()
    reply = tiny_client.post(
        "/v2/models/tiny_text/infer",
        content=header + raw,
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert reply.status_code == 200, reply.text
    data = reply.json()["outputs"][0]["data"]
    assert data[0] > 0.99 and data[1] < 0.1
