"""``configs/default.py`` with three times the channels in every block (widths 48-96-192-384) and a hidden layer of
384: 1,171,160 parameters, 8.8x the default's computation per window. Meant for a GPU (BENCHMARKS.md has its time per
epoch on a GPU and on the 2-core CPU).
Run: ``python train.py --workdir runs/xlarge --config configs/xlarge.py``.
"""

import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
    config = default.get_config()
    config.widths = (48, 96, 192, 384)
    config.hidden = 384
    return config
