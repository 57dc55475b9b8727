"""Writes every builder's ``dummy_data/``: short generated tones (never recordings) named and laid out like each
corpus's download, with the file quirks real downloads have.

    python datasets/make_dummy_data.py          # rewrites datasets/<name>/dummy_data/ for the four corpora

Each file is a 0.25 s, 8 kHz mono 16-bit WAV of a tone (its frequency from the file's position in the list)
unless its entry says otherwise. The builder tests (``datasets/<name>/<name>_dataset_builder_test.py``) expect
exactly these files; change both together.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import NamedTuple

import numpy as np
import soundfile as sf

DATASETS = Path(__file__).resolve().parent


class DummyFile(NamedTuple):
    path: str  # relative to datasets/<corpus>/dummy_data
    rate: int = 8_000  # Hz
    channels: int = 1
    seconds: float = 0.25
    container: str = "WAV"  # soundfile format; "AIFF" writes AIFF data under a .wav name, as some TESS copies have


FILES: dict[str, tuple[DummyFile, ...]] = {
    "ravdess": (
        DummyFile("Audio_Speech_Actors_01-24/Actor_01/03-01-05-02-01-02-01.wav"),
        DummyFile("Audio_Speech_Actors_01-24/Actor_02/03-01-02-01-02-01-02.wav", rate=48_000, channels=2, seconds=0.1),
        DummyFile("Audio_Speech_Actors_01-24/Actor_19/03-01-08-01-01-01-19.wav"),
        DummyFile("Audio_Speech_Actors_01-24/Actor_22/03-01-04-02-02-02-22.wav"),
    ),
    "savee": (
        DummyFile("AudioData/DC/a01.wav"),
        DummyFile("AudioData/JE/su03.wav"),
        DummyFile("AudioData/JK/sa05.wav"),
        DummyFile("AudioData/KL/n12.wav"),
    ),
    "crema_d": (
        DummyFile("AudioWAV/1001_DFA_ANG_XX.wav"),
        DummyFile("AudioWAV/1002_IEO_HAP_HI.wav"),
        DummyFile("AudioWAV/1071_ITS_NEU_XX.wav"),
        DummyFile("AudioWAV/1091_TSI_SAD_LO.wav"),
    ),
    "tess": (
        DummyFile("TESS Toronto emotional speech set data/OAF_Fear/OAF_bar_fear.wav"),
        DummyFile("TESS Toronto emotional speech set data/OAF_angry/OAF_back_angry.wav"),
        DummyFile("TESS Toronto emotional speech set data/YAF_pleasant_surprised/YAF_base_ps.wav", container="AIFF"),
        DummyFile("TESS Toronto emotional speech set data/YAF_sad/YAF_book_sad.wav", rate=24_414),
    ),
}


def tone(index: int, file: DummyFile) -> np.ndarray:
    """(samples, channels) float32: a 200 + 50·index Hz sine at half scale with a 10 ms fade in and out; the
    channels differ in phase."""
    t = np.arange(round(file.rate * file.seconds)) / file.rate
    fade = np.clip(np.minimum(t, t[-1] - t) / 0.01, 0.0, 1.0)
    phases = np.arange(file.channels)[None, :] * np.pi / 3
    signal = 0.5 * fade[:, None] * np.sin(2 * np.pi * (200 + 50 * index) * t[:, None] + phases)
    return signal.astype(np.float32)


def write(corpus: str) -> list[Path]:
    """Replaces ``datasets/<corpus>/dummy_data`` with the files of ``FILES[corpus]``; returns their paths."""
    root = DATASETS / corpus / "dummy_data"
    shutil.rmtree(root, ignore_errors=True)
    written = []
    for index, file in enumerate(FILES[corpus]):
        path = root / file.path
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, tone(index, file), file.rate, subtype="PCM_16", format=file.container)
        written.append(path)
    return written


def main() -> None:
    for corpus in FILES:
        for path in write(corpus):
            print(path.relative_to(DATASETS))


if __name__ == "__main__":
    main()
