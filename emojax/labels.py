"""The emojax label space: 8 emotions, one fixed order, and each corpus's own codes.

Every builder, model head and metric uses ``EMOTIONS`` in this order; the index of a name is its
integer label. The order follows RAVDESS's emotion codes 01-08.
"""

from __future__ import annotations

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


def index(emotion: str) -> int:
    """Integer label of an emojax emotion name; ``ValueError`` naming the valid ones otherwise."""
    try:
        return EMOTIONS.index(emotion)
    except ValueError:
        raise ValueError(f"unknown emotion {emotion!r}; expected one of {', '.join(EMOTIONS)}") from None
