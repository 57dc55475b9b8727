"""Shared by the builder tests in ``datasets/<name>/``: build a corpus from its generated dummy data."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from emojax import corpora, prepared

Rows = dict[str, list[tuple[str, str, str, str, str]]]
KEYS = ("audio", "mfcc", "pitch", "label", "speaker", "gender", "intensity", "text", "file")


@pytest.fixture
def build_dummy(tmp_path: Path) -> Callable[..., Rows]:
    """``build_dummy(name, seconds=lambda file: 0.25, manual_dir=None, builder_config=None)`` builds
    ``datasets/<name>/dummy_data`` (or ``manual_dir``; for a corpus of one's own, ``"custom/<c>"``, with its
    ``builder_config``) into ``tmp_path``, checks every example's audio (int16, ``seconds(file)`` long at 16 kHz),
    MFCCs (float32, 40 rows) and pitch rows (float32, 2 rows on the MFCC frames), and returns the sorted (speaker,
    label name, gender, intensity, text) rows of each split."""
    def build(name: str, seconds: Callable[[str], float] = lambda file: 0.25, manual_dir: Path | None = None,
              builder_config: dict | None = None) -> Rows:
        manual_dir = manual_dir or corpora.DATASETS_DIR / name.partition("/")[0] / "dummy_data"
        corpora.build(name, manual_dir=str(manual_dir), data_dir=str(tmp_path), builder_config=builder_config)
        label_names = np.asarray(prepared.label_names(name, str(tmp_path)))
        rows = {}
        for split in prepared.SPLITS:
            data = prepared.load_split(name, split, str(tmp_path), KEYS)
            rows[split] = sorted(zip(data["speaker"], label_names[data["label"]], data["gender"], data["intensity"],
                                     data["text"]))
            for audio, mfcc, pitch, file in zip(data["audio"], data["mfcc"], data["pitch"], data["file"]):
                assert audio.dtype == np.int16 and abs(len(audio) - 16_000 * seconds(file)) <= 1, file
                assert mfcc.dtype == np.float32 and mfcc.shape[0] == 40 and mfcc.shape[1] > 1, file
                assert pitch.dtype == np.float32 and pitch.shape == (2, mfcc.shape[1]), file
        return rows
    return build
