"""k-fold speaker cross-validation: the speaker partition (balanced, leave one speaker out, refusals), folds that test
every clip once on unseen speakers, and a cross-validation on the synthetic corpus that resumes fold by fold and
aggregates, from training and again from its checkpoints."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the configs/ package

from emojax import kfold, protocols, train  # noqa: E402
from emojax.protocols import Corpus  # noqa: E402
from test_train import tiny_config  # noqa: E402


def _corpus(clips: dict[str, list[int]]) -> Corpus:
    """A corpus whose speaker ``s`` has one clip per label in ``clips[s]``."""
    speakers = [s for s, labels in clips.items() for _ in labels]
    n = len(speakers)
    return Corpus(mfcc=[np.zeros((40, 10), np.float32)] * n, pitch=None,
                  label=np.array([label for labels in clips.values() for label in labels], np.int64),
                  speaker=np.array(speakers), corpus=np.array(["c"] * n), gender=np.array(["unknown"] * n),
                  file=np.array([f"{s}/{i}.wav" for i, s in enumerate(speakers)]))


def test_speaker_folds_balance_clip_counts_and_labels():
    same = _corpus({f"actor{i:02d}": list(range(8)) * 7 for i in range(24)})  # 24 alike speakers, 56 clips each
    folds = protocols.speaker_folds(same, 6)
    assert sorted(len(f) for f in folds) == [4] * 6 and sorted(s for f in folds for s in f) == sorted(set(same.speaker))
    sizes = {"a": 50, "b": 40, "c": 30, "d": 30, "e": 20, "f": 10, "g": 10, "h": 10}
    uneven = _corpus({s: [0] * n for s, n in sizes.items()})
    totals = [sum(sizes[s] for s in f) for f in protocols.speaker_folds(uneven, 3)]
    assert max(totals) - min(totals) <= 10, totals
    by_label = _corpus({"p": [0] * 10, "q": [0] * 10, "r": [1] * 10, "s": [1] * 10})
    for fold in protocols.speaker_folds(by_label, 2):  # each fold gets a speaker of each label
        assert {by_label.label[by_label.speaker == s][0] for s in fold} == {0, 1}
    assert protocols.speaker_folds(by_label, 2) == protocols.speaker_folds(by_label.subset(np.arange(39, -1, -1)), 2)


def test_leave_one_speaker_out_and_requests_that_cannot_be_met():
    corpus = _corpus({"x": [0, 1], "y": [1, 2], "z": [2, 0]})
    assert protocols.speaker_folds(corpus, 0) == [("x",), ("y",), ("z",)]
    with pytest.raises(ValueError, match="needs 2 to 3 folds for the 3 speakers"):
        protocols.speaker_folds(corpus, 4)
    with pytest.raises(ValueError, match="3 folds or more.*kfold_validation=False"):
        protocols.kfold_splits(_corpus({"x": [0], "y": [1]}), 2, 0, validation=True)
    nameless = _corpus({"x": [0, 1], "": [1, 2]})
    with pytest.raises(ValueError, match="2 clip\\(s\\) have none.*speaker column"):
        protocols.speaker_folds(nameless, 0)


def test_folds_test_every_clip_once_on_speakers_they_never_trained_on():
    corpus = _corpus({f"s{i}": [i % 3, (i + 1) % 3, 2] * (i + 1) for i in range(7)})
    groups = protocols.speaker_folds(corpus, 0)
    tested = []
    for k in range(len(groups)):
        splits = protocols.kfold_splits(corpus, 0, k)
        speakers = {name: set(split.speaker) for name, split in splits.items()}
        assert speakers["test"] == set(groups[k]) and speakers["validation"] == set(groups[(k + 1) % len(groups)])
        assert not (speakers["train"] & speakers["test"] or speakers["train"] & speakers["validation"])
        assert sum(len(split) for split in splits.values()) == len(corpus)
        tested += list(splits["test"].file)
        without = protocols.kfold_splits(corpus, 0, k, validation=False)
        assert not len(without["validation"]) and len(without["train"]) == len(corpus) - len(splits["test"])
    assert sorted(tested) == sorted(corpus.file)


def test_a_cross_validation_trains_every_fold_resumes_and_aggregates(tmp_path, synthetic_data_dir,
                                                                     compilation_cache, capsys):
    config = tiny_config(data_dir=synthetic_data_dir, protocol="kfold", folds=3, epochs=1)
    workdir = tmp_path / "cv"
    summary = train.train_and_evaluate(config, workdir)
    per_fold = [json.loads((kfold.fold_dir(workdir, k) / "test_metrics.json").read_text()) for k in range(3)]
    assert summary["num_examples"] == sum(r["num_examples"] for r in per_fold) == 960  # every clip tested once
    for name in kfold.SUMMARY:
        values = [r[name] for r in per_fold]
        assert summary[f"{name}_mean"] == pytest.approx(np.mean(values))
        assert summary[f"{name}_std"] == pytest.approx(np.std(values, ddof=1))
    confusion = np.sum([r["confusion_matrix"] for r in per_fold], axis=0)
    assert summary["confusion_matrix"] == confusion.tolist()
    assert summary["pooled"]["accuracy"] == pytest.approx(np.trace(confusion) / confusion.sum())
    assert [len(f["speakers"]) for f in summary["per_fold"]] == [4, 4, 4]
    assert json.loads((workdir / "test_metrics.json").read_text()) == summary
    assert (workdir / "confusion_matrix.png").stat().st_size > 0
    assert "3-fold speaker cross-validation (960 clips)" in capsys.readouterr().out

    # An interrupted cross-validation: the finished folds are kept, the missing one is trained again, alike.
    finished = (kfold.fold_dir(workdir, 0) / "test_metrics.json").stat().st_mtime_ns
    (kfold.fold_dir(workdir, 2) / "test_metrics.json").unlink()
    again = train.train_and_evaluate(config, workdir)
    assert (kfold.fold_dir(workdir, 0) / "test_metrics.json").stat().st_mtime_ns == finished
    assert again == summary
    evaluated = kfold.evaluate_folds(workdir)  # what eval.py --workdir prints
    assert evaluated["confusion_matrix"] == summary["confusion_matrix"]
    assert evaluated["accuracy_mean"] == pytest.approx(summary["accuracy_mean"])

    config.folds = 4
    with pytest.raises(train.TrainingError, match="folds: 3 there, 4 now"):
        train.train_and_evaluate(config, workdir)
