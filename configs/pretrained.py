"""The shipped model's recipe: ``configs/speaker.py`` (the recipe chosen on the speaker-independent validation
speakers: class-balanced loss, 30 epochs, no SpecAugment) with each clip's level removed
(``utterance_normalization="level"``: the prediction does not depend on the microphone's gain), and the front end in
the train step after three waveform augmentations: babble noise made of 3-5 other training clips on half the clips
(0-20 dB SNR), a synthetic room (RT60 0.2-0.8 s) on 30 % and the telephone band (300-3400 Hz) on 20 %. Trained on
every clip of the four corpora (``protocol="all"``: nothing is held out, the last epoch is the model). Its figures on
unseen speakers and corpora come from the same recipe under ``--config.protocol=speaker`` and
``--config.protocol=loco`` (MODEL_CARD.md).

The augmentations were chosen on protocol 2's validation speakers by the mean of their unweighted accuracy on the
clips as stored and with white and pink noise at 10 dB SNR (noises the model never trains with): 41.7 % against 36.7 %
with babble at 5-20 dB and no telephone band, and 31.9 % without any augmentation (BENCHMARKS.md, "Recording
conditions"). ``--config.front_end=prepared --config.wave_noise_prob=0 --config.wave_reverb_prob=0
--config.wave_telephone_prob=0`` gives the recipe without them.

Run: ``python train.py --workdir runs/pretrained --config configs/pretrained.py``, then
``python -m emojax.pretrained export --workdir runs/pretrained``.
"""

import ml_collections

from configs import default, speaker


def get_config() -> ml_collections.ConfigDict:
    config = speaker.get_config()
    config.protocol = "all"
    config.utterance_normalization = "level"
    config.front_end = "step"
    config.wave_noise_prob = 0.5
    config.wave_noise_kinds = ("babble",)
    config.wave_noise_snr_db = (0.0, 20.0)
    config.wave_reverb_prob = 0.3
    config.wave_telephone_prob = 0.2
    return config


def without_waveform_augmentation(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """``config`` with ``configs/default.py``'s front end and ``wave_*`` fields: prepared windows, every waveform
    augmentation off (whichever the shipped recipe turns on)."""
    off = default.get_config()
    config.update({name: off[name] for name in off if name == "front_end" or name.startswith("wave_")})
    return config
