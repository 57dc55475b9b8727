"""Protocols, windows and normalisation."""

from __future__ import annotations

import dataclasses

import ml_collections
import numpy as np
import pytest

from emojax import input_pipeline, protocols
from emojax.input_pipeline import Normalization
from emojax.protocols import Corpus
from emojax.labels import EMOTIONS


def _reference_labels() -> np.ndarray:
    """The label counts of the four merged corpora (12,162 clips; calm has 192)."""
    counts = {0: 1895, 1: 192, 2: 1923, 3: 1923, 4: 1923, 5: 1923, 6: 1923, 7: 460}
    assert sum(counts.values()) == 12_162
    return np.repeat(np.array(list(counts)), list(counts.values()))


def test_stratified_split_matches_the_reference_sizes():
    labels = _reference_labels()
    kept, held = protocols.stratified_split(labels, 0.2, seed=42)
    assert (len(kept), len(held)) == (9_729, 2_433)
    assert np.array_equal(np.sort(np.concatenate([kept, held])), np.arange(len(labels)))
    for c in np.unique(labels):
        share = (labels == c).sum() * 0.2
        assert abs((labels[held] == c).sum() - share) <= 1
    again = protocols.stratified_split(labels, 0.2, seed=42)
    assert np.array_equal(again[1], held)
    assert not np.array_equal(protocols.stratified_split(labels, 0.2, seed=43)[1], held)


def _corpus(n: int, frames: int = 100, seed: int = 0) -> Corpus:
    rng = np.random.default_rng(seed)
    return Corpus(mfcc=[rng.normal(size=(40, frames + i % 7)).astype(np.float32) for i in range(n)], pitch=None,
                  label=np.arange(n) % 8, speaker=np.array([f"s{i % 5}" for i in range(n)]),
                  corpus=np.array(["a", "b"] * (n // 2)), gender=np.array(["f"] * n),
                  file=np.array([f"{i}.wav" for i in range(n)]))


def test_random_protocol_is_disjoint_and_keeps_test_aside():
    corpus = _corpus(200)
    splits = protocols.random_protocol(corpus, 0.2, 0.1, seed=1)
    files = {name: set(split.file) for name, split in splits.items()}
    assert len(files["test"]) == 40 and len(files["validation"]) == 16 and len(files["train"]) == 144
    assert not files["train"] & files["test"] and not files["validation"] & files["test"]
    assert not files["train"] & files["validation"]


def test_load_splits_takes_the_builder_splits_from_any_reader():
    parts = {split: _corpus(60, seed=k) for k, split in enumerate(protocols.SPLITS)}
    calls = []

    def read(config: ml_collections.ConfigDict, split: str) -> Corpus:
        calls.append((config.datasets, split))
        return parts[split]

    config = ml_collections.ConfigDict(dict(datasets=("a", "b"), protocol="speaker", test_fraction=0.2,
                                            validation_fraction=0.1, split_seed=3, refit=False))
    assert {k: list(v.file) for k, v in protocols.load_splits(config, read).items()} == {
        k: list(v.file) for k, v in parts.items()}
    assert calls == [(("a", "b"), split) for split in protocols.SPLITS]
    config.protocol = "random"
    expected = protocols.random_protocol(Corpus.concatenate(list(parts.values())), 0.2, 0.1, seed=3)
    got = protocols.load_splits(config, read)
    for split in protocols.SPLITS:
        assert np.array_equal(got[split].file, expected[split].file)
        assert all(np.array_equal(a, b) for a, b in zip(got[split].mfcc, expected[split].mfcc))


def test_refit_trains_on_the_validation_clips_and_keeps_the_test_split():
    parts = {split: _corpus(60, seed=k) for k, split in enumerate(protocols.SPLITS)}
    config = ml_collections.ConfigDict(dict(datasets=("a", "b"), protocol="random", test_fraction=0.2,
                                            validation_fraction=0.1, split_seed=3, refit=False))
    plain = protocols.load_splits(config, lambda c, split: parts[split])
    config.refit = True
    refit = protocols.load_splits(config, lambda c, split: parts[split])
    assert list(refit["train"].file) == [*plain["train"].file, *plain["validation"].file]
    assert all(np.array_equal(a, b) for a, b in zip(refit["train"].mfcc, [*plain["train"].mfcc,
                                                                          *plain["validation"].mfcc]))
    assert list(refit["test"].file) == list(plain["test"].file)
    assert len(refit["validation"]) == 0 and refit["validation"].label.shape == (0,)
    windows = input_pipeline.evaluation_windows(refit["validation"], ml_collections.ConfigDict(dict(
        offset_frames=0, window_frames=16, n_mfcc=25, test_crops=1, utterance_normalization="none")))
    assert windows["mfcc"].shape == (0, 1, 25, 16)


def test_leave_one_corpus_out_tests_on_the_whole_held_out_corpus():
    parts = {split: _corpus(40, seed=i).subset(np.arange(40)) for i, split in enumerate(protocols.SPLITS)}
    parts = {split: Corpus(**{**vars(c), "file": np.array([f"{split}/{f}" for f in c.file])})
             for split, c in parts.items()}
    config = ml_collections.ConfigDict({"datasets": ("a", "b"), "test_corpus": "b"})
    splits = protocols.leave_one_corpus_out(config, parts.__getitem__)
    assert set(splits["train"].corpus) == {"a"} and set(splits["validation"].corpus) == {"a"}
    assert set(splits["test"].corpus) == {"b"} and len(splits["test"]) == 60  # b's examples of all three splits
    assert set(splits["train"].file) == {f for f, c in zip(parts["train"].file, parts["train"].corpus) if c == "a"}
    config.test_corpus = "c"
    with pytest.raises(ValueError, match="test_corpus"):
        protocols.leave_one_corpus_out(config, parts.__getitem__)



def test_held_out_classes_are_the_test_corpus_emotions_under_loco_only():
    config = ml_collections.ConfigDict({"protocol": "loco", "test_corpus": "crema_d"})
    assert protocols.held_out_classes(config) == ("neutral", "happiness", "sadness", "anger", "fear", "disgust")
    config.test_corpus = "tess"
    assert protocols.held_out_classes(config) == tuple(e for e in EMOTIONS if e != "calm")
    config.test_corpus = "ravdess"
    assert protocols.held_out_classes(config) == EMOTIONS
    config.test_corpus = "synthetic_prosody"
    assert protocols.held_out_classes(config) is None
    config.update({"protocol": "speaker", "test_corpus": "crema_d"})
    assert protocols.held_out_classes(config) is None

def test_crop_windows_slice_and_zero_pad():
    mfcc = np.arange(40 * 10, dtype=np.float32).reshape(40, 10)
    w = input_pipeline.crop_windows(mfcc[:25], [4], 8)
    assert w.shape == (1, 25, 8)
    np.testing.assert_array_equal(w[0, :, :6], mfcc[:25, 4:10])
    assert not w[0, :, 6:].any()
    early, inside, late = input_pipeline.crop_windows(mfcc[:3], np.array([-2, 3, 20]), 4)
    assert not early[:, :2].any()
    np.testing.assert_array_equal(early[:, 2:], mfcc[:3, :2])
    np.testing.assert_array_equal(inside, mfcc[:3, 3:7])
    assert not late.any()


def test_pitch_rows_travel_beside_the_first_n_mfcc_coefficients():
    mfcc = np.arange(40 * 10, dtype=np.float32).reshape(40, 10)
    pitch = -np.arange(2 * 10, dtype=np.float32).reshape(2, 10)
    w = input_pipeline.clip_windows({"mfcc": mfcc, "pitch": pitch}, [2, 6], 6, 25)
    assert w["mfcc"].shape == (2, 25, 6) and w["pitch"].shape == (2, 2, 6)
    np.testing.assert_array_equal(w["mfcc"][0], mfcc[:25, 2:8])
    np.testing.assert_array_equal(w["pitch"][0], pitch[:, 2:8])
    assert not w["mfcc"][1, :, 4:].any() and not w["pitch"][1, :, 4:].any()
    # Utterance normalisation covers the pitch rows too.
    centred = input_pipeline.clip_windows({"mfcc": mfcc, "pitch": pitch}, [0], 10, 3, "mean")
    np.testing.assert_allclose(centred["pitch"][0].mean(axis=1), 0, atol=1e-5)
    corpus = Corpus.from_split(dict(mfcc=[mfcc], pitch=[pitch], label=[0], speaker=["s"], corpus=["c"],
                                    gender=["f"], file=["a"]))
    np.testing.assert_array_equal(corpus.clip(0)["pitch"], pitch)
    windows = input_pipeline.make_windows(Corpus.concatenate([corpus, corpus]), [2, 6], 6, 25)
    np.testing.assert_array_equal(windows["pitch"][1], w["pitch"])
    assert Corpus.concatenate([corpus, dataclasses.replace(corpus, pitch=None)]).pitch is None
    config = ml_collections.ConfigDict(dict(n_mfcc=25, window_frames=64, pitch=False))
    assert input_pipeline.input_shapes(config) == {"mfcc": (25, 64)}
    config.pitch = True
    assert input_pipeline.input_shapes(config) == {"mfcc": (25, 64), "pitch": (2, 64)}
    # A normalisation picks the inputs its model reads.
    norm = Normalization.fit({"mfcc": windows["mfcc"][:, 0]}, "per_coefficient")
    assert set(norm(windows)) == {"mfcc"}
    with pytest.raises(ValueError, match="config.pitch=True"):
        Normalization.fit(windows, "per_position")({"mfcc": windows["mfcc"]})


def test_utterance_normalization_uses_the_whole_clip():
    rng = np.random.default_rng(0)
    mfcc = rng.normal(0.0, 1.0, (40, 90)).astype(np.float32)
    mfcc[:20] += np.linspace(-50, 50, 20, dtype=np.float32)[:, None]
    mfcc[5] = 7.0  # a constant coefficient: no division by zero
    np.testing.assert_array_equal(input_pipeline.utterance_normalize(mfcc, "none"), mfcc)
    mean = input_pipeline.utterance_normalize(mfcc, "mean")
    np.testing.assert_allclose(mean.mean(axis=1), 0.0, atol=1e-5)
    np.testing.assert_allclose(mean.std(axis=1), mfcc.std(axis=1), rtol=1e-5)
    both = input_pipeline.utterance_normalize(mfcc, "mean_std")
    np.testing.assert_allclose(both.mean(axis=1), 0.0, atol=1e-5)
    np.testing.assert_allclose(np.delete(both.std(axis=1), 5), 1.0, rtol=1e-4)
    assert np.isfinite(both).all() and not both[5].any()
    # A fixed channel response (a per-coefficient offset) and, with "mean_std", a per-coefficient gain cancel.
    channel = rng.normal(0.0, 5.0, (40, 1)).astype(np.float32)
    np.testing.assert_allclose(input_pipeline.utterance_normalize(mfcc + channel, "mean"), mean, atol=1e-4)
    np.testing.assert_allclose(input_pipeline.utterance_normalize(3 * mfcc + channel, "mean_std"), both, atol=1e-4)
    # Statistics over the whole clip and its first n_mfcc rows; the window is cut afterwards, zero-padded.
    first, last = input_pipeline.clip_windows({"mfcc": mfcc}, [0, 80], 16, 25, "mean_std")["mfcc"]
    normalized = input_pipeline.utterance_normalize(mfcc[:25], "mean_std")
    np.testing.assert_allclose(first, normalized[:, :16], atol=1e-6)
    np.testing.assert_allclose(last[:, :10], normalized[:, 80:], atol=1e-6)
    assert not last[:, 10:].any()
    with pytest.raises(ValueError, match="config.utterance_normalization"):
        input_pipeline.utterance_normalize(mfcc, "per_clip")


def test_level_normalization_removes_the_clips_loudness_from_c0_only():
    """A gain adds the same number of dB to every log-mel value, so it moves c0 (the orthonormal DCT's constant row)
    alone; "level" centres c0 over the clip and leaves the other coefficients and the pitch rows as they are."""
    from emojax import features

    rng = np.random.default_rng(0)
    t = np.arange(16_000 * 2) / 16_000
    y = (0.3 * np.sin(2 * np.pi * 180 * t * (1 + 0.1 * np.sin(3 * t))) * (0.5 + 0.5 * np.sin(2 * np.pi * 2 * t)) +
         0.01 * rng.normal(size=t.size)).astype(np.float32)
    loud, quiet = features.clip_mfccs([y, y * 10 ** (-30 / 20)])
    np.testing.assert_allclose(quiet[1:], loud[1:], atol=2e-2)  # only c0 moves with the gain ...
    assert np.allclose(loud[0] - quiet[0], 30 * np.sqrt(128), rtol=1e-3)  # ... by 30 dB · sqrt(n_mels)
    level = [input_pipeline.utterance_normalize(m, "level") for m in (loud, quiet)]
    np.testing.assert_allclose(level[0], level[1], atol=5e-2)
    np.testing.assert_allclose(level[0][0].mean(), 0.0, atol=1e-3)
    np.testing.assert_array_equal(level[0][1:], loud[1:])
    pitch = rng.normal(size=(2, 50)).astype(np.float32)
    np.testing.assert_array_equal(input_pipeline.utterance_normalize(pitch, "level", "pitch"), pitch)


@pytest.mark.parametrize("kind,shape", [("per_position", (25, 30)), ("per_coefficient", (25, 1))])
def test_normalization_uses_training_statistics(kind, shape):
    rng = np.random.default_rng(0)
    train = {"mfcc": rng.normal(3.0, 2.0, (50, 25, 30)).astype(np.float32)}
    norm = Normalization.fit(train, kind)
    assert norm.statistics["mfcc"][0].shape == shape and norm.statistics["mfcc"][1].shape == shape
    out = norm(train)["mfcc"]
    np.testing.assert_allclose(out.mean(axis=0 if kind == "per_position" else (0, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=0 if kind == "per_position" else (0, 2)), 1.0, atol=1e-4)
    back = Normalization.from_dict(norm.to_dict())
    np.testing.assert_array_equal(back(train)["mfcc"], out)


def _config(**overrides) -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict(dict(n_mfcc=25, window_frames=64, offset_frames=10, crop_shift_frames=0,
                                            normalization="per_position", test_crops=1, utterance_normalization="none",
                                            speaker_normalization="none"))
    config.update(overrides)
    return config


def test_prepare_widens_training_windows_for_crops():
    splits = {"train": _corpus(20), "validation": _corpus(8, seed=1), "test": _corpus(8, seed=2)}
    arrays, norm = input_pipeline.prepare(_config(crop_shift_frames=6, normalization="per_coefficient"), splits)
    assert arrays["train"].x["mfcc"].shape == (20, 25, 76)
    assert arrays["validation"].x["mfcc"].shape == (8, 1, 25, 64) and arrays["test"].x["mfcc"].shape == (8, 1, 25, 64)
    assert arrays["train"].y.dtype == np.int32
    raw = input_pipeline.make_windows(splits["test"], [10], 64, 25)
    np.testing.assert_allclose(arrays["test"].x["mfcc"], norm(raw)["mfcc"])
    with pytest.raises(ValueError, match="crop_shift_frames=0"):
        input_pipeline.prepare(_config(crop_shift_frames=6), splits)
    centred, _ = input_pipeline.prepare(_config(utterance_normalization="mean"), splits)
    raw = input_pipeline.make_windows(splits["test"], [10], 64, 25, "mean")
    train = {"mfcc": input_pipeline.make_windows(splits["train"], [10], 64, 25, "mean")["mfcc"][:, 0]}
    np.testing.assert_allclose(centred["test"].x["mfcc"], Normalization.fit(train, "per_position")(raw)["mfcc"],
                               atol=1e-5)


def test_evaluation_windows_spread_over_the_training_crops():
    corpus = _corpus(3)
    config = _config(crop_shift_frames=6, test_crops=3)
    np.testing.assert_array_equal(input_pipeline.evaluation_offsets(config), [4, 10, 16])
    windows = input_pipeline.evaluation_windows(corpus, config)["mfcc"]
    assert windows.shape == (3, 3, 25, 64)
    for i, mfcc in enumerate(corpus.mfcc):
        for k, offset in enumerate((4, 10, 16)):
            np.testing.assert_array_equal(windows[i, k], input_pipeline.crop_windows(mfcc[:25], [offset], 64)[0])
    np.testing.assert_array_equal(input_pipeline.evaluation_offsets(_config()), [10])
    with pytest.raises(ValueError, match="test_crops"):
        input_pipeline.evaluation_offsets(_config(test_crops=0))


_SPEAKER_OFFSETS = {f"s{k}": np.random.default_rng(k).normal(0.0, 4.0, (40, 1)).astype(np.float32) for k in range(5)}


def _voiced(corpus: Corpus) -> Corpus:
    """``corpus`` with a voice per speaker s0-s4: speaker k's MFCCs scaled by k + 1 and offset."""
    return dataclasses.replace(corpus, mfcc=[m * (1 + int(s[1:])) + _SPEAKER_OFFSETS[s]
                                             for m, s in zip(corpus.mfcc, corpus.speaker)])


def test_speaker_normalization_uses_each_speakers_training_statistics():
    """Known speakers are normalised with their training clips' statistics, new ones with their own clips'; labels
    play no part."""
    train = _voiced(_corpus(30))
    test = _corpus(10, seed=1)
    test = dataclasses.replace(test, speaker=np.array(["s1"] * 5 + ["new"] * 5), mfcc=[
        2 * m + _SPEAKER_OFFSETS["s1"] if i < 5 else 3 * m - 7 for i, m in enumerate(test.mfcc)])
    splits = {"train": train, "validation": test.subset(np.arange(5)), "test": test}
    out = input_pipeline.speaker_normalize(splits, "mean_std")
    for speaker in ("s0", "s3"):  # each training speaker's frames end with mean 0 and std 1 per coefficient
        frames = np.concatenate([m for m, s in zip(out["train"].mfcc, out["train"].speaker) if s == speaker], axis=1)
        np.testing.assert_allclose(frames.mean(axis=1), 0.0, atol=1e-5)
        np.testing.assert_allclose(frames.std(axis=1), 1.0, atol=1e-4)
    mean, std = input_pipeline.speaker_statistics(train)["s1"]["mfcc"]
    for i in range(5):  # s1 in the test split: by s1's training statistics, in every split
        np.testing.assert_allclose(out["test"].mfcc[i], (test.mfcc[i] - mean) / std, atol=1e-5)
        np.testing.assert_array_equal(out["validation"].mfcc[i], out["test"].mfcc[i])
    own = input_pipeline.frame_statistics([{"mfcc": m} for m in test.mfcc[5:]])["mfcc"]  # a new speaker: their own
    np.testing.assert_allclose(out["test"].mfcc[7], (test.mfcc[7] - own[0]) / own[1], atol=1e-5)  # clips of the split
    relabelled = dict(splits, train=dataclasses.replace(train, label=train.label[::-1]))
    np.testing.assert_array_equal(input_pipeline.speaker_normalize(relabelled, "mean_std")["test"].mfcc[0],
                                  out["test"].mfcc[0])
    centred = input_pipeline.speaker_normalize(splits, "mean")
    np.testing.assert_allclose(centred["test"].mfcc[0], test.mfcc[0] - mean, atol=1e-5)
    assert input_pipeline.speaker_normalize(splits, "none") is splits
    assert [len(c) for c in out.values()] == [30, 5, 10] and list(out["test"].file) == list(test.file)
    with pytest.raises(ValueError, match="config.speaker_normalization"):
        input_pipeline.speaker_normalize(splits, "per_speaker")
    with pytest.raises(ValueError, match="at least one frame"):
        input_pipeline.frame_statistics([{"mfcc": np.zeros((40, 0), np.float32)}])


def test_prepare_normalizes_speakers_before_windows():
    splits = {"train": _voiced(_corpus(20)), "validation": _voiced(_corpus(8, seed=1)),
              "test": _voiced(_corpus(8, seed=2))}
    config = _config(crop_shift_frames=6, normalization="per_coefficient", speaker_normalization="mean_std")
    arrays, norm = input_pipeline.prepare(config, splits)
    normalized = input_pipeline.speaker_normalize(splits, "mean_std")
    expected, expected_norm = input_pipeline.prepare(_config(crop_shift_frames=6, normalization="per_coefficient"),
                                                     normalized)
    for name in protocols.SPLITS:
        np.testing.assert_array_equal(arrays[name].x["mfcc"], expected[name].x["mfcc"])
    np.testing.assert_array_equal(norm.statistics["mfcc"][0], expected_norm.statistics["mfcc"][0])
    plain, _ = input_pipeline.prepare(_config(crop_shift_frames=6, normalization="per_coefficient"), splits)
    assert not np.allclose(plain["test"].x["mfcc"], arrays["test"].x["mfcc"], atol=0.05)
