"""``configs/default.py`` with three times the channels in every block (widths 48-96-192-384) and a hidden layer of 384:
1,171,160 parameters, 8.8x the default's computation (546 M FLOPs in products and convolutions per 216-frame window,
forward). The best single protocol-1 model on validation so far. Meant for a GPU: on a lent H200 its 90 epochs took
26 s, a whole run ~65 s; on the 2-core CPU an epoch takes 62.7 s, against 13.4 s for the default (BENCHMARKS.md,
"Accuracy", session 15).

Run: ``python train.py --workdir runs/xlarge --config configs/xlarge.py``; other protocols as in
``configs/default.py``.
"""

import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
    config = default.get_config()
    config.widths = (48, 96, 192, 384)
    config.hidden = 384
    return config
