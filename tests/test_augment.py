"""On-device augmentation: crops are windows of the input, masks are bands of zeros, and every input of an example
(MFCC and pitch rows) gets the same crop and the same masked frames; each waveform augmentation draws its parameters
in their ranges (measured on tones, impulses and harmonic clips), keeps padding zero, and is off unless configured."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import default
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


# Waveforms: batches of 8 clips of 0.5 s at 16 kHz, of different lengths, zero beyond them. The augmentations are
# jitted once per static argument, and every test uses the same shapes, so that they compile as few times as can be.
RATE = 16_000
SAMPLES = 8_000
TONES = [500.0 + 250.0 * b for b in range(8)]  # clip b of _tones() by default
TONE_LENGTHS = [SAMPLES - 600 * b for b in range(8)]

_gain = jax.jit(augment.random_gain, static_argnums=2)
_noise = jax.jit(augment.add_noise, static_argnames=("snr_db", "kinds", "babble_talkers"))
_speed = jax.jit(augment.speed_perturb, static_argnums=3)
_pitch = jax.jit(augment.pitch_shift, static_argnums=3)
_reverb = jax.jit(augment.reverberate, static_argnames=("rt60", "drr_db"))
_band_limit = jax.jit(augment.band_limit)
_clip = jax.jit(augment.hard_clip, static_argnums=2)


def _waveform_config(**fields) -> ml_collections.ConfigDict:
    config = default.get_config()
    config.update(fields)
    return config


ALL_ON = _waveform_config(wave_speed=(0.9, 1.1), wave_pitch_semitones=(-2.0, 2.0), wave_reverb_prob=0.5,
                          wave_noise_prob=0.5, wave_telephone_prob=0.5, wave_clip_prob=0.5, wave_gain_db=6.0)
# Under vmap (over a leading axis of one batch), which traces the same function as a plain call.
_augment_all = jax.jit(jax.vmap(lambda key, x, lengths: augment.augment_waveforms(key, x, lengths, ALL_ON)))


def _voices() -> tuple[jnp.ndarray, jnp.ndarray]:
    """(8, SAMPLES) harmonic tones of random pitch, level and length (the first full length), and their lengths."""
    rng = np.random.default_rng(0)
    lengths = rng.integers(SAMPLES // 2, SAMPLES + 1, 8)
    lengths[0] = SAMPLES
    f0 = rng.uniform(100.0, 300.0, (8, 1))
    t = np.arange(SAMPLES) / RATE
    x = sum(np.sin(2 * np.pi * k * f0 * t + k) / k for k in range(1, 8)) * rng.uniform(0.05, 0.3, (8, 1))
    return _cut(x, lengths)


def _tones(freqs: list[float] = TONES, lengths: list[int] = TONE_LENGTHS) -> tuple[jnp.ndarray, jnp.ndarray]:
    """(8, SAMPLES) sines of amplitude 0.5 and these frequencies (Hz), cut at ``lengths``."""
    t = np.arange(SAMPLES) / RATE
    return _cut(0.5 * np.sin(2 * np.pi * np.asarray(freqs)[:, None] * t), np.asarray(lengths))


def _cut(x: np.ndarray, lengths: np.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    x = np.where(np.arange(x.shape[-1]) < lengths[:, None], x, 0.0)
    return jnp.asarray(x, jnp.float32), jnp.asarray(lengths, jnp.int32)


def _power_db(x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """(B,) mean power over each clip's valid samples, dB."""
    return 10 * np.log10((np.asarray(x, np.float64) ** 2).sum(-1) / np.asarray(lengths))


def _frequency(y: np.ndarray) -> float:
    """A sine's frequency (Hz) from its interpolated zero crossings."""
    i = np.flatnonzero(np.signbit(y[:-1]) != np.signbit(y[1:]))
    times = (i + y[i] / (y[i] - y[i + 1])) / RATE
    return (len(times) - 1) / (2 * (times[-1] - times[0]))


def _spectra(noise: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """(B, SAMPLES // 2 + 1) magnitude spectra of each clip's valid samples (Hann window, zero-padded to SAMPLES)."""
    return np.abs(np.stack([np.fft.rfft(n[:length] * np.hanning(length), SAMPLES)
                            for n, length in zip(noise, np.asarray(lengths))]))


def _slope(spectrum: np.ndarray) -> float:
    """Log-log slope of a power spectrum from 100 Hz to 7 kHz: 0 for white noise, -1 for pink."""
    freqs = np.fft.rfftfreq(SAMPLES, 1 / RATE)
    band = (freqs > 100) & (freqs < 7000)
    return np.polyfit(np.log10(freqs[band]), np.log10(spectrum[band] ** 2), 1)[0]


AUGMENTATIONS = {  # (key, x, lengths) -> (x, lengths)
    "gain": lambda key, x, lengths: (_gain(key, x, 6.0), lengths),
    "noise": lambda key, x, lengths: (_noise(key, x, lengths), lengths),
    "speed": lambda key, x, lengths: _speed(key, x, lengths, (0.9, 1.1)),
    "pitch": lambda key, x, lengths: (_pitch(key, x, lengths, (-2.0, 2.0)), lengths),
    "reverb": lambda key, x, lengths: (_reverb(key, x, lengths), lengths),
    "clip": lambda key, x, lengths: (_clip(key, x, (0.0, 20.0)), lengths),
    "all": lambda key, x, lengths: jax.tree.map(lambda a: a[0], _augment_all(key[None], x[None], lengths[None])),
}


@pytest.mark.parametrize("name", AUGMENTATIONS)
def test_waveform_augmentations_are_jittable_deterministic_and_keep_padding_zero(name):
    x, lengths = _voices()
    y, new_lengths = AUGMENTATIONS[name](jax.random.PRNGKey(0), x, lengths)
    again, _ = AUGMENTATIONS[name](jax.random.PRNGKey(0), x, lengths)
    other, _ = AUGMENTATIONS[name](jax.random.PRNGKey(1), x, lengths)
    assert y.shape == x.shape and y.dtype == jnp.float32
    assert new_lengths.shape == lengths.shape and new_lengths.dtype == jnp.int32
    y, new_lengths = np.asarray(y), np.asarray(new_lengths)
    np.testing.assert_array_equal(y, np.asarray(again))
    assert not np.allclose(y, np.asarray(other))
    assert (y[np.arange(SAMPLES) >= new_lengths[:, None]] == 0).all()
    assert np.isfinite(y).all() and (y[np.arange(SAMPLES) < new_lengths[:, None] - 1] != 0).mean() > 0.99
    silent = x.at[6:].set(0.0), lengths.at[7].set(0)  # a silent clip and an empty one stay so
    y, new_lengths = AUGMENTATIONS[name](jax.random.PRNGKey(0), *silent)
    assert (np.asarray(y)[6:] == 0).all() and np.isfinite(np.asarray(y)).all() and int(new_lengths[7]) == 0


def test_random_gain_is_uniform_in_its_range_per_clip():
    x, _ = _voices()
    x = np.tile(np.asarray(x), (4, 1))  # 4 draws of each clip
    gains = np.concatenate([np.asarray(_gain(jax.random.PRNGKey(seed), x[:8], 6.0)) for seed in range(4)])
    gain_db = 20 * np.log10(gains[:, 0] / x[:, 0])
    np.testing.assert_allclose(gains, x * 10 ** (gain_db[:, None] / 20), atol=1e-7)  # one gain a clip
    assert (np.abs(gain_db) <= 6.0 + 1e-4).all() and gain_db.min() < -4 and gain_db.max() > 4


@pytest.mark.parametrize("kind", augment.NOISE_KINDS)
def test_add_noise_sets_the_snr_and_makes_each_kind(kind):
    x, lengths = _tones()
    noise = np.asarray(_noise(jax.random.PRNGKey(0), x, lengths, snr_db=(10.0, 10.0), kinds=(kind,))) - np.asarray(x)
    np.testing.assert_allclose(_power_db(x, lengths) - _power_db(noise, lengths), 10.0, atol=0.01)
    assert (noise[np.arange(SAMPLES) >= np.asarray(lengths)[:, None]] == 0).all()
    spectra = _spectra(noise, lengths)
    if kind == "babble":  # other clips of the batch: their tones, never the clip's own, 3 to 5 of them
        bins = np.round(np.asarray(TONES) * SAMPLES / RATE).astype(int)
        present = spectra[:, bins] > 0.1 * spectra[:, bins].max(axis=1, keepdims=True)
        assert not present[np.arange(8), np.arange(8)].any()
        assert ((present.sum(1) >= 3) & (present.sum(1) <= 5)).all() and len(set(present.sum(1))) > 1
    else:
        power = (spectra ** 2 / (spectra ** 2).sum(1, keepdims=True)).mean(0)
        assert abs(_slope(np.sqrt(power)) - {"white": 0.0, "pink": -1.0}[kind]) < 0.1


def test_add_noise_draws_the_snr_and_the_kind_per_clip():
    x, lengths = _tones()
    noise = np.concatenate([np.asarray(_noise(jax.random.PRNGKey(seed), x, lengths)) - np.asarray(x)
                            for seed in range(2)])
    lengths = np.tile(np.asarray(lengths), 2)
    snr = _power_db(np.tile(np.asarray(x), (2, 1)), lengths) - _power_db(noise, lengths)
    assert (snr > 5.0 - 0.01).all() and (snr < 20.0 + 0.01).all() and np.ptp(snr) > 3.0
    spectra = _spectra(noise, lengths)
    bins = np.round(np.asarray(TONES) * SAMPLES / RATE).astype(int)
    at_tones = (spectra[:, bins[:, None] + np.arange(-3, 4)] ** 2).sum((1, 2)) / (spectra ** 2).sum(1)
    kinds = ["babble" if share > 0.9 else "pink" if _slope(spectrum) < -0.5 else "white"
             for share, spectrum in zip(at_tones, spectra)]
    assert all(share > 0.9 or share < 0.2 for share in at_tones) and len(set(kinds)) == 3
    with pytest.raises(ValueError, match="noise kinds must be distinct names"):
        augment.add_noise(jax.random.PRNGKey(0), x, lengths, kinds=("white", "brown"))
    with pytest.raises(ValueError, match="at least 2 clips"):
        augment.add_noise(jax.random.PRNGKey(0), x[:1], lengths[:1], kinds=("babble",))


def test_speed_perturb_scales_length_and_frequency_by_the_factor():
    x, lengths = _tones([1000.0] * 8, [SAMPLES] * 4 + [7000, 6000, 5000, 4000])
    y, new_lengths = _speed(jax.random.PRNGKey(0), x, lengths, (0.9, 1.1))
    y, new_lengths, lengths = np.asarray(y), np.asarray(new_lengths), np.asarray(lengths)
    for b in range(8):  # the tone's frequency is scaled by the factor, its level kept, its length divided by it
        middle = y[b, 200:new_lengths[b] - 200]
        factor = _frequency(middle) / 1000.0
        assert 0.9 - 1e-3 < factor < 1.1 + 1e-3
        assert abs(new_lengths[b] - min(lengths[b] / factor, SAMPLES)) < 2  # slower full clips are cut
        assert abs(np.sqrt((middle ** 2).mean()) / (0.5 / np.sqrt(2)) - 1) < 0.01
    assert (new_lengths < lengths).any() and (new_lengths[:4] == SAMPLES).any()


def test_speed_perturb_at_one_factor_keeps_the_band_and_low_passes_instead_of_aliasing():
    x, lengths = _tones([1000.0, 6200.0, 7800.0] + TONES[3:], [SAMPLES] * 3 + TONE_LENGTHS[3:])
    y, new_lengths = _speed(jax.random.PRNGKey(0), x, lengths, (1.1, 1.1))
    np.testing.assert_array_equal(np.asarray(new_lengths), np.ceil(np.asarray(lengths) / np.float32(1.1)))
    assert abs(_frequency(np.asarray(y)[0, 200:-1000]) - 1100.0) < 0.5
    gain_db = _power_db(np.asarray(y)[:3, 200:-1000], [SAMPLES - 1200] * 3) - _power_db(x[:3], lengths[:3])
    assert abs(gain_db[1]) < 0.1 and gain_db[2] < -40.0  # 6820 Hz is kept, 8580 Hz (past 8 kHz) is removed


def test_pitch_shift_scales_frequency_by_the_semitones_and_keeps_length_and_level():
    x, lengths = _tones([1000.0] * 8, [SAMPLES] * 4 + [7000, 6000, 5000, 4000])
    for semitones, exact in [((-2.0, 2.0), False), ((3.0, 3.0), True), ((-4.0, -4.0), True)]:
        y = np.asarray(_pitch(jax.random.PRNGKey(0), x, lengths, semitones))
        assert (y[np.arange(SAMPLES) >= np.asarray(lengths)[:, None]] == 0).all()
        ratios = []
        for b, length in enumerate(np.asarray(lengths)):
            middle = y[b, 200:length - 200]
            ratios.append(_frequency(middle) / 1000.0)
            assert abs(np.sqrt((middle ** 2).mean()) / (0.5 / np.sqrt(2)) - 1) < 0.03  # the clip's RMS, edges too
        shifts = 12 * np.log2(ratios)  # semitones
        if exact:
            np.testing.assert_allclose(shifts, semitones[0], atol=0.01)
        else:
            assert (shifts > -2.0 - 0.01).all() and (shifts < 2.0 + 0.01).all() and np.ptp(shifts) > 1.0


def test_phase_vocoder_gives_the_clip_back_at_rate_one_and_stretches_a_tone_keeping_its_pitch():
    x, lengths = _voices()
    same = augment._stretch(x, jnp.ones((8, 1)), SAMPLES)
    same, x = np.asarray(same), np.asarray(x)
    np.testing.assert_allclose(same, x, atol=5e-3)  # peaks of 0.1-0.5
    for b, length in enumerate(np.asarray(lengths)):  # exact but for the last 48 ms before the clip's abrupt end
        np.testing.assert_allclose(same[b, :length - 768], x[b, :length - 768], atol=1e-4)
    tone, _ = _tones([800.0] * 8, [SAMPLES] * 8)
    longer = np.asarray(augment._stretch(tone, jnp.full((8, 1), 1.5), SAMPLES * 3 // 2))
    assert abs(_frequency(longer[0, 400:-400]) - 800.0) < 0.1
    levels = [np.sqrt((longer[0, i:i + 1000] ** 2).mean()) / (0.5 / np.sqrt(2)) for i in range(1000, 10_000, 1000)]
    assert np.ptp(levels) < 0.01 and 0.85 < np.mean(levels) < 1.0  # steady to the end; the onset's phases cost ~9 %


def test_reverberate_draws_rt60_and_direct_to_reverberant_ratio_in_their_ranges():
    impulses = np.zeros((8, SAMPLES), np.float32)
    impulses[:, 0] = 1.0
    y = np.asarray(_reverb(jax.random.PRNGKey(0), jnp.asarray(impulses), jnp.full(8, SAMPLES, jnp.int32),
                           rt60=(0.2, 0.4), drr_db=(0.0, 10.0)), np.float64)  # the responses
    drr = 10 * np.log10(y[:, 0] ** 2 / (y[:, 1:] ** 2).sum(1))
    assert (drr > -0.01).all() and (drr < 10.01).all() and np.ptp(drr) > 1.0
    decay = 10 * np.log10(np.cumsum((y[:, 1:] ** 2)[:, ::-1], axis=1)[:, ::-1])  # Schroeder's energy decay curve
    decay -= decay[:, :1]
    rt60 = []
    for curve in decay:  # -60 dB over the slope fitted from -5 to -25 dB
        fit = (curve < -5) & (curve > -25)
        rt60.append(-60.0 / np.polyfit(np.flatnonzero(fit) / RATE, curve[fit], 1)[0])
    assert (np.asarray(rt60) > 0.2 * 0.9).all() and (np.asarray(rt60) < 0.4 * 1.1).all() and np.ptp(rt60) > 0.03


def test_reverberate_keeps_each_clips_level():
    x, lengths = _voices()
    y = _reverb(jax.random.PRNGKey(0), x, lengths)
    np.testing.assert_allclose(_power_db(y, lengths), _power_db(x, lengths), atol=1e-3)


def test_band_limit_passes_the_telephone_band_only():
    freqs = [100.0, 150.0, 1000.0, 3000.0, 3350.0, 3550.0, 5000.0, 7000.0]
    x, lengths = _tones(freqs, [SAMPLES] * 7 + [5000])
    y = np.asarray(_band_limit(x, lengths))
    assert y.shape == x.shape and y.dtype == np.float32 and (y[7, 5000:] == 0).all()
    gain_db = dict(zip(freqs, _power_db(y[:, 1000:4000], [3000] * 8) - _power_db(x[:, 1000:4000], [3000] * 8)))
    assert all(abs(gain_db[f]) < 0.05 for f in (1000.0, 3000.0, 3350.0))
    assert all(gain_db[f] < -40.0 for f in (100.0, 150.0, 3550.0, 5000.0, 7000.0))


def test_hard_clip_overdrives_to_a_peak_of_one():
    x, _ = _voices()
    y = np.asarray(_clip(jax.random.PRNGKey(0), x, (0.0, 20.0)))
    np.testing.assert_allclose(np.abs(y).max(1), 1.0)
    assert np.ptp((np.abs(y) == 1.0).mean(1)) > 0.3  # the share of clipped samples varies with the drive
    assert ((np.abs(np.asarray(_clip(jax.random.PRNGKey(0), x, (20.0, 20.0)))) == 1.0).mean(1) > 0.4).all()
    unclipped = np.asarray(_clip(jax.random.PRNGKey(0), x, (0.0, 0.0)))
    np.testing.assert_allclose(unclipped, np.asarray(x) / np.abs(np.asarray(x)).max(1, keepdims=True), atol=1e-7)


def test_augment_waveforms_with_every_field_off_returns_its_input_untraced():
    x, lengths = _voices()
    config = default.get_config()
    y, new_lengths = augment.augment_waveforms(jax.random.PRNGKey(0), x, lengths, config)
    assert y is x and new_lengths is lengths
    traced = jax.make_jaxpr(lambda *a: augment.augment_waveforms(*a, config))(jax.random.PRNGKey(0), x, lengths)
    assert {e.primitive.name for e in traced.eqns} <= {"random_split", "random_wrap", "random_unwrap", "threefry2x32",
                                                        "slice", "squeeze"}  # the sub-keys, unused
    gain_only = _waveform_config(wave_gain_db=3.0)
    traced = jax.make_jaxpr(lambda *a: augment.augment_waveforms(*a, gain_only))(jax.random.PRNGKey(0), x, lengths)
    assert "fft" not in str(traced) and "gather" not in str(traced)


def test_augment_waveforms_applies_an_augmentation_to_its_share_of_clips():
    x, lengths = _voices()
    config = _waveform_config(wave_telephone_prob=0.5)
    augmented = jax.jit(lambda key: augment.augment_waveforms(key, x, lengths, config)[0])
    unchanged = np.concatenate([(np.asarray(augmented(jax.random.PRNGKey(seed))) == np.asarray(x)).all(1)
                                for seed in range(4)])
    assert 8 <= unchanged.sum() <= 24


@pytest.mark.parametrize("field, value, message", [
    ("wave_noise_prob", 1.5, "config.wave_noise_prob must be a probability in"),
    ("wave_gain_db", -3.0, "config.wave_gain_db must be a number of dB >= 0"),
    ("wave_speed", (1.1, 0.9), r"config.wave_speed must be a pair \(low, high\) of numbers with 0 < low <= high"),
    ("wave_pitch_semitones", (-13.0, 2.0), "config.wave_pitch_semitones must be a pair .* -12 <= low <= high <= 12"),
    ("wave_reverb_rt60", (0.0, 0.5), "config.wave_reverb_rt60 must be a pair"),
    ("wave_babble_talkers", (0, 3), "config.wave_babble_talkers must be a pair"),
    ("wave_noise_kinds", ("white", "brown"), "config.wave_noise_kinds must be distinct names among"),
])
def test_augment_waveforms_names_a_field_it_cannot_use(field, value, message):
    x, lengths = _voices()
    with pytest.raises(ValueError, match=message):
        augment.augment_waveforms(jax.random.PRNGKey(0), x, lengths, _waveform_config(**{field: value}))
