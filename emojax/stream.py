"""Emotions of a live audio stream: 16 kHz samples fed as they arrive, a window classified whenever one completes.

``StreamPredictor`` gives, for the same audio, the windows of the offline ``Predictor.timeline(audio, 16000,
hop=<its hop>)``: the same starts (every ``hop`` seconds, and on ``finish`` the last one aligned to the end, or one
window for a stream shorter than a window) and the same probabilities (each window classified from its own samples
by ``Predictor.timeline``; equal to 1e-5, as batches of other sizes round differently).

Silence is decided by the offline rule (``emojax.timeline``) with what is known when the window completes: a
window's frames are compared with the loud level of the frames received so far (up to the window's last frame)
rather than of the whole recording. The decisions are the offline ones wherever the recording's loudest speech has
already been heard; before that a quieter stretch counts as speech sooner than offline (a stream that starts softly
and later gets loud), and after a louder stretch later speech that is more than ``silence_db`` below it turns
silence, as it does offline. The windows ``finish`` adds see every frame, as offline. A window is emitted once its
last frame (``FRAME_SAMPLES``, 32 ms) is complete: at most 32 ms of audio after its end.

    stream = StreamPredictor(Predictor.from_workdir("runs/demo"), hop=0.5)
    for chunk in chunks_of_16k_float32_samples:
        for window in stream.feed(chunk):     # emojax.timeline.Window: start/end seconds, emotion, probabilities
            print(window.start_seconds, window.emotion)
    stream.finish()                           # the last window, aligned to the end of the stream
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from emojax.audio import SAMPLE_RATE
from emojax.inference import Predictor
from emojax.timeline import (FLOOR_DB, FRAME_SAMPLES, SILENCE, SILENCE_DB, SPEECH_FRACTION, Window, distribution,
                             frame_levels, silent_windows)

HOP_SECONDS = 0.5
"""Default seconds between the starts of consecutive windows of a stream."""


@dataclasses.dataclass(frozen=True)
class CutWindow:
    """A window of a stream before classification: its first sample, its samples (``window_samples``, fewer only
    for a stream shorter than a window) and whether it holds no speech."""

    start: int
    samples: np.ndarray
    silent: bool

    def to_window(self, probabilities: np.ndarray | None, classes: Sequence[str]) -> Window:
        """The timeline ``Window`` of this cut with its (C,) ``probabilities`` of the model's ``classes`` (None, or
        ignored, when silent)."""
        span = self.start / SAMPLE_RATE, (self.start + len(self.samples)) / SAMPLE_RATE
        if self.silent or probabilities is None:
            return Window(*span, SILENCE, None)
        return Window(*span, *distribution(probabilities, classes))


class WindowCutter:
    """Cuts a stream of 16 kHz float samples into windows of ``size`` samples every ``hop`` samples and decides
    which are silent (module docstring), holding one window of samples plus the frame levels (0.5 MB per hour).

    The windows do not depend on how the stream is cut into chunks.
    """

    def __init__(self, size: int, hop: int, silence_db: float = SILENCE_DB, floor_db: float = FLOOR_DB,
                 speech_fraction: float = SPEECH_FRACTION):
        if size < 1 or hop < 1:
            raise ValueError(f"the window ({size} samples) and hop ({hop} samples) must be at least one sample")
        silent_windows(np.zeros(1, np.float32), np.zeros(1, int), size, silence_db, floor_db,
                       speech_fraction)  # raises ValueError for thresholds it does not take
        self.size, self.hop = size, hop
        self._silence = (silence_db, floor_db, speech_fraction)
        self._buffer = np.zeros(0, np.float32)  # samples [self._offset, self.samples)
        self._offset = 0
        self.samples = 0
        """Samples received so far."""
        self._next = 0  # start of the next window every hop
        self._last: int | None = None  # start of the last window emitted
        self._levels: list[np.ndarray] = []  # levels of the complete frames
        self._frames = 0
        self._carry = np.zeros(0, np.float32)  # samples of the incomplete frame
        self._finished = False

    def feed(self, chunk: np.ndarray) -> list[CutWindow]:
        """Appends ``chunk`` (samples,) float in [-1, 1] at 16 kHz; returns the windows it completes, in order.

        Raises ``ValueError`` for a chunk that is not 1-D or holds NaN or infinite samples (nothing is appended), and
        ``RuntimeError`` after ``finish``.
        """
        if self._finished:
            raise RuntimeError("this stream is finished; start a new one")
        chunk = np.asarray(chunk, np.float32)
        if chunk.ndim != 1:
            raise ValueError(f"a chunk must be 1-D samples, got shape {chunk.shape}")
        if not np.isfinite(chunk).all():
            raise ValueError("a chunk holds NaN or infinite samples")
        self._buffer = np.concatenate([self._buffer, chunk])
        self.samples += len(chunk)
        carry = np.concatenate([self._carry, chunk])
        whole = len(carry) // FRAME_SAMPLES * FRAME_SAMPLES
        if whole:
            self._levels.append(frame_levels([carry[:whole]]))
            self._frames += whole // FRAME_SAMPLES
        self._carry = carry[whole:]
        windows = []
        while self._next + self.size <= self.samples and -(-(self._next + self.size) // FRAME_SAMPLES) <= self._frames:
            windows.append(self._cut(self._next))
            self._next += self.hop
        self._trim()
        return windows

    def finish(self) -> list[CutWindow]:
        """Ends the stream; returns the windows still to come: those its last incomplete frame held back, then the
        last one aligned to the end (as ``emojax.timeline.window_starts``), or the one window of a stream shorter
        than a window; none for an empty stream."""
        if self._finished:
            return []
        self._finished = True
        if len(self._carry):
            self._levels.append(frame_levels([self._carry]))
            self._frames += 1
        windows = []
        while self._next + self.size <= self.samples:
            windows.append(self._cut(self._next))
            self._next += self.hop
        if self.samples and (self._last is None or self._last + self.size < self.samples):
            windows.append(self._cut(max(self.samples - self.size, 0)))
        self._buffer = np.zeros(0, np.float32)
        return windows

    def _cut(self, start: int) -> CutWindow:
        """The window at ``start``, its silence decided on the frames up to its last one."""
        end = min(start + self.size, self.samples)
        levels = np.concatenate(self._levels)[:-(-end // FRAME_SAMPLES)]
        silent = bool(silent_windows(levels, np.array([start]), self.size, *self._silence)[0])
        self._last = start
        return CutWindow(start, self._buffer[start - self._offset:end - self._offset].copy(), silent)

    def _trim(self) -> None:
        """Keeps the samples from the next window's start, or the last window's worth if that starts earlier (the
        window ``finish`` aligns to the end)."""
        keep = max(min(self._next, self.samples - self.size), self._offset)
        self._buffer, self._offset = self._buffer[keep - self._offset:], keep
        if len(self._levels) > 1:
            self._levels = [np.concatenate(self._levels)]


class StreamPredictor:
    """A predictor fed a live stream of 16 kHz samples: ``feed`` returns the timeline windows (``Window``, with the
    probabilities of the model's classes, ``Predictor.classes``) each chunk completes, classified at once; ``finish``
    the last ones (module docstring)."""

    def __init__(self, predictor: Predictor, hop: float = HOP_SECONDS, silence_db: float = SILENCE_DB,
                 floor_db: float = FLOOR_DB, speech_fraction: float = SPEECH_FRACTION):
        """``hop``: seconds between window starts (rounded to a sample); the silence thresholds as in
        ``Predictor.timeline``. A model trained with speaker normalisation is refused (it needs the speaker's
        statistics)."""
        if predictor.speaker_normalization != "none":
            raise ValueError("this model was trained with speaker normalisation: it needs several recordings of the "
                             "speaker and cannot classify a live stream; use a model trained without it")
        self.predictor = predictor
        self.cutter = WindowCutter(predictor.window_samples, int(round(hop * SAMPLE_RATE)), silence_db, floor_db,
                                   speech_fraction)

    def feed(self, chunk: np.ndarray) -> list[Window]:
        """The windows that ``chunk`` ((samples,) float in [-1, 1] at 16 kHz) completes (``WindowCutter.feed``)."""
        return self._classified(self.cutter.feed(chunk))

    def finish(self) -> list[Window]:
        """The windows still to come at the end of the stream (``WindowCutter.finish``)."""
        return self._classified(self.cutter.finish())

    def _classified(self, cuts: list[CutWindow]) -> list[Window]:
        speech = [c for c in cuts if not c.silent]
        probs = iter(self.predictor.classify_windows([c.samples for c in speech]) if speech else [])
        return [c.to_window(None if c.silent else next(probs), self.predictor.classes) for c in cuts]
