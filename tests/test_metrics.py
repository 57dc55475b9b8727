"""emojax.metrics against hand-computed values."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emojax import metrics
from emojax.labels import EMOTIONS


def _probs(predictions: list[int], num_classes: int = 8, confidence: float = 0.9) -> np.ndarray:
    probs = np.full((len(predictions), num_classes), (1 - confidence) / (num_classes - 1))
    probs[np.arange(len(predictions)), predictions] = confidence
    return probs


def test_hand_computed_three_classes():
    names = ("a", "b", "c")
    labels = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    preds = [0, 0, 0, 1, 1, 2, 2, 2]
    result = metrics.classification_metrics(labels, _probs(preds, 3), class_names=names)
    assert result["accuracy"] == pytest.approx(6 / 8)
    # recalls a 3/4, b 1/2, c 1; precisions a 1, b 1/2, c 2/3.
    assert result["unweighted_accuracy"] == pytest.approx((0.75 + 0.5 + 1.0) / 3)
    assert result["precision"] == pytest.approx((1.0 + 0.5 + 2 / 3) / 3)
    f1 = [2 * 0.75 / 1.75, 0.5, 2 * (2 / 3) / (5 / 3)]
    assert result["macro_f1"] == pytest.approx(np.mean(f1))
    assert result["confusion_matrix"] == [[3, 1, 0], [0, 1, 1], [0, 0, 2]]
    assert result["per_class"]["b"] == pytest.approx(
        {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    )
    assert result["num_examples"] == 8


def test_keras_style_threshold():
    labels = np.array([0, 1, 2, 3])
    probs = np.array([
        [0.9, 0.1, 0.0, 0.0],  # TP
        [0.4, 0.3, 0.3, 0.0],  # nothing above 0.5: a miss, no false positive
        [0.0, 0.6, 0.4, 0.0],  # false positive for class 1, miss for class 2
        [0.0, 0.0, 0.0, 1.0],  # TP
    ])
    result = metrics.classification_metrics(labels, probs, class_names=("a", "b", "c", "d"))
    assert result["keras_precision"] == pytest.approx(2 / 3)
    assert result["keras_recall"] == pytest.approx(2 / 4)
    assert result["accuracy"] == pytest.approx(2 / 4)  # rows 1 and 2 have the wrong argmax


def test_absent_classes_do_not_count_and_groups():
    labels = np.array([0, 0, 4, 4, 4, 7])
    preds = [0, 1, 4, 4, 0, 7]
    corpus = np.array(["ravdess", "ravdess", "tess", "tess", "tess", "savee"])
    result = metrics.classification_metrics(labels, _probs(preds), groups={"corpus": corpus})
    assert result["unweighted_accuracy"] == pytest.approx((0.5 + 2 / 3 + 1.0) / 3)
    assert set(result["per_corpus"]) == {"ravdess", "savee", "tess"}
    assert result["per_corpus"]["tess"]["accuracy"] == pytest.approx(2 / 3)
    assert result["per_corpus"]["savee"]["num_examples"] == 1
    assert result["class_names"] == list(EMOTIONS)
    json.dumps(result)  # serialisable as eval.py prints it


def test_rejects_mismatched_shapes_and_labels():
    with pytest.raises(ValueError, match="shape"):
        metrics.classification_metrics(np.array([0, 1]), np.ones((3, 8)) / 8)
    with pytest.raises(ValueError, match="labels"):
        metrics.classification_metrics(np.array([0, 9]), np.ones((2, 8)) / 8)



def test_restrict_renormalises_over_the_allowed_classes():
    probs = np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8], [0.0, 0.0, 1.0]])
    restricted = metrics.restrict(probs, [0, 1])
    np.testing.assert_allclose(restricted, [[0.625, 0.375, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 0.0]])
    assert restricted[1].argmax() == 0  # the top class was not allowed: the best allowed one wins
    np.testing.assert_allclose(metrics.restrict(probs, [0, 1, 2]), probs)
    with pytest.raises(ValueError, match="at least one class"):
        metrics.restrict(probs, [])

def test_plot_writes_png(tmp_path):
    path = metrics.plot_confusion_matrix(np.eye(8, dtype=int) * 5 + 1, tmp_path / "eval" / "cm.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
