"""Classification metrics for emotion recognition: what eval.py prints and train.py logs.

Everything is computed on the host from integer labels ``(N,)`` and class probabilities ``(N, C)``.
Unweighted accuracy (UA) is the mean of per-class recalls over the classes present in the labels, the
usual headline figure of speech emotion recognition. ``keras_precision`` / ``keras_recall`` reproduce how
the reference system reported precision and recall: Keras's ``Precision()`` / ``Recall()`` metrics on
one-hot targets with every probability thresholded at 0.5 (micro-averaged over all N × C entries).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from emojax.labels import EMOTIONS


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts ``(C, C)`` int64: row = true class, column = predicted class."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros_like(num, dtype=np.float64), where=den > 0)


def _summary(labels: np.ndarray, probs: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    return _matrix_summary(confusion_matrix(labels, probs.argmax(axis=-1), len(class_names)), class_names)


def confusion_metrics(confusion: Sequence[Sequence[int]] | np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    """Accuracy, unweighted accuracy, macro F1, precision, recall (means over the classes present) and the number of
    examples of a confusion matrix ``(C, C)`` (row = true class), e.g. one summed over cross-validation folds."""
    summary = _matrix_summary(np.asarray(confusion, np.int64), class_names)
    return {key: value for key, value in summary.items() if not key.startswith("_")}


def _matrix_summary(matrix: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    true_pos = np.diag(matrix).astype(np.float64)
    support = matrix.sum(axis=1).astype(np.float64)
    predicted = matrix.sum(axis=0).astype(np.float64)
    recall = _safe_div(true_pos, support)
    precision = _safe_div(true_pos, predicted)
    f1 = _safe_div(2 * precision * recall, precision + recall)
    present = support > 0
    n = int(matrix.sum())
    return {
        "accuracy": float(true_pos.sum() / n) if n else 0.0,
        "unweighted_accuracy": float(recall[present].mean()) if present.any() else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "precision": float(precision[present].mean()) if present.any() else 0.0,
        "recall": float(recall[present].mean()) if present.any() else 0.0,
        "num_examples": int(n),
        "_matrix": matrix,
        "_per_class": {
            name: {
                "precision": float(precision[c]),
                "recall": float(recall[c]),
                "f1": float(f1[c]),
                "support": int(support[c]),
            }
            for c, name in enumerate(class_names)
        },
    }


def classification_metrics(
    labels: np.ndarray,
    probs: np.ndarray,
    groups: Mapping[str, np.ndarray] | None = None,
    class_names: Sequence[str] = EMOTIONS,
) -> dict[str, Any]:
    """All evaluation figures for one set of predictions.

    Args:
      labels: ``(N,)`` integer true classes in ``[0, C)``.
      probs: ``(N, C)`` class probabilities (rows sum to 1).
      groups: optional named ``(N,)`` arrays of group names (e.g. ``{"corpus": corpus}``); each adds a
        ``per_<name>`` entry with accuracy, unweighted accuracy, macro-F1 and size per group.
      class_names: the C class names, in label order.

    Returns:
      A JSON-serialisable dict: ``accuracy``, ``unweighted_accuracy``, ``macro_f1``, ``precision`` and
      ``recall`` (macro over the classes present), ``keras_precision``/``keras_recall`` (threshold 0.5),
      ``per_class``, ``per_<group>``, ``confusion_matrix`` (list of lists), ``class_names``,
      ``num_examples``.
    """
    labels = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    num_classes = len(class_names)
    if probs.ndim != 2 or probs.shape != (len(labels), num_classes):
        raise ValueError(
            f"probs must have shape (N, {num_classes}) matching labels (N={len(labels)}); got {probs.shape}"
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}); got min {labels.min()}, max {labels.max()}")

    summary = _summary(labels, probs, class_names)
    one_hot = np.eye(num_classes, dtype=bool)[labels]
    thresholded = probs > 0.5
    keras_tp = float(np.sum(thresholded & one_hot))
    result: dict[str, Any] = {
        key: value for key, value in summary.items() if not key.startswith("_")
    }
    result["keras_precision"] = keras_tp / max(float(thresholded.sum()), 1.0)
    result["keras_recall"] = keras_tp / max(float(one_hot.sum()), 1.0)
    result["per_class"] = summary["_per_class"]
    for group_name, values in (groups or {}).items():
        values = np.asarray(values)
        if values.shape != labels.shape:
            raise ValueError(f"group {group_name!r} has shape {values.shape}; expected {labels.shape}")
        per_group = {}
        for value in sorted(set(values.tolist())):
            mask = values == value
            sub = _summary(labels[mask], probs[mask], class_names)
            per_group[str(value)] = {
                key: sub[key] for key in ("accuracy", "unweighted_accuracy", "macro_f1", "num_examples")
            }
        result[f"per_{group_name}"] = per_group
    result["confusion_matrix"] = summary["_matrix"].tolist()
    result["class_names"] = list(class_names)
    return result


def restrict(probs: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    """Probabilities ``(N, C)`` renormalised over ``classes`` and zero elsewhere: the decision of the same
    classifier when it is told which classes can occur (e.g. the emotions a held-out corpus has)."""
    probs = np.asarray(probs, dtype=np.float64)
    keep = np.zeros(probs.shape[-1], dtype=bool)
    keep[list(classes)] = True
    if not keep.any():
        raise ValueError("restrict needs at least one class to keep")
    kept = np.where(keep, probs, 0.0)
    return kept / np.maximum(kept.sum(axis=-1, keepdims=True), np.finfo(np.float64).tiny)


def plot_confusion_matrix(
    confusion: Sequence[Sequence[int]] | np.ndarray,
    path: str | Path,
    class_names: Sequence[str] = EMOTIONS,
    title: str = "Confusion matrix",
) -> Path:
    """Writes a PNG of the confusion matrix: counts and row-normalised recall in each cell."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = np.asarray(confusion, dtype=np.int64)
    rows = counts.sum(axis=1, keepdims=True)
    fraction = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
    size = 1.0 + 0.9 * len(class_names)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    image = ax.imshow(fraction, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(counts.shape[0]):
        for j in range(counts.shape[1]):
            colour = "white" if fraction[i, j] > 0.5 else "black"
            ax.text(j, i, f"{counts[i, j]}\n{fraction[i, j]:.0%}", ha="center", va="center",
                    fontsize=8, color=colour)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
