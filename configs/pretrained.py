"""The shipped model's recipe: ``configs/speaker.py`` (the recipe chosen on the speaker-independent validation
speakers: class-balanced loss, 30 epochs, no SpecAugment) with each clip's level removed
(``utterance_normalization="level"``: the prediction does not depend on the microphone's gain), trained on every clip
of the four corpora (``protocol="all"``: nothing is held out, the last epoch is the model). Its figures on unseen
speakers and corpora come from the same recipe under ``--config.protocol=speaker`` and ``--config.protocol=loco``
(MODEL_CARD.md).
Run: ``python train.py --workdir runs/pretrained --config configs/pretrained.py``, then
``python -m emojax.pretrained export --workdir runs/pretrained``.
"""

import ml_collections

from configs import speaker


def get_config() -> ml_collections.ConfigDict:
    config = speaker.get_config()
    config.protocol = "all"
    config.utterance_normalization = "level"
    return config
