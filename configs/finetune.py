"""Fine-tuning the shipped model on your own corpus, evaluated by k-fold speaker cross-validation.

The shipped model's recipe (``configs/pretrained.py``: its inputs and network, each clip's level removed; without its
waveform augmentations, which fine-tuning was not measured with: add them with ``--config.front_end=step`` and the
``wave_*`` fields) started from its weights (``init_from="pretrained"``) with a lower learning rate and fewer epochs,
and trained and tested fold by fold on the speakers of your corpus (``protocol="kfold"``: 5 folds, the next fold's
speakers picking each fold's checkpoint). Your corpus's label set is the model's: a class the shipped model knows (by
name) keeps its output weights, a new one starts afresh. Build the corpus first (datasets/custom/README.md), then:

    python train.py --workdir runs/mine --config configs/finetune.py --config.datasets=custom/mine
    python eval.py --workdir runs/mine

``--config.folds=0`` leaves one speaker out; ``--config.init_from=`` (empty) trains the same recipe from scratch (the
comparison in BENCHMARKS.md, "Your own corpus"); ``--config.freeze=encoder`` trains the dense head alone.
"""

import ml_collections

from configs import pretrained


def get_config() -> ml_collections.ConfigDict:
    config = pretrained.without_waveform_augmentation(pretrained.get_config())
    config.datasets = ()  # yours: --config.datasets=custom/<name>; several: "--config.datasets=('custom/a','ravdess')"
    config.protocol = "kfold"
    config.init_from = "pretrained"
    config.learning_rate = 1e-3
    config.warmup_epochs = 1
    config.epochs = 40  # chosen on the validation speakers of SAVEE's folds (BENCHMARKS.md, "Your own corpus")
    return config
