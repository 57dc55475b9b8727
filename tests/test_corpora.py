"""emojax.corpora, emojax.recordings and emojax.prepared: file-name parsers and layouts, discovery (zip), bad input,
determinism, file formats, reading without the build extra, and builds from the real corpora
(``corpora_dir``/``samples_dir``; skipped when absent).

The core tests build from generated tones; the builder tests on each corpus's dummy data live in
``datasets/<name>/<name>_dataset_builder_test.py``.
"""

from __future__ import annotations

import collections
import json
import logging
import logging.handlers
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np
import pytest
import soundfile

from emojax import beam, build_report, corpora, features, labels, prepared, recordings
from emojax.labels import EMOTIONS

REPO = Path(__file__).resolve().parents[1]
RAVDESS_DUMMY = REPO / "datasets" / "ravdess" / "dummy_data"
ALL_KEYS = ("audio",) + prepared.DEFAULT_KEYS


def _tone(path: Path, seconds: float = 0.2, rate: int = 8000) -> Path:
    """Writes a short 16-bit WAV tone (not a recording) at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    soundfile.write(path, 0.3 * np.sin(2 * np.pi * 220 * t), rate, subtype="PCM_16", format="WAV")
    return path


def _builder(name: str) -> type[corpora.CorpusBuilder]:
    return corpora.builder_class(name)


def _load_all(name: str, data_dir: Path, keys=ALL_KEYS) -> dict[str, dict]:
    return {split: prepared.load_split(name, split, str(data_dir), keys) for split in prepared.SPLITS}


def _metadata(name: str, data_dir: Path) -> dict:
    path = prepared.dataset_dir(name, str(data_dir)) / "metadata.json"
    return json.loads(path.read_text())["build"]


# ----------------------------------------------------------------------------------------------------------------
# File names and layouts (no build)
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, path, expected", [
    ("ravdess", "Audio_Speech_Actors_01-24/Actor_07/03-01-05-02-01-02-07.wav",
     ("03-01-05-02-01-02-07", "07", "male", "anger", "05", "strong", "01")),
    ("ravdess", "Actor_02/03-01-02-01-02-01-02.ogg",
     ("03-01-02-01-02-01-02", "02", "female", "calm", "02", "normal", "02")),
    ("savee", "AudioData/DC/a01.wav", ("DC_a01", "DC", "male", "anger", "a", "", "a01")),
    ("savee", "ALL/DC_a01.wav", ("DC_a01", "DC", "male", "anger", "a", "", "a01")),
    ("savee", "savee/KL/su15.ogg", ("KL_su15", "KL", "male", "surprise", "su", "", "su15")),
    ("savee", "JE/sa03.wav", ("JE_sa03", "JE", "male", "sadness", "sa", "", "sa03")),
    ("crema_d", "AudioWAV/1001_DFA_ANG_XX.wav", ("1001_DFA_ANG_XX", "1001", "male", "anger", "ANG", "", "DFA")),
    ("crema_d", "CremaValidation/1018_IEO_DIS_LO.wav",
     ("1018_IEO_DIS_LO", "1018", "female", "disgust", "DIS", "low", "IEO")),
    ("crema_d", "AudioWAV/1040_ITH_SAD_X.ogg", ("1040_ITH_SAD_X", "1040", "male", "sadness", "SAD", "", "ITH")),
    ("tess", "TESS Toronto emotional speech set data/OAF_angry/OAF_back_angry.wav",
     ("OAF_back_angry", "OAF", "female", "anger", "angry", "", "back")),
    ("tess", "tess/OAF_Pleasant_surprise/OAF_wag_ps.wav", ("OAF_wag_ps", "OAF", "female", "surprise", "ps", "", "wag")),
    ("tess", "YAF_pleasant_surprised/YAF_bar_ps.ogg", ("YAF_bar_ps", "YAF", "female", "surprise", "ps", "", "bar")),
    ("tess", "tess/OAF_Fear/OAF_food_fear.wav", ("OAF_food_fear", "OAF", "female", "fear", "fear", "", "food")),
    ("tess", "OAF_neutral/OA_bite_neutral.ogg",
     ("OAF_bite_neutral", "OAF", "female", "neutral", "neutral", "", "bite")),
])
def test_parse_layouts(name: str, path: str, expected: tuple) -> None:
    r = _builder(name).parse(PurePosixPath(path))
    assert (r.key, r.speaker, r.gender, r.emotion, r.original_label, r.intensity, r.text) == expected


@pytest.mark.parametrize("name, path, reason", [
    ("ravdess", "Actor_01/03-02-05-02-01-02-01.wav", "speech"),  # song
    ("ravdess", "Actor_25/03-01-05-02-01-02-25.wav", "actor 25"),
    ("ravdess", "Actor_01/03-01-09-01-01-01-01.wav", "emotion 09"),
    ("ravdess", "Actor_01/recording.wav", "RAVDESS name"),
    ("savee", "AudioData/XY/a01.wav", "speaker 'XY'"),
    ("savee", "AudioData/DC/b01.wav", "SAVEE name"),
    ("crema_d", "AudioWAV/1092_DFA_ANG_XX.wav", "actor 1092"),
    ("crema_d", "AudioWAV/1001_DFA_CAL_XX.wav", "emotion CAL"),
    ("tess", "OAF_angry/ZAF_back_angry.wav", "speaker 'ZAF'"),
    ("tess", "OAF_angry/OAF_back_bored.wav", "emotion 'bored'"),
])
def test_parse_rejects(name: str, path: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        _builder(name).parse(PurePosixPath(path))


def test_splits_are_speaker_disjoint_and_balanced() -> None:
    ravdess = _builder("ravdess")
    test_actors = [a for a in range(1, 25) if ravdess.split_of(ravdess.parse(
        PurePosixPath(f"03-01-01-01-01-01-{a:02d}.wav"))) == "test"]
    assert len(test_actors) >= 4 and sum(a % 2 for a in test_actors) == len(test_actors) / 2
    crema = _builder("crema_d")
    genders = collections.defaultdict(collections.Counter)
    for actor in range(1001, 1092):
        r = crema.parse(PurePosixPath(f"{actor}_DFA_ANG_XX.wav"))
        genders[crema.split_of(r)][r.gender] += 1
    assert genders["validation"]["male"] == genders["validation"]["female"] == 5
    assert genders["test"]["male"] == genders["test"]["female"] == 5
    assert sum(genders["train"].values()) == 71
    tess = _builder("tess")  # two speakers: neither may be tested beside the other in training
    assert {tess.split_of(tess.parse(PurePosixPath(f"{s}_{word}_{e}.wav"))) for s in ("OAF", "YAF")
            for word in ("back", "bar", "book", "youth") for e in ("angry", "ps", "sad")} == {"train"}
    savee = _builder("savee")
    assert {s: savee.split_of(savee.parse(PurePosixPath(f"{s}/a01.wav"))) for s in ("DC", "JE", "JK", "KL")} == {
        "DC": "train", "JE": "train", "JK": "validation", "KL": "test"}


def test_find_audio_files_walks_folders_and_zips(tmp_path: Path) -> None:
    _tone(tmp_path / "b" / "x.wav")
    _tone(tmp_path / "a" / "y.OGG")
    (tmp_path / "a" / "README.txt").write_text("notes")
    (tmp_path / "a" / ".DS_Store").write_bytes(b"\0")
    with zipfile.ZipFile(tmp_path / "c.zip", "w") as z:
        z.write(tmp_path / "b" / "x.wav", "inner/z.wav")
        z.writestr("__MACOSX/inner/._z.wav", b"\0\1")
        z.writestr("inner/list.csv", "a,b")
    (tmp_path / "d.zip").write_bytes(b"PK\x03\x04 the first bytes of a download that stopped")
    files, ignored, corrupt = recordings.find_audio_files(tmp_path)
    assert [f.name for f in files] == ["a/y.OGG", "b/x.wav", "c.zip/inner/z.wav"]
    assert sorted(ignored) == ["a/.DS_Store", "a/README.txt", "c.zip/__MACOSX/inner/._z.wav", "c.zip/inner/list.csv"]
    assert [name for name, _ in corrupt] == ["d.zip"] and "not a readable .zip archive" in corrupt[0][1]
    member = files[2]
    assert member.member == "inner/z.wav" and member.path == tmp_path / "c.zip"
    np.testing.assert_array_equal(recordings.read_recording(member), recordings.read_recording(files[1]))


def test_kaggle_tess_holds_the_corpus_twice_and_is_planned_once(tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    dummy = REPO / "datasets" / "tess" / "dummy_data" / "TESS Toronto emotional speech set data"
    shutil.copytree(dummy, tmp_path / dummy.name)
    shutil.copytree(dummy, tmp_path / dummy.name.lower() / dummy.name)  # the Kaggle download's second copy
    report = build_report.BuildReport()
    with caplog.at_level(logging.WARNING):
        plan = _builder("tess").plan(tmp_path, report)
    kept = sorted(f.name for items in plan.values() for f, _ in items)
    assert len(kept) == 4 and all(name.startswith("TESS Toronto") for name in kept)
    assert [reason for _, reason, _ in report.skipped] == ["duplicate"] * 4
    assert all(f"skipped tess toronto emotional speech set data/{name}" in caplog.text for name in kept)


# ----------------------------------------------------------------------------------------------------------------
# Builds from generated audio
# ----------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ravdess_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """RAVDESS built from its dummy data (the data dir)."""
    data_dir = tmp_path_factory.mktemp("ravdess_dir")
    corpora.build("ravdess", manual_dir=str(RAVDESS_DUMMY), data_dir=str(data_dir))
    return data_dir


def test_build_twice_gives_identical_data(ravdess_build: Path, tmp_path: Path) -> None:
    corpora.build("ravdess", manual_dir=str(RAVDESS_DUMMY), data_dir=str(tmp_path))
    first, second = _load_all("ravdess", ravdess_build), _load_all("ravdess", tmp_path)
    for split in prepared.SPLITS:
        for key in ALL_KEYS:
            a, b = first[split][key], second[split][key]
            if key in ("audio", "mfcc", "pitch"):
                assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b)), (split, key)
            else:
                np.testing.assert_array_equal(a, b)


def test_mfcc_and_pitch_are_the_front_end_of_the_stored_audio(ravdess_build: Path) -> None:
    data = prepared.load_split("ravdess", "train", str(ravdess_build), keys=("audio", "mfcc", "pitch"))
    for audio, mfcc, pitch in zip(data["audio"], data["mfcc"], data["pitch"]):
        np.testing.assert_allclose(mfcc, features.clip_mfccs([audio])[0], rtol=1e-5, atol=1e-3)
        np.testing.assert_array_equal(pitch, features.clip_pitch([audio])[0])
        assert pitch.shape == (features.PITCH_ROWS, mfcc.shape[1])


def test_zip_archive_builds_like_its_folder(ravdess_build: Path, tmp_path: Path) -> None:
    manual = tmp_path / "manual"
    manual.mkdir()
    with zipfile.ZipFile(manual / "Audio_Speech_Actors_01-24.zip", "w") as archive:
        for path in sorted(RAVDESS_DUMMY.rglob("*.wav")):
            archive.write(path, path.relative_to(RAVDESS_DUMMY).as_posix())
    corpora.build("ravdess", manual_dir=str(manual), data_dir=str(tmp_path / "data"))
    zipped, folder = _load_all("ravdess", tmp_path / "data"), _load_all("ravdess", ravdess_build)
    for split in prepared.SPLITS:
        assert [f"Audio_Speech_Actors_01-24.zip/{f}" for f in folder[split]["file"]] == list(zipped[split]["file"])
        np.testing.assert_array_equal(zipped[split]["label"], folder[split]["label"])
        assert all(np.array_equal(x, y) for x, y in zip(zipped[split]["audio"], folder[split]["audio"]))


def test_tfds_cli_builds_tfrecord_on_beam_that_load_split_reads(ravdess_build: Path, tmp_path: Path) -> None:
    tfds_cli = "import sys; from tensorflow_datasets.scripts.cli.main import launch_cli; sys.exit(launch_cli())"
    command = [sys.executable, "-c", tfds_cli, "build", str(REPO / "datasets" / "ravdess"), "--manual_dir",
               str(RAVDESS_DUMMY), "--data_dir", str(tmp_path), "--file_format", "tfrecord",
               "--beam_pipeline_options=runner=DirectRunner"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "emojax_ravdess (on Apache Beam): found 4, built 4, skipped 0" in result.stdout
    assert list(prepared.dataset_dir("ravdess", str(tmp_path)).glob("*.tfrecord-*"))
    tfrecord, array_record = _load_all("ravdess", tmp_path), _load_all("ravdess", ravdess_build)
    for split in prepared.SPLITS:
        order = np.argsort(tfrecord[split]["file"]), np.argsort(array_record[split]["file"])
        np.testing.assert_array_equal(tfrecord[split]["file"][order[0]], array_record[split]["file"][order[1]])
        for a, b in zip(order[0], order[1]):
            np.testing.assert_array_equal(tfrecord[split]["mfcc"][a], array_record[split]["mfcc"][b])
            np.testing.assert_array_equal(tfrecord[split]["pitch"][a], array_record[split]["pitch"][b])
            np.testing.assert_array_equal(tfrecord[split]["audio"][a], array_record[split]["audio"][b])


GOOD = ["Actor_01/03-01-05-02-01-02-01.wav", "Actor_19/03-01-08-01-01-01-19.wav", "Actor_22/03-01-04-02-02-02-22.wav"]


@pytest.fixture(scope="module")
def bad_manual_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A RAVDESS manual dir with 3 good recordings (``GOOD``) and every kind of bad input."""
    manual = tmp_path_factory.mktemp("bad_manual")
    for name in GOOD:
        _tone(manual / name)
    (manual / "Actor_01/03-01-06-01-01-01-01.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(64)))
    (manual / "Actor_01/03-01-07-01-01-01-01.wav").write_bytes(b"")
    soundfile.write(manual / "Actor_01/03-01-04-01-01-01-01.wav", np.zeros(0), 16_000, format="WAV")  # header only
    (manual / "Actor_01/03-01-03-01-01-01-01.wav").write_text("this is not audio\n")
    _tone(manual / "Actor_01/take_2_final.wav")
    (manual / "copy" / GOOD[0]).parent.mkdir(parents=True)
    shutil.copy(manual / GOOD[0], manual / "copy" / GOOD[0])  # a second copy of the same recording
    (manual / "README.txt").write_text("RAVDESS")
    (manual / "Actor_05.zip").write_bytes(b"PK\x03\x04 the first bytes of a download that stopped")
    with zipfile.ZipFile(manual / "Actor_02.zip", "w") as archive:  # a member whose bytes changed (bad CRC)
        archive.write(manual / GOOD[0], "Actor_02/03-01-02-01-01-01-02.wav")
    data = bytearray((manual / "Actor_02.zip").read_bytes())
    data[100] ^= 0xFF  # inside the member's audio data
    (manual / "Actor_02.zip").write_bytes(bytes(data))
    return manual


@pytest.fixture(scope="module")
def bad_files_build(bad_manual_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """RAVDESS built from ``bad_manual_dir`` (no Beam): the data dir and the warnings logged."""
    data_dir = tmp_path_factory.mktemp("bad_data")
    handler = logging.handlers.BufferingHandler(10_000)
    logging.getLogger().addHandler(handler)  # absl logs through the root logger
    try:
        corpora.build("ravdess", manual_dir=str(bad_manual_dir), data_dir=str(data_dir))
    finally:
        logging.getLogger().removeHandler(handler)
    return data_dir, [r.getMessage() for r in handler.buffer if r.levelno == logging.WARNING]


def test_bad_files_are_skipped_with_a_warning_and_reported(bad_files_build: tuple[Path, list[str]]) -> None:
    data_dir, warnings = bad_files_build
    report = _metadata("ravdess", data_dir)
    assert report["summary"] == ("found 11, built 3, skipped 8 (2 corrupt zip archive, 1 duplicate, 2 empty, "
                                 "1 misnamed, 2 undecodable); ignored 1 non-audio file(s), e.g. README.txt")
    reasons = {item["file"]: item["reason"] for item in report["skipped"]}
    assert reasons == {
        "Actor_01/03-01-06-01-01-01-01.wav": "undecodable",
        "Actor_01/03-01-07-01-01-01-01.wav": "empty",
        "Actor_01/03-01-04-01-01-01-01.wav": "empty",
        "Actor_01/03-01-03-01-01-01-01.wav": "undecodable",
        "Actor_01/take_2_final.wav": "misnamed",
        f"copy/{GOOD[0]}": "duplicate",
        "Actor_05.zip": "corrupt zip archive",
        "Actor_02.zip/Actor_02/03-01-02-01-01-01-02.wav": "corrupt zip archive",
    }
    for file in reasons:
        assert any(file in warning for warning in warnings), file
    built = _load_all("ravdess", data_dir)
    assert sorted(f for split in built.values() for f in split["file"]) == sorted(GOOD)
    assert report["counts"] == {"train": {"anger": 1}, "validation": {"surprise": 1}, "test": {"sadness": 1}}


def test_beam_build_with_worker_processes_equals_the_plain_build(bad_manual_dir: Path,
                                                                 bad_files_build: tuple[Path, list[str]],
                                                                 tmp_path: Path) -> None:
    """The same examples (bytes), order and build report, with the files decoded in 2 Beam worker processes."""
    corpora.build("ravdess", manual_dir=str(bad_manual_dir), data_dir=str(tmp_path),
                  beam_pipeline_options="direct_num_workers=2,direct_running_mode=multi_processing")
    plain_dir = bad_files_build[0]
    assert _metadata("ravdess", tmp_path) == _metadata("ravdess", plain_dir)
    beam, plain = _load_all("ravdess", tmp_path), _load_all("ravdess", plain_dir)
    for split in prepared.SPLITS:
        for key in ALL_KEYS:
            a, b = beam[split][key], plain[split][key]
            if key in ("audio", "mfcc", "pitch"):
                assert len(a) == len(b) and all(x.tobytes() == y.tobytes() for x, y in zip(a, b)), (split, key)
            else:
                np.testing.assert_array_equal(a, b)
    # The workers' records are gone.
    assert not list(prepared.dataset_dir("ravdess", str(tmp_path)).glob("*report*"))


def test_beam_build_fails_when_the_runner_loses_examples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Examples the workers built but the runner did not write fail the build instead of going missing."""
    worker_step = beam._beam_batch_examples

    def lossy(batch: tuple, corpus: str) -> list:  # a runner that drops an example of batches of 2 or more
        outputs = list(worker_step(batch, corpus))  # the examples, then the report record
        return outputs[1:] if len(outputs) > 2 else outputs

    monkeypatch.setattr(beam, "_beam_batch_examples", lossy)
    with pytest.raises(RuntimeError, match=r"(?s)built \{'train': 2, .* wrote \{'train': 1, .*lost examples"):
        corpora.build("ravdess", manual_dir=str(RAVDESS_DUMMY), data_dir=str(tmp_path),
                      beam_pipeline_options="runner=DirectRunner")
    assert not prepared.is_prepared("ravdess", str(tmp_path))


def test_a_split_of_only_undecodable_files_fails_clearly(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _tone(tmp_path / "manual" / "Actor_01" / "03-01-05-02-01-02-01.wav")
    (tmp_path / "manual" / "Actor_22").mkdir()
    (tmp_path / "manual" / "Actor_22" / "03-01-04-02-02-02-22.wav").write_bytes(b"RIFF, but nothing else")
    with pytest.raises(ValueError, match=r"none of the 1 recording\(s\) of the test split.*Actor_22/03-01-04"):
        corpora.build("ravdess", manual_dir=str(tmp_path / "manual"), data_dir=str(tmp_path / "data"))
    caplog.clear()
    with caplog.at_level(logging.WARNING), pytest.raises(ValueError, match="0 for split test"):  # TFDS's writer
        corpora.build("ravdess", manual_dir=str(tmp_path / "manual"), data_dir=str(tmp_path / "beam"),
                      beam_pipeline_options="runner=DirectRunner")
    assert "skipped Actor_22/03-01-04-02-02-02-22.wav (undecodable)" in caplog.text  # named by the Beam worker


def test_empty_or_missing_manual_dir_fails_with_instructions(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for manual in (tmp_path / "empty", tmp_path / "missing"):
        with pytest.raises(AssertionError, match=r"(?s)does not exist or is empty.*zenodo.org/records/1188976"):
            corpora.build("ravdess", manual_dir=str(manual), data_dir=str(tmp_path / "data"))


def test_wrong_manual_dir_fails_before_decoding(tmp_path: Path) -> None:
    _tone(tmp_path / "manual" / "AudioData" / "DC" / "a01.wav")  # SAVEE given to the RAVDESS builder
    with pytest.raises(ValueError, match=r"(?s)no ravdess recordings.*1 audio file.*Audio_Speech_Actors_01-24"):
        corpora.build("ravdess", manual_dir=str(tmp_path / "manual"), data_dir=str(tmp_path / "data"))
    assert not prepared.is_prepared("ravdess", str(tmp_path / "data"))


def test_load_split_errors_say_what_to_do(ravdess_build: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="tfds build datasets/savee"):
        prepared.load_split("savee", "train", str(tmp_path))
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        prepared.load_split("ravdess", "dev", str(ravdess_build))
    with pytest.raises(ValueError, match="unknown feature"):
        prepared.load_split("ravdess", "train", str(ravdess_build), keys=("mfcc", "energy"))
    with pytest.raises(ValueError, match="unknown emojax dataset 'iemocap'"):
        prepared.load_split("iemocap", "train", str(ravdess_build))


def test_names_of_a_corpus_of_ones_own(ravdess_build: Path, tmp_path: Path) -> None:
    """``"custom/<name>"`` works wherever a dataset name does; an unbuilt one says which command builds it."""
    assert prepared.dataset_name("custom/mycorpus") == "emojax_custom/mycorpus"
    assert prepared.dataset_dir("custom/mycorpus", "/d") == Path("/d/emojax_custom/mycorpus/1.3.0")
    assert prepared.dataset_dir("tess", "/d") == Path("/d/emojax_tess/1.3.0")
    assert [prepared.corpus_name(n) for n in ("custom/my-corpus.v2", "tess")] == ["my-corpus.v2", "tess"]
    assert not prepared.is_prepared("custom/mycorpus", str(tmp_path))
    config = """'{"name": "mycorpus"}'"""
    command = f"`tfds build datasets/custom --manual_dir DIR --config {config} --data_dir {tmp_path}`"
    for read in (lambda: prepared.load_split("custom/mycorpus", "train", str(tmp_path)),
                 lambda: prepared.label_names("custom/mycorpus", str(tmp_path))):
        with pytest.raises(FileNotFoundError, match=re.escape(f"emojax_custom/mycorpus is not built in {tmp_path}: run "
                                                              f"{command}, with the config fields")):
            read()
    assert prepared.build_command("savee") == "tfds build datasets/savee --manual_dir DIR"
    assert prepared.label_names("ravdess", str(ravdess_build)) == EMOTIONS
    with pytest.raises(ValueError, match="'savee' is the name of a built-in emojax dataset"):
        prepared.dataset_name("custom/savee")
    with pytest.raises(ValueError, match="name the corpus built with datasets/custom: 'custom/<name>'"):
        prepared.is_prepared("custom", str(tmp_path))
    with pytest.raises(ValueError, match=r"unknown emojax dataset 'mycorpus'; .* or 'custom/<name>'"):
        prepared.dataset_name("mycorpus")
    with pytest.raises(ValueError, match="builder_config is for a corpus of yours"):
        corpora.build("ravdess", manual_dir=str(RAVDESS_DUMMY), data_dir=str(tmp_path), builder_config={})


@pytest.mark.parametrize("raw, emotion", [
    ("angry", "anger"), ("Anger", "anger"), ("ANG", "anger"), ("happy", "happiness"), ("HAP", "happiness"),
    ("Joy", "happiness"), ("sadness", "sadness"), ("SAD", "sadness"), ("fearful", "fear"), ("FEA", "fear"),
    ("scared", "fear"), ("disgusted", "disgust"), ("DIS", "disgust"), ("surprised", "surprise"), ("ps", "surprise"),
    ("Pleasant Surprise", "surprise"), ("pleasant-surprised", "surprise"), ("NEU", "neutral"), ("Calm", "calm"),
    ("CAL", "calm"), ("mad", None), ("a", None), ("W", None), ("bored", None), ("excited", None), ("", None),
])
def test_canonical_spellings_of_the_emotions(raw: str, emotion: str | None) -> None:
    assert labels.canonical(raw) == emotion


def test_canonical_agrees_with_the_corpora_codes() -> None:
    """Every emotion spells itself, and the corpora's word codes (CREMA-D, TESS) spell their emotion; single-letter
    and numeric codes (SAVEE, RAVDESS) are not guessed."""
    assert [labels.canonical(e) for e in EMOTIONS] == list(EMOTIONS)
    for codes in (labels.CREMA_D, labels.TESS):
        assert {code: labels.canonical(code) for code in codes} == codes
    assert {labels.canonical(code) for code in [*labels.RAVDESS, "a", "d", "f", "h", "n"]} == {None}


def test_default_data_dir_follows_tfds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TFDS_DATA_DIR", "/some/where")
    assert prepared.default_data_dir() == "/some/where"
    monkeypatch.delenv("TFDS_DATA_DIR")
    assert prepared.default_data_dir() == os.path.expanduser("~/tensorflow_datasets")


BUILD_EXTRA_PACKAGES = ("tensorflow", "apache_beam", "mlcroissant")


def _python_without_build_extra(code: str, *args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """Runs ``code`` where the build extra is not installed: a copy of this environment's packages (links) without
    TensorFlow, Apache Beam and mlcroissant (tensorflow-datasets and tensorflow-metadata stay), and the checkout."""
    site = tmp_path / "site-packages"
    site.mkdir()
    for root in {Path(p) for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()}:
        for entry in root.iterdir():
            kept = entry.name.startswith(("tensorflow_datasets", "tensorflow_metadata"))
            if (kept or not entry.name.startswith(BUILD_EXTRA_PACKAGES)) and not (site / entry.name).exists():
                (site / entry.name).symlink_to(entry)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(site)])}
    return subprocess.run([sys.executable, "-S", "-c", code, *args], capture_output=True, text=True, timeout=120,
                          env=env)


def test_reading_needs_no_build_extra(ravdess_build: Path, tmp_path: Path) -> None:
    """prepared reads an ArrayRecord build without TensorFlow, Apache Beam or mlcroissant installed."""
    code = """import importlib.util, sys
from emojax import prepared
data = prepared.load_split("ravdess", "train", sys.argv[1])
print(len(data["label"]), data["mfcc"][0].shape[0], [importlib.util.find_spec(m) for m in sys.argv[2:]])
"""
    result = _python_without_build_extra(code, str(ravdess_build), *BUILD_EXTRA_PACKAGES, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines()[-1] == "2 40 [None, None, None]"


def test_build_without_the_build_extra_says_how_to_install_it(tmp_path: Path) -> None:
    code = """import sys
from emojax import corpora
try:
    corpora.build("synthetic_prosody", data_dir=sys.argv[1])
except corpora.MissingBuildExtra as e:
    print(e)
"""
    result = _python_without_build_extra(code, str(tmp_path / "data"), tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines()[-1] == ("building emojax datasets needs the build extra (tensorflow, "
                                              'apache_beam, mlcroissant missing): pip install "emojax[build]"')
    assert not prepared.is_prepared("synthetic_prosody", str(tmp_path / "data"))


# ----------------------------------------------------------------------------------------------------------------
# The real corpora
# ----------------------------------------------------------------------------------------------------------------

EXPECTED_COUNTS = {"ravdess": 1440, "savee": 480, "crema_d": 7442, "tess": 2800}


@pytest.mark.corpora
def test_full_corpora_parse_completely(corpora_dir: Path) -> None:
    """Every file of the four corpora is named as its parser expects: 12,162 recordings, calm exactly 192."""
    emotions = collections.Counter()
    for name in prepared.CORPORA:
        report = build_report.BuildReport()
        plan = _builder(name).plan(corpora_dir / name, report)
        assert report.skipped == [] and report.found == EXPECTED_COUNTS[name], report.summary()
        emotions.update(r.emotion for items in plan.values() for _, r in items)
        speakers = {split: {r.speaker for _, r in items} for split, items in plan.items()}
        if name == "tess":  # two speakers: split by word instead
            words = {split: {r.text for _, r in items} for split, items in plan.items()}
            assert not (words["train"] & words["validation"] or words["train"] & words["test"]
                        or words["validation"] & words["test"])
        else:
            assert not (speakers["train"] & speakers["validation"] or speakers["train"] & speakers["test"]
                        or speakers["validation"] & speakers["test"])
    assert sum(emotions.values()) == 12_162 and emotions["calm"] == 192


@pytest.fixture(scope="module")
def corpora_subset(corpora_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The four corpora built from a subset of ``corpora_dir``: per split, the first 8 files of each corpus."""
    manual_root = tmp_path_factory.mktemp("subset_manual")
    data_dir = tmp_path_factory.mktemp("subset_data")
    chosen: dict[str, dict[str, list[str]]] = {}
    for name in prepared.CORPORA:
        builder = _builder(name)
        plan = builder.plan(corpora_dir / name, build_report.BuildReport())
        chosen[name] = {split: [f.name for f, _ in items[:8]] for split, items in plan.items()}
        for names in chosen[name].values():
            for rel in names:
                link = manual_root / name / rel
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(corpora_dir / name / rel)
        corpora.build(name, manual_dir=str(manual_root / name), data_dir=str(data_dir))
    return data_dir, chosen


@pytest.mark.corpora
def test_subset_build_of_the_real_corpora(corpora_subset: tuple[Path, dict], corpora_dir: Path) -> None:
    data_dir, chosen = corpora_subset
    maps = {"ravdess": labels.RAVDESS, "savee": labels.SAVEE, "crema_d": labels.CREMA_D, "tess": labels.TESS}
    for name in prepared.CORPORA:
        data = _load_all(name, data_dir)
        for split, d in data.items():
            assert sorted(d["file"]) == sorted(chosen[name][split])
            assert set(d["corpus"]) == ({name} if chosen[name][split] else set())  # TESS: training data only
            assert all(s.startswith(f"{name}/") for s in d["speaker"])
            for file, label, original, mfcc in zip(d["file"], d["label"], d["original_label"], d["mfcc"]):
                assert maps[name][original] == EMOTIONS[label], file
                assert mfcc.shape[0] == 40 and np.isfinite(mfcc).all(), file
        held_out = set(data["validation"]["speaker"]) | set(data["test"]["speaker"])
        assert not set(data["train"]["speaker"]) & held_out
        audio = prepared.load_split(name, "test" if chosen[name]["test"] else "train", str(data_dir),
                                    keys=("audio", "file"))
        for samples, file in zip(audio["audio"], audio["file"]):
            assert len(samples) == soundfile.info(str(corpora_dir / name / file)).frames, file
    ravdess = prepared.load_split("ravdess", "train", str(data_dir))
    assert all(g == ("male" if int(s[-2:]) % 2 else "female") for s, g in zip(ravdess["speaker"], ravdess["gender"]))


@pytest.mark.corpora
def test_samples_with_quirks_decode_and_build(samples_dir: Path, tmp_path: Path) -> None:
    """The untouched originals: AIFF inside .wav, 96 kHz, 24,414 Hz, stereo 48 kHz, CREMA-D split folders."""
    for name in prepared.CORPORA:
        report = build_report.BuildReport()
        plan = _builder(name).plan(samples_dir / name, report)
        assert report.skipped == [] and report.found > 0, report.summary()
        for file, _ in (item for items in plan.values() for item in items):
            info = soundfile.info(str(file.path))
            audio = recordings.read_recording(file)
            assert audio.dtype == np.int16 and audio.ndim == 1
            assert abs(len(audio) - info.frames * features.SAMPLE_RATE / info.samplerate) <= 1, file.name
    corpora.build("tess", manual_dir=str(samples_dir / "tess"), data_dir=str(tmp_path))
    splits = [s for s, counts in _metadata("tess", tmp_path)["counts"].items() if counts]  # words: not every split
    data = [prepared.load_split("tess", split, str(tmp_path), ("label", "original_label", "file")) for split in splits]
    files = {f: (EMOTIONS[l], o) for d in data for f, l, o in zip(d["file"], d["label"], d["original_label"])}
    assert files["TESS Toronto emotional speech set data/OAF_Pleasant_surprise/OAF_wag_ps.wav"] == ("surprise", "ps")
    assert files["TESS Toronto emotional speech set data/YAF_angry/YAF_germ_angry.wav"] == ("anger", "angry")
    assert len(files) == sum(1 for _ in (samples_dir / "tess").rglob("*.wav"))
