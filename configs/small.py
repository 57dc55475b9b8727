"""The recommended recipe under the reference's size budget (<= 60k parameters; 58,376): ``configs/default.py`` with
widths 16-32-48-88 and no hidden layer (the pooled statistics feed the classifier).
Run: ``python train.py --workdir runs/small --config configs/small.py``.
"""

import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
    config = default.get_config()
    config.widths = (16, 32, 48, 88)
    config.hidden = 0
    return config
