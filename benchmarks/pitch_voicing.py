"""How ``emojax.features.clip_pitch``'s voicing decision and f0 compare with ``librosa.pyin`` on real speech.

For the first ``--clips`` clips of each corpus's test split (as built: 16 kHz), frames of 1024 samples every 160 are
cut as ``librosa.yin`` / ``librosa.pyin`` centre them, and ``clip_pitch``'s YIN (``emojax.pitch._pitch_batch``: f0,
periodicity, RMS over YIN's window) is run on them. For each voicing threshold (with ``pitch.PITCH_FLOOR_DB``'s
loudness floor) it prints how many frames get pyin's voiced / unvoiced decision, the precision and recall of
"voiced", and the share of frames both call voiced whose f0 is within 5 % of pyin's. pyin (a probabilistic YIN with
a hidden Markov model over pitch and voicing) is slow and not differentiable, which is why the front end does not
use it; it is the reference here.

    python benchmarks/pitch_voicing.py --data_dir /work/data/tfds --corpora crema_d,ravdess --clips 30,20

Needs librosa (the test extra) and the prepared corpora. librosa's compiled-function cache (numba, written next to
librosa on a first run) can crash later runs that also load TensorFlow; an empty cache folder avoids that:
``NUMBA_CACHE_DIR=$(mktemp -d) python benchmarks/pitch_voicing.py ...``.
"""

from __future__ import annotations

import argparse

import jax.numpy as jnp
import librosa
import numpy as np

from emojax import pitch, prepared
from emojax.audio import SAMPLE_RATE

FRAME, HOP = pitch.PITCH["frame_length"], 160


def frame_values(audio: np.ndarray) -> tuple[np.ndarray, ...]:
    """(f0, periodicity, RMS relative to the clip's loudest frame, pyin's f0, pyin's voiced flag) per frame."""
    y = audio.astype(np.float32) / 32768.0
    pyin_f0, pyin_voiced, _ = librosa.pyin(y, fmin=pitch.PITCH["fmin"], fmax=pitch.PITCH["fmax"], sr=SAMPLE_RATE,
                                           frame_length=FRAME, hop_length=HOP)
    frames = librosa.util.frame(np.pad(y, FRAME // 2), frame_length=FRAME, hop_length=HOP).T
    min_period, max_period = pitch._check_yin_args(SAMPLE_RATE, pitch.PITCH["fmin"], pitch.PITCH["fmax"], FRAME,
                                                   pitch.PITCH["win_length"], pitch.PITCH["trough_threshold"])
    f0, periodicity, rms = np.asarray(pitch._pitch_batch(jnp.asarray(frames), min_period=min_period,
                                                         max_period=max_period))
    return f0, periodicity, rms / max(rms.max(), 1e-12), pyin_f0, pyin_voiced


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--corpora", default="crema_d,ravdess")
    parser.add_argument("--clips", default="30,20", help="clips per corpus, in --corpora's order")
    parser.add_argument("--thresholds", default="0.6,0.7,0.8")
    args = parser.parse_args()
    columns: list[list[np.ndarray]] = [[] for _ in range(5)]
    names, counts = args.corpora.split(","), [int(n) for n in args.clips.split(",")]
    for name, count in zip(names, counts, strict=True):
        for audio in prepared.load_split(name, "test", args.data_dir, keys=("audio",))["audio"][:count]:
            for column, values in zip(columns, frame_values(audio)):
                column.append(values)
    f0, periodicity, loudness, pyin_f0, pyin_voiced = (np.concatenate(c) for c in columns)
    loud = loudness >= 10.0 ** (-pitch.PITCH_FLOOR_DB / 20.0)
    print(f"{sum(counts)} clips ({args.corpora}), {len(f0)} frames, {pyin_voiced.mean():.1%} voiced by pyin\n")
    print("| voicing threshold | frames agreeing with pyin | precision | recall | f0 within 5 % of pyin's |")
    print("|---:|---:|---:|---:|---:|")
    for threshold in map(float, args.thresholds.split(",")):
        voiced = loud & (periodicity >= threshold)
        both = voiced & pyin_voiced
        print(f"| {threshold} | {(voiced == pyin_voiced).mean():.1%} | {both.sum() / voiced.sum():.1%} | "
              f"{both.sum() / pyin_voiced.sum():.1%} | {(np.abs(f0[both] / pyin_f0[both] - 1) < 0.05).mean():.1%} |")


if __name__ == "__main__":
    main()
