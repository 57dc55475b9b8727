"""Evaluate a trained workdir, or predict emotions of recordings.

    python eval.py --workdir DIR [--split test]          # metrics JSON (last stdout line), DIR/eval/
    python eval.py --audio FILE [FILE ...] [--json]       # the shipped model (emojax.pretrained)
    python eval.py --workdir DIR --audio FILE [FILE ...] [--json] [--one_speaker]
    python eval.py --workdir DIR1 --workdir DIR2 ... --out OUT [--split test]   # an ensemble's metrics, OUT/

Metrics mode restores the best checkpoint, evaluates it on ``--split`` of the data it was trained on, and
writes DIR/eval/metrics.json and DIR/eval/confusion_matrix.png (or into ``--out``). For a k-fold cross-validation
workdir (``--config.protocol=kfold``) it evaluates every fold's checkpoint and prints their aggregate: mean ± sample
standard deviation over folds, the pooled figures and each fold's (``emojax.kfold``). Several ``--workdir`` flags
make an ensemble: each clip's class probabilities are the mean of the runs' (which must share the protocol, split
and window settings, ``emojax.checkpoints.ENSEMBLE_FIXED``); both modes take one. Prediction mode prints one line per file
(``FILE<TAB>emotion<TAB>probability``), or with ``--json`` one JSON object per file; each file that cannot be
read (missing, empty, truncated, not audio) gets one line ``error: FILE: reason`` on stderr, the other files are
still predicted, and the exit status is 1 when any file failed. A file with at least one sample is predicted.
A model trained with speaker normalisation (``config.speaker_normalization``) needs ``--one_speaker``: the files
are then one speaker's recordings, and their joint MFCC statistics normalise each (give as many as you have).

A damaged checkpoint is replaced by the newest good one, with a warning naming it on stderr; a workdir
without a readable checkpoint exits with status 1 and a one-line error.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from absl import app, flags, logging

FLAGS = flags.FLAGS
flags.DEFINE_multi_string("workdir", None, "A train.py workdir; repeat the flag for an ensemble of several runs. "
                          "Required to evaluate; with --audio, the model shipped with emojax predicts without it.")
flags.DEFINE_string("out", None, "Metrics mode: the directory for metrics*.json and the confusion matrix (default: "
                    "WORKDIR/eval with one --workdir; required with several).")
flags.DEFINE_enum("split", "test", ["train", "validation", "test"], "Split to evaluate (metrics mode).")
flags.DEFINE_enum("checkpoint", "best", ["best", "latest"], "Which checkpoint to use.")
flags.DEFINE_string("audio", None, "Predict this audio file (more files may follow as arguments).")
flags.DEFINE_bool("json", False, "Prediction mode: print one JSON object per file.")
flags.DEFINE_bool("one_speaker", False, "Prediction mode: the files are recordings of one speaker, whose statistics "
                  "over all of them normalise each (needed by models trained with config.speaker_normalization).")


def predict(workdirs: list[str] | None, files: list[str], as_json: bool, one_speaker: bool) -> int:
    """Prints a prediction per file (``emojax.cli.predict_files``) by ``workdirs`` (the shipped model when None);
    returns the exit status (1 if any file failed). With ``one_speaker`` the readable files' joint speaker
    statistics normalise each."""
    from emojax import cli, inference

    if workdirs is None:
        predictor = inference.Predictor.pretrained()
    else:
        predictor = inference.Predictor.from_workdirs(workdirs, FLAGS.checkpoint)
    if predictor.speaker_normalization != "none" and not one_speaker:
        raise app.UsageError(f"{workdirs[0]} was trained with speaker normalisation (config.speaker_normalization="
                             f"{predictor.speaker_normalization!r}): give several recordings of one speaker and "
                             "--one_speaker")
    return cli.predict_files(predictor, files, as_json, one_speaker)


def evaluate(workdirs: list[str], split: str, out: Path) -> int:
    """Prints the metrics JSON as the last stdout line and writes ``out``; a k-fold workdir's aggregate over its
    folds (``emojax.kfold``)."""
    from emojax import evaluate, kfold, metrics

    cross_validation = len(workdirs) == 1 and kfold.is_kfold_workdir(workdirs[0])
    if cross_validation:
        result = kfold.evaluate_folds(workdirs[0], split, FLAGS.checkpoint)
    else:
        result = evaluate.evaluate_checkpoint(workdirs, split, FLAGS.checkpoint)
    out.mkdir(parents=True, exist_ok=True)
    suffix = "" if split == "test" else f"_{split}"
    (out / f"metrics{suffix}.json").write_text(json.dumps(result, indent=1))
    metrics.plot_confusion_matrix(result["confusion_matrix"], out / f"confusion_matrix{suffix}.png",
                                  result["class_names"])
    if cross_validation:
        print(f"{kfold.describe(result, split)}\nwrote {out}\n{json.dumps(result)}", flush=True)
        return 0
    print(f"{split}: accuracy {result['accuracy']:.4f}, unweighted accuracy {result['unweighted_accuracy']:.4f}, "
          f"macro F1 {result['macro_f1']:.4f} on {result['num_examples']} clips; wrote {out}", flush=True)
    if "held_out_classes" in result:
        held_out = result["held_out_classes"]
        print(f"{split}, decision restricted to the held-out corpus's emotions ({', '.join(held_out['classes'])}): "
              f"accuracy {held_out['accuracy']:.4f}, unweighted accuracy {held_out['unweighted_accuracy']:.4f}, "
              f"macro F1 {held_out['macro_f1']:.4f}", flush=True)
    print(json.dumps(result), flush=True)
    return 0


def main(argv: list[str]) -> int:
    logging.set_verbosity(logging.WARNING)  # orbax and tfds log every file at INFO
    from emojax.checkpoints import TrainingError
    from emojax.pretrained import DamagedWeightsError

    if FLAGS.audio is None and len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}; audio files go after --audio")
    if FLAGS.audio is None and not FLAGS.workdir:
        raise app.UsageError("give the run to evaluate with --workdir DIR (or recordings to predict with --audio)")
    if FLAGS.audio is None and FLAGS.out is None and len(FLAGS.workdir) > 1:
        raise app.UsageError("an ensemble's metrics need --out DIR (where to write them)")
    try:
        if FLAGS.audio is not None:
            return predict(FLAGS.workdir, [FLAGS.audio, *argv[1:]], FLAGS.json, FLAGS.one_speaker)
        return evaluate(FLAGS.workdir, FLAGS.split, Path(FLAGS.out or Path(FLAGS.workdir[0]) / "eval"))
    except (FileNotFoundError, TrainingError, DamagedWeightsError) as e:  # no checkpoint or none usable; no weights
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    app.run(main)
