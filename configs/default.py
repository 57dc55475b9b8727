"""The best recipe found so far (BENCHMARKS.md, "Accuracy"): ``configs/medium.py``, a CNN of 131k parameters with
``configs/small.py``'s features and training (light SpecAugment, 90 epochs), on the four corpora with the reference's
random protocol. Compare protocols with ``--config.protocol=speaker`` or
``--config.protocol=loco --config.test_corpus=<corpus>``.

Run: ``python train.py --workdir runs/default`` (without prepared corpora it trains the synthetic demo,
``configs/demo.py``, instead).
"""

import ml_collections

from configs import medium


def get_config() -> ml_collections.ConfigDict:
    return medium.get_config()
