"""Accuracy runs on a machine without TensorFlow and TFDS (such as the lent GPU), on the same examples, splits and
windows as ``benchmarks/accuracy.py``'s runs from the prepared corpora.

The prepared corpora fix each example's label, speaker and order, and the random protocol's split depends on that
order. So, three steps:

1. ``export`` (here, where the corpora are prepared) writes a manifest: per example its builder split, corpus, file,
   label, speaker and gender in stored order, the frame count and statistics of its stored MFCCs, and the whole MFCCs
   of one example per split and corpus, to check the recomputed ones against.
2. ``features`` (there, with the audio as ``AUDIO/<corpus>/<file>``, e.g. a copy of ``../shared/corpora``) decodes the
   manifest's files that are present and not yet cached, computes their MFCCs and pitch rows with the builders' front
   end (``features.clip_mfccs``, ``features.clip_pitch``) on JAX's CPU backend and caches them; it can run on parts
   of the audio. On the CPU they
   equal the prepared ones exactly; on an H200, even with float32 products at full precision, per-clip means and
   standard deviations differed by up to 0.004 and 0.034 and single values by up to 0.42 (session 15).
3. ``train`` (there) trains runs of ``benchmarks/accuracy.py``'s ``RUNS`` in-process from the cached MFCCs
   (``train.train_and_evaluate(config, workdir, splits)``) until ``--budget`` seconds are used, and packs each
   finished workdir with only its best checkpoint into ``OUT/<run>-seed<k>.tar``. Unpacked into the runs folder
   here, it is evaluated or ensembled like any other run.

    python benchmarks/gpu_accuracy.py export --data_dir /work/data/tfds --manifest .gpu/manifest.npz
    python benchmarks/gpu_accuracy.py features --manifest .gpu/manifest.npz --audio /tmp/corpora --cache /tmp/mfcc
    python benchmarks/gpu_accuracy.py train --manifest .gpu/manifest.npz --cache /tmp/mfcc --runs /tmp/runs \\
        --jobs large-random:0,large-random:1 --budget 480 --out "$OUT"
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import os
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import ml_collections
import numpy as np
from absl import flags
from ml_collections import config_flags

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from accuracy import CORPORA, RUNS, epoch_records  # noqa: E402
from emojax import features, input_pipeline  # noqa: E402

_STRINGS = ("split", "corpus", "path", "speaker", "gender")  # "path": a Corpus's "file" (np.savez takes "file")
_MAX_ABS_DIFF = 0.05  # recomputed MFCCs (dB-scaled cepstra, std ~5-100) must match the stored ones this closely


def export(data_dir: str, manifest: Path) -> None:
    """Writes the manifest of the four prepared corpora in ``data_dir`` (see the module docstring)."""
    from emojax import corpora

    rows: dict[str, list] = {k: [] for k in (*_STRINGS, "label", "frames", "mean", "std")}
    samples = []
    for split in input_pipeline.SPLITS:
        for name in CORPORA:
            d = corpora.load_split(name, split, data_dir, keys=("mfcc", "label", "corpus", "file", "speaker", "gender"))
            samples.append((len(rows["label"]), d["mfcc"][0]))
            rows["split"] += [split] * len(d["label"])
            for key in ("corpus", "path", "speaker", "gender", "label"):
                rows[key] += list(d["file" if key == "path" else key])
            rows["frames"] += [m.shape[1] for m in d["mfcc"]]
            rows["mean"] += [m.mean(dtype=np.float64) for m in d["mfcc"]]
            rows["std"] += [m.std(dtype=np.float64) for m in d["mfcc"]]
    manifest.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(manifest, data_dir=data_dir, **{k: np.asarray(v) for k, v in rows.items()},
                        sample_index=np.array([i for i, _ in samples]),
                        sample_mfcc=np.concatenate([m for _, m in samples], axis=1))
    print(f"{manifest}: {len(rows['label'])} examples of {', '.join(CORPORA)} from {data_dir}")


def _read_pcm(path: str) -> np.ndarray:
    """A file's samples at 16 kHz as int16, as ``corpora.read_recording`` stores them."""
    return features.to_int16(features.load_audio(path, features.SAMPLE_RATE)[0])


def _cached(cache: Path) -> dict[int, tuple[np.ndarray, np.ndarray | None]]:
    """Manifest index -> (MFCC (40, frames), pitch rows (2, frames) or None in caches written before them) of every
    part file in ``cache``."""
    out = {}
    for part in sorted(cache.glob("part-*.npz")):
        with np.load(part) as d:
            bounds = np.cumsum(d["frames"])[:-1]
            pitches = np.split(d["pitch"], bounds, axis=1) if "pitch" in d else [None] * len(d["index"])
            for i, mfcc, pitch in zip(d["index"], np.split(d["mfcc"], bounds, axis=1), pitches):
                out[int(i)] = mfcc, pitch
    return out


def compute_features(manifest: Path, audio: Path, cache: Path) -> None:
    """Caches the MFCCs of the manifest's files present under ``audio`` and not cached yet, computed on the CPU and
    checked against the manifest: the same frame counts, per-clip mean and std, and the whole sample clips within
    ``_MAX_ABS_DIFF``."""
    import jax

    jax.config.update("jax_platforms", "cpu")  # before any computation: the prepared MFCCs were computed on a CPU
    m = np.load(manifest)
    cache.mkdir(parents=True, exist_ok=True)
    done = _cached(cache)
    paths = {i: audio / c / f for i, (c, f) in enumerate(zip(m["corpus"], m["path"])) if i not in done}
    todo = [i for i, p in paths.items() if p.is_file()]
    if not todo:
        print(f"nothing to do: {len(done)} cached, none of the other {len(paths)} files under {audio}")
        return
    started = time.perf_counter()
    spawn = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(os.cpu_count(), mp_context=spawn) as pool:
        clips = list(pool.map(_read_pcm, [str(paths[i]) for i in todo], chunksize=32))
    decoded = time.perf_counter() - started
    mfccs = features.clip_mfccs(clips)
    pitches = features.clip_pitch(clips)
    seconds = time.perf_counter() - started
    frames = np.array([x.shape[1] for x in mfccs])
    bad = np.flatnonzero(frames != m["frames"][todo])
    if bad.size:
        first = todo[bad[0]]
        raise ValueError(f"{bad.size} clips have other frame counts than the prepared ones, e.g. {paths[first]}: "
                         f"{frames[bad[0]]} against {m['frames'][first]}; is {audio} the audio {manifest} was exported "
                         "from?")
    mean_diff = np.abs([x.mean(dtype=np.float64) for x in mfccs] - m["mean"][todo]).max()
    std_diff = np.abs([x.std(dtype=np.float64) for x in mfccs] - m["std"][todo]).max()
    samples = np.split(m["sample_mfcc"], np.cumsum(m["frames"][m["sample_index"]])[:-1], axis=1)
    position = {i: k for k, i in enumerate(todo)}
    sample_diff = max((np.abs(mfccs[position[i]] - s).max() for i, s in zip(m["sample_index"], samples)
                       if i in position), default=float("nan"))
    print(f"MFCCs and pitch rows of {len(todo)} clips in {seconds:.1f} s ({decoded:.1f} s decoding, "
          f"{os.cpu_count()} processes; "
          f"{jax.devices()[0].platform}); against the prepared ones: frames equal, per-clip mean and std within "
          f"{mean_diff:.2e} / {std_diff:.2e}, sample clips within {sample_diff:.2e}", flush=True)
    if max(mean_diff, std_diff, np.nan_to_num(sample_diff)) > _MAX_ABS_DIFF:
        raise ValueError(f"the recomputed MFCCs differ from the prepared ones by more than {_MAX_ABS_DIFF}")
    np.savez(cache / f"part-{len(list(cache.glob('part-*.npz'))):02d}.npz", index=np.array(todo), frames=frames,
             mfcc=np.concatenate(mfccs, axis=1), pitch=np.concatenate(pitches, axis=1))


def corpus_reader(manifest: Path, cache: Path) -> Callable:
    """``read(config, split)`` for ``input_pipeline.load_splits``: the manifest's examples with the cached MFCCs (and
    their pitch rows for a config with ``pitch``)."""
    m = np.load(manifest)
    cached = _cached(cache)
    missing = len(m["label"]) - len(cached)
    if missing:
        raise FileNotFoundError(f"{missing} of the manifest's examples have no MFCCs in {cache}; run the features "
                                "command on the rest of the audio first")
    examples: dict[bool, input_pipeline.Corpus] = {}  # with pitch rows or not -> every example

    def everything(pitch: bool) -> input_pipeline.Corpus:
        if pitch not in examples:
            clips = [cached[i] for i in range(len(m["label"]))]
            if pitch and any(p is None for _, p in clips):
                raise FileNotFoundError(f"{cache} was written without pitch rows; run the features command again "
                                        "with an empty --cache")
            examples[pitch] = input_pipeline.Corpus(
                mfcc=[input_pipeline.with_pitch(c, p) if pitch else c for c, p in clips], label=m["label"],
                file=m["path"].astype(str), **{k: m[k].astype(str) for k in ("speaker", "corpus", "gender")})
        return examples[pitch]

    def read(config: ml_collections.ConfigDict, split: str) -> input_pipeline.Corpus:
        chosen = everything(config.get("pitch", False))
        return input_pipeline.Corpus.concatenate([
            chosen.subset(np.flatnonzero((m["split"] == split) & (m["corpus"] == name)))
            for name in config.datasets])

    return read


def run_config(name: str, seed: int, data_dir: str, runs: Path) -> ml_collections.ConfigDict:
    """The config of ``benchmarks/accuracy.py``'s run ``name`` with ``--config.seed=seed`` and
    ``--config.data_dir=data_dir``: its config file and overrides parsed by ml_collections as train.py's flags are
    (``{runs}`` and ``{seed}`` in them filled in as ``accuracy.run_one`` does)."""
    _, path, overrides = RUNS[name]
    argv = ["gpu_accuracy", f"--config={REPO / path}", *(o.format(runs=runs, seed=seed) for o in overrides),
            f"--config.seed={seed}", f"--config.data_dir={data_dir}"]
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


def train_jobs(manifest: Path, cache: Path, runs: Path, jobs: list[tuple[str, int]], budget: float, out: Path) -> None:
    """Trains ``jobs`` ((run, seed) in order) while the budget allows, packing each (see the module docstring).

    A job is skipped when the time its run took before (per seed), or 2x the longest job so far for a run not seen
    yet, exceeds the budget left."""
    import jax

    from emojax import train

    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    read = corpus_reader(manifest, cache)
    data_dir = str(np.load(manifest)["data_dir"])
    took: dict[str, float] = {}
    results = []
    for name, seed in jobs:
        left = budget - (time.perf_counter() - started)
        expected = took.get(name, 2 * max(took.values(), default=0.0))
        if expected > left:
            print(f"[gpu_accuracy] skipped {name} seed {seed}: ~{expected:.0f} s expected, {left:.0f} s left",
                  flush=True)
            continue
        config = run_config(name, seed, data_dir, runs)
        workdir = runs / name / f"seed{seed}"
        t0 = time.perf_counter()
        test = train.train_and_evaluate(config, workdir, input_pipeline.load_splits(config, read))
        took[name] = time.perf_counter() - t0
        pack(workdir, test["checkpoint_step"], out / f"{name}-seed{seed}.tar")
        records = epoch_records(workdir)
        results.append({"run": name, "seed": seed, "device": jax.devices()[0].device_kind, "seconds": took[name],
                        "train_seconds": sum(r["epoch_seconds"] for r in records),
                        "best_val_unweighted_accuracy": max((r["val_unweighted_accuracy"] for r in records
                                                             if "val_unweighted_accuracy" in r), default=None),
                        "test_accuracy": test["accuracy"], "test_unweighted_accuracy": test["unweighted_accuracy"],
                        "num_parameters": test["num_parameters"]})
        (out / "results.json").write_text(json.dumps(results, indent=1))
        print(f"[gpu_accuracy] {json.dumps(results[-1])}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("export", help="write the manifest of the prepared corpora (needs TFDS)")
    p.add_argument("--data_dir", required=True, help="TFDS data dir with the four prepared corpora")
    p.add_argument("--manifest", type=Path, required=True)
    p = commands.add_parser("features", help="cache the MFCCs of the audio files present")
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument("--audio", type=Path, required=True, help="folder of <corpus>/<file> as in the manifest")
    p.add_argument("--cache", type=Path, required=True)
    p = commands.add_parser("train", help="train runs of benchmarks/accuracy.py from the cached MFCCs")
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument("--cache", type=Path, required=True)
    p.add_argument("--runs", type=Path, required=True, help="parent of the workdirs")
    p.add_argument("--jobs", required=True, help="comma-separated RUN:SEED, in the order to train them")
    p.add_argument("--budget", type=float, required=True, help="seconds; no job starts that would not fit")
    p.add_argument("--out", type=Path, required=True, help="where the packed runs and results.json go")
    args = parser.parse_args()
    if args.command == "export":
        export(args.data_dir, args.manifest)
    elif args.command == "features":
        compute_features(args.manifest, args.audio, args.cache)
    else:
        jobs = [(name, int(seed)) for name, seed in (job.split(":") for job in args.jobs.split(","))]
        unknown = sorted({name for name, _ in jobs} - set(RUNS))
        if unknown:
            parser.error(f"unknown runs {unknown}; choose from {', '.join(RUNS)}")
        train_jobs(args.manifest, args.cache, args.runs, jobs, args.budget, args.out)


if __name__ == "__main__":
    main()
