"""On-device augmentation: crops are windows of the input, masks are bands of zeros, and every input of an example
(MFCC and pitch rows) gets the same crop and the same masked frames."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from emojax import augment


def _batch(batch: int = 6, height: int = 10, width: int = 40) -> dict[str, jnp.ndarray]:
    """Values that identify their position: x[b, h, w] = 1 + b * 10_000 + h * 100 + w (never 0); pitch rows are
    the negatives of rows 0 and 1."""
    b, h, w = np.meshgrid(np.arange(batch), np.arange(height), np.arange(width), indexing="ij")
    mfcc = jnp.asarray(1 + b * 10_000 + h * 100 + w, jnp.float32)
    return {"mfcc": mfcc, "pitch": -mfcc[:, :2]}


def test_random_crop_takes_the_same_window_of_every_input_of_an_example():
    x = _batch()
    out = jax.tree.map(np.asarray, augment.random_crop(jax.random.PRNGKey(0), x, 16))
    assert out["mfcc"].shape == (6, 10, 16) and out["pitch"].shape == (6, 2, 16)
    starts = []
    for b in range(6):
        start = int(out["mfcc"][b, 0, 0] - 1 - b * 10_000)
        np.testing.assert_array_equal(out["mfcc"][b], np.asarray(x["mfcc"])[b, :, start:start + 16])
        np.testing.assert_array_equal(out["pitch"][b], np.asarray(x["pitch"])[b, :, start:start + 16])
        starts.append(start)
    assert len(set(starts)) > 1  # the start differs between examples
    with pytest.raises(ValueError, match="cannot crop 41 frames"):
        augment.random_crop(jax.random.PRNGKey(0), x, 41)


def test_spec_augment_zeroes_whole_bands_only():
    x = _batch(batch=32)
    out = augment.spec_augment(jax.random.PRNGKey(1), {"mfcc": x["mfcc"]}, freq_masks=1, max_freq_width=3,
                               time_masks=2, max_time_width=5)["mfcc"]
    out = np.asarray(out)
    zero = out == 0
    np.testing.assert_array_equal(out[~zero], np.asarray(x["mfcc"])[~zero])  # the rest is untouched
    for b in range(32):
        rows = zero[b].all(axis=1)  # frequency bands are zero over all frames
        cols = zero[b].all(axis=0)
        np.testing.assert_array_equal(zero[b], rows[:, None] | cols[None, :])
        assert rows.sum() <= 3 and cols.sum() <= 10
    assert zero.any(axis=(1, 2)).mean() > 0.5  # most examples got a mask


def test_spec_augment_masks_pitch_rows_in_time_only_and_in_the_same_frames():
    x = _batch(batch=64, height=12)
    out = jax.tree.map(np.asarray, augment.spec_augment(jax.random.PRNGKey(2), x, freq_masks=2, max_freq_width=4,
                                                        time_masks=1, max_time_width=8))
    mfcc_frames = (out["mfcc"] == 0).all(axis=1)  # (B, W): frames masked in every MFCC row
    pitch_zero = out["pitch"] == 0
    np.testing.assert_array_equal(pitch_zero, np.broadcast_to(mfcc_frames[:, None], pitch_zero.shape))
    assert mfcc_frames.any() and ((out["mfcc"] == 0).any(axis=2) & ~mfcc_frames.any(axis=1)[:, None]).any()
