"""emojax.features: parity with librosa, batching, jit/vmap/grad, input errors, load_audio, clip_mfccs."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import librosa
import numpy as np
import pytest
import scipy.fft
import scipy.signal
import soundfile

from emojax import features, filters

# The three parameter sets of the parity contract (librosa keyword names).
PARAMS = {
    "librosa-defaults": dict(sr=22050),
    "16k-512": dict(sr=16000, n_fft=512, hop_length=160, n_mels=64, n_mfcc=40),
    "htk-unnormalised": dict(sr=22050, htk=True, mel_norm=None),
}
RTOL = 1e-5  # max|emojax - librosa| <= RTOL * max|librosa|, per clip


def _mel_kwargs(params: dict) -> dict:
    """melspectrogram keywords of an mfcc parameter set (``mel_norm`` is the filterbank's ``norm``)."""
    kw = {k: v for k, v in params.items() if k not in ("n_mfcc", "mel_norm")}
    kw["norm"] = params.get("mel_norm", "slaney")
    return kw


def _speech_like(sr: int, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Harmonic source with a wandering pitch contour, formant-ish filtering, syllable envelope and noise."""
    t = np.arange(int(seconds * sr)) / sr
    f0 = rng.uniform(100, 220) * (1 + 0.2 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t) + 0.1 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    source = sum(np.sin(k * phase) / k for k in range(1, 30) if k * f0.max() < sr / 2)
    b, a = scipy.signal.iirpeak(rng.uniform(500, 900), 5, fs=sr)
    voiced = scipy.signal.lfilter(b, a, source)
    envelope = np.clip(np.sin(2 * np.pi * rng.uniform(2, 5) * t), 0, None) ** 2
    return 0.3 * voiced / np.abs(voiced).max() * envelope + 1e-3 * rng.standard_normal(t.size)


def _generated(sr: int, seconds: float = 1.5) -> np.ndarray:
    """``(6, samples)`` float32: tone, chord, chirp, white noise, two speech-like signals."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sr)) / sr
    clips = [
        0.5 * np.sin(2 * np.pi * 440 * t),
        0.2 * (np.sin(2 * np.pi * 220 * t) + np.sin(2 * np.pi * 277 * t) + np.sin(2 * np.pi * 3300 * t)),
        0.4 * scipy.signal.chirp(t, 50, t[-1], 0.45 * sr, method="logarithmic"),
        0.1 * rng.standard_normal(t.size),
        _speech_like(sr, seconds, rng),
        _speech_like(sr, seconds, rng),
    ]
    return np.stack(clips).astype(np.float32)


def _assert_close(got: np.ndarray, want: np.ndarray, what: str) -> None:
    assert got.shape == want.shape, f"{what}: shape {got.shape} != librosa's {want.shape}"
    err = np.abs(got.astype(np.result_type(got, np.float64)) - want).max() / np.abs(want).max()
    assert err <= RTOL, f"{what}: max error {err:.2e} x max|librosa| > {RTOL}"


def _check_parity(clips: np.ndarray, params: dict, names: list[str]) -> None:
    """Batched emojax vs librosa clip by clip, for mfcc, melspectrogram and power_to_db."""
    mel = np.asarray(features.melspectrogram(clips, **_mel_kwargs(params)))
    db = np.asarray(features.power_to_db(mel))
    mfcc = np.asarray(features.mfcc(clips, **params))
    for i, name in enumerate(names):
        want_mel = librosa.feature.melspectrogram(y=clips[i], **_mel_kwargs(params))
        _assert_close(mel[i], want_mel, f"melspectrogram[{name}]")
        _assert_close(db[i], librosa.power_to_db(mel[i]), f"power_to_db[{name}]")
        _assert_close(mfcc[i], librosa.feature.mfcc(y=clips[i], **params), f"mfcc[{name}]")


@pytest.mark.parametrize("params", PARAMS.values(), ids=PARAMS.keys())
def test_parity_with_librosa_on_generated_signals(params: dict) -> None:
    clips = _generated(params["sr"])
    _check_parity(clips, params, ["tone", "chord", "chirp", "noise", "speech-like-1", "speech-like-2"])


@pytest.mark.parametrize("params", PARAMS.values(), ids=PARAMS.keys())
def test_parity_with_librosa_on_real_speech(params: dict, samples_dir: Path) -> None:
    """Every corpus sample, resampled to the parameter set's rate; the middle 1.5 s so that one batch holds all."""
    paths = sorted(p for p in samples_dir.rglob("*") if p.is_file())
    assert paths, f"no files in {samples_dir}"
    length = int(1.5 * params["sr"])
    clips = []
    for path in paths:
        y, _ = features.load_audio(path, params["sr"])
        start = (len(y) - length) // 2
        clips.append(y[start : start + length])
    _check_parity(np.stack(clips), params, [p.name for p in paths])


def test_stft_matches_librosa() -> None:
    y = _generated(16000)[4]
    for kw in (dict(n_fft=512, hop_length=160), dict(n_fft=400, hop_length=100, win_length=300, window="hamming"),
               dict(n_fft=256, center=False), dict(n_fft=512, pad_mode="reflect")):
        want = librosa.stft(y, **kw)
        got = np.asarray(features.stft(y, **kw))
        assert got.dtype == np.complex64
        _assert_close(got, want, f"stft{kw}")


@pytest.mark.parametrize("htk", [False, True])
@pytest.mark.parametrize("norm", ["slaney", None])
def test_mel_filterbank_matches_librosa_and_is_cached(htk: bool, norm: str | None) -> None:
    kw = dict(sr=16000, n_fft=512, n_mels=40, fmin=20.0, fmax=7600.0, htk=htk, norm=norm)
    fb = features.mel_filterbank(**kw)
    want = librosa.filters.mel(**kw)
    assert fb.dtype == np.float32 and fb.shape == (40, 257)
    np.testing.assert_array_max_ulp(fb, want, maxulp=1)
    assert features.mel_filterbank(**kw) is fb, "the filterbank is rebuilt on every call"
    assert not fb.flags.writeable


def test_constants_are_built_once_per_parameter_set() -> None:
    y = _generated(8000, 0.5)[0]
    kw = dict(sr=8000, n_fft=256, n_mels=24, n_mfcc=12, fmax=3999.0)
    features.mfcc(y, **kw)
    caches = (filters._mel_filterbank, filters._dct_matrix, filters._window)
    misses = [c.cache_info().misses for c in caches]
    features.mfcc(y, **kw)
    features.mfcc(y * 0.5, **kw)
    assert [c.cache_info().misses for c in caches] == misses


def test_batch_axes_and_per_clip_top_db() -> None:
    """Any leading axes in one call; a quiet clip next to a loud one keeps its own 80 dB floor."""
    clips = _generated(8000, 1.0)[:4]
    clips[1] *= 0.1  # 20 dB quieter than clip 0: a floor across the batch would be 20 dB too high for it
    batch = clips.reshape(2, 2, -1)
    got = np.asarray(features.mfcc(batch, sr=8000, n_fft=256, hop_length=64, n_mels=32))
    assert got.shape == (2, 2, 20, 1 + clips.shape[-1] // 64)
    alone = np.stack([np.asarray(features.mfcc(c, sr=8000, n_fft=256, hop_length=64, n_mels=32)) for c in clips])
    np.testing.assert_allclose(got.reshape(alone.shape), alone, rtol=0, atol=1e-5 * np.abs(alone).max())
    # librosa's floor is global: stacking the clips changes the quiet one, ours does not.
    across = librosa.feature.mfcc(y=clips[:2], sr=8000, n_fft=256, hop_length=64, n_mels=32)[1]
    assert np.abs(across - alone[1]).max() > 1.0
    mel = np.asarray(features.melspectrogram(clips[:2], sr=8000, n_fft=256, hop_length=64, n_mels=32))
    db = np.asarray(features.power_to_db(mel))
    assert db[1].max() - db[1].min() == pytest.approx(80.0, abs=1e-3)


def test_fewer_coefficients_are_the_first_rows() -> None:
    y = _generated(16000)[4]
    full = np.asarray(features.mfcc(y, sr=16000, n_mfcc=40))
    np.testing.assert_array_equal(np.asarray(features.mfcc(y, sr=16000, n_mfcc=25)), full[:25])


def test_lifter_and_dct_variants_match_librosa() -> None:
    y = _generated(16000)[5]
    for kw in (dict(lifter=22), dict(dct_type=3, norm=None), dict(dct_type=1, norm="ortho", n_mfcc=13)):
        _assert_close(np.asarray(features.mfcc(y, sr=16000, **kw)), librosa.feature.mfcc(y=y, sr=16000, **kw),
                      f"mfcc{kw}")


def test_jit_vmap_grad() -> None:
    """Also with enough frames per clip that the batch is processed in chunks (lax.map)."""
    clips = jnp.asarray(_generated(8000, 1.0)[3:])
    kw = dict(sr=8000, n_fft=256, hop_length=32, n_mels=32, n_mfcc=13)
    eager = np.asarray(features.mfcc(clips, **kw))
    for c in range(3):
        np.testing.assert_allclose(eager[c], features.mfcc(clips[c], **kw), rtol=0, atol=1e-5 * np.abs(eager).max())
    jitted = jax.jit(lambda y: features.mfcc(y, **kw))(clips)
    np.testing.assert_allclose(jitted, eager, rtol=0, atol=1e-5 * np.abs(eager).max())
    mapped = jax.vmap(lambda y: features.mfcc(y, **kw))(clips)
    np.testing.assert_allclose(mapped, eager, rtol=0, atol=1e-5 * np.abs(eager).max())
    grad = jax.grad(lambda y: jnp.sum(features.mfcc(y, **kw)[..., 1:, :] ** 2))(clips)
    assert grad.shape == clips.shape and bool(jnp.all(jnp.isfinite(grad))) and float(jnp.abs(grad).max()) > 0


BAD_INPUTS = {
    "empty signal": (np.zeros(0, np.float32), {}, "empty"),
    "int16 signal": (np.zeros(4000, np.int16), {}, "floating-point"),
    "short signal uncentered": (np.zeros(1000, np.float32), dict(center=False), "shorter than n_fft"),
    "nan sample": (np.array([0.0, np.nan] * 2000, np.float32), {}, "NaN"),
    "inf sample": (np.array([0.0, np.inf] * 2000, np.float32), {}, "infinite"),
    "nan in the last clip of a batch": (np.array([[0.0] * 4000] * 4 + [[np.nan] * 4000], np.float32), {}, "NaN"),
    "n_mfcc > n_mels": (np.zeros(4000, np.float32), dict(n_mfcc=40, n_mels=32), "n_mfcc=40"),
    "fmax above nyquist": (np.zeros(4000, np.float32), dict(fmax=12000.0), "Nyquist"),
    "zero n_fft": (np.zeros(4000, np.float32), dict(n_fft=0), "n_fft"),
    "negative hop": (np.zeros(4000, np.float32), dict(hop_length=-5), "hop_length"),
    "zero n_mels": (np.zeros(4000, np.float32), dict(n_mels=0), "n_mels"),
    "negative n_mfcc": (np.zeros(4000, np.float32), dict(n_mfcc=-1), "n_mfcc"),
    "win_length > n_fft": (np.zeros(4000, np.float32), dict(win_length=4096), "win_length"),
    "negative top_db": (np.zeros(4000, np.float32), dict(top_db=-1.0), "top_db"),
    "bad pad_mode": (np.zeros(4000, np.float32), dict(pad_mode="wrap"), "pad_mode"),
}


@pytest.mark.parametrize(("y", "kwargs", "message"), BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_input_raises_value_error(y: np.ndarray, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        features.mfcc(y, sr=22050, **kwargs)


def test_nan_check_is_skipped_under_jit_but_shape_checks_are_not() -> None:
    f = jax.jit(lambda y: features.mfcc(y, sr=8000, n_fft=256, n_mels=32))
    assert np.isnan(np.asarray(f(jnp.full(1000, jnp.nan)))).any()
    with pytest.raises(ValueError, match="shorter than n_fft"):
        jax.jit(lambda y: features.mfcc(y, sr=8000, n_fft=256, n_mels=32, center=False))(jnp.zeros(100))


# ---------------------------------------------------------------------------------------------------------------
# load_audio
# ---------------------------------------------------------------------------------------------------------------


def _tone(sr: int, seconds: float = 0.5, channels: int = 1) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    y = 0.5 * np.sin(2 * np.pi * 440 * t)
    return np.stack([y, -0.5 * y][:channels], axis=1) if channels > 1 else y


@pytest.mark.parametrize(("name", "fmt", "subtype"), [
    ("int16.wav", "WAV", "PCM_16"), ("int32.wav", "WAV", "PCM_32"), ("float.wav", "WAV", "FLOAT"),
    ("clip.flac", "FLAC", "PCM_16"), ("clip.ogg", "OGG", "VORBIS"), ("opus.ogg", "OGG", "OPUS"),
    ("aiff-inside.wav", "AIFF", "PCM_16"),
])
def test_load_audio_formats(tmp_path: Path, name: str, fmt: str, subtype: str) -> None:
    want = _tone(16000)
    soundfile.write(tmp_path / name, want, 16000, format=fmt, subtype=subtype)
    y, sr = features.load_audio(tmp_path / name)
    assert sr == 16000 and y.dtype == np.float32 and y.shape == want.shape
    if subtype in ("VORBIS", "OPUS"):  # lossy and phase-shifting: compare the spectrum's peak and the level
        assert np.abs(np.fft.rfft(y)).argmax() == np.abs(np.fft.rfft(want)).argmax()
        assert np.std(y) == pytest.approx(np.std(want), rel=0.1)
    else:
        assert np.abs(y - want).max() < 1e-4


def test_load_audio_stereo_to_mono_and_resampling(tmp_path: Path) -> None:
    stereo = _tone(16000, channels=2) + np.array([0.2, 0.4])
    soundfile.write(tmp_path / "stereo.wav", stereo, 16000, subtype="FLOAT")
    y, _ = features.load_audio(tmp_path / "stereo.wav")
    np.testing.assert_allclose(y, stereo.mean(axis=1), atol=1e-6)

    soundfile.write(tmp_path / "96k.wav", _tone(96000), 96000, subtype="PCM_16")
    y, sr = features.load_audio(tmp_path / "96k.wav", sample_rate=16000)
    assert sr == 16000 and y.shape == (8000,) and y.dtype == np.float32
    want = scipy.signal.resample_poly(soundfile.read(tmp_path / "96k.wav")[0], 1, 6)
    np.testing.assert_allclose(y, want, atol=1e-5)
    assert np.abs(y).max() <= 1.0


def test_to_int16_rounds_and_clips_like_pcm16_files(tmp_path: Path) -> None:
    y = np.array([-1.5, -1.0, -0.5, 0.0, 0.49 / 32768, 0.51 / 32768, 0.5, 1.0, 2.0], np.float32)
    expected = [-32768, -32768, -16384, 0, 0, 1, 16384, 32767, 32767]
    assert features.to_int16(y).dtype == np.int16 and features.to_int16(y).tolist() == expected
    # A 16-bit file reads back (as float in [-1, 1)) to the same integers.
    pcm = np.array([-32768, -3, 0, 5, 32767], np.int16)
    soundfile.write(tmp_path / "x.wav", pcm, 16000, subtype="PCM_16")
    assert features.to_int16(features.load_audio(tmp_path / "x.wav")[0]).tolist() == pcm.tolist()


def test_load_audio_bad_files_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.wav"
    with pytest.raises(FileNotFoundError) as info:
        features.load_audio(missing)
    assert info.value.filename == str(missing)

    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "text.wav").write_text("not audio at all\n" * 10)
    soundfile.write(tmp_path / "full.wav", _tone(16000), 16000, subtype="PCM_16")
    data = (tmp_path / "full.wav").read_bytes()
    (tmp_path / "truncated.wav").write_bytes(data[: len(data) // 2])
    soundfile.write(tmp_path / "full.flac", _tone(16000), 16000, format="FLAC")
    data = (tmp_path / "full.flac").read_bytes()
    (tmp_path / "truncated.flac").write_bytes(data[: len(data) // 2])
    soundfile.write(tmp_path / "no-samples.wav", np.zeros(0), 16000)
    for name in ("empty.wav", "text.wav", "truncated.wav", "truncated.flac", "no-samples.wav"):
        with pytest.raises(ValueError, match=name):
            features.load_audio(tmp_path / name)


def test_load_audio_reads_every_corpus_sample(samples_dir: Path) -> None:
    for path in sorted(p for p in samples_dir.rglob("*") if p.is_file()):
        y, sr = features.load_audio(path, features.SAMPLE_RATE)
        assert sr == features.SAMPLE_RATE and y.ndim == 1 and y.size > features.SAMPLE_RATE
        assert y.dtype == np.float32 and np.abs(y).max() <= 1.0


# ---------------------------------------------------------------------------------------------------------------
# The front end
# ---------------------------------------------------------------------------------------------------------------


def _front_end_reference(y: np.ndarray) -> np.ndarray:
    """The front end's MFCCs of a 44.1 kHz signal, composed of the librosa-API pieces: ``mfcc(y, **FRONT_END)`` with
    ``power_to_db``'s floor at ``FRONT_END_AMIN``."""
    c = features.FRONT_END
    mel = features.melspectrogram(y, sr=c["sr"], n_fft=c["n_fft"], hop_length=c["hop_length"], n_mels=c["n_mels"])
    log_mel = np.asarray(features.power_to_db(mel, amin=features.FRONT_END_AMIN, top_db=80.0), np.float64)
    return scipy.fft.dct(log_mel, type=2, norm="ortho", axis=-2)[: c["n_mfcc"]]


def test_clip_mfccs_equals_mfcc_of_each_clip_alone() -> None:
    """Three length buckets; a quiet clip shares its bucket (and batch) with a loud one: no top_db leak."""
    rng = np.random.default_rng(1)
    lengths = [1, 700, 15000, 16000, 23456]
    clips = [(_speech_like(16000, n / 16000 + 0.01, rng)[:n] * 32767).astype(np.int16) for n in lengths]
    clips[2] = (clips[2] // 1000).astype(np.int16)
    got = features.clip_mfccs(clips)
    assert len(got) == len(clips)
    for clip, mfcc in zip(clips, got, strict=True):
        y = scipy.signal.resample_poly(clip / 32768.0, 441, 160).astype(np.float32)
        assert mfcc.shape == (40, 1 + len(y) // 512) and mfcc.dtype == np.float32
        want = _front_end_reference(y)
        if np.abs(clip).max() > 3000:  # above -20 dBFS the floor is never reached: librosa's mfcc itself
            np.testing.assert_allclose(want, features.mfcc(y, **features.FRONT_END), atol=1e-4 * np.abs(want).max())
        np.testing.assert_allclose(mfcc, want, rtol=0, atol=1e-4 * np.abs(want).max())


def test_a_gain_moves_only_c0_by_a_constant_down_to_very_quiet_recordings() -> None:
    """Speech-like audio with pauses of digital silence, peak -20 dBFS, at gains from +20 to -80 dB: c0 moves by the
    gain times sqrt(n_mels) / ... (a constant per clip), every other coefficient stays (``FRONT_END_AMIN``)."""
    rng = np.random.default_rng(5)
    speech = _speech_like(16000, 1.0, rng)
    y = np.concatenate([np.zeros(8000), speech, np.zeros(12000), speech]).astype(np.float32)
    y *= 0.1 / np.abs(y).max()
    gains_db = (20.0, -30.0, -60.0, -80.0)
    reference, *scaled = features.clip_mfccs([y] + [y * np.float32(10 ** (g / 20)) for g in gains_db])
    for gain, mfcc in zip(gains_db, scaled):
        shift = mfcc[0] - reference[0]
        np.testing.assert_allclose(shift, shift.mean(), atol=1e-2, err_msg=f"{gain} dB")
        assert shift.mean() == pytest.approx(gain * np.sqrt(features.FRONT_END["n_mels"]), rel=1e-3)
        np.testing.assert_allclose(mfcc[1:], reference[1:], atol=1e-2, err_msg=f"{gain} dB")


@pytest.mark.parametrize("rate", [48000, 8000, 24414])  # 24,414 Hz (TESS): resampled by scipy on the host
def test_clip_mfccs_other_rates_match_resample_poly(rate: int) -> None:
    rng = np.random.default_rng(2)
    clips = [_speech_like(rate, seconds, rng).astype(np.float32) for seconds in (1.0, 1.1)]
    got = features.clip_mfccs(clips, sample_rate=rate)
    g = np.gcd(rate, 44100)
    for clip, mfcc in zip(clips, got, strict=True):
        y = scipy.signal.resample_poly(clip, 44100 // g, rate // g).astype(np.float32)
        want = _front_end_reference(y)
        assert mfcc.shape == want.shape
        np.testing.assert_allclose(mfcc, want, rtol=0, atol=1e-4 * np.abs(want).max())


def test_clip_mfccs_rejects_bad_clips() -> None:
    with pytest.raises(ValueError, match="NaN"):
        features.clip_mfccs([np.zeros(1000, np.float32), np.full(1000, np.nan, np.float32)])
    with pytest.raises(ValueError, match="non-empty 1-D"):
        features.clip_mfccs([np.zeros(0, np.float32)])
    with pytest.raises(ValueError, match="non-empty 1-D"):
        features.clip_mfccs([np.zeros((2, 1000), np.float32)])


def test_clip_mfccs_float_input_and_44k_rate() -> None:
    y = _generated(44100, 1.0)[4]
    (got,) = features.clip_mfccs([y], sample_rate=44100)
    want = np.asarray(features.mfcc(y, **features.FRONT_END))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * np.abs(want).max())
    assert got.shape == (40, 1 + 44100 // 512)


@pytest.mark.parametrize("width, order", [(9, 1), (9, 2), (5, 1), (3, 2)])
def test_delta_matches_librosa(width: int, order: int) -> None:
    data = np.random.default_rng(order).normal(size=(2, 25, 60)).astype(np.float32).cumsum(axis=-1)
    want = librosa.feature.delta(data, width=width, order=order, mode="nearest")
    got = jax.jit(lambda d: features.delta(d, width=width, order=order))(data)
    _assert_close(np.asarray(got), want, f"delta(width={width}, order={order})")
    # Any axis: time first.
    np.testing.assert_allclose(features.delta(np.swapaxes(data, 1, 2), width=width, order=order, axis=1),
                               np.swapaxes(want, 1, 2), rtol=1e-4, atol=1e-4 * np.abs(want).max())


@pytest.mark.parametrize("kwargs, message", [(dict(width=4), "odd integer >= 3"), (dict(width=1), "odd integer"),
                                             (dict(order=0), "order must be a positive integer"),
                                             (dict(width=3, order=3), "order must be smaller than width")])
def test_delta_rejects_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        features.delta(np.zeros((3, 20), np.float32), **kwargs)


def _harmonic_tone(f0: float | np.ndarray, sr: int, seconds: float, harmonics: int = 6) -> np.ndarray:
    """A voice-like periodic signal: ``harmonics`` partials of falling amplitude at ``f0`` (Hz, per sample or one)."""
    n = int(sr * seconds)
    phase = 2 * np.pi * np.cumsum(np.broadcast_to(np.asarray(f0, np.float64), (n,))) / sr
    return (0.3 * sum(np.sin(k * phase) / k for k in range(1, harmonics + 1))).astype(np.float32)


@pytest.mark.parametrize("f0", [95.0, 150.0, 220.5, 410.0])
def test_yin_finds_the_period_of_tones_and_agrees_with_librosa(f0: float) -> None:
    kw = dict(fmin=60, fmax=600, sr=16000, frame_length=1024, hop_length=160)
    y = _harmonic_tone(f0, 16000, 1.0)
    got = np.asarray(features.yin(y, **kw))
    want = librosa.yin(y, **kw)
    assert got.shape == want.shape and got.dtype == np.float32
    inner = slice(4, -4)  # frames whose window lies inside the tone (the ends see the zero padding)
    np.testing.assert_allclose(got[inner], f0, rtol=1e-3)
    np.testing.assert_allclose(got[inner], want[inner], rtol=3e-3)  # librosa's estimate is biased by ~0.1 %
    # Batch axes and jit.
    batch = np.stack([y, _harmonic_tone(2 * f0 if 2 * f0 < 600 else f0 / 2, 16000, 1.0)])
    got2 = np.asarray(jax.jit(lambda b: features.yin(b, **kw))(batch))
    np.testing.assert_allclose(got2[0], got, rtol=1e-5)


def test_yin_follows_a_gliding_pitch() -> None:
    sr = 16000
    track = np.linspace(120.0, 240.0, sr)  # one octave up over a second
    f0 = np.asarray(features.yin(_harmonic_tone(track, sr, 1.0), fmin=60, fmax=600, sr=sr, frame_length=1024,
                                 hop_length=160))
    # As in librosa, frame t is centred at t * 160, and the difference function sums over its first half
    # (win_length = 512 samples), which is centred 256 samples earlier.
    analysed = np.arange(len(f0)) * 160 - 256
    inner = slice(4, -4)
    np.testing.assert_allclose(f0[inner], track[analysed[inner]], rtol=0.01)


@pytest.mark.parametrize("kwargs, message", [
    (dict(fmin=0, fmax=500), "0 < fmin < fmax"), (dict(fmin=300, fmax=200), "0 < fmin < fmax"),
    (dict(fmin=60, fmax=9000), "fmax <= sr / 2"), (dict(fmin=60, fmax=500, trough_threshold=1.5), "trough_threshold"),
    (dict(fmin=60, fmax=500, frame_length=512, win_length=480), "raise frame_length")])
def test_yin_rejects_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        features.yin(np.zeros(4000, np.float32), sr=16000, **{"frame_length": 1024, **kwargs})


def test_clip_pitch_on_the_mfcc_frames() -> None:
    """A tone, a tone with a silent gap, silence and noise, of different lengths, in one call."""
    sr = 16000
    tone = _harmonic_tone(180.0, sr, 1.2)
    gap = tone.copy()
    gap[6000:11000] = 0.0
    gap[11000:] = _harmonic_tone(240.0, sr, 1.2)[11000:]
    silence = np.zeros(9000, np.float32)
    noise = (0.1 * np.random.default_rng(0).standard_normal(13000)).astype(np.float32)
    clips = [tone, gap, silence, noise]
    got = features.clip_pitch(clips)
    for clip, pitch, mfcc in zip(clips, got, features.clip_mfccs(clips), strict=True):
        assert pitch.shape == (features.PITCH_ROWS, mfcc.shape[1]) and pitch.dtype == np.float32
    inner = slice(5, -5)
    np.testing.assert_allclose(2 ** got[0][0, inner], 180.0, rtol=2e-3)
    assert (got[0][1, inner] > 0.95).all()
    # The gap: silent frames have periodicity 0 and log f0 interpolated between 180 and 240 Hz.
    seconds = np.arange(got[1].shape[1]) * 512 / 44100
    silent = (seconds > 6000 / sr + 0.04) & (seconds < 11000 / sr - 0.04)
    assert (got[1][1, silent] == 0).all()
    assert np.all(np.diff(got[1][0, silent]) >= 0)
    assert 2 ** got[1][0, silent].min() >= 179 and 2 ** got[1][0, silent].max() <= 241
    np.testing.assert_allclose(2 ** got[1][0, seconds > 11000 / sr + 0.05][:-5], 240.0, rtol=2e-3)
    # No voiced frame: log2 sqrt(fmin * fmax) throughout; silence also has periodicity 0.
    np.testing.assert_allclose(got[2][0], 0.5 * np.log2(features.PITCH["fmin"] * features.PITCH["fmax"]))
    assert (got[2][1] == 0).all()
    assert (got[3][1] < features.PITCH_VOICING).mean() > 0.95  # white noise is not periodic


def test_clip_pitch_of_clips_split_across_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clips cut across several jitted batches (run on the thread pool) get the rows each gets alone."""
    sr = 16000
    glide = _harmonic_tone(np.linspace(120.0, 300.0, sr), sr, 1.0)
    clips = [_harmonic_tone(110.0 + 40.0 * k, sr, 0.3 + 0.2 * k) for k in range(5)] + [glide]
    alone = [features.clip_pitch([clip])[0] for clip in clips]
    monkeypatch.setattr("emojax.pitch._PITCH_BATCH", 16)  # the clips above have 26-95 frames each
    together = features.clip_pitch(clips)
    for want, got in zip(alone, together, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_clip_pitch_int16_and_other_rates() -> None:
    pcm = (_harmonic_tone(200.0, 16000, 1.0) * 32767).astype(np.int16)
    (from_pcm,) = features.clip_pitch([pcm])
    (from_48k,) = features.clip_pitch([_harmonic_tone(200.0, 48000, 1.0)], sample_rate=48000)
    assert from_48k.shape == from_pcm.shape  # the same MFCC frames (1 + ceil(n * 44100 / rate) // 512)
    np.testing.assert_allclose(2 ** from_pcm[0, 5:-5], 200.0, rtol=2e-3)
    np.testing.assert_allclose(2 ** from_48k[0, 5:-5], 200.0, rtol=2e-3)
    with pytest.raises(ValueError, match="NaN"):
        features.clip_pitch([np.full(1000, np.nan, np.float32)])
