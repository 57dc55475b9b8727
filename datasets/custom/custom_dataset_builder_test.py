"""Builds corpora of one's own from the dummy data (generated tones in a folder per label, and under a CSV manifest
with one of each bad row), and checks the config, labels and plan without building."""

from __future__ import annotations

import json
import logging
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile
from tensorflow_datasets.scripts.cli import build as tfds_build_cli

from emojax import build_report, corpora, custom, prepared
from emojax.labels import EMOTIONS

DUMMY = corpora.DATASETS_DIR / "custom" / "dummy_data"
NO_SPEAKER_WARNING = "speaker-independent protocols (speaker splits, k-fold speaker cross-validation) cannot be run"
TEXT = ("kids are talking by the door", "dogs are sitting by the door")


def _build_report(name: str, data_dir: Path) -> dict:
    return json.loads((prepared.dataset_dir(name, str(data_dir)) / "metadata.json").read_text())


def _skipped(report: dict) -> dict[str, tuple[str, str]]:
    return {item["file"]: (item["reason"], item["detail"]) for item in report["skipped"]}


def _warnings(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and text in r.getMessage()]


def _tone(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, 0.3 * np.sin(np.arange(1600) / 5), 8000, subtype="PCM_16", format="WAV")
    return path


def test_folder_layout(build_dummy, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        rows = build_dummy("custom/mine", manual_dir=DUMMY / "folders")
    built = ("anger", "anger", "anger", "happiness", "sadness", "surprise", "neutral", "fear")
    assert rows == {"train": sorted(("", e, "unknown", "", "") for e in built), "validation": [], "test": []}
    assert prepared.dataset_dir("custom/mine", str(tmp_path)) == tmp_path / "emojax_custom" / "mine" / "1.3.0"
    assert prepared.label_names("custom/mine", str(tmp_path)) == EMOTIONS
    data = prepared.load_split("custom/mine", "train", str(tmp_path), ("file", "original_label", "corpus"))
    assert set(data["corpus"]) == {"mine"}
    assert dict(zip(data["file"], data["original_label"])) == {
        "angry/AB_01.wav": "angry", "angry/nested/deeper/CD_02.wav": "angry", "angry/take2.wav": "angry",
        "Happy/AB_03.flac": "Happy", "SAD/CD_04.wav": "SAD", "pleasant_surprise/AB_05.aiff": "pleasant_surprise",
        "NEU/CD_06.wav": "NEU", "Fearful/CD_07.wav": "Fearful"}
    report = _build_report("custom/mine", tmp_path)
    assert report["build"]["summary"] == ("found 11, built 8, skipped 3 (1 no label folder, 1 undecodable, "
                                          "1 unknown label); ignored 1 non-audio file(s), e.g. angry/notes.txt")
    skipped = _skipped(report["build"])
    assert {file: reason for file, (reason, _) in skipped.items()} == {
        "bored/AB_08.wav": "unknown label", "loose.wav": "no label folder", "disgust/AB_09.wav": "undecodable"}
    assert re.search(r"label 'bored' is none of the classes .* \"mapping\", e\.g\. \{\"bored\": \"neutral\"\}, or .*"
                     r"\"labels\"", skipped["bored/AB_08.wav"][1])
    for file in skipped:
        assert _warnings(caplog, f"skipped {file} "), file
    assert len(_warnings(caplog, NO_SPEAKER_WARNING)) == 1
    assert "give a speaker_pattern" in report["build"]["warnings"][0]
    assert report["config"] == {"manifest": "", "labels": list(EMOTIONS), "mapping": {}, "speaker_pattern": ""}


def test_csv_layout_with_speakers_splits_and_gender(build_dummy, tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        rows = build_dummy("custom/acted", manual_dir=DUMMY / "manifest", builder_config={"manifest": "labels.csv"})
    kids, dogs = TEXT
    assert rows == {
        "train": [("acted/s01", "anger", "male", "", kids), ("acted/s01", "happiness", "male", "", dogs),
                  ("acted/s04", "calm", "unknown", "", kids)],
        "validation": [("acted/s02", "fear", "female", "", dogs), ("acted/s02", "sadness", "female", "", kids)],
        "test": [("acted/s03", "disgust", "unknown", "", dogs), ("acted/s03", "neutral", "female", "", kids)],
    }
    build = _build_report("custom/acted", tmp_path)["build"]
    assert build["summary"] == ("found 16, built 7, skipped 9 (2 duplicate, 1 empty, 1 missing, 2 not in the manifest, "
                                "1 undecodable, 1 unknown label, 1 unknown split); ignored 1 non-audio file(s), e.g. "
                                "no_speakers.csv")
    skipped = build["skipped"]
    assert [(s["file"], s["reason"], re.match(r"labels\.csv row \d+", s["detail"])[0]) for s in skipped
            if s["reason"] != "not in the manifest"] == [
        ("audio/gone.wav", "missing", "labels.csv row 9"),
        ("audio/s04_b.wav", "unknown label", "labels.csv row 10"),
        ("audio/s01_a.wav", "duplicate", "labels.csv row 11"),
        ("audio/s02_a.wav", "duplicate", "labels.csv row 12"),
        ("audio/s05_a.wav", "unknown split", "labels.csv row 15"),
        ("audio/broken.wav", "undecodable", "labels.csv row 13"),  # found when decoded, after the plan
        ("audio/empty.wav", "empty", "labels.csv row 14"),
    ]
    details = {(s["file"], s["reason"]): s["detail"] for s in skipped}
    assert details["audio/gone.wav", "missing"].endswith("manifest/audio/gone.wav does not exist")
    assert details["audio/s01_a.wav", "duplicate"] == "labels.csv row 11 repeats row 2, built once"
    assert details["audio/s02_a.wav", "duplicate"] == ("labels.csv row 12 labels it 'happy' but row 4 'Sadness': built "
                                                       "once, as row 4 says; correct the manifest")
    assert details["audio/s05_a.wav", "unknown split"].startswith("labels.csv row 15: split 'holdout' is none of")
    assert sorted(s["file"] for s in skipped if s["reason"] == "not in the manifest") == [
        "audio/also_unlisted.wav", "audio/unlisted.wav"]
    assert len(_warnings(caplog, "not in labels.csv")) == 1 and not _warnings(caplog, "skipped audio/unlisted.wav")
    assert not _warnings(caplog, NO_SPEAKER_WARNING)
    assert _warnings(caplog, "gender values {'x': 1}")
    assert build["counts"] == {"train": {"anger": 1, "calm": 1, "happiness": 1},
                               "validation": {"fear": 1, "sadness": 1}, "test": {"disgust": 1, "neutral": 1}}


def test_free_label_set_with_mapping_and_speaker_pattern(build_dummy, tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    classes = ["anger", "boredom", "disgust", "fear", "happiness", "neutral", "sadness"]
    config = {"labels": classes, "mapping": {"Bored": "boredom"}, "speaker_pattern": r"([A-Z]{2})_\d\d"}
    with caplog.at_level(logging.WARNING):
        rows = build_dummy("custom/emodb_like", manual_dir=DUMMY / "folders", builder_config=config)
    assert prepared.label_names("custom/emodb_like", str(tmp_path)) == tuple(classes)
    assert [(speaker, label) for speaker, label, *_ in rows["train"]] == [
        ("emodb_like/AB", "anger"), ("emodb_like/AB", "boredom"), ("emodb_like/AB", "happiness"),
        ("emodb_like/CD", "anger"), ("emodb_like/CD", "fear"), ("emodb_like/CD", "neutral"),
        ("emodb_like/CD", "sadness")]
    report = _build_report("custom/emodb_like", tmp_path)
    skipped = _skipped(report["build"])
    assert {file: reason for file, (reason, _) in skipped.items()} == {
        "angry/take2.wav": "no speaker", "pleasant_surprise/AB_05.aiff": "unknown label",
        "loose.wav": "no label folder", "disgust/AB_09.wav": "undecodable"}
    assert "does not match 'take2.wav'" in skipped["angry/take2.wav"][1]
    assert "label 'pleasant_surprise' is none of the classes (anger, boredom," in skipped[
        "pleasant_surprise/AB_05.aiff"][1]
    assert not _warnings(caplog, NO_SPEAKER_WARNING)
    assert report["config"]["labels"] == classes and report["config"]["mapping"] == {"Bored": "boredom"}


def test_no_speaker_column_warns_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    report = build_report.BuildReport()
    config = custom.CustomConfig(name="plain", manifest="no_speakers.csv")
    with caplog.at_level(logging.WARNING):
        plan = custom.plan(DUMMY / "manifest", config, report)
    assert [(f.name, r.emotion, r.speaker, r.source) for f, r in plan["train"]] == [
        ("audio/s01_a.wav", "anger", "", "no_speakers.csv row 2"),
        ("audio/s02_b.wav", "fear", "", "no_speakers.csv row 3")]
    assert report.found == 2 + 11 and [r for _, r, _ in report.skipped] == ["not in the manifest"] * 11
    assert len(report.warnings) == 2 and len(_warnings(caplog, "")) == 2  # the 11 files, the speakers: no more
    assert "11 audio file(s)" in report.warnings[0] and NO_SPEAKER_WARNING in report.warnings[1]
    assert "speaker column" in report.warnings[1]


def test_manifest_paths_relative_to_it_or_absolute(tmp_path: Path) -> None:
    outside = _tone(tmp_path / "elsewhere" / "x.wav")
    _tone(tmp_path / "manual" / "meta" / "clips" / "a.wav")
    _tone(tmp_path / "manual" / "b.wav")
    (tmp_path / "manual" / "meta" / "list.csv").write_text(
        f"label,path\nangry,clips/a.wav\nsad,../b.wav\nhappy,{outside}\n")
    report = build_report.BuildReport()
    plan = custom.plan(tmp_path / "manual", custom.CustomConfig(name="c", manifest="meta/list.csv"), report)
    assert [(f.name, r.emotion) for f, r in plan["train"]] == [
        ("meta/clips/a.wav", "anger"), ("b.wav", "sadness"), (str(outside), "happiness")]
    assert report.found == 3 and report.skipped == [] and report.ignored == []
    absolute = custom.CustomConfig(name="c", manifest=str(tmp_path / "manual" / "meta" / "list.csv"))
    assert custom.plan(tmp_path / "manual", absolute, build_report.BuildReport()) == plan


def test_folder_layout_reads_archives_as_extracted(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "corpus.zip", "w") as archive:
        archive.write(_tone(tmp_path / "src" / "x.wav"), "Angry/DC_a01.wav")
    manual = tmp_path / "manual"
    manual.mkdir()
    (tmp_path / "corpus.zip").rename(manual / "corpus.zip")
    config = custom.CustomConfig(name="zipped", speaker_pattern="^([A-Z]{2})_")
    plan = custom.plan(manual, config, build_report.BuildReport())
    assert [(f.name, r.emotion, r.speaker) for f, r in plan["train"]] == [
        ("corpus.zip/Angry/DC_a01.wav", "anger", "DC")]


def test_nothing_that_maps_fails_listing_the_labels_found(tmp_path: Path) -> None:
    for name in ("bored/a.wav", "bored/b.wav", "tired/c.wav"):
        _tone(tmp_path / name)
    with pytest.raises(ValueError, match=r"no label found names one of the classes \(neutral, .*\)\. Labels found "
                                         r"\(files\): 'bored' \(2\), 'tired' \(1\)\. Map them .*\"mapping\""):
        custom.plan(tmp_path, custom.CustomConfig(name="c"), build_report.BuildReport())


def test_manifest_without_path_or_label_columns_fails_naming_its_columns(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("file,emotion,speaker\na.wav,angry,s1\n")
    with pytest.raises(ValueError, match=r"no path and no label column \(its header: file,emotion,speaker\)"):
        corpora.build("custom/c", manual_dir=str(tmp_path), data_dir=str(tmp_path / "data"),
                      builder_config={"manifest": "m.csv"})
    (tmp_path / "m.csv").write_text("path,emotion\na.wav,angry\n")
    with pytest.raises(ValueError, match=r"no label column \(its header: path,emotion\)"):
        custom.plan(tmp_path, custom.CustomConfig(name="c", manifest="m.csv"), build_report.BuildReport())
    with pytest.raises(FileNotFoundError, match="manifest .*other.csv not found"):
        custom.plan(tmp_path, custom.CustomConfig(name="c", manifest="other.csv"), build_report.BuildReport())
    assert not prepared.is_prepared("custom/c", str(tmp_path / "data"))


@pytest.mark.parametrize("name, message", [
    ("ravdess", "'ravdess' is the name of a built-in emojax dataset; name your corpus differently"),
    ("TESS", "'TESS' is the name of a built-in emojax dataset"),
    ("custom", "'custom' is the name of a built-in emojax dataset"),
    ("my corpus", "'my corpus' cannot name a corpus: use letters, digits"),
    ("..", "'..' cannot name a corpus"),
    ("a/b", "'a/b' cannot name a corpus"),
])
def test_builtin_and_invalid_names_are_refused(name: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        custom.CustomConfig(name=name)
    with pytest.raises(ValueError, match=re.escape(message)):
        corpora.build(f"custom/{name}", manual_dir=str(DUMMY / "folders"), data_dir=str(tmp_path))


def test_config_errors_say_what_to_do() -> None:
    with pytest.raises(ValueError, match="speaker_pattern .* has no group: put the speaker in parentheses"):
        custom.CustomConfig(name="c", speaker_pattern="[A-Z]{2}_")
    with pytest.raises(ValueError, match="speaker_pattern is for the folder layout"):
        custom.CustomConfig(name="c", manifest="m.csv", speaker_pattern="(.)")
    with pytest.raises(ValueError, match=r"mapping 'W' → 'rage': 'rage' is not one of the classes"):
        custom.CustomConfig(name="c", mapping={"W": "rage"})
    with pytest.raises(ValueError, match="the same class written twice"):
        custom.CustomConfig(name="c", labels=["Anger", "anger"])
    with pytest.raises(TypeError, match='"labels" is a list of class names'):
        custom.CustomConfig(name="c", labels="anger,boredom")


def test_labels_map_spellings_mapping_and_free_sets() -> None:
    emotions = custom.Labels()
    assert emotions.names == EMOTIONS
    assert [emotions(raw) for raw in ("ANG", "Pleasant Surprise", "joy", "boredom", "")] == [
        "anger", "surprise", "happiness", None, None]
    mapped = custom.Labels(mapping={"mad": "angry", "excited": "happiness"})
    assert mapped.names == EMOTIONS
    assert [mapped(raw) for raw in ("MAD", "excited", "sad")] == ["anger", "happiness", "sadness"]
    bins = custom.Labels(["negative", "neutral", "positive"],
                         {"angry": "negative", "sad": "Negative", "joy": "positive"})
    assert [bins(raw) for raw in ("Angry", "SAD", "happy", "joy", "NEU", "calm")] == [
        "negative", "negative", None, "positive", "neutral", None]
    assert custom.Labels(["anger", "happy"])("HAP") == "happy"  # the class spells the same emotion as the raw label


def test_tfds_cli_config_json_and_no_config(tmp_path: Path) -> None:
    """What `tfds build datasets/custom` does with --config: a JSON object becomes a CustomConfig (lists and all);
    without --config it makes the predefined placeholder's builder, which refuses with the command to run."""
    builder_cls = corpora.builder_class("custom")
    config = tfds_build_cli._get_config_name(builder_cls, None, json.dumps(
        {"name": "emodb", "labels": ["anger", "boredom"], "mapping": {"W": "anger"}}), None)
    assert isinstance(config, custom.CustomConfig) and config.labels == ("anger", "boredom")
    builder = builder_cls(config=config, data_dir=str(tmp_path))
    assert Path(builder.data_path) == tmp_path / "emojax_custom" / "emodb" / "1.3.0"
    assert builder.info.features["label"].names == ["anger", "boredom"] and builder.corpus == "emodb"
    assert builder_cls(config="plain", data_dir=str(tmp_path)).builder_config.manifest == ""  # --config plain
    assert tfds_build_cli._get_config_name(builder_cls, None, None, None) is None
    for placeholder in [c.name for c in builder_cls.BUILDER_CONFIGS] + [None]:
        with pytest.raises(ValueError, match=re.escape("""needs its name: `tfds build datasets/custom --manual_dir DIR \
--config '{"name": "mycorpus"}'`""")):
            builder_cls(config=placeholder, data_dir=str(tmp_path))
