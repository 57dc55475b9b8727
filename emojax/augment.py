"""On-device augmentation of normalised input windows (pure ``jax.numpy``, jit-safe, per example).

Every function takes a PRNG key and a batch of inputs ``{name: (B, R, frames)}`` (``input_pipeline.Inputs``: the
MFCC rows and, with pitch, the pitch rows of the same frames) and returns a new batch in which every input of an
example is transformed alike (the same crop, the same masked frames); the trainer derives the keys from (seed,
epoch, step), so augmentation is deterministic.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Batch = dict[str, jnp.ndarray]


def random_crop(key: jax.Array, x: Batch, frames: int) -> Batch:
    """Crop every input of each example to the same ``frames`` frames at a uniformly random start.

    x: ``{name: (B, R, W)}`` with W >= frames -> ``{name: (B, R, frames)}``.
    """
    batch, width = next(iter(x.values())).shape[::2]
    if width < frames:
        raise ValueError(f"cannot crop {frames} frames out of windows of {width}")
    starts = jax.random.randint(key, (batch,), 0, width - frames + 1)

    def crop(rows: jnp.ndarray) -> jnp.ndarray:
        return jax.vmap(lambda row, start: jax.lax.dynamic_slice(row, (0, start), (row.shape[0], frames)))(
            rows, starts)

    return {name: crop(rows) for name, rows in x.items()}


def _masks(key: jax.Array, batch: int, size: int, count: int, max_width: int) -> jnp.ndarray:
    """(batch, size) bool: the union of ``count`` random bands of width 0..max_width per example."""
    width_key, start_key = jax.random.split(key)
    widths = jax.random.randint(width_key, (batch, count, 1), 0, max_width + 1)
    starts = jax.random.randint(start_key, (batch, count, 1), 0, size) - widths // 2
    positions = jnp.arange(size)[None, None, :]
    return ((positions >= starts) & (positions < starts + widths)).any(axis=1)


def spec_augment(key: jax.Array, x: Batch, *, freq_masks: int, max_freq_width: int, time_masks: int,
                 max_time_width: int) -> Batch:
    """SpecAugment-style masking (Park et al. 2019) of input windows: masked values become 0 (the mean).

    x: ``{"mfcc": (B, H, W), ...}`` -> the same shapes with, per example, ``freq_masks`` bands of up to
    ``max_freq_width`` MFCC coefficients and ``time_masks`` bands of up to ``max_time_width`` frames set to zero;
    the masked frames are masked in every input (other inputs, such as the pitch rows, are masked in time only).
    """
    batch, height, width = x["mfcc"].shape
    freq_key, time_key = jax.random.split(key)
    in_time = jnp.zeros((batch, 1, width), bool)
    if time_masks:
        in_time = _masks(time_key, batch, width, time_masks, max_time_width)[:, None, :]
    in_freq = jnp.zeros((batch, height, 1), bool)
    if freq_masks:
        in_freq = _masks(freq_key, batch, height, freq_masks, max_freq_width)[:, :, None]
    return {name: jnp.where((in_freq | in_time) if name == "mfcc" else in_time, jnp.zeros((), rows.dtype), rows)
            for name, rows in x.items()}
