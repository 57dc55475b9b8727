"""On-device augmentation: crops are windows of the input, masks are bands of zeros, mixup is convex."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from emojax import augment


def _batch(batch: int = 6, height: int = 10, width: int = 40) -> jnp.ndarray:
    """Values that identify their position: x[b, h, w] = 1 + b * 10_000 + h * 100 + w (never 0)."""
    b, h, w = np.meshgrid(np.arange(batch), np.arange(height), np.arange(width), indexing="ij")
    return jnp.asarray(1 + b * 10_000 + h * 100 + w, jnp.float32)


def test_random_crop_takes_a_window_of_each_example():
    x = _batch()
    out = np.asarray(augment.random_crop(jax.random.PRNGKey(0), x, 16))
    assert out.shape == (6, 10, 16)
    starts = []
    for b in range(6):
        start = int(out[b, 0, 0] - 1 - b * 10_000)
        np.testing.assert_array_equal(out[b], np.asarray(x)[b, :, start:start + 16])
        starts.append(start)
    assert len(set(starts)) > 1  # the start differs between examples
    with pytest.raises(ValueError, match="cannot crop 41 frames"):
        augment.random_crop(jax.random.PRNGKey(0), x, 41)


def test_spec_augment_zeroes_whole_bands_only():
    x = _batch(batch=32)
    out = np.asarray(augment.spec_augment(jax.random.PRNGKey(1), x, freq_masks=1, max_freq_width=3, time_masks=2,
                                          max_time_width=5))
    zero = out == 0
    np.testing.assert_array_equal(out[~zero], np.asarray(x)[~zero])  # the rest is untouched
    for b in range(32):
        rows = zero[b].all(axis=1)  # frequency bands are zero over all frames
        cols = zero[b].all(axis=0)
        np.testing.assert_array_equal(zero[b], rows[:, None] | cols[None, :])
        assert rows.sum() <= 3 and cols.sum() <= 10
    assert zero.any(axis=(1, 2)).mean() > 0.5  # most examples got a mask


def test_spec_augment_frequency_bands_stay_in_freq_rows():
    """Rows from ``freq_rows`` on (pitch rows) are only ever masked in time."""
    x = _batch(batch=64, height=12)
    out = np.asarray(augment.spec_augment(jax.random.PRNGKey(2), x, freq_masks=2, max_freq_width=4, time_masks=0,
                                          max_time_width=0, freq_rows=10))
    zero = out == 0
    assert zero[:, :10].any() and not zero[:, 10:].any()
    whole = np.asarray(augment.spec_augment(jax.random.PRNGKey(2), x, freq_masks=2, max_freq_width=4, time_masks=0,
                                            max_time_width=0))
    assert (whole == 0)[:, 10:].any()  # without freq_rows, bands reach every row


def test_mixup_blends_inputs_and_targets_with_the_same_weight():
    x = _batch(batch=8)
    targets = jax.nn.one_hot(jnp.arange(8) % 4, 4)
    mixed_x, mixed_t = augment.mixup(jax.random.PRNGKey(2), x, targets, 0.4)
    mixed_t = np.asarray(mixed_t)
    np.testing.assert_allclose(mixed_t.sum(axis=1), 1.0, rtol=1e-6)
    lam = mixed_t[np.arange(8), np.arange(8) % 4]  # the own class's weight (partners have other classes)
    assert np.all((lam >= 0) & (lam <= 1)) and lam.std() > 0
    expected = lam[:, None, None] * np.asarray(x) + (1 - lam[:, None, None]) * np.roll(np.asarray(x), 1, axis=0)
    np.testing.assert_allclose(np.asarray(mixed_x), expected, rtol=1e-5)
