"""The reference system, reproduced: SeedCNN on 25 MFCC x 216 frames (2.5 s from 0.5 s in) of all four
corpora, per-position normalisation from training data, a stratified random 80/20 split
(9,729 / 2,433 of 12,162), Adam 1e-3, batch 16, 50 epochs, no augmentation.
The 80 % part loses a stratified 10 % (973 clips) to validation, which picks the best epoch; the test
20 % is only evaluated at the end. Run: ``python train.py --workdir runs/seed --config configs/seed.py``.
"""

import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
    config = default.get_config()
    config.n_mfcc = 25
    config.crop_shift_frames = 0
    config.test_crops = 1
    config.normalization = "per_position"
    config.model = "seed_cnn"
    config.dropout_rate = 0.2
    config.optimizer = "adam"
    config.learning_rate = 1e-3
    config.schedule = "constant"
    config.warmup_epochs = 0
    config.label_smoothing = 0.0
    config.batch_size = 16
    config.epochs = 50
    config.freq_masks = config.max_freq_width = config.time_masks = config.max_time_width = 0
    return config
