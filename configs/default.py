"""The best recipe found so far (BENCHMARKS.md, "Accuracy"): ``configs/small.py``'s CNN and training, on the four
corpora with the reference's random protocol. Compare protocols with ``--config.protocol=speaker`` or
``--config.protocol=loco --config.test_corpus=<corpus>``.

Run: ``python train.py --workdir runs/default`` (without prepared corpora it trains the synthetic demo,
``configs/demo.py``, instead).
"""

import ml_collections

from configs import small


def get_config() -> ml_collections.ConfigDict:
    return small.get_config()
