"""Our best recipe on this hardware: ``configs/small.py``'s features and training, without its SpecAugment and with
60 epochs (the small recipe of sessions 9-10, when this one was measured), with a wider CNN (widths 16-32-64-128,
hidden layer 128; 131,320 parameters). The extra channels sit in the last two blocks, where the maps are small, so
an epoch costs about 1.2x the small model's.

Run: ``python train.py --workdir runs/medium --config configs/medium.py``; other protocols with
``--config.protocol=speaker`` or ``--config.protocol=loco --config.test_corpus=crema_d``.
What it scored is in BENCHMARKS.md ("Accuracy").
"""

import ml_collections

from configs import small


def get_config() -> ml_collections.ConfigDict:
    config = small.get_config()
    config.widths = (16, 32, 64, 128)
    config.hidden = 128
    # Not yet measured with the small recipe's SpecAugment and 90 epochs (session 11).
    config.freq_masks = config.time_masks = 0
    config.max_freq_width = config.max_time_width = 0
    config.epochs = 60
    return config
