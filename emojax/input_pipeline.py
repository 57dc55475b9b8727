"""From prepared corpora to normalised MFCC windows in memory: protocols, windows, normalisation.

Data path: ``corpora.load_split`` (the TFDS data the builders wrote: full-clip MFCCs (40, T) at 44.1 kHz,
hop 512, so frame t is centred at t * 512 / 44100 s; with ``config.pitch``, also their 2 pitch rows per frame,
``features.clip_pitch``) -> ``Corpus`` (host numpy) -> ``load_splits`` (the
protocol: ``random`` or ``speaker``) -> optionally ``speaker_normalize`` (each clip by its speaker's statistics) ->
``crop_windows`` / ``make_windows`` (fixed-size (coefficients, frames) windows, optionally normalised per utterance
first) -> ``Normalization`` fitted on training windows only -> float32 arrays the trainer puts on the device once.

Windows and padding: the reference computed MFCCs of the 2.5 s starting 0.5 s into each clip; here a window is the
frames ``[offset, offset + frames)`` of the full-clip MFCC (0.5 s = frame 43, 2.5 s = 216 frames), first ``n_mfcc``
coefficients, then the 2 pitch rows with ``config.pitch`` (``input_rows``). Frames beyond either end of a clip are
zeros in the MFCC domain, before normalisation: the reference zero-filled the missing frames of short clips
(``fillna(0)``) the same way, and normalised afterwards.

Random protocol (the reference's): a stratified random split of all examples of the chosen corpora,
``test = ceil(0.2 N)`` (9,729 / 2,433 of 12,162, as scikit-learn's ``train_test_split``), then a
stratified ``validation_fraction`` of the remaining 80 % is held out for model selection, so the test
part is never looked at before the end. Speaker protocol: the builders' speaker-disjoint
train/validation/test splits. Leave-one-corpus-out (``loco``): train and validate on the other corpora's
train / validation splits, test on every example of ``config.test_corpus``; its test metrics come twice, with
all 8 classes and with the decision restricted to the emotions that corpus has (``held_out_classes``). With
``config.refit``, under any protocol, the validation clips are trained on too and the validation split is empty
(``refit_splits``): for a recipe whose settings were chosen on validation before.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence

import ml_collections
import numpy as np

from emojax import features
from emojax.labels import CORPUS_EMOTIONS

SPLITS = ("train", "validation", "test")
_STR_FIELDS = ("speaker", "corpus", "gender", "file")


@dataclasses.dataclass(frozen=True)
class Corpus:
    """Examples on the host.

    Attributes:
      mfcc: N arrays (40, T_i) float32, full-clip MFCCs; read with their pitch rows, (42, T_i): the 40 MFCCs, then
        ``features.clip_pitch``'s 2 rows (``with_pitch``).
      label: (N,) int64 emotion indices into ``labels.EMOTIONS``.
      speaker, corpus, gender, file: (N,) str.
    """

    mfcc: list[np.ndarray]
    label: np.ndarray
    speaker: np.ndarray
    corpus: np.ndarray
    gender: np.ndarray
    file: np.ndarray

    def __len__(self) -> int:
        return len(self.mfcc)

    @classmethod
    def from_split(cls, split: dict) -> Corpus:
        """From a ``corpora.load_split`` dict (needs keys mfcc, label, speaker, corpus, gender, file; with pitch,
        the clips get their pitch rows)."""
        missing = [k for k in ("mfcc", "label", *_STR_FIELDS) if k not in split]
        if missing:
            raise KeyError(f"load_split result lacks {missing}; rebuild the dataset with the current builders")
        mfccs = [np.asarray(m, np.float32) for m in split["mfcc"]]
        if "pitch" in split:
            mfccs = [with_pitch(m, p) for m, p in zip(mfccs, split["pitch"])]
        return cls(mfcc=mfccs,
                   label=np.asarray(split["label"], np.int64),
                   **{k: np.asarray(split[k]).astype(str) for k in _STR_FIELDS})

    def subset(self, indices: np.ndarray) -> Corpus:
        """The examples at ``indices`` (int array), in that order."""
        return Corpus(mfcc=[self.mfcc[i] for i in indices], label=self.label[indices],
                      **{k: getattr(self, k)[indices] for k in _STR_FIELDS})

    @staticmethod
    def concatenate(parts: Sequence[Corpus]) -> Corpus:
        """All examples of ``parts``, in order."""
        return Corpus(mfcc=[m for p in parts for m in p.mfcc],
                      label=np.concatenate([p.label for p in parts]),
                      **{k: np.concatenate([getattr(p, k) for p in parts]) for k in _STR_FIELDS})


def with_pitch(mfcc: np.ndarray, pitch: np.ndarray) -> np.ndarray:
    """One clip's MFCCs (40, T) with its ``features.clip_pitch`` rows (2, T) below them: (42, T) float32."""
    if mfcc.shape[0] != features.FRONT_END["n_mfcc"] or pitch.shape != (features.PITCH_ROWS, mfcc.shape[1]):
        raise ValueError(f"expected MFCCs (40, T) and pitch rows (2, T) of one clip, got {mfcc.shape} and "
                         f"{pitch.shape}")
    return np.concatenate([mfcc, pitch]).astype(np.float32, copy=False)


def input_rows(config: ml_collections.ConfigDict) -> int:
    """Rows of a model's input window: ``config.n_mfcc`` MFCCs, plus the 2 pitch rows with ``config.pitch``."""
    return config.n_mfcc + (features.PITCH_ROWS if config.get("pitch", False) else 0)


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (kept, held out) with ``ceil(fraction * N)`` held out, class proportions kept.

    Each class c holds out ``floor(n_held * n_c / N)`` examples; the remaining few go to the classes with
    the largest fractional parts (ties: the larger class first). Examples are drawn at random with
    ``numpy.random.default_rng(seed)``. Both index arrays are sorted.
    """
    labels = np.asarray(labels)
    n = len(labels)
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    n_held = math.ceil(fraction * n)
    classes, counts = np.unique(labels, return_counts=True)
    exact = n_held * counts / n
    per_class = np.floor(exact).astype(int)
    order = np.lexsort((-counts, -(exact - per_class)))
    per_class[order[: n_held - per_class.sum()]] += 1
    rng = np.random.default_rng(seed)
    held = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, per_class)])
    mask = np.zeros(n, bool)
    mask[held] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def read_prepared(config: ml_collections.ConfigDict, split: str) -> Corpus:
    """The examples of ``config.datasets`` in one of their builders' ``split``, corpus after corpus, each in stored
    order: the prepared TFDS data (``corpora.load_split``) in ``config.data_dir`` (``None``: the default TFDS
    data dir)."""
    from emojax import corpora  # the builders' module (imports TFDS); only needed here

    keys = ("mfcc", "label", *_STR_FIELDS, *(("pitch",) if config.get("pitch", False) else ()))
    return Corpus.concatenate([Corpus.from_split(corpora.load_split(name, split, config.data_dir, keys=keys))
                               for name in config.datasets])


def load_splits(config: ml_collections.ConfigDict,
                read: Callable[[ml_collections.ConfigDict, str], Corpus] = read_prepared) -> dict[str, Corpus]:
    """The train / validation / test examples of ``config.datasets`` under ``config.protocol``.

    ``read(config, split)`` gives the examples of a builder split as ``read_prepared`` does (the same examples in
    the same order give the same protocol splits); another reader can supply them without TFDS, e.g. from MFCCs
    computed elsewhere (``benchmarks/gpu_accuracy.py``).
    """
    load = functools.partial(read, config)
    if config.protocol == "speaker":
        splits = {split: load(split) for split in SPLITS}
    elif config.protocol == "loco":
        splits = leave_one_corpus_out(config, load)
    elif config.protocol == "random":
        everything = Corpus.concatenate([load(split) for split in SPLITS])
        splits = random_protocol(everything, config.test_fraction, config.validation_fraction, config.split_seed)
    else:
        raise ValueError(f"unknown config.protocol {config.protocol!r}; use 'random', 'speaker' or 'loco'")
    return refit_splits(splits) if config.get("refit", False) else splits


def refit_splits(splits: dict[str, Corpus]) -> dict[str, Corpus]:
    """``config.refit``: the validation clips join the training ones (train, then validation, in order), and the
    validation split is left empty; the test split is unchanged."""
    validation = splits["validation"]
    return {"train": Corpus.concatenate([splits["train"], validation]),
            "validation": validation.subset(np.zeros(0, np.int64)), "test": splits["test"]}


def leave_one_corpus_out(config: ml_collections.ConfigDict, load: Callable[[str], Corpus]) -> dict[str, Corpus]:
    """Trains on the other corpora's train splits, selects on their validation splits, and tests on every
    example of ``config.test_corpus`` (one of ``config.datasets``). ``load(split)`` reads ``config.datasets``."""
    if config.test_corpus not in config.datasets:
        raise ValueError(f"config.test_corpus={config.test_corpus!r} must be one of config.datasets "
                         f"{tuple(config.datasets)} for the leave-one-corpus-out protocol")
    if len(config.datasets) < 2:
        raise ValueError("the leave-one-corpus-out protocol needs at least two corpora in config.datasets")
    splits = {split: load(split) for split in SPLITS}
    everything = Corpus.concatenate(list(splits.values()))
    held_out = everything.corpus == config.test_corpus
    return {"train": splits["train"].subset(np.flatnonzero(splits["train"].corpus != config.test_corpus)),
            "validation": splits["validation"].subset(
                np.flatnonzero(splits["validation"].corpus != config.test_corpus)),
            "test": everything.subset(np.flatnonzero(held_out))}


def held_out_classes(config: ml_collections.ConfigDict) -> tuple[str, ...] | None:
    """The emotions the test corpus has under the leave-one-corpus-out protocol (``labels.CORPUS_EMOTIONS``),
    for test metrics restricted to them; None for the other protocols and for corpora without such a list."""
    if config.protocol != "loco":
        return None
    return CORPUS_EMOTIONS.get(config.test_corpus)


def random_protocol(corpus: Corpus, test_fraction: float, validation_fraction: float,
                    seed: int) -> dict[str, Corpus]:
    """Stratified random train / validation / test split (see the module docstring)."""
    rest, test = stratified_split(corpus.label, test_fraction, seed)
    train, validation = stratified_split(corpus.label[rest], validation_fraction, seed + 1)
    return {"train": corpus.subset(rest[train]), "validation": corpus.subset(rest[validation]),
            "test": corpus.subset(test)}


UTTERANCE_NORMALIZATIONS = ("none", "mean", "mean_std")


def utterance_normalize(mfcc: np.ndarray, kind: str) -> np.ndarray:
    """Per-utterance normalisation of one clip's MFCC (C, T) over its own frames (all T of them).

    ``"none"``: unchanged; ``"mean"``: each coefficient minus its mean over time (cepstral mean normalisation,
    which removes a fixed channel response such as a microphone's); ``"mean_std"``: also divided by its standard
    deviation over time. Returns (C, T) float32.
    """
    if kind not in UTTERANCE_NORMALIZATIONS:
        raise ValueError(f"unknown utterance normalization {kind!r}; set config.utterance_normalization to one of "
                         f"{', '.join(UTTERANCE_NORMALIZATIONS)}")
    mfcc = np.asarray(mfcc, np.float32)
    if kind == "none" or mfcc.shape[1] == 0:
        return mfcc
    centred = mfcc - mfcc.mean(axis=1, keepdims=True, dtype=np.float64).astype(np.float32)
    if kind == "mean":
        return centred
    return centred / np.maximum(centred.std(axis=1, keepdims=True, dtype=np.float64), 1e-6).astype(np.float32)


SPEAKER_NORMALIZATIONS = ("none", "mean", "mean_std")
SpeakerStatistics = tuple[np.ndarray, np.ndarray]  # a speaker's (mean, std) of each row: (40, 1) each (42 with pitch)


def frame_statistics(mfccs: Sequence[np.ndarray]) -> SpeakerStatistics:
    """Mean and standard deviation of each coefficient over all frames of ``mfccs`` (clips (40, T_i) of one
    speaker; (42, T_i) with pitch rows): (40, 1) (or (42, 1)) float32 each, the std at least 1e-6."""
    frames = np.concatenate([np.asarray(m, np.float32) for m in mfccs], axis=1)
    if frames.shape[1] == 0:
        raise ValueError("speaker statistics need at least one MFCC frame; give recordings with audio in them")
    return (frames.mean(axis=1, keepdims=True, dtype=np.float64).astype(np.float32),
            np.maximum(frames.std(axis=1, keepdims=True, dtype=np.float64), 1e-6).astype(np.float32))


def speaker_statistics(corpus: Corpus) -> dict[str, SpeakerStatistics]:
    """``frame_statistics`` of each speaker's clips in ``corpus``: ``{speaker: (mean, std)}`` (labels unused)."""
    clips: dict[str, list[np.ndarray]] = {}
    for speaker, mfcc in zip(corpus.speaker, corpus.mfcc):
        clips.setdefault(str(speaker), []).append(mfcc)
    return {speaker: frame_statistics(mfccs) for speaker, mfccs in clips.items()}


def _check_speaker_normalization(kind: str) -> None:
    if kind not in SPEAKER_NORMALIZATIONS:
        raise ValueError(f"unknown speaker normalization {kind!r}; set config.speaker_normalization to one of "
                         f"{', '.join(SPEAKER_NORMALIZATIONS)}")


def normalize_by_speaker(mfcc: np.ndarray, statistics: SpeakerStatistics | None, kind: str) -> np.ndarray:
    """One clip's full MFCC (40, T) (or (42, T) with its pitch rows) minus its speaker's mean (``kind="mean"``),
    also divided by their standard deviation (``"mean_std"``), or unchanged (``"none"``, where ``statistics`` may be
    None). Returns float32 of the same shape."""
    _check_speaker_normalization(kind)
    if kind == "none":
        return mfcc
    if statistics is None:
        raise ValueError(f"speaker normalization {kind!r} needs the speaker's statistics (frame_statistics)")
    mean, std = statistics
    centred = np.asarray(mfcc, np.float32) - mean
    return centred if kind == "mean" else centred / std


def speaker_normalize(splits: dict[str, Corpus], kind: str) -> dict[str, Corpus]:
    """``normalize_by_speaker`` of every clip of every split (``kind``: one of ``SPEAKER_NORMALIZATIONS``).

    A speaker's statistics (``speaker_statistics``) come from their clips in ``splits["train"]``. A speaker with no
    training clips (the speaker and leave-one-corpus-out protocols) is normalised with the statistics of their own
    clips in the split being normalised: unsupervised adaptation to a new speaker, which needs several of their
    recordings but none of their labels. Returns the splits with normalised ``mfcc``.
    """
    _check_speaker_normalization(kind)
    if kind == "none":
        return splits
    known = speaker_statistics(splits["train"])
    normalized = {}
    for name, corpus in splits.items():
        new = np.flatnonzero([str(speaker) not in known for speaker in corpus.speaker])
        statistics = {**known, **speaker_statistics(corpus.subset(new))}
        normalized[name] = dataclasses.replace(corpus, mfcc=[
            normalize_by_speaker(clip, statistics[str(speaker)], kind)
            for speaker, clip in zip(corpus.speaker, corpus.mfcc)])
    return normalized


def crop_windows(mfcc: np.ndarray, offsets: Sequence[int], frames: int, n_mfcc: int,
                 utterance: str = "none", pitch: bool = False) -> np.ndarray:
    """Windows of frames ``[offset, offset + frames)`` of the first ``n_mfcc`` rows of one clip's ``mfcc``
    (40, T) (with ``pitch``, of those and its pitch rows: ``mfcc`` is (42, T), ``with_pitch``), one per offset,
    after ``utterance_normalize`` of those rows over the whole clip (once).

    Returns (K, R, frames) float32, K = len(offsets), R = n_mfcc (+ 2 with ``pitch``); frames outside the clip (an
    offset may be negative) are zeros.
    """
    rows = mfcc[:n_mfcc]
    if pitch:
        stored = features.FRONT_END["n_mfcc"]
        if mfcc.shape[0] != stored + features.PITCH_ROWS:
            raise ValueError(f"a model with config.pitch needs each clip's pitch rows ((42, T) arrays, with_pitch), "
                             f"got {mfcc.shape}; read the corpora with config.pitch=True (builders 1.1.0 or later)")
        rows = np.concatenate([rows, mfcc[stored:]])
    mfcc = utterance_normalize(rows, utterance)
    out = np.zeros((len(offsets), mfcc.shape[0], frames), np.float32)
    for k, offset in enumerate(map(int, offsets)):
        start, stop = max(offset, 0), min(offset + frames, mfcc.shape[1])
        if stop > start:
            out[k, :, start - offset:stop - offset] = mfcc[:, start:stop]
    return out


def make_windows(corpus: Corpus, offsets: Sequence[int], frames: int, n_mfcc: int,
                 utterance: str = "none", pitch: bool = False) -> np.ndarray:
    """``crop_windows`` of every clip: (N, K, R, frames) float32, K = len(offsets), R = n_mfcc (+ 2 with pitch)."""
    out = np.zeros((len(corpus), len(offsets), n_mfcc + (features.PITCH_ROWS if pitch else 0), frames), np.float32)
    for i, mfcc in enumerate(corpus.mfcc):
        out[i] = crop_windows(mfcc, offsets, frames, n_mfcc, utterance, pitch)
    return out


def evaluation_offsets(config: ml_collections.ConfigDict) -> np.ndarray:
    """Start frames (K,) of a clip's ``config.test_crops`` evaluation windows, evenly spaced over the range of
    the training crops, ``offset_frames ± crop_shift_frames`` (K = 1: ``offset_frames`` alone)."""
    crops = config.get("test_crops", 1)
    if crops < 1:
        raise ValueError(f"config.test_crops must be >= 1, got {crops}")
    if crops == 1:
        return np.array([config.offset_frames])
    shift = config.crop_shift_frames
    return np.linspace(config.offset_frames - shift, config.offset_frames + shift, crops).round().astype(int)


def evaluation_windows(corpus: Corpus, config: ml_collections.ConfigDict) -> np.ndarray:
    """The evaluation windows of every clip (predictions average over them): (N, K, input_rows, window_frames)
    float32, K = ``config.test_crops`` at ``evaluation_offsets(config)``."""
    return make_windows(corpus, evaluation_offsets(config), config.window_frames, config.n_mfcc,
                        config.get("utterance_normalization", "none"), config.get("pitch", False))


@dataclasses.dataclass(frozen=True)
class Normalization:
    """Standardisation fitted on training windows: ``(x - mean) / std``.

    ``mean`` and ``std`` are (n_mfcc, frames) for ``per_position`` (the reference: one statistic per
    coefficient and frame, over examples) or (n_mfcc, 1) for ``per_coefficient`` (over examples and frames;
    works for any window length).
    """

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, windows: np.ndarray, kind: str) -> Normalization:
        """Statistics of ``windows`` (N, n_mfcc, frames) of the training split."""
        if kind == "per_position":
            axes: tuple[int, ...] = (0,)
        elif kind == "per_coefficient":
            axes = (0, 2)
        else:
            raise ValueError(f"unknown normalization {kind!r}; use 'per_position' or 'per_coefficient'")
        mean = windows.mean(axis=axes, dtype=np.float64)
        std = windows.std(axis=axes, dtype=np.float64)
        if kind == "per_coefficient":
            mean, std = mean[:, None], std[:, None]
        return cls(mean.astype(np.float32), np.maximum(std, 1e-6).astype(np.float32))

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        """(..., n_mfcc, frames) -> normalised float32, same shape."""
        return ((windows - self.mean) / self.std).astype(np.float32)

    def to_dict(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean, "std": self.std}

    @classmethod
    def from_dict(cls, d: dict) -> Normalization:
        return cls(np.asarray(d["mean"], np.float32), np.asarray(d["std"], np.float32))


@dataclasses.dataclass(frozen=True)
class Arrays:
    """One split ready for the trainer: ``x`` normalised float32, ``y`` (N,) int32, ``corpus`` (N,) names.

    ``x`` is (N, n_mfcc, frames) for training and (N, K, n_mfcc, window_frames) for evaluation (K crops
    per clip, ``evaluation_windows``)."""

    x: np.ndarray
    y: np.ndarray
    corpus: np.ndarray


def prepare(config: ml_collections.ConfigDict, splits: dict[str, Corpus]) -> tuple[dict[str, Arrays], Normalization]:
    """Windows of every split, normalised with statistics of the training windows only.

    Evaluation windows (``evaluation_windows``) are ``config.window_frames`` frames from
    ``config.offset_frames``, or ``config.test_crops`` such windows spread over the training crops' range.
    Training windows are ``config.crop_shift_frames`` wider on each side, so that the trainer can crop a
    random ``window_frames`` window shifted by up to that many frames (0: the evaluation window exactly).
    """
    n_mfcc, frames, offset, shift = config.n_mfcc, config.window_frames, config.offset_frames, config.crop_shift_frames
    if shift and config.normalization == "per_position":
        raise ValueError("per_position normalization needs fixed windows; set config.crop_shift_frames=0 "
                         "or config.normalization='per_coefficient'")
    splits = speaker_normalize(splits, config.get("speaker_normalization", "none"))
    train_windows = make_windows(splits["train"], [offset - shift], frames + 2 * shift, n_mfcc,
                                 config.get("utterance_normalization", "none"), config.get("pitch", False))[:, 0]
    fit_on = train_windows[:, :, shift:shift + frames] if shift else train_windows
    normalization = Normalization.fit(fit_on, config.normalization)
    arrays = {"train": Arrays(normalization(train_windows), splits["train"].label.astype(np.int32),
                              splits["train"].corpus)}
    for name in ("validation", "test"):
        arrays[name] = Arrays(normalization(evaluation_windows(splits[name], config)),
                              splits[name].label.astype(np.int32), splits[name].corpus)
    return arrays, normalization
