"""The live page's library and server: the stream predictor against the offline timeline, uploads (good, bad, too
large, too long), the WebSocket stream (malformed frames, a disconnect, a client faster than real time, too many
clients) and four clients at once in real time; a model of its own classes; and the ``emojax serve`` command's
errors."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import io
import json
import struct
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

import emojax
from emojax import cli, inference, synthetic
from emojax.labels import EMOTIONS
from emojax.timeline import COLOURS, SILENCE, class_colours

pytest.importorskip("starlette", reason='the serve extra is not installed: pip install -e ".[test]"')
from starlette.testclient import TestClient  # noqa: E402

from emojax import serve, stream  # noqa: E402

RATE = synthetic.SAMPLE_RATE
FRAME = RATE // 10  # the page's 0.1 s frames


def speech_recording(emotions: tuple[str, ...] = ("anger", "sadness"), clips: int = 3, gap_seconds: float = 3.0,
                     scale: tuple[float, ...] = ()) -> np.ndarray:
    """Float32 16 kHz audio: ``clips`` synthetic test-speaker clips of each emotion in a row, a block per emotion,
    with ``gap_seconds`` of digital silence after each block; ``scale``: a gain per block (default 1)."""
    by_emotion: dict[str, list[np.ndarray]] = {e: [] for e in emotions}
    for clip in synthetic.generate("test"):
        if clip.emotion in by_emotion and len(by_emotion[clip.emotion]) < clips:
            by_emotion[clip.emotion].append(clip.audio)
        if all(len(v) == clips for v in by_emotion.values()):
            break
    parts = []
    for k, emotion in enumerate(emotions):
        gain = scale[k] if k < len(scale) else 1.0
        parts += [np.concatenate(by_emotion[emotion]).astype(np.float32) / 32768 * gain,
                  np.zeros(int(gap_seconds * RATE), np.float32)]
    return np.concatenate(parts)


@pytest.fixture(scope="module")
def predictor(trained_workdir) -> inference.Predictor:
    return inference.Predictor.from_workdir(trained_workdir)


@pytest.fixture(scope="module")
def audio() -> np.ndarray:
    return speech_recording()


@pytest.fixture(scope="module")
def wav(audio, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("serve") / "two emotions.wav"
    soundfile.write(path, audio, RATE, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def client(predictor):
    """A test client of the app; listening clients may send faster than real time (slack of a day)."""
    with TestClient(serve.create_app(predictor, max_clients=2, slack=86400.0)) as c:
        yield c


def _feed(live: stream.StreamPredictor, audio: np.ndarray, seed: int) -> list:
    """``live``'s windows for ``audio`` fed in random chunks of 1-5000 samples, then finished."""
    rng, windows, i = np.random.default_rng(seed), [], 0
    while i < len(audio):
        n = int(rng.integers(1, 5000))
        windows += live.feed(audio[i:i + n])
        i += n
    return windows + live.finish()


def _assert_same_windows(windows: list, offline: list) -> None:
    assert [(w.start_seconds, w.end_seconds, w.emotion) for w in windows] == \
        [(w.start_seconds, w.end_seconds, w.emotion) for w in offline]
    for w, o in zip(windows, offline):
        if not w.silent:
            np.testing.assert_allclose([w.probabilities[e] for e in EMOTIONS],
                                       [o.probabilities[e] for e in EMOTIONS], atol=1e-5)


def test_the_stream_gives_the_offline_timelines_windows(predictor, audio):
    # The loudest speech comes first, so the online loud level is the offline one: the same silence decisions.
    offline = predictor.timeline(audio, RATE, hop=stream.HOP_SECONDS).windows
    assert {w.emotion for w in offline} >= {SILENCE, "anger"}  # silent windows in the gaps
    _assert_same_windows(_feed(stream.StreamPredictor(predictor), audio, seed=0), offline)
    windows = _feed(stream.StreamPredictor(predictor, hop=0.3), audio[:RATE * 4 + 123], seed=1)
    _assert_same_windows(windows, predictor.timeline(audio[:RATE * 4 + 123], RATE, hop=0.3).windows)


def test_a_short_or_empty_stream(predictor, audio):
    short = audio[:RATE]  # shorter than a window: one window, zero-padded, as offline
    _assert_same_windows(_feed(stream.StreamPredictor(predictor), short, seed=2),
                         predictor.timeline(short, RATE, hop=stream.HOP_SECONDS).windows)
    assert stream.StreamPredictor(predictor).finish() == []
    live = stream.StreamPredictor(predictor)
    with pytest.raises(ValueError, match="NaN"):
        live.feed(np.array([0.0, np.nan], np.float32))
    assert live.cutter.samples == 0


def test_online_silence_differs_only_before_the_loudest_speech(predictor):
    # Soft speech (-35 dB) then loud: offline the soft block is more than 40 dB below the loud level, so silence;
    # online it is speech until the loud block has been heard. Windows after that agree.
    audio = speech_recording(("sadness", "anger"), clips=2, gap_seconds=3.0, scale=(10 ** (-35 / 20), 1.0))
    offline = predictor.timeline(audio, RATE, hop=stream.HOP_SECONDS).windows
    online = _feed(stream.StreamPredictor(predictor), audio, seed=3)
    assert [w.start_seconds for w in online] == [w.start_seconds for w in offline]
    differ = [i for i, (a, b) in enumerate(zip(online, offline)) if a.silent != b.silent]
    assert differ and all(not online[i].silent and offline[i].silent for i in differ)
    loud_start = next(i for i, w in enumerate(offline) if not w.silent)
    assert max(differ) < loud_start


def test_the_page_and_its_scripts_are_served_from_the_package(client):
    page = client.get("/")
    assert page.status_code == 200 and "Listen" in page.text and "/vendor/plotly.min.js" in page.text
    for path in ("/static/app.js", "/static/capture-worklet.js", "/static/style.css"):
        assert client.get(path).status_code == 200, path
    plotly = client.get("/vendor/plotly.min.js", headers={"Accept-Encoding": "gzip"})
    assert plotly.status_code == 200 and "plotly" in plotly.text[:2000].lower() and len(plotly.content) > 1e6
    assert plotly.headers["content-encoding"] == "gzip"
    info = client.get("/api/info").json()
    assert info["emotions"] == list(EMOTIONS) and info["hop_seconds"] == stream.HOP_SECONDS


def test_an_upload_gets_the_timeline_of_emojax_timeline(client, predictor, wav, tmp_path):
    response = client.post("/api/timeline", params={"name": wav.name, "smooth": "2"}, content=wav.read_bytes())
    assert response.status_code == 200, response.text
    body = response.json()
    expected = dataclasses.replace(predictor.timeline_file(wav, smooth=2.0), file=wav.name)
    assert body["timeline"] == json.loads(json.dumps(expected.to_dict()))
    assert body["csv"] == expected.to_csv(tmp_path / "t.csv").read_text()
    assert body["table"] == expected.table() and body["message"] is None


@pytest.mark.parametrize("kind, reason", [("random", "not a readable audio file"), ("empty", "not a readable audio"),
                                          ("truncated", "truncated file")])
def test_a_bad_upload_gets_the_librarys_error_and_the_server_goes_on(client, audio, wav, kind, reason):
    data = wav.read_bytes()
    content = {"random": np.random.default_rng(0).bytes(5000), "empty": b"", "truncated": data[:len(data) // 2]}
    response = client.post("/api/timeline", params={"name": f"{kind}.wav"}, content=content[kind])
    assert response.status_code == 422 and response.json()["error"].startswith(f"{kind}.wav: ")
    assert reason in response.json()["error"] and "/tmp" not in response.json()["error"]
    good = io.BytesIO()
    soundfile.write(good, audio[:3 * RATE], RATE, format="WAV")
    assert client.post("/api/timeline", params={"name": "good.wav"}, content=good.getvalue()).status_code == 200


def test_uploads_over_the_limits_are_refused(predictor, wav):
    data = wav.read_bytes()
    with TestClient(serve.create_app(predictor, max_upload_bytes=len(data) - 1, max_seconds=5.0)) as small:
        too_large = small.post("/api/timeline", params={"name": "big.wav"}, content=data)
        assert too_large.status_code == 413 and "larger than this server's limit" in too_large.json()["error"]
        streamed = small.post("/api/timeline", params={"name": "big.wav"}, content=iter([data[:9000], data[9000:]]))
        assert streamed.status_code == 413  # no Content-Length: counted as it arrives
        too_long = small.post("/api/timeline", params={"name": "long.wav"}, content=data[:-10])
        assert too_long.status_code == 413 and "min long" in too_long.json()["error"]
        bad = small.post("/api/timeline", params={"name": "a.wav", "smooth": "-1"}, content=data[:1000])
        assert bad.status_code == 400 and "smooth" in bad.json()["error"]


def _messages(socket) -> list[dict]:
    """The messages of a stream up to "end"."""
    messages = []
    while not messages or messages[-1]["type"] != "end":
        messages.append(socket.receive_json())
    return messages


def test_a_stream_gets_the_offline_windows_despite_malformed_frames(client, predictor, audio):
    offline = predictor.timeline(audio, RATE, hop=stream.HOP_SECONDS).windows
    samples = np.round(audio * 32767).astype("<i2")
    with client.websocket_connect("/ws/listen?format=s16") as socket:
        assert socket.receive_json()["type"] == "ready"
        for i in range(0, len(samples), FRAME):
            socket.send_bytes(samples[i:i + FRAME].tobytes())
            if i == 10 * FRAME:
                socket.send_bytes(b"\x01\x02\x03")  # not whole int16 samples
                socket.send_text("hello")
        socket.send_text(json.dumps({"type": "stop"}))
        messages = _messages(socket)
    errors = [m["message"] for m in messages if m["type"] == "error"]
    assert len(errors) == 2 and "3 bytes" in errors[0] and "stop" in errors[1]
    windows = [m for m in messages if m["type"] == "window"]
    assert [(w["start_seconds"], w["emotion"]) for w in windows] == [(w.start_seconds, w.emotion) for w in offline]
    for w, o in zip(windows, offline):  # int16 rounding moves the probabilities a little
        if o.probabilities:
            assert max(abs(w["probabilities"][e] - o.probabilities[e]) for e in EMOTIONS) < 0.02
    assert messages[-1] == {"type": "end", "samples": len(samples), "windows": len(offline)}


def test_nan_frames_a_bad_format_and_too_many_malformed_frames(client):
    with client.websocket_connect("/ws/listen?format=f64") as socket:
        assert "format must be one of f32, s16" in socket.receive_json()["message"]
        assert socket.receive()["code"] == 1008
    with client.websocket_connect("/ws/listen") as socket:
        socket.receive_json()
        socket.send_bytes(struct.pack("<2f", 0.0, float("nan")))
        assert "NaN" in socket.receive_json()["message"]
        for _ in range(serve.MAX_BAD_FRAMES - 1):
            socket.send_bytes(b"")
        messages = [socket.receive_json() for _ in range(serve.MAX_BAD_FRAMES)]
        assert "malformed messages: closing" in messages[-1]["message"]
        assert socket.receive()["code"] == 1003


def test_a_client_that_leaves_mid_stream_frees_its_place(client, audio):
    for _ in range(3):  # max_clients=2: the third would be refused if a client that left kept its place
        with client.websocket_connect("/ws/listen") as socket:
            socket.receive_json()
            for i in range(0, 4 * RATE, FRAME):
                socket.send_bytes(audio[i:i + FRAME].tobytes())
            socket.receive_json()  # a window
    with client.websocket_connect("/ws/listen") as socket:
        socket.receive_json()
        socket.send_bytes(audio[:RATE].tobytes())
        socket.send_text('{"type": "stop"}')
        assert _messages(socket)[-1]["windows"] == 1


def test_too_many_clients_and_a_client_faster_than_real_time_are_refused(predictor, audio):
    with TestClient(serve.create_app(predictor, max_clients=1)) as c:
        with c.websocket_connect("/ws/listen") as first:
            first.receive_json()
            with c.websocket_connect("/ws/listen") as second:
                assert "1 clients at once" in second.receive_json()["message"]
                assert second.receive()["code"] == 1013
            for i in range(0, 3 * RATE, FRAME):  # 3 s at once: over real time and the 2 s of slack
                first.send_bytes(audio[i:i + FRAME].tobytes())
            messages = [first.receive_json()]
            while messages[-1]["type"] == "window":
                messages.append(first.receive_json())
            assert "faster than real time" in messages[-1]["message"]
            assert first.receive()["code"] == 1008
        with c.websocket_connect("/ws/listen") as again:  # the server goes on
            assert again.receive_json()["type"] == "ready"


def test_four_clients_at_once_in_real_time(predictor, audio):
    """Four clients stream 5 s each in real time to a real server: each gets all its windows, none later than
    1 s after the frame that completed it (the benchmark measures the latency: benchmarks/serve_latency.py)."""
    websockets = pytest.importorskip("websockets")
    seconds, clients = 5.0, 4
    samples = audio[:int(seconds * RATE)]

    async def listen(url: str) -> list[dict]:
        async with websockets.connect(url) as socket:
            assert json.loads(await socket.recv())["type"] == "ready"
            start = time.perf_counter()
            for k, i in enumerate(range(0, len(samples), FRAME)):
                await asyncio.sleep(max(0.0, start + k * FRAME / RATE - time.perf_counter()))
                await socket.send(samples[i:i + FRAME].tobytes())
            await socket.send(json.dumps({"type": "stop"}))
            return [json.loads(m) async for m in socket]

    async def all_clients(url: str) -> list[list[dict]]:
        return await asyncio.gather(*(listen(url) for _ in range(clients)))

    with serve.background(serve.create_app(predictor)) as url:
        results = asyncio.run(all_clients(url.replace("http", "ws") + "ws/listen"))
    expected = len(predictor.timeline(samples, RATE, hop=stream.HOP_SECONDS).windows)
    for messages in results:
        windows = [m for m in messages if m["type"] == "window"]
        assert len(windows) == expected and messages[-1]["type"] == "end"
        assert max(w["latency_ms"] for w in windows) < 1000


def test_a_model_of_its_own_classes_is_served_with_them_and_their_colours(custom_workdir, audio, wav):
    classes = ["neutral", "colère", "joie", "ennui"]
    with TestClient(serve.create_app(inference.Predictor.from_workdir(custom_workdir), slack=86400.0)) as mine:
        info = mine.get("/api/info").json()
        assert info["emotions"] == classes and info["colours"] == class_colours(classes)
        assert list(info["colours"]) == classes and info["colours"]["neutral"] == COLOURS["neutral"]
        body = mine.post("/api/timeline", params={"name": wav.name}, content=wav.read_bytes()).json()
        assert body["csv"].splitlines()[0] == ",".join(["start_seconds", "end_seconds", "emotion", *classes])
        assert {w["emotion"] for w in body["timeline"]["windows"]} - {SILENCE} <= set(classes)
        with mine.websocket_connect("/ws/listen") as socket:
            ready = socket.receive_json()
            assert ready["emotions"] == classes and ready["colours"] == info["colours"]
            for i in range(0, 3 * RATE, FRAME):
                socket.send_bytes(audio[i:i + FRAME].tobytes())
            socket.send_text('{"type": "stop"}')
            windows = [m for m in _messages(socket) if m["type"] == "window"]
    assert windows and all(list(w["probabilities"]) == classes for w in windows if w["probabilities"])


def test_emojax_serve_errors_are_one_line(monkeypatch, capsys, trained_workdir, tmp_path):
    monkeypatch.delitem(sys.modules, "emojax.serve")
    monkeypatch.delattr(emojax, "serve")
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # the serve extra not installed
    assert cli.main(["serve", "--workdir", str(trained_workdir)]) == 1
    assert capsys.readouterr().err == 'error: emojax serve needs the serve extra (uvicorn is missing): pip install ' \
                                      '"emojax[serve]"\n'
    monkeypatch.undo()
    with serve.background(serve.create_app(inference.Predictor.from_workdir(trained_workdir))) as url:
        port = url.rstrip("/").rsplit(":", 1)[1]
        assert cli.main(["serve", "--workdir", str(trained_workdir), "--port", port]) == 1
    assert capsys.readouterr().err.startswith(f"error: cannot listen on 127.0.0.1 port {port}: ")
    # No shipped model yet (or a missing one): one line naming the file and --workdir.
    monkeypatch.setattr(inference.pretrained, "load", functools.partial(inference.pretrained.load, tmp_path))
    assert cli.main(["serve", "--port", "0"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "emojax-ser.msgpack not found" in err and "--workdir" in err
