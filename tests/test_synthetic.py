"""The synthetic corpus: deterministic, speaker-disjoint, balanced, speech-like, prosody carries the class."""

from __future__ import annotations

import numpy as np
import pytest

from emojax import synthetic
from emojax.labels import EMOTIONS


@pytest.fixture(scope="module")
def validation() -> list[synthetic.SyntheticClip]:
    return list(synthetic.generate("validation"))


def test_deterministic_and_seeded(validation):
    again = list(synthetic.generate("validation"))
    assert [c.key for c in again] == [c.key for c in validation]
    assert all(np.array_equal(a.audio, b.audio) for a, b in zip(again, validation))
    other = next(synthetic.generate("validation", seed=1))
    assert not np.array_equal(other.audio, validation[0].audio)


def test_splits_are_speaker_disjoint_and_balanced(validation):
    speakers = {split: set(synthetic.speakers(split)) for split in synthetic.SPLIT_SPEAKERS}
    assert not speakers["train"] & speakers["validation"]
    assert not speakers["train"] & speakers["test"]
    assert not speakers["validation"] & speakers["test"]
    assert {c.speaker for c in validation} == speakers["validation"]
    counts = {e: sum(c.emotion == e for c in validation) for e in EMOTIONS}
    assert set(counts.values()) == {len(speakers["validation"]) * synthetic.CLIPS_PER_SPEAKER_AND_EMOTION}
    assert len({c.key for c in validation}) == len(validation)
    assert {c.gender for c in validation} == {"male", "female"}


def test_clips_are_speech_like(validation):
    for clip in validation:
        assert clip.audio.dtype == np.int16 and clip.audio.ndim == 1
        seconds = len(clip.audio) / synthetic.SAMPLE_RATE
        assert 1.0 < seconds < 5.0, clip.key
        peak = np.abs(clip.audio.astype(np.int32)).max()
        assert 1000 < peak < 32767, clip.key  # audible, not clipped
        # Syllables and pauses: the loudness envelope varies a lot over 20 ms frames.
        frames = clip.audio[: len(clip.audio) // 320 * 320].astype(np.float64).reshape(-1, 320)
        rms = np.sqrt((frames ** 2).mean(axis=1))
        assert rms.max() > 10 * np.percentile(rms, 5), clip.key


def _rms(clip: synthetic.SyntheticClip) -> float:
    return float(np.sqrt(np.mean(clip.audio.astype(np.float64) ** 2)))


def _pitch(clip: synthetic.SyntheticClip) -> float:
    """Median autocorrelation pitch (Hz) over voiced 40 ms frames."""
    x = clip.audio.astype(np.float64)
    size, lo, hi = 640, synthetic.SAMPLE_RATE // 600, synthetic.SAMPLE_RATE // 60
    loud = np.sqrt(np.mean(x ** 2))
    pitches = []
    for start in range(0, len(x) - size, size):
        frame = x[start:start + size]
        if np.sqrt(np.mean(frame ** 2)) < loud:
            continue
        ac = np.correlate(frame, frame, "full")[size - 1:]
        pitches.append(synthetic.SAMPLE_RATE / (lo + np.argmax(ac[lo:hi])))
    return float(np.median(pitches))


def test_prosody_carries_the_emotion(validation):
    by = {e: [c for c in validation if c.emotion == e] for e in EMOTIONS}
    assert np.median([_rms(c) for c in by["anger"]]) > 2 * np.median([_rms(c) for c in by["sadness"]])
    for speaker in synthetic.speakers("validation"):
        def pitch(emotion: str) -> float:
            return float(np.median([_pitch(c) for c in by[emotion] if c.speaker == speaker]))
        assert pitch("surprise") > 1.2 * pitch("sadness"), speaker


def test_unknown_split():
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        next(synthetic.generate("dev"))
