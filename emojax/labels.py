"""The emojax label space: 8 emotions, one fixed order, each corpus's own codes, and their common spellings.

The built-in builders, and every model head and metric unless told other classes, use ``EMOTIONS`` in this order; the
index of a name is its integer label. The order follows RAVDESS's emotion codes 01-08. A corpus of one's own
(``datasets/custom``) has these classes too unless its config lists others; its labels are matched to them through
``canonical``.
"""

from __future__ import annotations

from typing import Any

EMOTIONS: tuple[str, ...] = (
    "neutral",
    "calm",
    "happiness",
    "sadness",
    "anger",
    "fear",
    "disgust",
    "surprise",
)
NUM_CLASSES = len(EMOTIONS)

# Each corpus's own emotion code -> emojax emotion name.
RAVDESS = {
    "01": "neutral",
    "02": "calm",
    "03": "happiness",
    "04": "sadness",
    "05": "anger",
    "06": "fear",
    "07": "disgust",
    "08": "surprise",
}
SAVEE = {
    "a": "anger",
    "d": "disgust",
    "f": "fear",
    "h": "happiness",
    "n": "neutral",
    "sa": "sadness",
    "su": "surprise",
}
CREMA_D = {
    "ANG": "anger",
    "DIS": "disgust",
    "FEA": "fear",
    "HAP": "happiness",
    "NEU": "neutral",
    "SAD": "sadness",
}
TESS = {
    "angry": "anger",
    "disgust": "disgust",
    "fear": "fear",
    "happy": "happiness",
    "neutral": "neutral",
    "ps": "surprise",
    "pleasant_surprise": "surprise",
    "pleasant_surprised": "surprise",
    "sad": "sadness",
}

# The emotions each corpus has, in ``EMOTIONS`` order (CREMA-D lacks calm and surprise, SAVEE and TESS lack calm).
CORPUS_EMOTIONS: dict[str, tuple[str, ...]] = {
    name: tuple(e for e in EMOTIONS if e in codes.values())
    for name, codes in (("ravdess", RAVDESS), ("savee", SAVEE), ("crema_d", CREMA_D), ("tess", TESS))
}

# Common spellings of each emotion in corpora's labels, compared after ``fold`` (so "Pleasant Surprise",
# "pleasant_surprised" and "PS" all count). Conservative on purpose: only words and three-letter codes (as CREMA-D's
# and IEMOCAP's) that name one emotion and nothing else. Not here, as they are ambiguous or not one of the 8:
# single letters (SAVEE's "a", EmoDB's "W"), "mad", "excited", "bored", "frustrated", "contempt", "other"; a
# user's corpus maps those itself (``mapping`` in datasets/custom).
SPELLINGS: dict[str, tuple[str, ...]] = {
    "neutral": ("neutral", "neu"),
    "calm": ("calm", "cal"),
    "happiness": ("happiness", "happy", "hap", "joy"),
    "sadness": ("sadness", "sad"),
    "anger": ("anger", "angry", "ang"),
    "fear": ("fear", "fearful", "fea", "scared"),
    "disgust": ("disgust", "disgusted", "dis"),
    "surprise": ("surprise", "surprised", "sur", "ps", "pleasant_surprise", "pleasant_surprised"),
}


def fold(raw: str) -> str:
    """The form labels are compared in: lower case, letters and digits only (``"Pleasant_Surprise"`` →
    ``"pleasantsurprise"``)."""
    return "".join(ch for ch in raw.casefold() if ch.isalnum())


_CANONICAL = {fold(spelling): emotion for emotion, spellings in SPELLINGS.items() for spelling in spellings}


def canonical(raw: str) -> str | None:
    """The emotion of ``EMOTIONS`` a corpus label spells (``SPELLINGS``, case and separators ignored), e.g.
    ``"ANG"`` → ``"anger"``, ``"pleasant surprise"`` → ``"surprise"``; ``None`` for any other label."""
    return _CANONICAL.get(fold(raw))


def index(emotion: str) -> int:
    """Integer label of an emojax emotion name; ``ValueError`` naming the valid ones otherwise."""
    try:
        return EMOTIONS.index(emotion)
    except ValueError:
        raise ValueError(f"unknown emotion {emotion!r}; expected one of {', '.join(EMOTIONS)}") from None


def class_names(config: Any) -> tuple[str, ...]:
    """The class names of a model's outputs, in order: its config's ``labels`` (the training data's label set, which
    training records), or the 8 ``EMOTIONS`` for a config without them."""
    return tuple(config.get("labels") or EMOTIONS)
