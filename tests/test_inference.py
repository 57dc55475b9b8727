"""eval.py and Predictor on the trained demo workdir: metrics JSON, odd audio files, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from emojax import features, inference, synthetic
from emojax.labels import EMOTIONS

REPO = Path(__file__).resolve().parents[1]


def _probabilities(predictor: inference.Predictor, windows: dict[str, np.ndarray]) -> np.ndarray:
    """Raw windows {name: (K, R, frames)} -> (K, C): each member's model on its normalisation of them, averaged."""
    return np.mean([classifier.predict(variables, normalization(windows))
                    for classifier, variables, normalization, _ in predictor._members], axis=0)


def _first(windows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Evaluation windows {name: (N, K, R, frames)} -> the first window of each clip, {name: (N, R, frames)}."""
    return {name: w[:, 0] for name, w in windows.items()}


def _run(*args: str, data_dir: str, cache: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TFDS_DATA_DIR": data_dir, "JAX_PLATFORMS": "cpu", "JAX_COMPILATION_CACHE_DIR": cache,
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
    return subprocess.run([sys.executable, str(REPO / "eval.py"), *args], env=env, capture_output=True, text=True)


def test_eval_prints_metrics_json_and_writes_plots(trained_workdir, synthetic_data_dir, compilation_cache):
    done = _run("--workdir", str(trained_workdir), data_dir=synthetic_data_dir, cache=compilation_cache)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    for key in ("accuracy", "unweighted_accuracy", "macro_f1", "precision", "recall", "keras_precision",
                "keras_recall", "per_class", "per_corpus", "confusion_matrix", "num_examples"):
        assert key in result, key
    assert result["num_examples"] == 160 and set(result["per_class"]) == set(EMOTIONS)
    assert np.asarray(result["confusion_matrix"]).sum() == 160
    stored = json.loads((trained_workdir / "test_metrics.json").read_text())
    assert result["accuracy"] == pytest.approx(stored["accuracy"])
    assert json.loads((trained_workdir / "eval" / "metrics.json").read_text())["accuracy"] == result["accuracy"]
    assert (trained_workdir / "eval" / "confusion_matrix.png").stat().st_size > 1000


def _signal(seconds: float, rate: int, channels: int) -> np.ndarray:
    """A synthetic utterance (repeated to ``seconds``) at ``rate`` Hz with ``channels`` channels, float in [-1, 1]."""
    clip = next(synthetic.generate("test")).audio.astype(np.float32) / 32768
    samples = int(seconds * synthetic.SAMPLE_RATE)
    clip = np.tile(clip, int(np.ceil(samples / len(clip))))[:samples]
    n = max(int(round(len(clip) * rate / synthetic.SAMPLE_RATE)), 1)
    clip = np.interp(np.linspace(0, len(clip) - 1, n), np.arange(len(clip)), clip).astype(np.float32)
    return np.stack([clip * (0.5 + 0.1 * c) for c in range(channels)], axis=1)


# name, seconds, rate, channels, format, subtype
_FILES = [
    ("short_8k.wav", 0.1, 8_000, 1, "WAV", "PCM_16"),
    ("stereo_44k.flac", 2.0, 44_100, 2, "FLAC", "PCM_24"),
    ("six_channels_48k.ogg", 3.0, 48_000, 6, "OGG", "VORBIS"),
    ("aiff_inside.wav", 1.5, 22_050, 1, "AIFF", "PCM_16"),
    ("eight_bit_11k.wav", 2.5, 11_025, 1, "WAV", "PCM_U8"),
    ("float_96k.wav", 4.0, 96_000, 2, "WAV", "FLOAT"),
    ("stereo_22k.mp3", 1.0, 22_050, 2, "MP3", "MPEG_LAYER_III"),
    ("long_16k.flac", 60.0, 16_000, 1, "FLAC", "PCM_16"),
]


@pytest.fixture(scope="module")
def audio_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("audio")
    paths = {}
    for name, seconds, rate, channels, container, subtype in _FILES:
        paths[name] = folder / name
        soundfile.write(paths[name], _signal(seconds, rate, channels), rate, format=container, subtype=subtype)
    paths["corrupt.wav"] = folder / "corrupt.wav"
    paths["corrupt.wav"].write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt garbage")
    return paths


def test_predictor_on_odd_files(trained_workdir, audio_files):
    predictor = inference.Predictor.from_workdir(trained_workdir)
    for name, seconds, *_ in _FILES:
        result = predictor.predict_file(audio_files[name])
        assert result.emotion in EMOTIONS
        assert sum(result.probabilities.values()) == pytest.approx(1.0)
        assert result.duration_seconds == pytest.approx(seconds, abs=0.01)
        for window in result.windows:
            assert sum(window["probabilities"].values()) == pytest.approx(1.0)
            assert 0 <= window["start_seconds"] < window["end_seconds"] <= seconds + 1e-6
        if seconds > 3.0:
            assert len(result.windows) >= 2 and result.windows[-1]["end_seconds"] == pytest.approx(seconds, abs=1e-3)
        else:
            assert len(result.windows) == 1
    long = predictor.predict_file(audio_files["long_16k.flac"])
    assert len(long.windows) == 47  # 2.5 s windows every 1.25 s over 60 s, the last one aligned to the end
    with pytest.raises(features.AudioFileError, match="corrupt.wav"):
        predictor.predict_file(audio_files["corrupt.wav"])


def test_predict_in_memory_matches_the_file(trained_workdir, audio_files):
    predictor = inference.Predictor.from_workdir(trained_workdir)
    from_file = predictor.predict_file(audio_files["stereo_44k.flac"])
    audio, rate = soundfile.read(audio_files["stereo_44k.flac"], dtype="int32")
    in_memory = predictor.predict(audio, rate)
    for name in EMOTIONS:
        assert in_memory.probabilities[name] == pytest.approx(from_file.probabilities[name], abs=2e-3)


def test_eval_cli_predicts_files_and_reports_failures(trained_workdir, synthetic_data_dir, compilation_cache,
                                                     audio_files):
    names = ["short_8k.wav", "corrupt.wav", "six_channels_48k.ogg", "float_96k.wav"]
    done = _run("--workdir", str(trained_workdir), "--json", "--audio", *(str(audio_files[n]) for n in names),
                data_dir=synthetic_data_dir, cache=compilation_cache)
    assert done.returncode == 1  # one file failed
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "corrupt.wav" in errors[0]
    results = [json.loads(line) for line in done.stdout.strip().splitlines()]
    assert [Path(r["file"]).name for r in results] == [n for n in names if n != "corrupt.wav"]
    for r in results:
        assert set(r["probabilities"]) == set(EMOTIONS) and r["emotion"] in EMOTIONS and r["windows"]
    shipped = _run("--audio", str(audio_files["short_8k.wav"]), data_dir=synthetic_data_dir, cache=compilation_cache)
    assert shipped.returncode == 0, shipped.stderr[-2000:]  # without --workdir: the shipped model
    path, emotion, probability = shipped.stdout.strip().split("\t")
    want = inference.Predictor.pretrained().predict_file(audio_files["short_8k.wav"])
    assert path.endswith("short_8k.wav") and emotion == want.emotion
    assert abs(float(probability) - want.probability) < 1e-3


def test_a_corpus_clip_gets_the_training_window(trained_workdir, synthetic_data_dir):
    """Predicting a recording of the test split equals classifying its stored training-pipeline window."""
    from emojax import input_pipeline, prepared

    predictor = inference.Predictor.from_workdir(trained_workdir)
    stored = prepared.load_split("synthetic_prosody", "test", synthetic_data_dir, keys=("mfcc", "audio"))
    clip = next(synthetic.generate("test"))
    index = [i for i, audio in enumerate(stored["audio"]) if np.array_equal(audio, clip.audio)]
    assert len(index) == 1, "the stored test split should hold the generated clip once"
    c = predictor.config
    expected = _probabilities(predictor, input_pipeline.clip_windows({"mfcc": stored["mfcc"][index[0]]},
                                                                     [c.offset_frames], c.window_frames, c.n_mfcc))[0]
    result = predictor.predict(clip.audio, synthetic.SAMPLE_RATE)
    assert len(result.windows) == 1 and result.windows[0]["start_seconds"] == pytest.approx(0.5, abs=0.01)
    np.testing.assert_allclose([result.probabilities[e] for e in EMOTIONS], expected, atol=1e-4)


def test_eval_cli_on_hostile_files(trained_workdir, synthetic_data_dir, compilation_cache, tmp_path):
    """Each bad file: exactly one ``error: FILE: reason`` line, no traceback, the others still predicted; a
    1-sample file is predicted like any clip; exit status 1 with any bad file, 0 with good files only."""
    good = {"speech.wav": (2.0, 16_000, 1), "eight_channels_96k.wav": (3.0, 96_000, 8), "one_sample.wav": None}
    for name, spec in good.items():
        audio, rate = (_signal(*spec), spec[1]) if spec else (np.full((1, 1), 0.25, np.float32), 16_000)
        soundfile.write(tmp_path / name, audio, rate, subtype="PCM_16")
    soundfile.write(tmp_path / "nan.wav", np.full((8000, 1), np.nan, np.float32), 16_000, subtype="FLOAT")
    (tmp_path / "random.wav").write_bytes(np.random.default_rng(0).bytes(5000))
    (tmp_path / "empty.flac").write_bytes(b"")
    whole = (tmp_path / "speech.wav").read_bytes()
    (tmp_path / "truncated.wav").write_bytes(whole[: len(whole) // 3])
    bad = ["random.wav", "empty.flac", "truncated.wav", "nan.wav", "missing.ogg"]
    order = ["speech.wav", "random.wav", "empty.flac", "eight_channels_96k.wav", "truncated.wav", "one_sample.wav",
             "nan.wav", "missing.ogg"]
    done = _run("--workdir", str(trained_workdir), "--audio", *(str(tmp_path / n) for n in order),
                data_dir=synthetic_data_dir, cache=compilation_cache)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == len(bad), errors
    for name, line in zip(bad, errors):
        assert line.startswith(f"error: {tmp_path / name}: ") and len(line) > len(f"error: {tmp_path / name}: ") + 5
        assert line.count(str(tmp_path)) == 1, line  # the file named once
    lines = [line.split("\t") for line in done.stdout.strip().splitlines()]
    assert [Path(path).name for path, _, _ in lines] == [n for n in order if n in good]
    for _, emotion, probability in lines:
        assert emotion in EMOTIONS and 1 / len(EMOTIONS) <= float(probability) <= 1.0
    only_good = _run("--workdir", str(trained_workdir), "--audio", *(str(tmp_path / n) for n in good),
                     data_dir=synthetic_data_dir, cache=compilation_cache)
    assert only_good.returncode == 0 and not only_good.stderr.count("error:"), only_good.stderr[-3000:]
    assert len(only_good.stdout.strip().splitlines()) == len(good)


def test_test_crops_average_the_evaluation_windows(trained_workdir, synthetic_data_dir):
    """With ``test_crops`` > 1 a short clip's prediction is the mean over the evaluation windows, as in eval."""
    from emojax import input_pipeline, prepared

    predictor = inference.Predictor.from_workdir(trained_workdir)
    c = predictor.config
    c.crop_shift_frames, c.test_crops = 20, 3
    stored = prepared.load_split("synthetic_prosody", "test", synthetic_data_dir, keys=("mfcc", "audio"))
    clip = next(synthetic.generate("test"))
    index = next(i for i, audio in enumerate(stored["audio"]) if np.array_equal(audio, clip.audio))
    offsets = input_pipeline.evaluation_offsets(c)
    windows = input_pipeline.clip_windows({"mfcc": stored["mfcc"][index]}, offsets, c.window_frames, c.n_mfcc)
    expected = _probabilities(predictor, windows).mean(axis=0)
    result = predictor.predict(clip.audio, synthetic.SAMPLE_RATE)
    assert [w["start_seconds"] for w in result.windows] == pytest.approx(offsets * 512 / 44_100, abs=1e-6)
    np.testing.assert_allclose([result.probabilities[e] for e in EMOTIONS], expected, atol=1e-4)


def test_utterance_normalization_is_applied_to_recordings_as_in_training(trained_workdir, synthetic_data_dir):
    """A config with per-utterance normalisation gets it at prediction time too: the clip's whole MFCC, then the
    window, as ``input_pipeline.evaluation_windows`` does."""
    from emojax import input_pipeline, prepared

    predictor = inference.Predictor.from_workdir(trained_workdir)
    c = predictor.config
    c.utterance_normalization = "mean_std"
    stored = prepared.load_split("synthetic_prosody", "test", synthetic_data_dir, keys=("mfcc", "audio"))
    clip = next(synthetic.generate("test"))
    index = next(i for i, audio in enumerate(stored["audio"]) if np.array_equal(audio, clip.audio))
    clip_rows = {"mfcc": stored["mfcc"][index]}
    window = input_pipeline.clip_windows(clip_rows, [c.offset_frames], c.window_frames, c.n_mfcc, "mean_std")
    plain = input_pipeline.clip_windows(clip_rows, [c.offset_frames], c.window_frames, c.n_mfcc)
    assert not np.allclose(window["mfcc"], plain["mfcc"], atol=0.1)
    result = predictor.predict(clip.audio, synthetic.SAMPLE_RATE)
    np.testing.assert_allclose([result.probabilities[e] for e in EMOTIONS], _probabilities(predictor, window)[0],
                               atol=1e-4)


@pytest.fixture(scope="module")
def other_workdir(tmp_path_factory, synthetic_data_dir, compilation_cache) -> Path:
    """A second, smaller model on the demo run's data and windows: an ensemble member."""
    from configs import demo
    from emojax import train

    workdir = tmp_path_factory.mktemp("other")
    config = demo.get_config()
    config.update(dict(data_dir=synthetic_data_dir, widths=(8, 8), hidden=16, epochs=2, seed=1))
    train.train_and_evaluate(config, workdir)
    return workdir


def test_an_ensemble_averages_its_members_probabilities(trained_workdir, other_workdir, synthetic_data_dir):
    from emojax import checkpoints, evaluate, input_pipeline, metrics, protocols

    members = [trained_workdir, other_workdir]
    config, *_ = checkpoints.restore(trained_workdir)
    test = protocols.load_splits(config)["test"]
    windows = _first(input_pipeline.evaluation_windows(test, config))  # {"mfcc": (N, n_mfcc, frames)}
    member_probs = [_probabilities(inference.Predictor.from_workdir(w), windows) for w in members]
    assert np.abs(member_probs[0] - member_probs[1]).max() > 0.05  # two different models
    expected = metrics.classification_metrics(test.label, np.mean(member_probs, axis=0))

    result = evaluate.evaluate_checkpoint(members)
    assert result["accuracy"] == pytest.approx(expected["accuracy"])
    assert result["unweighted_accuracy"] == pytest.approx(expected["unweighted_accuracy"])
    np.testing.assert_array_equal(result["confusion_matrix"], expected["confusion_matrix"])
    assert [m["workdir"] for m in result["members"]] == [str(w) for w in members] and "checkpoint_step" not in result
    single = [evaluate.evaluate_checkpoint(w) for w in members]
    assert result["num_parameters"] == sum(json.loads((w / "test_metrics.json").read_text())["num_parameters"]
                                           for w in members)
    assert "members" not in single[0] and single[0]["checkpoint_step"] == result["members"][0]["checkpoint_step"]
    # The same model twice is the model.
    assert evaluate.evaluate_checkpoint([trained_workdir] * 2)["confusion_matrix"] == single[0]["confusion_matrix"]

    ensemble = inference.Predictor.from_workdirs(members)
    clip = next(synthetic.generate("test"))
    got = ensemble.predict(clip.audio, synthetic.SAMPLE_RATE)
    alone = [inference.Predictor.from_workdir(w).predict(clip.audio, synthetic.SAMPLE_RATE) for w in members]
    for name in EMOTIONS:
        assert got.probabilities[name] == pytest.approx(np.mean([a.probabilities[name] for a in alone]), abs=1e-5)
        assert got.windows[0]["probabilities"][name] == pytest.approx(
            np.mean([a.windows[0]["probabilities"][name] for a in alone]), abs=1e-5)


def test_an_ensemble_refuses_runs_of_other_clips_or_windows(trained_workdir, tmp_path, synthetic_data_dir,
                                                           compilation_cache):
    from configs import demo
    from emojax import evaluate, train

    config = demo.get_config()
    config.update(dict(data_dir=synthetic_data_dir, widths=(8, 8), hidden=16, epochs=1, split_seed=7, n_mfcc=20))
    train.train_and_evaluate(config, tmp_path / "other_split")
    for call in (evaluate.evaluate_checkpoint, inference.Predictor.from_workdirs):
        with pytest.raises(train.TrainingError, match=r"other_split cannot be averaged with .*split_seed: 7 there, "
                                                       r"42 in .*n_mfcc: 20 there, 25 in"):
            call([trained_workdir, tmp_path / "other_split"])


def test_eval_cli_evaluates_and_predicts_with_an_ensemble(trained_workdir, other_workdir, synthetic_data_dir,
                                                          compilation_cache, audio_files, tmp_path):
    from emojax import evaluate

    members = [str(trained_workdir), str(other_workdir)]
    flags = [f"--workdir={w}" for w in members]
    done = _run(*flags, "--split=validation", f"--out={tmp_path / 'ensemble'}", data_dir=synthetic_data_dir,
                cache=compilation_cache)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    expected = evaluate.evaluate_checkpoint(members, "validation")
    assert result["accuracy"] == pytest.approx(expected["accuracy"]) and len(result["members"]) == 2
    assert json.loads((tmp_path / "ensemble" / "metrics_validation.json").read_text())["members"] == result["members"]
    assert (tmp_path / "ensemble" / "confusion_matrix_validation.png").is_file()

    missing = _run(*flags, data_dir=synthetic_data_dir, cache=compilation_cache)
    assert missing.returncode != 0 and "--out" in missing.stderr

    predicted = _run(*flags, "--json", "--audio", str(audio_files["stereo_44k.flac"]), data_dir=synthetic_data_dir,
                     cache=compilation_cache)
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    got = json.loads(predicted.stdout.strip().splitlines()[-1])["probabilities"]
    want = inference.Predictor.from_workdirs(members).predict_file(audio_files["stereo_44k.flac"]).probabilities
    for name in EMOTIONS:
        assert got[name] == pytest.approx(want[name], abs=1e-5)


@pytest.fixture(scope="module")
def speaker_workdir(tmp_path_factory, synthetic_data_dir, compilation_cache) -> Path:
    """A small model trained with speaker normalisation (the synthetic splits are speaker-disjoint, so validation
    and test speakers are normalised by their own clips)."""
    from configs import demo
    from emojax import train

    workdir = tmp_path_factory.mktemp("speaker")
    config = demo.get_config()
    config.update(dict(data_dir=synthetic_data_dir, widths=(8, 8), hidden=16, epochs=2, seed=2,
                       speaker_normalization="mean_std"))
    train.train_and_evaluate(config, workdir)
    return workdir


def test_a_speaker_normalized_run_evaluates_and_ensembles_as_it_trained(speaker_workdir, trained_workdir):
    from emojax import checkpoints, evaluate, input_pipeline, metrics, protocols

    trained = json.loads((speaker_workdir / "test_metrics.json").read_text())
    again = evaluate.evaluate_checkpoint(speaker_workdir)
    assert again["confusion_matrix"] == trained["confusion_matrix"]
    # With a member without speaker normalisation: each member sees its own windows.
    config, *_ = checkpoints.restore(trained_workdir)
    splits = protocols.load_splits(config)
    plain = _first(input_pipeline.evaluation_windows(splits["test"], config))
    normalized = _first(input_pipeline.evaluation_windows(
        input_pipeline.speaker_normalize(splits, "mean_std")["test"], config))
    probs = [_probabilities(inference.Predictor.from_workdir(trained_workdir), plain),
             _probabilities(inference.Predictor.from_workdir(speaker_workdir), normalized)]
    expected = metrics.classification_metrics(splits["test"].label, np.mean(probs, axis=0))
    result = evaluate.evaluate_checkpoint([trained_workdir, speaker_workdir])
    np.testing.assert_array_equal(result["confusion_matrix"], expected["confusion_matrix"])
    assert result["accuracy"] == pytest.approx(expected["accuracy"])


def _speaker_clips(count: int) -> list[synthetic.SyntheticClip]:
    """The first ``count`` test clips, all of the first test speaker."""
    clips = [clip for _, clip in zip(range(count), synthetic.generate("test"))]
    assert len({clip.speaker for clip in clips}) == 1
    return clips


def test_predicting_with_speaker_normalization_takes_the_speakers_statistics(speaker_workdir, trained_workdir,
                                                                             synthetic_data_dir):
    """The statistics of a speaker's recordings are those of their stored MFCCs, and a recording is classified on
    the windows of its MFCC normalised by them, as in training."""
    from emojax import input_pipeline, prepared

    predictor = inference.Predictor.from_workdir(speaker_workdir)
    assert predictor.speaker_normalization == "mean_std"
    clips = _speaker_clips(12)
    with pytest.raises(ValueError, match=r"speaker_statistics\(.*--one_speaker"):
        predictor.predict(clips[0].audio, synthetic.SAMPLE_RATE)
    speaker = predictor.speaker_statistics([(clip.audio, synthetic.SAMPLE_RATE) for clip in clips])
    stored = prepared.load_split("synthetic_prosody", "test", synthetic_data_dir, keys=("mfcc", "audio"))
    index = [next(i for i, audio in enumerate(stored["audio"]) if np.array_equal(audio, clip.audio)) for clip in clips]
    expected = input_pipeline.frame_statistics([{"mfcc": stored["mfcc"][i]} for i in index])
    assert set(speaker) == {"mfcc"}
    for got, want in zip(speaker["mfcc"], expected["mfcc"]):
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3)
    c = predictor.config
    window = input_pipeline.clip_windows(input_pipeline.normalize_by_speaker({"mfcc": stored["mfcc"][index[0]]},
                                                                             speaker, "mean_std"),
                                         input_pipeline.evaluation_offsets(c), c.window_frames, c.n_mfcc)
    result = predictor.predict(clips[0].audio, synthetic.SAMPLE_RATE, speaker=speaker)
    np.testing.assert_allclose([result.probabilities[e] for e in EMOTIONS],
                               _probabilities(predictor, window).mean(axis=0), atol=1e-4)
    shifted = {"mfcc": (speaker["mfcc"][0] + 3.0, speaker["mfcc"][1])}
    other = predictor.predict(clips[0].audio, synthetic.SAMPLE_RATE, speaker=shifted)
    assert other.probabilities != result.probabilities
    # A model without speaker normalisation ignores them.
    plain = inference.Predictor.from_workdir(trained_workdir)
    assert plain.speaker_normalization == "none"
    assert (plain.predict(clips[0].audio, synthetic.SAMPLE_RATE, speaker=speaker).probabilities
            == plain.predict(clips[0].audio, synthetic.SAMPLE_RATE).probabilities)


def test_eval_cli_needs_one_speaker_for_a_speaker_normalized_model(speaker_workdir, synthetic_data_dir,
                                                                   compilation_cache, tmp_path):
    files = []
    for k, clip in enumerate(_speaker_clips(6)):
        files.append(str(tmp_path / f"clip{k}.wav"))
        soundfile.write(files[-1], clip.audio, synthetic.SAMPLE_RATE)
    refused = _run(f"--workdir={speaker_workdir}", "--audio", *files, data_dir=synthetic_data_dir,
                   cache=compilation_cache)
    assert refused.returncode != 0 and "--one_speaker" in refused.stderr
    missing = str(tmp_path / "missing.wav")
    done = _run(f"--workdir={speaker_workdir}", "--one_speaker", "--json", "--audio", *files, missing,
                data_dir=synthetic_data_dir, cache=compilation_cache)
    assert done.returncode == 1 and f"error: {missing}" in done.stderr
    got = [json.loads(line) for line in done.stdout.strip().splitlines()[-len(files):]]
    predictor = inference.Predictor.from_workdir(speaker_workdir)
    speaker = predictor.speaker_statistics([features.load_audio(f, features.SAMPLE_RATE) for f in files])
    assert [g["file"] for g in got] == files
    for g, path in zip(got, files):
        want = predictor.predict_file(path, speaker).probabilities
        for name in EMOTIONS:
            assert g["probabilities"][name] == pytest.approx(want[name], abs=1e-5)


@pytest.fixture(scope="module")
def pitch_workdir(tmp_path_factory, synthetic_data_dir, compilation_cache) -> Path:
    """A small model trained with the pitch rows (``config.pitch``)."""
    from configs import demo
    from emojax import train

    workdir = tmp_path_factory.mktemp("pitch")
    config = demo.get_config()
    config.update(dict(data_dir=synthetic_data_dir, widths=(8, 8), hidden=16, epochs=2, seed=3, pitch=True))
    train.train_and_evaluate(config, workdir)
    return workdir


def test_a_pitch_run_predicts_evaluates_and_ensembles_as_it_trained(pitch_workdir, trained_workdir,
                                                                     synthetic_data_dir):
    """Recordings get their pitch rows as the stored clips have them; ensembles give each member its own rows."""
    from emojax import checkpoints, evaluate, input_pipeline, metrics, prepared, protocols

    predictor = inference.Predictor.from_workdir(pitch_workdir)
    stored = prepared.load_split("synthetic_prosody", "test", synthetic_data_dir, keys=("mfcc", "pitch", "audio"))
    clip = next(synthetic.generate("test"))
    (index,) = [i for i, audio in enumerate(stored["audio"]) if np.array_equal(audio, clip.audio)]
    c = predictor.config
    rows = {"mfcc": stored["mfcc"][index], "pitch": stored["pitch"][index]}
    window = input_pipeline.clip_windows(rows, [c.offset_frames], c.window_frames, c.n_mfcc)
    assert window["pitch"].shape == (1, 2, c.window_frames)
    result = predictor.predict(clip.audio, synthetic.SAMPLE_RATE)
    np.testing.assert_allclose([result.probabilities[e] for e in EMOTIONS], _probabilities(predictor, window)[0],
                               atol=1e-4)
    trained = json.loads((pitch_workdir / "test_metrics.json").read_text())
    assert evaluate.evaluate_checkpoint(pitch_workdir)["confusion_matrix"] == trained["confusion_matrix"]
    # With a member that reads no pitch rows (listed first, so the ensemble must still read them).
    config, *_ = checkpoints.restore(trained_workdir)
    config.pitch = True
    test = protocols.load_splits(config)["test"]
    config.pitch = False
    probs = [_probabilities(inference.Predictor.from_workdir(trained_workdir),
                            _first(input_pipeline.evaluation_windows(test, config))),
             _probabilities(predictor, _first(input_pipeline.evaluation_windows(test, c)))]
    expected = metrics.classification_metrics(test.label, np.mean(probs, axis=0))
    evaluated = evaluate.evaluate_checkpoint([trained_workdir, pitch_workdir])
    np.testing.assert_array_equal(evaluated["confusion_matrix"], expected["confusion_matrix"])
    ensemble = inference.Predictor.from_workdirs([trained_workdir, pitch_workdir]).predict(clip.audio,
                                                                                          synthetic.SAMPLE_RATE)
    plain = inference.Predictor.from_workdir(trained_workdir).predict(clip.audio, synthetic.SAMPLE_RATE)
    for name in EMOTIONS:
        assert ensemble.probabilities[name] == pytest.approx(
            (plain.probabilities[name] + result.probabilities[name]) / 2, abs=1e-5)


def test_level_normalization_makes_predictions_independent_of_the_recordings_gain(trained_workdir):
    """With ``utterance_normalization="level"`` a recording 30, 20 or 10 dB quieter, or peak-normalised, gets the same
    probabilities (a short clip and a long recording's windows); without it, the gain changes them."""
    predictor = inference.Predictor.from_workdir(trained_workdir)
    clip = next(synthetic.generate("test")).audio.astype(np.float32) / 32768
    long = np.tile(clip, 5)  # longer than the clip's evaluation span: windows of their own samples
    gains = [10 ** (-db / 20) for db in (30, 20, 10)] + [1 / np.abs(clip).max()]

    def probabilities(audio: np.ndarray) -> np.ndarray:
        result = predictor.predict(audio, synthetic.SAMPLE_RATE)
        return np.array([[w["probabilities"][e] for e in EMOTIONS] for w in result.windows])

    assert not np.allclose(probabilities(clip * gains[0]), probabilities(clip), atol=1e-3)
    predictor.config.utterance_normalization = "level"
    for audio in (clip, long):
        reference = probabilities(audio)
        for gain in gains:
            np.testing.assert_allclose(probabilities(audio * gain), reference, atol=1e-3)


def test_an_exported_model_loads_with_its_config_labels_and_checksum(trained_workdir, tmp_path):
    import jax

    from emojax import checkpoints, pretrained

    weights = pretrained.export(trained_workdir, tmp_path, name="m", command="python train.py ...")
    config, variables, normalization = pretrained.load(tmp_path, "m")
    saved_config, state, saved_normalization, step = checkpoints.restore(trained_workdir)
    assert config.data_dir is None and saved_config.data_dir  # the training machine's path is not shipped
    assert config.to_dict() == {**saved_config.to_dict(), "data_dir": None}
    saved = {"params": state.params, "batch_stats": state.batch_stats}
    for u, v in zip(jax.tree.leaves(variables), jax.tree.leaves(saved), strict=True):
        np.testing.assert_array_equal(u, v)
    for name, (mean, std) in saved_normalization.statistics.items():
        np.testing.assert_array_equal(normalization.statistics[name][0], mean)
    meta = json.loads(weights.with_suffix(".json").read_text())
    assert meta["labels"] == list(EMOTIONS) and meta["checkpoint_step"] == step and meta["sha256"] == pretrained.sha256(
        weights)
    again = pretrained.export(trained_workdir, tmp_path / "again", name="m")
    assert pretrained.sha256(again) == meta["sha256"]  # the same weights, the same bytes
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    with pytest.raises(ValueError, match="SHA-256 .* damaged or was replaced"):
        pretrained.load(tmp_path, "m")
    with pytest.raises(FileNotFoundError, match="reinstall emojax"):
        pretrained.load(tmp_path / "missing", "m")


def test_the_shipped_model_needs_nothing_but_the_recording_and_ignores_its_gain():
    from emojax import pretrained

    predictor = inference.Predictor.pretrained()
    meta = json.loads((pretrained.WEIGHTS_DIR / f"{pretrained.NAME}.json").read_text())
    assert predictor.speaker_normalization == "none" and predictor.config.utterance_normalization == "level"
    assert meta["labels"] == list(EMOTIONS) and meta["training_command"].startswith("python train.py")
    assert (pretrained.WEIGHTS_DIR / f"{pretrained.NAME}.msgpack").stat().st_size < 5 * 2**20
    clips = [c.audio.astype(np.float32) / 32768 for _, c in zip(range(6), synthetic.generate("test"))]
    clips.append(np.concatenate(clips[:4]))  # a longer recording: windows
    peak_normalised = [c / np.abs(c).max() * (1 - 2**-15) for c in clips]  # full scale without clipping
    reference = np.array([predictor.predict(c, synthetic.SAMPLE_RATE).probabilities[e] for c in clips for e in
                          EMOTIONS]).reshape(len(clips), -1)
    for db in (-30, -20, -10, None):
        scaled = peak_normalised if db is None else [c * 10 ** (db / 20) for c in clips]
        got = np.array([[predictor.predict(c, synthetic.SAMPLE_RATE).probabilities[e] for e in EMOTIONS]
                        for c in scaled])
        np.testing.assert_allclose(got, reference, atol=1e-3, err_msg=f"gain {db} dB")
        assert (got.argmax(1) == reference.argmax(1)).mean() >= 0.95
