"""Evaluation of trained models on a split: class probabilities of clips (the mean over each clip's windows and over
an ensemble's members) and their metrics (``emojax.metrics``), grouped by corpus."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import ml_collections
import numpy as np

from emojax import checkpoints, input_pipeline, metrics, models, protocols
from emojax.labels import EMOTIONS
from emojax.state import make_mesh, model_variables, num_parameters
from emojax.steps import Classifier


class Member(NamedTuple):
    """One model of an ensemble (or a model alone), ready to classify: its ``classifier``, its ``variables`` (placed
    on the classifier's mesh), the ``normalization`` that standardises its inputs (and picks the ones it reads), and
    the ``speaker_normalization`` its windows get first (``config.speaker_normalization``)."""

    classifier: Classifier
    variables: dict
    normalization: input_pipeline.Normalization
    speaker_normalization: str

    @classmethod
    def create(cls, config: ml_collections.ConfigDict, variables: dict, normalization: input_pipeline.Normalization,
               mesh: Any, batch_size: int) -> Member:
        """The member of a model trained with ``config`` (``variables``: its {"params", "batch_stats"}), classifying
        ``batch_size`` windows at a time."""
        classifier = Classifier(models.create_model(config), mesh, batch_size)
        return cls(classifier, classifier.place(variables), normalization, config.speaker_normalization)


def ensemble_probabilities(members: Sequence[Member], windows: Callable[[str], input_pipeline.Inputs]) -> np.ndarray:
    """Class probabilities (N, C) of N clips, averaged over ``members``: each member classifies its normalisation of
    ``windows(kind)`` (raw windows ``{name: (N, K, R, frames)}`` after speaker normalisation ``kind``, computed once
    per kind; a clip's probabilities are the mean over its K windows)."""
    cache: dict[str, input_pipeline.Inputs] = {}
    probs = []
    for member in members:
        if member.speaker_normalization not in cache:
            cache[member.speaker_normalization] = windows(member.speaker_normalization)
        probs.append(clip_probabilities(member.classifier, member.variables,
                                        member.normalization(cache[member.speaker_normalization])))
    return np.mean(probs, axis=0)


def clip_probabilities(classifier: Classifier, variables: dict, x: input_pipeline.Inputs) -> np.ndarray:
    """Class probabilities (N, C) of N clips: the mean over each clip's K windows x ``{name: (N, K, R, frames)}``."""
    n, k = next(iter(x.values())).shape[:2]
    probs = classifier.predict(variables, {name: v.reshape(n * k, *v.shape[2:]) for name, v in x.items()})
    return probs.reshape(n, k, -1).mean(axis=1)


def split_metrics(probs: np.ndarray, labels: np.ndarray, corpus: np.ndarray, classes: tuple[str, ...] | None = None,
                  class_names: Sequence[str] = EMOTIONS) -> dict[str, Any]:
    """Metrics of clip probabilities (N, C) against labels (N,) indexing ``class_names``, grouped by corpus (N,). With
    ``classes`` (``protocols.held_out_classes``), the metrics of the decision restricted to them are added as
    ``held_out_classes``."""
    groups = {"corpus": corpus}
    result = metrics.classification_metrics(labels, probs, groups=groups, class_names=class_names)
    if classes is not None:
        restricted = metrics.restrict(probs, [list(class_names).index(c) for c in classes])
        result["held_out_classes"] = {"classes": list(classes), **metrics.classification_metrics(
            labels, restricted, groups=groups, class_names=class_names)}
    return result


def evaluate(classifier: Classifier, variables: dict, arrays: input_pipeline.Arrays,
             classes: tuple[str, ...] | None = None) -> dict[str, Any]:
    """``split_metrics`` of evaluation ``arrays`` (x: ``{name: (N, K, R, frames)}``): a clip's probabilities are the
    mean over its K windows."""
    return split_metrics(clip_probabilities(classifier, variables, arrays.x), arrays.y, arrays.corpus, classes,
                         arrays.classes)


def evaluate_checkpoint(workdir: str | Path | Sequence[str | Path], split: str = "test", which: str = "best"
                        ) -> dict[str, Any]:
    """Metrics (``metrics.classification_metrics``, grouped by corpus) of a workdir's ``which`` checkpoint on
    ``split`` of the data and protocol it was trained with, plus ``split`` and ``checkpoint_step``.

    With several workdirs, of their ensemble (``checkpoints.restore_ensemble``): a clip's probabilities are the mean
    over the members (each over its windows); ``members`` lists each one's workdir and checkpoint step and
    ``num_parameters`` is the members' total. Raises ``TrainingError`` for the validation split of a run trained with
    ``config.refit`` (it has none).
    """
    workdirs = [workdir] if isinstance(workdir, (str, Path)) else list(workdir)
    if split not in protocols.SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {', '.join(protocols.SPLITS)}")
    members = checkpoints.restore_ensemble(workdirs, which)
    config = ml_collections.ConfigDict(members[0][0].to_dict())
    config.pitch = any(m[0].pitch for m in members)  # read the pitch rows if any member needs them
    config.front_end = "prepared"  # evaluation windows come from the prepared MFCCs: no recordings to read
    splits = protocols.load_splits(config)
    corpus = splits[split]
    if not len(corpus):
        raise checkpoints.TrainingError(
            f"{workdirs[0]} has no {split} clips"
            + (" (it was trained with config.refit, on the validation clips too); evaluate --split=test"
               if config.refit else ""))
    needed = {"train": splits["train"], split: corpus}  # the speaker statistics' source and the evaluated split
    mesh = make_mesh()
    probs = ensemble_probabilities(
        [Member.create(c, model_variables(state), normalization, mesh, c.eval_batch_size)
         for c, state, normalization, _ in members],
        lambda kind: input_pipeline.evaluation_windows(input_pipeline.speaker_normalize(needed, kind)[split], config))
    classes = protocols.held_out_classes(config) if split == "test" else None
    result = {**split_metrics(probs, corpus.label.astype(np.int32), corpus.corpus, classes, corpus.classes),
              "split": split}
    if len(members) == 1:
        return {**result, "checkpoint_step": members[0][3]}
    return {**result, "members": [{"workdir": str(w), "checkpoint_step": m[3]} for w, m in zip(workdirs, members)],
            "num_parameters": sum(num_parameters(m[1].params) for m in members)}
