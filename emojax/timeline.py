"""Emotions over time in a long recording: its windows, which of them are silence, smoothing, segments, and the
CSV, JSON and PNG a person reads.

A recording is cut into windows of the model's input length (``Predictor``: ``window_frames`` frames, 2.5 s) every
``hop`` samples, the last window aligned to the end (``window_starts``); ``Predictor.timeline`` classifies each one
from its own samples. A window that holds no speech is marked ``"silence"`` and not classified (``silent_windows``):

- each ``FRAME_SAMPLES`` frame (32 ms at 16 kHz) gets its level, the RMS in dBFS (a full-scale square wave is 0 dB);
- the recording's loud level is the ``LOUD_PERCENTILE`` percentile of the levels of its frames above the floor;
- a frame is speech when its level is within ``silence_db`` of the loud level and at least ``floor_db``;
- a window is silence when fewer than ``speech_fraction`` of its frames are speech.

The defaults were measured on 80 recordings of each of RAVDESS, CREMA-D, SAVEE and TESS, each corpus's recordings
joined into one long recording: at least 31 % of every recording's frames lie within 40 dB of that loud level (one
speaker's acted speech spans ~35 dB, from calm to shouted anger), so 40 dB and 20 % keep every recording as speech;
with 35 dB a SAVEE recording kept only 17 %. Room noise (a recording's quietest 5 % of frames) lies a median 71 dB
(RAVDESS), 51 dB (SAVEE) and 35 dB (TESS) below the recording's own loud level, but only 19 dB (9-33) in CREMA-D: in
a recording whose background is that loud, pauses count as speech unless ``silence_db`` is lowered (e.g. to 20). A
recording that is speech for less than 5 % of its length has its loud level in the background. Digital silence
(zeros, dither) is below the -70 dBFS floor, so a silent file is all ``"silence"``.
"""

from __future__ import annotations

import colorsys
import csv
import dataclasses
import functools
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from emojax.audio import SAMPLE_RATE
from emojax.labels import EMOTIONS

SILENCE = "silence"
"""The emotion of a window that holds no speech (it has no probabilities)."""
FRAME_SAMPLES = 512
"""Samples (at 16 kHz: 32 ms) per frame whose level decides silence."""
LOUD_PERCENTILE = 95.0
"""Percentile of a recording's frame levels (above the floor) that is its loud level."""
SILENCE_DB = 40.0
"""Default: a frame more than this many dB below the loud level is not speech."""
FLOOR_DB = -70.0
"""Default: a frame below this level (dBFS) is not speech, whatever the recording's loud level."""
SPEECH_FRACTION = 0.2
"""Default: a window with fewer speech frames than this fraction (0.5 s of a 2.5 s window) is silence."""
# One colour per emotion in every plot (ColorBrewer Set2/Dark2 and Tableau hues, told apart in colour-blind views).
COLOURS = {"neutral": "#8da0cb", "calm": "#66c2a5", "happiness": "#ffd92f", "sadness": "#1f4e9c",
           "anger": "#d62728", "fear": "#7b3294", "disgust": "#8c6d31", "surprise": "#fc8d62"}
# The colours of other classes (a fine-tuned model's own), in turn: Tableau 20 without its greys (grey is silence).
PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
           "#a0cbe8", "#ffbe7d", "#8cd17d", "#b6992d", "#f1ce63", "#499894", "#86bcb6", "#ff9d9a", "#d37295",
           "#fabfd2", "#d4a6c8", "#d7b5a6")
_SILENCE_COLOUR = "#d9d9d9"
PLOT_COLUMNS = 500
"""``Timeline.plot`` draws at most this many columns (2 pixels each); longer timelines are averaged into them."""


def class_colours(classes: Sequence[str]) -> dict[str, str]:
    """The colour (``#rrggbb``) of each of a model's ``classes``, in their order: an emotion's own (``COLOURS``); the
    other classes the ``PALETTE`` colours in turn, then, past its end, hues spaced by the golden angle. Never grey
    (silence); the same classes always get the same colours."""
    extra = [colorsys.hls_to_rgb(i * 0.618034 % 1, 0.45, 0.6)
             for i in range(sum(name not in COLOURS for name in classes) - len(PALETTE))]
    spare = iter([*PALETTE, *("#" + "".join(f"{round(c * 255):02x}" for c in rgb) for rgb in extra)])
    return {name: COLOURS.get(name) or next(spare) for name in classes}


def _text_colour(colour: str) -> str:
    """Black or white, whichever reads better on ``colour`` (``#rrggbb``; as the page's ``readableOn``)."""
    r, g, b = (int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5))
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.6 else "white"


def window_starts(samples: int, size: int, hop: int) -> np.ndarray:
    """Start samples (W,) of the windows of ``size`` samples every ``hop`` over a recording of ``samples``, the last
    one aligned to the end; one window at 0 for a recording shorter than a window."""
    if hop < 1 or size < 1:
        raise ValueError(f"the window ({size} samples) and hop ({hop} samples) must be at least one sample")
    starts = np.arange(0, max(samples - size, 0) + 1, hop)
    if starts[-1] + size < samples:
        starts = np.append(starts, samples - size)
    return starts


def frame_levels(blocks: Iterable[np.ndarray]) -> np.ndarray:
    """Levels (frames,) float32 in dBFS, ``20 log10(RMS)``, of the ``FRAME_SAMPLES`` frames of the recording
    ``blocks`` (consecutive float pieces of its samples, cut anywhere); the last frame may be shorter."""
    levels, carry = [], np.zeros(0, np.float32)

    def rms_db(frames: np.ndarray) -> np.ndarray:
        power = np.einsum("ij,ij->i", frames, frames, dtype=np.float64) / frames.shape[1]
        return (10.0 * np.log10(np.maximum(power, 1e-20))).astype(np.float32)

    for block in blocks:
        block = np.asarray(block, np.float32)
        y = block if not len(carry) else np.concatenate([carry, block])
        whole = len(y) // FRAME_SAMPLES * FRAME_SAMPLES
        for first in range(0, whole, FRAME_SAMPLES << 11):  # 1M samples at a time: no copy of a long recording
            levels.append(rms_db(y[first:min(first + (FRAME_SAMPLES << 11), whole)].reshape(-1, FRAME_SAMPLES)))
        carry = y[whole:].copy()
    if len(carry):
        levels.append(rms_db(carry[None]))
    return np.concatenate(levels) if levels else np.zeros(0, np.float32)


def silent_windows(levels: np.ndarray, starts: np.ndarray, size: int, silence_db: float = SILENCE_DB,
                   floor_db: float = FLOOR_DB, speech_fraction: float = SPEECH_FRACTION) -> np.ndarray:
    """Which windows (W,) bool hold no speech (module docstring): ``levels`` are the recording's ``frame_levels``,
    ``starts`` (W,) and ``size`` its windows in samples. A window's frames are those starting inside it."""
    if silence_db <= 0 or not 0 < speech_fraction <= 1:
        raise ValueError(f"silence_db must be > 0 dB and speech_fraction in (0, 1], got {silence_db} and "
                         f"{speech_fraction}")
    audible = levels[levels >= floor_db]
    if not len(audible):
        return np.ones(len(starts), bool)
    speech = levels >= max(float(np.percentile(audible, LOUD_PERCENTILE)) - silence_db, floor_db)
    counts = np.concatenate([[0], np.cumsum(speech)])
    first = -(-np.asarray(starts) // FRAME_SAMPLES)
    last = np.minimum(-(-(np.asarray(starts) + size) // FRAME_SAMPLES), len(levels))
    frames = np.maximum(last - first, 1)
    return (counts[last] - counts[np.minimum(first, last)]) < speech_fraction * frames


@dataclasses.dataclass(frozen=True)
class Window:
    """One window of a timeline: its span in seconds, its emotion (one of the model's classes, ``SILENCE`` when it
    holds no speech) and the probability of each class, in the classes' order (None for silence)."""

    start_seconds: float
    end_seconds: float
    emotion: str
    probabilities: dict[str, float] | None

    @property
    def silent(self) -> bool:
        return self.probabilities is None

    @property
    def centre_seconds(self) -> float:
        return (self.start_seconds + self.end_seconds) / 2

    def to_dict(self) -> dict[str, Any]:
        """``start_seconds, end_seconds, emotion, probabilities``: the form of ``Prediction.windows``."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Segment:
    """Consecutive windows of one emotion: from ``start_seconds`` to ``end_seconds`` (the segments of a timeline
    cover the recording without overlap: the border between two windows is halfway between their centres), the
    emotion and its mean probability over the windows (None for silence)."""

    start_seconds: float
    end_seconds: float
    emotion: str
    probability: float | None


def distribution(probabilities: np.ndarray, classes: Sequence[str]) -> tuple[str, dict[str, float]]:
    """The most probable of ``classes`` and each one's probability (name -> float, in their order), from
    ``probabilities`` (C,) scaled to sum to 1."""
    p = np.asarray(probabilities, np.float64)
    p = p / p.sum()
    return classes[int(p.argmax())], dict(zip(classes, map(float, p)))


def _format_time(seconds: float, hours: bool) -> str:
    """``m:ss`` (``h:mm:ss`` with ``hours``) of a time in seconds, rounded down to the second."""
    whole = int(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}" if hours else f"{whole // 60}:{whole % 60:02d}"


@dataclasses.dataclass(frozen=True)
class Timeline:
    """The emotions of a recording over time (``Predictor.timeline``).

    Attributes:
      file: the path, or None for in-memory audio.
      duration_seconds: length of the recording.
      hop_seconds: time between the starts of consecutive windows (the last one is aligned to the end).
      window_seconds: length of a window.
      smooth_seconds: the smoothing applied to the probabilities (``smoothed``), 0 for none.
      windows: the windows in time order.
      classes: the model's classes (``Predictor.classes``; the 8 ``EMOTIONS`` for the shipped model), in the order
        of its outputs: the names of the windows' probabilities, the CSV's columns and the plot's colours.
    """

    file: str | None
    duration_seconds: float
    hop_seconds: float
    window_seconds: float
    smooth_seconds: float
    windows: tuple[Window, ...]
    classes: tuple[str, ...] = EMOTIONS

    @classmethod
    def from_arrays(cls, file: str | None, samples: int, hop: int, size: int, starts: np.ndarray,
                    probabilities: np.ndarray, classes: Sequence[str] = EMOTIONS) -> Timeline:
        """A timeline of ``samples`` at 16 kHz from its windows' ``starts`` (W,) and ``size`` (samples) and their
        ``probabilities`` (W, C) of the C ``classes`` (rows of NaN for silence); a window ends at the end of the
        recording at the latest."""
        classes, probabilities = tuple(classes), np.asarray(probabilities, np.float64)
        if probabilities.shape != (len(starts), len(classes)):
            raise ValueError(f"probabilities of shape {probabilities.shape} do not fit {len(starts)} windows of "
                             f"{len(classes)} classes ({', '.join(classes)}): give one row per window, one column "
                             "per class")
        windows = []
        for start, p in zip(starts, probabilities):
            span = int(start) / SAMPLE_RATE, min(int(start) + size, samples) / SAMPLE_RATE
            windows.append(Window(*span, SILENCE, None) if np.isnan(p).any() else
                           Window(*span, *distribution(p, classes)))
        return cls(file, samples / SAMPLE_RATE, hop / SAMPLE_RATE, size / SAMPLE_RATE, 0.0, tuple(windows), classes)

    @property
    def all_silent(self) -> bool:
        """True when no window holds speech: the recording has no emotion to tell (``message``)."""
        return all(w.silent for w in self.windows)

    @property
    def message(self) -> str | None:
        """What a person should know before reading the timeline (None when nothing)."""
        if self.all_silent:
            return (f"no speech found: all {len(self.windows)} windows are silence (more than the silence threshold "
                    f"below the recording's loud level, or below the digital-silence floor); nothing was classified")
        return None

    def probability_array(self) -> np.ndarray:
        """(W, C) float64 probabilities of the windows in ``classes`` order; rows of NaN for silence."""
        return np.array([[np.nan] * len(self.classes) if w.silent else [w.probabilities[e] for e in self.classes]
                         for w in self.windows], np.float64).reshape(len(self.windows), len(self.classes))

    def smoothed(self, seconds: float) -> Timeline:
        """Each non-silent window's probabilities averaged over the non-silent windows whose centres lie within
        ``seconds / 2`` of its own (itself included); its emotion is then the most probable. 0: unchanged."""
        if seconds < 0:
            raise ValueError(f"smoothing must be >= 0 seconds, got {seconds}")
        if seconds == 0:
            return self
        if self.smooth_seconds:
            raise ValueError(f"this timeline is already smoothed over {self.smooth_seconds:g} s; smooth the "
                             "unsmoothed one (Predictor.timeline with smooth=0)")
        probs = self.probability_array()
        speech = ~np.isnan(probs[:, 0])
        centres = np.array([w.centre_seconds for w in self.windows])[speech]
        sums = np.concatenate([np.zeros((1, len(self.classes))), np.cumsum(probs[speech], axis=0)])
        lo = np.searchsorted(centres, centres - seconds / 2 - 1e-9, "left")
        hi = np.searchsorted(centres, centres + seconds / 2 + 1e-9, "right")
        probs[speech] = (sums[hi] - sums[lo]) / (hi - lo)[:, None]
        windows = tuple(w if w.silent else Window(w.start_seconds, w.end_seconds, self.classes[int(p.argmax())],
                                                  dict(zip(self.classes, map(float, p))))
                        for w, p in zip(self.windows, probs))
        return dataclasses.replace(self, smooth_seconds=float(seconds), windows=windows)

    def borders(self) -> np.ndarray:
        """(W + 1,) seconds: window i stands for ``[borders[i], borders[i + 1])``, from 0 to the end, the border
        between two windows halfway between their centres."""
        centres = np.array([w.centre_seconds for w in self.windows])
        return np.concatenate([[0.0], (centres[1:] + centres[:-1]) / 2, [self.duration_seconds]])

    @functools.cached_property
    def segments(self) -> tuple[Segment, ...]:
        """Consecutive windows of one emotion (silence too) merged, in time order (``Segment``)."""
        borders = self.borders()
        segments, first = [], 0
        for i, window in enumerate(self.windows):
            if i + 1 < len(self.windows) and self.windows[i + 1].emotion == window.emotion:
                continue
            run = self.windows[first:i + 1]
            probability = None if window.silent else float(np.mean([w.probabilities[w.emotion] for w in run]))
            segments.append(Segment(float(borders[first]), float(borders[i + 1]), window.emotion, probability))
            first = i + 1
        return tuple(segments)

    def to_dict(self) -> dict[str, Any]:
        """``file, duration_seconds, hop_seconds, window_seconds, smooth_seconds, windows, segments`` (JSON-ready)."""
        return {"file": self.file, "duration_seconds": self.duration_seconds, "hop_seconds": self.hop_seconds,
                "window_seconds": self.window_seconds, "smooth_seconds": self.smooth_seconds,
                "windows": [w.to_dict() for w in self.windows],
                "segments": [dataclasses.asdict(s) for s in self.segments]}

    def to_json(self) -> str:
        """``to_dict`` as one line of JSON."""
        return json.dumps(self.to_dict())

    def table(self) -> str:
        """The segments as lines ``start–end  emotion  probability`` (``m:ss``, ``h:mm:ss`` past an hour)."""
        hours = self.duration_seconds >= 3600
        width = max(len(e) for e in (*self.classes, SILENCE))
        lines = []
        for s in self.segments:
            span = f"{_format_time(s.start_seconds, hours)}–{_format_time(s.end_seconds, hours)}"
            lines.append(f"{span:<{19 if hours else 13}}  {s.emotion:<{width}}  "
                         f"{'' if s.probability is None else f'{s.probability:.2f}'}".rstrip())
        return "\n".join(lines)

    def to_csv(self, path: str | Path) -> Path:
        """Writes one row per window (UTF-8): ``start_seconds, end_seconds, emotion`` and the probability of each of
        ``classes`` (empty for silence)."""
        path = Path(path)
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["start_seconds", "end_seconds", "emotion", *self.classes])
            for w in self.windows:
                writer.writerow([f"{w.start_seconds:.3f}", f"{w.end_seconds:.3f}", w.emotion,
                                 *([""] * len(self.classes) if w.silent else
                                   (f"{w.probabilities[e]:.4f}" for e in self.classes))])
        return path

    def columns(self, count: int = PLOT_COLUMNS) -> tuple[np.ndarray, np.ndarray]:
        """What ``plot`` draws: column edges (B + 1,) in seconds and each column's shares (B, C + 1), the probabilities
        of the C ``classes`` then silence, summing to 1. Up to ``count`` windows, a column per window over the time it
        stands for (``borders``; a silent window is all silence); beyond, ``count`` equal columns, each the mean
        over the windows whose centres fall in it (an empty one is silence)."""
        rows = np.nan_to_num(np.append(self.probability_array(), np.zeros((len(self.windows), 1)), 1))
        rows[[w.silent for w in self.windows], -1] = 1.0
        if len(self.windows) <= count:
            return self.borders(), rows
        edges = np.linspace(0.0, self.duration_seconds, count + 1)
        column = np.minimum(np.searchsorted(edges, [w.centre_seconds for w in self.windows], "right") - 1, count - 1)
        sums = np.zeros((count, rows.shape[1]))
        np.add.at(sums, column, rows)
        windows = np.bincount(column, minlength=count)[:, None]
        shares = np.where(windows > 0, sums / np.maximum(windows, 1), np.eye(rows.shape[1])[-1])
        return edges, shares

    def plot(self, path: str | Path) -> Path:
        """Writes a PNG of ``columns``: below, the probabilities of ``classes`` stacked over time, one fixed colour per
        class (``class_colours``), silence grey; above, a band in the colour of each column's largest share (named
        where there is room); time in m:ss (h:mm:ss from an hour), the file name in the title."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.patches import Patch
        from matplotlib.ticker import FuncFormatter, MultipleLocator

        hours = self.duration_seconds >= 3600
        figure = Figure(figsize=(12, 4.8), layout="constrained")
        FigureCanvasAgg(figure)
        band, area = figure.subplots(2, 1, sharex=True, height_ratios=(1, 5))
        edges, shares = self.columns()
        names, colours = [*self.classes, SILENCE], [*class_colours(self.classes).values(), _SILENCE_COLOUR]
        top = np.append(shares.cumsum(axis=1), np.zeros((1, shares.shape[1])), 0)  # fill_between's step="post" end
        below = np.zeros(len(top))
        for k, colour in enumerate(colours):
            area.fill_between(edges, below, top[:, k], step="post", color=colour, lw=0)
            below = top[:, k]
        dominant = shares.argmax(axis=1)
        changes = np.flatnonzero(np.diff(dominant)) + 1
        for first, end in zip([0, *changes], [*changes, len(dominant)]):  # runs of one dominant emotion
            k, start, stop = dominant[first], edges[first], edges[end]
            band.axvspan(start, stop, color=colours[k], lw=0)
            if stop - start > 0.07 * self.duration_seconds:
                band.text((start + stop) / 2, 0.5, names[k], ha="center", va="center", color=_text_colour(colours[k]))
        band.set_yticks([])
        area.set_xlim(0, self.duration_seconds)
        area.set_ylim(0, 1)
        area.set_ylabel("probability")
        area.set_xlabel("time (h:mm:ss)" if hours else "time (m:ss)")
        area.xaxis.set_major_locator(MultipleLocator(_tick_seconds(self.duration_seconds)))
        area.xaxis.set_major_formatter(FuncFormatter(lambda x, _: _format_time(x, hours)))
        area.grid(axis="y", color="white", alpha=0.6, lw=0.8)
        handles = [Patch(color=c, label=n) for n, c in zip(names, colours)]
        area.legend(handles=[*handles[-2::-1], handles[-1]], loc="center left", bbox_to_anchor=(1.01, 0.5),
                    frameon=False)  # top to bottom as stacked, silence last
        name = Path(self.file).name if self.file else "recording"
        details = [f"{self.window_seconds:.3g} s windows every {self.hop_seconds:.3g} s"]
        if self.smooth_seconds:
            details.append(f"smoothed over {self.smooth_seconds:.3g} s")
        if len(edges) - 1 < len(self.windows):
            details.append(f"each column the mean over {edges[1]:.3g} s")
        band.set_title(f"{name}: emotions over time ({_format_time(self.duration_seconds, hours)}; "
                       f"{', '.join(details)})", loc="left")
        path = Path(path)
        figure.savefig(path, dpi=110)
        return path


def _tick_seconds(duration: float) -> float:
    """Seconds between time ticks: the shortest of 1 s ... 4 h that gives at most 12 ticks."""
    steps = (1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900, 1200, 1800, 3600, 7200, 14400)
    return next((s for s in steps if duration / s <= 12), duration / 12)
