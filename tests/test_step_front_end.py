"""The front end in the train step: a clip's first seconds give the MFCCs of the whole clip there, and the step's
windows of unaugmented clips equal the prepared ones, so the two paths cannot drift apart; a run trains with it."""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the configs/ package

from emojax import features, input_pipeline, protocols, steps, train  # noqa: E402
from test_train import tiny_config  # noqa: E402


def test_segment_mfccs_equal_the_whole_clips_mfccs_on_their_first_frames():
    rng = np.random.default_rng(0)
    clips = [(0.2 * rng.normal(size=n) * np.exp(-np.linspace(0, 4, n))).astype(np.float32)
             for n in (9_000, 30_000, 70_000)]  # shorter and longer than the segment
    clips[2][50_000:52_000] *= 100  # the loudest band after the segment: only the whole clip's peak gives its floor,
    clips[2][2_000:8_000] = 0.0  # which silence in the segment takes
    frames = 150
    size = features.segment_samples(frames)
    x = np.zeros((len(clips), size), np.float32)
    lengths = np.array([min(len(c), size) for c in clips], np.int32)
    for i, clip in enumerate(clips):
        x[i, :lengths[i]] = clip[:size]
    step = jax.jit(features.segment_mfccs, static_argnums=2)
    got = np.asarray(step(x, lengths, frames, features.clip_peaks(clips)))
    own_peak = np.asarray(step(x, lengths, frames, np.full(len(clips), np.nan, np.float32)))
    for i, whole in enumerate(features.clip_mfccs(clips)):
        shared = min(frames, whole.shape[1])
        np.testing.assert_allclose(got[i, :, :shared], whole[:, :shared], atol=1e-3)
        if i == 2:  # the segment's own peak is lower: its floor is too
            assert np.abs(own_peak[i, :, :shared] - whole[:, :shared]).max() > 1.0


def test_the_steps_windows_of_unaugmented_clips_equal_the_prepared_ones(synthetic_data_dir):
    config = tiny_config(data_dir=synthetic_data_dir, front_end="step", utterance_normalization="level",
                         window_frames=96, crop_shift_frames=8)
    splits = protocols.load_splits(config)
    splits["train"] = splits["train"].subset(np.arange(0, len(splits["train"]), 40))  # 16 clips, all lengths
    arrays, normalization = input_pipeline.prepare(config, splits)
    config.front_end = "prepared"
    prepared, _ = input_pipeline.prepare(config, splits)
    config.front_end = "step"
    windows = jax.jit(lambda key, x: steps.step_windows(config, normalization, key, x))(
        jax.random.PRNGKey(0), arrays["train"].x)["mfcc"]
    np.testing.assert_allclose(np.asarray(windows), prepared["train"].x["mfcc"], atol=1e-4)


def test_a_run_trains_with_the_front_end_in_the_step(tmp_path, synthetic_data_dir, compilation_cache):
    config = tiny_config(data_dir=synthetic_data_dir, front_end="step", epochs=1)
    result = train.train_and_evaluate(config, tmp_path / "step")
    assert result["num_examples"] == 160 and 0.0 <= result["accuracy"] <= 1.0
    with pytest.raises(ValueError, match="change pitch"):
        input_pipeline.step_segment(tiny_config(front_end="step", pitch=True))
