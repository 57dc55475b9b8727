"""Pitch: ``yin`` (``librosa.yin``'s f0) and ``clip_pitch``, the front end's per-frame pitch rows.

``yin`` is within 0.3 % of ``librosa.yin`` on periodic frames, and closer to the true f0 on steady tones
(tests/test_features.py). ``clip_pitch`` gives every ``clip_mfccs`` frame (``FRAME_HOP`` samples apart at
``MFCC_SAMPLE_RATE``, from ``emojax.audio``) its pitch: YIN on 64 ms frames of the 16 kHz clip centred on the MFCC
frames (all clips' frames in fixed-size jitted batches), then, per clip on the host, log2 f0 on the voiced frames
(periodic and loud enough), interpolated across the others, and the periodicity.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import scipy.signal

from emojax.audio import FRAME_HOP, MFCC_SAMPLE_RATE, SAMPLE_RATE, _as_clip, _front_end_frames, _rate_ratio, resample
from emojax.filters import _check_positive_int
from emojax.spectral import _PAD_MODES, _POOL, _check_signal, _frames

__all__ = ["PITCH", "PITCH_VOICING", "PITCH_ROWS", "PITCH_FLOOR_DB", "yin", "clip_pitch"]

# ``clip_pitch``: YIN at SAMPLE_RATE on 64 ms frames (lags over the first 32 ms), f0 searched in 60-600 Hz; a frame is
# voiced when its periodicity reaches PITCH_VOICING and its RMS is within PITCH_FLOOR_DB of the clip's loudest frame
# (benchmarks/pitch_voicing.py: on 50 CREMA-D and RAVDESS test clips, 84 % of frames get librosa.pyin's voicing
# decision, and 92.5 % of the frames both call voiced get an f0 within 5 % of pyin's).
PITCH = dict(fmin=60.0, fmax=600.0, frame_length=1024, win_length=512, trough_threshold=0.1)
"""``yin`` keyword arguments of ``clip_pitch`` (at ``SAMPLE_RATE``; ``hop_length`` follows the MFCC frames)."""
PITCH_VOICING = 0.7
"""Periodicity (YIN's 1 - normalised difference) from which a loud enough frame counts as voiced."""
PITCH_ROWS = 2
"""Rows of ``clip_pitch``'s output: log2 f0 and periodicity."""
PITCH_FLOOR_DB = 40.0
"""Frames more than this many dB below the clip's loudest frame (RMS) are unvoiced, with periodicity 0."""
_PITCH_BATCH = 8192  # frames per jitted YIN call (one compiled shape)


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
        signals = [resample(s, sample_rate, SAMPLE_RATE) for s in signals]
    length, half = PITCH["frame_length"], PITCH["frame_length"] // 2
    min_period, max_period = _check_yin_args(SAMPLE_RATE, PITCH["fmin"], PITCH["fmax"], length, PITCH["win_length"],
                                             PITCH["trough_threshold"])
    step = FRAME_HOP * SAMPLE_RATE / MFCC_SAMPLE_RATE  # samples between frame centres
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
