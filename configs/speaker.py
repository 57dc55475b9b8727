"""Protocol 2 (speaker-independent): ``configs/default.py`` on the builders' speaker-disjoint train/validation/test
splits, with the loss weighted per class by n / (k * count) from the training labels (calm, which only RAVDESS
has, is by far the rarest class), 30 epochs (the cosine schedule over 30) and no SpecAugment, which scored lower on
validation here (BENCHMARKS.md, "What we tried").
Run: ``python train.py --workdir runs/speaker --config configs/speaker.py``.
"""

import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
    config = default.get_config()
    config.protocol = "speaker"
    config.class_weighting = "balanced"
    config.epochs = 30
    config.freq_masks = config.max_freq_width = config.time_masks = config.max_time_width = 0
    return config
