"""The emojax audio front end: audio loading, a pure ``jax.numpy`` MFCC pipeline, and pitch.

Everything here matches ``librosa`` 0.11 (same keyword names, defaults and output layouts): ``stft`` →
``|·|**power`` → mel filterbank (``mel_filterbank``, ``melspectrogram``) → ``power_to_db`` → DCT (``mfcc``),
``delta`` (``librosa.feature.delta`` with ``mode="nearest"``), and ``yin`` (``librosa.yin``'s f0: within 0.3 % of it
on periodic frames, and closer to the true f0 on steady tones; tests/test_features.py).
The window, the filterbank and the DCT matrix are built once per parameter set on the host in float64 (cached) and
applied in float32; the signal path is float32 and runs under ``jax.jit``, ``jax.vmap`` and ``jax.grad``. Leading
batch axes are allowed everywhere; the ``top_db`` floor is taken per clip (over the last two axes), never across
a batch. Parity with librosa is within 1e-6 of the largest value per clip (tests/test_features.py: 1e-5).

How the jitted path is fast on CPU (numbers in BENCHMARKS.md): frames are cut without a gather (reshape into
``gcd(n_fft, hop)`` blocks, strided slices, stack), clips are processed a few at a time in a ``lax.map`` loop (so the
frames and their FFT stay in cache), and the mel filterbank, which is banded, is applied as a handful of dense
blocks instead of one mostly-zero matrix. XLA:CPU runs a call's FFTs on one core, so eager calls on concrete CPU
input split the batch into one part per core, run by threads (under an outer ``jit`` the batch is one call).

The emojax front end
--------------------
All stored and inferred audio is 16 kHz mono (``SAMPLE_RATE``). The reference system computed librosa MFCCs at
44.1 kHz with ``n_fft=2048, hop_length=512`` (216 frames per 2.5 s), so the front end resamples every clip to
``MFCC_SAMPLE_RATE`` and computes ``mfcc(y, **FRONT_END)``: 40 coefficients (models may take the first 25: rows of
the orthonormal DCT do not depend on ``n_mfcc``), 128 Slaney mel bands, librosa defaults otherwise.

``clip_mfccs`` does this for many clips of any lengths at once. Resampling is ``scipy.signal.resample_poly``'s
(same Kaiser filter, alignment and length), computed inside the jitted batch as block matrix products read off
resample_poly's own impulse responses: it agrees with resample_poly to float32 round-off (~1e-6) at about 30
multiply-adds per output sample, instead of a host pass per clip. Clips are padded up to length buckets (frame
counts 32 · 2^(k/4) rounded up to 8: a few compiled shapes, about 20 % padding at most) and run in batches of 32,
one per core at a time (threads); each clip is zeroed beyond its own resampled length and its ``top_db`` peak is
taken over its own frames, so every result equals ``mfcc`` of the resampled clip alone.

``clip_pitch`` gives the same frames each one's pitch: YIN on 64 ms frames of the 16 kHz clip centred on the MFCC
frames (all clips' frames in fixed-size jitted batches), then, per clip on the host, log2 f0 on the voiced frames
(periodic and loud enough), interpolated across the others, and the periodicity (``PITCH``).
"""

from __future__ import annotations

import concurrent.futures
import errno
import functools
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import scipy.fft
import scipy.signal
import soundfile

SAMPLE_RATE = 16_000
"""Sample rate (Hz) of all stored and inferred emojax audio."""
MFCC_SAMPLE_RATE = 44_100
"""Rate (Hz) the front end computes MFCCs at: the reference's librosa rate, 216 frames per 2.5 s at hop 512."""
FRONT_END = dict(sr=MFCC_SAMPLE_RATE, n_mfcc=40, n_fft=2048, hop_length=512, n_mels=128)
# ``clip_pitch``: YIN at SAMPLE_RATE on 64 ms frames (lags over the first 32 ms), f0 searched in 60-600 Hz; a frame is
# voiced when its periodicity reaches PITCH_VOICING and its RMS is within PITCH_FLOOR_DB of the clip's loudest frame
# (benchmarks/pitch_voicing.py: on 50 CREMA-D and RAVDESS test clips, 84 % of frames get librosa.pyin's voicing
# decision, and 92.5 % of the frames both call voiced get an f0 within 5 % of pyin's). PITCH_ROWS: clip_pitch's rows.
PITCH = dict(fmin=60.0, fmax=600.0, frame_length=1024, win_length=512, trough_threshold=0.1)
PITCH_VOICING = 0.7
PITCH_ROWS = 2
PITCH_FLOOR_DB = 40.0
"""``mfcc`` keyword arguments of the emojax front end (librosa defaults otherwise)."""

_PAD_MODES = ("constant", "edge", "reflect", "symmetric")
# Performance knobs of the jitted path, chosen by measurement on the 2-core CPU (see BENCHMARKS.md):
_SEGMENT_COST = 4096  # multiply-adds per frame charged per filterbank block (512-8192 within 10 %; dense mel: 2x)
_CHUNK_FRAMES = 512  # frames per lax.map step: one step's FFT buffers stay in cache (1024: 1.2-1.6x slower, all: 2.5x)
# XLA:CPU runs an executable's FFTs on one core and does not overlap independent loops (measured), but two threads
# calling it on different parts of a batch do run in parallel: eager calls on concrete CPU input are split this way.
_THREADS = min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=_THREADS, thread_name_prefix="emojax-features")
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


# ----------------------------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------------------------


def load_audio(path: str | Path, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Reads an audio file as float32 mono samples in [-1, 1], streaming: memory is O(output) however long it is.

    Any container libsndfile reads works, whatever the file's extension says (e.g. AIFF data named ``.wav``);
    integer PCM is scaled to [-1, 1), channels are averaged, and with ``sample_rate`` the signal is resampled
    as ``scipy.signal.resample_poly`` does on the whole signal (then clipped to [-1, 1]). The file is decoded
    ``_READ_SAMPLES`` samples at a time and each block is mixed down and resampled before the next is read
    (``_resample_blocks``), so only the output and a few MB of blocks are held: 38 MB for 10 minutes at 16 kHz,
    whatever the file's rate and channel count.

    Args:
      path: the audio file.
      sample_rate: target rate in Hz; ``None`` keeps the file's rate.

    Returns:
      ``(y, sr)``: ``y`` float32 of shape ``(samples,)`` with at least one sample, ``sr`` its rate in Hz.

    Raises:
      FileNotFoundError: ``path`` does not exist (``.filename`` is the path).
      AudioFileError: a ``ValueError`` naming the file when it is empty, truncated, not audio, has a sample rate
        outside ``_FILE_RATES`` or holds NaN or infinite samples.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(errno.ENOENT, "audio file not found", str(path))
    if sample_rate is not None and (not isinstance(sample_rate, int | np.integer) or sample_rate <= 0):
        raise ValueError(f"sample_rate must be a positive integer number of Hz, got {sample_rate!r}")
    try:
        with soundfile.SoundFile(path) as f:
            sr, channels, expected = f.samplerate, f.channels, f.frames
            if not _FILE_RATES[0] <= sr <= _FILE_RATES[1]:
                raise AudioFileError(f"{path}: its header gives a sample rate of {sr} Hz, outside the "
                                     f"{_FILE_RATES[0]}-{_FILE_RATES[1]} Hz emojax reads; the file is damaged or not "
                                     f"audio (resample real recordings to {SAMPLE_RATE} Hz first)")
            out_rate = sr if sample_rate is None else int(sample_rate)
            out: list[np.ndarray] = []
            buffer = np.empty((max(1, _READ_SAMPLES // channels), channels), np.float32)
            g = math.gcd(out_rate, sr)
            for y in _resample_blocks(_mono_blocks(f, buffer, path), out_rate // g, sr // g):
                out.append(np.clip(y, -1.0, 1.0, out=y))
            frames_read = f.tell()
            log = f.extra_info
    except soundfile.LibsndfileError as e:
        raise AudioFileError(f"{path}: not a readable audio file ({e.error_string})") from e
    except TypeError as e:  # soundfile's "samplerate must be specified": a .raw name, read as headerless samples
        raise AudioFileError(f"{path}: headerless raw audio ({e}); convert it to WAV or FLAC first") from e
    if frames_read == 0:
        raise AudioFileError(f"{path}: the file contains no audio samples")
    short = [(int(a), int(b)) for a, b in _SHORT_CHUNK.findall(log) if int(a) not in (0, 0xFFFFFFFF)]
    if frames_read < expected or any(have < announced for announced, have in short):
        raise AudioFileError(f"{path}: truncated file, its header announces more audio than the file holds "
                             f"({frames_read} frames readable); re-download or re-export it")
    return (out[0] if len(out) == 1 else np.concatenate(out)), out_rate


INT16_SCALE = 32768.0
"""float [-1, 1] ↔ int16 PCM scale (the one libsndfile uses)."""


def to_int16(y: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] (any shape) as int16 PCM, rounded and clipped: how the builders store audio."""
    return np.clip(np.round(np.asarray(y) * INT16_SCALE), -INT16_SCALE, INT16_SCALE - 1).astype(np.int16)


def _mono_blocks(f: soundfile.SoundFile, buffer: np.ndarray, path: Path) -> Iterator[np.ndarray]:
    """Decodes ``f`` into ``buffer (frames, channels)`` block by block; yields each block mixed to mono, float32.

    Raises ``AudioFileError`` naming ``path`` at the first NaN or infinite sample.
    """
    while True:
        block = f.read(out=buffer)
        if not len(block):
            return
        mono = block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0].copy()
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


# ----------------------------------------------------------------------------------------------------------------
# Host-side constants (float64, cached per parameter set)
# ----------------------------------------------------------------------------------------------------------------


def _hz_to_mel(f: np.ndarray, htk: bool) -> np.ndarray:
    """Hz → mel (float64): HTK ``2595 log10(1 + f/700)``, or Slaney (linear below 1 kHz, log above)."""
    f = np.asarray(f, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    logstep = np.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_hz / f_sp + np.log(np.maximum(f, min_log_hz) / min_log_hz) / logstep,
                    f / f_sp)


def _mel_to_hz(m: np.ndarray, htk: bool) -> np.ndarray:
    """Mel → Hz (float64), the inverse of ``_hz_to_mel``."""
    m = np.asarray(m, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def _check_positive_int(**kwargs: object) -> None:
    """Raises ``ValueError`` naming the first argument that is not a positive integer."""
    for name, value in kwargs.items():
        if not isinstance(value, int | np.integer) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _check_mel_args(sr: float, n_fft: int, n_mels: int, fmin: float, fmax: float | None,
                    norm: str | None) -> float:
    """Validates filterbank arguments; returns ``fmax`` (``sr / 2`` when ``None``)."""
    _check_positive_int(n_fft=n_fft, n_mels=n_mels)
    if not sr > 0:
        raise ValueError(f"sr must be a positive sample rate in Hz, got {sr!r}")
    fmax = sr / 2 if fmax is None else fmax
    if fmax > sr / 2:
        raise ValueError(f"fmax={fmax} Hz is above the Nyquist frequency sr/2={sr / 2} Hz; lower fmax or raise sr")
    if not 0 <= fmin < fmax:
        raise ValueError(f"need 0 <= fmin < fmax, got fmin={fmin}, fmax={fmax}")
    if norm not in ("slaney", None):
        raise ValueError(f"mel norm must be 'slaney' or None, got {norm!r}")
    return float(fmax)


def _mel_blocks(nonzero: np.ndarray) -> tuple[tuple[int, int, int, int], ...]:
    """Splits a banded filterbank (``nonzero``: its ``(n_mels, bins)`` mask) into dense blocks.

    Every mel band touches a few neighbouring FFT bins only, so ``S @ fb.T`` is computed as a sum of small products
    ``S[..., bin_lo:bin_hi] @ fb.T[bin_lo:bin_hi, band_lo:band_hi]``. The cut points (multiples of 16 bins) minimise
    the multiply-adds plus ``_SEGMENT_COST`` per block (dynamic programming); all-zero bins are skipped.

    Returns:
      ``(bin_lo, bin_hi, band_lo, band_hi)`` per block, in bin order.
    """
    used = np.flatnonzero(nonzero.any(axis=0))
    if used.size == 0:
        return ()
    cuts = sorted({*range(int(used[0]), int(used[-1]) + 1, 16), int(used[-1]) + 1})

    def cost(i: int, j: int) -> tuple[int, int, int]:
        bands = np.flatnonzero(nonzero[:, cuts[i] : cuts[j]].any(axis=1))
        if bands.size == 0:
            return 0, 0, 0
        return (cuts[j] - cuts[i]) * (int(bands[-1]) + 1 - int(bands[0])) + _SEGMENT_COST, int(bands[0]), \
            int(bands[-1]) + 1

    best = [0] + [np.inf] * (len(cuts) - 1)
    choice = [0] * len(cuts)
    for j in range(1, len(cuts)):
        for i in range(j):
            c = best[i] + cost(i, j)[0]
            if c < best[j]:
                best[j], choice[j] = c, i
    blocks, j = [], len(cuts) - 1
    while j > 0:
        i = choice[j]
        c, lo, hi = cost(i, j)
        if c:
            blocks.append((cuts[i], cuts[j], lo, hi))
        j = i
    return tuple(reversed(blocks))


@functools.lru_cache(maxsize=32)
def _mel_filterbank(sr: float, n_fft: int, n_mels: int, fmin: float, fmax: float, htk: bool,
                    norm: str | None) -> tuple[np.ndarray, tuple[tuple[int, int, int, int], ...]]:
    """The filterbank ``(n_mels, bins)`` (read-only float32) and its dense blocks (``_mel_blocks``)."""
    fftfreqs = np.fft.rfftfreq(n_fft, d=1.0 / sr)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(fmin, htk), _hz_to_mel(fmax, htk), n_mels + 2), htk)
    ramps = mel_f[:, None] - fftfreqs[None, :]
    fdiff = np.diff(mel_f)[:, None]
    lower, upper = -ramps[:-2] / fdiff[:-1], ramps[2:] / fdiff[1:]
    # Rounded to float32 before the norm, as librosa does (it fills a float32 array, then scales it).
    weights = np.maximum(0.0, np.minimum(lower, upper)).astype(np.float32)
    if norm == "slaney":
        weights = (weights * (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]).astype(np.float32)
    weights.flags.writeable = False
    return weights, _mel_blocks(weights != 0)


def mel_filterbank(*, sr: float, n_fft: int, n_mels: int = 128, fmin: float = 0.0, fmax: float | None = None,
                   htk: bool = False, norm: str | None = "slaney") -> np.ndarray:
    """Triangular mel filterbank, as ``librosa.filters.mel`` (cached; the returned array is read-only).

    Args:
      sr: sample rate (Hz); n_fft: FFT size; n_mels: number of bands; fmin, fmax: band edges in Hz
      (``fmax=None`` is ``sr / 2``); htk: HTK mel scale instead of Slaney's; norm: ``"slaney"`` (each band
      divided by its width in Hz, so roughly constant energy per band) or ``None`` (peak 1).

    Returns:
      float32 array ``(n_mels, 1 + n_fft // 2)``.
    """
    return _mel_setup(sr, n_fft, n_mels, fmin, fmax, htk, norm)[0]


def _mel_setup(sr: float, n_fft: int, n_mels: int, fmin: float, fmax: float | None, htk: bool,
               norm: str | None) -> tuple[np.ndarray, tuple[tuple[int, int, int, int], ...]]:
    """Validated, cached ``_mel_filterbank``."""
    fmax = _check_mel_args(sr, n_fft, n_mels, fmin, fmax, norm)
    return _mel_filterbank(float(sr), int(n_fft), int(n_mels), float(fmin), fmax, bool(htk), norm)


@functools.lru_cache(maxsize=32)
def _dct_matrix(n_mels: int, n_mfcc: int, dct_type: int, norm: str | None, lifter: float) -> np.ndarray:
    """``(n_mels, n_mfcc)`` float32 matrix ``D`` with ``x @ D == scipy.fft.dct(x)[:n_mfcc]`` (liftered)."""
    d = scipy.fft.dct(np.eye(n_mels), type=dct_type, norm=norm, axis=-1)[:, :n_mfcc]
    if lifter > 0:
        d = d * (1 + (lifter / 2) * np.sin(np.pi * np.arange(1, 1 + n_mfcc) / lifter))
    d = d.astype(np.float32)
    d.flags.writeable = False
    return d


@functools.lru_cache(maxsize=32)
def _window(window: str | tuple | float, win_length: int, n_fft: int) -> np.ndarray:
    """Periodic window of ``win_length`` zero-padded to ``n_fft`` at the centre, float32 ``(n_fft,)``."""
    w = scipy.signal.get_window(window, win_length, fftbins=True)
    lpad = (n_fft - win_length) // 2
    w = np.pad(w, (lpad, n_fft - win_length - lpad)).astype(np.float32)
    w.flags.writeable = False
    return w


# ----------------------------------------------------------------------------------------------------------------
# Signal path (jax)
# ----------------------------------------------------------------------------------------------------------------


def _check_signal(y: jax.Array | np.ndarray, n_fft: int, center: bool) -> jax.Array:
    """Dtype and shape checks (finiteness is checked by ``_run`` on the computed batch)."""
    dtype = y.dtype if hasattr(y, "dtype") else np.asarray(y).dtype
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"audio must be a real floating-point array in [-1, 1], got dtype {dtype}; "
                         f"scale int16 PCM with y / 32768")
    if jnp.ndim(y) == 0 or jnp.size(y) == 0:
        raise ValueError(f"audio signal is empty (shape {jnp.shape(y)}); expected (..., samples) with samples > 0")
    if not center and jnp.shape(y)[-1] < n_fft:
        raise ValueError(f"signal of {jnp.shape(y)[-1]} samples is shorter than n_fft={n_fft} with center=False; "
                         f"use center=True or a smaller n_fft")
    return jnp.asarray(y, dtype=jnp.float32)


def _frames(y: jax.Array, n_fft: int, hop: int) -> jax.Array:
    """Overlapping frames ``(..., frames, n_fft)`` of ``y (..., samples)`` without a gather.

    With ``g = gcd(n_fft, hop)``, the signal is cut into blocks of ``g`` samples; frame ``t`` is blocks
    ``t*hop/g ... t*hop/g + n_fft/g - 1``, so the frames are ``n_fft/g`` strided slices of the blocks, stacked.
    """
    n_frames = 1 + (y.shape[-1] - n_fft) // hop
    g = math.gcd(n_fft, hop)
    a, b = n_fft // g, hop // g
    n_blocks = (n_frames - 1) * b + a
    blocks = y[..., : n_blocks * g].reshape(*y.shape[:-1], n_blocks, g)
    parts = [blocks[..., k : k + (n_frames - 1) * b + 1 : b, :] for k in range(a)]
    return jnp.stack(parts, axis=-2).reshape(*y.shape[:-1], n_frames, n_fft)


@functools.partial(jax.jit, static_argnames=("n_fft", "hop", "center", "pad_mode"))
def _stft_frames(y: jax.Array, window: jax.Array, n_fft: int, hop: int, center: bool, pad_mode: str) -> jax.Array:
    """Complex STFT ``(..., frames, 1 + n_fft // 2)`` of float32 ``y (..., samples)``."""
    if center:
        pad = [(0, 0)] * (y.ndim - 1) + [(n_fft // 2, n_fft // 2)]
        y = jnp.pad(y, pad, mode=pad_mode)
    return jnp.fft.rfft(_frames(y, n_fft, hop) * window, axis=-1)


def _check_stft_args(n_fft: int, hop_length: int | None, win_length: int | None, center: bool,
                     pad_mode: str) -> tuple[int, int]:
    """Validates STFT arguments; returns ``(hop_length, win_length)`` with librosa's defaults filled in."""
    _check_positive_int(n_fft=n_fft)
    win_length = n_fft if win_length is None else win_length
    _check_positive_int(win_length=win_length)
    if win_length > n_fft:
        raise ValueError(f"win_length={win_length} must be <= n_fft={n_fft}")
    hop_length = win_length // 4 if hop_length is None else hop_length
    _check_positive_int(hop_length=hop_length)
    if center and pad_mode not in _PAD_MODES:
        raise ValueError(f"pad_mode must be one of {_PAD_MODES}, got {pad_mode!r}")
    return hop_length, win_length


def stft(y: jax.Array | np.ndarray, *, n_fft: int = 2048, hop_length: int | None = None,
         win_length: int | None = None, window: str | tuple = "hann", center: bool = True,
         pad_mode: str = "constant") -> jax.Array:
    """Short-time Fourier transform, as ``librosa.stft``.

    Args:
      y: signal ``(..., samples)``.
      n_fft: FFT size; hop_length: frame step (default ``win_length // 4``); win_length: window size
      (default ``n_fft``; the window is zero-padded to ``n_fft``); window: ``scipy.signal.get_window`` spec;
      center: pad ``n_fft // 2`` samples on each side (``pad_mode``) so frame ``t`` is centred at
      ``t * hop_length``.

    Returns:
      complex64 ``(..., 1 + n_fft // 2, frames)``, ``frames = 1 + (samples + 2 * (n_fft // 2) * center - n_fft)
      // hop_length``.
    """
    hop_length, win_length = _check_stft_args(n_fft, hop_length, win_length, center, pad_mode)
    y = _check_signal(y, n_fft, center)
    if not isinstance(y, jax.core.Tracer) and not bool(jnp.all(jnp.isfinite(y))):
        raise ValueError("audio contains NaN or infinite samples; clean or drop the clip first")
    w = _window(window, win_length, n_fft)
    return jnp.swapaxes(_stft_frames(y, w, n_fft=n_fft, hop=hop_length, center=center, pad_mode=pad_mode), -1, -2)


def _power(spec: jax.Array, power: float) -> jax.Array:
    """``|spec| ** power``; ``power=2`` avoids the square root (finite gradients at 0)."""
    if power == 2.0:
        return jnp.real(spec) ** 2 + jnp.imag(spec) ** 2
    return jnp.abs(spec) ** power


def _db(s: jax.Array, ref: float, amin: float, top_db: float | None, n_valid: jax.Array | None) -> jax.Array:
    """``power_to_db`` of ``s (..., frames, bands)``, top_db floor per clip (over its first ``n_valid`` frames)."""
    log_spec = 10.0 * jnp.log10(jnp.maximum(amin, s))
    log_spec = log_spec - 10.0 * math.log10(max(amin, abs(ref)))
    if top_db is not None:
        masked = log_spec
        if n_valid is not None:
            valid = jnp.arange(s.shape[-2]) < n_valid[..., None]
            masked = jnp.where(valid[..., None], log_spec, -jnp.inf)
        peak = jnp.max(masked, axis=(-2, -1), keepdims=True)
        log_spec = jnp.maximum(log_spec, peak - top_db)
    return log_spec


def power_to_db(S: jax.Array | np.ndarray, *, ref: float = 1.0, amin: float = 1e-10,
                top_db: float | None = 80.0) -> jax.Array:
    """Power spectrogram → decibels, as ``librosa.power_to_db`` but with a per-clip ``top_db`` floor.

    ``10 log10(max(amin, S)) - 10 log10(max(amin, |ref|))``, floored at ``top_db`` dB below the maximum of each
    clip (the last two axes), so a batch gives the same result as its clips one by one.

    Args:
      S: power spectrogram ``(..., bands, frames)``; ref: reference power (0 dB); amin: floor on ``S`` and ``ref``
      (> 0); top_db: dynamic range kept below each clip's peak (``None`` keeps everything).

    Returns:
      float32 ``(..., bands, frames)`` in dB.
    """
    if not amin > 0:
        raise ValueError(f"amin must be strictly positive, got {amin}")
    if top_db is not None and top_db < 0:
        raise ValueError(f"top_db must be non-negative or None, got {top_db}")
    if jnp.ndim(S) < 2:
        raise ValueError(f"S must be a spectrogram (..., bands, frames), got shape {jnp.shape(S)}")
    return jnp.swapaxes(_db(jnp.swapaxes(jnp.asarray(S, jnp.float32), -1, -2), ref, amin, top_db, None), -1, -2)


def _check_mfcc_args(n_mfcc: int, n_mels: int, dct_type: int, norm: str | None, lifter: float,
                     top_db: float | None, power: float) -> None:
    """Validates the MFCC-specific arguments of ``mfcc`` (``ValueError`` saying which and why)."""
    _check_positive_int(n_mfcc=n_mfcc)
    if n_mfcc > n_mels:
        raise ValueError(f"n_mfcc={n_mfcc} must be <= n_mels={n_mels}")
    if dct_type not in (1, 2, 3):
        raise ValueError(f"dct_type must be 1, 2 or 3, got {dct_type!r}")
    if norm not in ("ortho", None):
        raise ValueError(f"DCT norm must be 'ortho' or None, got {norm!r}")
    if dct_type == 1 and norm == "ortho" and n_mels < 2:
        raise ValueError("an orthonormal type-1 DCT needs n_mels >= 2")
    if not lifter >= 0:
        raise ValueError(f"lifter must be a non-negative number, got {lifter}")
    if top_db is not None and top_db < 0:
        raise ValueError(f"top_db must be non-negative or None, got {top_db}")
    if not power > 0:
        raise ValueError(f"power must be positive, got {power}")


def _apply_mel(s: jax.Array, mel_t: jax.Array, blocks: tuple[tuple[int, int, int, int], ...]) -> jax.Array:
    """``s (..., bins) @ mel_t (bins, n_mels)`` as a sum of the dense blocks of ``mel_t``."""
    n_mels = mel_t.shape[1]
    out = jnp.zeros((*s.shape[:-1], n_mels), s.dtype)
    for b0, b1, m0, m1 in blocks:
        part = jnp.matmul(s[..., b0:b1], mel_t[b0:b1, m0:m1])
        out = out + jnp.pad(part, [(0, 0)] * (s.ndim - 1) + [(m0, n_mels - m1)])
    return out


def _chunked(fn: Callable[[jax.Array], jax.Array], y: jax.Array, chunk: int) -> jax.Array:
    """``fn`` over ``y (clips, samples)``, ``chunk`` clips at a time (``lax.map``), so each step stays in cache."""
    n = y.shape[0]
    if n <= chunk:
        return fn(y)
    steps = -(-n // chunk)
    y = jnp.pad(y, [(0, steps * chunk - n), (0, 0)]).reshape(steps, chunk, y.shape[-1])
    out = jax.lax.map(fn, y)
    return out.reshape(steps * chunk, *out.shape[2:])[:n]


@functools.partial(jax.jit, static_argnames=("size", "blocks", "n_fft", "hop", "center", "pad_mode", "power",
                                             "top_db", "log"))
def _mel_path(y: jax.Array, start: jax.Array, window: jax.Array, mel_t: jax.Array, out_t: jax.Array | None,
              n_valid: jax.Array | None, *, size: int, blocks: tuple[tuple[int, int, int, int], ...], n_fft: int,
              hop: int, center: bool, pad_mode: str, power: float, top_db: float | None,
              log: bool) -> tuple[jax.Array, jax.Array]:
    """Mel spectrogram (``log=False``) or MFCCs (``log=True``: dB, then ``@ out_t``) of clips ``start:start+size``.

    Args:
      y: clips ``(..., samples)``, taken as ``(clips, samples)``; start: first clip (int scalar); size: clips.
      n_valid: ``(clips,)``, when given, limits each clip's top_db peak to its first ``n_valid`` frames.

    Returns:
      ``(size, frames, n_mels or out)`` and whether those clips are all finite.
    """
    y = jax.lax.dynamic_slice_in_dim(y.reshape(-1, y.shape[-1]), start, size)
    if n_valid is not None:
        n_valid = jax.lax.dynamic_slice_in_dim(n_valid.reshape(-1), start, size)

    def mel_of(clips: jax.Array) -> jax.Array:
        spec = _power(_stft_frames(clips, window, n_fft=n_fft, hop=hop, center=center, pad_mode=pad_mode), power)
        return _apply_mel(spec, mel_t, blocks)

    padded = y.shape[-1] + 2 * (n_fft // 2) * center
    mel = _chunked(mel_of, y, max(1, _CHUNK_FRAMES // (1 + (padded - n_fft) // hop)))
    finite = jnp.all(jnp.isfinite(y))
    if not log:
        return mel, finite
    return jnp.matmul(_db(mel, 1.0, 1e-10, top_db, n_valid), out_t), finite


def _run(y: jax.Array, *args: jax.Array | np.ndarray | None, **static: object) -> jax.Array:
    """``_mel_path`` over ``y (..., samples)`` → ``(..., frames, out)``.

    Concrete input on the CPU is split into up to ``_THREADS`` equal parts run by parallel threads (the last part
    may overlap the one before it, so all parts have one shape and compile once); NaN or infinite samples raise.
    """
    lead = y.shape[:-1]
    n = math.prod(lead)
    traced = isinstance(y, jax.core.Tracer)
    parts = 1 if traced or jax.default_backend() != "cpu" else min(_THREADS, n)
    size = -(-n // parts)
    starts = [min(i * size, n - size) for i in range(parts)]
    run = functools.partial(_mel_path, y, size=size, **static)
    results = list(_POOL.map(lambda s: run(np.int32(s), *args), starts)) if parts > 1 else [run(np.int32(0), *args)]
    if not traced and not all(bool(finite) for _, finite in results):
        raise ValueError("audio contains NaN or infinite samples; clean or drop the clip first")
    outs = [out[i * size - s :] for i, ((out, _), s) in enumerate(zip(results, starts))]
    out = jnp.concatenate(outs) if parts > 1 else outs[0]
    return out.reshape(*lead, *out.shape[1:])


def melspectrogram(y: jax.Array | np.ndarray, *, sr: float = 22050, n_fft: int = 2048, hop_length: int = 512,
                   win_length: int | None = None, window: str | tuple = "hann", center: bool = True,
                   pad_mode: str = "constant", power: float = 2.0, n_mels: int = 128, fmin: float = 0.0,
                   fmax: float | None = None, htk: bool = False, norm: str | None = "slaney") -> jax.Array:
    """Mel spectrogram, as ``librosa.feature.melspectrogram`` (``norm`` is the filterbank's).

    Args: as ``stft`` and ``mel_filterbank``; power: exponent of the magnitude (2: power, 1: energy).

    Returns:
      float32 ``(..., n_mels, frames)``.
    """
    hop_length, win_length = _check_stft_args(n_fft, hop_length, win_length, center, pad_mode)
    if not power > 0:
        raise ValueError(f"power must be positive, got {power}")
    fb, blocks = _mel_setup(sr, n_fft, n_mels, fmin, fmax, htk, norm)
    y = _check_signal(y, n_fft, center)
    mel = _run(y, _window(window, win_length, n_fft), fb.T, None, None, blocks=blocks, n_fft=n_fft, hop=hop_length,
               center=center, pad_mode=pad_mode, power=float(power), top_db=None, log=False)
    return jnp.swapaxes(mel, -1, -2)


def mfcc(y: jax.Array | np.ndarray, *, sr: float = 22050, n_mfcc: int = 20, dct_type: int = 2,
         norm: str | None = "ortho", lifter: float = 0, mel_norm: str | None = "slaney", n_fft: int = 2048,
         hop_length: int = 512, win_length: int | None = None, window: str | tuple = "hann", center: bool = True,
         pad_mode: str = "constant", power: float = 2.0, n_mels: int = 128, fmin: float = 0.0,
         fmax: float | None = None, htk: bool = False, top_db: float | None = 80.0) -> jax.Array:
    """Mel-frequency cepstral coefficients, as ``librosa.feature.mfcc`` (same keywords and defaults).

    ``dct(power_to_db(melspectrogram(y)))[:n_mfcc]``: ``norm`` is the DCT's, ``mel_norm`` the filterbank's; the
    ``top_db`` floor is per clip. Works on any leading batch axes and under ``jit``/``vmap``/``grad``.

    Args:
      y: signal ``(..., samples)``, floating point (computed in float32).
      sr: sample rate (Hz). Others: see ``stft``, ``mel_filterbank``, ``power_to_db``; lifter: cepstral liftering
      ``1 + lifter/2 sin(pi k / lifter)`` (0: none).

    Returns:
      float32 ``(..., n_mfcc, frames)``.
    """
    hop_length, win_length = _check_stft_args(n_fft, hop_length, win_length, center, pad_mode)
    _check_mfcc_args(n_mfcc, n_mels, dct_type, norm, lifter, top_db, power)
    fb, blocks = _mel_setup(sr, n_fft, n_mels, fmin, fmax, htk, mel_norm)
    dct = _dct_matrix(int(n_mels), int(n_mfcc), int(dct_type), norm, float(lifter))
    y = _check_signal(y, n_fft, center)
    out = _run(y, _window(window, win_length, n_fft), fb.T, dct, None, blocks=blocks, n_fft=n_fft, hop=hop_length,
               center=center, pad_mode=pad_mode, power=float(power), top_db=None if top_db is None else float(top_db),
               log=True)
    return jnp.swapaxes(out, -1, -2)


def delta(data: jax.Array | np.ndarray, *, width: int = 9, order: int = 1, axis: int = -1) -> jax.Array:
    """Local derivative of ``data`` along ``axis`` (time), as ``librosa.feature.delta(..., mode="nearest")``.

    A Savitzky-Golay filter of ``width`` frames (odd, >= 3) fitting a polynomial of degree ``order`` and taking
    its ``order``-th derivative per frame; edges repeat the first / last frame. ``order=2`` is the acceleration
    (computed directly, not as the delta of the delta). Works under ``jit``.

    Args:
      data: float array ``(..., frames, ...)``, e.g. MFCCs ``(..., n_mfcc, frames)``.
    Returns:
      float32 array of ``data``'s shape.
    """
    _check_positive_int(width=width, order=order)
    if width < 3 or width % 2 == 0:
        raise ValueError(f"width must be an odd integer >= 3, got {width}")
    if order >= width:
        raise ValueError(f"order must be smaller than width, got order={order}, width={width}")
    coeffs = scipy.signal.savgol_coeffs(width, order, deriv=order, use="dot").astype(np.float32)
    x = jnp.moveaxis(jnp.asarray(data, jnp.float32), axis, -1)
    frames, half = x.shape[-1], width // 2
    padded = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(half, half)], mode="edge")
    out = sum(float(c) * padded[..., k:k + frames] for k, c in enumerate(coeffs) if c != 0)
    return jnp.moveaxis(out, -1, axis)


def _check_yin_args(sr: float, fmin: float, fmax: float, frame_length: int, win_length: int,
                    trough_threshold: float) -> tuple[int, int]:
    """Validates ``yin`` arguments; returns its lag range ``(min_period, max_period)`` in samples."""
    _check_positive_int(frame_length=frame_length, win_length=win_length)
    if not 0 < fmin < fmax <= sr / 2:
        raise ValueError(f"need 0 < fmin < fmax <= sr / 2, got fmin={fmin}, fmax={fmax}, sr={sr}")
    if not 0 < trough_threshold < 1:
        raise ValueError(f"trough_threshold must be in (0, 1), got {trough_threshold}")
    min_period = int(math.floor(sr / fmax))
    max_period = min(int(math.ceil(sr / fmin)), frame_length - win_length - 1)
    if min_period < 1 or max_period < min_period + 2:
        raise ValueError(f"frame_length={frame_length} with win_length={win_length} leaves no lags for "
                         f"fmin={fmin} Hz at sr={sr}: raise frame_length (it must exceed win_length + sr / fmin)")
    return min_period, max_period


def _yin_frames(frames: jax.Array, sr: float, win_length: int, min_period: int, max_period: int,
                trough_threshold: float) -> tuple[jax.Array, jax.Array]:
    """YIN (de Cheveigné & Kawahara, 2002) on frames ``(..., frame_length)``: ``(f0 Hz, periodicity)``, each
    ``(...)``.

    The difference function of lag ``τ`` over the frame's first ``win_length`` samples,
    ``d(τ) = E(0) + E(τ) - 2 r(τ)`` (``E``: window energies from a cumulative sum, ``r``: the correlation, by FFT),
    is divided by its mean over lags ``1..τ``. The period is the first local minimum below ``trough_threshold`` in
    ``[min_period, max_period]``, else the lowest value there, refined by a parabola through it and its neighbours.
    ``periodicity`` is one minus the normalised difference at that minimum, clipped to [0, 1] (1: perfectly
    periodic; 0 for a silent window).
    """
    n = frames.shape[-1]
    spectrum = jnp.fft.rfft(frames, axis=-1)
    head = jnp.fft.rfft(frames[..., :win_length], n=n, axis=-1)
    corr = jnp.fft.irfft(jnp.conj(head) * spectrum, n=n, axis=-1)[..., : max_period + 1]  # r(τ), τ = 0..max_period
    energy = jnp.cumsum(jnp.square(frames), axis=-1)
    energy = jnp.concatenate([jnp.zeros_like(energy[..., :1]), energy], axis=-1)
    window_energy = energy[..., win_length : win_length + max_period + 1] - energy[..., : max_period + 1]
    diff = jnp.maximum(window_energy[..., :1] + window_energy - 2.0 * corr, 0.0)
    lags = jnp.arange(1, max_period + 1, dtype=jnp.float32)
    mean = jnp.cumsum(diff[..., 1:], axis=-1) / lags
    # A silent window (d = 0 at every lag) is aperiodic: normalised difference 1, not 0 / 0.
    cmnd = jnp.where(mean > 0, diff[..., 1:] / jnp.where(mean > 0, mean, 1.0), 1.0)[..., min_period - 1 :]
    left = jnp.concatenate([jnp.full_like(cmnd[..., :1], jnp.inf), cmnd[..., :-1]], axis=-1)
    right = jnp.concatenate([cmnd[..., 1:], jnp.full_like(cmnd[..., :1], jnp.inf)], axis=-1)
    trough = (cmnd < left) & (cmnd <= right) & (cmnd < trough_threshold)
    best = jnp.where(jnp.any(trough, axis=-1), jnp.argmax(trough, axis=-1), jnp.argmin(cmnd, axis=-1))
    take = lambda a, i: jnp.take_along_axis(a, jnp.clip(i, 0, a.shape[-1] - 1)[..., None], axis=-1)[..., 0]
    a, b, c = take(cmnd, best - 1), take(cmnd, best), take(cmnd, best + 1)
    curvature = a - 2.0 * b + c
    inside = (best > 0) & (best < cmnd.shape[-1] - 1) & (curvature > 0)
    shift = jnp.where(inside, 0.5 * (a - c) / jnp.where(inside, curvature, 1.0), 0.0)
    period = min_period + best.astype(jnp.float32) + jnp.clip(shift, -1.0, 1.0)
    return sr / period, jnp.clip(1.0 - b, 0.0, 1.0)


@functools.partial(jax.jit, static_argnames=("sr", "frame_length", "win_length", "hop", "min_period", "max_period",
                                             "trough_threshold", "center", "pad_mode"))
def _yin_signal(y: jax.Array, *, sr: float, frame_length: int, win_length: int, hop: int, min_period: int,
                max_period: int, trough_threshold: float, center: bool, pad_mode: str) -> jax.Array:
    if center:
        y = jnp.pad(y, [(0, 0)] * (y.ndim - 1) + [(frame_length // 2, frame_length // 2)], mode=pad_mode)
    f0, _ = _yin_frames(_frames(y, frame_length, hop), sr, win_length, min_period, max_period, trough_threshold)
    return f0


def yin(y: jax.Array | np.ndarray, *, fmin: float, fmax: float, sr: float = 22050, frame_length: int = 2048,
        win_length: int | None = None, hop_length: int | None = None, trough_threshold: float = 0.1,
        center: bool = True, pad_mode: str = "constant") -> jax.Array:
    """Fundamental frequency by YIN, as ``librosa.yin`` (same arguments and defaults; ``_yin_frames``).

    Args:
      y: signal ``(..., samples)``, float in [-1, 1].
      fmin, fmax: the search range in Hz; sr: sampling rate (Hz); frame_length: samples per frame (it must exceed
      ``win_length + sr / fmin``); win_length: samples the difference function sums over (default
      ``frame_length // 2``); hop_length: frame step (default ``frame_length // 4``); trough_threshold: the
      normalised difference below which the first trough is taken as the period; center: pad
      ``frame_length // 2`` samples on each side (``pad_mode``) so frame ``t`` is centred at ``t * hop_length``.

    Returns:
      float32 ``(..., frames)`` f0 in Hz (every frame gets one, voiced or not), ``frames = 1 + (samples +
      2 * (frame_length // 2) * center - frame_length) // hop_length``.
    """
    win_length = frame_length // 2 if win_length is None else win_length
    hop_length = frame_length // 4 if hop_length is None else hop_length
    _check_positive_int(hop_length=hop_length)
    min_period, max_period = _check_yin_args(sr, fmin, fmax, frame_length, win_length, trough_threshold)
    if center and pad_mode not in _PAD_MODES:
        raise ValueError(f"pad_mode must be one of {_PAD_MODES}, got {pad_mode!r}")
    y = _check_signal(y, frame_length, center)
    return _yin_signal(y, sr=float(sr), frame_length=frame_length, win_length=win_length, hop=hop_length,
                       min_period=min_period, max_period=max_period, trough_threshold=float(trough_threshold),
                       center=center, pad_mode=pad_mode)


# ----------------------------------------------------------------------------------------------------------------
# The emojax front end over many clips
# ----------------------------------------------------------------------------------------------------------------


def _as_clip(clip: np.ndarray) -> np.ndarray:
    """One clip (int16/int32 PCM scaled to [-1, 1), or float) as float32 ``(samples,)``, checked."""
    clip = np.asarray(clip)
    if not (np.issubdtype(clip.dtype, np.signedinteger) or np.issubdtype(clip.dtype, np.floating)):
        raise ValueError(f"clips must be signed integer PCM or float arrays, got dtype {clip.dtype}")
    if np.issubdtype(clip.dtype, np.integer):
        clip = clip.astype(np.float32) / np.float32(-np.iinfo(clip.dtype).min)
    clip = clip.astype(np.float32, copy=False)
    if clip.ndim != 1 or clip.size == 0:
        raise ValueError(f"each clip must be a non-empty 1-D array of samples, got shape {clip.shape}")
    if not np.isfinite(clip).all():
        raise ValueError("a clip contains NaN or infinite samples; clean or drop it first")
    return clip


_MAX_RESAMPLE_WEIGHTS = 1 << 20  # larger polyphase matrices (unusual rate pairs): scipy on the host instead


@functools.lru_cache(maxsize=8)
def _resample_plan(up: int, down: int) -> tuple[int, tuple[tuple[int, int, int, int], ...], tuple[np.ndarray, ...]]:
    """``scipy.signal.resample_poly(x, up, down)`` as block matrix products (for ``_resample``).

    Output ``up * q + r`` is ``sum_j x[down * q + j] * W[j, r]`` for ``j`` in ``[j_lo, j_hi]``; ``W`` is read off
    resample_poly's own response to impulses (so its filter and alignment are matched exactly, float64 → float32).
    Outputs are split in groups of about 32, each using only the inputs its filter taps reach, which cuts the
    multiply-adds per output from ``j_hi - j_lo + 1`` (180 for 16 → 44.1 kHz) to about 30.

    Returns:
      ``(j_lo, groups, weights)``: group ``(a, b, r0, r1)`` maps inputs ``down*q + j_lo + [a, b)`` to outputs
      ``up*q + [r0, r1)`` with ``weights[g]`` of shape ``(b - a, r1 - r0)``.
    """
    reach = 10 * max(up, down) // up + 2  # input samples the filter reaches on each side (half_len / up)
    offsets = np.arange(-reach - 1, down + reach + 1)
    q0 = -(-(reach + 1) // down) + 1  # margin blocks before the impulse
    w = np.empty((len(offsets), up))
    for k, j in enumerate(offsets):  # w[k, r]: response of output up * q0 + r to input down * q0 + offsets[k]
        x = np.zeros((2 * q0 + 2) * down + reach + 1)
        x[q0 * down + j] = 1.0
        w[k] = scipy.signal.resample_poly(x, up, down)[q0 * up : (q0 + 1) * up]
    used = np.flatnonzero(np.abs(w).max(axis=1) > 0)
    if used[0] == 0 or used[-1] == len(offsets) - 1:
        raise AssertionError(f"resample_poly({up}, {down}) reaches further than {reach} input samples")
    j_lo, w = int(offsets[used[0]]), w[used[0] : used[-1] + 1]
    n_groups = max(1, round(up / 32))
    groups, weights = [], []
    for g in range(n_groups):
        r0, r1 = g * up // n_groups, (g + 1) * up // n_groups
        rows = np.flatnonzero(np.abs(w[:, r0:r1]).max(axis=1) > 0)
        a, b = (int(rows[0]), int(rows[-1]) + 1) if rows.size else (0, 1)
        groups.append((a, b, r0, r1))
        weights.append(np.ascontiguousarray(w[a:b, r0:r1], np.float32))
    return j_lo, tuple(groups), tuple(weights)


def _resample(x: jax.Array, weights: tuple[jax.Array, ...], *, up: int, down: int, j_lo: int,
              groups: tuple[tuple[int, int, int, int], ...], n_out: int) -> jax.Array:
    """First ``n_out`` samples of ``resample_poly(x, up, down)`` for ``x (clips, samples)`` (``_resample_plan``)."""
    n_blocks = -(-n_out // up)
    span = -(-max(b for _, b, _, _ in groups) // down)  # input blocks one output block reaches
    left = -j_lo
    x = jnp.pad(x, [(0, 0), (left, max(0, (n_blocks + span - 1) * down - left - x.shape[1]))])
    blocks = x[:, : (n_blocks + span - 1) * down].reshape(x.shape[0], n_blocks + span - 1, down)
    # windows[:, q] holds inputs down*q + j_lo + [0, span*down)
    windows = jnp.concatenate([blocks[:, k : k + n_blocks] for k in range(span)], axis=-1)
    parts = [jnp.matmul(windows[..., a:b], w) for (a, b, _, _), w in zip(groups, weights)]
    return jnp.concatenate(parts, axis=-1).reshape(x.shape[0], n_blocks * up)[:, :n_out]


@functools.partial(jax.jit, static_argnames=("up", "down", "j_lo", "groups", "n_out", "blocks"))
def _front_end_batch(x: jax.Array, n44: jax.Array, n_frames: jax.Array, weights: tuple[jax.Array, ...],
                     window: jax.Array, mel_t: jax.Array, dct: jax.Array, *, up: int, down: int, j_lo: int,
                     groups: tuple[tuple[int, int, int, int], ...], n_out: int,
                     blocks: tuple[tuple[int, int, int, int], ...]) -> jax.Array:
    """Front-end MFCCs ``(clips, frames, n_mfcc)`` of zero-padded clips ``x (clips, samples)`` at the input rate.

    Each clip is resampled (``up == down == 1``: as is), zeroed from its own resampled length ``n44`` on, and its
    top_db peak is taken over its first ``n_frames`` frames, so padding does not change any result.
    """
    if up != 1 or down != 1:
        x = _resample(x, weights, up=up, down=down, j_lo=j_lo, groups=groups, n_out=n_out)
    x = jnp.where(jnp.arange(x.shape[1]) < n44[:, None], x, 0.0)
    return _mel_path(x, 0, window, mel_t, dct, n_frames, size=x.shape[0], blocks=blocks, n_fft=FRONT_END["n_fft"],
                     hop=FRONT_END["hop_length"], center=True, pad_mode="constant", power=2.0, top_db=80.0,
                     log=True)[0]


def _bucket_frames(frames: int) -> int:
    """Padded frame count for a clip of ``frames`` frames: the next of 32 · 2^(k/4) (rounded up to 8)."""
    k = max(0, math.ceil(4 * math.log2(max(frames, 1) / 32) - 1e-9))
    return 8 * math.ceil(32 * 2 ** (k / 4) / 8)


_CLIP_BATCH = 32


def _rate_ratio(to_rate: int, from_rate: int) -> tuple[int, int]:
    """``(up, down)``: ``resample_poly``'s factors from ``from_rate`` to ``to_rate`` (Hz), in lowest terms."""
    g = math.gcd(to_rate, from_rate)
    return to_rate // g, from_rate // g


def _front_end_frames(samples: int, up: int, down: int) -> tuple[int, int]:
    """``(resampled length, MFCC frames)`` of a clip of ``samples`` at the front end's rate (``up / down``)."""
    n44 = -(-samples * up // down)
    return n44, 1 + n44 // FRONT_END["hop_length"]


def clip_mfccs(clips: Sequence[np.ndarray], sample_rate: int = SAMPLE_RATE) -> list[np.ndarray]:
    """Front-end MFCCs of clips of any lengths: each equals ``mfcc(resample_poly(clip), **FRONT_END)`` alone.

    Each clip (int16/int32 PCM or float in [-1, 1], shape ``(samples,)``) is resampled from ``sample_rate`` to
    ``MFCC_SAMPLE_RATE`` as ``scipy.signal.resample_poly`` does (the same filter, as jitted block matrix products,
    float32: ``_resample_plan``; on the host with scipy for rate pairs whose matrices would be too large). Clips are
    grouped into length buckets (frame counts 32 · 2^(k/4)), zero-padded and run in jitted batches of 32;
    ``top_db`` is taken over each clip's own frames.

    Returns:
      one float32 ``(40, frames)`` array per clip, ``frames = 1 + n44 // 512`` with ``n44 = ceil(samples * 44100 /
      sample_rate)`` the resampled length.
    """
    _check_positive_int(sample_rate=sample_rate)
    up, down = _rate_ratio(MFCC_SAMPLE_RATE, sample_rate)
    signals = [_as_clip(c) for c in clips]
    if up * (up + down + 20 * max(up, down) // up) > _MAX_RESAMPLE_WEIGHTS:
        signals = [scipy.signal.resample_poly(s, up, down).astype(np.float32) for s in signals]
        up = down = 1
    j_lo, groups, weights = _resample_plan(up, down) if up != 1 or down != 1 else (0, (), ())
    n_fft, hop = FRONT_END["n_fft"], FRONT_END["hop_length"]
    fb, blocks = _mel_setup(MFCC_SAMPLE_RATE, n_fft, FRONT_END["n_mels"], 0.0, None, False, "slaney")
    dct = _dct_matrix(FRONT_END["n_mels"], FRONT_END["n_mfcc"], 2, "ortho", 0.0)
    window = _window("hann", n_fft, n_fft)
    sizes = [_front_end_frames(len(s), up, down) for s in signals]
    n44, n_frames = [n for n, _ in sizes], [t for _, t in sizes]
    buckets: dict[int, list[int]] = {}
    for i, t in enumerate(n_frames):
        buckets.setdefault(_bucket_frames(t), []).append(i)
    # Batches run on the thread pool (XLA:CPU uses one core per call; two calls run in parallel). A bucket's last
    # partial batch moves up into the next bucket rather than being padded with empty clips.
    jobs: list[tuple[int, list[int]]] = []
    carried: list[int] = []
    for n, (frames, idx) in enumerate(sorted(buckets.items())):
        carried += idx
        ready = len(carried) if n == len(buckets) - 1 else len(carried) // _CLIP_BATCH * _CLIP_BATCH
        jobs += [(frames, carried[i : min(i + _CLIP_BATCH, ready)]) for i in range(0, ready, _CLIP_BATCH)]
        carried = carried[ready:]

    def run(job: tuple[int, list[int]]) -> list[np.ndarray]:
        frames, chunk = job
        n_out = frames * hop - 1  # the longest resampled signal with 1 + n_out // hop == frames
        batch = np.zeros((_CLIP_BATCH, n_out * down // up), np.float32)  # the longest input that fits n_out
        lengths44 = np.zeros(_CLIP_BATCH, np.int32)
        valid = np.ones(_CLIP_BATCH, np.int32)
        for row, i in enumerate(chunk):
            batch[row, : len(signals[i])] = signals[i]
            lengths44[row], valid[row] = n44[i], n_frames[i]
        res = np.asarray(_front_end_batch(batch, lengths44, valid, weights, window, fb.T, dct, up=up, down=down,
                                          j_lo=j_lo, groups=groups, n_out=n_out, blocks=blocks))
        return [np.ascontiguousarray(res[row, : n_frames[i]].T) for row, i in enumerate(chunk)]

    out: list[np.ndarray] = [np.empty(0)] * len(signals)
    for (_, chunk), results in zip(jobs, _POOL.map(run, jobs)):
        for i, mfcc in zip(chunk, results):
            out[i] = mfcc
    return out


_PITCH_BATCH = 8192  # frames per jitted YIN call (one compiled shape)


@functools.partial(jax.jit, static_argnames=("min_period", "max_period"))
def _pitch_batch(frames: jax.Array, *, min_period: int, max_period: int) -> jax.Array:
    """``(f0 Hz, periodicity, RMS)`` stacked ``(3, frames)`` of ``PITCH`` frames ``(frames, frame_length)``; the RMS
    is over the samples YIN's difference function sums over (each frame's first ``PITCH["win_length"]``)."""
    f0, periodicity = _yin_frames(frames, float(SAMPLE_RATE), PITCH["win_length"], min_period, max_period,
                                  PITCH["trough_threshold"])
    return jnp.stack([f0, periodicity, jnp.sqrt(jnp.mean(jnp.square(frames[:, : PITCH["win_length"]]), axis=-1))])


def _pitch_rows(f0: np.ndarray, periodicity: np.ndarray, rms: np.ndarray) -> np.ndarray:
    """One clip's ``clip_pitch`` rows ``(2, frames)`` from its frames' YIN f0, periodicity and RMS."""
    loud = rms >= rms.max() * 10.0 ** (-PITCH_FLOOR_DB / 20.0)
    voiced = np.flatnonzero(loud & (periodicity >= PITCH_VOICING) & (rms > 0))
    frames = np.arange(len(f0))
    if voiced.size:  # a running median over 5 voiced frames removes lone octave jumps
        log_f0 = np.interp(frames, voiced, scipy.signal.medfilt(np.log2(f0[voiced]), 5) if voiced.size >= 5
                           else np.log2(f0[voiced]))
    else:
        log_f0 = np.full(len(f0), 0.5 * math.log2(PITCH["fmin"] * PITCH["fmax"]))
    return np.stack([log_f0, np.where(loud, periodicity, 0.0)]).astype(np.float32)


def clip_pitch(clips: Sequence[np.ndarray], sample_rate: int = SAMPLE_RATE) -> list[np.ndarray]:
    """Pitch rows of clips of any lengths, one frame per ``clip_mfccs`` frame (centred at ``t * 512 / 44100`` s).

    Each clip (as ``clip_mfccs`` takes it; other rates are resampled to ``SAMPLE_RATE`` first) is cut into
    ``PITCH["frame_length"]``-sample frames centred on the MFCC frames (zeros beyond the clip's ends; as
    ``librosa.yin`` centres its frames, so YIN's difference function sums over the 32 ms before each centre), and
    ``_yin_frames`` gives each frame's f0 and periodicity (frames of all clips in jitted batches of
    ``_PITCH_BATCH``, run in parallel on the thread pool). A frame is voiced when it is within ``PITCH_FLOOR_DB`` of
    the clip's loudest frame (RMS over YIN's window) and its periodicity is at least ``PITCH_VOICING``; the voiced
    frames' log f0 goes through a running median of 5.

    Returns:
      one float32 ``(PITCH_ROWS, frames)`` array per clip, ``frames`` as ``clip_mfccs``'s: row 0 is log2 f0 (Hz)
      on voiced frames, linearly interpolated across the others (held at the ends; ``log2 sqrt(fmin * fmax)``
      throughout a clip without voiced frames); row 1 is the periodicity (YIN's 1 - normalised difference, in
      [0, 1]) of frames within ``PITCH_FLOOR_DB`` of the loudest, 0 elsewhere.
    """
    _check_positive_int(sample_rate=sample_rate)
    signals = [_as_clip(c) for c in clips]
    n_frames = [_front_end_frames(len(s), *_rate_ratio(MFCC_SAMPLE_RATE, sample_rate))[1] for s in signals]
    if sample_rate != SAMPLE_RATE:
        up, down = _rate_ratio(SAMPLE_RATE, sample_rate)
        signals = [scipy.signal.resample_poly(s, up, down).astype(np.float32) for s in signals]
    length, half = PITCH["frame_length"], PITCH["frame_length"] // 2
    min_period, max_period = _check_yin_args(SAMPLE_RATE, PITCH["fmin"], PITCH["fmax"], length, PITCH["win_length"],
                                             PITCH["trough_threshold"])
    step = FRONT_END["hop_length"] * SAMPLE_RATE / MFCC_SAMPLE_RATE  # samples between frame centres
    taps = np.arange(length)
    # Batches of _PITCH_BATCH frames, each a list of (clip, first frame, frames) pieces, run on the thread pool as
    # clip_mfccs's are (each thread cuts its own frames, so at most _THREADS batches are in memory).
    jobs: list[list[tuple[int, int, int]]] = []
    filled = 0
    for i, n in enumerate(n_frames):
        done = 0
        while done < n:
            if filled == 0:
                jobs.append([])
            take = min(n - done, _PITCH_BATCH - filled)
            jobs[-1].append((i, done, take))
            filled, done = (filled + take) % _PITCH_BATCH, done + take

    def run(job: list[tuple[int, int, int]]) -> np.ndarray:
        frames = np.zeros((_PITCH_BATCH, length), np.float32)
        row = 0
        for i, first, take in job:
            padded = np.concatenate([np.zeros(half, np.float32), signals[i], np.zeros(length, np.float32)])
            starts = np.rint(np.arange(first, first + take) * step).astype(np.int64)  # in ``padded``
            frames[row:row + take] = padded[starts[:, None] + taps]
            row += take
        return np.asarray(_pitch_batch(frames, min_period=min_period, max_period=max_period))[:, :row]

    results = list(_POOL.map(run, jobs))
    values = np.concatenate(results, axis=1) if results else np.zeros((3, 0), np.float32)
    bounds = np.cumsum([0, *n_frames])
    return [_pitch_rows(*values[:, a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
