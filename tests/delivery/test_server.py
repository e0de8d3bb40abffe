"""`bountytree serve` as a user runs it: the real command, a real uvicorn on a free localhost
port, the winner of a real finalized task, and real HTTP clients (requests, aiohttp). Protocol
shapes, metadata, bad inputs (400 and a one-line error, never a 500), concurrent clients that
each get their own answers, /metrics, and a clean stop."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest
import requests

from bountytree.delivery.model_card import read_market, resolve
from bountytree.models.datasets import load_file
from bountytree.models.inference import Predictor
from tests.conftest import cli_error
from tests.delivery.finalized import finalized_task, in_process
from tests.delivery.prometheus import key as _key
from tests.delivery.prometheus import samples as _metrics

pytestmark = pytest.mark.mpc
MAX_ROWS = 100


def _env(settings) -> dict[str, str]:
    return {
        **os.environ,
        "BOUNTYTREE_RPC": settings.rpc,
        "BOUNTYTREE_STORE": settings.store,
        "BOUNTYTREE_HOME": str(settings.home),
        "BOUNTYTREE_DEPLOYMENTS": str(settings.deployments),
    }


@pytest.fixture(scope="module")
def task(settings, deployed, files):
    return finalized_task(settings, files)


@pytest.fixture(scope="module")
def served(settings, task):
    """The server process and its model URL (`--port 0`: the kernel picks a free port, the
    command prints the URL it listens on)."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bountytree",
            "serve",
            "--task",
            str(task.task_id),
            "--port",
            "0",
            "--max-rows",
            str(MAX_ROWS),
            "--max-body-mb",
            "0.25",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(settings),
    )
    line = proc.stdout.readline().decode()
    match = re.search(r"at (http://127\.0\.0\.1:\d+)/v2/models/(\S+)", line)
    assert match, (line, proc.stderr.read().decode() if proc.poll() is not None else "")
    yield proc, match.group(1), match.group(2)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def expected(settings, task):
    source = resolve(read_market(settings), task.task_id)
    return Predictor.from_weights(source.weights, source.spec)


@pytest.fixture(scope="module")
def rows(files) -> np.ndarray:
    return load_file(files["test"]).X


def _infer(base, name, rows: np.ndarray, shape=None, **extra) -> requests.Response:
    body = {
        "inputs": [
            {
                "name": "input",
                "shape": list(shape or rows.shape),
                "datatype": "FP32",
                "data": rows.reshape(-1).tolist(),
            }
        ],
        **extra,
    }
    return requests.post(f"{base}/v2/models/{name}/infer", json=body, timeout=30)


def test_health_and_metadata(served, task, expected):
    _, base, name = served
    assert name == f"task-{task.task_id}"
    for path, body in (("/v2/health/live", {"live": True}), ("/v2/health/ready", {"ready": True})):
        r = requests.get(base + path, timeout=30)
        assert r.status_code == 200 and r.json() == body
    assert requests.get(f"{base}/v2", timeout=30).json()["name"] == "bountytree"
    spec = expected.spec
    meta = requests.get(f"{base}/v2/models/{name}", timeout=30).json()
    assert meta == {
        "name": name,
        "versions": [str(task.winner)],
        "platform": "pytorch_bountytree",
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, *spec.input_shape]}],
        "outputs": [
            {"name": "logits", "datatype": "FP32", "shape": [-1, spec.num_classes]},
            {"name": "class", "datatype": "INT64", "shape": [-1]},
        ],
        "parameters": {"task": task.task_id, "node": task.winner},
    }
    versioned = f"{base}/v2/models/{name}/versions/{task.winner}"
    assert requests.get(versioned, timeout=30).json() == meta
    assert requests.get(versioned + "/ready", timeout=30).json() == {"name": name, "ready": True}


def test_infer_answers_what_the_model_predicts(served, task, expected, rows):
    _, base, name = served
    X = rows[:7]
    want = expected.predict(X)
    for shape in ([7, expected.num_features], [7, *expected.spec.input_shape]):
        r = _infer(base, name, X, shape=shape, id="req-1")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["model_name"] == name and body["model_version"] == str(task.winner)
        assert body["id"] == "req-1"
        logits, classes = body["outputs"]
        assert logits["name"] == "logits" and logits["datatype"] == "FP32"
        assert logits["shape"] == [7, expected.spec.num_classes]
        assert np.array_equal(np.float32(logits["data"]).reshape(7, -1), want.logits)
        assert classes == {
            "name": "class",
            "datatype": "INT64",
            "shape": [7],
            "data": want.classes.tolist(),
        }
    # Nested data, FP64 and integer types are accepted; `outputs` picks what comes back.
    nested = {
        "inputs": [
            {
                "name": "input",
                "shape": [2, expected.num_features],
                "datatype": "INT32",
                "data": np.round(X[:2] * 16).astype(int).tolist(),
            }
        ],
        "outputs": [{"name": "class"}],
    }
    r = requests.post(
        f"{base}/v2/models/{name}/versions/{task.winner}/infer", json=nested, timeout=30
    )
    assert r.status_code == 200, r.text
    assert [o["name"] for o in r.json()["outputs"]] == ["class"]
    assert r.json()["outputs"][0]["data"] == expected.predict(np.round(X[:2] * 16)).classes.tolist()


def test_bad_requests_get_a_400_with_one_line(served, expected, rows):
    _, base, name = served
    url = f"{base}/v2/models/{name}/infer"
    n = expected.num_features
    good = {"name": "input", "shape": [1, n], "datatype": "FP32", "data": rows[0].tolist()}
    cases = {
        "not valid JSON": b"{inputs: oops",
        "JSON object": b"[1, 2, 3]",
        "exactly one tensor": {"inputs": [good, good]},
        'is not "input"': {"inputs": [{**good, "name": "pixels"}]},
        "datatype": {"inputs": [{**good, "datatype": "BYTES"}]},
        "does not fit the model": {"inputs": [{**good, "shape": [1, n + 1]}]},
        "values, shape": {"inputs": [{**good, "data": rows[0].tolist()[:-1]}]},
        "must be numbers": {"inputs": [{**good, "data": ["a"] * n}]},
        "must be integers": {"inputs": [{**good, "datatype": "INT64"}]},
        "unequal lengths": {"inputs": [{**good, "shape": [2, n], "data": [[0.0] * n, [0.0]]}]},
        "finite": {"inputs": [{**good, "datatype": "FP64", "data": [1e300] * n}]},
        "outside the range of FP16": {"inputs": [{**good, "datatype": "FP16", "data": [7e4] * n}]},
        "rows, expected 1 to": {
            "inputs": [{**good, "shape": [MAX_ROWS + 1, n], "data": [0.0] * (MAX_ROWS + 1) * n}]
        },
        "0 rows": {"inputs": [{**good, "shape": [0, n], "data": []}]},
        '"outputs"': {"inputs": [good], "outputs": [{"name": "probabilities"}]},
        "body is": b'{"inputs": [], "pad": "' + b"x" * 300_000 + b'"}',
        # empty lists by the tens of thousands (by the million in 4 MiB: a second of parsing)
        "nests more lists": b'{"inputs": [' + b"[]," * 80_000 + b"[]]}",
        # two million zeros or 400,000 keys in 4 MiB: 0.1 s of parsing each
        "holds more items": b'{"inputs": [[0' + b",0" * 80_000 + b"]]}",
        "items than": b'{"inputs": [], ' + b", ".join(b'"k%d": 0' % i for i in range(300)) + b"}",
    }
    for message, body in cases.items():
        if isinstance(body, bytes):
            r = requests.post(
                url, data=body, timeout=30, headers={"content-type": "application/json"}
            )
        else:
            r = requests.post(url, json=body, timeout=30)
        assert r.status_code == 400, (message, r.status_code, r.text)
        error = r.json()["error"]
        assert message in error and "\n" not in error, (message, error)
    for path, status in (
        ("/v2/models/other/infer", 404),
        (f"/v2/models/{name}/versions/999/infer", 404),
        ("/v2/nothing", 404),
    ):
        r = requests.post(base + path, json={"inputs": [good]}, timeout=30)
        assert r.status_code == status and "\n" not in r.json()["error"], (path, r.text)
    r = requests.get(url, timeout=30)
    assert r.status_code == 405 and "GET" in r.json()["error"]
    assert requests.get(f"{base}/v2/health/ready", timeout=30).status_code == 200
    assert not any(("code", "500") in key for key in _metrics(base))


async def _client(base: str, name: str, rows: np.ndarray, seed: int, count: int) -> list[tuple]:
    """One keep-alive client sending `count` requests of 1 to 5 rows chosen at random."""
    import aiohttp

    rng = np.random.default_rng(seed)
    out = []
    async with aiohttp.ClientSession() as http:
        for _ in range(count):
            index = rng.choice(len(rows), size=int(rng.integers(1, 6)), replace=False)
            body = {
                "id": f"{seed}-{len(out)}",
                "inputs": [
                    {
                        "name": "input",
                        "shape": [len(index), rows.shape[1]],
                        "datatype": "FP32",
                        "data": rows[index].reshape(-1).tolist(),
                    }
                ],
            }
            async with http.post(f"{base}/v2/models/{name}/infer", json=body) as r:
                assert r.status == 200, await r.text()
                out.append((body["id"], index, await r.json()))
    return out


def test_concurrent_clients_get_their_own_answers(served, expected, rows):
    _, base, name = served
    before = _metrics(base)

    async def main():
        return await asyncio.gather(*(_client(base, name, rows, seed, 25) for seed in range(8)))

    answers = [a for client in asyncio.run(main()) for a in client]
    assert len(answers) == 200
    for request_id, index, body in answers:
        assert body["id"] == request_id
        want = expected.predict(rows[index])
        assert body["outputs"][1]["data"] == want.classes.tolist()
        got = np.float32(body["outputs"][0]["data"]).reshape(len(index), -1)
        # Rows batched with others' may differ from a lone pass in the last float32 bits only.
        assert np.allclose(got, want.logits, rtol=0, atol=1e-5)
    after = _metrics(base)
    served_ok = _key("bountytree_requests_total", route="infer", code="200")
    assert after[served_ok] - before.get(served_ok, 0) == 200
    count, total = _key("bountytree_batch_requests_count"), _key("bountytree_batch_rows_sum")
    passes = after[count] - before[count]
    rows_run = after[total] - before[total]
    assert 1 <= passes <= 200 and rows_run == sum(len(i) for _, i, _ in answers)


def test_metrics_count_requests_latency_and_batches(served):
    _, base, name = served
    before = _metrics(base)
    requests.get(f"{base}/v2/health/live", timeout=30)
    requests.post(f"{base}/v2/models/{name}/infer", data=b"nope", timeout=30)
    r = requests.get(f"{base}/metrics", timeout=30)
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    after = _metrics(base)
    live = _key("bountytree_requests_total", route="live", code="200")
    bad = _key("bountytree_requests_total", route="infer", code="400")
    assert after[live] - before.get(live, 0) == 1 and after[bad] - before.get(bad, 0) == 1
    count = _key("bountytree_request_duration_seconds_count", route="infer")
    inf = _key("bountytree_request_duration_seconds_bucket", route="infer", le="+Inf")
    assert after[count] == after[inf] >= 1
    assert _key("bountytree_batch_rows_bucket", le="1.0") in after
    assert "bountytree_model_info" in r.text


def test_refusals_before_serving(settings, task, served, monkeypatch, capsys):
    _, base, _ = served
    port = base.rsplit(":", 1)[1]
    # As a user sees it: exit 2, one line, no traceback.
    line = cli_error(settings, "serve", "--task", str(task.task_id), "--port", port)
    assert f"cannot listen on 127.0.0.1:{port}" in line
    run = in_process(settings, monkeypatch, capsys)
    for message, args in {
        "unknown task 999": ["--task", "999"],
        "is not finalized": ["--task", str(task.open_task_id)],
        "--max-batch": ["--task", str(task.task_id), "--max-batch", "0"],
        "--port": ["--task", str(task.task_id), "--port", "70000"],
    }.items():
        status, _, err = run("serve", *args)
        assert status == 2 and err.startswith("error: ") and err.count("\n") == 1, err
        assert message in err, err


def test_sigterm_stops_the_server_cleanly(served):
    proc, base, _ = served
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert proc.stdout.read().decode().strip() == "stopped"
    assert "Traceback" not in proc.stderr.read().decode()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{base}/v2/health/live", timeout=5)


def test_an_exported_folder_serves_without_a_chain(settings, task, expected, rows, tmp_path):
    """`bountytree serve DIR`, as other model servers serve a model directory: the folder
    `model export` wrote, served with no chain reachable (its RPC points at a closed port), gives
    the same answers as the task's model; a folder whose weights are not the ones its card names
    is refused in one line before anything listens."""
    import shutil

    from bountytree.models import weights as weights_io
    from bountytree.processes import free_port
    from tests.conftest import cli_error, cli_ok

    folder = tmp_path / "winner"
    cli_ok(settings, "model", "export", "--task", str(task.task_id), "--out", str(folder))
    offline = {**_env(settings), "BOUNTYTREE_RPC": f"http://127.0.0.1:{free_port()}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bountytree", "serve", str(folder), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=offline,
    )
    try:
        line = proc.stdout.readline().decode()
        match = re.search(r"at (http://127\.0\.0\.1:\d+)/v2/models/(\S+)", line)
        assert match, (line, proc.stderr.read().decode() if proc.poll() is not None else "")
        base, name = match.group(1), match.group(2)
        assert name == f"task-{task.task_id}"
        r = _infer(base, name, rows[:5])
        assert r.status_code == 200, r.text
        assert r.json()["model_version"] == str(task.winner)
        logits = np.float32(r.json()["outputs"][0]["data"]).reshape(5, -1)
        assert np.array_equal(logits, expected.predict(rows[:5]).logits)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()
    swapped = tmp_path / "swapped"
    shutil.copytree(folder, swapped)
    (swapped / "model.safetensors").write_bytes(weights_io.initial_weights(expected.spec))
    line = cli_error(settings, "serve", str(swapped), "--port", "0")
    assert "is not the weights its model card names" in line
    assert "not a folder" in cli_error(settings, "serve", str(tmp_path / "nowhere"))
    assert "one of the two" in cli_error(settings, "serve")
