"""The recommended recipe: a CNN of 131,320 parameters on 40 MFCCs of the four corpora, which needs nothing but the
recording at prediction time (no speaker enrolment). Every config field is named here, once, with what it does;
the other configs import this one and override a few fields.

Run: ``python train.py --workdir runs/default`` (without prepared corpora it trains the synthetic demo,
``configs/demo.py``, instead). Other protocols: ``--config.protocol=speaker`` (speaker-independent splits) or
``--config.protocol=loco --config.test_corpus=<corpus>``. What it scores is in BENCHMARKS.md ("Accuracy").
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()

    # Data and protocol.
    config.datasets = ("ravdess", "savee", "crema_d", "tess")  # prepared corpora (tfds build datasets/<name>)
    config.data_dir = ml_collections.config_dict.placeholder(str)  # None: the default TFDS data dir
    config.protocol = "random"  # "random" 80/20 (the reference's), "speaker" (builders' splits), "loco", "kfold", "all"
    config.test_corpus = ""  # the held-out corpus of the "loco" protocol
    config.folds = 5  # "kfold": speaker groups (0: one per speaker, leave one speaker out)
    config.fold = -1  # "kfold": the fold to run; -1: all of them, each in WORKDIR/fold_<k>, and their aggregate
    config.kfold_validation = True  # "kfold": the next fold's speakers pick the checkpoint; False: the last epoch
    config.test_fraction = 0.2  # random protocol: the test share of all clips
    config.validation_fraction = 0.1  # random protocol: the validation share of the non-test clips
    config.split_seed = 42  # random protocol: the same split for every run seed, so runs can be averaged
    config.refit = False  # True: train on the validation clips too, keep the last epoch (settings chosen before)

    # Features: windows of the full-clip MFCCs (frames of 512 samples at 44.1 kHz, 86.1 per second).
    config.n_mfcc = 40  # MFCC rows the model reads (of the 40 prepared)
    config.offset_frames = 43  # where the evaluation window starts: 0.5 s in
    config.window_frames = 216  # window length: 2.5 s
    config.pitch = False  # "cnn" only: each frame's log f0 and periodicity as two more input channels
    config.crop_shift_frames = 43  # training crops shifted by up to this many frames either way; 0: fixed window
    config.test_crops = 5  # evaluation: mean prediction of this many windows spread over the crops' range
    config.normalization = "per_coefficient"  # or "per_position" (fixed windows only): statistics of training data
    config.utterance_normalization = "none"  # "mean" / "mean_std": each clip over its own frames, first
    config.speaker_normalization = "none"  # "mean" / "mean_std": each clip by its speaker's statistics (enrolment)

    # Model.
    config.model = "cnn"  # or "seed_cnn" (the reference network, which ignores the fields below)
    config.widths = (16, 32, 64, 128)  # channels of the convolution blocks
    config.residual = False  # two convolutions and a skip connection per block
    config.pooling = "stats"  # mean and std over time (any length); or "flatten"
    config.hidden = 128  # units of the hidden dense layer; 0: none
    config.dropout_rate = 0.1
    config.dtype = "float32"  # or "bfloat16" (mixed precision: bf16 compute, f32 parameters)

    # Fine-tuning (emojax.finetune): start from a trained model instead of random weights.
    config.init_from = ""  # "pretrained" (the shipped model) or a train.py WORKDIR; "": random initialisation
    config.freeze = "none"  # or "encoder": only the dense head trains (its BatchNorm statistics kept too)
    config.init_normalization = "data"  # input statistics fitted on the new training data; "kept": the model's own

    # Optimisation.
    config.optimizer = "adamw"  # or "adam"
    config.learning_rate = 3e-3
    config.weight_decay = 1e-2  # adamw only
    config.schedule = "cosine"  # or "constant"; after config.warmup_epochs of linear warm-up
    config.warmup_epochs = 2
    config.label_smoothing = 0.05
    config.class_weighting = "none"  # or "balanced": loss weights inversely proportional to training class counts
    config.batch_size = 32  # the global batch: a multiple of the device count
    config.epochs = 90

    # Augmentation (on device, in the train step): SpecAugment-style masks, zeros after normalisation.
    config.freq_masks = 1  # bands of MFCC coefficients masked per window
    config.max_freq_width = 4
    config.time_masks = 1  # bands of frames masked per window
    config.max_time_width = 20

    # Augmentation of the waveform (on device, before the front end; emojax.augment.augment_waveforms, in this order).
    # Each *_prob is the share of clips, drawn per clip, that get that augmentation; 0 (every default here): off.
    # They need the front end in the train step: "prepared" cuts training windows from the builders' MFCCs; "step"
    # computes them from the recordings in each step (the same windows for a clip left unchanged).
    config.front_end = "prepared"
    config.wave_speed = (1.0, 1.0)  # speed factors (tempo and pitch together, as Kaldi's); e.g. (0.9, 1.1); (1, 1): off
    config.wave_pitch_semitones = (0.0, 0.0)  # pitch shift, tempo kept (phase vocoder); e.g. (-2, 2); (0, 0): off
    config.wave_reverb_prob = 0.0  # reverberation by a synthetic room impulse response
    config.wave_reverb_rt60 = (0.2, 0.8)  # its reverberation time, seconds
    config.wave_reverb_drr_db = (0.0, 10.0)  # its direct-to-reverberant energy ratio, dB
    config.wave_noise_prob = 0.0  # additive noise
    config.wave_noise_snr_db = (5.0, 20.0)  # its signal-to-noise ratio, dB of the clip's own power
    config.wave_noise_kinds = ("white", "pink", "babble")  # drawn per clip among these (babble: other clips)
    config.wave_babble_talkers = (3, 5)  # clips summed into babble (at most the batch size - 1)
    config.wave_telephone_prob = 0.0  # band-limited to the telephone band, 300-3400 Hz
    config.wave_clip_prob = 0.0  # overdriven and hard-clipped at full scale
    config.wave_clip_drive_db = (0.0, 20.0)  # the overdrive, dB above the clip's peak
    config.wave_gain_db = 0.0  # level changed by a gain uniform in +- this many dB; 0: off

    # Execution.
    config.data_on_device = True  # False: host-fed batches (same results, for data that does not fit)
    config.host_chunk_steps = 16  # host-fed: batches gathered on the host per jitted call (a scan over them)
    config.eval_batch_size = 32  # windows per evaluation batch, in scans of steps.PREDICT_BATCHES_PER_CALL batches
    config.seed = 0  # initialisation, data order, crops, masks and dropout
    return config
