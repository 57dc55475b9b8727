"""Our best recipe on this hardware: ``configs/small.py``'s features and training (light SpecAugment, 90 epochs) with
a wider CNN (widths 16-32-64-128, hidden layer 128; 131,320 parameters), ~23 minutes on an idle 2-core CPU (up to
~40 on the development VM's slower days). The extra channels sit in the last two blocks, where the maps are small, so
an epoch costs about 1.2x the small model's.
Until session 12 it trained 60 epochs without SpecAugment (BENCHMARKS.md: chosen against that on validation UA).

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
    return config
