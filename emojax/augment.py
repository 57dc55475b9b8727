"""On-device augmentation of normalised MFCC windows (pure ``jax.numpy``, jit-safe, per example).

All functions take a PRNG key and a batch ``x`` (B, n_mfcc, frames) float and return a new batch; the
trainer derives their keys from (seed, epoch, step), so augmentation is deterministic.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def random_crop(key: jax.Array, x: jnp.ndarray, frames: int) -> jnp.ndarray:
    """Crop each example to ``frames`` frames at a uniformly random start.

    x: (B, H, W) with W >= frames -> (B, H, frames).
    """
    batch, height, width = x.shape
    if width < frames:
        raise ValueError(f"cannot crop {frames} frames out of windows of {width}")
    starts = jax.random.randint(key, (batch,), 0, width - frames + 1)
    return jax.vmap(lambda row, start: jax.lax.dynamic_slice(row, (0, start), (height, frames)))(x, starts)


def _masks(key: jax.Array, batch: int, size: int, count: int, max_width: int) -> jnp.ndarray:
    """(batch, size) bool: the union of ``count`` random bands of width 0..max_width per example."""
    width_key, start_key = jax.random.split(key)
    widths = jax.random.randint(width_key, (batch, count, 1), 0, max_width + 1)
    starts = jax.random.randint(start_key, (batch, count, 1), 0, size) - widths // 2
    positions = jnp.arange(size)[None, None, :]
    return ((positions >= starts) & (positions < starts + widths)).any(axis=1)


def spec_augment(key: jax.Array, x: jnp.ndarray, *, freq_masks: int, max_freq_width: int, time_masks: int,
                 max_time_width: int, freq_rows: int | None = None) -> jnp.ndarray:
    """SpecAugment-style masking (Park et al. 2019) of MFCC windows: masked values become 0 (the mean).

    x: (B, H, W) -> (B, H, W) with, per example, ``freq_masks`` bands of up to ``max_freq_width``
    coefficients (among the first ``freq_rows`` rows, default all H; rows below them, such as pitch rows, are
    only masked in time) and ``time_masks`` bands of up to ``max_time_width`` frames set to zero.
    """
    batch, height, width = x.shape
    freq_key, time_key = jax.random.split(key)
    masked = jnp.zeros((batch, height, width), bool)
    if freq_masks:
        rows = height if freq_rows is None else freq_rows
        band = _masks(freq_key, batch, rows, freq_masks, max_freq_width)
        masked |= jnp.pad(band, ((0, 0), (0, height - rows)))[:, :, None]
    if time_masks:
        masked |= _masks(time_key, batch, width, time_masks, max_time_width)[:, None, :]
    return jnp.where(masked, jnp.zeros((), x.dtype), x)


def mixup(key: jax.Array, x: jnp.ndarray, targets: jnp.ndarray, alpha: float) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Mixup (Zhang et al. 2018): each example is blended with the next one in the (randomly ordered) batch.

    x: (B, H, W), targets: (B, C) probabilities -> both blended with a weight ``lam ~ Beta(alpha, alpha)``
    per example, ``lam * own + (1 - lam) * next``.
    """
    lam = jax.random.beta(key, alpha, alpha, (x.shape[0],))
    mixed_x = lam[:, None, None] * x + (1 - lam[:, None, None]) * jnp.roll(x, 1, axis=0)
    mixed_t = lam[:, None] * targets + (1 - lam[:, None]) * jnp.roll(targets, 1, axis=0)
    return mixed_x.astype(x.dtype), mixed_t
