"""TESS as an emojax dataset: 2 female speakers, 200 words, 7 emotions, 2,800 recordings."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from emojax import corpora, labels

SPEAKERS = ("OAF", "YAF")  # older and younger adult female
# OAF_back_angry, YAF_bar_ps: speaker_word_emotion (folder names vary in case and spelling). One original file
# says OA_bite_neutral: a truncated speaker prefix is completed from the folder (OAF_neutral/).
_NAME = re.compile(r"([a-z]+)_([a-z]+)_([a-z_]+)", re.IGNORECASE)


class Builder(corpora.CorpusBuilder):
    """TESS (Toronto emotional speech set): Pichora-Fuller & Dupuis (2020), "Say the word ___" by 2 actresses."""

    CORPUS = "tess"
    # Training data only: with two speakers, a validation or test split would either share a speaker with training
    # (splitting by word puts each voice on both sides) or hold half the corpus. Its unseen-speaker figures come from
    # leaving the whole corpus out (config.protocol="loco").
    SPLIT_SPEAKERS = {}
    HOMEPAGE = "https://doi.org/10.5683/SP2/E8H2MF"
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
    Download TESS from https://doi.org/10.5683/SP2/E8H2MF (or the Kaggle copy) and put the .zip, or its
    extracted folders, in the manual dir. Accepted layouts (searched recursively):
    "TESS Toronto emotional speech set data/OAF_angry/OAF_back_angry.wav", folders in any case or spelling
    (OAF_Fear, YAF_pleasant_surprised), the Kaggle download that holds the corpus twice (built once), or the
    files flat; any audio container (.wav, .ogg, ...), AIFF data in .wav files included.
    """

    @classmethod
    def parse(cls, name: PurePosixPath) -> corpora.Recording:
        match = _NAME.fullmatch(name.stem)
        if match is None:
            raise ValueError("expected a TESS name like OAF_back_angry (speaker_word_emotion)")
        speaker, word, emotion = match.group(1).upper(), match.group(2).lower(), match.group(3).lower()
        folder = name.parent.name.split("_")[0].upper()
        if speaker not in SPEAKERS and folder in SPEAKERS and folder.startswith(speaker):
            speaker = folder
        if speaker not in SPEAKERS:
            raise ValueError(f"speaker {speaker!r} is not one of {', '.join(SPEAKERS)}")
        if emotion not in labels.TESS:
            raise ValueError(f"emotion {emotion!r} is not a TESS code ({', '.join(labels.TESS)})")
        return corpora.Recording(
            key=f"{speaker}_{word}_{emotion}",
            speaker=speaker,
            gender="female",
            emotion=labels.TESS[emotion],
            original_label=emotion,
            text=word,
        )
