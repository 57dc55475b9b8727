"""How a model's prediction holds up when the recording changes: its level, added noise, a telephone line.

Predicts every clip of a prepared split as stored and in changed versions, each through ``Predictor.predict`` as a
user's recording would go, and prints per version how many clips keep the emotion predicted as stored, the accuracy
and the unweighted accuracy (UA, the mean of the per-class recalls):

- ``gain``: -30, -20, -10 dB, and peak-normalised (scaled so that its largest sample is full scale: no clipping);
- ``noise``: white and pink noise at 20, 10 and 5 dB signal-to-noise ratio over the whole clip (a fresh draw per
  clip, seeded by its position);
- ``telephone``: down to 8 kHz and back, band-passed to 300-3,400 Hz (4th-order Butterworth, zero phase).

    python benchmarks/robustness.py --workdir runs/pretrained-speaker/seed0 --data_dir DATA   # a trained run
    python benchmarks/robustness.py --data_dir DATA --versions gain                           # the shipped model

The clips are a builders' split of the prepared corpora (``--split``, default test: for a run of the speaker
protocol, the clips of speakers it never saw; the shipped model trained on every clip, so on it only the agreement
with the clip as stored says something).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
from collections.abc import Callable

import numpy as np
import scipy.signal

from emojax import audio, metrics, prepared
from emojax.inference import Predictor
from emojax.labels import EMOTIONS

GAINS_DB = (-30.0, -20.0, -10.0)
SNRS_DB = (20.0, 10.0, 5.0)
TELEPHONE_BAND_HZ = (300.0, 3400.0)


def gains(y: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The clip (float32 in [-1, 1]) at each of ``GAINS_DB`` and peak-normalised."""
    versions = {f"{db:+.0f} dB": y * np.float32(10 ** (db / 20)) for db in GAINS_DB}
    versions["peak-normalised"] = y / np.float32(max(float(np.abs(y).max()), 1e-9))
    return versions


def _pink(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n,) noise whose power falls as 1/f (white noise shaped in the frequency domain)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    spectrum[1:] /= np.sqrt(np.arange(1, len(spectrum)))
    return np.fft.irfft(spectrum, n)


def noises(y: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The clip with white and with pink noise at each of ``SNRS_DB`` (noise power relative to the clip's)."""
    power = max(float(np.mean(np.square(y, dtype=np.float64))), 1e-20)
    versions = {}
    for kind, noise in (("white", rng.standard_normal(len(y))), ("pink", _pink(len(y), rng))):
        noise = noise / np.sqrt(np.mean(np.square(noise)))
        for snr in SNRS_DB:
            versions[f"{kind} noise, {snr:.0f} dB SNR"] = (y + noise * np.sqrt(power / 10 ** (snr / 10))).astype(
                np.float32)
    return versions


def telephone(y: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The clip through a telephone line's band: 8 kHz, 300-3,400 Hz, back at 16 kHz."""
    narrow = audio.resample(y, audio.SAMPLE_RATE, 8000)
    sos = scipy.signal.butter(4, TELEPHONE_BAND_HZ, btype="bandpass", fs=8000, output="sos")
    return {"telephone band": audio.resample(scipy.signal.sosfiltfilt(sos, narrow).astype(np.float32), 8000,
                                             audio.SAMPLE_RATE)}


VERSIONS: dict[str, Callable[[np.ndarray, np.random.Generator], dict[str, np.ndarray]]] = {
    "gain": gains, "noise": noises, "telephone": telephone}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", action="append", help="a train.py run (repeat for an ensemble); default: the "
                                                           "shipped model")
    parser.add_argument("--data_dir", default=None, help="where the corpora are prepared")
    parser.add_argument("--corpora", default="ravdess,savee,crema_d", help="comma-separated")
    parser.add_argument("--split", default="test", choices=prepared.SPLITS)
    parser.add_argument("--versions", default=",".join(VERSIONS), help=f"comma-separated, of {', '.join(VERSIONS)}")
    args = parser.parse_args()
    kinds = args.versions.split(",")
    if unknown := set(kinds) - set(VERSIONS):
        parser.error(f"--versions: unknown {', '.join(sorted(unknown))}; choose from {', '.join(VERSIONS)}")

    predictor = Predictor.from_workdirs(args.workdir) if args.workdir else Predictor.pretrained()
    probabilities: dict[str, list[list[float]]] = {}
    labels: list[int] = []
    for name in args.corpora.split(","):
        split = prepared.load_split(name, args.split, args.data_dir, keys=("audio", "label"))
        for pcm, label in zip(split["audio"], split["label"]):
            rng = np.random.default_rng(len(labels))
            labels.append(int(label))
            y = audio.to_mono(pcm)
            versions = {"as stored": y}
            for kind in kinds:
                versions.update(VERSIONS[kind](y, rng))
            for version, changed in versions.items():
                result = predictor.predict(changed, audio.SAMPLE_RATE)
                probabilities.setdefault(version, []).append([result.probabilities[e] for e in EMOTIONS])
    stored = np.argmax(probabilities["as stored"], axis=1)
    model = ", ".join(args.workdir) if args.workdir else "the shipped model"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{datetime.date.today()}, {cores} CPU cores, {platform.machine()}; {model}; {len(labels)} clips of "
          f"{args.corpora} ({args.split} split, data {args.data_dir or prepared.default_data_dir()})\n")
    print("| version | same emotion as stored % | accuracy % | UA % |")
    print("|---|---:|---:|---:|")
    for version, probs in probabilities.items():
        figures = metrics.classification_metrics(np.asarray(labels), np.asarray(probs))
        print(f"| {version} | {100 * np.mean(np.argmax(probs, axis=1) == stored):.1f} | "
              f"{100 * figures['accuracy']:.1f} | {100 * figures['unweighted_accuracy']:.1f} |")


if __name__ == "__main__":
    main()
