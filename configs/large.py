"""``configs/default.py`` with twice the channels in every block (widths 32-64-128-256) and a hidden layer of 256:
521,704 parameters, 3.9x the default's computation (244 M FLOPs in products and convolutions per 216-frame window,
forward). Meant for a GPU: on a lent H200 its 90 epochs took 19 s, a whole run (data, compilation, checkpoints, test)
~50 s; on the 2-core CPU an epoch takes 35.6 s, against 13.4 s for the default (BENCHMARKS.md, "Accuracy", session
15).

Run: ``python train.py --workdir runs/large --config configs/large.py``; other protocols as in
``configs/default.py``.
"""

import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
    config = default.get_config()
    config.widths = (32, 64, 128, 256)
    config.hidden = 256
    return config
