"""Builds the synthetic prosody corpus (one clip per speaker and emotion, to stay fast)."""

import collections
from pathlib import Path

import numpy as np
import pytest

from emojax import corpora, prepared, synthetic
from emojax.labels import EMOTIONS


def test_builds_from_the_generator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(synthetic, "CLIPS_PER_SPEAKER_AND_EMOTION", 1)
    assert not prepared.is_prepared("synthetic_prosody", str(tmp_path))
    corpora.build("synthetic_prosody", data_dir=str(tmp_path))
    assert prepared.is_prepared("synthetic_prosody", str(tmp_path))
    keys = ("audio",) + prepared.DEFAULT_KEYS
    for split, numbers in synthetic.SPLIT_SPEAKERS.items():
        data = prepared.load_split("synthetic_prosody", split, str(tmp_path), keys)
        assert set(data["speaker"]) == {f"synthetic_prosody/{n:02d}" for n in numbers}
        assert collections.Counter(data["label"].tolist()) == {i: len(numbers) for i in range(len(EMOTIONS))}
        assert set(data["corpus"]) == {"synthetic_prosody"} and set(data["file"]) == {""}
        clips = {(c.speaker, c.emotion): c for c in synthetic.generate(split)}
        for speaker, label, audio, mfcc, pitch, text in zip(data["speaker"], data["label"], data["audio"],
                                                            data["mfcc"], data["pitch"], data["text"]):
            clip = clips[speaker, EMOTIONS[label]]
            np.testing.assert_array_equal(audio, clip.audio)
            assert text == clip.text and mfcc.shape[0] == 40 and pitch.shape == (2, mfcc.shape[1])
