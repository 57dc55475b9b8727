"""Our recipe: a wider CNN with statistics pooling over time, random crops, SpecAugment, label smoothing,
AdamW with a cosine schedule, on the four corpora with the reference's random protocol.

Run: ``python train.py --workdir runs/default`` (without prepared corpora it trains the synthetic demo,
``configs/demo.py``, instead). Compare protocols with ``--config.protocol=speaker``.
"""

import ml_collections

from configs import seed


def get_config() -> ml_collections.ConfigDict:
    config = seed.get_config()
    config.crop_shift_frames = 16
    config.normalization = "per_coefficient"
    config.model = "cnn"
    config.widths = (32, 48, 64, 96)  # about 2x the reference's compute; residual=True doubles it again
    config.residual = False
    config.pooling = "stats"
    config.hidden = 128
    config.dropout_rate = 0.2
    config.optimizer = "adamw"
    config.learning_rate = 2e-3
    config.weight_decay = 1e-2
    config.schedule = "cosine"
    config.warmup_epochs = 2
    config.label_smoothing = 0.1
    config.batch_size = 64
    config.epochs = 40
    config.freq_masks = 1
    config.max_freq_width = 4
    config.time_masks = 2
    config.max_time_width = 20
    return config
