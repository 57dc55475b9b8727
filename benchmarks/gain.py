"""Does a model's prediction depend on the recording's level? Predicts every clip of a prepared split as stored and
at -30, -20, -10 dB and peak-normalised (scaled so that its largest sample is full scale: no clipping), and prints,
per gain, how many clips keep their predicted emotion and the accuracy.

    python benchmarks/gain.py --workdir runs/pretrained-speaker/seed0 --data_dir DATA      # a trained run
    python benchmarks/gain.py --data_dir DATA --corpora ravdess,crema_d,savee                # the shipped model

The clips are a builders' split of the prepared corpora (``--split``, default test: for a run of the speaker
protocol, the clips of speakers it never saw; the shipped model trained on every clip, so on it the figure measures
the gain's effect only). Each clip goes through ``Predictor.predict`` as a user's recording would.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform

import numpy as np

from emojax import audio, prepared
from emojax.inference import Predictor
from emojax.labels import EMOTIONS

GAINS_DB = (-30.0, -20.0, -10.0)


def gains(y: np.ndarray) -> dict[str, np.ndarray]:
    """The versions of one clip (float32 in [-1, 1]) that are compared: as stored, -30/-20/-10 dB, peak-normalised."""
    versions = {"as stored": y}
    versions.update({f"{db:+.0f} dB": y * np.float32(10 ** (db / 20)) for db in GAINS_DB})
    versions["peak-normalised"] = y / np.float32(max(float(np.abs(y).max()), 1e-9))
    return versions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", action="append", help="a train.py run (repeat for an ensemble); default: the "
                                                           "shipped model")
    parser.add_argument("--data_dir", default=None, help="where the corpora are prepared")
    parser.add_argument("--corpora", default="ravdess,savee,crema_d", help="comma-separated")
    parser.add_argument("--split", default="test", choices=prepared.SPLITS)
    args = parser.parse_args()

    predictor = Predictor.from_workdirs(args.workdir) if args.workdir else Predictor.pretrained()
    predicted: dict[str, list[int]] = {}
    labels: list[int] = []
    for name in args.corpora.split(","):
        split = prepared.load_split(name, args.split, args.data_dir, keys=("audio", "label"))
        for pcm, label in zip(split["audio"], split["label"]):
            labels.append(int(label))
            for version, y in gains(audio.to_mono(pcm)).items():
                result = predictor.predict(y, audio.SAMPLE_RATE)
                predicted.setdefault(version, []).append(EMOTIONS.index(result.emotion))
    labels_array = np.asarray(labels)
    stored = np.asarray(predicted["as stored"])
    model = ", ".join(args.workdir) if args.workdir else "the shipped model"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{datetime.date.today()}, {cores} CPU cores, {platform.machine()}; {model}; {len(labels)} clips of "
          f"{args.corpora} ({args.split} split, data {args.data_dir or prepared.default_data_dir()})\n")
    print("| version | same emotion as stored % | accuracy % |")
    print("|---|---:|---:|")
    for version, values in predicted.items():
        values = np.asarray(values)
        print(f"| {version} | {100 * np.mean(values == stored):.1f} | {100 * np.mean(values == labels_array):.1f} |")


if __name__ == "__main__":
    main()
