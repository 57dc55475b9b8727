"""Audio loading and conversion: files and in-memory arrays to float32 mono samples at a given rate.

All stored and inferred emojax audio is 16 kHz mono (``SAMPLE_RATE``). ``load_audio`` decodes any container
libsndfile reads and streams: it decodes ``_READ_SAMPLES`` samples at a time, mixes each block down to mono and
resamples it before reading the next (``_resample_blocks``, equal to ``scipy.signal.resample_poly`` on the whole
signal), so memory is O(output) however long the file is. ``to_mono`` and ``resample`` do the same conversion on
arrays already in memory, with the same definitions (``load_audio`` mixes every block with ``to_mono``; libsndfile
scales integer PCM by ``-iinfo.min`` as ``to_mono`` does). ``to_int16`` is the way back, as the builders store audio.

This module also holds the front end's time grid (``MFCC_SAMPLE_RATE``, ``FRAME_HOP``), which ``emojax.features``
(one MFCC column per frame) and ``emojax.pitch`` (one pitch column per frame) share.
"""

from __future__ import annotations

import errno
import math
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import scipy.signal
import soundfile

__all__ = ["SAMPLE_RATE", "MFCC_SAMPLE_RATE", "FRAME_HOP", "INT16_SCALE", "AudioFileError", "load_audio", "to_mono",
           "resample", "to_int16"]

SAMPLE_RATE = 16_000
"""Sample rate (Hz) of all stored and inferred emojax audio."""
# The front end's time grid lives here, not in features: pitch needs it too, and features imports pitch.
MFCC_SAMPLE_RATE = 44_100
"""Rate (Hz) the front end computes MFCCs at: the reference's librosa rate, 216 frames per 2.5 s at hop 512."""
FRAME_HOP = 512
"""Samples at ``MFCC_SAMPLE_RATE`` between the centres of consecutive front-end frames (11.6 ms)."""
INT16_SCALE = 32768.0
"""float [-1, 1] ↔ int16 PCM scale (the one libsndfile uses)."""

# libsndfile logs "data : 32000 (should be 15978)" when a WAV/AIFF sound-data chunk runs past the end of the file
# (it then silently reads what is there); 0 and 0xFFFFFFFF are streaming placeholders, not sizes.
_SHORT_CHUNK = re.compile(r"^\s*(?:data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_READ_SAMPLES = 1 << 20  # samples (frames x channels) load_audio decodes at a time: a 4 MB float32 block
_RESAMPLE_STEP = 1 << 18  # input samples load_audio resamples at a time (plus the filter's reach on each side)
# Sample rates (Hz) load_audio accepts; a header outside is damaged or not audio. The top bounds the resampling filter
# (20 max(up, down) taps, built once per file): a prime rate near 384 kHz needs 350 MB once, near 768 kHz 700 MB.
_FILE_RATES = (1_000, 384_000)


class AudioFileError(ValueError):
    """An audio file that cannot be read (empty, truncated, or not audio); the message names the file."""


def _check_rate(name: str, rate: object) -> None:
    """Raises ``ValueError`` unless ``rate`` is a positive integer number of Hz."""
    if not isinstance(rate, int | np.integer) or rate <= 0:
        raise ValueError(f"{name} must be a positive integer number of Hz, got {rate!r}")


def _rate_ratio(to_rate: int, from_rate: int) -> tuple[int, int]:
    """``(up, down)``: ``resample_poly``'s factors from ``from_rate`` to ``to_rate`` (Hz), in lowest terms."""
    g = math.gcd(int(to_rate), int(from_rate))
    return int(to_rate) // g, int(from_rate) // g


def _front_end_frames(samples: int, up: int, down: int) -> tuple[int, int]:
    """``(resampled length, frames)`` of a clip of ``samples`` resampled by ``up / down`` to ``MFCC_SAMPLE_RATE``:
    ``frames = 1 + n // FRAME_HOP`` centred frames for ``n = ceil(samples * up / down)`` samples
    (ints or int arrays)."""
    n = -(-samples * up // down)
    return n, 1 + n // FRAME_HOP


def _to_float32(y: np.ndarray, what: str) -> np.ndarray:
    """``y`` as float32: signed integer PCM divided by ``-iinfo(dtype).min`` (into [-1, 1)), float cast as is."""
    y = np.asarray(y)
    if not (np.issubdtype(y.dtype, np.signedinteger) or np.issubdtype(y.dtype, np.floating)):
        raise ValueError(f"{what} must be signed integer PCM or float arrays, got dtype {y.dtype}")
    if np.issubdtype(y.dtype, np.integer):
        y = y.astype(np.float32) / np.float32(-np.iinfo(y.dtype).min)
    return y.astype(np.float32, copy=False)


def to_mono(y: np.ndarray) -> np.ndarray:
    """In-memory audio as float32 mono samples in [-1, 1].

    Args:
      y: ``(samples,)`` or ``(samples, channels)``, signed integer PCM (divided by ``-iinfo(dtype).min``: int16 by
        32768, as libsndfile decodes it) or float (cast to float32 as is).

    Returns:
      float32 ``(samples,)``: the channels' mean (computed in float32). A float32 ``(samples,)`` input is returned
      as is, not copied.

    Raises:
      ValueError: another dtype, another number of axes, or no samples.
    """
    y = _to_float32(y, "audio")
    if y.ndim not in (1, 2) or y.size == 0:
        raise ValueError(f"audio must be non-empty (samples,) or (samples, channels), got shape {y.shape}")
    if y.ndim == 2:
        y = y.mean(axis=1, dtype=np.float32) if y.shape[1] > 1 else y[:, 0].copy()
    return y


def resample(y: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """``y`` resampled from ``orig_sr`` to ``target_sr`` (Hz) along axis 0, as ``scipy.signal.resample_poly``.

    The factors are ``target_sr / orig_sr`` in lowest terms, with resample_poly's default Kaiser filter (the filter,
    alignment and length ``ceil(samples * target_sr / orig_sr)`` that ``load_audio`` and ``clip_mfccs`` use).

    Args:
      y: float samples ``(samples,)`` (or ``(samples, channels)``), e.g. ``to_mono``'s.
      orig_sr, target_sr: positive integer rates in Hz.

    Returns:
      float32 ``(ceil(samples * target_sr / orig_sr), ...)``; ``y`` as float32 (as is when it is already) when the
      rates are equal. Not clipped: resampling may overshoot [-1, 1] slightly.
    """
    _check_rate("orig_sr", orig_sr)
    _check_rate("target_sr", target_sr)
    if orig_sr == target_sr:
        return np.asarray(y, np.float32)
    up, down = _rate_ratio(target_sr, orig_sr)
    return scipy.signal.resample_poly(y, up, down).astype(np.float32)


def _as_clip(clip: np.ndarray) -> np.ndarray:
    """One clip of ``clip_mfccs`` / ``clip_pitch`` (signed integer PCM or float) as float32 ``(samples,)``, checked
    to be 1-D, non-empty and finite."""
    clip = _to_float32(clip, "clips")
    if clip.ndim != 1 or clip.size == 0:
        raise ValueError(f"each clip must be a non-empty 1-D array of samples, got shape {clip.shape}")
    if not np.isfinite(clip).all():
        raise ValueError("a clip contains NaN or infinite samples; clean or drop it first")
    return clip


def to_int16(y: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] (any shape) as int16 PCM, rounded and clipped: how the builders store audio."""
    return np.clip(np.round(np.asarray(y) * INT16_SCALE), -INT16_SCALE, INT16_SCALE - 1).astype(np.int16)


class AudioStream:
    """An audio file's samples as float32 mono blocks in [-1, 1], decoded anew at each iteration, streaming: a few MB
    of blocks are held at a time however long the file is.

    Any container libsndfile reads works, whatever the file's extension says (e.g. AIFF data named ``.wav``);
    integer PCM is scaled to [-1, 1), channels are averaged (``to_mono``), and with ``sample_rate`` the signal is
    resampled as ``scipy.signal.resample_poly`` does on the whole signal (``resample``; then clipped to [-1, 1]). The
    file is decoded ``_READ_SAMPLES`` samples at a time and each block is mixed down and resampled before the next is
    read (``_resample_blocks``).

    Attributes:
      path: the file.
      sample_rate: the blocks' rate in Hz (the file's when none was asked for).
      seconds: the recording's length as its header gives it.

    Raises (on opening):
      FileNotFoundError: ``path`` does not exist (``.filename`` is the path).
      AudioFileError: a ``ValueError`` naming the file when it is not audio or has a sample rate outside
        ``_FILE_RATES``. Iterating raises it for a file that turns out empty, truncated, damaged or to hold NaN or
        infinite samples.
    """

    def __init__(self, path: str | Path, sample_rate: int | None = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(errno.ENOENT, "audio file not found", str(self.path))
        if sample_rate is not None:
            _check_rate("sample_rate", sample_rate)
        with self._open() as f:
            self._file_rate, self.seconds = f.samplerate, f.frames / f.samplerate
        if not _FILE_RATES[0] <= self._file_rate <= _FILE_RATES[1]:
            raise AudioFileError(f"{self.path}: its header gives a sample rate of {self._file_rate} Hz, outside the "
                                 f"{_FILE_RATES[0]}-{_FILE_RATES[1]} Hz emojax reads; the file is damaged or not "
                                 f"audio (resample real recordings to {SAMPLE_RATE} Hz first)")
        self.sample_rate = self._file_rate if sample_rate is None else int(sample_rate)

    def _open(self) -> soundfile.SoundFile:
        try:
            return soundfile.SoundFile(self.path)
        except soundfile.LibsndfileError as e:
            raise AudioFileError(f"{self.path}: not a readable audio file ({e.error_string})") from e
        except TypeError as e:  # soundfile's "samplerate must be specified": a .raw name, read as headerless samples
            raise AudioFileError(f"{self.path}: headerless raw audio ({e}); convert it to WAV or FLAC first") from e

    def __iter__(self) -> Iterator[np.ndarray]:
        with self._open() as f:
            buffer = np.empty((max(1, _READ_SAMPLES // f.channels), f.channels), np.float32)
            try:
                for y in _resample_blocks(_mono_blocks(f, buffer, self.path),
                                          *_rate_ratio(self.sample_rate, self._file_rate)):
                    yield np.clip(y, -1.0, 1.0, out=y)
            except soundfile.LibsndfileError as e:
                raise AudioFileError(f"{self.path}: not a readable audio file ({e.error_string})") from e
            frames_read, expected, log = f.tell(), f.frames, f.extra_info
        if frames_read == 0:
            raise AudioFileError(f"{self.path}: the file contains no audio samples")
        short = [(int(a), int(b)) for a, b in _SHORT_CHUNK.findall(log) if int(a) not in (0, 0xFFFFFFFF)]
        if frames_read < expected or any(have < announced for announced, have in short):
            raise AudioFileError(f"{self.path}: truncated file, its header announces more audio than the file holds "
                                 f"({frames_read} frames readable); re-download or re-export it")


def load_audio(path: str | Path, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Reads an audio file whole as float32 mono samples in [-1, 1] (``AudioStream``'s blocks joined): memory is
    O(output) however long it is, 38 MB for 10 minutes at 16 kHz, whatever the file's rate and channel count.

    Args:
      path: the audio file.
      sample_rate: target rate in Hz; ``None`` keeps the file's rate.

    Returns:
      ``(y, sr)``: ``y`` float32 of shape ``(samples,)`` with at least one sample, ``sr`` its rate in Hz.

    Raises:
      FileNotFoundError, AudioFileError: as ``AudioStream`` (empty, truncated, not audio, a sample rate outside
        ``_FILE_RATES``, NaN or infinite samples).
    """
    stream = AudioStream(path, sample_rate)
    out = list(stream)
    return (out[0] if len(out) == 1 else np.concatenate(out)), stream.sample_rate


def _mono_blocks(f: soundfile.SoundFile, buffer: np.ndarray, path: Path) -> Iterator[np.ndarray]:
    """Decodes ``f`` into ``buffer (frames, channels)`` block by block; yields each block mixed to mono, float32
    (``to_mono``: a new array, so ``buffer`` can be reused).

    Raises ``AudioFileError`` naming ``path`` at the first NaN or infinite sample.
    """
    while True:
        block = f.read(out=buffer)
        if not len(block):
            return
        mono = to_mono(block)
        if not np.isfinite(mono).all():
            seconds = (f.tell() - len(block) + int(np.argmin(np.isfinite(mono)))) / f.samplerate
            raise AudioFileError(f"{path}: the file holds NaN or infinite samples (first at {seconds:.3f} s); "
                                 f"re-export it from its source")
        yield mono


def _resample_blocks(blocks: Iterable[np.ndarray], up: int, down: int) -> Iterator[np.ndarray]:
    """``scipy.signal.resample_poly(np.concatenate(blocks), up, down)`` computed block by block (float32).

    The input is cut at multiples of ``down`` samples (so that each piece's first output is on the whole signal's
    output grid); each piece of ``_RESAMPLE_STEP`` samples is resampled together with ``margin`` samples of context
    on each side, at least the filter's reach, and only its own outputs are kept, so every output sample sums the
    same filter taps over the same inputs as resample_poly on the whole signal (the start and the end of the signal
    are zero-padded, as there). Holds ``_RESAMPLE_STEP + 2 * margin`` input samples at a time.

    Yields:
      consecutive float32 pieces of the output, ``ceil(len(input) * up / down)`` samples in all.
    """
    if up == down:
        yield from blocks
        return
    half_len = 10 * max(up, down)  # resample_poly's filter: 2 * half_len + 1 Kaiser-windowed sinc taps
    taps = scipy.signal.firwin(2 * half_len + 1, 1.0 / max(up, down), window=("kaiser", 5.0)).astype(np.float32)
    margin = down * -(-(half_len // up + 2) // down)  # a multiple of down beyond the filter's reach (inputs)
    step = down * max(1, _RESAMPLE_STEP // down)
    pending = np.zeros(0, np.float32)  # inputs [start, start + len(pending))
    start = done = 0  # outputs of inputs [0, done) are yielded; done is a multiple of down

    def piece(end: int, last: bool) -> np.ndarray:
        """Outputs of inputs ``[done, end)``, resampling ``[done - margin, end + margin)`` (what there is)."""
        lo = max(0, done - margin)
        y = scipy.signal.resample_poly(pending[lo - start : end + margin - start], up, down, window=taps)
        first = (done - lo) * up // down
        return y[first:] if last else y[first : first + (end - done) * up // down]

    for block in blocks:
        pending = np.concatenate([pending, block])
        while start + len(pending) >= done + step + margin:
            yield piece(done + step, last=False)
            done += step
            cut = max(0, done - margin) - start
            pending, start = pending[cut:], start + cut
    if start + len(pending) > done:
        yield piece(start + len(pending), last=True)
