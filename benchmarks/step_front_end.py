"""What the front end in the train step costs: epoch time of the shipped recipe (``configs/pretrained.py``: its CNN
and inputs, its own augmentations off) with training windows cut from prepared MFCCs against windows computed from the
recordings in each step (``--config.front_end=step``), without and with waveform augmentations.

    python benchmarks/step_front_end.py [--clips 1024] [--epochs 2] [--path "in the step" --path ...]

Random data of the real shapes, so no corpus is needed: ``--clips`` clips of ``features.segment_samples`` samples
(3.52 s at 16 kHz, what the step reads of each clip) and, for the prepared path, their windows (40 MFCCs x 302
frames). Each path compiles its epoch, runs one warm-up epoch, then ``--epochs`` timed epochs (the median is shown);
seconds per epoch are also given for protocol 2's epoch (310 batches of 32). One process, paths one after another.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import jax
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from configs import pretrained  # noqa: E402
from emojax import features, input_pipeline, models  # noqa: E402
from emojax.state import create_train_state, make_mesh  # noqa: E402
from emojax.steps import Trainer  # noqa: E402

PROTOCOL_2_TRAIN = 9_920  # 310 batches of 32: an epoch of protocol 2 (builders 1.2.0 and later)
PATHS = {
    "prepared windows": {},
    "in the step": {"front_end": "step"},
    "in the step, noise (white, pink, babble)": {"front_end": "step", "wave_noise_prob": 1.0},
    "in the step, pitch shift (-2 to 2 semitones)": {"front_end": "step", "wave_pitch_semitones": (-2.0, 2.0)},
    "in the step, every augmentation": {"front_end": "step", "wave_speed": (0.9, 1.1),
                                        "wave_pitch_semitones": (-2.0, 2.0), "wave_reverb_prob": 1.0,
                                        "wave_noise_prob": 1.0, "wave_telephone_prob": 1.0, "wave_clip_prob": 1.0,
                                        "wave_gain_db": 6.0},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=1024)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--path", action="append",
                        help=f"one of: {'; '.join(PATHS)} (repeat for several; default: all)")
    args = parser.parse_args()
    paths = args.path or list(PATHS)
    unknown = [path for path in paths if path not in PATHS]
    if unknown:
        parser.error(f"unknown --path {unknown}: choose among {list(PATHS)}")
    rng = np.random.default_rng(0)
    base = pretrained.without_waveform_augmentation(pretrained.get_config())
    first, frames = input_pipeline.step_segment(base)
    size = features.segment_samples(first + frames)
    y = rng.integers(0, 8, args.clips).astype(np.int32)
    waveforms = {"audio": (rng.normal(size=(args.clips, size)) * 3000).astype(np.int16),
                 "length": rng.integers(size // 2, size + 1, args.clips).astype(np.int32),
                 "frames": np.full(args.clips, 400, np.int32), "peak": np.zeros(args.clips, np.float32),
                 "level": np.zeros(args.clips, np.float32)}
    windows = {"mfcc": rng.normal(size=(args.clips, base.n_mfcc, frames)).astype(np.float32)}
    normalization = input_pipeline.Normalization.fit(windows, "per_coefficient")
    print(f"{args.clips} clips, batch {base.batch_size}, {jax.devices()[0].platform}; seconds per epoch (median of "
          f"{args.epochs}), examples/s, and the epoch of protocol 2's {PROTOCOL_2_TRAIN:,} training clips", flush=True)
    for name in paths:
        fields = PATHS[name]
        config = pretrained.without_waveform_augmentation(pretrained.get_config())
        config.update(fields)
        model = models.create_model(config)
        trainer = Trainer(config, model, make_mesh(), None, normalization)
        steps_per_epoch = args.clips // config.batch_size
        state = trainer.place(create_train_state(config, model, steps_per_epoch))
        data = jax.device_put((waveforms if config.front_end == "step" else windows, y), trainer.replicated)
        compile_seconds = trainer.compile(state, data)
        times = []
        for epoch in range(args.epochs + 1):
            started = time.perf_counter()
            state, _ = trainer.train_epoch(state, data, epoch)
            jax.block_until_ready(state)
            times.append(time.perf_counter() - started)
        seconds = statistics.median(times[1:])
        rate = steps_per_epoch * config.batch_size / seconds
        print(f"{name:50s} {seconds:7.2f} s  {rate:7.1f} examples/s  {PROTOCOL_2_TRAIN / rate:7.1f} s/epoch "
              f"(compile {compile_seconds:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
