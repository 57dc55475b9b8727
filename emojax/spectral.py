"""Spectral features in pure ``jax.numpy``, matching ``librosa`` 0.11 (same keyword names, defaults and layouts).

``stft`` → ``|·|**power`` → mel filterbank (``melspectrogram``) → ``power_to_db`` → DCT (``mfcc``), and ``delta``
(``librosa.feature.delta`` with ``mode="nearest"``). The window, the filterbank and the DCT matrix are built once per
parameter set on the host in float64 (cached; ``emojax.filters``) and applied in float32; the signal path is
float32 and runs under ``jax.jit``, ``jax.vmap`` and ``jax.grad``. Leading batch axes are allowed everywhere; the
``top_db`` floor is taken per clip (over the last two axes), never across a batch. Parity with librosa is within
1e-6 of the largest value per clip (tests/test_features.py: 1e-5).

How the jitted path is fast on CPU (numbers in BENCHMARKS.md): frames are cut without a gather (reshape into
``gcd(n_fft, hop)`` blocks, strided slices, stack), clips are processed a few at a time in a ``lax.map`` loop (so the
frames and their FFT stay in cache), and the mel filterbank, which is banded, is applied as a handful of dense
blocks instead of one mostly-zero matrix. XLA:CPU runs a call's FFTs on one core, so eager calls on concrete CPU
input split the batch into one part per core, run by threads (``_POOL``, which the front end's batches use too;
under an outer ``jit`` the batch is one call).
"""

from __future__ import annotations

import concurrent.futures
import functools
import math
import os
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import scipy.signal

from emojax.filters import _check_positive_int, _dct_matrix, _mel_setup, _window

__all__ = ["stft", "melspectrogram", "power_to_db", "mfcc", "delta"]

_PAD_MODES = ("constant", "edge", "reflect", "symmetric")
# Performance knobs of the jitted path, chosen by measurement on the 2-core CPU (see BENCHMARKS.md; the filterbank's
# blocks: emojax.filters._SEGMENT_COST):
_CHUNK_FRAMES = 512  # frames per lax.map step: one step's FFT buffers stay in cache (1024: 1.2-1.6x slower, all: 2.5x)
# XLA:CPU runs an executable's FFTs on one core and does not overlap independent loops (measured), but two threads
# calling it on different parts of a batch do run in parallel: eager calls on concrete CPU input are split this way,
# and clip_mfccs and clip_pitch run their batches on the same pool.
_THREADS = min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=_THREADS, thread_name_prefix="emojax-features")


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
                                             "top_db", "log", "amin"))
def _mel_path(y: jax.Array, start: jax.Array, window: jax.Array, mel_t: jax.Array, out_t: jax.Array | None,
              n_valid: jax.Array | None, *, size: int, blocks: tuple[tuple[int, int, int, int], ...], n_fft: int,
              hop: int, center: bool, pad_mode: str, power: float, top_db: float | None,
              log: bool, amin: float = 1e-10) -> tuple[jax.Array, jax.Array]:
    """Mel spectrogram (``log=False``) or MFCCs (``log=True``: dB, then ``@ out_t``) of clips ``start:start+size``.

    Args:
      y: clips ``(..., samples)``, taken as ``(clips, samples)``; start: first clip (int scalar); size: clips.
      n_valid: ``(clips,)``, when given, limits each clip's top_db peak to its first ``n_valid`` frames.
      amin: the floor on the mel power before the dB (``power_to_db``'s; librosa's 1e-10 by default).

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
    return jnp.matmul(_db(mel, 1.0, amin, top_db, n_valid), out_t), finite


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
