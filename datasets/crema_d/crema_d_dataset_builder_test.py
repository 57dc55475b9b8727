"""Builds CREMA-D from its dummy data: generated tones named like AudioWAV/ files."""

from pathlib import Path

import numpy as np

from emojax import corpora
from emojax.labels import EMOTIONS

DUMMY = Path(__file__).parent / "dummy_data"
KEYS = ("audio", "mfcc", "label", "speaker", "gender", "intensity", "text", "file")


def test_builds_dummy_data(tmp_path: Path) -> None:
    corpora.build("crema_d", manual_dir=str(DUMMY), data_dir=str(tmp_path))
    rows = {}
    for split in corpora.SPLITS:
        data = corpora.load_split("crema_d", split, str(tmp_path), KEYS)
        rows[split] = sorted(zip(data["speaker"], np.asarray(EMOTIONS)[data["label"]], data["gender"],
                                 data["intensity"], data["text"]))
        for audio, mfcc, file in zip(data["audio"], data["mfcc"], data["file"]):
            assert audio.dtype == np.int16 and abs(len(audio) - 16_000 * 0.25) <= 1, file
            assert mfcc.dtype == np.float32 and mfcc.shape[0] == 40 and mfcc.shape[1] > 1, file
    assert rows == {
        "train": [("crema_d/1001", "anger", "male", "", "DFA"), ("crema_d/1002", "happiness", "female", "high", "IEO")],
        "validation": [("crema_d/1071", "neutral", "male", "", "ITS")],
        "test": [("crema_d/1091", "sadness", "female", "low", "TSI")],
    }
