"""Writes every builder's ``dummy_data/``: short generated tones (never recordings) named and laid out like each
corpus's download, with the file quirks real downloads have.

    python datasets/make_dummy_data.py          # rewrites datasets/<name>/dummy_data/ for the four corpora and custom

Each file is a 0.25 s, 8 kHz mono 16-bit WAV of a tone (its frequency from the file's position in the list)
unless its entry says otherwise; an entry with ``data`` is written as those bytes (a manifest, a text file under an
audio name, an empty file). The builder tests (``datasets/<name>/<name>_dataset_builder_test.py``) expect
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
    data: bytes | None = None  # written as is instead of a tone


# datasets/custom: a manifest with good rows and one of each bad row (columns in another order, one ignored).
CUSTOM_MANIFEST = b"""\
speaker,path,Label,split,notes,gender,text
s01,audio/s01_a.wav,angry,train,loud,M,kids are talking by the door
s01,audio/s01_b.wav,joy,,,m,dogs are sitting by the door
s02,audio/s02_a.wav,Sadness,val,,F,kids are talking by the door
s02,audio/s02_b.wav,fearful,Dev,,female,dogs are sitting by the door
s03,audio/s03_a.wav,NEU,test,,f,kids are talking by the door
s03,more/s03_b.flac,disgust,TEST,,,dogs are sitting by the door
s04,audio/s04_a.wav,calm,train,,x,kids are talking by the door
s04,audio/gone.wav,angry,train,,m,dogs are sitting by the door
s04,audio/s04_b.wav,bored,train,,m,kids are talking by the door
s01,audio/s01_a.wav,angry,train,again,M,kids are talking by the door
s02,./audio/s02_a.wav,happy,val,,F,kids are talking by the door
s05,audio/broken.wav,surprised,test,,m,dogs are sitting by the door
s05,audio/empty.wav,surprise,test,,m,kids are talking by the door
s05,audio/s05_a.wav,ps,holdout,,m,dogs are sitting by the door
"""


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
    "custom": (
        # A folder per label: spellings of the emotions, nested folders, one label no emotion spells, a file in no
        # label folder, one with no speaker for speaker_pattern "([A-Z]{2})_\d\d", a non-audio and a broken file.
        DummyFile("folders/angry/AB_01.wav"),
        DummyFile("folders/angry/nested/deeper/CD_02.wav"),
        DummyFile("folders/angry/take2.wav"),
        DummyFile("folders/angry/notes.txt", data=b"recorded in one afternoon\n"),
        DummyFile("folders/Happy/AB_03.flac", rate=48_000, channels=2, container="FLAC"),
        DummyFile("folders/SAD/CD_04.wav"),
        DummyFile("folders/pleasant_surprise/AB_05.aiff", container="AIFF"),
        DummyFile("folders/NEU/CD_06.wav", rate=16_000),
        DummyFile("folders/Fearful/CD_07.wav"),
        DummyFile("folders/bored/AB_08.wav"),
        DummyFile("folders/disgust/AB_09.wav", data=b"not audio, whatever the name says\n"),
        DummyFile("folders/loose.wav"),
        # A CSV manifest (CUSTOM_MANIFEST), a second one without speakers, and two audio files neither lists.
        DummyFile("manifest/labels.csv", data=CUSTOM_MANIFEST),
        DummyFile("manifest/no_speakers.csv", data=b"path,label\naudio/s01_a.wav,angry\naudio/s02_b.wav,fear\n"),
        DummyFile("manifest/audio/s01_a.wav"),
        DummyFile("manifest/audio/s01_b.wav", rate=44_100),
        DummyFile("manifest/audio/s02_a.wav"),
        DummyFile("manifest/audio/s02_b.wav"),
        DummyFile("manifest/audio/s03_a.wav"),
        DummyFile("manifest/more/s03_b.flac", container="FLAC"),
        DummyFile("manifest/audio/s04_a.wav"),
        DummyFile("manifest/audio/s04_b.wav"),
        DummyFile("manifest/audio/s05_a.wav"),
        DummyFile("manifest/audio/broken.wav", data=b"this is not audio\n"),
        DummyFile("manifest/audio/empty.wav", data=b""),
        DummyFile("manifest/audio/unlisted.wav"),
        DummyFile("manifest/audio/also_unlisted.wav"),
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
        if file.data is not None:
            path.write_bytes(file.data)
        else:
            sf.write(path, tone(index, file), file.rate, subtype="PCM_16", format=file.container)
        written.append(path)
    return written


def main() -> None:
    for corpus in FILES:
        for path in write(corpus):
            print(path.relative_to(DATASETS))


if __name__ == "__main__":
    main()
