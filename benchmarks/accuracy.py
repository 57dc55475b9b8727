"""Accuracy protocols: trains and evaluates each (protocol, model) run over several seeds, writes a table.

Each run is ``python train.py --workdir RUNS/<name>/seed<k> --config <config> --config.seed=<k> <overrides>``
(``RUNS`` below); its test figures come from the best-by-validation checkpoint (the last epoch for a refitted run,
``config.refit``), ``test_metrics.json``, its training time from ``metrics.jsonl``. Finished runs are neither
trained nor evaluated again, unless ``--reevaluate`` asks for their evaluation (train.py on a complete workdir only
re-evaluates); unfinished ones resume, so the script can be stopped and started. An ensemble (``ENSEMBLES``) trains
its member runs, then averages their class probabilities with ``eval.py --workdir <member> --workdir <member> ...
--out RUNS/<name>/seed<k>`` (validation and test splits; test only when a member was refitted on the validation
clips); its training time is the members' total.

    python benchmarks/accuracy.py --runs runs/accuracy --data_dir DATA --only seed-random,default-random --seeds 0,1,2

Prints a Markdown table (mean ± sample standard deviation, ddof=1, over the seeds) and the leave-one-corpus-out
confusion matrices, and updates ``RUNS/results.json`` (the seeds of the runs named here replace their entries; other
runs and seeds stay). ``--report`` trains nothing and tabulates what is finished.

On a machine without the prepared corpora (e.g. a GPU machine without TensorFlow), runs train in this process from
MFCCs recomputed from the audio (``benchmarks/gpu_accuracy.py`` writes the manifest and the cache), on the same
examples, splits and windows as from the prepared corpora; each finished workdir is packed with only its best
checkpoint into ``OUT/<run>-seed<k>.tar``, to be unpacked into RUNS where the corpora are prepared and evaluated or
ensembled there like any other run:

    python benchmarks/accuracy.py --manifest manifest.npz --cache mfcc/ --runs /tmp/runs \\
        --only large-random --seeds 0,1,2 --budget 480 --out "$OUT"
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import ml_collections
import numpy as np
from absl import flags
from ml_collections import config_flags

from emojax import protocols, train
from emojax.prepared import CORPORA

REPO = Path(__file__).resolve().parents[1]

# SpecAugment as configs/small.py and configs/default.py have it: one band of <= 4 of the 40 coefficients and one of
# <= 20 frames per window (configs/speaker.py has none).
SPECAUG = ("--config.freq_masks=1", "--config.max_freq_width=4", "--config.time_masks=1", "--config.max_time_width=20")
NO_MASKS = ("--config.freq_masks=0", "--config.max_freq_width=0", "--config.time_masks=0", "--config.max_time_width=0")
# configs/default.py's training without SpecAugment and with 60 epochs instead of 90.
E60_NO_MASKS = ("--config.epochs=60", *NO_MASKS)
# A narrower CNN (widths 16-32-48-64 and a hidden layer of 64: 55,320 parameters) trained as E60_NO_MASKS: the
# baseline of per-utterance normalisation.
SMALL_HIDDEN64 = (*E60_NO_MASKS, "--config.hidden=64", "--config.widths=(16,32,48,64)")
SPKNORM = "--config.speaker_normalization=mean_std"
# configs/pretrained.py without any waveform augmentation.
CLEAN = ("--config.front_end=prepared", "--config.wave_noise_prob=0", "--config.wave_reverb_prob=0",
         "--config.wave_telephone_prob=0")
# configs/pretrained.py's previous, milder conditions: babble at 5-20 dB SNR (not 0-20), no telephone band.
MILD = ("--config.wave_noise_snr_db=(5.0, 20.0)", "--config.wave_telephone_prob=0")
# configs/pretrained.py with speed perturbation (tempo and pitch together) of every clip by 0.9-1.1.
SPEED = ("--config.wave_speed=(0.9, 1.1)",)
RANDOM = "1: random 80/20"
REFIT = "1: random 80/20, refit on train + validation"
SPEAKER = "2: speaker-independent"

# name -> (protocol, config file, overrides).
RUNS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    # Protocol 1, the model given only the recording.
    "seed-random": (RANDOM, "configs/seed.py", ()),  # the reference CNN and features
    "small-random": (RANDOM, "configs/small.py", ()),
    "default-random": (RANDOM, "configs/default.py", ()),
    "default-random-pitch": (RANDOM, "configs/default.py", ("--config.pitch=True",)),
    "default-random-e60": (RANDOM, "configs/default.py", E60_NO_MASKS),  # a member of ensemble-random
    # The members of ensemble-h200, trained on a GPU (--cache): configs/default.py, 2x and 3x its channels.
    "default-random-h200": (RANDOM, "configs/default.py", ()),
    "large-random": (RANDOM, "configs/large.py", ()),
    "xlarge-random": (RANDOM, "configs/xlarge.py", ()),
    # Per-utterance normalisation (each clip's MFCCs standardised over its own frames) and its baseline.
    "small-random-hidden64": (RANDOM, "configs/small.py", SMALL_HIDDEN64),
    "small-random-cmvn": (RANDOM, "configs/small.py", (*SMALL_HIDDEN64, "--config.utterance_normalization=mean_std")),
    # Protocol 1 with speaker enrolment: each clip standardised with its speaker's statistics over their training
    # clips, so the model is given the test clip's speaker and that speaker's training clips.
    "small-random-spknorm-e60": (RANDOM, "configs/small.py", (SPKNORM, "--config.epochs=60")),
    "default-random-spknorm": (RANDOM, "configs/default.py", (SPKNORM,)),
    "default-random-spknorm-pitch": (RANDOM, "configs/default.py", (SPKNORM, "--config.pitch=True")),
    # The same recipes refitted on train + validation (the whole 80 %, 9,729 clips), keeping the last of the 90
    # epochs: they have no validation figures.
    "default-random-spknorm-pitch-refit": (REFIT, "configs/default.py", (SPKNORM, "--config.pitch=True",
                                                                         "--config.refit=True")),
    "default-random-spknorm-refit": (REFIT, "configs/default.py", (SPKNORM, "--config.refit=True")),
    # Protocol 2: validation and test speakers none of whom is in training.
    "seed-speaker": (SPEAKER, "configs/seed.py", ("--config.protocol=speaker",)),
    "default-speaker-balanced": (SPEAKER, "configs/speaker.py", ()),
    "default-speaker-balanced-specaug": (SPEAKER, "configs/speaker.py", SPECAUG),
    # Each validation and test speaker standardised with the statistics of their own clips in that split: the model
    # is given several unlabelled recordings of each test speaker.
    "default-speaker-spknorm": (f"{SPEAKER}, speakers adapted", "configs/speaker.py", (SPKNORM,)),
    # Protocol 3, leave one corpus out: 30 epochs without SpecAugment; "-spknorm" adapts each held-out speaker with
    # the statistics of their own clips, as default-speaker-spknorm does.
    **{
        f"default-loco-{held_out}{suffix}": (
            f"3: leave {held_out} out{label}", "configs/default.py",
            ("--config.protocol=loco", f"--config.test_corpus={held_out}", "--config.epochs=30", *NO_MASKS, *extra),
        )
        for held_out in CORPORA
        for suffix, label, extra in (("", "", ()), ("-spknorm", ", speakers adapted", (SPKNORM,)))
    },
    # The shipped model's recipe (configs/pretrained.py: configs/speaker.py with each clip's level removed, trained
    # after babble noise, synthetic rooms and the telephone band) on the honest protocols, the same without those
    # augmentations, with the previous milder ones and with speed perturbation; the shipped model itself trains on
    # every clip (MODEL_CARD.md).
    **{f"pretrained-speaker{suffix}": (SPEAKER, "configs/pretrained.py", ("--config.protocol=speaker", *extra))
       for suffix, extra in (("", ()), ("-clean", CLEAN), ("-mild", MILD), ("-speed", SPEED))},
    **{f"pretrained-loco-{held_out}{suffix}": (f"3: leave {held_out} out", "configs/pretrained.py",
                                               ("--config.protocol=loco", f"--config.test_corpus={held_out}", *extra))
       for held_out in CORPORA for suffix, extra in (("", ()), ("-clean", CLEAN), ("-mild", MILD))},
}

# Ensembles: name -> (protocol, member runs). The ensemble of seed k averages the class probabilities of the members'
# seed-k runs (``eval.py --workdir ... --workdir ... --out RUNS/<name>/seed<k>``); its members are trained first.
# A member "<run>@<n>" is that run's seed k + n: several independent runs of one recipe in one ensemble (every seed of
# protocol 1 has the same split, config.split_seed). With offsets that are multiples of 3, the members of seeds 0-2
# are distinct runs.
ENSEMBLES: dict[str, tuple[str, tuple[str, ...]]] = {
    # Given only the recording.
    "ensemble-random": (RANDOM, ("default-random", "default-random-e60", "small-random")),
    "ensemble-h200": (RANDOM, ("default-random-h200", "large-random", "xlarge-random")),
    # With speaker enrolment: two runs of the recipe with pitch and one without pitch.
    "ensemble-random-pitch2": (RANDOM, ("default-random-spknorm-pitch", "default-random-spknorm-pitch@3",
                                        "default-random-spknorm")),
    "ensemble-random-pitch2-refit": (REFIT, ("default-random-spknorm-pitch-refit",
                                             "default-random-spknorm-pitch-refit@3", "default-random-spknorm-refit")),
    # ensemble-random-pitch2 with a second run without pitch.
    "ensemble-random-pitch2-spk2": (RANDOM, ("default-random-spknorm-pitch", "default-random-spknorm-pitch@3",
                                             "default-random-spknorm", "default-random-spknorm@3")),
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
               f"--config.seed={seed}", *overrides]
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


def _validated(workdir: Path) -> bool:
    """Whether a trained run kept its validation clips out of training (its epochs record ``val_accuracy``); a
    refitted one (``config.refit``) trained on them, so an ensemble with it has no validation figures."""
    return "val_accuracy" in train.epoch_records(workdir)[0]


def _train_seconds(workdir: Path) -> float:
    """Seconds the epochs of a run took."""
    return float(sum(record["epoch_seconds"] for record in train.epoch_records(workdir)))


def _result(workdir: Path, protocol: str, config: str, overrides: tuple[str, ...], wall: float | None) -> dict:
    """A finished run's ``test_metrics.json`` with its training time, protocol and command added."""
    metrics = json.loads((workdir / "test_metrics.json").read_text())
    metrics["train_seconds"] = _train_seconds(workdir)
    metrics["wall_seconds_this_call"] = wall
    metrics["protocol"], metrics["config"], metrics["overrides"] = protocol, config, list(overrides)
    return metrics


def _mean_std(values: list[float]) -> str:
    """Mean ± sample standard deviation (ddof=1) of fractions, in %; a single value alone."""
    values = np.asarray(values) * 100
    return f"{values.mean():.1f} ± {values.std(ddof=1):.1f}" if len(values) > 1 else f"{values[0]:.1f}"


def table(results: dict[str, list[dict]]) -> str:
    """Markdown table: one row per run name, mean ± sample standard deviation over its seeds."""
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


def _cached(cache: Path) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Manifest index -> (MFCC (40, frames), pitch rows (2, frames)) of every part file ``gpu_accuracy.py
    features`` wrote in ``cache``."""
    out = {}
    for part in sorted(cache.glob("part-*.npz")):
        with np.load(part) as d:
            bounds = np.cumsum(d["frames"])[:-1]
            for i, mfcc, pitch in zip(d["index"], np.split(d["mfcc"], bounds, axis=1),
                                      np.split(d["pitch"], bounds, axis=1)):
                out[int(i)] = mfcc, pitch
    return out


def cache_reader(manifest: Path, cache: Path) -> Callable:
    """``read(config, split)`` for ``protocols.load_splits``: the manifest's examples, in the prepared corpora's
    order, with the cached MFCCs (and their pitch rows for a config with ``pitch``)."""
    m = np.load(manifest)
    cached = _cached(cache)
    missing = len(m["label"]) - len(cached)
    if missing:
        raise FileNotFoundError(f"{missing} of the manifest's examples have no MFCCs in {cache}; run "
                                "benchmarks/gpu_accuracy.py features on the rest of the audio first")
    clips = [cached[i] for i in range(len(m["label"]))]
    everything = protocols.Corpus(
        mfcc=[c for c, _ in clips], pitch=[p for _, p in clips], label=m["label"], file=m["path"].astype(str),
        **{k: m[k].astype(str) for k in ("speaker", "corpus", "gender")})

    def read(config: ml_collections.ConfigDict, split: str) -> protocols.Corpus:
        chosen = everything if config.pitch else dataclasses.replace(everything, pitch=None)
        return protocols.Corpus.concatenate([
            chosen.subset(np.flatnonzero((m["split"] == split) & (m["corpus"] == name)))
            for name in config.datasets])

    return read


def run_config(name: str, seed: int, data_dir: str) -> ml_collections.ConfigDict:
    """The config of run ``name`` with ``--config.seed=seed`` and ``--config.data_dir=data_dir``: its config file and
    overrides parsed by ml_collections as train.py's flags are."""
    _, path, overrides = RUNS[name]
    argv = ["accuracy", f"--config={REPO / path}", *overrides, f"--config.seed={seed}", f"--config.data_dir={data_dir}"]
    flag_values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", None, flag_values=flag_values, sys_argv=argv)
    flag_values(argv)
    return flag_values.config


def pack(workdir: Path, best: int, out: Path) -> None:
    """``workdir`` with only its best checkpoint (step ``best``), as ``out`` (a tar of ``<run>/seed<k>/...``)."""
    with tarfile.open(out, "w") as tar:
        for path in sorted(workdir.rglob("*")):
            relative = path.relative_to(workdir)
            if path.is_file() and (relative.parts[0] in ("metrics.jsonl", "test_metrics.json")
                                   or relative.parts[:2] == ("checkpoints", str(best))):
                tar.add(path, arcname=str(Path(workdir.parent.name, workdir.name, relative)))


def train_from_cache(manifest: Path, cache: Path, runs: Path, jobs: list[tuple[str, int]], budget: float,
                     out: Path) -> None:
    """Trains ``jobs`` ((run, seed) in order) in this process from the cached MFCCs while the budget allows, packing
    each finished workdir into ``out``. A job is skipped when the time its run took before, or 2x the longest job so
    far for a run not seen yet, exceeds the budget left; a finished workdir is only packed again."""
    import jax

    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    read = cache_reader(manifest, cache)
    data_dir = str(np.load(manifest)["data_dir"])
    took: dict[str, float] = {}
    results = []
    for name, seed in jobs:
        left = budget - (time.perf_counter() - started)
        expected = took.get(name, 2 * max(took.values(), default=0.0))
        if expected > left:
            print(f"[accuracy] skipped {name} seed {seed}: ~{expected:.0f} s expected, {left:.0f} s left", flush=True)
            continue
        config = run_config(name, seed, data_dir)
        workdir = runs / name / f"seed{seed}"
        t0 = time.perf_counter()
        test = train.train_and_evaluate(config, workdir, protocols.load_splits(config, read))
        took[name] = time.perf_counter() - t0
        pack(workdir, test["checkpoint_step"], out / f"{name}-seed{seed}.tar")
        records = train.epoch_records(workdir)
        results.append({"run": name, "seed": seed, "device": jax.devices()[0].device_kind, "seconds": took[name],
                        "train_seconds": sum(r["epoch_seconds"] for r in records),
                        "best_val_unweighted_accuracy": max((r["val_unweighted_accuracy"] for r in records
                                                             if "val_unweighted_accuracy" in r), default=None),
                        "test_accuracy": test["accuracy"], "test_unweighted_accuracy": test["unweighted_accuracy"],
                        "num_parameters": test["num_parameters"]})
        (out / "results.json").write_text(json.dumps(results, indent=1))
        print(f"[accuracy] {json.dumps(results[-1])}", flush=True)


def save_results(path: Path, results: dict[str, list[dict]], seeds: list[int]) -> None:
    """Writes ``results`` into the JSON file at ``path``: their runs' entries for ``seeds`` are replaced; other runs'
    entries, and their other seeds', are kept (entries without a recorded seed are replaced too)."""
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
    cached = parser.add_argument_group("training from cached MFCCs, without TFDS (benchmarks/gpu_accuracy.py)")
    cached.add_argument("--manifest", type=Path, help="the manifest of gpu_accuracy.py export")
    cached.add_argument("--cache", type=Path, help="the MFCC cache of gpu_accuracy.py features")
    cached.add_argument("--budget", type=float, default=float("inf"), help="seconds; no run starts that would not fit")
    cached.add_argument("--out", type=Path, help="where the packed workdirs and results.json go")
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n]
    unknown = sorted(set(names) - set(RUNS) - set(ENSEMBLES))
    if unknown:
        parser.error(f"unknown run names {unknown}; choose from {', '.join([*RUNS, *ENSEMBLES])}")
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.cache:
        if not (args.manifest and args.out) or set(names) & set(ENSEMBLES):
            parser.error("--cache needs --manifest and --out, and trains runs only (ensembles need eval.py and TFDS)")
        train_from_cache(args.manifest, args.cache, args.runs, [(n, s) for n in names for s in seeds], args.budget,
                         args.out)
        args.report = True  # tabulate what was trained
    results = {name: [{**r, "seed": seed} for seed in seeds
                      if (r := (run_ensemble if name in ENSEMBLES else run_one)(name, seed, args.runs, args.data_dir,
                                                                                not args.report, args.reevaluate))]
               for name in names}
    results = {name: runs for name, runs in results.items() if runs}
    save_results(args.runs / "results.json", results, seeds)
    print(f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, `{' '.join(sys.argv)}`; mean ± sample standard "
          "deviation (ddof=1) over the seeds\n")
    results = with_held_out_classes(results)
    print(table(results))
    print(confusion_tables(results))


if __name__ == "__main__":
    main()
