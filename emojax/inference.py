"""Predict emotions of any recording with a trained workdir, or an ensemble of several.

Audio is brought to the training data's form (mono, ``features.SAMPLE_RATE`` = 16 kHz), then:

- a clip no longer than the evaluation windows' end (``offset_frames + window_frames`` frames, 3.0 s for the
  reference windows; later when ``test_crops`` > 1 spreads windows over the training crops' range) gets
  exactly the evaluation treatment: full-clip MFCC, the windows at ``input_pipeline.evaluation_offsets``
  (zero-padded); with one window, a clip with less than a quarter window of audio after the offset (under
  1.13 s for the reference windows; rare in the corpora) is taken from its first frame instead, so that the
  window holds its audio;
- a longer recording is cut into windows of ``window_frames`` frames (2.5 s) every half window, the last
  one aligned to the end (``timeline.window_starts``); each window's MFCC (and its per-utterance normalisation,
  if the config asks for one) is computed from its own samples, in chunks of ``LONG_CHUNK_WINDOWS`` windows, so
  feature and model memory stay bounded however long the file is (only the 16 kHz samples are held whole:
  230 MB per hour).

The whole-file prediction is the mean of the window probabilities. ``Predictor.timeline`` gives the same windows
(any hop) as an ``emojax.timeline.Timeline``, with the windows that hold no speech marked silence and left
unclassified; ``Predictor.timeline_file`` computes it streaming the file, in bounded memory however long it is.
A model trained with speaker normalisation (``config.speaker_normalization``) first normalises each MFCC by its
speaker's statistics, which the caller computes from several of that speaker's recordings
(``Predictor.speaker_statistics``) and passes to ``predict``.

    predictor = Predictor.from_workdir("runs/demo")  # or Predictor.from_workdirs([...]): an ensemble
    result = predictor.predict_file("clip.flac")
    result.emotion, result.probabilities["anger"], result.windows[0]["start_seconds"]
    predictor.timeline_file("interview.mp3", smooth=5.0).plot("interview.png")
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import ml_collections
import numpy as np
from tqdm import tqdm

from emojax import checkpoints, features, input_pipeline, pretrained
from emojax.audio import AudioStream, resample, to_mono
from emojax.evaluate import Member, ensemble_probabilities
from emojax.labels import class_names
from emojax.state import make_mesh, model_variables
from emojax.timeline import (FLOOR_DB, SILENCE_DB, SPEECH_FRACTION, Timeline, distribution, frame_levels,
                             silent_windows, window_starts)

CHUNK_WINDOWS = 32  # windows the model classifies in one batch
# Windows of a long recording whose MFCCs are computed (several batches, on the front end's two threads) and then
# classified together while the next chunk's MFCCs are computed: larger chunks keep both cores busy (8.8 MB of MFCCs).
LONG_CHUNK_WINDOWS = 256
PROGRESS_SECONDS = 60.0  # timeline_file shows a progress bar (on a terminal) for recordings longer than this
_HOP = features.FRONT_END["hop_length"]


@dataclasses.dataclass(frozen=True)
class Prediction:
    """The prediction for one recording.

    Attributes:
      file: the path, or None for in-memory audio.
      emotion: the most probable emotion (whole recording): one of the model's classes (``Predictor.classes``, the 8
        emotions for the shipped model, a fine-tuned model's own label set otherwise).
      probabilities: class -> probability (all of them, summing to 1), whole recording.
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


def _cut_windows(blocks: Iterable[np.ndarray], starts: Iterable[int], size: int) -> Iterator[np.ndarray]:
    """Samples ``[start, start + size)`` (fewer at the end) of a recording given as consecutive ``blocks``, for
    increasing ``starts``: views of an in-memory recording given as one block, else holding one window and one
    block at a time."""
    blocks = iter(blocks)
    pending, offset, ended = np.zeros(0, np.float32), 0, False  # samples [offset, offset + len(pending))
    for start in starts:
        while True:
            drop = min(max(start - offset, 0), len(pending))  # samples before the window
            pending, offset = pending[drop:], offset + drop
            if ended or offset + len(pending) >= start + size:
                break
            block = next(blocks, None)
            ended = block is None
            if not ended:
                pending = block if not len(pending) else np.concatenate([pending, block])
        yield pending[start - offset:start + size - offset]


def _ahead(items: Iterator[Any]) -> Iterator[Any]:
    """``items``, each computed on a background thread while the caller works on the one before: the next chunk's
    MFCCs are computed while the model classifies this one (XLA:CPU runs each on one core)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="emojax-ahead") as pool:
        pending = pool.submit(next, items, None)
        while (item := pending.result()) is not None:
            pending = pool.submit(next, items, None)
            yield item


def _counted(blocks: Iterable[np.ndarray], bar: tqdm) -> Iterator[np.ndarray]:
    """``blocks`` of 16 kHz samples, advancing ``bar`` (seconds) by each."""
    for block in blocks:
        bar.update(len(block) / features.SAMPLE_RATE)
        yield block


class Predictor:
    """A trained model, or an ensemble of several, with the normalisation and window settings of each.

    An ensemble's members share their raw windows (``checkpoints.ENSEMBLE_FIXED``: the window settings of
    ``config``, the first member's) and each normalises them with its own statistics (which also pick the inputs it
    reads); a window's probabilities are the mean of the members'.
    """

    def __init__(self, members: Sequence[tuple[ml_collections.ConfigDict, dict, input_pipeline.Normalization]]):
        """``members``: (config, variables {"params", "batch_stats"}, normalization) of each model."""
        mesh = make_mesh()
        self.config = members[0][0]
        self.classes = class_names(self.config)  # the model's outputs, in order (ensemble members share them)
        self._members = [Member.create(config, variables, normalization, mesh, CHUNK_WINDOWS)
                         for config, variables, normalization in members]
        self._pitch = any(config.pitch for config, _, _ in members)  # clips need their pitch rows

    @classmethod
    def from_workdir(cls, workdir: str | Path, which: str = "best") -> Predictor:
        """From the ``"best"`` (or ``"latest"``) checkpoint of a ``train.py`` workdir."""
        return cls.from_workdirs([workdir], which)

    @classmethod
    def from_workdirs(cls, workdirs: Sequence[str | Path], which: str = "best") -> Predictor:
        """An ensemble of the ``which`` checkpoints of several workdirs (``checkpoints.restore_ensemble``)."""
        return cls([(config, model_variables(state), normalization)
                    for config, state, normalization, _ in checkpoints.restore_ensemble(workdirs, which)])

    @classmethod
    def pretrained(cls) -> Predictor:
        """The model shipped with emojax (``emojax.pretrained``; MODEL_CARD.md): trained on all four corpora, it needs
        nothing but the recording, and its prediction does not depend on the recording's level."""
        return cls([pretrained.load()])

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

    def classify_windows(self, windows: Sequence[np.ndarray], speaker: input_pipeline.Statistics | None = None
                         ) -> np.ndarray:
        """(N, C) probabilities of N windows of 16 kHz samples (each at most ``window_samples``), each classified as
        a timeline classifies a window: from its own samples, its features zero-padded to the model's window when it
        is shorter (a recording shorter than one window). ``speaker`` as in ``predict``."""
        if not len(windows):
            return np.zeros((0, len(self.classes)))
        if max(len(w) for w in windows) > self.window_samples or min(len(w) for w in windows) == 0:
            raise ValueError(f"a window must hold 1 to {self.window_samples} samples")
        self._check_speaker(speaker)
        return self._classify(self._rows([np.asarray(w, np.float32) for w in windows]), np.array([0]), speaker)

    def _rows(self, clips: list[np.ndarray]) -> list[input_pipeline.Inputs]:
        """The full-clip rows of 16 kHz ``clips``: ``features.clip_mfccs``, with ``clip_pitch`` when a member reads
        pitch."""
        mfccs = features.clip_mfccs(clips, features.SAMPLE_RATE)
        if not self._pitch:
            return [{"mfcc": m} for m in mfccs]
        return [{"mfcc": m, "pitch": p} for m, p in zip(mfccs, features.clip_pitch(clips, features.SAMPLE_RATE))]

    @property
    def window_samples(self) -> int:
        """Samples at 16 kHz of one window of a long recording: ``config.window_frames`` frames (2.5 s)."""
        return int(round(self.config.window_frames * _HOP / features.MFCC_SAMPLE_RATE * features.SAMPLE_RATE))

    def _window_rows(self, blocks: Iterable[np.ndarray], starts: np.ndarray
                     ) -> Iterator[tuple[list[input_pipeline.Inputs], np.ndarray]]:
        """The full-clip rows (``_rows``) of the windows of ``window_samples`` at ``starts`` (increasing) of a
        recording given as 16 kHz ``blocks``, each from its own samples: (rows, their starts) of
        ``LONG_CHUNK_WINDOWS`` windows at a time."""
        windows = _cut_windows(blocks, starts, self.window_samples)
        for first in range(0, len(starts), LONG_CHUNK_WINDOWS):
            chunk = starts[first:first + LONG_CHUNK_WINDOWS]
            yield self._rows([next(windows) for _ in chunk]), chunk

    def _pieces(self, audio: np.ndarray
                ) -> Iterator[tuple[list[input_pipeline.Inputs], np.ndarray, list[tuple[float, float]]]]:
        """The rows a recording's prediction sees (module docstring), from 16 kHz mono ``audio``: (full-clip rows
        (``_rows``); window offsets into each; the windows' (start, end) seconds), once for a clip, chunk after chunk
        of ``LONG_CHUNK_WINDOWS`` windows for a longer recording."""
        c, rate = self.config, features.SAMPLE_RATE
        frame_seconds = _HOP / features.MFCC_SAMPLE_RATE
        duration = len(audio) / rate
        offsets = input_pipeline.evaluation_offsets(c)
        if self._is_clip(len(audio)):
            clip = self._rows([audio])[0]
            if len(offsets) == 1 and clip["mfcc"].shape[1] < c.offset_frames + c.window_frames // 4:
                offsets = np.array([0])
            yield [clip], offsets, [(max(o, 0) * frame_seconds, min(duration, (o + c.window_frames) * frame_seconds))
                                    for o in offsets]
            return
        size = self.window_samples
        for rows, chunk in _ahead(self._window_rows([audio], window_starts(len(audio), size, size // 2))):
            yield rows, np.array([0]), [(s / rate, (s + size) / rate) for s in chunk]

    def _is_clip(self, samples: int) -> bool:
        """Whether a recording of ``samples`` at 16 kHz ends before its evaluation windows do (module docstring)."""
        end = input_pipeline.evaluation_offsets(self.config).max() + self.config.window_frames
        return samples / features.SAMPLE_RATE <= end * _HOP / features.MFCC_SAMPLE_RATE

    def _check_speaker(self, speaker: input_pipeline.Statistics | None) -> None:
        """Raises ``ValueError`` when the model needs its speaker's statistics and ``speaker`` is None."""
        if speaker is None and self.speaker_normalization != "none":
            raise ValueError(f"this model was trained with speaker normalisation "
                             f"(config.speaker_normalization={self.speaker_normalization!r}): pass "
                             "speaker=predictor.speaker_statistics(<several recordings of the speaker>) (eval.py: "
                             "--one_speaker with several files of one speaker)")

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
        self._check_speaker(speaker)
        audio = _mono_16k(audio, sample_rate)
        windows: list[dict[str, Any]] = []
        probs_list, spans = [], []
        for clips, offsets, piece_spans in self._pieces(audio):
            probs_list.append(self._classify(clips, offsets, speaker))
            spans += piece_spans
        probs = np.concatenate(probs_list)
        for (start, end), p in zip(spans, probs):
            emotion, named = distribution(p, self.classes)
            windows.append({"start_seconds": start, "end_seconds": end, "emotion": emotion, "probabilities": named})
        emotion, named = distribution(probs.mean(axis=0), self.classes)
        return Prediction(file=file, emotion=emotion, probabilities=named, windows=windows,
                          duration_seconds=len(audio) / features.SAMPLE_RATE)

    def predict_file(self, path: str | Path, speaker: input_pipeline.Statistics | None = None) -> Prediction:
        """Predict an audio file (wav, flac, ogg, mp3, aiff, ...: whatever libsndfile reads); ``speaker`` as in
        ``predict``.

        Raises ``FileNotFoundError`` or ``features.AudioFileError`` naming the file when it cannot be read.
        """
        audio, rate = features.load_audio(path, features.SAMPLE_RATE)
        return self.predict(audio, rate, file=str(path), speaker=speaker)

    def timeline(self, audio: np.ndarray, sample_rate: int, hop: float | None = None, smooth: float = 0.0,
                 silence_db: float = SILENCE_DB, floor_db: float = FLOOR_DB,
                 speech_fraction: float = SPEECH_FRACTION, file: str | None = None,
                 speaker: input_pipeline.Statistics | None = None) -> Timeline:
        """The emotions of a recording over time: audio (samples,) or (samples, channels), int PCM or float, any
        rate (Hz).

        Args:
          hop: seconds between window starts (rounded to a 16 kHz sample); None: half a window, the windows of
            ``predict`` on a recording longer than a clip's evaluation span (with the same probabilities).
          smooth: seconds over which probabilities are averaged (``Timeline.smoothed``); 0: none.
          silence_db, floor_db, speech_fraction: which windows are silence (``emojax.timeline``: not classified).
          file: the name the timeline carries.
          speaker: as in ``predict``.

        Returns:
          a ``Timeline`` of this model's ``classes``: windows of ``window_samples`` (2.5 s), each classified from its
          own samples, the last one aligned to the end; a recording shorter than a window is one window, its MFCC
          zero-padded.
        """
        step = self._timeline_step(hop, smooth, speaker)
        audio = _mono_16k(audio, sample_rate)
        return self._timeline(lambda: [audio], frame_levels([audio]), len(audio), file, step, smooth,
                              (silence_db, floor_db, speech_fraction), speaker)

    def timeline_file(self, path: str | Path, hop: float | None = None, smooth: float = 0.0,
                      silence_db: float = SILENCE_DB, floor_db: float = FLOOR_DB,
                      speech_fraction: float = SPEECH_FRACTION,
                      speaker: input_pipeline.Statistics | None = None, progress: bool = True) -> Timeline:
        """``timeline`` of an audio file (whatever libsndfile reads; the same windows and probabilities as
        ``timeline`` of its ``features.load_audio``), streaming it: the file is decoded twice, a block at a time,
        for its frame levels and for its windows, so memory does not grow with its length (the levels take 0.5 MB
        per hour). With ``progress``, a recording longer than ``PROGRESS_SECONDS`` gets a progress bar on stderr
        when stderr is a terminal.

        Raises ``FileNotFoundError`` or ``features.AudioFileError`` naming the file when it cannot be read.
        """
        step = self._timeline_step(hop, smooth, speaker)
        stream = AudioStream(path, features.SAMPLE_RATE)
        show = progress and stream.seconds > PROGRESS_SECONDS
        with tqdm(total=round(stream.seconds, 1), unit="s", desc="levels", disable=None if show else True,
                  bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s [{elapsed}<{remaining}]") as bar:
            samples = 0

            def measured() -> Iterator[np.ndarray]:
                nonlocal samples
                for block in _counted(stream, bar):
                    samples += len(block)
                    yield block

            levels = frame_levels(measured())

            def blocks() -> Iterator[np.ndarray]:
                bar.reset()
                bar.set_description("emotions")
                return _counted(stream, bar)

            return self._timeline(blocks, levels, samples, str(path), step, smooth,
                                  (silence_db, floor_db, speech_fraction), speaker)

    def _timeline_step(self, hop: float | None, smooth: float, speaker: input_pipeline.Statistics | None) -> int:
        """The hop in 16 kHz samples (``timeline``'s ``hop`` seconds, half a window when None), after checking
        ``smooth`` and ``speaker``."""
        self._check_speaker(speaker)
        if smooth < 0:
            raise ValueError(f"smooth must be >= 0 seconds, got {smooth}")
        step = self.window_samples // 2 if hop is None else int(round(hop * features.SAMPLE_RATE))
        if step < 1:
            raise ValueError(f"hop must be at least one sample (1/{features.SAMPLE_RATE} s), got {hop} s")
        return step

    def _timeline(self, blocks: Callable[[], Iterable[np.ndarray]], levels: np.ndarray, samples: int,
                  file: str | None, step: int, smooth: float, silence: tuple[float, float, float],
                  speaker: input_pipeline.Statistics | None) -> Timeline:
        """The timeline of a recording of ``samples`` at 16 kHz whose ``frame_levels`` are ``levels`` and
        whose samples ``blocks()`` gives (called once, after silence is decided, when some window holds speech):
        windows every ``step`` samples, the non-silent ones classified ``LONG_CHUNK_WINDOWS`` at a time."""
        size = self.window_samples
        starts = window_starts(samples, size, step)
        silent = silent_windows(levels, starts, size, *silence)
        probs = np.full((len(starts), len(self.classes)), np.nan)
        kept = np.flatnonzero(~silent)
        done = 0
        for rows, chunk in _ahead(self._window_rows(blocks() if len(kept) else [], starts[kept])):
            probs[kept[done:done + len(chunk)]] = self._classify(rows, np.array([0]), speaker)
            done += len(chunk)
        return Timeline.from_arrays(file, samples, step, size, starts, probs, self.classes).smoothed(smooth)
