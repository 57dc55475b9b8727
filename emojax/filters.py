"""Filter constructors: the mel filterbank, the DCT matrix and the STFT window (as ``librosa.filters``).

These are the constant matrices the jitted signal path (``emojax.spectral``) applies: each is built once per
parameter set on the host, in numpy and float64, rounded to float32, made read-only and cached (``lru_cache``), so a
jitted call only multiplies by it. The mel filterbank is banded, and ``_mel_setup`` also returns the dense blocks
(``_mel_blocks``) it is applied as. ``mel_filterbank`` matches ``librosa.filters.mel`` to 1 ulp.
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.fft
import scipy.signal

__all__ = ["mel_filterbank"]

# How the banded filterbank is cut into dense blocks (``_mel_blocks``), chosen by measurement on the 2-core CPU (see
# BENCHMARKS.md; ``benchmarks/features.py --sweep``):
_SEGMENT_COST = 4096  # multiply-adds per frame charged per filterbank block (512-8192 within 10 %; dense mel: 2x)


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
