"""CREMA-D (audio) as an emojax dataset: 91 actors, 6 emotions, 7,442 recordings."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from emojax import corpora, labels

# Actor genders ("Sex") from the corpus's VideoDemographics.csv
# (https://github.com/CheyneyComputerScience/CREMA-D/blob/master/VideoDemographics.csv): 48 male, 43 female.
FEMALE = frozenset({1002, 1003, 1004, 1006, 1007, 1008, 1009, 1010, 1012, 1013, 1018, 1020, 1021, 1024, 1025,
                    1028, 1029, 1030, 1037, 1043, 1046, 1047, 1049, 1052, 1053, 1054, 1055, 1056, 1058, 1060,
                    1061, 1063, 1072, 1073, 1074, 1075, 1076, 1078, 1079, 1082, 1084, 1089, 1091})
ACTORS = range(1001, 1092)
SENTENCES = frozenset({"IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA", "ITS", "TSI", "WSI"})
# XX: unspecified; one original file says X (1040_ITH_SAD_X.wav).
_LEVEL = {"LO": "low", "MD": "medium", "HI": "high", "XX": "", "X": ""}
_NAME = re.compile(r"(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{1,2})")


class Builder(corpora.CorpusBuilder):
    """CREMA-D: Cao et al. (2014), the audio of 91 actors saying 12 sentences."""

    CORPUS = "crema_d"
    SPLIT_SPEAKERS = {  # five female and five male actors each
        "validation": ("1073", "1074", "1075", "1076", "1078", "1071", "1077", "1080", "1081", "1083"),
        "test": ("1079", "1082", "1084", "1089", "1091", "1085", "1086", "1087", "1088", "1090"),
    }
    HOMEPAGE = "https://github.com/CheyneyComputerScience/CREMA-D"
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
    Download the AudioWAV folder of https://github.com/CheyneyComputerScience/CREMA-D (git lfs), or the
    Kaggle copy, and put it (or its .zip) in the manual dir. Accepted layouts (searched recursively):
    AudioWAV/1001_DFA_ANG_XX.wav, the files flat, or split into sub-folders (e.g. CremaTrain/, CremaTest/);
    any audio container (.wav, .ogg, ...).
    """

    @classmethod
    def parse(cls, name: PurePosixPath) -> corpora.Recording:
        match = _NAME.fullmatch(name.stem)
        if match is None:
            raise ValueError("expected a CREMA-D name like 1001_DFA_ANG_XX (actor_sentence_emotion_level)")
        actor, sentence, emotion, level = match.groups()
        if int(actor) not in ACTORS:
            raise ValueError(f"actor {actor} is not one of CREMA-D's 1001-1091")
        if sentence not in SENTENCES or emotion not in labels.CREMA_D or level not in _LEVEL:
            raise ValueError(f"sentence {sentence}, emotion {emotion} or level {level} is not a CREMA-D code")
        return corpora.Recording(
            key=name.stem,
            speaker=actor,
            gender="female" if int(actor) in FEMALE else "male",
            emotion=labels.CREMA_D[emotion],
            original_label=emotion,
            intensity=_LEVEL[level],
            text=sentence,
        )
