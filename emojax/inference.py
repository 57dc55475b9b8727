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
import math
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import ml_collections
import numpy as np
import scipy.signal

from emojax import features, input_pipeline, models, train
from emojax.labels import EMOTIONS

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


def _distribution(probs: np.ndarray) -> tuple[str, dict[str, float]]:
    probs = np.asarray(probs, np.float64)
    probs = probs / probs.sum()
    return EMOTIONS[int(probs.argmax())], {name: float(p) for name, p in zip(EMOTIONS, probs)}


class Predictor:
    """A trained model, or an ensemble of several, with the normalisation and window settings of each.

    An ensemble's members share their raw windows (``train.ENSEMBLE_FIXED``: the window settings of
    ``config``, the first member's) and each normalises them with its own statistics; a window's probabilities
    are the mean of the members'.
    """

    def __init__(self, members: Sequence[tuple[ml_collections.ConfigDict, dict, input_pipeline.Normalization]]):
        """``members``: (config, variables, normalization) of each model (``train.eval_variables`` of its state)."""
        mesh = train.make_mesh()
        self.config = members[0][0]
        self._members = [(train.Trainer(config, models.create_model(config), mesh), variables, normalization,
                          (config.get("speaker_normalization", "none"), config.get("pitch", False)))
                         for config, variables, normalization in members]
        self._pitch = any(config.get("pitch", False) for config, _, _ in members)  # clips need their pitch rows

    @classmethod
    def from_workdir(cls, workdir: str | Path, which: str = "best") -> Predictor:
        """From the ``"best"`` (or ``"latest"``) checkpoint of a ``train.py`` workdir."""
        return cls.from_workdirs([workdir], which)

    @classmethod
    def from_workdirs(cls, workdirs: Sequence[str | Path], which: str = "best") -> Predictor:
        """An ensemble of the ``which`` checkpoints of several workdirs (``train.restore_ensemble``)."""
        return cls([(config, train.eval_variables(state), normalization)
                    for config, state, normalization, _ in train.restore_ensemble(workdirs, which)])

    @property
    def speaker_normalization(self) -> str:
        """The speaker normalisation a member was trained with (``config.speaker_normalization``), ``"none"`` if
        none was; a model with one predicts only with its speaker's statistics (``speaker_statistics``)."""
        kinds = [kind for *_, (kind, _) in self._members if kind != "none"]
        return kinds[0] if kinds else "none"

    def _classify(self, mfccs: Sequence[np.ndarray], offsets: Sequence[int],
                  speaker: input_pipeline.SpeakerStatistics | None) -> np.ndarray:
        """Full MFCCs (40, T_i) (with their pitch rows, (42, T_i), when a member reads them) of M clips -> (M * K, C)
        probabilities of their windows at ``offsets`` (K of them; clip after clip), the mean over the members, each
        with its own speaker and window normalisation."""
        c = self.config
        utterance = c.get("utterance_normalization", "none")
        windows: dict[tuple[str, bool], np.ndarray] = {}  # (speaker normalisation, pitch) -> raw windows
        probs = []
        for trainer, variables, normalization, (kind, pitch) in self._members:
            if (kind, pitch) not in windows:
                windows[kind, pitch] = np.concatenate([input_pipeline.crop_windows(
                    input_pipeline.normalize_by_speaker(mfcc, speaker, kind), offsets, c.window_frames, c.n_mfcc,
                    utterance, pitch) for mfcc in mfccs])
            probs.append(trainer.predict(variables, normalization(windows[kind, pitch]), batch_size=CHUNK_WINDOWS))
        return np.mean(probs, axis=0)

    @staticmethod
    def _mono(audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """Audio (samples,) or (samples, channels), int PCM or float, any rate -> (samples,) float32 at
        ``features.SAMPLE_RATE``."""
        audio = np.asarray(audio)
        if np.issubdtype(audio.dtype, np.integer):
            audio = audio.astype(np.float32) / np.float32(-np.iinfo(audio.dtype).min)
        audio = audio.astype(np.float32, copy=False)
        if audio.ndim == 2:
            audio = audio.mean(axis=1)
        if audio.ndim != 1 or audio.size == 0:
            raise ValueError(f"audio must be non-empty (samples,) or (samples, channels), got shape {audio.shape}")
        rate = features.SAMPLE_RATE
        if sample_rate != rate:
            g = math.gcd(int(sample_rate), rate)
            audio = scipy.signal.resample_poly(audio, rate // g, int(sample_rate) // g).astype(np.float32)
        return audio

    def _rows(self, clips: list[np.ndarray]) -> list[np.ndarray]:
        """``features.clip_mfccs`` of 16 kHz ``clips``, with their ``clip_pitch`` rows when a member reads them."""
        mfccs = features.clip_mfccs(clips, features.SAMPLE_RATE)
        if not self._pitch:
            return mfccs
        pitches = features.clip_pitch(clips, features.SAMPLE_RATE)
        return [input_pipeline.with_pitch(m, p) for m, p in zip(mfccs, pitches)]

    def _pieces(self, audio: np.ndarray) -> Iterator[tuple[list[np.ndarray], np.ndarray, list[tuple[float, float]]]]:
        """The MFCCs a recording's prediction sees (module docstring), from 16 kHz mono ``audio``: (full MFCCs
        (40, T_i), with their pitch rows (42, T_i) when a member reads them; window offsets into each; the windows'
        (start, end) seconds), once for a clip, chunk after chunk of ``CHUNK_WINDOWS`` windows for a longer
        recording."""
        c, rate = self.config, features.SAMPLE_RATE
        frame_seconds = _HOP / features.MFCC_SAMPLE_RATE
        duration = len(audio) / rate
        offsets = input_pipeline.evaluation_offsets(c)
        if duration <= (offsets.max() + c.window_frames) * frame_seconds:
            mfcc = self._rows([audio])[0]
            if len(offsets) == 1 and mfcc.shape[1] < c.offset_frames + c.window_frames // 4:
                offsets = np.array([0])
            yield [mfcc], offsets, [(max(o, 0) * frame_seconds, min(duration, (o + c.window_frames) * frame_seconds))
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

    def speaker_statistics(self, recordings: Iterable[tuple[np.ndarray, int]]) -> input_pipeline.SpeakerStatistics:
        """A speaker's statistics for a model trained with speaker normalisation: ``input_pipeline.frame_statistics``
        of the MFCCs the predictions of their ``recordings`` ((audio, sample rate) pairs, as ``predict`` takes)
        see. In training they came from 35 or more clips per speaker; give as many as you have (with fewer than ~10,
        a model trained without speaker normalisation did better: BENCHMARKS.md, session 16)."""
        return input_pipeline.frame_statistics([mfcc for audio, rate in recordings
                                                for mfccs, _, _ in self._pieces(self._mono(audio, rate))
                                                for mfcc in mfccs])

    def predict(self, audio: np.ndarray, sample_rate: int, file: str | None = None,
                speaker: input_pipeline.SpeakerStatistics | None = None) -> Prediction:
        """Predict one recording: audio (samples,) or (samples, channels), int PCM or float, any rate (Hz).

        ``speaker``: its speaker's ``speaker_statistics``, required by a model trained with speaker normalisation
        (``speaker_normalization``) and unused by the others.
        """
        if speaker is None and self.speaker_normalization != "none":
            raise ValueError(f"this model was trained with speaker normalisation "
                             f"(config.speaker_normalization={self.speaker_normalization!r}): pass "
                             "speaker=predictor.speaker_statistics(<several recordings of the speaker>) (eval.py: "
                             "--one_speaker with several files of one speaker)")
        audio = self._mono(audio, sample_rate)
        windows: list[dict[str, Any]] = []
        probs_list, spans = [], []
        for mfccs, offsets, piece_spans in self._pieces(audio):
            probs_list.append(self._classify(mfccs, offsets, speaker))
            spans += piece_spans
        probs = np.concatenate(probs_list)
        for (start, end), p in zip(spans, probs):
            emotion, distribution = _distribution(p)
            windows.append({"start_seconds": start, "end_seconds": end, "emotion": emotion,
                            "probabilities": distribution})
        emotion, distribution = _distribution(probs.mean(axis=0))
        return Prediction(file=file, emotion=emotion, probabilities=distribution, windows=windows,
                          duration_seconds=len(audio) / features.SAMPLE_RATE)

    def predict_file(self, path: str | Path, speaker: input_pipeline.SpeakerStatistics | None = None) -> Prediction:
        """Predict an audio file (wav, flac, ogg, mp3, aiff, ...: whatever libsndfile reads); ``speaker`` as in
        ``predict``.

        Raises ``FileNotFoundError`` or ``features.AudioFileError`` naming the file when it cannot be read.
        """
        audio, rate = features.load_audio(path, features.SAMPLE_RATE)
        return self.predict(audio, rate, file=str(path), speaker=speaker)
