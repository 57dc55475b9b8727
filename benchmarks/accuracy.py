"""Accuracy protocols: trains and evaluates each (protocol, model) run over several seeds, writes a table.

Each run is ``python train.py --workdir RUNS/<name>/seed<k> --config <config> --config.seed=<k> ...``; its
test figures come from the best-by-validation checkpoint (``test_metrics.json``), its training time from
``metrics.jsonl``. Finished runs (with ``test_metrics.json``) are neither trained nor evaluated again, unless
``--reevaluate`` asks for their evaluation (train.py on a complete workdir only re-evaluates); unfinished ones resume,
so the script can be stopped and started. An ensemble (``ENSEMBLES``) trains its member runs, then averages their
class probabilities with ``eval.py --workdir <member> --workdir <member> ... --out RUNS/<name>/seed<k>`` (validation
and test splits, test only when a member was refitted on the validation clips; again only when that seed has no
metrics yet, or with ``--reevaluate``); its training time is the members' total. Runs trained on another machine
(``benchmarks/gpu_accuracy.py`` on a GPU without TFDS) are read and ensembled like the others once their packed
workdirs are unpacked into RUNS.

    python benchmarks/accuracy.py --runs runs/accuracy --data_dir /work/data/tfds \
        --only seed-random,default-random --seeds 0,1,2 > accuracy.md

Prints a Markdown table (mean ± std over seeds) and updates ``RUNS/results.json`` (the seeds of the runs named here
replace their entries; other runs and seeds stay).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CORPORA = ("ravdess", "savee", "crema_d", "tess")

# SpecAugment as configs/small.py and configs/default.py have it (configs/speaker.py pins it off).
SPECAUG = ("--config.freq_masks=1", "--config.max_freq_width=4", "--config.time_masks=1", "--config.max_time_width=20")
# SpecAugment off: configs/small.py until session 11 and configs/default.py until session 12 had none.
NO_MASKS = ("--config.freq_masks=0", "--config.max_freq_width=0", "--config.time_masks=0", "--config.max_time_width=0")
# Their training then: no SpecAugment, 60 epochs (now both recipes have masks and 90 epochs).
E60_NO_MASKS = ("--config.epochs=60", *NO_MASKS)
# configs/small.py of sessions 2-8: E60_NO_MASKS, widths 16-32-48-64 and a hidden layer of 64 (now 16-32-48-88, none).
SMALL_HIDDEN64 = (*E60_NO_MASKS, "--config.hidden=64", "--config.widths=(16,32,48,64)")

# name -> (protocol description, config file, overrides). "small" is the <= 60k-parameter recipe (configs/small.py),
# "default" the best one (configs/default.py). The speaker-independent and leave-one-corpus-out runs train 30 epochs
# without SpecAugment (the default recipe until session 12 with half its 60 epochs, the cosine schedule shortened
# accordingly) so that they fit in the CPU time budget.
# In overrides, {runs} and {seed} stand for --runs and the seed: a distilled run learns from the same seed of another
# run (train that one first).
RUNS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "seed-random": ("1: random 80/20", "configs/seed.py", ()),
    "small-random": ("1: random 80/20", "configs/small.py", ()),
    # Session 11's choice between 60 and 90 epochs and SpecAugment or not.
    "small-random-e60": ("1: random 80/20", "configs/small.py", E60_NO_MASKS),
    "small-random-e90": ("1: random 80/20", "configs/small.py", NO_MASKS),
    # The old recipe (55,320 parameters) and the levers measured on it; then a hidden layer of 32 (58,904).
    "small-random-hidden64": ("1: random 80/20", "configs/small.py", SMALL_HIDDEN64),
    "small-random-ema": ("1: random 80/20", "configs/small.py", (*SMALL_HIDDEN64, "--config.ema_decay=0.999")),
    "small-random-mixup": ("1: random 80/20", "configs/small.py", (*SMALL_HIDDEN64, "--config.mixup_alpha=0.2")),
    "small-random-cmvn": ("1: random 80/20", "configs/small.py",
                          (*SMALL_HIDDEN64, "--config.utterance_normalization=mean_std")),
    "small-random-deltas": ("1: random 80/20", "configs/small.py", (*SMALL_HIDDEN64, "--config.deltas=2")),
    "small-random-distill": ("1: random 80/20", "configs/small.py",
                             (*SMALL_HIDDEN64, "--config.teacher_workdir={runs}/default-random-e60/seed{seed}")),
    "small-random-hidden32": ("1: random 80/20", "configs/small.py",
                              (*E60_NO_MASKS, "--config.hidden=32", "--config.widths=(16,32,48,80)")),
    "default-random": ("1: random 80/20", "configs/default.py", ()),
    # Session 12's choice: the recipe until then (60 epochs, no SpecAugment).
    "default-random-e60": ("1: random 80/20", "configs/default.py", E60_NO_MASKS),
    # Session 14: attentive statistics pooling instead of plain statistics pooling.
    "default-random-attention": ("1: random 80/20", "configs/default.py", ("--config.pooling=attention",)),
    # Session 15, trained on a lent H200 GPU (benchmarks/gpu_accuracy.py): the default recipe there (against the CPU's
    # default-random), 2x wider (configs/large.py) and 3x wider (configs/xlarge.py).
    "default-random-h200": ("1: random 80/20", "configs/default.py", ()),
    "large-random": ("1: random 80/20", "configs/large.py", ()),
    "xlarge-random": ("1: random 80/20", "configs/xlarge.py", ()),
    # Session 16: speaker normalisation (each clip standardised with its speaker's statistics over their training
    # clips).
    "default-random-spknorm": ("1: random 80/20", "configs/default.py", ("--config.speaker_normalization=mean_std",)),
    # configs/small.py with it, 60 epochs (so that its three seeds fit in that session; an ensemble member).
    "small-random-spknorm-e60": ("1: random 80/20", "configs/small.py",
                                 ("--config.speaker_normalization=mean_std", "--config.epochs=60")),
    # Session 17: with it, the default CNN's last two blocks wider (96 and 256 channels, hidden 256; 387,768
    # parameters), where the maps are small: 1.8x its computation, ~1.4x its time per epoch on the
    # 2-core CPU.
    "default-random-spknorm-tail256": ("1: random 80/20", "configs/default.py",
                                       ("--config.speaker_normalization=mean_std", "--config.widths=(16,32,96,256)",
                                        "--config.hidden=256")),
    # Session 18: with it, each frame's pitch (features.clip_pitch: log f0 and periodicity) as input channels.
    "default-random-spknorm-pitch": ("1: random 80/20", "configs/default.py",
                                     ("--config.speaker_normalization=mean_std", "--config.pitch=True")),
    # Session 23: the same recipe refitted on train + validation (the whole 80 %, 9,729 clips, as the reference
    # trained on), keeping the last of its 90 epochs; the recipe was chosen on validation in sessions 12-20.
    "default-random-spknorm-pitch-refit": ("1: random 80/20, refit on train + validation", "configs/default.py",
                                           ("--config.speaker_normalization=mean_std", "--config.pitch=True",
                                            "--config.refit=True")),
    "default-random-spknorm-refit": ("1: random 80/20, refit on train + validation", "configs/default.py",
                                     ("--config.speaker_normalization=mean_std", "--config.refit=True")),
    # Session 26: pitch without speaker normalisation, the candidate for configs/default.py (which must classify a
    # clip of an unknown speaker, so it has no speaker normalisation).
    "default-random-pitch": ("1: random 80/20", "configs/default.py", ("--config.pitch=True",)),
    "seed-speaker": ("2: speaker-independent", "configs/seed.py", ("--config.protocol=speaker",)),
    "default-speaker": ("2: speaker-independent", "configs/default.py",
                        ("--config.protocol=speaker", "--config.epochs=30", *NO_MASKS)),
    "default-speaker-balanced": ("2: speaker-independent", "configs/speaker.py", ()),
    "default-speaker-balanced-specaug": ("2: speaker-independent", "configs/speaker.py", SPECAUG),
    # Session 16: speaker normalisation; each validation and test speaker by the statistics of their own clips in
    # that split (unsupervised adaptation: their recordings, not their labels).
    "default-speaker-spknorm": ("2: speaker-independent, speakers adapted", "configs/speaker.py",
                                ("--config.speaker_normalization=mean_std",)),
    # Leave one corpus out (sessions 6-8); from session 22 also with speaker normalisation, each held-out speaker by
    # the statistics of their own clips (unsupervised adaptation, as in default-speaker-spknorm).
    **{
        f"default-loco-{held_out}{suffix}": (
            f"3: leave {held_out} out{label}", "configs/default.py",
            ("--config.protocol=loco", f"--config.test_corpus={held_out}", "--config.epochs=30", *NO_MASKS, *extra),
        )
        for held_out in CORPORA
        for suffix, label, extra in (("", "", ()), ("-spknorm", ", speakers adapted",
                                                    ("--config.speaker_normalization=mean_std",)))
    },
}

# Ensembles: name -> (protocol, member runs). The ensemble of seed k averages the class probabilities of the members'
# seed-k runs (``eval.py --workdir ... --workdir ... --out RUNS/<name>/seed<k>``); its members are trained first.
# A member "<run>@<n>" is that run's seed k + n: several independent runs of one recipe in one ensemble (every seed of
# protocol 1 has the same split, config.split_seed). With offsets that are multiples of 3, the members of seeds 0-2
# are distinct runs.
ENSEMBLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "ensemble-random": ("1: random 80/20", ("default-random", "default-random-e60", "small-random")),
    "ensemble-random-attention": ("1: random 80/20", ("default-random", "default-random-e60", "small-random",
                                                      "default-random-attention")),
    "ensemble-random-large": ("1: random 80/20", ("default-random", "default-random-e60", "small-random",
                                                  "default-random-attention", "large-random")),
    "ensemble-random-wide": ("1: random 80/20", ("default-random", "default-random-e60", "small-random",
                                                 "default-random-attention", "large-random", "xlarge-random")),
    "ensemble-h200": ("1: random 80/20", ("default-random-h200", "large-random", "xlarge-random")),
    "ensemble-random-all": ("1: random 80/20", ("default-random", "default-random-e60", "small-random",
                                                "default-random-attention", "large-random", "xlarge-random",
                                                "default-random-h200")),
    "ensemble-random-spknorm": ("1: random 80/20", ("default-random", "default-random-e60", "small-random",
                                                    "default-random-attention", "large-random", "xlarge-random",
                                                    "default-random-spknorm")),
    "ensemble-random-spknorm2": ("1: random 80/20", ("default-random", "default-random-e60", "small-random",
                                                     "default-random-attention", "large-random", "xlarge-random",
                                                     "default-random-spknorm", "small-random-spknorm-e60")),
    # Session 17: the two speaker-normalised CNNs of the default recipe's widths and wider in the last blocks alone.
    "ensemble-random-spknorm-tail": ("1: random 80/20", ("default-random-spknorm", "default-random-spknorm-tail256")),
    # Session 18: the speaker-normalised CNN with and without the pitch rows (and with the wider one).
    "ensemble-random-spknorm-pitch": ("1: random 80/20", ("default-random-spknorm", "default-random-spknorm-pitch")),
    "ensemble-random-spknorm-pitch-tail": ("1: random 80/20", ("default-random-spknorm", "default-random-spknorm-pitch",
                                                               "default-random-spknorm-tail256")),
    # Session 19: two independent runs of the speaker-normalised CNN with pitch (seeds k and k + 3), and the one without.
    "ensemble-random-pitch2": ("1: random 80/20", ("default-random-spknorm-pitch", "default-random-spknorm-pitch@3",
                                                   "default-random-spknorm")),
    # Session 23: ensemble-random-pitch2 with every member refitted on train + validation (no validation metrics).
    "ensemble-random-pitch2-refit": ("1: random 80/20, refit on train + validation",
                                     ("default-random-spknorm-pitch-refit", "default-random-spknorm-pitch-refit@3",
                                      "default-random-spknorm-refit")),
    # Session 21: and two independent runs of the one without pitch (seeds k and k + 3).
    "ensemble-random-pitch2-spk2": ("1: random 80/20", ("default-random-spknorm-pitch",
                                                        "default-random-spknorm-pitch@3", "default-random-spknorm",
                                                        "default-random-spknorm@3")),
    "ensemble-speaker": ("2: speaker-independent", ("default-speaker-balanced", "default-speaker-balanced-specaug")),
}


def member_run(member: str, seed: int) -> tuple[str, int]:
    """``(run name, seed)`` of an ``ENSEMBLES`` member (``"<run>"`` or ``"<run>@<offset>"``) in the ensemble's
    ``seed``."""
    name, _, offset = member.partition("@")
    return name, seed + int(offset or 0)


def run_one(name: str, seed: int, runs: Path, data_dir: str | None, train: bool = True, reevaluate: bool = False
            ) -> dict | None:
    """Trains (or resumes) one run and returns its test metrics with timing added; a finished run is only read,
    or re-evaluated with ``reevaluate``; ``train=False`` only reads (None when the run has no
    ``test_metrics.json``)."""
    protocol, config, overrides = RUNS[name]
    workdir = runs / name / f"seed{seed}"
    finished = (workdir / "test_metrics.json").exists()
    if not train or (finished and not reevaluate):
        return _result(workdir, protocol, config, overrides, wall=None) if finished else None
    command = [sys.executable, str(REPO / "train.py"), f"--workdir={workdir}", f"--config={REPO / config}",
               f"--config.seed={seed}", *(o.format(runs=runs, seed=seed) for o in overrides)]
    if data_dir:
        command.append(f"--config.data_dir={data_dir}")
    print(f"[accuracy] {' '.join(command)}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=REPO)
    return _result(workdir, protocol, config, overrides, wall=time.perf_counter() - started)


def run_ensemble(name: str, seed: int, runs: Path, data_dir: str | None, train: bool = True,
                 reevaluate: bool = False) -> dict | None:
    """Trains (or resumes) the members of ensemble ``name``, evaluates its seed on the validation and test splits
    (``RUNS/<name>/seed<k>/metrics_validation.json``, then ``metrics.json``; only the test split when a member
    trained on the validation clips, ``config.refit``; a seed that has ``metrics.json`` is only read, unless
    ``reevaluate``) and returns its test metrics with the members' total training time; ``train=False`` only reads
    a finished ensemble (None when it has no ``metrics.json``)."""
    protocol, members = ENSEMBLES[name]
    member_runs = [member_run(m, seed) for m in members]
    workdir = runs / name / f"seed{seed}"
    if train and (reevaluate or not (workdir / "metrics.json").exists()):
        for member, k in member_runs:
            run_one(member, k, runs, data_dir, reevaluate=reevaluate)
        validated = all(_validated(runs / m / f"seed{k}") for m, k in member_runs)
        for split in ("validation", "test") if validated else ("test",):
            command = [sys.executable, str(REPO / "eval.py"),
                       *(f"--workdir={runs / m / f'seed{k}'}" for m, k in member_runs), f"--split={split}",
                       f"--out={workdir}"]
            print(f"[accuracy] {' '.join(command)}", file=sys.stderr, flush=True)
            subprocess.run(command, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    if not (workdir / "metrics.json").exists():
        return None
    metrics = json.loads((workdir / "metrics.json").read_text())
    metrics["train_seconds"] = sum(_train_seconds(runs / m / f"seed{k}") for m, k in member_runs)
    metrics["protocol"], metrics["config"], metrics["overrides"] = protocol, f"ensemble of {' + '.join(members)}", []
    return metrics


def epoch_records(workdir: Path) -> list[dict]:
    """A trained run's per-epoch records (its ``metrics.jsonl``)."""
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def _validated(workdir: Path) -> bool:
    """Whether a trained run kept its validation clips out of training (its epochs record ``val_accuracy``); a
    refitted one (``config.refit``) trained on them, so an ensemble with it has no validation figures."""
    return "val_accuracy" in epoch_records(workdir)[0]


def _train_seconds(workdir: Path) -> float:
    """Seconds the epochs of a run took."""
    return float(sum(record["epoch_seconds"] for record in epoch_records(workdir)))


def _result(workdir: Path, protocol: str, config: str, overrides: tuple[str, ...], wall: float | None) -> dict:
    """A finished run's ``test_metrics.json`` with its training time, protocol and command added."""
    metrics = json.loads((workdir / "test_metrics.json").read_text())
    metrics["train_seconds"] = _train_seconds(workdir)
    metrics["wall_seconds_this_call"] = wall
    metrics["protocol"], metrics["config"], metrics["overrides"] = protocol, config, list(overrides)
    return metrics


def _mean_std(values: list[float]) -> str:
    values = np.asarray(values) * 100
    return f"{values.mean():.1f} ± {values.std():.1f}" if len(values) > 1 else f"{values[0]:.1f}"


def table(results: dict[str, list[dict]]) -> str:
    """Markdown table: one row per run name, mean ± std over its seeds."""
    lines = [
        "| protocol | run | config | params | seeds | accuracy % | UA % | macro-F1 % | Keras P / R % | "
        "per-corpus accuracy % (UA %) | train time / seed |",
        "|---|---|---|---:|---:|---|---|---|---|---|---:|",
    ]
    for name, runs in results.items():
        first = runs[0]
        per_corpus = ", ".join(
            f"{corpus} {_mean_std([r['per_corpus'][corpus]['accuracy'] for r in runs])} "
            f"({_mean_std([r['per_corpus'][corpus]['unweighted_accuracy'] for r in runs])})"
            for corpus in first.get("per_corpus", {})
        )
        keras = f"{_mean_std([r['keras_precision'] for r in runs])} / {_mean_std([r['keras_recall'] for r in runs])}"
        minutes = np.mean([r["train_seconds"] for r in runs]) / 60
        lines.append(
            f"| {first['protocol']} | {name} | `{first['config']}` {' '.join(first['overrides'])} | "
            f"{next((r['num_parameters'] for r in runs if 'num_parameters' in r), '?')} | {len(runs)} | "
            f"{_mean_std([r['accuracy'] for r in runs])} | {_mean_std([r['unweighted_accuracy'] for r in runs])} | "
            f"{_mean_std([r['macro_f1'] for r in runs])} | {keras} | {per_corpus} | {minutes:.1f} min |"
        )
    return "\n".join(lines)


def with_held_out_classes(results: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """``results`` with, after each leave-one-corpus-out run, a row of its test metrics with the decision
    restricted to the held-out corpus's emotions (``held_out_classes`` in ``test_metrics.json``), unless it has
    all of them (RAVDESS)."""
    out = {}
    for name, runs in results.items():
        out[name] = runs
        if all("held_out_classes" in r for r in runs):
            classes = runs[0]["held_out_classes"]["classes"]
            if len(classes) == len(runs[0]["class_names"]):
                continue
            out[f"{name}, its {len(classes)} classes"] = [
                {**r, **r["held_out_classes"], "protocol": f"{r['protocol']}, decision over its {len(classes)} emotions"}
                for r in runs]
    return out


def confusion_tables(results: dict[str, list[dict]]) -> str:
    """Markdown confusion matrices (summed over seeds) of the leave-one-corpus-out runs: rows are the true
    emotions the held-out corpus has, columns the predicted ones (all 8, or its own with the decision restricted
    to them)."""
    out = []
    for name, runs in results.items():
        if "loco" not in name:
            continue
        matrix = np.sum([np.asarray(r["confusion_matrix"]) for r in runs], axis=0)
        names = runs[0]["class_names"]
        columns = [names.index(c) for c in runs[0].get("classes", names)]
        rows = [i for i in range(len(names)) if matrix[i].sum()]
        out += [f"\n{name} ({len(runs)} seed(s): {int(matrix.sum()) // len(runs)} clips x {len(runs)}; "
                "rows: true, columns: predicted)\n",
                "| true \\ predicted | " + " | ".join(names[j] for j in columns) + " | recall % |",
                "|---|" + "---:|" * (len(columns) + 1)]
        for i in rows:
            recall = 100 * matrix[i, i] / matrix[i].sum()
            out.append(f"| {names[i]} | " + " | ".join(str(int(matrix[i, j])) for j in columns) + f" | {recall:.1f} |")
    return "\n".join(out)


def save_results(path: Path, results: dict[str, list[dict]], seeds: list[int]) -> None:
    """Writes ``results`` into the JSON file at ``path``: their runs' entries for ``seeds`` are replaced; other runs'
    entries, and their other seeds', are kept (entries without a recorded seed, from before session 14, are
    replaced too)."""
    saved = json.loads(path.read_text()) if path.exists() else {}
    for name, runs in results.items():
        kept = [r for r in saved.get(name, []) if r.get("seed") not in seeds and "seed" in r]
        saved[name] = sorted(kept + runs, key=lambda r: r["seed"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(saved, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "accuracy", help="parent of the workdirs")
    parser.add_argument("--data_dir", default=None, help="TFDS data dir with the four prepared corpora")
    parser.add_argument("--only", default=",".join(RUNS), help=f"comma-separated run names of: {', '.join(RUNS)}; "
                        f"or ensembles: {', '.join(ENSEMBLES)}")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    parser.add_argument("--report", action="store_true",
                        help="train nothing: tabulate the finished runs (seeds without test_metrics.json are left out)")
    parser.add_argument("--reevaluate", action="store_true",
                        help="evaluate finished runs and ensembles again (e.g. after a change to evaluation)")
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n]
    unknown = sorted(set(names) - set(RUNS) - set(ENSEMBLES))
    if unknown:
        parser.error(f"unknown run names {unknown}; choose from {', '.join([*RUNS, *ENSEMBLES])}")
    seeds = [int(s) for s in args.seeds.split(",")]
    results = {name: [{**r, "seed": seed} for seed in seeds
                      if (r := (run_ensemble if name in ENSEMBLES else run_one)(name, seed, args.runs, args.data_dir,
                                                                                not args.report, args.reevaluate))]
               for name in names}
    results = {name: runs for name, runs in results.items() if runs}
    save_results(args.runs / "results.json", results, seeds)
    print(f"{time.strftime('%Y-%m-%d')}, {platform.machine()} CPU, `{' '.join(sys.argv)}`\n")
    results = with_held_out_classes(results)
    print(table(results))
    print(confusion_tables(results))


if __name__ == "__main__":
    main()
