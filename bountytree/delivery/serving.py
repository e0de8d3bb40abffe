"""`bountytree serve`: one model behind the Open Inference Protocol (KServe v2, REST).

Endpoints: `GET /v2/health/live`, `GET /v2/health/ready`, `GET /v2` (server metadata),
`GET /v2/models/{name}[/versions/{v}]` (model metadata), `.../ready`, `POST .../infer`, and
`GET /metrics` (Prometheus text). The model takes one input tensor `input` (FP32, FP64 or any
INT/UINT type; shape [rows, *input_shape] or [rows, features]) and gives `logits` (FP32) and
`class` (INT64, the argmax). Every bad request is a 400 (404 for an unknown model or path) with
`{"error": "…"}` on one line; the model never sees a row that `Predictor.rows` did not check.

Concurrent requests are batched: a request that finds the model idle runs at once (no added
wait at low load); while others whose bodies are in are being parsed, the batcher waits up to
`max_delay` for them, then runs one forward pass over all the rows, up to `max_batch`, and
hands each request its slice. The forward pass runs on the event loop itself: the models
bountytree trains take tens of microseconds, less than a hop to a worker thread would cost.
"""

from __future__ import annotations

import asyncio
import gc
import math
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bountytree.delivery.http import HttpLimits
from bountytree.delivery.metrics import CONTENT_TYPE, Metrics, ModelInfo, route_of
from bountytree.errors import UserError
from bountytree.models.inference import InputError, Prediction, Predictor

INPUT = "input"
# The largest magnitude each float datatype holds: data beyond it is not of that type.
FLOAT_MAX = {
    name: float(np.finfo(t).max)
    for name, t in (("FP16", np.float16), ("FP32", np.float32), ("FP64", np.float64))
}
OUTPUTS = ("logits", "class")
# Keys and separators a request's envelope may have beside its values (name, shape, datatype,
# data, outputs, id, parameters...): generous, and far below what holds the parser for long.
ENVELOPE_ITEMS = 256
SHOWN_CHARS = 80  # of a stranger's value quoted in an error
MAX_ID_CHARS = 256  # a request id, echoed in the answer
# Open Inference Protocol datatypes accepted for the input, and the numpy kinds their data may take.
DATATYPES = {
    "FP32": "fiu",
    "FP64": "fiu",
    "FP16": "fiu",
    **{f"INT{b}": "iu" for b in (8, 16, 32, 64)},
    **{f"UINT{b}": "iu" for b in (8, 16, 32, 64)},
}


# What one request may make the server compute and send back, whatever --max-rows allows: its
# rows × the model's widest layer (what its forward pass holds, in chunks), × its operations
# per row (what the pass costs: about a tenth of a second on one core), and × the classes (the
# logits of its answer, which no body memory counts). A 682-row request to a CIFAR-sized CNN
# held the event loop 2 s, and 2 KiB of rows to a 1,000-class model asked for a 10.7 MiB answer
# (the attacker reviews of the servers and of their fixes).
MAX_REQUEST_VALUES = 1 << 24
MAX_REQUEST_FLOPS = 1 << 31
MAX_ANSWER_VALUES = 1 << 16
# Input values in one request: what its parsing costs the event loop (1,024 rows of 784
# features held it 95 ms in the parser and the checks; 2^18 values, about 30 ms).
MAX_REQUEST_INPUTS = 1 << 18
# A forward pass of more operations than this runs in a worker thread, so that the event loop
# keeps answering (health, metrics, other connections' parsing) meanwhile; below, the hop would
# cost more than the pass (the examples' models take 10–20 µs).
INLINE_FLOPS = 1 << 22


def request_rows(predictor: Predictor, config: ServeConfig) -> int:
    """Rows one request may hold for this model: `--max-rows`, or fewer for a model that is
    wide, costly per row, of many classes or many features (MAX_REQUEST_VALUES,
    MAX_REQUEST_FLOPS, MAX_ANSWER_VALUES, MAX_REQUEST_INPUTS); at least one."""
    spec = predictor.spec
    return max(
        1,
        min(
            config.max_rows,
            MAX_REQUEST_VALUES // max(1, spec.widest),
            MAX_REQUEST_FLOPS // predictor.flops_per_row,
            MAX_ANSWER_VALUES // max(1, spec.num_classes),
            MAX_REQUEST_INPUTS // max(1, spec.num_features),
        ),
    )


@dataclass(frozen=True)
class ServeConfig:
    """Limits and batching. `max_batch` is rows per forward pass (1 turns batching off: each
    request alone); a single request larger than it still runs whole, up to `max_rows`."""

    max_batch: int = 64
    max_delay: float = 0.001
    max_rows: int = 1024
    max_body: int = 4 << 20
    # Request bodies held in memory at once, all requests together: with the connections
    # limit, what bounds the server's memory (docs/models.md, "Limits").
    body_memory: int = 256 << 20
    http: HttpLimits = field(default_factory=HttpLimits)

    def check(self) -> None:
        self.http.check()
        if not 1 <= self.max_batch <= 65536:
            raise UserError(f"--max-batch: {self.max_batch} is outside 1..65536")
        if not 0 <= self.max_delay <= 1:
            raise UserError(f"--max-delay-ms: {self.max_delay * 1000:g} is outside 0..1000")
        if not 1 <= self.max_rows <= 1 << 20:
            raise UserError(f"--max-rows: {self.max_rows} is outside 1..{1 << 20}")
        if not 1024 <= self.max_body <= 1 << 30:
            raise UserError(f"--max-body-mb: {self.max_body / (1 << 20):g} is outside 0.001..1024")
        if not self.max_body <= self.body_memory <= 1 << 40:
            raise UserError(
                f"--max-body-memory-mb: {self.body_memory / (1 << 20):g} is outside one body "
                f"(--max-body-mb {self.max_body / (1 << 20):g}) to {1 << 20}"
            )


class BadRequest(Exception):
    """A request the protocol or the model refuses; its message is the one-line error."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


class MetricsMiddleware:
    """Counts every HTTP request by route and status and times it (a plain ASGI wrapper: no
    per-request task or thread, unlike Starlette's BaseHTTPMiddleware)."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self.metrics.request(route_of(scope["path"]), status, time.perf_counter() - started)


# ── the batcher ──────────────────────────────────────────────────────────────


@dataclass
class _Job:
    rows: np.ndarray
    done: asyncio.Future[Prediction]


class Batcher:
    """Collects checked rows from concurrent requests into forward passes (see the module doc)."""

    def __init__(self, predictor: Predictor, config: ServeConfig, metrics: Metrics):
        self.predictor = predictor
        predictor.flops_per_row  # noqa: B018 (counted once here, at start, not on a request)
        self.config = config
        self.metrics = metrics
        self.queue: deque[_Job] = deque()
        self.inflight = 0  # infer requests started and not yet answered
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def predict(self, rows: np.ndarray) -> Prediction:
        job = _Job(rows, asyncio.get_running_loop().create_future())
        self.queue.append(job)
        self._ready.set()
        return await job.done

    async def _collect(self) -> list[_Job]:
        """The next batch: everything queued that fits, waiting up to max_delay only while
        requests whose bodies are in are still being parsed (they will join)."""
        while not self.queue:
            self._ready.clear()
            await self._ready.wait()
        jobs = [self.queue.popleft()]
        rows = len(jobs[0].rows)
        deadline = 0.0
        while rows < self.config.max_batch:
            if self.queue:
                if rows + len(self.queue[0].rows) > self.config.max_batch:
                    break
                jobs.append(self.queue.popleft())
                rows += len(jobs[-1].rows)
                continue
            coming = self.inflight - len(jobs)
            if coming <= 0 or self.config.max_delay <= 0:
                break
            loop = asyncio.get_running_loop()
            deadline = deadline or loop.time() + self.config.max_delay
            left = deadline - loop.time()
            if left <= 0:
                break
            self._ready.clear()
            try:
                async with asyncio.timeout(left):
                    await self._ready.wait()
            except TimeoutError:
                break
        return jobs

    async def _run(self) -> None:
        while True:
            jobs = await self._collect()
            live = [j for j in jobs if not j.done.cancelled()]
            if not live:
                continue
            rows = live[0].rows if len(live) == 1 else np.concatenate([j.rows for j in live])
            self.metrics.batch_rows.observe(len(rows))
            self.metrics.batch_requests.observe(len(live))
            try:
                if len(rows) * self.predictor.flops_per_row > INLINE_FLOPS:
                    out = await asyncio.to_thread(self.predictor.forward, rows)
                else:
                    out = self.predictor.forward(rows)
            except Exception as exc:  # not the caller's input: it was checked
                for j in live:
                    if not j.done.done():  # (cancelled while the pass ran in its thread)
                        j.done.set_exception(exc)
                continue
            start = 0
            for j in live:
                end = start + len(j.rows)
                if not j.done.done():  # a request cancelled meanwhile ended the batcher
                    j.done.set_result(Prediction(out.logits[start:end], out.classes[start:end]))
                start = end


# ── requests ─────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class InferRequest:
    rows: np.ndarray
    outputs: tuple[str, ...]
    id: str | None


def _shape(value: Any) -> list[int]:
    if not isinstance(value, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in value
    ):
        raise BadRequest("inputs[0].shape: expected a list of non-negative integers")
    return value


def max_lists(input_shape: tuple[int, ...], max_rows: int) -> int:
    """The most JSON lists an honest request holds: per row its nesting as the model's input
    shape (a flat row is one list, a [C, H, W] row 1 + C + C·H), plus a few for the envelope."""
    per_row, lists = 1, 1
    for side in input_shape[:-1]:
        per_row *= side
        lists += per_row
    return 16 + max_rows * lists


def _shown(value: Any) -> str:
    """A stranger's value quoted in an error: JSON for a scalar, the type's name otherwise, cut
    to SHOWN_CHARS characters (an error must not grow with what was sent)."""
    scalar = value is None or isinstance(value, str | int | float | bool)
    text = orjson.dumps(value).decode() if scalar else type(value).__name__
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "…"


def _numbers_only(data: list[Any]) -> bool:
    """Whether nested lists hold only ints and floats (JSON numbers; not bools or strings).
    Checked before numpy sees the data: a list of strings becomes an array as wide as the
    longest one times the count, gigabytes for a 200 KB body."""
    stack = [data]
    while stack:
        for item in stack.pop():
            kind = type(item)
            if kind is list:
                stack.append(item)
            elif kind is not float and kind is not int:
                return False
    return True


def parse_infer(body: bytes, predictor: Predictor, config: ServeConfig) -> InferRequest:
    """Checks an inference request against the protocol and the model; BadRequest if it fails.
    The body's lists, items and keys are counted before it is parsed (bytes counts, about a
    millisecond for 4 MiB): a body of a million empty lists, two million zeros or 400,000 keys
    would hold the event loop for 0.1 to 1 s in the parser, and is refused in that millisecond
    instead; what passes holds it for at most about 20 ms (docs/models.md, "Limits")."""
    most = request_rows(predictor, config)
    allowed = max_lists(predictor.spec.input_shape, most)
    if body.count(b"[") > allowed or body.count(b"{") > 16 + most:
        raise BadRequest(f"the body nests more lists than {most} rows can need")
    max_values = most * math.prod(predictor.spec.input_shape)
    if (
        body.count(b",") > max_values + allowed + ENVELOPE_ITEMS
        or body.count(b":") > ENVELOPE_ITEMS
    ):
        raise BadRequest(f"the body holds more items than {most} rows can need")
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadRequest("the body is not valid JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), list):
        raise BadRequest(
            'expected a JSON object with "inputs": [{"name", "shape", "datatype", "data"}]'
        )
    inputs = doc["inputs"]
    if len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise BadRequest(f'"inputs": the model takes exactly one tensor, named "{INPUT}"')
    tensor = inputs[0]
    if tensor.get("name") != INPUT:
        raise BadRequest(f'inputs[0].name: {_shown(tensor.get("name"))} is not "{INPUT}"')
    datatype = tensor.get("datatype")
    if not isinstance(datatype, str) or datatype not in DATATYPES:
        raise BadRequest(
            f"inputs[0].datatype: {_shown(datatype)} is not one of {', '.join(DATATYPES)}"
        )
    shape = _shape(tensor.get("shape"))
    spec = predictor.spec
    fits = (tuple(shape[1:]) == spec.input_shape) or (shape[1:] == [spec.num_features])
    if len(shape) < 2 or not fits:
        raise BadRequest(
            f"inputs[0].shape: {shape} does not fit the model, which takes "
            f"[rows, {', '.join(map(str, spec.input_shape))}]"
            + (f" or [rows, {spec.num_features}]" if len(spec.input_shape) > 1 else "")
        )
    if not 1 <= shape[0] <= most:
        raise BadRequest(
            f"inputs[0].shape: {shape[0]} rows, expected 1 to {most}"
            + ("" if most == config.max_rows else " (this model's limit per request)")
        )
    data = tensor.get("data")
    if not isinstance(data, list):
        raise BadRequest("inputs[0].data: expected a list of numbers (flat or nested, row-major)")
    if not _numbers_only(data):
        what = "integers" if DATATYPES[datatype] == "iu" else "numbers"
        raise BadRequest(f"inputs[0].data: {datatype} data must be {what}, in lists")
    try:
        values = np.asarray(data)
    except (ValueError, OverflowError):
        raise BadRequest(
            "inputs[0].data: nested lists of unequal lengths, or nested too deeply"
        ) from None
    if values.dtype.kind not in DATATYPES[datatype]:
        what = "integers" if DATATYPES[datatype] == "iu" else "numbers"
        raise BadRequest(f"inputs[0].data: {datatype} data must be {what}, got {values.dtype}")
    if values.size != math.prod(shape):
        raise BadRequest(
            f"inputs[0].data: {values.size} values, shape {shape} needs {math.prod(shape)}"
        )
    if datatype.startswith(("INT", "UINT")) and values.size:
        limits = np.iinfo(datatype.lower())
        if values.min() < limits.min or values.max() > limits.max:
            raise BadRequest(f"inputs[0].data: values outside the range of {datatype}")
    if datatype.startswith("FP") and values.size:
        biggest = float(np.abs(values).max())
        if not biggest <= FLOAT_MAX[datatype]:  # NaN compares false too
            raise BadRequest(f"inputs[0].data: values outside the range of {datatype}")
    try:
        rows = predictor.rows(values.reshape(shape), "inputs[0].data")
    except InputError as exc:
        raise BadRequest(str(exc)) from None
    wanted = doc.get("outputs")
    outputs: tuple[str, ...] = OUTPUTS
    if wanted is not None:
        if (
            not isinstance(wanted, list)
            or not all(isinstance(o, dict) and o.get("name") in OUTPUTS for o in wanted)
            or len({o["name"] for o in wanted}) != len(wanted)
        ):
            raise BadRequest(
                f'"outputs": expected a list of {{"name"}} among {", ".join(OUTPUTS)}, '
                "each at most once"
            )
        outputs = tuple(o["name"] for o in wanted)
    request_id = doc.get("id")
    if request_id is not None and (
        not isinstance(request_id, str) or len(request_id) > MAX_ID_CHARS
    ):
        raise BadRequest(f'"id": expected a string of at most {MAX_ID_CHARS} characters')
    return InferRequest(rows, outputs, request_id)


def infer_response(model: ModelInfo, request: InferRequest, out: Prediction) -> bytes:
    tensors = {
        "logits": {
            "name": "logits",
            "datatype": "FP32",
            "shape": list(out.logits.shape),
            "data": out.logits.reshape(-1),
        },
        "class": {
            "name": "class",
            "datatype": "INT64",
            "shape": [len(out.classes)],
            "data": out.classes,
        },
    }
    doc: dict[str, Any] = {"model_name": model.name, "model_version": model.version}
    if request.id is not None:
        doc["id"] = request.id
    doc["outputs"] = [tensors[name] for name in request.outputs]
    return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)


def _json(doc: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(doc), status, media_type="application/json")


def _error(message: str, status: int) -> Response:
    return _json({"error": message}, status)


class BodyMemory:
    """The bytes all request bodies may hold at once. A request takes its share as its bytes
    arrive (a declared length costs nothing until it is sent) and gets a 503 at once when the
    next chunk does not fit: a slow body holds what it sent only until the body deadline, and
    no honest request waits behind one."""

    def __init__(self, total: int):
        self.left = total

    @contextmanager
    def held(self) -> Iterator[Callable[[int], None]]:
        """A `take(n)` for one request; everything it took is given back at the end."""
        taken = 0

        def take(size: int) -> None:
            nonlocal taken
            if size > self.left:
                raise BadRequest("the server holds too many request bodies now; retry", 503)
            self.left -= size
            taken += size

        try:
            yield take
        finally:
            self.left += taken


async def _body(request: Request, limit: int, take: Callable[[int], None]) -> bytes:
    """The request's body, at most `limit` bytes, each chunk taken from the body memory; a
    client that goes away (or is cut off by the body deadline) is a BadRequest 499, which no
    one receives but the metrics count."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BadRequest(f"the body is {int(declared)} bytes, at most {limit}")
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BadRequest(f"the body is over {limit} bytes")
            take(len(chunk))
            chunks.append(chunk)
    except ClientDisconnect:
        raise BadRequest("the client went away before its body ended", 499) from None
    return b"".join(chunks)


def build_app(predictor: Predictor, model: ModelInfo, config: ServeConfig) -> Starlette:
    """The ASGI application (what uvicorn runs; tests and benchmarks build it the same way)."""
    metrics = Metrics(model)
    batcher = Batcher(predictor, config, metrics)
    bodies = BodyMemory(config.body_memory)
    spec = predictor.spec

    def check_model(request: Request) -> None:
        name = request.path_params["name"]
        if name != model.name:
            raise BadRequest(f"unknown model {_shown(name)}; this server has {model.name!r}", 404)
        version = request.path_params.get("version")
        if version is not None and version != model.version:
            raise BadRequest(
                f"model {_shown(name)} has no version {_shown(version)}; it has {model.version!r}",
                404,
            )

    async def live(request: Request) -> Response:
        return _json({"live": True})

    async def ready(request: Request) -> Response:
        return _json({"ready": True})

    async def server_metadata(request: Request) -> Response:
        from bountytree import __version__

        return _json({"name": "bountytree", "version": __version__, "extensions": []})

    async def model_metadata(request: Request) -> Response:
        check_model(request)
        return _json(
            {
                "name": model.name,
                "versions": [model.version],
                "platform": "pytorch_bountytree",
                "inputs": [{"name": INPUT, "datatype": "FP32", "shape": [-1, *spec.input_shape]}],
                "outputs": [
                    {"name": "logits", "datatype": "FP32", "shape": [-1, spec.num_classes]},
                    {"name": "class", "datatype": "INT64", "shape": [-1]},
                ],
                "parameters": {"task": model.task_id, "node": model.node_id},
            }
        )

    async def model_ready(request: Request) -> Response:
        check_model(request)
        return _json({"name": model.name, "ready": True})

    async def infer(request: Request) -> Response:
        check_model(request)
        with bodies.held() as take:
            body = await _body(request, config.max_body, take)
            # In flight (what the batcher may wait for) only once its body is in: a client that
            # sends half a body must not hold every batch for --max-delay-ms.
            batcher.inflight += 1
            try:
                parsed = parse_infer(body, predictor, config)
                del body
                out = await batcher.predict(parsed.rows)
            finally:
                batcher.inflight -= 1
        return Response(infer_response(model, parsed, out), media_type="application/json")

    async def prometheus(request: Request) -> Response:
        return Response(metrics.render(), headers={"content-type": CONTENT_TYPE})

    async def bad_request(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, BadRequest)
        return _error(str(exc), exc.status)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return _error(f"{exc.detail}: {request.method} {_shown(request.url.path)}", exc.status_code)

    async def server_error(request: Request, exc: Exception) -> Response:
        return _error(f"internal error ({type(exc).__name__})", 500)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        batcher.start()
        yield
        await batcher.stop()

    base = "/v2/models/{name}"
    versioned = "/v2/models/{name}/versions/{version}"
    # Inference first: the router tries routes in order, and most requests are inferences.
    routes = [Route(prefix + "/infer", infer, methods=["POST"]) for prefix in (base, versioned)]
    routes += [
        Route("/v2/health/live", live),
        Route("/v2/health/ready", ready),
        Route("/v2", server_metadata),
        Route("/metrics", prometheus),
    ]
    for prefix in (base, versioned):
        routes += [Route(prefix, model_metadata), Route(prefix + "/ready", model_ready)]
    app = Starlette(
        routes=routes,
        exception_handlers={
            BadRequest: bad_request,
            HTTPException: http_error,
            Exception: server_error,
        },
        lifespan=lifespan,
    )
    # No redirect to the path with(out) a trailing slash: it would be built from the client's own
    # Host header.
    app.router.redirect_slashes = False
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # type: ignore[arg-type]
    app.state.metrics = metrics
    app.state.http = config.http
    app.state.batcher = batcher
    return app


def listen(host: str, port: int) -> socket.socket:
    """A listening socket, or a one-line UserError (port taken, address not on this machine)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port} ({exc.strerror})") from None
    sock.set_inheritable(True)
    return sock


def run(app: Starlette, sock: socket.socket, on_ready: Callable[[], None] | None = None) -> None:
    """Serves until SIGINT or SIGTERM, then shuts down gracefully (requests in flight are
    answered) and returns, on uvloop and uvicorn's httptools protocol with the app's HTTP
    limits (bountytree.delivery.http)."""
    import signal

    import uvicorn

    from bountytree.delivery.http import guarded_protocol

    limits: HttpLimits = app.state.http
    config = uvicorn.Config(
        app,
        http=guarded_protocol(limits, app.state.metrics.closed),
        loop="uvloop",
        ws="none",
        timeout_keep_alive=limits.keep_alive_timeout,
        # Not "warning": uvicorn warns once per malformed request, a log strangers could fill;
        # the metrics count those instead.
        log_level="error",
        access_log=False,
        lifespan="on",
        server_header=False,
    )
    server = uvicorn.Server(config)
    # Everything imported and loaded by now (torch, the model, the app) lives as long as the
    # server: frozen out of the collector's view, so that a full collection no longer walks it.
    # Unfrozen, each one held every request for about 110 ms, every ~3,000 requests (the p99
    # at 64 clients in bench/mlserver.md).
    gc.collect()
    gc.freeze()
    if on_ready is not None:
        on_ready()
    # uvicorn raises the signal again once it has shut down; a stop that was asked for is the
    # normal end of a server, so that second delivery is ignored and the command exits 0.
    stops = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in stops}
    try:
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
