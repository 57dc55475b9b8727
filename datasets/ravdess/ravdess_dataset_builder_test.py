"""Builds RAVDESS from its dummy data: generated tones named like the corpus (one stereo at 48 kHz)."""

from pathlib import Path

import numpy as np

from emojax import corpora
from emojax.labels import EMOTIONS

DUMMY = Path(__file__).parent / "dummy_data"
KEYS = ("audio", "mfcc", "label", "speaker", "gender", "intensity", "text", "file")


def test_builds_dummy_data(tmp_path: Path) -> None:
    corpora.build("ravdess", manual_dir=str(DUMMY), data_dir=str(tmp_path))
    rows = {}
    for split in corpora.SPLITS:
        data = corpora.load_split("ravdess", split, str(tmp_path), KEYS)
        rows[split] = sorted(zip(data["speaker"], np.asarray(EMOTIONS)[data["label"]], data["gender"],
                                 data["intensity"], data["text"]))
        for audio, mfcc, file in zip(data["audio"], data["mfcc"], data["file"]):
            seconds = 0.1 if file.startswith("Audio_Speech_Actors_01-24/Actor_02/") else 0.25
            assert audio.dtype == np.int16 and abs(len(audio) - 16_000 * seconds) <= 1, file
            assert mfcc.dtype == np.float32 and mfcc.shape[0] == 40 and mfcc.shape[1] > 1, file
    assert rows == {
        "train": [("ravdess/01", "anger", "male", "strong", "01"), ("ravdess/02", "calm", "female", "normal", "02")],
        "validation": [("ravdess/19", "surprise", "male", "normal", "01")],
        "test": [("ravdess/22", "sadness", "female", "strong", "02")],
    }
