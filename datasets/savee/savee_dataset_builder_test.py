"""Builds SAVEE from its dummy data: generated tones named like the Surrey AudioData layout."""

from pathlib import Path

import numpy as np

from emojax import corpora
from emojax.labels import EMOTIONS

DUMMY = Path(__file__).parent / "dummy_data"
KEYS = ("audio", "mfcc", "label", "speaker", "gender", "intensity", "text", "file")


def test_builds_dummy_data(tmp_path: Path) -> None:
    corpora.build("savee", manual_dir=str(DUMMY), data_dir=str(tmp_path))
    rows = {}
    for split in corpora.SPLITS:
        data = corpora.load_split("savee", split, str(tmp_path), KEYS)
        rows[split] = sorted(zip(data["speaker"], np.asarray(EMOTIONS)[data["label"]], data["gender"],
                                 data["intensity"], data["text"]))
        for audio, mfcc, file in zip(data["audio"], data["mfcc"], data["file"]):
            assert audio.dtype == np.int16 and abs(len(audio) - 16_000 * 0.25) <= 1, file
            assert mfcc.dtype == np.float32 and mfcc.shape[0] == 40 and mfcc.shape[1] > 1, file
    assert rows == {
        "train": [("savee/DC", "anger", "male", "", "a01"), ("savee/JE", "surprise", "male", "", "su03")],
        "validation": [("savee/JK", "sadness", "male", "", "sa05")],
        "test": [("savee/KL", "neutral", "male", "", "n12")],
    }
