"""``configs/default.py`` with twice the channels in every block (widths 32-64-128-256) and a hidden layer of 256:
521,704 parameters, 3.9x the default's computation per window. Meant for a GPU (BENCHMARKS.md has its time per
epoch on a GPU and on the 2-core CPU).
Run: ``python train.py --workdir runs/large --config configs/large.py``.
"""

import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
    config = default.get_config()
    config.widths = (32, 64, 128, 256)
    config.hidden = 256
    return config
