"""k-fold speaker cross-validation: one training run per fold, resumed fold by fold, and the aggregate over folds.

``python train.py --workdir W --config C --config.protocol=kfold --config.folds=K`` (``folds=0``: leave one speaker
out) partitions the speakers of ``config.datasets`` (``protocols.speaker_folds``), records the partition in
``W/kfold.json`` and trains fold k in ``W/fold_<k>/`` (``config.fold=k``; a plain ``train.py`` workdir: checkpoints,
``metrics.jsonl``, ``test_metrics.json``). Started again on the same workdir it skips the finished folds and resumes
the interrupted one from its checkpoint. Then it writes the aggregate, ``W/test_metrics.json`` and
``W/confusion_matrix.png``: the mean and sample standard deviation over folds of accuracy, unweighted accuracy and
macro F1, the confusion matrix summed over folds (every clip is tested exactly once) with the metrics it gives
(``pooled``), and each fold's speakers and figures. ``python eval.py --workdir W`` evaluates every fold's checkpoint
again and prints the same aggregate (``evaluate_folds``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np

from emojax import checkpoints, metrics, protocols
from emojax.checkpoints import TrainingError
from emojax.prepared import SPLITS

SUMMARY = ("accuracy", "unweighted_accuracy", "macro_f1")
"""The metrics averaged over folds."""


def fold_dir(workdir: str | Path, fold: int) -> Path:
    """Where fold ``fold`` of a k-fold workdir is trained: ``workdir/fold_<fold>``."""
    return Path(workdir) / f"fold_{fold}"


def is_kfold_workdir(workdir: str | Path) -> bool:
    """Whether ``workdir`` holds a k-fold cross-validation (``checkpoints.KFOLD_PLAN``) rather than one run."""
    return (Path(workdir) / checkpoints.KFOLD_PLAN).is_file()


def _plan(config: ml_collections.ConfigDict, workdir: Path, groups: list[tuple[str, ...]]) -> None:
    """Writes ``workdir/kfold.json``, or checks that the one there has the same partition and fixed fields."""
    plan = {"config": config.to_dict(), "folds": [list(g) for g in groups]}
    path = workdir / checkpoints.KFOLD_PLAN
    if path.is_file():
        old = json.loads(path.read_text())
        diffs = checkpoints.config_diffs(old["config"], plan["config"], checkpoints.RESUME_FIXED, "now")
        if old["folds"] != plan["folds"]:
            diffs.append("the speakers of the folds (other clips)")
        if diffs:
            raise TrainingError(f"{workdir} holds a cross-validation of another config or data ({'; '.join(diffs)}); "
                                "use another --workdir, or its config to resume")
    elif jax.process_index() == 0:
        workdir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(plan, indent=1, default=list) + "\n")


def train_folds(config: ml_collections.ConfigDict, workdir: str | Path) -> dict[str, Any]:
    """Trains every fold of ``config`` (``protocol="kfold"``, ``fold=-1``) in ``workdir/fold_<k>``, skipping the
    finished ones, and writes and returns the aggregate (``aggregate``)."""
    from emojax import train  # train calls this module for fold=-1

    workdir = Path(workdir)
    train.ensure_prepared(config)
    everything = protocols.Corpus.concatenate([protocols.read_prepared(config, split) for split in SPLITS])
    groups = protocols.speaker_folds(everything, config.folds)
    _plan(config, workdir, groups)
    results = []
    for k in range(len(groups)):
        done = fold_dir(workdir, k) / "test_metrics.json"
        if done.is_file():
            train._log(f"fold {k + 1}/{len(groups)}: finished before, {done}")
            results.append(json.loads(done.read_text()))
            continue
        train._log(f"fold {k + 1}/{len(groups)}: testing on {', '.join(groups[k])}")
        fold_config = ml_collections.ConfigDict(config.to_dict())
        fold_config.fold = k
        splits = protocols.kfold_splits(everything, config.folds, k, config.kfold_validation)
        splits = protocols.refit_splits(splits) if config.refit else splits
        results.append(train.train_and_evaluate(fold_config, fold_dir(workdir, k), splits))
    summary = aggregate(results, groups)
    if jax.process_index() == 0:
        write(summary, workdir)
    train._log(describe(summary, "test"))
    return summary


def aggregate(results: Sequence[dict[str, Any]], groups: Sequence[Sequence[str]]) -> dict[str, Any]:
    """The cross-validation summary of per-fold metrics (``evaluate.split_metrics`` results, fold after fold) and the
    speakers each fold tested: ``<metric>_mean`` and ``<metric>_std`` (sample standard deviation over folds) of each
    of ``SUMMARY``, the summed ``confusion_matrix`` with the metrics it gives (``pooled``), and ``per_fold``."""
    names = results[0]["class_names"]
    confusion = np.sum([np.asarray(r["confusion_matrix"], np.int64) for r in results], axis=0)
    summary: dict[str, Any] = {"protocol": "kfold", "folds": len(results), "class_names": names,
                               "num_examples": int(confusion.sum())}
    for name in SUMMARY:
        values = np.array([r[name] for r in results], np.float64)
        summary[f"{name}_mean"] = float(values.mean())
        summary[f"{name}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    summary["pooled"] = metrics.confusion_metrics(confusion, names)
    summary["confusion_matrix"] = confusion.tolist()
    summary["per_fold"] = [{"fold": k, "speakers": list(speakers), "num_examples": r["num_examples"],
                            "checkpoint_step": r.get("checkpoint_step"), **{name: r[name] for name in SUMMARY}}
                           for k, (r, speakers) in enumerate(zip(results, groups))]
    return summary


def write(summary: dict[str, Any], workdir: Path) -> None:
    """Writes the aggregate as ``workdir/test_metrics.json`` and its summed confusion matrix as
    ``workdir/confusion_matrix.png``."""
    (workdir / "test_metrics.json").write_text(json.dumps(summary, indent=1))
    metrics.plot_confusion_matrix(summary["confusion_matrix"], workdir / "confusion_matrix.png",
                                  summary["class_names"], f"Summed over {summary['folds']} folds")


def describe(summary: dict[str, Any], split: str) -> str:
    """Lines for a person: the mean ± std over folds, the pooled figures, and each fold's."""
    lines = [f"{split}, {summary['folds']}-fold speaker cross-validation ({summary['num_examples']} clips): "
             + ", ".join(f"{name.replace('_', ' ')} {summary[f'{name}_mean']:.4f} ± {summary[f'{name}_std']:.4f}"
                         for name in SUMMARY)
             + f" (mean ± sample std over folds); pooled accuracy {summary['pooled']['accuracy']:.4f}, unweighted "
               f"{summary['pooled']['unweighted_accuracy']:.4f}"]
    for fold in summary["per_fold"]:
        speakers = ", ".join(fold["speakers"][:4]) + (" ..." if len(fold["speakers"]) > 4 else "")
        lines.append(f"  fold {fold['fold']} ({speakers}; {fold['num_examples']} clips): accuracy "
                     f"{fold['accuracy']:.4f}, unweighted {fold['unweighted_accuracy']:.4f}, macro F1 "
                     f"{fold['macro_f1']:.4f}")
    return "\n".join(lines)


def evaluate_folds(workdir: str | Path, split: str = "test", which: str = "best") -> dict[str, Any]:
    """Each fold's ``which`` checkpoint evaluated again on its ``split`` (``evaluate.evaluate_checkpoint``), and
    their ``aggregate``. Raises ``TrainingError`` when a fold has no checkpoint yet (resume the training first)."""
    from emojax import evaluate

    workdir = Path(workdir)
    groups = json.loads((workdir / checkpoints.KFOLD_PLAN).read_text())["folds"]
    missing = [str(fold_dir(workdir, k)) for k in range(len(groups))
               if not (fold_dir(workdir, k) / checkpoints.CHECKPOINT_DIR).is_dir()]
    if missing:
        raise TrainingError(f"{workdir}: fold(s) {', '.join(missing)} are not trained yet; finish the cross-validation "
                            f"with the train.py command that started it (--workdir {workdir})")
    results = [evaluate.evaluate_checkpoint(fold_dir(workdir, k), split, which) for k in range(len(groups))]
    return aggregate(results, groups)
