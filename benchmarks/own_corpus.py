"""Your own corpus, measured with corpora we have: a built-in corpus built again through ``datasets/custom`` from a CSV
manifest, and k-fold speaker cross-validation of ``configs/finetune.py`` from a trained model against the same recipe
from scratch; and the time of a 5-fold fine-tuning on a 500-clip corpus.

    # the source model: the shipped recipe on the three other corpora (never on SAVEE)
    python train.py --workdir runs/pre3 --config configs/pretrained.py "--config.datasets=('ravdess','crema_d','tess')"
    # SAVEE as a user's corpus: manifest, build, the same clips as the SAVEE builder's, leave one speaker out
    python benchmarks/own_corpus.py savee --savee ../shared/corpora/savee --source runs/pre3 --data_dir DATA --out OUT
    # 500 clips (RAVDESS actors 1-10, 50 each) from a manifest; 5-fold fine-tuning from the shipped model, timed
    python benchmarks/own_corpus.py speed --ravdess ../shared/corpora/ravdess --data_dir DATA --out OUT

``DATA`` must hold the SAVEE builder's build (``tfds build datasets/savee``) for the comparison of clips. Each
training is ``python train.py`` in a subprocess, timed as a user would see it; its aggregate comes from the workdir's
``test_metrics.json`` (``emojax.kfold``). The speed run's accuracy is not a measurement: the shipped model was trained
on those RAVDESS clips.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from emojax import corpora, labels, prepared, recordings  # noqa: E402
from emojax.labels import EMOTIONS  # noqa: E402

_RAVDESS_WORDS = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry", "06": "fearful",
                  "07": "disgust", "08": "surprised"}  # RAVDESS's own words, as a user's manifest would have them


def write_manifest(path: Path, rows: list[dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def savee_rows(savee: Path) -> list[dict[str, str]]:
    """A manifest of a SAVEE copy (``<speaker>/<code><NN>.<ext>``): absolute paths, SAVEE's own codes as labels."""
    files, _, _ = recordings.find_audio_files(savee)
    rows = []
    for file in files:
        stem, speaker = Path(file.name).stem, Path(file.name).parent.name
        code = stem.rstrip("0123456789")
        rows.append({"path": str(file.path.resolve()), "label": code, "speaker": speaker})
    return rows


def same_clips(data_dir: str, name: str) -> str:
    """Compares the custom build ``name`` of SAVEE with the SAVEE builder's: clips, labels, speakers, MFCCs."""
    keys = ("mfcc", "label", "speaker", "text", "file")
    builtin, custom = {}, {}
    for split in prepared.SPLITS:
        d = prepared.load_split("savee", split, data_dir, keys)
        for mfcc, label, speaker, text in zip(d["mfcc"], d["label"], d["speaker"], d["text"]):
            builtin[(speaker.split("/")[1], text)] = (EMOTIONS[label], mfcc)
        d = prepared.load_split(name, split, data_dir, keys)
        for mfcc, label, speaker, file in zip(d["mfcc"], d["label"], d["speaker"], d["file"]):
            custom[(speaker.split("/")[1], Path(file).stem)] = (EMOTIONS[label], mfcc)
    same = [k for k in builtin if k in custom and builtin[k][0] == custom[k][0]
            and np.array_equal(builtin[k][1], custom[k][1])]
    return (f"{len(builtin)} clips from the SAVEE builder, {len(custom)} from the manifest; {len(same)} with the same "
            "speaker, label and MFCCs")


def cross_validate(workdir: Path, data_dir: str, dataset: str, extra: list[str]) -> dict:
    """Runs ``train.py`` with configs/finetune.py on ``dataset`` (wall-clock timed); returns the aggregate."""
    command = [sys.executable, str(REPO / "train.py"), "--workdir", str(workdir), "--config",
               str(REPO / "configs" / "finetune.py"), f"--config.datasets={dataset}", f"--config.data_dir={data_dir}",
               *extra]
    print("$", " ".join(command), flush=True)
    started = time.perf_counter()
    subprocess.run(command, check=True)
    seconds = time.perf_counter() - started
    summary = json.loads((workdir / "test_metrics.json").read_text())
    print(f"{workdir.name}: {seconds:.0f} s; accuracy {100 * summary['accuracy_mean']:.1f} ± "
          f"{100 * summary['accuracy_std']:.1f}, UA {100 * summary['unweighted_accuracy_mean']:.1f} ± "
          f"{100 * summary['unweighted_accuracy_std']:.1f}, macro F1 {100 * summary['macro_f1_mean']:.1f} ± "
          f"{100 * summary['macro_f1_std']:.1f} over {summary['folds']} folds; pooled UA "
          f"{100 * summary['pooled']['unweighted_accuracy']:.1f}", flush=True)
    return {"seconds": seconds, **summary}


def savee(args: argparse.Namespace) -> None:
    manifest = args.out / "savee.csv"
    write_manifest(manifest, savee_rows(args.savee))
    started = time.perf_counter()
    corpora.build("custom/savee_csv", manual_dir=str(args.savee), data_dir=args.data_dir,
                  builder_config={"manifest": str(manifest), "mapping": dict(labels.SAVEE)})
    print(f"built custom/savee_csv in {time.perf_counter() - started:.0f} s; "
          f"{same_clips(args.data_dir, 'custom/savee_csv')}", flush=True)
    results = {}
    for seed in args.seeds:
        for name, source in (("finetuned", str(args.source)), ("scratch", "")):
            workdir = args.out / f"savee-{name}-seed{seed}"
            results[f"{name}-seed{seed}"] = cross_validate(
                workdir, args.data_dir, "custom/savee_csv",
                ["--config.folds=0", f"--config.init_from={source}", f"--config.seed={seed}"])
    (args.out / "savee_results.json").write_text(json.dumps(results, indent=1))
    for name in ("finetuned", "scratch"):
        runs = [results[f"{name}-seed{seed}"] for seed in args.seeds]
        for metric in ("accuracy", "unweighted_accuracy", "macro_f1"):
            means = [100 * r[f"{metric}_mean"] for r in runs]
            spread = f" ± {np.std(means, ddof=1):.1f} over {len(means)} seeds" if len(means) > 1 else ""
            print(f"{name}: {metric} (mean over the 4 held-out speakers) {np.mean(means):.1f}{spread}")


def speed(args: argparse.Namespace) -> None:
    root = args.out / "ravdess500"
    rows = []
    for actor in range(1, 11):
        folder = args.ravdess / f"Actor_{actor:02d}"
        for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in recordings.AUDIO_EXTENSIONS)[:50]:
            link = root / folder.name / path.name
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                link.symlink_to(path.resolve())
            rows.append({"path": f"{folder.name}/{path.name}", "label": _RAVDESS_WORDS[path.stem.split("-")[2]],
                         "speaker": folder.name})
    write_manifest(root / "labels.csv", rows)
    started = time.perf_counter()
    corpora.build("custom/ravdess500", manual_dir=str(root), data_dir=args.data_dir,
                  builder_config={"manifest": "labels.csv"})
    print(f"built custom/ravdess500 ({len(rows)} clips) in {time.perf_counter() - started:.0f} s", flush=True)
    result = cross_validate(args.out / "ravdess500-5fold", args.data_dir, "custom/ravdess500", [])
    print(f"5-fold fine-tuning from the shipped model of {len(rows)} clips: {result['seconds']:.0f} s wall-clock")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("savee", "speed"):
        p = sub.add_parser(name)
        p.add_argument("--data_dir", required=True, help="where to build (and, for savee, the SAVEE builder's build)")
        p.add_argument("--out", type=Path, required=True, help="manifests and workdirs")
        if name == "savee":
            p.add_argument("--savee", type=Path, required=True, help="a SAVEE copy: <speaker>/<code><NN>.<ext>")
            p.add_argument("--source", type=Path, required=True, help="the workdir to fine-tune from")
            p.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[0])
        else:
            p.add_argument("--ravdess", type=Path, required=True, help="a RAVDESS copy: Actor_NN/<name>.<ext>")
    args = parser.parse_args()
    savee(args) if args.command == "savee" else speed(args)


if __name__ == "__main__":
    main()
