"""From a protocol's examples to normalised input windows in memory: windows, normalisation.

Data path: ``emojax.protocols.load_splits`` (the examples of each split, ``Corpus``: full-clip MFCCs (40, T) at
44.1 kHz, hop 512, so frame t is centred at t * 512 / 44100 s; with ``config.pitch``, also their pitch rows (2, T) on
the same frames) -> optionally ``speaker_normalize`` (each clip by its speaker's statistics) -> ``make_windows``
(fixed-size (rows, frames) windows, optionally normalised per utterance first) -> ``Normalization`` fitted on
training windows only -> float32 arrays the trainer puts on the device once.

A model's input is a dict of windows of the same frames (``Inputs``): ``"mfcc"`` (..., n_mfcc, frames) and, with
``config.pitch``, ``"pitch"`` (..., 2, frames). Every per-row operation (speaker and utterance normalisation,
cropping, standardisation) acts on each entry alike, so the two travel side by side from the prepared data to the
model.

Windows and padding: the reference computed MFCCs of the 2.5 s starting 0.5 s into each clip; here a window is the
frames ``[offset, offset + frames)`` of the full-clip rows (0.5 s = frame 43, 2.5 s = 216 frames), the first
``n_mfcc`` MFCCs. Frames beyond either end of a clip are zeros, before normalisation: the reference zero-filled the
missing frames of short clips (``fillna(0)``) the same way, and normalised afterwards.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import ml_collections
import numpy as np

from emojax import features
from emojax.labels import EMOTIONS
from emojax.protocols import Corpus, Inputs

Statistics = dict[str, tuple[np.ndarray, np.ndarray]]
"""Per-row (mean, std) of each input, e.g. a speaker's: ``{"mfcc": ((40, 1), (40, 1)), "pitch": ((2, 1), (2, 1))}``."""


def input_shapes(config: ml_collections.ConfigDict) -> dict[str, tuple[int, int]]:
    """(rows, frames) of each of a model's input windows: ``"mfcc"`` and, with ``config.pitch``, ``"pitch"``."""
    shapes = {"mfcc": (config.n_mfcc, config.window_frames)}
    if config.pitch:
        shapes["pitch"] = (features.PITCH_ROWS, config.window_frames)
    return shapes


UTTERANCE_NORMALIZATIONS = ("none", "level", "mean", "mean_std")


def utterance_normalize(rows: np.ndarray, kind: str, name: str = "mfcc") -> np.ndarray:
    """Per-utterance normalisation of one clip's rows (R, T) of input ``name`` over its own frames (all T of them).

    ``"none"``: unchanged. ``"level"``: the MFCCs' first row (c0, the frame's log energy) minus its mean, other rows
    and other inputs unchanged: a gain of g dB adds the same g to every log-mel value of every frame (the ``top_db``
    floor is relative to the clip's peak), which moves c0 alone, by g·sqrt(n_mels); so the clip's loudness (a
    microphone's gain) is removed and the level's course within the clip kept. ``"mean"``: each row minus its mean
    over time (cepstral mean normalisation, which also removes a fixed channel response such as a microphone's);
    ``"mean_std"``: also divided by its standard deviation over time. Returns (R, T) float32.
    """
    if kind not in UTTERANCE_NORMALIZATIONS:
        raise ValueError(f"unknown utterance normalization {kind!r}; set config.utterance_normalization to one of "
                         f"{', '.join(UTTERANCE_NORMALIZATIONS)}")
    rows = np.asarray(rows, np.float32)
    if kind == "none" or rows.shape[1] == 0 or (kind == "level" and name != "mfcc"):
        return rows
    means = rows.mean(axis=1, keepdims=True, dtype=np.float64).astype(np.float32)
    if kind == "level":
        means[1:] = 0.0
    centred = rows - means
    if kind in ("level", "mean"):
        return centred
    return centred / np.maximum(centred.std(axis=1, keepdims=True, dtype=np.float64), 1e-6).astype(np.float32)


SPEAKER_NORMALIZATIONS = ("none", "mean", "mean_std")


def frame_statistics(clips: Sequence[Inputs]) -> Statistics:
    """Mean and standard deviation of each row of each input over all frames of ``clips`` (one speaker's full-clip
    rows, ``Corpus.clip``): ``{name: ((R, 1), (R, 1))}`` float32, the std at least 1e-6."""
    if not clips:
        raise ValueError("speaker statistics need at least one clip; give recordings of the speaker")
    out = {}
    for name in clips[0]:
        frames = np.concatenate([np.asarray(c[name], np.float32) for c in clips], axis=1)
        if frames.shape[1] == 0:
            raise ValueError("speaker statistics need at least one frame; give recordings with audio in them")
        out[name] = (frames.mean(axis=1, keepdims=True, dtype=np.float64).astype(np.float32),
                     np.maximum(frames.std(axis=1, keepdims=True, dtype=np.float64), 1e-6).astype(np.float32))
    return out


def speaker_statistics(corpus: Corpus) -> dict[str, Statistics]:
    """``frame_statistics`` of each speaker's clips in ``corpus``: ``{speaker: statistics}`` (labels unused)."""
    clips: dict[str, list[Inputs]] = {}
    for i, speaker in enumerate(corpus.speaker):
        clips.setdefault(str(speaker), []).append(corpus.clip(i))
    return {speaker: frame_statistics(rows) for speaker, rows in clips.items()}


def _check_speaker_normalization(kind: str) -> None:
    if kind not in SPEAKER_NORMALIZATIONS:
        raise ValueError(f"unknown speaker normalization {kind!r}; set config.speaker_normalization to one of "
                         f"{', '.join(SPEAKER_NORMALIZATIONS)}")


def normalize_by_speaker(clip: Inputs, statistics: Statistics | None, kind: str) -> Inputs:
    """One clip's full-clip rows (``Corpus.clip``) minus its speaker's mean (``kind="mean"``), also divided by
    their standard deviation (``"mean_std"``), or unchanged (``"none"``, where ``statistics`` may be None).
    Returns float32 rows of the same shapes."""
    _check_speaker_normalization(kind)
    if kind == "none":
        return clip
    if statistics is None:
        raise ValueError(f"speaker normalization {kind!r} needs the speaker's statistics (frame_statistics)")
    out = {}
    for name, rows in clip.items():
        mean, std = statistics[name]
        centred = np.asarray(rows, np.float32) - mean
        out[name] = centred if kind == "mean" else centred / std
    return out


def speaker_normalize(splits: dict[str, Corpus], kind: str) -> dict[str, Corpus]:
    """``normalize_by_speaker`` of every clip of every split (``kind``: one of ``SPEAKER_NORMALIZATIONS``).

    A speaker's statistics (``speaker_statistics``) come from their clips in ``splits["train"]``. A speaker with no
    training clips (the speaker and leave-one-corpus-out protocols) is normalised with the statistics of their own
    clips in the split being normalised: unsupervised adaptation to a new speaker, which needs several of their
    recordings but none of their labels. Returns the splits with normalised rows.
    """
    _check_speaker_normalization(kind)
    if kind == "none":
        return splits
    known = speaker_statistics(splits["train"])
    normalized = {}
    for name, corpus in splits.items():
        new = np.flatnonzero([str(speaker) not in known for speaker in corpus.speaker])
        statistics = {**known, **speaker_statistics(corpus.subset(new))}
        normalized[name] = corpus.replace_rows([normalize_by_speaker(corpus.clip(i), statistics[str(speaker)], kind)
                                                for i, speaker in enumerate(corpus.speaker)])
    return normalized


def crop_windows(rows: np.ndarray, offsets: Sequence[int], frames: int) -> np.ndarray:
    """Windows of frames ``[offset, offset + frames)`` of one clip's rows (R, T), one per offset: (K, R, frames)
    float32, K = len(offsets); frames outside the clip (an offset may be negative) are zeros."""
    out = np.zeros((len(offsets), rows.shape[0], frames), np.float32)
    for k, offset in enumerate(map(int, offsets)):
        start, stop = max(offset, 0), min(offset + frames, rows.shape[1])
        if stop > start:
            out[k, :, start - offset:stop - offset] = rows[:, start:stop]
    return out


def clip_windows(clip: Inputs, offsets: Sequence[int], frames: int, n_mfcc: int, utterance: str = "none") -> Inputs:
    """``crop_windows`` of each input of one clip (the first ``n_mfcc`` MFCCs), after ``utterance_normalize`` of
    those rows over the whole clip: ``{name: (K, R, frames)}``."""
    return {name: crop_windows(utterance_normalize(rows[:n_mfcc] if name == "mfcc" else rows, utterance, name),
                               offsets, frames) for name, rows in clip.items()}


def make_windows(corpus: Corpus, offsets: Sequence[int], frames: int, n_mfcc: int, utterance: str = "none"
                 ) -> Inputs:
    """``clip_windows`` of every clip: ``{name: (N, K, R, frames)}`` float32, K = len(offsets)."""
    rows = {"mfcc": n_mfcc} | ({} if corpus.pitch is None else {"pitch": features.PITCH_ROWS})
    out = {name: np.zeros((len(corpus), len(offsets), r, frames), np.float32) for name, r in rows.items()}
    for i in range(len(corpus)):
        for name, windows in clip_windows(corpus.clip(i), offsets, frames, n_mfcc, utterance).items():
            out[name][i] = windows
    return out


def evaluation_offsets(config: ml_collections.ConfigDict) -> np.ndarray:
    """Start frames (K,) of a clip's ``config.test_crops`` evaluation windows, evenly spaced over the range of
    the training crops, ``offset_frames ± crop_shift_frames`` (K = 1: ``offset_frames`` alone)."""
    crops = config.test_crops
    if crops < 1:
        raise ValueError(f"config.test_crops must be >= 1, got {crops}")
    if crops == 1:
        return np.array([config.offset_frames])
    shift = config.crop_shift_frames
    return np.linspace(config.offset_frames - shift, config.offset_frames + shift, crops).round().astype(int)


def evaluation_windows(corpus: Corpus, config: ml_collections.ConfigDict) -> Inputs:
    """The evaluation windows of every clip (predictions average over them): ``{name: (N, K, R, window_frames)}``
    float32, K = ``config.test_crops`` at ``evaluation_offsets(config)``."""
    return make_windows(corpus, evaluation_offsets(config), config.window_frames, config.n_mfcc,
                        config.utterance_normalization)


@dataclasses.dataclass(frozen=True)
class Normalization:
    """Standardisation of each input fitted on training windows: ``(x - mean) / std``.

    ``statistics[name]`` is (mean, std), each (R, frames) for ``per_position`` (the reference: one statistic per
    row and frame, over examples) or (R, 1) for ``per_coefficient`` (over examples and frames; works for any
    window length).
    """

    statistics: Statistics

    @classmethod
    def fit(cls, windows: Inputs, kind: str) -> Normalization:
        """Statistics of training ``windows`` ``{name: (N, R, frames)}``."""
        if kind == "per_position":
            axes: tuple[int, ...] = (0,)
        elif kind == "per_coefficient":
            axes = (0, 2)
        else:
            raise ValueError(f"unknown normalization {kind!r}; use 'per_position' or 'per_coefficient'")
        statistics = {}
        for name, x in windows.items():
            mean, std = x.mean(axis=axes, dtype=np.float64), x.std(axis=axes, dtype=np.float64)
            if kind == "per_coefficient":
                mean, std = mean[:, None], std[:, None]
            statistics[name] = (mean.astype(np.float32), np.maximum(std, 1e-6).astype(np.float32))
        return cls(statistics)

    def __call__(self, windows: Inputs) -> Inputs:
        """``{name: (..., R, frames)}`` -> the inputs this normalisation was fitted on, normalised float32, same
        shapes (others, such as pitch rows a model without pitch does not read, are left out)."""
        missing = sorted(set(self.statistics) - set(windows))
        if missing:
            raise ValueError(f"the model reads the input(s) {missing}, which these windows lack; read the corpora "
                             "with config.pitch=True")
        return {name: ((windows[name] - mean) / std).astype(np.float32)
                for name, (mean, std) in self.statistics.items()}

    def to_dict(self) -> dict[str, dict[str, np.ndarray]]:
        return {name: {"mean": mean, "std": std} for name, (mean, std) in self.statistics.items()}

    @classmethod
    def from_dict(cls, d: dict) -> Normalization:
        return cls({name: (np.asarray(s["mean"], np.float32), np.asarray(s["std"], np.float32))
                    for name, s in d.items()})


@dataclasses.dataclass(frozen=True)
class Arrays:
    """One split ready for the trainer: ``x`` normalised float32 windows, ``y`` (N,) int32 indices into ``classes``,
    ``corpus`` (N,) names.

    ``x`` is ``{name: (N, R, frames)}`` for training (``waveform_inputs`` with the front end in the step) and
    ``{name: (N, K, R, window_frames)}`` for evaluation (K crops per clip, ``evaluation_windows``)."""

    x: Inputs
    y: np.ndarray
    corpus: np.ndarray
    classes: tuple[str, ...] = EMOTIONS


FRONT_ENDS = ("prepared", "step")
"""``config.front_end``: training windows cut from the prepared MFCCs, or computed from the waveform in the train
step (``steps.step_windows``), where waveform augmentations (``augment.augment_waveforms``) can act first."""


def step_segment(config: ml_collections.ConfigDict) -> tuple[int, int]:
    """``(first, frames)``: the training window's first frame and its frames (``window_frames`` plus the crop shift
    on each side), which the front end in the step computes from a clip's first ``features.segment_samples(first +
    frames)`` samples. ``ValueError`` for configs it cannot serve (the message says which field to change)."""
    unsupported = {"utterance_normalization": config.utterance_normalization not in ("none", "level"),
                   "speaker_normalization": config.speaker_normalization != "none", "pitch": bool(config.pitch),
                   "normalization": config.normalization != "per_coefficient"}
    if any(unsupported.values()) or config.offset_frames < config.crop_shift_frames:
        fields = [name for name, bad in unsupported.items() if bad] or ["offset_frames < crop_shift_frames"]
        raise ValueError(f"the front end in the train step (config.front_end='step') takes per_coefficient "
                         f"normalization, utterance_normalization 'none' or 'level', no speaker normalisation, no "
                         f"pitch and offset_frames >= crop_shift_frames; change {', '.join(fields)} or use "
                         "config.front_end='prepared'")
    return config.offset_frames - config.crop_shift_frames, config.window_frames + 2 * config.crop_shift_frames


def waveform_inputs(config: ml_collections.ConfigDict, corpus: Corpus) -> Inputs:
    """The training clips as the front end in the step reads them (``steps.step_windows``): ``"audio"`` (N, S) int16,
    each clip's first ``S = features.segment_samples(...)`` samples (zeros after its end), ``"length"`` (N,) int32 its
    samples there, and, of the whole clip, ``"frames"`` (N,) int32 its frames, ``"peak"`` (N,) float32 its ``top_db``
    reference (``features.clip_peaks``) and ``"level"`` (N,) float32 its mean c0 (``utterance_normalize``'s
    ``"level"``): with them an unaugmented clip's windows equal the prepared ones."""
    if corpus.audio is None:
        raise ValueError("the front end in the train step needs the recordings; read the corpora with "
                         "config.front_end='step'")
    first, frames = step_segment(config)
    size = features.segment_samples(first + frames)
    audio = np.zeros((len(corpus), size), np.int16)
    for i, clip in enumerate(corpus.audio):
        audio[i, :min(len(clip), size)] = clip[:size]
    return {"audio": audio, "length": np.array([min(len(a), size) for a in corpus.audio], np.int32),
            "frames": np.array([m.shape[1] for m in corpus.mfcc], np.int32),
            "peak": features.clip_peaks(corpus.audio),
            "level": np.array([m[0].mean(dtype=np.float64) for m in corpus.mfcc], np.float32)}


def prepare(config: ml_collections.ConfigDict, splits: dict[str, Corpus], normalization: Normalization | None = None
            ) -> tuple[dict[str, Arrays], Normalization]:
    """Windows of every split, normalised with statistics of the training windows only, or with ``normalization``
    when it is given (a fine-tuned model's own, ``config.init_normalization="kept"``).

    Evaluation windows (``evaluation_windows``) are ``config.window_frames`` frames from
    ``config.offset_frames``, or ``config.test_crops`` such windows spread over the training crops' range.
    Training windows are ``config.crop_shift_frames`` wider on each side, so that the trainer can crop a
    random ``window_frames`` window shifted by up to that many frames (0: the evaluation window exactly). With
    ``config.front_end="step"`` the training split holds the clips' waveforms instead (``waveform_inputs``), whose
    windows the train step computes; the statistics are still those of the prepared training windows.
    """
    n_mfcc, frames, offset, shift = config.n_mfcc, config.window_frames, config.offset_frames, config.crop_shift_frames
    if shift and config.normalization == "per_position":
        raise ValueError("per_position normalization needs fixed windows; set config.crop_shift_frames=0 "
                         "or config.normalization='per_coefficient'")
    splits = speaker_normalize(splits, config.speaker_normalization)
    train_windows = {name: x[:, 0] for name, x in make_windows(
        splits["train"], [offset - shift], frames + 2 * shift, n_mfcc, config.utterance_normalization).items()}
    fit_on = {name: x[:, :, shift:shift + frames] for name, x in train_windows.items()} if shift else train_windows
    if normalization is None:
        normalization = Normalization.fit(fit_on, config.normalization)
    train_x = (waveform_inputs(config, splits["train"]) if config.get("front_end", "prepared") == "step"
               else normalization(train_windows))
    arrays = {"train": Arrays(train_x, splits["train"].label.astype(np.int32), splits["train"].corpus,
                              splits["train"].classes)}
    for name in ("validation", "test"):
        arrays[name] = Arrays(normalization(evaluation_windows(splits[name], config)),
                              splits[name].label.astype(np.int32), splits[name].corpus, splits[name].classes)
    return arrays, normalization
