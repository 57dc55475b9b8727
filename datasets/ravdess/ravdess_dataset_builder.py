"""RAVDESS speech (audio-only) as an emojax dataset: 24 actors, 8 emotions, 1,440 recordings."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from emojax import corpora, labels

# File names: modality-channel-emotion-intensity-statement-repetition-actor, e.g. 03-01-05-02-01-02-07.
_NAME = re.compile(r"(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)")
_INTENSITY = {"01": "normal", "02": "strong"}
_ACTORS = range(1, 25)  # odd = male, even = female


class Builder(corpora.CorpusBuilder):
    """RAVDESS speech: Livingstone & Russo (2018), audio-only speech files of all 24 actors."""

    CORPUS = "ravdess"
    SPLIT_SPEAKERS = {"validation": ("19", "20"), "test": ("21", "22", "23", "24")}  # a man and a woman each
    HOMEPAGE = "https://zenodo.org/records/1188976"
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
    Download Audio_Speech_Actors_01-24.zip (RAVDESS speech, audio-only) from
    https://zenodo.org/records/1188976 and put the .zip, or its extracted folders, in the manual dir.
    Accepted layouts (searched recursively): Audio_Speech_Actors_01-24.zip,
    Audio_Speech_Actors_01-24/Actor_01/03-01-01-01-01-01-01.wav, Actor_01/03-01-01-01-01-01-01.wav, or the
    files flat; any audio container (.wav, .ogg, ...). Song and video files are not part of this dataset.
    """

    @classmethod
    def parse(cls, name: PurePosixPath) -> corpora.Recording:
        match = _NAME.fullmatch(name.stem)
        if match is None:
            raise ValueError("expected a RAVDESS name like 03-01-05-02-01-02-07 "
                             "(modality-channel-emotion-intensity-statement-repetition-actor)")
        modality, channel, emotion, intensity, statement, repetition, actor = match.groups()
        if modality != "03" or channel != "01":
            raise ValueError(f"modality {modality}, vocal channel {channel}: only audio-only speech "
                             "(03-01-...) belongs to this dataset")
        if emotion not in labels.RAVDESS or intensity not in _INTENSITY or int(actor) not in _ACTORS:
            raise ValueError(f"emotion {emotion}, intensity {intensity} or actor {actor} is not a RAVDESS code")
        if statement not in ("01", "02") or repetition not in ("01", "02"):
            raise ValueError(f"statement {statement} or repetition {repetition} is not 01 or 02")
        return corpora.Recording(
            key=name.stem,
            speaker=actor,
            gender="male" if int(actor) % 2 else "female",
            emotion=labels.RAVDESS[emotion],
            original_label=emotion,
            intensity=_INTENSITY[intensity],
            text=statement,
        )
