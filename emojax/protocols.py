"""Which clips train, validate and test: the examples of prepared corpora on the host (``Corpus``) and the protocols.

Data path: ``prepared.load_split`` (the TFDS data the builders wrote: full-clip MFCCs (40, T) at 44.1 kHz, hop 512,
so frame t is centred at t * 512 / 44100 s; with ``config.pitch``, also their pitch rows (2, T) on the same frames,
``features.clip_pitch``) -> ``Corpus`` (host numpy, with the label names of its classes) -> ``load_splits`` (the
protocol) -> ``emojax.input_pipeline`` (windows and normalisation).

Protocols (``config.protocol``):

- ``random`` (the reference's): a stratified random split of all examples of the chosen corpora,
  ``test = ceil(0.2 N)`` (9,729 / 2,433 of 12,162, as scikit-learn's ``train_test_split``), then a stratified
  ``validation_fraction`` of the remaining 80 % is held out for model selection, so the test part is never looked
  at before the end.
- ``speaker``: the builders' speaker-disjoint train/validation/test splits.
- ``loco`` (leave one corpus out): train and validate on the other corpora's train / validation splits, test on
  every example of ``config.test_corpus``; its test metrics come twice, with all classes and with the decision
  restricted to the emotions that corpus has (``held_out_classes``).
- ``kfold``: speaker cross-validation. The speakers of all clips are partitioned into ``config.folds`` groups
  (``speaker_folds``: balanced by clip count and label; ``folds=0``: one group per speaker, leave one speaker out);
  fold k tests on group k, validates (picks its checkpoint) on group k + 1 when ``config.kfold_validation``, and
  trains on the rest. ``config.fold`` picks the fold; ``emojax.kfold`` runs them all and aggregates.
- ``all``: every clip trains, nothing is held out (a model to ship, whose recipe was measured under the others).

With ``config.refit``, under any protocol, the validation clips are trained on too and the validation split is
empty (``refit_splits``): for a recipe whose settings were chosen on validation before.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence

import ml_collections
import numpy as np

from emojax.labels import CORPUS_EMOTIONS, EMOTIONS
from emojax.prepared import SPLITS

_STR_FIELDS = ("speaker", "corpus", "gender", "file")
Inputs = dict[str, np.ndarray]
"""A model's input rows or windows: ``"mfcc"`` (..., n_mfcc, frames) and, with ``config.pitch``, ``"pitch"``
(..., 2, frames)."""


@dataclasses.dataclass(frozen=True)
class Corpus:
    """Examples on the host.

    Attributes:
      mfcc: N arrays (40, T_i) float32, full-clip MFCCs.
      pitch: N arrays (2, T_i) float32 on the same frames (``features.clip_pitch``), or None when not read.
      label: (N,) int64 indices into ``classes``.
      speaker, corpus, gender, file: (N,) str; ``speaker`` is ``""`` where the corpus does not name one.
      classes: the label names, in label order (the 8 ``EMOTIONS`` for the built-in corpora).
      audio: N arrays (samples,) int16 at 16 kHz, the recordings, or None when not read (``config.front_end="step"``
        reads them).
    """

    mfcc: list[np.ndarray]
    pitch: list[np.ndarray] | None
    label: np.ndarray
    speaker: np.ndarray
    corpus: np.ndarray
    gender: np.ndarray
    file: np.ndarray
    classes: tuple[str, ...] = EMOTIONS
    audio: list[np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.mfcc)

    def clip(self, i: int) -> Inputs:
        """Example ``i``'s full-clip rows: ``{"mfcc": (40, T)}``, with ``"pitch": (2, T)`` when read."""
        return {"mfcc": self.mfcc[i]} | ({} if self.pitch is None else {"pitch": self.pitch[i]})

    @classmethod
    def from_split(cls, split: dict, classes: Sequence[str] = EMOTIONS) -> Corpus:
        """From a ``prepared.load_split`` dict (needs keys mfcc, label, speaker, corpus, gender, file; pitch is
        kept when present, and so is audio) whose labels index ``classes``."""
        missing = [k for k in ("mfcc", "label", *_STR_FIELDS) if k not in split]
        if missing:
            raise KeyError(f"load_split result lacks {missing}; rebuild the dataset with the current builders")
        pitch = None if "pitch" not in split else [np.asarray(p, np.float32) for p in split["pitch"]]
        return cls(mfcc=[np.asarray(m, np.float32) for m in split["mfcc"]], pitch=pitch,
                   label=np.asarray(split["label"], np.int64),
                   **{k: np.asarray(split[k]).astype(str) for k in _STR_FIELDS}, classes=tuple(classes),
                   audio=split.get("audio"))

    def replace_rows(self, clips: Sequence[Inputs]) -> Corpus:
        """The same examples with new full-clip rows (``clip``'s layout, one dict per example)."""
        pitch = None if self.pitch is None else [c["pitch"] for c in clips]
        return dataclasses.replace(self, mfcc=[c["mfcc"] for c in clips], pitch=pitch)

    def subset(self, indices: np.ndarray) -> Corpus:
        """The examples at ``indices`` (int array), in that order."""
        return Corpus(mfcc=[self.mfcc[i] for i in indices],
                      pitch=None if self.pitch is None else [self.pitch[i] for i in indices],
                      label=self.label[indices], **{k: getattr(self, k)[indices] for k in _STR_FIELDS},
                      classes=self.classes, audio=None if self.audio is None else [self.audio[i] for i in indices])

    @staticmethod
    def concatenate(parts: Sequence[Corpus]) -> Corpus:
        """All examples of ``parts``, in order (with pitch rows and audio only when every part has them); the parts
        must have the same ``classes``."""
        classes = {p.classes for p in parts}
        if len(classes) > 1:
            raise ValueError(f"cannot put together examples of different label sets {sorted(classes)}: build the "
                             "corpora with the same labels (datasets/custom/README.md, \"Labels\")")
        with_pitch = all(p.pitch is not None for p in parts)
        with_audio = all(p.audio is not None for p in parts)
        return Corpus(mfcc=[m for p in parts for m in p.mfcc],
                      pitch=[r for p in parts for r in p.pitch] if with_pitch else None,
                      label=np.concatenate([p.label for p in parts]),
                      **{k: np.concatenate([getattr(p, k) for p in parts]) for k in _STR_FIELDS},
                      classes=parts[0].classes if parts else EMOTIONS,
                      audio=[a for p in parts for a in p.audio] if with_audio else None)


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


def dataset_classes(config: ml_collections.ConfigDict) -> tuple[str, ...]:
    """The label names shared by the prepared ``config.datasets`` (``prepared.label_names``): the 8 ``EMOTIONS`` for
    the built-in corpora. ``ValueError`` naming them when they differ."""
    from emojax import prepared

    names = {name: prepared.label_names(name, config.data_dir) for name in config.datasets}
    if len(set(names.values())) > 1:
        listed = "; ".join(f"{name}: {', '.join(classes)}" for name, classes in names.items())
        raise ValueError(f"config.datasets have different label sets ({listed}); train on corpora of one label set, "
                         "e.g. build your corpus with the 8 emotions' names (datasets/custom/README.md, \"Labels\")")
    return next(iter(names.values()))


def read_prepared(config: ml_collections.ConfigDict, split: str) -> Corpus:
    """The examples of ``config.datasets`` in one of their builders' ``split``, corpus after corpus, each in stored
    order: the prepared TFDS data (``prepared.load_split``) in ``config.data_dir`` (``None``: the default TFDS
    data dir); the pitch rows too with ``config.pitch``, the recordings with ``config.front_end="step"``."""
    from emojax import prepared

    keys = ("mfcc", "label", *_STR_FIELDS, *(("pitch",) if config.pitch else ()),
            *(("audio",) if config.get("front_end", "prepared") == "step" else ()))
    classes = dataset_classes(config)
    return Corpus.concatenate([Corpus.from_split(prepared.load_split(name, split, config.data_dir, keys=keys), classes)
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
    elif config.protocol in ("random", "all", "kfold"):
        everything = Corpus.concatenate([load(split) for split in SPLITS])
        if config.protocol == "random":
            splits = random_protocol(everything, config.test_fraction, config.validation_fraction, config.split_seed)
        elif config.protocol == "kfold":
            splits = kfold_splits(everything, config.folds, config.fold, config.kfold_validation)
        else:
            none = everything.subset(np.zeros(0, np.int64))
            splits = {"train": everything, "validation": none, "test": none}
    else:
        raise ValueError(f"unknown config.protocol {config.protocol!r}; use 'random', 'speaker', 'loco', 'kfold' or "
                         "'all'")
    return refit_splits(splits) if config.refit else splits


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
    held_out_name = config.test_corpus.rpartition("/")[2]  # the clips' corpus: "mine" for "custom/mine"
    splits = {split: load(split) for split in SPLITS}
    everything = Corpus.concatenate(list(splits.values()))
    held_out = everything.corpus == held_out_name
    return {"train": splits["train"].subset(np.flatnonzero(splits["train"].corpus != held_out_name)),
            "validation": splits["validation"].subset(
                np.flatnonzero(splits["validation"].corpus != held_out_name)),
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


def speaker_folds(corpus: Corpus, folds: int) -> list[tuple[str, ...]]:
    """The speakers of ``corpus`` in ``folds`` groups (``folds=0``: one group per speaker), balanced by clip count and
    label as far as whole speakers allow; each group's speakers sorted.

    Speakers are placed largest first (ties by name), each into the group where the squared distance of the groups'
    per-label clip counts (and totals) from an even share grows least; so the partition depends only on the clips.

    Raises:
      ValueError: a clip without a speaker, or fewer speakers than folds (the message says what to do).
    """
    speakers = np.asarray(corpus.speaker).astype(str)
    if not len(speakers):
        raise ValueError("k-fold speaker cross-validation needs clips; config.datasets has none")
    if (speakers == "").any():
        nameless = int((speakers == "").sum())
        raise ValueError(f"k-fold speaker cross-validation needs every clip's speaker, and {nameless} clip(s) have "
                         "none: build the corpus from a CSV with a speaker column (or with a speaker_pattern), "
                         "datasets/custom/README.md")
    names, index = np.unique(speakers, return_inverse=True)
    k = len(names) if folds == 0 else folds
    if k < 2 or k > len(names):
        raise ValueError(f"config.folds={folds}: k-fold speaker cross-validation needs 2 to {len(names)} folds for the "
                         f"{len(names)} speakers of config.datasets (0: one fold per speaker)")
    num_classes = max(len(corpus.classes), int(corpus.label.max()) + 1)
    counts = np.zeros((len(names), num_classes + 1))
    np.add.at(counts, (index, corpus.label), 1.0)
    counts[:, -1] = counts[:, :-1].sum(axis=1)  # the clip total, balanced too
    share = counts.sum(axis=0) / k
    groups = np.zeros((k, num_classes + 1))
    members: list[list[str]] = [[] for _ in range(k)]
    for s in sorted(range(len(names)), key=lambda s: (-counts[s, -1], names[s])):
        growth = ((groups + counts[s] - share) ** 2).sum(axis=1) - ((groups - share) ** 2).sum(axis=1)
        g = int(np.argmin(growth))
        groups[g] += counts[s]
        members[g].append(str(names[s]))
    return [tuple(sorted(m)) for m in members]


def kfold_splits(corpus: Corpus, folds: int, fold: int, validation: bool = True) -> dict[str, Corpus]:
    """Fold ``fold`` of speaker cross-validation over ``corpus`` (``speaker_folds``): test on that group of speakers,
    validate on the next group (wrapping round) when ``validation``, train on the others."""
    groups = speaker_folds(corpus, folds)
    if validation and len(groups) < 3:
        raise ValueError(f"{len(groups)} folds leave no speaker to train on when the next fold validates: use 3 folds "
                         "or more, or config.kfold_validation=False (the last epoch is kept)")
    if not 0 <= fold < len(groups):
        raise ValueError(f"config.fold={fold} is not one of the {len(groups)} folds (0 to {len(groups) - 1}); "
                         "-1 runs them all")
    test = set(groups[fold])
    held = set(groups[(fold + 1) % len(groups)]) if validation else set()
    speakers = np.asarray(corpus.speaker).astype(str)

    def where(keep: Callable[[str], bool]) -> Corpus:
        return corpus.subset(np.flatnonzero([keep(s) for s in speakers]))

    return {"train": where(lambda s: s not in test and s not in held), "validation": where(held.__contains__),
            "test": where(test.__contains__)}
