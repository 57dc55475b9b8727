"""The reference system, reproduced: SeedCNN on 25 MFCC x 216 frames (2.5 s from 0.5 s in) of all four
corpora, per-position normalisation from training data, a stratified random 80/20 split
(9,729 / 2,433 of 12,162), Adam 1e-3, batch 16.

The 80 % part loses a stratified 10 % (973 clips) to validation, which picks the best epoch; the test
20 % is only evaluated at the end. Run: ``python train.py --workdir runs/seed --config configs/seed.py``.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    # Data and protocol.
    config.datasets = ("ravdess", "savee", "crema_d", "tess")
    config.data_dir = ml_collections.config_dict.placeholder(str)  # None: corpora.default_data_dir()
    config.protocol = "random"  # "speaker": the builders' speaker-disjoint splits; "loco": leave one corpus out
    config.test_corpus = ""  # the held-out corpus of the "loco" protocol
    config.test_fraction = 0.2
    config.validation_fraction = 0.1  # of the non-test part (random protocol)
    config.split_seed = 42
    # True: train on the validation clips too (the protocol's whole non-test part, e.g. the reference's 9,729) for
    # config.epochs, and keep the last epoch; for recipes whose epochs were chosen on validation in earlier runs.
    config.refit = False
    # Features: windows of the full-clip MFCC (frames of 512 samples at 44.1 kHz).
    config.n_mfcc = 25
    config.offset_frames = 43  # 0.5 s
    config.window_frames = 216  # 2.5 s
    config.pitch = False  # "cnn" only: True adds each frame's log f0 and periodicity (features.clip_pitch)
    config.crop_shift_frames = 0  # training crops shifted by up to this many frames; 0 = fixed window
    config.test_crops = 1  # evaluation: mean of the predictions of this many windows over the crops' range
    config.normalization = "per_position"  # or "per_coefficient"
    config.utterance_normalization = "none"  # or "mean" / "mean_std": each clip over its own frames, first
    # "none", "mean" or "mean_std": each clip by its speaker's statistics over their training clips, before windows
    # (input_pipeline.speaker_normalize; a speaker without training clips by their own clips in the split).
    config.speaker_normalization = "none"
    # Model.
    config.model = "seed_cnn"  # or "cnn" (models.CNN: the fields below)
    config.dropout_rate = 0.2
    config.widths = (32, 64, 128, 128)
    config.residual = True
    config.pooling = "stats"  # or "attention" (attentive statistics pooling) / "flatten"
    config.hidden = 128
    config.deltas = 0  # "cnn" only: 1 adds the deltas of the MFCC window as an input channel, 2 also accelerations
    config.dtype = "float32"  # or "bfloat16" (mixed precision: bf16 compute, f32 params)
    # Optimisation.
    config.optimizer = "adam"  # "adam", "adamw" or "sgd" (momentum 0.9)
    config.learning_rate = 1e-3
    config.schedule = "constant"  # or "cosine" (after linear warm-up)
    config.warmup_epochs = 0
    config.weight_decay = 0.0  # adamw only
    config.label_smoothing = 0.0
    config.ema_decay = 0.0  # > 0: evaluate and checkpoint-select with an exponential moving average of the weights
    config.class_weighting = "none"  # or "balanced": loss weights inversely proportional to training class counts
    # Knowledge distillation: the workdir of a trained teacher (same data, split and features), "" for none.
    config.teacher_workdir = ""
    config.distill_weight = 0.5  # the teacher's share of each example's loss (the labels' is 1 - this)
    config.distill_temperature = 2.0  # softmax temperature of the teacher's and student's distributions
    config.batch_size = 16
    config.epochs = 50
    # Augmentation (on device): SpecAugment-style masks, zeros after normalisation.
    config.freq_masks = 0
    config.max_freq_width = 0
    config.time_masks = 0
    config.max_time_width = 0
    config.mixup_alpha = 0.0  # > 0: mixup with Beta(alpha, alpha) weights
    # Execution.
    config.data_on_device = True  # False: host-fed batches (same results, for data that does not fit)
    config.host_chunk_steps = 16  # host-fed: batches gathered on the host per jitted call (a scan over them)
    config.eval_batch_size = 32  # in scans of train.PREDICT_BATCHES_PER_CALL batches: fastest on the 2-core CPU
    config.seed = 0
    return config
