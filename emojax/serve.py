"""``emojax serve``: a local web page that listens to the microphone and shows the emotion over time, and shows the
timeline of a recording dropped on it (Starlette on uvicorn; ``pip install "emojax[serve]"``).

Endpoints:

- ``GET /``: the page (``emojax/static/``); ``GET /static/...`` its scripts and style; ``GET /vendor/plotly.min.js``:
  the chart library, read from the installed ``plotly`` Python package (nothing is fetched from elsewhere).
- ``GET /api/info``: the model's classes (``"emotions"``) and their colours, the window and hop, the limits (JSON).
- ``POST /api/timeline?name=FILE[&hop=S][&smooth=S]``: the request body is the recording's bytes. Answers
  ``{"timeline": Timeline.to_dict(), "csv": ..., "table": ..., "message": ...}``: the timeline ``emojax timeline``
  gives (``Predictor.timeline_file``), its CSV (``--csv``) and table. Errors are ``{"error": reason}``: 413 for a
  body over the size limit or a recording over the duration limit, 422 for a file the library cannot read (its
  message), 400 for a bad parameter. Recordings are processed one at a time.
- ``WebSocket /ws/listen?format=f32|s16``: the live stream, below.

The live stream's protocol. The client sends

- binary frames: mono PCM at 16 kHz, little-endian float32 in [-1, 1] (``format=f32``, the default) or int16
  (``format=s16``), 1 to 16,000 samples (1 s) a frame (the page sends 0.1 s), at most in real time (plus
  ``SLACK_SECONDS`` of slack);
- the text ``{"type": "stop"}`` when the stream ends: the server sends the windows still to come (the last one aligned
  to the end, as the offline timeline), then "end", and closes.

The server sends text messages of JSON:

- ``{"type": "ready", "sample_rate", "window_seconds", "hop_seconds", "emotions", "colours"}`` once, first;
- ``{"type": "window", "start_seconds", "end_seconds", "emotion", "probabilities", "received_samples",
  "latency_ms"}`` for each window of the stream (``emojax.stream``'s: 2.5 s every 0.5 s), in order: times from the
  stream's first sample; emotion ``"silence"`` and probabilities null when it holds no speech; ``received_samples``:
  the samples received when it completed; ``latency_ms``: from the arrival of the frame that completed it to this
  message;
- ``{"type": "error", "message"}`` for a frame it refuses (not whole samples, over 1 s, NaN or infinite; text other
  than stop): the frame is dropped and the stream goes on, but after ``MAX_BAD_FRAMES`` of them the server closes with
  code 1003. It is also sent before the server closes with code 1008 (an unknown format, or audio faster than real
  time) or 1013 (``max_clients`` are listening already);
- ``{"type": "end", "samples", "windows"}`` after stop.

Live windows of all clients are classified together, a batch at a time (``_LiveBatches``); uploads one at a time on
another thread, so a long upload slows the live clients (two cores share the work) but does not stop them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import socket
import math
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from emojax.audio import SAMPLE_RATE, AudioStream
from emojax.inference import CHUNK_WINDOWS, Predictor
from emojax.stream import HOP_SECONDS, CutWindow, WindowCutter
from emojax.timeline import SILENCE, class_colours

STATIC = Path(__file__).resolve().parent / "static"
MAX_UPLOAD_BYTES = 200 * 1024 * 1024
"""Default: larger uploads are refused."""
MAX_SECONDS = 3600.0
"""Default: longer recordings are refused."""
MAX_CLIENTS = 8
"""Default: listening clients served at once; more are refused (close code 1013, try again later)."""
SLACK_SECONDS = 2.0
"""A listening client may run this far ahead of real time (buffered audio); further is refused (code 1008)."""
MAX_FRAME_SAMPLES = SAMPLE_RATE
"""Samples a binary frame may hold (1 s); the page sends 0.1 s."""
MAX_BAD_FRAMES = 10
"""Malformed messages a listening client may send before it is disconnected (code 1003)."""
FORMATS = {"f32": np.dtype("<f4"), "s16": np.dtype("<i2")}
"""The PCM sample formats of ``/ws/listen``: little-endian float32 in [-1, 1], or int16."""

class _Refused(Exception):
    """A request the server refuses: ``status`` and a message for the page."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class _LiveBatches:
    """Classifies the live windows of every client together: whatever is waiting, up to ``CHUNK_WINDOWS`` windows a
    batch, one batch at a time on a thread of its own (the cost of a batch hardly depends on its size, so four
    clients cost about what one does)."""

    def __init__(self, predictor: Predictor):
        self._predictor, self.classes = predictor, predictor.classes
        self._pending: list[tuple[np.ndarray, asyncio.Future]] = []
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="emojax-live")
        self._task: asyncio.Task | None = None

    def submit(self, samples: np.ndarray) -> asyncio.Future:
        """A future of the (C,) probabilities of the model's classes for one window of 16 kHz samples."""
        future = asyncio.get_running_loop().create_future()
        self._pending.append((samples, future))
        self._wake.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run())
        return future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch = [(s, f) for s, f in self._pending[:CHUNK_WINDOWS] if not f.done()]  # done: client gone
                del self._pending[:CHUNK_WINDOWS]
                if not batch:
                    continue
                try:
                    probs = await loop.run_in_executor(self._executor, self._predictor.classify_windows,
                                                       [s for s, _ in batch])
                except Exception as e:  # reported to each client; the others' batches go on
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(e)
                    continue
                for (_, future), p in zip(batch, probs):
                    if not future.done():
                        future.set_result(p)

    async def warm_up(self, sizes: tuple[int, ...] = (1, 2, 4)) -> None:
        """Classifies batches of ``sizes`` windows of noise, so that their programs are compiled (seconds each)
        before a client waits for them."""
        noise = np.random.default_rng(0).normal(0, 0.1, self._predictor.window_samples).astype(np.float32)
        for size in sizes:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._predictor.classify_windows,
                                                             [noise] * size)

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)


class _Listener:
    """One ``/ws/listen`` connection (the protocol in the module docstring): frames are cut into windows as they
    arrive; a sender task sends each window's result in order as soon as its batch is classified."""

    def __init__(self, socket: WebSocket, dtype: np.dtype, cutter: WindowCutter, batches: _LiveBatches,
                 slack: float):
        self._socket, self._dtype, self._cutter, self._batches, self._slack = socket, dtype, cutter, batches, slack
        self._outbox: asyncio.Queue[tuple[CutWindow, asyncio.Future | None, float, int] | None] = asyncio.Queue()
        self._started: float | None = None  # when the first audio arrived
        self._bad = 0
        self._windows = 0

    async def run(self) -> None:
        sender = asyncio.create_task(self._send_results())
        try:
            while True:
                message = await self._socket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                arrived = time.perf_counter()
                if message.get("bytes") is not None:
                    if not await self._audio(message["bytes"], arrived):
                        return
                elif await self._text(message.get("text") or "", arrived):
                    await sender
                    await self._socket.send_text(json.dumps({"type": "end", "samples": self._cutter.samples,
                                                             "windows": self._windows}))
                    await self._socket.close()
                    return
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
            while not self._outbox.empty():  # the client is gone: its waiting windows need no classifying
                item = self._outbox.get_nowait()
                if item is not None and item[1] is not None:
                    item[1].cancel()

    async def _audio(self, data: bytes, arrived: float) -> bool:
        """Feeds a binary frame; False when the connection was closed for running ahead of real time."""
        size = self._dtype.itemsize
        if not data or len(data) % size or len(data) // size > MAX_FRAME_SAMPLES:
            return await self._refuse(f"a binary frame must hold 1 to {MAX_FRAME_SAMPLES} whole {self._dtype.name} "
                                      f"samples ({size} bytes each), got {len(data)} bytes")
        samples = np.frombuffer(data, self._dtype)
        samples = samples / np.float32(32768) if self._dtype.kind == "i" else samples.astype(np.float32)
        if not np.isfinite(samples).all():
            return await self._refuse("a frame holds NaN or infinite samples")
        self._started = arrived if self._started is None else self._started
        elapsed, total = arrived - self._started, (self._cutter.samples + len(samples)) / SAMPLE_RATE
        if total > elapsed + self._slack:
            await self._error(f"audio arrives faster than real time ({total:.1f} s in {elapsed:.1f} s): send it as "
                              "it is recorded")
            await self._socket.close(1008)
            return False
        self._queue(self._cutter.feed(np.clip(samples, -1.0, 1.0)), arrived)
        return True

    async def _text(self, text: str, arrived: float) -> bool:
        """Handles a text message; True for ``{"type": "stop"}`` (the remaining windows are queued)."""
        try:
            stop = json.loads(text).get("type") == "stop"
        except (ValueError, AttributeError):
            stop = False
        if not stop:
            await self._refuse(f'a text message must be {{"type": "stop"}}, got {text[:80]!r}')
            return False
        self._queue(self._cutter.finish(), arrived)
        self._outbox.put_nowait(None)
        return True

    def _queue(self, cuts: list[CutWindow], arrived: float) -> None:
        for cut in cuts:
            future = None if cut.silent else self._batches.submit(cut.samples)
            self._outbox.put_nowait((cut, future, arrived, self._cutter.samples))

    async def _refuse(self, message: str) -> bool:
        """Reports a malformed message; closes the connection (code 1003) after ``MAX_BAD_FRAMES``. True while the
        connection stays open."""
        self._bad += 1
        await self._error(message)
        if self._bad >= MAX_BAD_FRAMES:
            await self._error(f"{self._bad} malformed messages: closing")
            await self._socket.close(1003)
            return False
        return True

    async def _error(self, message: str) -> None:
        await self._socket.send_text(json.dumps({"type": "error", "message": message}))

    async def _send_results(self) -> None:
        while (item := await self._outbox.get()) is not None:
            cut, future, arrived, received = item
            window = cut.to_window(None if future is None else await future, self._batches.classes)
            self._windows += 1
            await self._socket.send_text(json.dumps(
                {"type": "window", **window.to_dict(), "received_samples": received,
                 "latency_ms": round((time.perf_counter() - arrived) * 1000, 1)}))


def create_app(predictor: Predictor, max_upload_bytes: int = MAX_UPLOAD_BYTES, max_seconds: float = MAX_SECONDS,
               max_clients: int = MAX_CLIENTS, hop: float = HOP_SECONDS, slack: float = SLACK_SECONDS) -> Starlette:
    """The web app (module docstring) around ``predictor``: uploads up to ``max_upload_bytes`` bytes and
    ``max_seconds`` of audio, ``max_clients`` listening clients at once, live windows every ``hop`` seconds, a
    listening client at most ``slack`` seconds ahead of real time."""
    if predictor.speaker_normalization != "none":
        raise ValueError("this model was trained with speaker normalisation: it needs several recordings of each "
                         "speaker and cannot serve a page; give a model trained without it")
    from plotly.offline import get_plotlyjs

    plotly_js = get_plotlyjs().encode()
    size, step = predictor.window_samples, int(round(hop * SAMPLE_RATE))
    WindowCutter(size, step)  # checks the hop
    info = {"emotions": list(predictor.classes), "colours": class_colours(predictor.classes), "silence": SILENCE,
            "sample_rate": SAMPLE_RATE, "window_seconds": size / SAMPLE_RATE, "hop_seconds": step / SAMPLE_RATE,
            "timeline_hop_seconds": size // 2 / SAMPLE_RATE, "max_upload_bytes": max_upload_bytes,
            "max_seconds": max_seconds, "formats": list(FORMATS)}
    uploads = asyncio.Lock()
    live: dict[str, Any] = {"clients": 0}

    async def index(request: Request) -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def plotly(request: Request) -> Response:
        return Response(plotly_js, media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})

    async def api_info(request: Request) -> JSONResponse:
        return JSONResponse(info)

    def seconds(request: Request, name: str, positive: bool) -> float | None:
        """The query parameter ``name``: None when absent, else a finite number of seconds > 0 (``positive``) or
        >= 0."""
        text = request.query_params.get(name, "")
        if not text:
            return None
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < 0 or (positive and value == 0):
            raise _Refused(400, f"{name} must be a number of seconds {'> 0' if positive else '>= 0'}, got {text!r}")
        return value

    def timeline(path: Path, name: str, hop: float | None, smooth: float) -> dict[str, Any]:
        length = AudioStream(path, SAMPLE_RATE).seconds
        if length > max_seconds:
            raise _Refused(413, f"{name}: the recording is {length / 60:.1f} min long; this server takes recordings "
                                f"up to {max_seconds / 60:.1f} min (emojax serve --max-minutes)")
        result = dataclasses.replace(predictor.timeline_file(path, hop=hop, smooth=smooth, progress=False),
                                     file=name)
        csv = result.to_csv(path.with_suffix(".csv")).read_text(encoding="utf-8")
        return {"timeline": result.to_dict(), "csv": csv, "table": result.table(), "message": result.message}

    async def api_timeline(request: Request) -> JSONResponse:
        name = Path(request.query_params.get("name") or "recording").name[-120:] or "recording"
        try:
            hop, smooth = seconds(request, "hop", True), seconds(request, "smooth", False) or 0.0
            too_large = _Refused(413, f"{name}: the file is larger than this server's limit of "
                                      f"{max_upload_bytes / 2**20:.0f} MB (emojax serve --max-upload-mb)")
            announced = request.headers.get("content-length", "")
            if announced.isdigit() and int(announced) > max_upload_bytes:
                raise too_large
            with tempfile.TemporaryDirectory(prefix="emojax-") as folder:
                path = Path(folder) / f"upload{Path(name).suffix[:12]}"
                received = 0
                with path.open("wb") as f:
                    async for chunk in request.stream():
                        received += len(chunk)
                        if received > max_upload_bytes:
                            raise too_large
                        f.write(chunk)
                async with uploads:
                    try:
                        return JSONResponse(await run_in_threadpool(timeline, path, name, hop, smooth))
                    except (OSError, ValueError) as e:  # the library's reason; AudioFileError is a ValueError
                        reason = (e.strerror if isinstance(e, OSError) else None) or str(e)
                        raise _Refused(422, f"{name}: {reason.replace(str(path), name).removeprefix(f'{name}: ')}")
        except _Refused as e:
            return JSONResponse({"error": str(e)}, status_code=e.status)

    async def listen(socket: WebSocket) -> None:
        await socket.accept()
        dtype = FORMATS.get(socket.query_params.get("format", "f32"))
        try:
            if dtype is None:
                await socket.send_text(json.dumps({"type": "error", "message": f"format must be one of "
                                                   f"{', '.join(FORMATS)}, got {socket.query_params['format']!r}"}))
                await socket.close(1008)
                return
            if live["clients"] >= max_clients:
                await socket.send_text(json.dumps({"type": "error", "message": f"this server listens to "
                                                   f"{max_clients} clients at once (emojax serve --max-clients); "
                                                   "try again later"}))
                await socket.close(1013)
                return
            live["clients"] += 1
            try:
                await socket.send_text(json.dumps({"type": "ready", **{k: info[k] for k in (
                    "sample_rate", "window_seconds", "hop_seconds", "emotions", "colours")}}))
                await _Listener(socket, dtype, WindowCutter(size, step), live["batches"], slack).run()
            finally:
                live["clients"] -= 1
        except (WebSocketDisconnect, RuntimeError, OSError):  # the client went away while we sent or closed
            pass

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        live["batches"] = _LiveBatches(predictor)
        await live["batches"].warm_up()
        yield
        live["batches"].close()

    return Starlette(
        routes=[Route("/", index), Route("/vendor/plotly.min.js", plotly), Route("/api/info", api_info),
                Route("/api/timeline", api_timeline, methods=["POST"]), WebSocketRoute("/ws/listen", listen),
                Mount("/static", StaticFiles(directory=STATIC), name="static")],
        middleware=[Middleware(GZipMiddleware, minimum_size=4096)], lifespan=lifespan)


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host``:``port`` (0: a free port). Raises ``OSError`` when it cannot be bound (the
    port is taken, or the host is not an address of this machine)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def url(sock: socket.socket) -> str:
    """The page's address on a ``listening_socket``."""
    host, port = sock.getsockname()[:2]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/"


class _Server(uvicorn.Server):
    """uvicorn's server, remembering the signal that stopped it (``stopped_by``). uvicorn shuts down on Ctrl-C and then
    sends the signal to the process again, for asyncio's handler to raise ``KeyboardInterrupt``; on a busy machine
    that handler can run after the event loop has ended, and the Ctrl-C would be lost: ``serve`` raises it itself."""

    stopped_by: int | None = None

    def handle_exit(self, sig: int, frame: Any) -> None:
        self.stopped_by = sig
        super().handle_exit(sig, frame)


def _server(app: Starlette) -> _Server:
    # log_config=None: uvicorn's warnings go to the root logger's handlers (or stderr) instead of a logging.dictConfig
    # that closes every handler in the process, among them absl's, whose stream may be a replaced sys.stderr.
    return _Server(uvicorn.Config(app, log_config=None, log_level="warning", ws_max_size=1 << 20,
                                  timeout_graceful_shutdown=3))


@contextlib.contextmanager
def background(app: Starlette, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serves ``app`` from a thread while the block runs (for tests, benchmarks and notebooks); yields the page's
    URL (``port`` 0: a free port)."""
    sock = listening_socket(host, port)
    server = _server(app)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="emojax-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError(f"the server did not start on {url(sock)}")
        time.sleep(0.02)
    try:
        yield url(sock)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def serve(app: Starlette, sock: socket.socket) -> None:
    """Serves ``app`` on ``sock`` (``listening_socket``) until Ctrl-C, printing the page's URL once it listens."""
    server = _server(app)

    async def run() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.05)
        if server.started:
            print(f"emojax serve: open {url(sock)} in a browser (Ctrl-C stops)", flush=True)
        await task

    asyncio.run(run())
    if server.stopped_by == signal.SIGINT:  # asyncio did not raise it (see _Server)
        raise KeyboardInterrupt
