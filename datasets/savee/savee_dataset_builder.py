"""SAVEE as an emojax dataset: 4 male speakers, 7 emotions, 480 recordings."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from emojax import corpora, labels

SPEAKERS = ("DC", "JE", "JK", "KL")
# "a01" inside a speaker folder (Surrey AudioData/DC/a01.wav) or "DC_a01" (the flat Kaggle copy ALL/DC_a01.wav).
_NAME = re.compile(r"(?:([A-Za-z]{2})_)?(sa|su|a|d|f|h|n)(\d\d)")


class Builder(corpora.CorpusBuilder):
    """SAVEE (Surrey Audio-Visual Expressed Emotion): Haq & Jackson (2009), the audio of 4 male actors."""

    CORPUS = "savee"
    SPLIT_SPEAKERS = {"validation": ("JK",), "test": ("KL",)}  # DC and JE train
    HOMEPAGE = "http://kahlan.eps.surrey.ac.uk/savee/"
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
    Register at http://kahlan.eps.surrey.ac.uk/savee/Register.html, download AudioData.zip and put the .zip,
    or its extracted folder, in the manual dir. Accepted layouts (searched recursively):
    AudioData/DC/a01.wav (speaker folders DC, JE, JK, KL), the flat Kaggle copy ALL/DC_a01.wav, or either
    as a .zip; any audio container (.wav, .ogg, ...).
    """

    @classmethod
    def parse(cls, name: PurePosixPath) -> corpora.Recording:
        match = _NAME.fullmatch(name.stem)
        if match is None:
            raise ValueError("expected a SAVEE name like a01, sa12 (in a speaker folder) or DC_a01")
        speaker, code, number = match.groups()
        speaker = (speaker or name.parent.name).upper()
        if speaker not in SPEAKERS:
            raise ValueError(f"speaker {speaker!r} (from the name or the folder) is not one of {', '.join(SPEAKERS)}")
        return corpora.Recording(
            key=f"{speaker}_{code}{number}",
            speaker=speaker,
            gender="male",
            emotion=labels.SAVEE[code],
            original_label=code,
            text=f"{code}{number}",
        )
