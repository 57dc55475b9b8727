"""Latency of ``emojax serve``'s live stream, with 1 and with 4 clients streaming in real time, and in a browser.

    python benchmarks/serve_latency.py [--workdir runs/demo ...] [--seconds 30] [--clients 1 4] [--browser-seconds 20]

The server is ``emojax serve --port 0`` as its own process (the shipped model, or ``--workdir``'s), as a user starts
it; it compiles its programs before it prints its URL. Each client is an asyncio WebSocket client in this process
streaming ``--seconds`` of a recording of synthetic clips of the 8 emotions with pauses (the tests'
``speech_recording``) in 0.1 s float32 frames, each sent when it would have been recorded; with several clients their
starts are spread over one hop, so that their windows complete at different moments (the server's batches hold one
window each: the most work). Per window:

- **server**: the ``latency_ms`` the server reports, from the arrival of the frame that completed the window to the
  window's message being sent;
- **round trip**: from this client sending that frame to receiving the window (adds the loopback and the client).

A client is **behind real time** when windows are missing or its round trip grows: the last quarter of its windows
slower than the first quarter by more than 250 ms.

**Browser**: headless Chromium (Debian's, through Selenium and its chromedriver, as ``tests/test_browser.py``) with a
fake microphone playing ``--browser-seconds`` of the recording: from the page receiving the chunk that completed a
window from its audio thread to the chart showing the window (after Plotly's redraw and the next animation frame).

Prints a Markdown table with the machine, the date, the command and the load average (other jobs slow every figure).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import shlex
import signal
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import soundfile

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import websockets  # noqa: E402  (the serve extra's uvicorn[standard] brings it)
from build import machine  # noqa: E402
from test_browser import CHROMEDRIVER, CHROMIUM, chromium, emojax_serve, listen  # noqa: E402
from test_serve import FRAME, RATE, speech_recording  # noqa: E402

from emojax.labels import EMOTIONS  # noqa: E402
from emojax.timeline import window_starts  # noqa: E402


async def _client(url: str, samples: np.ndarray, delay: float) -> list[tuple[float, float]]:
    """Streams ``samples`` in real time after ``delay`` seconds; returns each window's (server, round trip) ms."""
    await asyncio.sleep(delay)
    results: list[tuple[float, float]] = []
    sent: dict[int, float] = {}  # samples sent -> when
    async with websockets.connect(url) as socket:
        assert json.loads(await socket.recv())["type"] == "ready"

        async def receive() -> None:
            async for text in socket:
                message = json.loads(text)
                if message["type"] == "window":
                    results.append((message["latency_ms"],
                                    (time.perf_counter() - sent[message["received_samples"]]) * 1000))
                elif message["type"] != "end":
                    raise RuntimeError(f"the server said {message}")

        receiver = asyncio.create_task(receive())
        start = time.perf_counter()
        for first in range(0, len(samples), FRAME):
            chunk = samples[first:first + FRAME]
            await asyncio.sleep(max(0.0, start + (first + len(chunk)) / RATE - time.perf_counter()))
            sent[first + len(chunk)] = time.perf_counter()
            await socket.send(chunk.tobytes())
        await socket.send(json.dumps({"type": "stop"}))
        await receiver
    return results


async def _clients(url: str, samples: np.ndarray, count: int, hop: float) -> list[list[tuple[float, float]]]:
    return await asyncio.gather(*(_client(url, samples, k * hop / count) for k in range(count)))


def _ms(values: list[float]) -> str:
    return f"{np.percentile(values, 50):.0f} / {np.percentile(values, 95):.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", action="append", default=[], help="train.py workdirs (default: the shipped model)")
    parser.add_argument("--seconds", type=float, default=30.0, help="audio each WebSocket client streams")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4], help="numbers of clients at once")
    parser.add_argument("--browser-seconds", type=float, default=20.0, help="audio the browser streams; 0: no browser")
    args = parser.parse_args()

    audio = speech_recording(EMOTIONS, clips=2, gap_seconds=2.0)
    if len(audio) < max(args.seconds, args.browser_seconds) * RATE:
        raise SystemExit(f"the recording is {len(audio) / RATE:.0f} s long: ask for fewer seconds")
    load = os.getloadavg()
    process, url, _ = emojax_serve(*(a for w in args.workdir for a in ("--workdir", w)))
    rows = []
    try:
        with urllib.request.urlopen(f"{url}api/info") as response:
            info = json.load(response)
        size, hop = round(info["window_seconds"] * RATE), round(info["hop_seconds"] * RATE)
        samples = audio[:int(args.seconds * RATE)]
        expected = len(window_starts(len(samples), size, hop))
        for count in args.clients:
            per_client = asyncio.run(_clients(url.replace("http", "ws") + "ws/listen", samples, count, hop / RATE))
            server = [s for results in per_client for s, _ in results]
            trip = [t for results in per_client for _, t in results]
            behind = sum(len(r) != expected or np.mean([t for _, t in r[-len(r) // 4:]])
                         > np.mean([t for _, t in r[:len(r) // 4]]) + 250 for r in per_client)
            rows.append(f"| {count} WebSocket client{'s' if count > 1 else ''}, {args.seconds:g} s each | "
                        f"{len(server)} ({expected * count}) | {_ms(server)} | {_ms(trip)} | {max(trip):.0f} | "
                        f"{behind} of {count} |")
        if args.browser_seconds and CHROMIUM.exists() and CHROMEDRIVER.exists():
            with tempfile.TemporaryDirectory() as folder:
                wav = Path(folder) / "speech.wav"
                soundfile.write(wav, audio[:int(args.browser_seconds * RATE)], RATE, subtype="PCM_16")
                driver = chromium(wav)
                try:
                    page = listen(driver, url, args.browser_seconds - 0.3)
                finally:
                    driver.quit()
            rows.append(f"| headless Chromium, {args.browser_seconds:g} s | {len(page['shown'])} | "
                        f"{_ms(page['server'])} | capture to chart: {_ms(page['latencies'])} | "
                        f"{max(page['latencies']):.0f} | |")
        elif args.browser_seconds:
            rows.append("| headless Chromium | not run: apt-get install chromium chromium-driver | | | | |")
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(30)
    model = ", ".join(args.workdir) or "the shipped model"
    print(f"**emojax serve, live latency** ({model}); {machine()}; {datetime.date.today().isoformat()}; "
          f"load average {load[0]:.1f} before, {os.getloadavg()[0]:.1f} after\n"
          f"`{shlex.join(['python', 'benchmarks/serve_latency.py', *sys.argv[1:]])}`\n")
    print("| run | windows (expected) | server p50 / p95 ms | round trip p50 / p95 ms | max ms | behind real time |")
    print("|---|---:|---:|---:|---:|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
