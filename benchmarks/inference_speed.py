"""Speed of prediction for a user with a recording: a warm prediction, the ``emojax`` command as a process, and a
one-hour timeline.

    python benchmarks/inference_speed.py [--workdir runs/demo ...] [--hours 1] [--repeats 200]

The shipped model (``Predictor.pretrained()``, as ``emojax`` uses it) unless ``--workdir`` names trained runs.

1. **Warm prediction**: ``Predictor.predict_file`` on a 3-second 16 kHz WAV (decoding, MFCC, model) in this process,
   after two untimed calls (compilation); the median and the 10th-90th percentiles of ``--repeats`` calls.
2. **``emojax predict one.wav``** as a whole process (interpreter start, imports, restoring the model, compiling or
   loading the compiled programs, predicting), wall clock: first with an empty compilation cache (a fresh
   ``$XDG_CACHE_HOME``), then again with the cache the first run filled.
3. **``emojax timeline`` of a ``--hours`` recording**: speech-like clips of ``emojax.synthetic`` (all three splits,
   cycled) joined by pauses of 0.3-3 s of -70 dBFS noise, written as a 16 kHz 16-bit WAV in a temporary folder;
   wall clock and peak resident memory of the process (``os.wait4``), with ``--csv`` and ``--plot``; twice, since the
   first run compiles the window shapes the cache does not hold yet.

Prints a Markdown table with the machine, the date, the command and the load average (other jobs slow every
figure; the CPU time of each process is given beside the wall clock).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

from build import machine

TARGETS = {"warm": "≤ 15 ms", "first": "", "second": "≤ 4 s", "timeline": "≤ 10 s"}


def _command() -> list[str]:
    """The installed ``emojax`` script beside this interpreter, else ``python -m emojax.cli``."""
    script = Path(sys.executable).with_name("emojax")
    return [str(script)] if script.exists() else [sys.executable, "-m", "emojax.cli"]


def _run(args: list[str], cache_home: Path) -> tuple[float, float, float]:
    """Runs ``emojax ARGS`` with ``$XDG_CACHE_HOME=cache_home``; returns (wall s, CPU s, peak RSS MiB)."""
    env = {k: v for k, v in os.environ.items() if k not in ("JAX_COMPILATION_CACHE_DIR", "EMOJAX_NO_CACHE")}
    env["XDG_CACHE_HOME"] = str(cache_home)
    start = time.perf_counter()
    process = subprocess.Popen([*_command(), *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    stderr = process.stderr.read().decode()
    process.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"emojax {' '.join(args)} failed:\n{stderr[-3000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def _long_recording(path: Path, seconds: float) -> float:
    """Writes ``seconds`` of synthetic speech and pauses to ``path`` (16 kHz, 16-bit); returns its speech fraction."""
    from emojax import synthetic

    rng = np.random.default_rng(0)
    clips = [c.audio for split in ("train", "validation", "test") for c in synthetic.generate(split)]
    total, written, speech = int(seconds * synthetic.SAMPLE_RATE), 0, 0
    with soundfile.SoundFile(path, "w", synthetic.SAMPLE_RATE, 1, "PCM_16") as f:
        for k in range(total):
            clip = clips[k % len(clips)][: total - written]
            pause = rng.normal(0, 10 ** (-70 / 20) * 32768, int(rng.uniform(0.3, 3) * synthetic.SAMPLE_RATE))
            pause = pause.astype(np.int16)[: total - written - len(clip)]
            f.write(np.concatenate([clip, pause]))
            written, speech = written + len(clip) + len(pause), speech + len(clip)
            if written == total:
                return speech / total
    return speech / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", action="append", default=[],
                        help="a trained run instead of the shipped model (repeat for an ensemble)")
    parser.add_argument("--hours", type=float, default=1.0, help="length of the timeline's recording")
    parser.add_argument("--repeats", type=int, default=200, help="timed warm predictions")
    parser.add_argument("--plot", type=Path, help="keep the timeline's PNG here")
    args = parser.parse_args()
    model = [flag for w in args.workdir for flag in ("--workdir", w)]
    load = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        from emojax import synthetic

        clip = next(synthetic.generate("test")).audio
        one = tmp / "one.wav"
        soundfile.write(one, np.resize(clip, 3 * synthetic.SAMPLE_RATE), synthetic.SAMPLE_RATE)

        cache = tmp / "cache"
        first = _run(["predict", *model, str(one)], cache)
        second = _run(["predict", *model, str(one)], cache)
        rows.append(("`emojax predict one.wav`, empty compilation cache", first, TARGETS["first"]))
        rows.append(("`emojax predict one.wav` again, warm cache", second, TARGETS["second"]))

        long = tmp / "long.wav"
        speech = _long_recording(long, args.hours * 3600)
        timeline = ["timeline", *model, str(long), "--csv", str(tmp / "t.csv"), "--plot", str(tmp / "t.png")]
        what = f"`emojax timeline` of {args.hours:g} h at 16 kHz ({speech:.0%} speech), --csv --plot"
        rows.append((what + ", its windows' shapes not yet compiled", _run(timeline, cache), ""))
        rows.append((what + ", warm cache", _run(timeline, cache), TARGETS["timeline"]))
        if args.plot:
            shutil.copy(tmp / "t.png", args.plot)

        from emojax.inference import Predictor

        predictor = Predictor.from_workdirs(args.workdir) if args.workdir else Predictor.pretrained()
        for _ in range(2):
            predictor.predict_file(one)
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            predictor.predict_file(one)
            times.append(1000 * (time.perf_counter() - start))
        p10, p50, p90 = np.percentile(times, [10, 50, 90])

    print(f"{time.strftime('%Y-%m-%d')}, {machine()}; load average {load[0]:.1f} at start (a shared machine: other "
          f"jobs slow every figure); `{' '.join([Path(sys.executable).name, *sys.argv])}`\n")
    print("| measurement | wall clock | CPU time | peak memory | target |")
    print("|---|---:|---:|---:|---|")
    print(f"| warm prediction of a 3 s clip (decode + MFCC + model), median of {args.repeats} (10th-90th "
          f"percentile) | {p50:.1f} ms ({p10:.1f}-{p90:.1f}) | | | {TARGETS['warm']} |")
    for what, (wall, cpu, rss), target in rows:
        print(f"| {what} | {wall:.2f} s | {cpu:.2f} s | {rss:.0f} MiB | {target} |")


if __name__ == "__main__":
    main()
