"""Hostile audio into ``features.load_audio``: random bytes, files truncated anywhere, empty and 1-sample files,
8-192 kHz, 1-8 channels, NaN samples, and 10-minute files (streamed: memory stays bounded).

The contract: every file gives either a valid signal (float32, mono, finite, in [-1, 1], at the requested rate,
``ceil(frames * rate / file_rate)`` samples) or a ``ValueError`` (``AudioFileError``) whose message names the file;
no other exception.
"""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import scipy.signal
import soundfile
from hypothesis import given, settings
from hypothesis import strategies as st

from emojax import audio, features

SETTINGS = settings(max_examples=30, deadline=None, derandomize=True)
FORMATS = [("WAV", "PCM_16", ".wav"), ("FLAC", "PCM_16", ".flac"), ("OGG", "VORBIS", ".ogg"),
           ("AIFF", "PCM_16", ".aiff")]
RATES = st.one_of(st.sampled_from([8000, 11025, 16000, 22050, 24414, 32000, 44100, 48000, 96000, 192000]),
                  st.integers(8000, 192000))
HEADERS = [b"", b"RIFF", b"RIFF\x24\x00\x00\x00WAVEfmt ", b"RIFF\xff\xff\xff\xffWAVEfmt \x10\x00\x00\x00\x01\x00",
           b"FORM\x00\x00\x00\x00AIFF", b"FORM\x00\x00\x10\x00AIFFCOMM\x00\x00\x00\x12", b"fLaC", b"OggS\x00\x02",
           b"ID3\x03\x00", b"\xff\xfb"]
MB = 1 << 20


def _signal(frames: int, rate: int, channels: int) -> np.ndarray:
    """``(frames, channels)`` float64 in [-0.9, 0.9]: a tone (different per channel) plus noise."""
    t = np.arange(frames)[:, None] / rate
    rng = np.random.default_rng(frames + channels)
    tones = 0.5 * np.sin(2 * np.pi * (300 + 200 * np.arange(channels)) * t)
    return np.clip(tones + 0.1 * rng.standard_normal((frames, channels)), -0.9, 0.9)


def _encode(frames: int, rate: int, channels: int, fmt: str, subtype: str) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "clip"
        soundfile.write(path, _signal(frames, rate, channels), rate, format=fmt, subtype=subtype)
        return path.read_bytes()


def _outcome(data: bytes, name: str, sample_rate: int = features.SAMPLE_RATE) -> np.ndarray | None:
    """``load_audio`` of ``data`` saved as ``name``: the checked signal, or None after an error naming the file.

    Any exception other than ``ValueError`` propagates and fails the test.
    """
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(data)
        try:
            y, sr = features.load_audio(path, sample_rate)
        except ValueError as e:
            assert str(path) in str(e), f"the error does not name the file: {e}"
            return None
    assert sr == sample_rate and y.dtype == np.float32 and y.ndim == 1 and y.size >= 1
    assert np.isfinite(y).all() and np.abs(y).max() <= 1.0
    return y


def _resampled_length(frames: int, rate: int) -> int:
    g = math.gcd(rate, features.SAMPLE_RATE)
    return -(-frames * (features.SAMPLE_RATE // g) // (rate // g))


@SETTINGS
@given(header=st.sampled_from(HEADERS), tail=st.binary(max_size=3000),
       name=st.sampled_from(["x.wav", "x.flac", "x.ogg", "x.aiff", "x.mp3", "x.raw", "x"]))
def test_random_bytes_give_a_signal_or_an_error_naming_the_file(header: bytes, tail: bytes, name: str) -> None:
    _outcome(header + tail, name)


@pytest.mark.parametrize("name", ["empty.wav", "empty.flac", "empty.ogg", "empty.mp3", "empty.raw", "empty"])
def test_zero_length_files_are_refused(name: str) -> None:
    assert _outcome(b"", name) is None


@SETTINGS
@given(form=st.sampled_from(FORMATS), rate=RATES, channels=st.integers(1, 8), frames=st.integers(1, 3000),
       read_samples=st.integers(1, 5000), step=st.integers(1, 3000))
def test_valid_files_any_rate_and_channels_equal_the_whole_file_resampled(
        form: tuple[str, str, str], rate: int, channels: int, frames: int, read_samples: int, step: int) -> None:
    """Small decode blocks and resampling steps (patched) put many block boundaries into short files."""
    fmt, subtype, suffix = form
    data = _encode(frames, rate, channels, fmt, subtype)
    with mock.patch.object(audio, "_READ_SAMPLES", read_samples), \
            mock.patch.object(audio, "_RESAMPLE_STEP", step):
        y = _outcome(data, "clip" + suffix)
    assert y is not None and len(y) == _resampled_length(frames, rate)
    if subtype != "VORBIS":  # lossy: the decoded signal is not the written one
        g = math.gcd(rate, features.SAMPLE_RATE)
        whole = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)[0]
        want = scipy.signal.resample_poly(whole.mean(axis=1, dtype=np.float32), features.SAMPLE_RATE // g, rate // g)
        np.testing.assert_allclose(y, np.clip(want, -1, 1), rtol=0, atol=1e-5)


@SETTINGS
@given(form=st.sampled_from(FORMATS), rate=RATES, channels=st.integers(1, 8), frames=st.integers(1, 3000),
       cut=st.floats(0.0, 1.0, exclude_max=True))
def test_truncated_files_give_an_error_or_the_audio_they_hold(form: tuple[str, str, str], rate: int, channels: int,
                                                               frames: int, cut: float) -> None:
    """Cut anywhere, header included: lossless formats never come back silently shortened."""
    fmt, subtype, suffix = form
    data = _encode(frames, rate, channels, fmt, subtype)
    y = _outcome(data[: int(cut * len(data))], "cut" + suffix)
    full = _resampled_length(frames, rate)
    if y is not None:
        if subtype == "VORBIS":
            assert len(y) <= full
        else:  # only trailing metadata was cut
            assert len(y) == full


@pytest.mark.parametrize("rate", [8000, 16000, 44100, 192000])
@pytest.mark.parametrize("channels", [1, 8])
def test_one_sample_files_load(rate: int, channels: int) -> None:
    """A 1-sample file is valid audio: ``ceil(16000 / rate)`` samples (``Predictor`` predicts it like any clip)."""
    y = _outcome(_encode(1, rate, channels, "WAV", "PCM_16"), "one.wav")
    assert y is not None and len(y) == _resampled_length(1, rate)


@pytest.mark.parametrize(("rate", "channels", "fmt", "sample_rate"), [
    (96_000, 8, "WAV", features.SAMPLE_RATE), (44_100, 2, "FLAC", features.SAMPLE_RATE),
    (24_414, 1, "WAV", features.SAMPLE_RATE), (48_000, 6, "FLAC", None)])
def test_streaming_equals_reading_the_whole_file(tmp_path: Path, rate: int, channels: int, fmt: str,
                                                 sample_rate: int | None) -> None:
    """Files of several decode blocks and resampling steps at the default sizes, against the whole-file result."""
    frames = max(3 * audio._READ_SAMPLES // channels, 3 * audio._RESAMPLE_STEP) + 12345
    path = tmp_path / f"long.{fmt.lower()}"
    soundfile.write(path, _signal(frames, rate, channels), rate, format=fmt, subtype="PCM_16")
    y, sr = features.load_audio(path, sample_rate)
    whole = soundfile.read(path, dtype="float32", always_2d=True)[0].mean(axis=1, dtype=np.float32)
    if sample_rate is None:
        assert sr == rate
    else:
        g = math.gcd(rate, sample_rate)
        whole = scipy.signal.resample_poly(whole, sample_rate // g, rate // g)
    assert y.shape == whole.shape
    np.testing.assert_allclose(y, np.clip(whole, -1, 1), rtol=0, atol=1e-6)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_infinite_samples_are_refused(tmp_path: Path, bad: float) -> None:
    y = _signal(40_000, 16_000, 2)
    y[30_000, 1] = bad
    soundfile.write(tmp_path / "bad.wav", y, 16_000, subtype="FLOAT")
    with pytest.raises(features.AudioFileError, match=r"bad\.wav.*NaN or infinite samples \(first at 1\.875 s\)"):
        features.load_audio(tmp_path / "bad.wav", features.SAMPLE_RATE)


@pytest.mark.parametrize("rate", [500, 400_000])
def test_implausible_sample_rates_are_refused(tmp_path: Path, rate: int) -> None:
    soundfile.write(tmp_path / "odd.wav", _signal(1000, rate, 1), rate, subtype="PCM_16")
    with pytest.raises(features.AudioFileError, match=rf"odd\.wav.*sample rate of {rate} Hz"):
        features.load_audio(tmp_path / "odd.wav", features.SAMPLE_RATE)


def test_in_memory_conversion_equals_loading_the_same_data(tmp_path: Path) -> None:
    """``to_mono`` + ``resample`` of int16 stereo 44.1 kHz samples give what ``load_audio`` gives for them as a WAV
    (read in many small blocks here), and the public names stay reachable from ``emojax.features``."""
    pcm = audio.to_int16(_signal(44_100 + 123, 44_100, 2))
    soundfile.write(tmp_path / "stereo.wav", pcm, 44_100, subtype="PCM_16")
    with mock.patch.object(audio, "_READ_SAMPLES", 5000), mock.patch.object(audio, "_RESAMPLE_STEP", 3000):
        loaded, sr = audio.load_audio(tmp_path / "stereo.wav", audio.SAMPLE_RATE)
    mono = audio.to_mono(pcm)
    assert mono.dtype == np.float32 and mono.shape == (len(pcm),)
    converted = audio.resample(mono, 44_100, audio.SAMPLE_RATE)
    assert sr == audio.SAMPLE_RATE and converted.dtype == np.float32 and converted.shape == loaded.shape
    np.testing.assert_allclose(converted, loaded, rtol=0, atol=1e-6)
    assert audio.resample(mono, 44_100, 44_100) is mono
    from emojax import pitch, spectral
    for module in (audio, spectral, pitch):
        for name in module.__all__:
            assert getattr(features, name) is getattr(module, name), name


# ----------------------------------------------------------------------------------------------------------------
# 10 minutes of 48 kHz 8-channel audio: 921 MB as float32, which the whole-file reader held (measured: +1,062 MB)
# ----------------------------------------------------------------------------------------------------------------

LONG_SECONDS, LONG_RATE, LONG_CHANNELS = 600, 48_000, 8
# Measured: load_audio +81 MB (38 MB of 16 kHz output, twice while joined, plus blocks), predict_file +215 MB
# (+1,062 MB both with the whole-file reader): the limits sit between.
LOAD_LIMIT_MB, PREDICT_LIMIT_MB = 300, 450

# Run in a child process: peak RSS (VmHWM) growth of a call, after resetting the peak (/proc/self/clear_refs).
_MEASURE = """
import json, sys
def status(key):
    return next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith(key))
def growth(fn, *args):
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = status("VmRSS")
    return fn(*args), (status("VmHWM") - before) / 2**20
"""


def _measure(code: str, **env: str) -> dict:
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("peak memory is measured through Linux's /proc/self/clear_refs")
    done = subprocess.run([sys.executable, "-c", _MEASURE + code], capture_output=True, text=True,
                          env={**os.environ, "JAX_PLATFORMS": "cpu", **env})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def ten_minutes(tmp_path_factory) -> Path:
    """A 10-minute 48 kHz 8-channel PCM16 WAV (440 MB), written a second at a time."""
    path = tmp_path_factory.mktemp("long") / "ten_minutes.wav"
    second = _signal(LONG_RATE, LONG_RATE, LONG_CHANNELS)
    with soundfile.SoundFile(path, "w", LONG_RATE, LONG_CHANNELS, subtype="PCM_16", format="WAV") as f:
        for _ in range(LONG_SECONDS):
            f.write(second)
    return path


def test_a_ten_minute_file_loads_in_bounded_memory(ten_minutes: Path) -> None:
    result = _measure(f"""
from emojax import features
import numpy as np
(y, sr), mb = growth(features.load_audio, {str(ten_minutes)!r}, features.SAMPLE_RATE)
print(json.dumps(dict(mb=mb, samples=len(y), sr=sr, finite=bool(np.isfinite(y).all()), rms=float(np.std(y)))))
""")
    assert result["samples"] == LONG_SECONDS * features.SAMPLE_RATE and result["sr"] == features.SAMPLE_RATE
    assert result["finite"] and result["rms"] > 0.05
    assert result["mb"] < LOAD_LIMIT_MB, f"load_audio grew the process by {result['mb']:.0f} MB"


def test_predict_file_on_ten_minutes_is_valid_in_bounded_memory(ten_minutes: Path, trained_workdir: Path,
                                                                compilation_cache: str) -> None:
    """After a warm-up prediction (compilation), predicting the 10-minute file gives valid probabilities."""
    result = _measure(f"""
import numpy as np
from emojax import features, inference
predictor = inference.Predictor.from_workdir({str(trained_workdir)!r})
predictor.predict(np.random.default_rng(0).uniform(-0.5, 0.5, 10 * features.SAMPLE_RATE), features.SAMPLE_RATE)
result, mb = growth(predictor.predict_file, {str(ten_minutes)!r})
probs = [list(result.probabilities.values())] + [list(w["probabilities"].values()) for w in result.windows]
print(json.dumps(dict(mb=mb, probs=probs, duration=result.duration_seconds, end=result.windows[-1]["end_seconds"])))
""", JAX_COMPILATION_CACHE_DIR=compilation_cache, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    probs = np.asarray(result["probs"])
    assert result["duration"] == pytest.approx(LONG_SECONDS)
    assert probs.shape[0] > 1 + 470 and probs.shape[1] == 8  # 2.5 s windows every 1.25 s
    assert result["end"] == pytest.approx(LONG_SECONDS)  # the last one aligned to the end
    assert np.isfinite(probs).all() and (probs >= 0).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert result["mb"] < PREDICT_LIMIT_MB, f"predict_file grew the process by {result['mb']:.0f} MB"
