"""Benchmark of the MFCC front end: jitted ``emojax.features.mfcc`` vs ``librosa.feature.mfcc`` vs ``tf.signal``.

Methods: ``emojax`` calls ``emojax.features.mfcc`` on a device array (jitted inside; on the CPU it splits the batch
over the cores with threads, since XLA:CPU runs one call's FFTs on one core); ``emojax-1-call`` is
``jax.jit(mfcc)``, the whole batch as one XLA call (as inside a training step); ``librosa`` is
``librosa.feature.mfcc`` clip by clip (its ``top_db`` floor is per clip, as emojax's), ``librosa-batched`` on the
whole batch at once (faster; its floor is then shared by the batch); ``tf.signal`` is the same pipeline with
``tf.signal`` under ``tf.function(jit_compile=True)``.

Clips are 2.5 s at 22,050 Hz: the corpus samples (``../shared/corpus-samples`` or ``$EMOJAX_CORPUS_SAMPLES``),
resampled, from 0.5 s in (like the reference system), cycled to fill the batch; generated speech-like signals when
the samples are absent. MFCC parameters are librosa's defaults (n_fft 2048, hop 512, 128 mels, 20 coefficients).
Every method runs in its own subprocess (so JAX, TensorFlow and librosa do not share threads or memory), after
one untimed call (compilation); the time per clip is the median of ``--repeats`` calls divided by the batch size
(also the best call, and the median process CPU time: on a shared machine, CPU time is the steadier number).
Peak memory is the subprocess's peak resident set size (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) minus its
resident size before the first call. Finally ``clip_mfccs`` (the 16 kHz → 44.1 kHz front end) is timed on 200
clips of 2-4 s.

    python benchmarks/features.py                    # batch sizes 1, 8, 64, 512
    python benchmarks/features.py --batches 64 --repeats 5
    python benchmarks/features.py --sweep            # emojax's performance knobs, batch 64
    python benchmarks/features.py --corpus 1000      # load_audio, clip_mfccs, clip_pitch on 1000 corpus files
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SR = 22_050
SECONDS = 2.5
METHODS = ("emojax", "emojax-1-call", "librosa", "librosa-batched", "tf.signal")


def _rss_mib() -> float:
    """Current resident set size of this process in MiB (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _wait_until_idle(timeout_s: float, threshold: float = 85.0) -> bool:
    """Waits until the CPUs were at least ``threshold`` % idle over one second (Linux ``/proc/stat``); False after
    ``timeout_s`` without such a second. For measuring on a machine shared with other jobs."""
    def ticks() -> tuple[int, int]:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
        return values[3] + values[4], sum(values)

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        idle0, total0 = ticks()
        time.sleep(1.0)
        idle1, total1 = ticks()
        if 100 * (idle1 - idle0) >= threshold * max(1, total1 - total0):
            return True
    return False


def _samples_dir() -> Path | None:
    default = Path(__file__).resolve().parents[2] / "shared" / "corpus-samples"
    path = Path(os.environ.get("EMOJAX_CORPUS_SAMPLES", default))
    return path if path.is_dir() else None


def sources(sr: int) -> tuple[list[np.ndarray], str]:
    """Speech at ``sr`` Hz (float32 1-D arrays, 0.5 s in): the corpus samples, or 16 generated speech-like signals."""
    from emojax.features import load_audio

    samples = _samples_dir()
    if samples is not None:
        out = [load_audio(p, sr)[0][sr // 2 :] for p in sorted(samples.rglob("*")) if p.is_file()]
        return out, f"{len(out)} corpus samples from {samples}, resampled to {sr} Hz, from 0.5 s in"
    rng = np.random.default_rng(0)
    t = np.arange(4 * sr) / sr
    out = []
    for _ in range(16):  # harmonic source with a pitch contour and a syllable envelope, plus breath noise
        f0 = rng.uniform(90, 250) * (1 + 0.15 * np.sin(2 * np.pi * rng.uniform(0.3, 2) * t))
        phase = 2 * np.pi * np.cumsum(f0) / sr
        voiced = sum(np.sin(k * phase) / k**1.5 for k in range(1, 40) if k * f0.max() < sr / 2)
        envelope = np.clip(np.sin(2 * np.pi * rng.uniform(2, 4) * t), 0, None)
        out.append((0.2 * voiced * envelope + 0.005 * rng.standard_normal(t.size)).astype(np.float32))
    return out, "16 generated speech-like signals (../shared/corpus-samples absent)"


def clips(batch: int) -> tuple[np.ndarray, str]:
    """``(batch, 55125)`` float32 clips of 2.5 s at 22,050 Hz (zero-padded when shorter) and their origin."""
    n = int(SECONDS * SR)
    src, origin = sources(SR)
    out = np.zeros((batch, n), np.float32)
    for i in range(batch):
        y = src[i % len(src)][:n]
        out[i, : len(y)] = y
    return out, origin


def _mfcc_fn(method: str):
    """``(prepare, f)`` for one method: ``prepare`` moves a numpy batch to the method's array type (untimed, like
    data already in a pipeline), ``f`` computes the MFCCs (librosa-default parameters at 22,050 Hz) and waits."""
    if method == "emojax":  # the public function: jitted inside, the batch split over the CPU cores by threads
        import jax

        from emojax.features import mfcc

        return jax.device_put, lambda y: mfcc(y, sr=SR).block_until_ready()
    if method == "emojax-1-call":  # the whole batch as one XLA call (under an outer jit): one core for the FFTs
        import jax

        from emojax.features import mfcc

        f = jax.jit(lambda y: mfcc(y, sr=SR))
        return jax.device_put, lambda y: f(y).block_until_ready()
    if method == "librosa":
        import librosa

        return (lambda y: y), lambda y: [librosa.feature.mfcc(y=c, sr=SR) for c in y]  # per clip: top_db per clip
    if method == "librosa-batched":
        import librosa

        return (lambda y: y), lambda y: librosa.feature.mfcc(y=y, sr=SR)  # faster, but top_db across the batch
    if method == "tf.signal":
        import tensorflow as tf

        mel = tf.signal.linear_to_mel_weight_matrix(128, 1025, SR, 0.0, SR / 2)

        @tf.function(jit_compile=True)
        def f(y):
            y = tf.pad(y, [[0, 0], [1024, 1024]])
            spec = tf.signal.stft(y, 2048, 512, 2048, window_fn=tf.signal.hann_window)
            power = tf.math.real(spec) ** 2 + tf.math.imag(spec) ** 2
            db = 10.0 * tf.math.log(tf.maximum(tf.tensordot(power, mel, 1), 1e-10)) / tf.math.log(10.0)
            db = tf.maximum(db, tf.reduce_max(db, axis=[1, 2], keepdims=True) - 80.0)
            return tf.signal.mfccs_from_log_mel_spectrograms(db)[..., :20]

        return tf.constant, lambda y: f(y).numpy()
    raise ValueError(f"unknown method {method!r}; choose from {METHODS}")


def run_one(method: str, batch: int, repeats: int) -> dict:
    """Times one method on one batch size in this process."""
    y, origin = clips(batch)
    prepare, f = _mfcc_fn(method)
    y = prepare(y)
    rss0 = _rss_mib()
    t0 = time.perf_counter()
    f(y)
    first = time.perf_counter() - t0
    times, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        f(y)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return dict(method=method, batch=batch, ms_per_clip=1e3 * float(np.median(times)) / batch,
                best_ms_per_clip=1e3 * min(times) / batch, cpu_ms_per_clip=1e3 * float(np.median(cpu)) / batch,
                first_call_s=first, peak_mib=_peak_rss_mib() - rss0, origin=origin)


def time_clip_mfccs(n_clips: int = 200) -> dict:
    """``clip_mfccs`` on ``n_clips`` 16 kHz int16 clips of 2-4 s (corpus samples or generated), after warm-up."""
    from emojax import features

    rng = np.random.default_rng(1)
    src, _ = sources(16000)
    data = []
    for i in range(n_clips):  # each source repeated up to a random length of 2-4 s, as int16 PCM
        c = np.resize(src[i % len(src)], int(rng.uniform(2, 4) * 16000))
        data.append((np.clip(c, -1, 1) * 32767).astype(np.int16))
    out = features.clip_mfccs(data)  # compiles every bucket
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        features.clip_mfccs(data)
        times.append(time.perf_counter() - t0)
    dt = float(np.median(times))
    audio_s = sum(len(c) for c in data) / 16000
    return dict(clips=n_clips, audio_s=audio_s, seconds=dt, ms_per_clip=1e3 * dt / n_clips,
                x_realtime=audio_s / dt, frames=sum(o.shape[1] for o in out))


def corpus_pass(n_files: int) -> None:
    """Decodes ``n_files`` random corpus files (``load_audio``) and runs ``clip_mfccs`` and ``clip_pitch`` (the
    builders' front end) on them, timing each, and extrapolates to the whole corpus (``../shared/corpora`` or
    ``$EMOJAX_CORPORA``)."""
    import random

    from emojax import features

    root = Path(os.environ.get("EMOJAX_CORPORA", Path(__file__).resolve().parents[2] / "shared" / "corpora"))
    files = sorted(root.rglob("*.ogg"))
    if not files:
        raise SystemExit(f"no .ogg files under {root}; set $EMOJAX_CORPORA")
    chosen = random.Random(0).sample(files, min(n_files, len(files)))
    print(f"load average before: {os.getloadavg()}")
    t0 = time.perf_counter()
    clips = [features.load_audio(f)[0] for f in chosen]
    decode = time.perf_counter() - t0
    scale = len(files) / len(chosen)
    audio_s = sum(len(c) for c in clips) / features.SAMPLE_RATE
    print(f"{len(chosen)} of {len(files)} files, {audio_s:.0f} s of audio: decode {decode:.1f} s "
          f"(whole corpus, x{scale:.1f}: ~{decode * scale:.0f} s)")
    for fn in (features.clip_mfccs, features.clip_pitch):
        fn(clips)  # compiles every shape
        times = []
        for _ in range(3):
            t0, c0 = time.perf_counter(), time.process_time()
            fn(clips)
            times.append((time.perf_counter() - t0, time.process_time() - c0))
        wall, cpu = np.median(times, axis=0)
        print(f"{fn.__name__}: {wall:.2f} s wall / {cpu:.2f} s CPU (median of 3, after compiling); whole corpus "
              f"~{wall * scale:.0f} s wall")
    print(f"load average after: {os.getloadavg()}")


def sweep(batch: int = 64, repeats: int = 10) -> None:
    """Times ``mfcc`` at each value of the performance knobs of ``emojax.spectral`` and ``emojax.filters``
    (``_CHUNK_FRAMES`` etc.)."""
    import jax

    from emojax import filters, spectral

    y = jax.device_put(clips(batch)[0])
    knobs = {"_CHUNK_FRAMES": [128, 256, 512, 1024, 2048, 1 << 30], "_SEGMENT_COST": [0, 512, 2048, 4096, 8192, 32768],
             "_THREADS": sorted({1, spectral._THREADS})}
    print(f"load average before: {os.getloadavg()}")
    for name, values in knobs.items():
        owner = filters if name == "_SEGMENT_COST" else spectral
        default = getattr(owner, name)
        for value in values:
            setattr(owner, name, value)
            filters._mel_filterbank.cache_clear()  # blocks depend on _SEGMENT_COST
            jax.clear_caches()
            f = functools.partial(spectral.mfcc, sr=SR)
            f(y).block_until_ready()
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                f(y).block_until_ready()
                times.append(time.perf_counter() - t0)
            print(f"{name} = {value}: {1e3 * min(times) / batch:.3f} ms/clip (best of {repeats}), "
                  f"median {1e3 * float(np.median(times)) / batch:.3f}")
        setattr(owner, name, default)
    print(f"load average after: {os.getloadavg()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 64, 512])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--when-idle", type=float, default=0, metavar="S",
                        help="before each run, wait up to S seconds for an idle second (shared machines)")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--one", nargs=2, metavar=("METHOD", "BATCH"), help=argparse.SUPPRESS)
    parser.add_argument("--clip-mfccs", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--sweep", action="store_true", help="time emojax at each value of its performance knobs")
    parser.add_argument("--corpus", type=int, metavar="N",
                        help="time decoding, clip_mfccs and clip_pitch on N corpus files")
    args = parser.parse_args()
    if args.corpus:
        corpus_pass(args.corpus)
        return
    if args.sweep:
        sweep(repeats=args.repeats)
        return
    if args.one:
        print(json.dumps(run_one(args.one[0], int(args.one[1]), args.repeats)))
        return
    if args.clip_mfccs:
        print(json.dumps(time_clip_mfccs()))
        return

    print(f"load average before: {os.getloadavg()}")
    runs = []  # rounds alternate the methods, so a load change on the shared machine hits all of them alike
    for batch in args.batches:
        for r in range(args.rounds):
            for method in args.methods:
                repeats = args.repeats if not method.startswith("librosa") or batch < 512 else max(2, args.repeats // 3)
                cmd = [sys.executable, __file__, "--one", method, str(batch), "--repeats", str(repeats)]
                idle = _wait_until_idle(args.when_idle) if args.when_idle else False
                run = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
                runs.append(dict(run, round=r, idle=idle))
    print(f"clips: {runs[0]['origin']}; {args.rounds} rounds")
    if args.when_idle:
        print(f"{sum(r['idle'] for r in runs)} of {len(runs)} runs started after an idle second")
    print("ms/clip, CPU ms, peak MiB: medians over rounds; speed-up: median over rounds of the other method's time "
          "/ this one's ('batched': librosa-batched)")
    print(f"| {'batch':>5} | {'method':>15} | {'ms/clip':>7} | {'best':>6} | {'CPU ms':>6} | {'vs librosa':>10} | "
          f"{'vs batched':>10} | {'vs tf':>6} | {'peak MiB':>8} |")
    print("|" + "|".join("-" * w for w in (7, 17, 9, 8, 8, 12, 12, 8, 10)) + "|")
    for batch in args.batches:
        for method in args.methods:
            mine = [x for x in runs if x["batch"] == batch and x["method"] == method]
            med = lambda key: float(np.median([x[key] for x in mine]))  # noqa: E731

            def ratio(other: str) -> str:
                theirs = {x["round"]: x["ms_per_clip"] for x in runs if x["batch"] == batch and x["method"] == other}
                if not theirs:
                    return "-"
                return f"{np.median([theirs[x['round']] / x['ms_per_clip'] for x in mine]):.2f}x"

            best = min(x["best_ms_per_clip"] for x in mine)
            print(f"| {batch:>5} | {method:>15} | {med('ms_per_clip'):7.3f} | {best:6.3f} | "
                  f"{med('cpu_ms_per_clip'):6.3f} | {ratio('librosa'):>10} | {ratio('librosa-batched'):>10} | "
                  f"{ratio('tf.signal'):>6} | {med('peak_mib'):8.0f} |")
    cmd = [sys.executable, __file__, "--clip-mfccs"]
    cm = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    print(f"clip_mfccs (median of 3): {cm['clips']} clips, {cm['audio_s']:.0f} s of 16 kHz audio in "
          f"{cm['seconds']:.2f} s ({cm['ms_per_clip']:.2f} ms/clip, {cm['x_realtime']:.0f}x real time)")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
