"""Property-based tests of ``emojax.features`` (hypothesis): random shapes, lengths, parameters, dtypes,
silence, clipping and non-finite samples give either a correct result or a ``ValueError`` with a message.

"Correct" is checked against librosa whenever the call succeeds, with a tolerance loose enough for random
parameters (1e-4 of the clip's largest magnitude) but far below any real error.
"""

from __future__ import annotations

import librosa
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emojax import features

# Few examples, each with its own shapes (an XLA compile each): a broad sweep that stays under ~1 minute.
SETTINGS = settings(max_examples=30, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@st.composite
def signals(draw, valid: bool = True) -> np.ndarray:
    """Float32 1-D signals of 1-3000 samples: noise, tones, silence, clipped or tiny. With ``valid=False`` one
    defect: empty, a NaN/inf sample, or integer PCM."""
    n = draw(st.integers(1, 3000))
    kind = draw(st.sampled_from(["noise", "tone", "silence", "clipped", "tiny"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    t = np.arange(n) / 8000.0
    y = {
        "noise": rng.normal(0, 0.3, n),
        "tone": 0.5 * np.sin(2 * np.pi * draw(st.floats(50, 3900)) * t),
        "silence": np.zeros(n),
        "clipped": np.clip(rng.normal(0, 3.0, n), -1, 1),
        "tiny": rng.normal(0, 1e-7, n),
    }[kind].astype(np.float32)
    if valid:
        return y
    defect = draw(st.sampled_from(["empty", "nan", "inf", "int16"]))
    if defect == "empty":
        return y[:0]
    if defect == "int16":
        return (y * 32767).astype(np.int16)
    y[draw(st.integers(0, n - 1))] = np.nan if defect == "nan" else -np.inf
    return y


@st.composite
def mfcc_params(draw, valid: bool = True) -> dict:
    """Valid parameter sets; with ``valid=False`` one field set to an invalid value."""
    n_mels = draw(st.integers(2, 64))
    params = dict(
        sr=8000,
        n_fft=draw(st.sampled_from([64, 128, 256, 512])),
        hop_length=draw(st.sampled_from([16, 32, 64, 100])),
        n_mels=n_mels,
        n_mfcc=draw(st.integers(1, n_mels)),
        center=draw(st.booleans()),
        htk=draw(st.booleans()),
        mel_norm=draw(st.sampled_from(["slaney", None])),
        fmax=draw(st.sampled_from([None, 3000.0, 4000.0])),
        top_db=draw(st.sampled_from([80.0, None, 20.0])),
    )
    if not valid:
        field, value = draw(st.sampled_from([("n_fft", 0), ("n_fft", -8), ("hop_length", 0), ("n_mels", 0),
                                             ("n_mfcc", n_mels + 1), ("fmax", 5000.0), ("top_db", -1.0)]))
        params[field] = value
    return params


@SETTINGS
@given(y=signals(), params=mfcc_params())
def test_valid_input_matches_librosa(y: np.ndarray, params: dict) -> None:
    if not params["center"] and len(y) < params["n_fft"]:
        with pytest.raises(ValueError, match="shorter than n_fft"):
            features.mfcc(y, **params)
        return
    out = np.asarray(features.mfcc(y, **params))
    mel_keys = ("sr", "n_fft", "hop_length", "n_mels", "center", "htk", "fmax")
    mel = librosa.feature.melspectrogram(y=y, norm=params["mel_norm"], **{k: params[k] for k in mel_keys})
    reference = librosa.feature.mfcc(S=librosa.power_to_db(mel, top_db=params["top_db"]), n_mfcc=params["n_mfcc"])
    assert out.shape == reference.shape
    assert np.isfinite(out).all()
    scale = max(float(np.abs(reference).max()), 1.0)
    np.testing.assert_allclose(out, reference, rtol=0, atol=1e-4 * scale)


@SETTINGS
@given(data=st.data(), bad_signal=st.booleans())
def test_invalid_input_raises_value_error_with_a_message(data: st.DataObject, bad_signal: bool) -> None:
    y = data.draw(signals(valid=not bad_signal))
    params = data.draw(mfcc_params(valid=bad_signal))  # exactly one of the two is defective
    with pytest.raises(ValueError, match=r"\w{3,}"):
        features.mfcc(y, **params)


@SETTINGS
@given(batch=st.integers(1, 3), n=st.integers(1, 4000), sample_rate=st.sampled_from([8000, 16000, 22050, 48000]),
       silent=st.booleans())
def test_clip_mfccs_shapes_and_finiteness(batch: int, n: int, sample_rate: int, silent: bool) -> None:
    rng = np.random.default_rng(n)
    clips = [np.zeros(n + 37 * i, np.float32) if silent else rng.uniform(-1, 1, n + 37 * i).astype(np.float32)
             for i in range(batch)]
    outs = features.clip_mfccs(clips, sample_rate=sample_rate)
    assert len(outs) == batch
    for clip, out in zip(clips, outs):
        resampled = int(np.ceil(len(clip) * features.MFCC_SAMPLE_RATE / sample_rate))
        assert out.dtype == np.float32 and out.shape[0] == features.FRONT_END["n_mfcc"]
        assert abs(out.shape[1] - (1 + resampled // features.FRONT_END["hop_length"])) <= 1
        assert np.isfinite(out).all()


@pytest.mark.parametrize("bad", [np.array([0.1, np.nan, 0.2] * 100, np.float32), np.zeros(0, np.float32)])
def test_clip_mfccs_refuses_bad_clips(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="."):
        features.clip_mfccs([np.zeros(1000, np.float32), bad])
