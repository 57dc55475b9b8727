"""The emojax front end: MFCCs of many clips of any lengths (``clip_mfccs``), as the reference system computed them.

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
taken over its own frames, so every result equals ``mfcc`` of the resampled clip alone. ``clip_pitch``
(``emojax.pitch``) gives the same frames their pitch rows.

This module also re-exports the public names of ``emojax.audio`` (loading and conversion), ``emojax.filters``
(``mel_filterbank``), ``emojax.spectral`` (librosa-style ``stft`` ... ``mfcc``, ``delta``) and ``emojax.pitch`` (``yin``, ``clip_pitch``), so that
``from emojax import features`` reaches the whole front end.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import scipy.signal

from emojax.audio import (FRAME_HOP, INT16_SCALE, MFCC_SAMPLE_RATE, SAMPLE_RATE, AudioFileError, _as_clip,
                          _front_end_frames, _rate_ratio, load_audio, resample, to_int16, to_mono)
from emojax.filters import _check_positive_int, _dct_matrix, _mel_setup, _window, mel_filterbank
from emojax.pitch import PITCH, PITCH_FLOOR_DB, PITCH_ROWS, PITCH_VOICING, clip_pitch, yin
from emojax.spectral import _POOL, _mel_path, delta, melspectrogram, mfcc, power_to_db, stft

__all__ = [
    # The front end; its time grid (MFCC_SAMPLE_RATE, FRAME_HOP) is defined in emojax.audio.
    "MFCC_SAMPLE_RATE", "FRAME_HOP", "FRONT_END", "FRONT_END_AMIN", "clip_mfccs", "clip_peaks", "clip_frames",
    "segment_samples", "segment_mfccs",
    # Re-exported from emojax.audio, emojax.filters, emojax.spectral and emojax.pitch.
    "SAMPLE_RATE", "INT16_SCALE", "AudioFileError", "load_audio", "to_mono", "resample", "to_int16",
    "stft", "mel_filterbank", "melspectrogram", "power_to_db", "mfcc", "delta",
    "PITCH", "PITCH_VOICING", "PITCH_ROWS", "PITCH_FLOOR_DB", "yin", "clip_pitch",
]

FRONT_END = dict(sr=MFCC_SAMPLE_RATE, n_mfcc=40, n_fft=2048, hop_length=FRAME_HOP, n_mels=128)
"""``mfcc`` keyword arguments of the emojax front end (librosa defaults otherwise, but ``FRONT_END_AMIN``)."""
FRONT_END_AMIN = 1e-20
"""The front end's floor on the mel power before the dB (librosa's ``power_to_db`` floors at 1e-10, -100 dB). The
``top_db`` floor, 80 dB below the clip's loudest band, is relative and moves with a gain; an absolute floor does not:
with 1e-10, a recording with a -45 dBFS peak made 30 dB quieter has its quiet frames at -100 dB instead of 80 dB below
its peak, so its MFCCs change by more than the gain (72 of 300 CREMA-D test clips). At 1e-20 (-200 dB) the floor
is out of reach of any audible recording, so a gain moves c0 alone; above it both give the same values."""
_TOP_DB = 80.0  # dB kept below each clip's loudest mel band (librosa's power_to_db default)
_CLIP_BATCH = 32  # clips per jitted front-end call (one per core at a time)
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


@functools.partial(jax.jit, static_argnames=("up", "down", "j_lo", "groups", "n_out", "blocks", "peaks"))
def _front_end_batch(x: jax.Array, n44: jax.Array, n_frames: jax.Array, weights: tuple[jax.Array, ...],
                     window: jax.Array, mel_t: jax.Array, dct: jax.Array, *, up: int, down: int, j_lo: int,
                     groups: tuple[tuple[int, int, int, int], ...], n_out: int,
                     blocks: tuple[tuple[int, int, int, int], ...], peaks: bool = False) -> jax.Array:
    """Front-end MFCCs ``(clips, frames, n_mfcc)`` of zero-padded clips ``x (clips, samples)`` at the input rate, or
    with ``peaks`` their top_db peaks ``(clips,)`` in dB.

    Each clip is resampled (``up == down == 1``: as is), zeroed from its own resampled length ``n44`` on, and its
    top_db peak is taken over its first ``n_frames`` frames, so padding does not change any result.
    """
    if up != 1 or down != 1:
        x = _resample(x, weights, up=up, down=down, j_lo=j_lo, groups=groups, n_out=n_out)
    x = jnp.where(jnp.arange(x.shape[1]) < n44[:, None], x, 0.0)
    mel = _mel_path(x, 0, window, mel_t, None if peaks else dct, n_frames, size=x.shape[0], blocks=blocks,
                    n_fft=FRONT_END["n_fft"], hop=FRONT_END["hop_length"], center=True, pad_mode="constant",
                    power=2.0, top_db=None if peaks else _TOP_DB, log=not peaks, amin=FRONT_END_AMIN)[0]
    if not peaks:
        return mel
    return _valid_peak(_mel_db(mel), n_frames)


def _mel_db(mel: jax.Array) -> jax.Array:
    """The front end's dB of mel powers (``FRONT_END_AMIN`` floor, no ``top_db``)."""
    return 10.0 * jnp.log10(jnp.maximum(FRONT_END_AMIN, mel))


def _valid_peak(db: jax.Array, n_frames: jax.Array) -> jax.Array:
    """The largest value ``(clips,)`` of ``db (clips, frames, bands)`` over each clip's first ``n_frames`` frames."""
    valid = jnp.arange(db.shape[1]) < n_frames[:, None]
    return jnp.max(jnp.where(valid[..., None], db, -jnp.inf), axis=(1, 2))


def segment_samples(frames: int) -> int:
    """The 16 kHz samples a clip's first ``frames`` front-end frames depend on: up to the last frame's window end
    (``n_fft / 2`` past its centre) at 44.1 kHz, plus the resampling filter's reach."""
    up, down = _rate_ratio(MFCC_SAMPLE_RATE, SAMPLE_RATE)
    end = (frames - 1) * FRONT_END["hop_length"] + FRONT_END["n_fft"] // 2  # 44.1 kHz samples
    return -(-end * down // up) + 10 * max(up, down) // up + 2


def clip_frames(samples: jax.Array) -> jax.Array:
    """The front-end frames of clips of ``samples`` 16 kHz samples, as ``clip_mfccs`` gives them (any int array)."""
    return _front_end_frames(samples, *_rate_ratio(MFCC_SAMPLE_RATE, SAMPLE_RATE))[1]


def segment_mfccs(x: jax.Array, lengths: jax.Array, frames: int, peak_db: jax.Array | None = None) -> jax.Array:
    """Front-end MFCCs of the first ``frames`` frames of a batch of clips, jittable: the train step's front end.

    Args:
      x: ``(B, S)`` float32 samples at 16 kHz, each clip zero from its length on.
      lengths: ``(B,)`` int, each clip's samples (at most S).
      frames: frames to compute (static).
      peak_db: ``(B,)`` each clip's ``top_db`` reference (``clip_peaks`` of the whole clip); None, or NaN for a clip:
        the loudest mel band over the segment's own frames.

    Returns:
      ``(B, n_mfcc, frames)`` float32. With ``S >= segment_samples(frames)`` (the clip's samples beyond S cut off) and
      the whole clip's ``peak_db``, equal to ``clip_mfccs(clip)[:, :frames]`` to float32 round-off; frames past the
      clip's end are computed from zeros, as ``clip_mfccs`` of a longer clip would.
    """
    up, down = _rate_ratio(MFCC_SAMPLE_RATE, SAMPLE_RATE)
    j_lo, groups, weights = _resample_plan(up, down)
    n_fft, hop = FRONT_END["n_fft"], FRONT_END["hop_length"]
    end = (frames - 1) * hop + n_fft // 2  # the resampled samples the frames read
    y = _resample(jnp.asarray(x, jnp.float32), tuple(jnp.asarray(w) for w in weights), up=up, down=down, j_lo=j_lo,
                  groups=groups, n_out=end)
    n44, _ = _front_end_frames(jnp.asarray(lengths), up, down)
    y = jnp.where(jnp.arange(end) < n44[:, None], y, 0.0)
    fb, blocks = _mel_setup(MFCC_SAMPLE_RATE, n_fft, FRONT_END["n_mels"], 0.0, None, False, "slaney")
    dct = _dct_matrix(FRONT_END["n_mels"], FRONT_END["n_mfcc"], 2, "ortho", 0.0)
    mel = _mel_path(y, 0, _window("hann", n_fft, n_fft), fb.T, None, None, size=y.shape[0], blocks=blocks,
                    n_fft=n_fft, hop=hop, center=True, pad_mode="constant", power=2.0, top_db=None, log=False,
                    amin=FRONT_END_AMIN)[0][:, :frames]
    db = _mel_db(mel)
    own = _valid_peak(db, jnp.minimum(1 + n44 // hop, frames))
    peak = own if peak_db is None else jnp.where(jnp.isnan(peak_db), own, jnp.asarray(peak_db, jnp.float32))
    db = jnp.maximum(db, peak[:, None, None] - _TOP_DB)
    return jnp.swapaxes(jnp.matmul(db, dct), 1, 2)


def _bucket_frames(frames: int) -> int:
    """Padded frame count for a clip of ``frames`` frames: the next of 32 · 2^(k/4) (rounded up to 8)."""
    k = max(0, math.ceil(4 * math.log2(max(frames, 1) / 32) - 1e-9))
    return 8 * math.ceil(32 * 2 ** (k / 4) / 8)


def clip_mfccs(clips: Sequence[np.ndarray], sample_rate: int = SAMPLE_RATE) -> list[np.ndarray]:
    """Front-end MFCCs of clips of any lengths: each equals ``mfcc(resample_poly(clip), **FRONT_END)`` alone, with
    the mel power floored at ``FRONT_END_AMIN`` (which changes only bands below -100 dB within ``top_db`` of the
    clip's peak).

    Each clip (int16/int32 PCM or float in [-1, 1], shape ``(samples,)``) is resampled from ``sample_rate`` to
    ``MFCC_SAMPLE_RATE`` as ``scipy.signal.resample_poly`` does (the same filter, as jitted block matrix products,
    float32: ``_resample_plan``; on the host with scipy for rate pairs whose matrices would be too large). Clips are
    grouped into length buckets (frame counts 32 · 2^(k/4)), zero-padded and run in jitted batches of up to 32 (a
    power of two: a single clip is not padded to 32); ``top_db`` is taken over each clip's own frames.

    Returns:
      one float32 ``(40, frames)`` array per clip, ``frames = 1 + n44 // 512`` with ``n44 = ceil(samples * 44100 /
      sample_rate)`` the resampled length.
    """
    return _front_end(clips, sample_rate, peaks=False)


def clip_peaks(clips: Sequence[np.ndarray], sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The loudest mel band of each clip over all its frames, in dB (the front end's ``top_db`` reference: its MFCCs
    floor every band at this minus 80 dB): ``(N,)`` float32, computed as ``clip_mfccs`` computes the MFCCs. With it,
    ``segment_mfccs`` of a clip's first seconds equals its ``clip_mfccs`` there."""
    return np.asarray(_front_end(clips, sample_rate, peaks=True), np.float32)


def _front_end(clips: Sequence[np.ndarray], sample_rate: int, peaks: bool) -> list:
    """``clip_mfccs`` (``peaks=False``: one (40, frames) array per clip) or ``clip_peaks`` (one float per clip)."""
    _check_positive_int(sample_rate=sample_rate)
    up, down = _rate_ratio(MFCC_SAMPLE_RATE, sample_rate)
    signals = [_as_clip(c) for c in clips]
    if up * (up + down + 20 * max(up, down) // up) > _MAX_RESAMPLE_WEIGHTS:
        signals = [resample(s, sample_rate, MFCC_SAMPLE_RATE) for s in signals]
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
        rows = min(_CLIP_BATCH, 1 << (len(chunk) - 1).bit_length())  # few compiled shapes, little padding
        batch = np.zeros((rows, n_out * down // up), np.float32)  # the longest input that fits n_out
        lengths44 = np.zeros(rows, np.int32)
        valid = np.ones(rows, np.int32)
        for row, i in enumerate(chunk):
            batch[row, : len(signals[i])] = signals[i]
            lengths44[row], valid[row] = n44[i], n_frames[i]
        res = np.asarray(_front_end_batch(batch, lengths44, valid, weights, window, fb.T, dct, up=up, down=down,
                                          j_lo=j_lo, groups=groups, n_out=n_out, blocks=blocks, peaks=peaks))
        if peaks:
            return [float(res[row]) for row in range(len(chunk))]
        return [np.ascontiguousarray(res[row, : n_frames[i]].T) for row, i in enumerate(chunk)]

    out: list = [np.empty(0)] * len(signals)
    for (_, chunk), results in zip(jobs, _POOL.map(run, jobs)):
        for i, result in zip(chunk, results):
            out[i] = result
    return out
