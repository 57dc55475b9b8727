"""The embedded demo: the synthetic corpus (``synthetic_prosody``, built automatically), its
speaker-disjoint splits, and a small CNN; finishes in well under 2 minutes on a 2-core CPU.

Run: ``python train.py --workdir runs/demo --config configs/demo.py`` (``python train.py`` picks it when
none of the four corpora is prepared).
"""

import ml_collections

from configs import seed


def get_config() -> ml_collections.ConfigDict:
    config = seed.get_config()
    config.datasets = ("synthetic_prosody",)
    config.protocol = "speaker"
    config.crop_shift_frames = 16
    config.normalization = "per_coefficient"
    config.model = "cnn"
    config.pooling = "stats"
    config.widths = (16, 32, 32, 32)
    config.residual = False
    config.hidden = 64
    config.dropout_rate = 0.1
    config.label_smoothing = 0.0
    config.optimizer = "adamw"
    config.learning_rate = 3e-3
    config.weight_decay = 1e-2
    config.schedule = "cosine"
    config.batch_size = 16
    config.epochs = 20
    config.warmup_epochs = 1
    return config
