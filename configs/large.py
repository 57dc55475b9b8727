"""``configs/default.py`` with twice the channels in every block (widths 32-64-128-256) and a hidden layer of 256:
521,704 parameters, about 4x the default's computation. Meant for a GPU (BENCHMARKS.md, "Accuracy", session 15,
says what it took on one).

Run: ``python train.py --workdir runs/large --config configs/large.py``; other protocols as in ``configs/default.py``.
"""

import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
    config = default.get_config()
    config.widths = (32, 64, 128, 256)
    config.hidden = 256
    return config
