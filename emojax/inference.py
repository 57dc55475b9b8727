"""Predict emotions of any recording with a trained workdir, or an ensemble of several.

Audio is brought to the training data's form (mono, ``features.SAMPLE_RATE`` = 16 kHz), then:

- a clip no longer than the evaluation windows' end (``offset_frames + window_frames`` frames, 3.0 s for the
  reference windows; later when ``test_crops`` > 1 spreads windows over the training crops' range) gets
  exactly the evaluation treatment: full-clip MFCC, the windows at ``input_pipeline.evaluation_offsets``
  (zero-padded); with one window, a clip with less than a quarter window of audio after the offset (under
  1.13 s for the reference windows; rare in the corpora) is taken from its first frame instead, so that the
  window holds its audio;
- a longer recording is cut into windows of ``window_frames`` frames (2.5 s) every half window, the last
  one aligned to the end; each window's MFCC (and its per-utterance normalisation, if the config asks for
  one) is computed from its own samples, in chunks of
  ``CHUNK_WINDOWS`` windows, so feature and model memory stay bounded however long the file is (only
  the 16 kHz samples are held whole: 230 MB per hour).

The whole-file prediction is the mean of the window probabilities. A model trained with speaker normalisation
(``config.speaker_normalization``) first normalises each MFCC by its speaker's statistics, which the caller computes
from several of that speaker's recordings (``Predictor.speaker_statistics``) and passes to ``predict``.

    predictor = Predictor.from_workdir("runs/demo")  # or Predictor.from_workdirs([...]): an ensemble
    result = predictor.predict_file("clip.flac")
    result.emotion, result.probabilities["anger"], result.windows[0]["start_seconds"]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import ml_collections
import numpy as np

from emojax import checkpoints, features, input_pipeline
from emojax.audio import resample, to_mono
from emojax.evaluate import Member, ensemble_probabilities
from emojax.labels import EMOTIONS
from emojax.state import make_mesh

CHUNK_WINDOWS = 32  # windows whose MFCCs are computed and classified at once
_HOP = features.FRONT_END["hop_length"]


@dataclasses.dataclass(frozen=True)
class Prediction:
    """The prediction for one recording.

    Attributes:
      file: the path, or None for in-memory audio.
      emotion: the most probable emotion (whole recording).
      probabilities: emotion -> probability (all 8, summing to 1), whole recording.
      windows: one dict per window: start_seconds, end_seconds, emotion, probabilities.
      duration_seconds: length of the recording.
    """

    file: str | None
    emotion: str
    probabilities: dict[str, float]
    windows: list[dict[str, Any]]
    duration_seconds: float

    @property
    def probability(self) -> float:
        """Probability of ``emotion``."""
        return self.probabilities[self.emotion]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _mono_16k(y: np.ndarray, sample_rate: int) -> np.ndarray:
    """Audio (samples,) or (samples, channels), int PCM or float, any rate -> (samples,) float32 at 16 kHz."""
    return resample(to_mono(np.asarray(y)), int(sample_rate), features.SAMPLE_RATE)


def _distribution(probs: np.ndarray) -> tuple[str, dict[str, float]]:
    probs = np.asarray(probs, np.float64)
    probs = probs / probs.sum()
    return EMOTIONS[int(probs.argmax())], {name: float(p) for name, p in zip(EMOTIONS, probs)}


class Predictor:
    """A trained model, or an ensemble of several, with the normalisation and window settings of each.

    An ensemble's members share their raw windows (``checkpoints.ENSEMBLE_FIXED``: the window settings of
    ``config``, the first member's) and each normalises them with its own statistics (which also pick the inputs it
    reads); a window's probabilities are the mean of the members'.
    """

    def __init__(self, members: Sequence[tuple[ml_collections.ConfigDict, Any, input_pipeline.Normalization]]):
        """``members``: (config, state, normalization) of each model, as ``checkpoints.restore`` gives them."""
        mesh = make_mesh()
        self.config = members[0][0]
        self._members = [Member.restored(config, state, normalization, mesh, CHUNK_WINDOWS)
                         for config, state, normalization in members]
        self._pitch = any(config.pitch for config, _, _ in members)  # clips need their pitch rows

    @classmethod
    def from_workdir(cls, workdir: str | Path, which: str = "best") -> Predictor:
        """From the ``"best"`` (or ``"latest"``) checkpoint of a ``train.py`` workdir."""
        return cls.from_workdirs([workdir], which)

    @classmethod
    def from_workdirs(cls, workdirs: Sequence[str | Path], which: str = "best") -> Predictor:
        """An ensemble of the ``which`` checkpoints of several workdirs (``checkpoints.restore_ensemble``)."""
        return cls([(config, state, normalization)
                    for config, state, normalization, _ in checkpoints.restore_ensemble(workdirs, which)])

    @property
    def speaker_normalization(self) -> str:
        """The speaker normalisation a member was trained with (``config.speaker_normalization``), ``"none"`` if
        none was; a model with one predicts only with its speaker's statistics (``speaker_statistics``)."""
        kinds = [m.speaker_normalization for m in self._members if m.speaker_normalization != "none"]
        return kinds[0] if kinds else "none"

    def _classify(self, clips: Sequence[input_pipeline.Inputs], offsets: Sequence[int],
                  speaker: input_pipeline.Statistics | None) -> np.ndarray:
        """Full-clip rows of M clips (``{"mfcc": (40, T_i)}``, with ``"pitch": (2, T_i)`` when a member reads pitch)
        -> (M * K, C) probabilities of their windows at ``offsets`` (K of them; clip after clip), the mean over the
        members, each with its own speaker and window normalisation."""
        c = self.config

        def windows(kind: str) -> input_pipeline.Inputs:  # {name: (M * K, 1, R, frames)}: one window per "clip"
            per_clip = [input_pipeline.clip_windows(input_pipeline.normalize_by_speaker(clip, speaker, kind),
                                                    offsets, c.window_frames, c.n_mfcc, c.utterance_normalization)
                        for clip in clips]
            return {name: np.concatenate([w[name] for w in per_clip])[:, None] for name in per_clip[0]}

        return ensemble_probabilities(self._members, windows)

    def _rows(self, clips: list[np.ndarray]) -> list[input_pipeline.Inputs]:
        """The full-clip rows of 16 kHz ``clips``: ``features.clip_mfccs``, with ``clip_pitch`` when a member reads
        pitch."""
        mfccs = features.clip_mfccs(clips, features.SAMPLE_RATE)
        if not self._pitch:
            return [{"mfcc": m} for m in mfccs]
        return [{"mfcc": m, "pitch": p} for m, p in zip(mfccs, features.clip_pitch(clips, features.SAMPLE_RATE))]

    def _pieces(self, audio: np.ndarray
                ) -> Iterator[tuple[list[input_pipeline.Inputs], np.ndarray, list[tuple[float, float]]]]:
        """The rows a recording's prediction sees (module docstring), from 16 kHz mono ``audio``: (full-clip rows
        (``_rows``); window offsets into each; the windows' (start, end) seconds), once for a clip, chunk after chunk
        of ``CHUNK_WINDOWS`` windows for a longer recording."""
        c, rate = self.config, features.SAMPLE_RATE
        frame_seconds = _HOP / features.MFCC_SAMPLE_RATE
        duration = len(audio) / rate
        offsets = input_pipeline.evaluation_offsets(c)
        if duration <= (offsets.max() + c.window_frames) * frame_seconds:
            clip = self._rows([audio])[0]
            if len(offsets) == 1 and clip["mfcc"].shape[1] < c.offset_frames + c.window_frames // 4:
                offsets = np.array([0])
            yield [clip], offsets, [(max(o, 0) * frame_seconds, min(duration, (o + c.window_frames) * frame_seconds))
                                    for o in offsets]
            return
        size = int(round(c.window_frames * frame_seconds * rate))
        starts = list(range(0, len(audio) - size + 1, size // 2))
        if starts[-1] + size < len(audio):
            starts.append(len(audio) - size)
        for first in range(0, len(starts), CHUNK_WINDOWS):
            chunk = starts[first:first + CHUNK_WINDOWS]
            yield (self._rows([audio[s:s + size] for s in chunk]), np.array([0]),
                   [(s / rate, (s + size) / rate) for s in chunk])

    def speaker_statistics(self, recordings: Iterable[tuple[np.ndarray, int]]) -> input_pipeline.Statistics:
        """A speaker's statistics for a model trained with speaker normalisation: ``input_pipeline.frame_statistics``
        of the rows the predictions of their ``recordings`` ((audio, sample rate) pairs, as ``predict`` takes)
        see. In training they came from 35 or more clips per speaker; give as many as you have (with fewer than ~10,
        a model trained without speaker normalisation did better: BENCHMARKS.md, "Accuracy")."""
        return input_pipeline.frame_statistics([clip for y, rate in recordings
                                                for clips, _, _ in self._pieces(_mono_16k(y, rate))
                                                for clip in clips])

    def predict(self, audio: np.ndarray, sample_rate: int, file: str | None = None,
                speaker: input_pipeline.Statistics | None = None) -> Prediction:
        """Predict one recording: audio (samples,) or (samples, channels), int PCM or float, any rate (Hz).

        ``speaker``: its speaker's ``speaker_statistics``, required by a model trained with speaker normalisation
        (``speaker_normalization``) and unused by the others.
        """
        if speaker is None and self.speaker_normalization != "none":
            raise ValueError(f"this model was trained with speaker normalisation "
                             f"(config.speaker_normalization={self.speaker_normalization!r}): pass "
                             "speaker=predictor.speaker_statistics(<several recordings of the speaker>) (eval.py: "
                             "--one_speaker with several files of one speaker)")
        audio = _mono_16k(audio, sample_rate)
        windows: list[dict[str, Any]] = []
        probs_list, spans = [], []
        for clips, offsets, piece_spans in self._pieces(audio):
            probs_list.append(self._classify(clips, offsets, speaker))
            spans += piece_spans
        probs = np.concatenate(probs_list)
        for (start, end), p in zip(spans, probs):
            emotion, distribution = _distribution(p)
            windows.append({"start_seconds": start, "end_seconds": end, "emotion": emotion,
                            "probabilities": distribution})
        emotion, distribution = _distribution(probs.mean(axis=0))
        return Prediction(file=file, emotion=emotion, probabilities=distribution, windows=windows,
                          duration_seconds=len(audio) / features.SAMPLE_RATE)

    def predict_file(self, path: str | Path, speaker: input_pipeline.Statistics | None = None) -> Prediction:
        """Predict an audio file (wav, flac, ogg, mp3, aiff, ...: whatever libsndfile reads); ``speaker`` as in
        ``predict``.

        Raises ``FileNotFoundError`` or ``features.AudioFileError`` naming the file when it cannot be read.
        """
        audio, rate = features.load_audio(path, features.SAMPLE_RATE)
        return self.predict(audio, rate, file=str(path), speaker=speaker)
