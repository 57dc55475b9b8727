"""A small synthetic emotional-speech corpus whose 8 classes are carried by prosody.

Each clip is a speech-like utterance: a harmonic glottal source (spectral tilt, jitter, optional
tremor) shaped by per-syllable vowel formant filters, syllable envelopes with short consonant noise
bursts, and a little background noise, at 16 kHz int16. The emotion sets the prosody relative to the
speaker: pitch level and range, speaking rate, loudness, spectral tilt and jitter. Every speaker has
its own base pitch, vocal-tract length and a personal way of expressing each emotion, and every clip
draws its parameters around those targets, so the task is learnable but not trivial.

Splits are speaker-disjoint (train: speakers 01-08, validation: 09-10, test: 11-12) and everything is
deterministic in ``(split, seed)``. ``generate`` feeds the ``synthetic_prosody`` TFDS builder, the
embedded default corpus of ``python train.py``, and the tests.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np
import scipy.signal

from emojax.audio import SAMPLE_RATE
from emojax.labels import EMOTIONS

CORPUS = "synthetic_prosody"
SPLIT_SPEAKERS: dict[str, tuple[int, ...]] = {
    "train": tuple(range(1, 9)),
    "validation": (9, 10),
    "test": (11, 12),
}
CLIPS_PER_SPEAKER_AND_EMOTION = 10

# Vowel formants (Hz) and bandwidths of an adult male vocal tract; speakers scale them.
_VOWELS: dict[str, tuple[float, float, float]] = {
    "a": (730.0, 1090.0, 2440.0),
    "e": (530.0, 1840.0, 2480.0),
    "i": (270.0, 2290.0, 3010.0),
    "o": (570.0, 840.0, 2410.0),
    "u": (300.0, 870.0, 2240.0),
}
_BANDWIDTHS = (80.0, 110.0, 160.0)
_TEXTS = (
    "ka-to-mi-se-lu-na-bo",
    "di-ne-sa-ko-tu-me",
    "lo-ba-ki-nu-se-ta-mo-li",
    "su-me-ta-lo-ki",
)

# Emotion prosody relative to the speaker's neutral voice:
# pitch (x base f0), range (relative excursion), rate (x syllables/s), loudness (dB),
# tilt (dB/octave harmonic roll-off; smaller = brighter), jitter (relative f0 noise),
# tremor (relative 5-7 Hz vibrato), final (relative pitch rise (+) or fall (-) at the end).
_PROSODY: dict[str, dict[str, float]] = {
    "neutral": dict(pitch=1.00, range=0.10, rate=1.00, loud=0.0, tilt=12.0, jitter=0.004, tremor=0.0, final=-0.10),
    "calm": dict(pitch=0.93, range=0.06, rate=0.80, loud=-4.0, tilt=14.0, jitter=0.003, tremor=0.0, final=-0.15),
    "happiness": dict(pitch=1.25, range=0.30, rate=1.15, loud=3.0, tilt=9.0, jitter=0.005, tremor=0.0, final=0.05),
    "sadness": dict(pitch=0.86, range=0.05, rate=0.72, loud=-6.0, tilt=15.0, jitter=0.012, tremor=0.01, final=-0.20),
    "anger": dict(pitch=1.30, range=0.22, rate=1.20, loud=7.0, tilt=6.0, jitter=0.010, tremor=0.0, final=-0.10),
    "fear": dict(pitch=1.45, range=0.14, rate=1.35, loud=-1.0, tilt=10.0, jitter=0.015, tremor=0.04, final=0.0),
    "disgust": dict(pitch=0.90, range=0.20, rate=0.85, loud=1.0, tilt=11.0, jitter=0.010, tremor=0.0, final=-0.25),
    "surprise": dict(pitch=1.45, range=0.40, rate=1.00, loud=4.0, tilt=8.0, jitter=0.006, tremor=0.0, final=0.35),
}
_SPLIT_INDEX = {name: i for i, name in enumerate(SPLIT_SPEAKERS)}


@dataclasses.dataclass(frozen=True)
class SyntheticClip:
    """One synthetic recording.

    Attributes:
      key: unique, stable id, e.g. ``"synthetic_prosody/03/anger/07"``.
      audio: (samples,) int16 at 16 kHz.
      emotion: one of ``EMOTIONS``.
      speaker: ``"synthetic_prosody/NN"``.
      gender: ``"female"`` or ``"male"``.
      text: the syllables spoken, e.g. ``"ka-to-mi-se"``.
    """

    key: str
    audio: np.ndarray
    emotion: str
    speaker: str
    gender: str
    text: str


@dataclasses.dataclass(frozen=True)
class _Speaker:
    f0: float  # Hz
    tract: float  # formant scale factor
    expressiveness: dict[str, dict[str, float]]  # per emotion: the speaker's own prosody targets


def _speaker(number: int, seed: int) -> _Speaker:
    """The voice of speaker ``number``: odd numbers are male, even female (as RAVDESS)."""
    rng = np.random.default_rng([seed, 1000 + number])
    male = number % 2 == 1
    f0 = (110.0 if male else 205.0) * float(np.exp(rng.normal(0.0, 0.12)))
    tract = (1.0 if male else 1.17) * float(np.exp(rng.normal(0.0, 0.04)))
    scale = rng.uniform(0.65, 1.25)  # how strongly this speaker acts
    expressiveness = {}
    for emotion, target in _PROSODY.items():
        own = {}
        for name, value in target.items():
            neutral = _PROSODY["neutral"][name]
            deviation = (value - neutral) * scale * rng.uniform(0.75, 1.25)
            own[name] = neutral + deviation
        expressiveness[emotion] = own
    return _Speaker(f0=f0, tract=tract, expressiveness=expressiveness)


def _resonator(frequency: float, bandwidth: float) -> tuple[np.ndarray, np.ndarray]:
    """Second-order all-pole resonator (b, a) with unit gain at DC, at ``SAMPLE_RATE``."""
    r = np.exp(-np.pi * bandwidth / SAMPLE_RATE)
    theta = 2.0 * np.pi * frequency / SAMPLE_RATE
    a = np.array([1.0, -2.0 * r * np.cos(theta), r * r])
    return np.array([a.sum()]), a


def _glottal_source(f0: np.ndarray, tilt_db_per_octave: float) -> np.ndarray:
    """Glottal-like source: (samples,) sawtooth pulses at ``f0`` (Hz, per sample), low-passed.

    The sawtooth falls at 6 dB/octave; a one-pole low-pass whose corner drops from 4 kHz (tilt 6) by an
    octave per 2.5 dB of extra tilt makes the voice darker (soft, sad) or brighter (loud, angry).
    """
    phase = np.cumsum(f0) / SAMPLE_RATE
    saw = 2.0 * (phase - np.floor(phase)) - 1.0
    corner = 4000.0 * 2.0 ** (-(tilt_db_per_octave - 6.0) / 2.5)
    pole = np.exp(-2.0 * np.pi * corner / SAMPLE_RATE)
    return scipy.signal.lfilter([1.0 - pole], [1.0, -pole], saw)


def _utterance(rng: np.random.Generator, speaker: _Speaker, emotion: str, text: str) -> np.ndarray:
    """Synthesise one clip: (samples,) float in about [-1, 1]."""
    p = {name: value * float(np.exp(rng.normal(0.0, 0.08))) if name in ("pitch", "rate") else value
         for name, value in speaker.expressiveness[emotion].items()}
    p["loud"] += rng.normal(0.0, 1.5)
    p["tilt"] += rng.normal(0.0, 1.0)
    p["range"] *= float(np.exp(rng.normal(0.0, 0.2)))
    syllables = text.split("-")
    syllable_seconds = 0.2 / p["rate"] * np.exp(rng.normal(0.0, 0.12, len(syllables)))
    lead, tail = rng.uniform(0.25, 0.6), rng.uniform(0.15, 0.4)
    total = int((lead + syllable_seconds.sum() + tail) * SAMPLE_RATE)

    # Pitch contour over the voiced part: declination, random accents, final rise/fall, jitter, tremor.
    voiced = int(syllable_seconds.sum() * SAMPLE_RATE)
    t = np.linspace(0.0, 1.0, voiced)
    accents = np.interp(t, np.linspace(0.0, 1.0, len(syllables)), rng.uniform(-1.0, 1.0, len(syllables)))
    contour = 1.0 + p["range"] * accents - 0.05 * t + p["final"] * np.clip(t - 0.75, 0.0, None) * 4.0
    jitter = scipy.signal.lfilter([0.05], [1.0, -0.95], rng.normal(0.0, 1.0, voiced)) * p["jitter"] * 3.0
    tremor = p["tremor"] * np.sin(2.0 * np.pi * rng.uniform(5.0, 7.0) * t * voiced / SAMPLE_RATE)
    f0 = np.clip(speaker.f0 * p["pitch"] * contour * (1.0 + jitter + tremor), 50.0, 600.0)
    source = _glottal_source(f0, max(p["tilt"], 3.0))

    signal = np.zeros(total)
    start = int(lead * SAMPLE_RATE)
    for syllable, seconds in zip(syllables, syllable_seconds):
        n = int(seconds * SAMPLE_RATE)
        offset = start - int(lead * SAMPLE_RATE)
        segment = source[offset:offset + n]
        for formant, bandwidth in zip(_VOWELS[syllable[-1]], _BANDWIDTHS):
            b, a = _resonator(formant * speaker.tract * rng.uniform(0.96, 1.04), bandwidth)
            segment = scipy.signal.lfilter(b, a, segment)
        envelope = np.sin(np.pi * np.linspace(0.0, 1.0, len(segment))) ** 0.6
        burst = min(int(0.03 * SAMPLE_RATE), len(segment))
        consonant = np.zeros(len(segment))
        consonant[:burst] = rng.normal(0.0, 0.3, burst) * np.hanning(burst)
        consonant = scipy.signal.lfilter([1.0, -0.9], [1.0], consonant)  # bright, fricative-like
        signal[start:start + len(segment)] += segment * envelope + consonant * np.abs(segment).mean()
        start += n
    signal /= np.abs(signal).max() + 1e-9
    signal *= 0.25 * 10.0 ** (p["loud"] / 20.0)
    signal += rng.normal(0.0, 2e-3, total)  # room noise
    return signal


def speakers(split: str) -> tuple[str, ...]:
    """Speaker ids of ``split`` (``"synthetic_prosody/NN"``)."""
    _check_split(split)
    return tuple(f"{CORPUS}/{number:02d}" for number in SPLIT_SPEAKERS[split])


def _check_split(split: str) -> None:
    if split not in SPLIT_SPEAKERS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLIT_SPEAKERS)}")


def generate(split: str, seed: int = 0) -> Iterator[SyntheticClip]:
    """Yield the clips of ``split`` (``"train"``, ``"validation"`` or ``"test"``), deterministically.

    Each speaker of the split says ``CLIPS_PER_SPEAKER_AND_EMOTION`` utterances per emotion: 640 train,
    160 validation and 160 test clips of 1.2-4.2 s (2.1 s on average).
    """
    _check_split(split)
    for number in SPLIT_SPEAKERS[split]:
        speaker = _speaker(number, seed)
        for label, emotion in enumerate(EMOTIONS):
            for i in range(CLIPS_PER_SPEAKER_AND_EMOTION):
                rng = np.random.default_rng([seed, number, label, i])
                text = _TEXTS[(i + number) % len(_TEXTS)]
                audio = _utterance(rng, speaker, emotion, text)
                yield SyntheticClip(
                    key=f"{CORPUS}/{number:02d}/{emotion}/{i:02d}",
                    audio=np.clip(np.round(audio * 32767.0), -32768, 32767).astype(np.int16),
                    emotion=emotion,
                    speaker=f"{CORPUS}/{number:02d}",
                    gender="male" if number % 2 == 1 else "female",
                    text=text,
                )
