"""The embedded demo: the synthetic corpus (``synthetic_prosody``, built automatically), its speaker-disjoint
splits, and a small CNN; finishes in well under 2 minutes on a 2-core CPU.
Run: ``python train.py --workdir runs/demo --config configs/demo.py`` (``python train.py`` picks it when
none of the four corpora is prepared).
"""

import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
    config = default.get_config()
    config.datasets = ("synthetic_prosody",)
    config.protocol = "speaker"
    config.n_mfcc = 25
    config.crop_shift_frames = 16
    config.test_crops = 1
    config.widths = (16, 32, 32, 32)
    config.hidden = 64
    config.label_smoothing = 0.0
    config.batch_size = 16
    config.epochs = 20
    config.warmup_epochs = 1
    config.freq_masks = config.max_freq_width = config.time_masks = config.max_time_width = 0
    return config
