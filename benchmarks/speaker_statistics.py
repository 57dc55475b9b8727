"""How many recordings of a speaker a model trained with speaker normalisation needs at test time.

A run trained with ``--config.speaker_normalization`` classifies each clip after normalising its MFCCs with its
speaker's statistics (``emojax.input_pipeline.speaker_normalize``): for a speaker seen in training, those of their
training clips; for a new one, those of all their clips in the evaluated split. Here every speaker of the split is
instead given the statistics of only ``k`` of their clips in it, drawn at random (``--repeats`` draws per ``k``), as a
user with ``k`` unlabelled recordings of a speaker would have; each clip of the split is then classified as in
evaluation (the run's best checkpoint, its test windows). ``k = 0`` is the run's own evaluation, for comparison.

    python benchmarks/speaker_statistics.py --workdir RUNS/default-speaker-spknorm/seed0 --clips 0,1,3,10,30

Prints a Markdown table: k, accuracy and unweighted accuracy (mean ± sample standard deviation, ddof=1, over the
draws), per-corpus accuracy (mean over the draws).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from emojax import checkpoints, input_pipeline, metrics, models, protocols
from emojax.evaluate import clip_probabilities
from emojax.state import make_mesh, model_variables
from emojax.steps import Classifier


def with_statistics_of_k_clips(corpus: protocols.Corpus, k: int, kind: str, rng: np.random.Generator
                               ) -> protocols.Corpus:
    """``corpus`` with each clip normalised by the ``frame_statistics`` of ``k`` random clips of its speaker in
    ``corpus`` (all of them when the speaker has fewer)."""
    statistics = {}
    for speaker in np.unique(corpus.speaker):
        clips = np.flatnonzero(corpus.speaker == speaker)
        chosen = rng.choice(clips, size=min(k, len(clips)), replace=False)
        statistics[speaker] = input_pipeline.frame_statistics([corpus.clip(i) for i in chosen])
    return corpus.replace_rows([input_pipeline.normalize_by_speaker(corpus.clip(i), statistics[s], kind)
                                for i, s in enumerate(corpus.speaker)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", required=True, help="a train.py run trained with config.speaker_normalization")
    parser.add_argument("--split", default="test", choices=protocols.SPLITS)
    parser.add_argument("--clips", default="0,1,3,10,30", help="comma-separated k (0: the run's own evaluation)")
    parser.add_argument("--repeats", type=int, default=3, help="random draws of the k clips per speaker")
    parser.add_argument("--data_dir", default=None, help="override the run's config.data_dir")
    args = parser.parse_args()

    config, state, normalization, step = checkpoints.restore(args.workdir)
    kind = config.speaker_normalization
    if kind == "none":
        sys.exit(f"{args.workdir} was trained without speaker normalisation (config.speaker_normalization); "
                 "give a run trained with --config.speaker_normalization=mean_std")
    if args.data_dir:
        config.data_dir = args.data_dir
    splits = protocols.load_splits(config)
    corpus = splits[args.split]
    classifier = Classifier(models.create_model(config), make_mesh(), config.eval_batch_size)
    variables = classifier.place(model_variables(state))

    def evaluate(normalized: protocols.Corpus) -> dict:
        windows = normalization(input_pipeline.evaluation_windows(normalized, config))
        probs = clip_probabilities(classifier, variables, windows)
        return metrics.classification_metrics(corpus.label, probs, groups={"corpus": corpus.corpus})

    per_speaker = np.unique(corpus.speaker, return_counts=True)[1]
    print(f"{args.workdir} (checkpoint step {step}), {args.split} split: {len(corpus)} clips of {len(per_speaker)} "
          f"speakers ({per_speaker.min()}-{per_speaker.max()} each); speaker normalisation {kind!r}; mean ± sample "
          "standard deviation (ddof=1) over the draws\n")
    corpora = sorted(set(corpus.corpus))
    print(f"| k clips per speaker | draws | accuracy % | UA % | {' | '.join(corpora)} |")
    print(f"|---:|---:|---|---|{'---:|' * len(corpora)}")
    rng = np.random.default_rng(0)
    for k in (int(k) for k in args.clips.split(",")):
        if k == 0:
            results = [evaluate(input_pipeline.speaker_normalize(splits, kind)[args.split])]
        else:
            results = [evaluate(with_statistics_of_k_clips(corpus, k, kind, rng)) for _ in range(args.repeats)]
        acc = 100 * np.array([r["accuracy"] for r in results])
        ua = 100 * np.array([r["unweighted_accuracy"] for r in results])
        per_corpus = [np.mean([100 * r["per_corpus"][c]["accuracy"] for r in results]) for c in corpora]
        label = "the run's own (training clips; a new speaker: all theirs in the split)" if k == 0 else str(k)
        acc_sd, ua_sd = (f" ± {v.std(ddof=1):.1f}" if len(v) > 1 else "" for v in (acc, ua))
        print(f"| {label} | {len(results)} | {acc.mean():.1f}{acc_sd} | {ua.mean():.1f}{ua_sd} | "
              f"{' | '.join(f'{a:.1f}' for a in per_corpus)} |", flush=True)


if __name__ == "__main__":
    main()
