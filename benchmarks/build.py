"""Times building the four corpora (per corpus and in total) from ``../shared/corpora`` or any manual dir.

    python benchmarks/build.py --data_dir /work/data/tfds [--corpora_dir ../shared/corpora]
        [--file_format array_record] [--only ravdess savee] [--overwrite]
        [--beam_pipeline_options direct_num_workers=2,direct_running_mode=multi_processing]

Each corpus is built in this one process, one after another, as ``emojax.corpora.build`` (what
``tfds build datasets/<name>`` runs); the total includes importing tensorflow-datasets and JAX and compiling
the MFCC kernels. With ``--beam_pipeline_options`` each build runs on Apache Beam (``tfds build
--beam_pipeline_options``; e.g. the direct runner's worker processes), and the CPU time below counts only this
(driver) process, not the Beam workers. Then it times reading every split back with ``emojax.prepared.load_split``.
Prints Markdown for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import sys
import time
from pathlib import Path

START = time.perf_counter()

from emojax import corpora, prepared  # noqa: E402  (timed: part of a build's cost)

REPO = Path(__file__).resolve().parents[1]


def machine() -> str:
    """e.g. ``2 CPU cores (Intel Xeon ...), Linux x86_64, Python 3.11.7``."""
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        model = next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                      if line.startswith("model name")), "")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cores} CPU cores ({model or platform.processor()}), {platform.system()} {platform.machine()}, " \
           f"Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_corpora = os.environ.get("EMOJAX_CORPORA", str(REPO.parent / "shared" / "corpora"))
    parser.add_argument("--corpora_dir", default=default_corpora,
                        help="folder holding ravdess/, savee/, crema_d/, tess/ (default ../shared/corpora)")
    parser.add_argument("--data_dir", required=True, help="where to write the datasets (kept after the run)")
    parser.add_argument("--file_format", default=None, choices=["array_record", "tfrecord"],
                        help="default: array_record")
    parser.add_argument("--only", nargs="+", choices=prepared.CORPORA, default=prepared.CORPORA)
    parser.add_argument("--beam_pipeline_options", default=None,
                        help="build on Apache Beam with these comma-separated options (as tfds build takes them)")
    parser.add_argument("--overwrite", action="store_true",
                        help="delete an existing build of the same version first (otherwise: refuse)")
    args = parser.parse_args()

    for name in args.only:
        if not (Path(args.corpora_dir) / name).is_dir():
            sys.exit(f"{Path(args.corpora_dir) / name} not found: pass --corpora_dir (the folder holding {name}/)")
        target = prepared.dataset_dir(name, args.data_dir)
        if target.exists():
            if not args.overwrite:
                sys.exit(f"{target} exists; pass --overwrite to rebuild it (a reused build would time nothing)")
            shutil.rmtree(target)

    times: dict[str, float] = {}
    for name in args.only:
        start = time.perf_counter()
        corpora.build(name, manual_dir=str(Path(args.corpora_dir) / name), data_dir=args.data_dir,
                      file_format=args.file_format, beam_pipeline_options=args.beam_pipeline_options)
        times[name] = time.perf_counter() - start
    total = time.perf_counter() - START
    cpu = time.process_time()  # all threads of this process, from its start
    children = os.times().children_user + os.times().children_system  # e.g. Beam workers (those waited for)
    start = time.perf_counter()
    examples = sum(len(prepared.load_split(name, split, args.data_dir)["label"])
                   for name in args.only for split in prepared.SPLITS)
    load = time.perf_counter() - start

    command = "python benchmarks/build.py " + " ".join(sys.argv[1:])
    print(f"\n{datetime.date.today().isoformat()}, {machine()}\n`{command}`\n")
    print("| corpus | build time (s) |\n|---|---:|")
    for name, seconds in times.items():
        print(f"| {name} | {seconds:.1f} |")
    print(f"| **all, wall clock incl. imports and compilation** | **{total:.1f}** |")
    print(f"\nCPU time of the process (all threads) for the builds: {cpu:.1f} s (+ {children:.1f} s in finished "
          f"child processes); load average when done: "
          f"{os.getloadavg()[0]:.1f} (other jobs share the cores).")
    print(f"\nReading all splits back (`load_split`, every feature but audio): {examples} examples in {load:.1f} s.")


if __name__ == "__main__":
    main()
