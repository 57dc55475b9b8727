"""The emojax command as a process: predict and timeline (of a model of its own classes too), their outputs, error
lines, exit statuses, help, cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from emojax import cli, inference, synthetic
from emojax.labels import EMOTIONS
from emojax.timeline import SILENCE

RATE = synthetic.SAMPLE_RATE


def _emojax(*args: str, cache: str | None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Runs ``emojax ARGS`` (``python -m emojax.cli``) on the CPU with the compilation cache ``cache``."""
    base = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    base.update(JAX_PLATFORMS="cpu", **({"JAX_COMPILATION_CACHE_DIR": cache} if cache else {}), **(env or {}))
    return subprocess.run([sys.executable, "-m", "emojax.cli", *args], env=base, capture_output=True, text=True)


def _errors(done: subprocess.CompletedProcess) -> list[str]:
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    return [line for line in done.stderr.splitlines() if line.startswith("error:")]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Good recordings (a clip, a 20 s stereo 44.1 kHz FLAC, one sample) and bad inputs (not audio, a folder)."""
    folder = tmp_path_factory.mktemp("cli")
    clips = [c.audio for _, c in zip(range(8), synthetic.generate("test"))]
    paths = {name: folder / name for name in ("clip.wav", "long.flac", "one_sample.wav", "random.wav")}
    soundfile.write(paths["clip.wav"], clips[0], RATE)
    long = np.concatenate([*clips, np.zeros(4 * RATE, np.int16), *clips])[: 20 * RATE].astype(np.float32) / 32768
    soundfile.write(paths["long.flac"], np.stack([long, long], 1), RATE)
    soundfile.write(paths["one_sample.wav"], np.full((1, 1), 0.25, np.float32), RATE, subtype="PCM_16")
    paths["random.wav"].write_bytes(np.random.default_rng(0).bytes(5000))
    paths["folder"] = folder / "folder"
    paths["folder"].mkdir()
    return paths


def test_help_explains_every_flag_with_examples(capsys):
    for args, flags in ((["--help"], ["predict", "timeline", "--version"]),
                        (["predict", "--help"], ["--json", "--workdir", "--no-cache"]),
                        (["timeline", "--help"], ["--hop", "--smooth", "--silence-db", "--csv", "--json", "--plot",
                                                  "--workdir", "--no-cache"])):
        with pytest.raises(SystemExit) as exit:
            cli.main(args)
        out = capsys.readouterr().out
        assert exit.value.code == 0 and "examples:" in out and "emojax " in out
        for flag in flags:
            assert flag in out, (args, flag)
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert capsys.readouterr().out.startswith("emojax ")
    for args in (["predict"], ["frobnicate"], ["timeline", "a.wav", "--hop", "0"], ["timeline", "a.wav", "b.wav"],
                 ["timeline", "a.wav", "--silence-db", "-3"]):  # no file, unknown command, bad numbers, two files
        with pytest.raises(SystemExit) as exit:
            cli.main(args)
        assert exit.value.code == 2 and "usage: emojax" in capsys.readouterr().err, args


def test_predict_prints_a_line_per_file_and_an_error_line_per_bad_one(trained_workdir, compilation_cache, files):
    order = ["clip.wav", "random.wav", "long.flac", "missing.wav", "folder", "one_sample.wav"]
    paths = [str(files.get(name, files["clip.wav"].parent / name)) for name in order]
    done = _emojax("predict", "--workdir", str(trained_workdir), *paths, cache=compilation_cache)
    assert done.returncode == 1
    errors = _errors(done)
    assert [line.split(": ")[1] for line in errors] == [paths[1], paths[3], paths[4]]
    assert "not a readable audio file" in errors[0] and "not found" in errors[1] and "is a directory" in errors[2]
    lines = [line.split("\t") for line in done.stdout.strip().splitlines()]
    assert [path for path, _, _ in lines] == [paths[0], paths[2], paths[5]]
    predictor = inference.Predictor.from_workdir(trained_workdir)
    for path, emotion, probability in lines:
        want = predictor.predict_file(path)
        assert emotion == want.emotion and float(probability) == pytest.approx(want.probability, abs=1e-3)

    good = _emojax("predict", "--json", "--workdir", str(trained_workdir), "--workdir", str(trained_workdir),
                   paths[0], paths[2], cache=compilation_cache)
    assert good.returncode == 0 and not _errors(good)
    results = [json.loads(line) for line in good.stdout.strip().splitlines()]
    assert [r["file"] for r in results] == [paths[0], paths[2]]
    for r in results:
        want = predictor.predict_file(r["file"])
        assert set(r["probabilities"]) == set(EMOTIONS) and len(r["windows"]) == len(want.windows)
        for name in EMOTIONS:
            assert r["probabilities"][name] == pytest.approx(want.probabilities[name], abs=1e-5)


def test_timeline_prints_the_segments_and_writes_csv_json_and_png(trained_workdir, compilation_cache, files,
                                                                  tmp_path):
    path = str(files["long.flac"])
    csv_path, png_path = tmp_path / "t.csv", tmp_path / "t.png"
    done = _emojax("timeline", "--workdir", str(trained_workdir), path, "--smooth", "3", "--csv", str(csv_path),
                   "--plot", str(png_path), cache=compilation_cache)
    assert done.returncode == 0 and not _errors(done)
    want = inference.Predictor.from_workdir(trained_workdir).timeline_file(path, smooth=3.0)
    header, *rows = done.stdout.strip().splitlines()
    assert header.startswith(f"{path}: 20.0 s, {len(want.windows)} windows of 2.51 s every 1.25 s, smoothed over 3 s")
    assert len(rows) == len(want.segments) and SILENCE in {row.split()[1] for row in rows}
    for row, segment in zip(rows, want.segments):
        assert row.split()[1] == segment.emotion
    assert len(csv_path.read_text().splitlines()) == len(want.windows) + 1 and png_path.stat().st_size > 20_000

    as_json = _emojax("timeline", "--workdir", str(trained_workdir), path, "--json", "--hop", "2", "--silence-db",
                      "30", cache=compilation_cache)
    assert as_json.returncode == 0
    got = json.loads(as_json.stdout)
    want = inference.Predictor.from_workdir(trained_workdir).timeline_file(path, hop=2.0, silence_db=30.0).to_dict()
    assert [w["emotion"] for w in got["windows"]] == [w["emotion"] for w in want["windows"]]
    assert got["hop_seconds"] == want["hop_seconds"] == 2.0
    assert [(s["emotion"], s["start_seconds"]) for s in got["segments"]] == [
        (s["emotion"], s["start_seconds"]) for s in want["segments"]]


def test_timeline_errors_are_one_line_each(trained_workdir, compilation_cache, files, tmp_path, capsys):
    def timeline(*args: str) -> subprocess.CompletedProcess:  # in this process: the command's code, not its start
        status = cli.main(["timeline", "--workdir", str(trained_workdir), *args])
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, status, out, err)

    unwritable = timeline(str(files["clip.wav"]), "--csv", str(tmp_path / "no" / "t.csv"))
    assert unwritable.returncode == 1 and not unwritable.stdout
    assert _errors(unwritable) == [f"error: {tmp_path / 'no' / 't.csv'}: cannot write it: no folder {tmp_path / 'no'}"]
    folder_plot = timeline(str(files["clip.wav"]), "--plot", str(tmp_path))
    assert folder_plot.returncode == 1 and len(_errors(folder_plot)) == 1 and "is a directory" in folder_plot.stderr
    for name in ("folder", "random.wav", "missing.wav"):
        path = str(files.get(name, tmp_path / name))
        done = timeline(path)
        assert done.returncode == 1 and not done.stdout
        (line,) = _errors(done)
        assert line.startswith(f"error: {path}: ") and line.count(path) == 1
    silent = tmp_path / "silent.wav"
    soundfile.write(silent, np.zeros(6 * RATE, np.int16), RATE)
    done = timeline(str(silent))
    assert done.returncode == 0 and "no speech found" in done.stderr and not _errors(done)
    assert done.stdout.strip().splitlines()[1].split() == ["0:00–0:06", "silence"]


def test_timeline_of_a_model_of_its_own_classes(custom_workdir, compilation_cache, files, tmp_path, capsys):
    path, csv_path, png_path = str(files["long.flac"]), tmp_path / "t.csv", tmp_path / "t.png"
    classes = ["neutral", "colère", "joie", "ennui"]
    assert cli.main(["timeline", "--workdir", str(custom_workdir), path, "--csv", str(csv_path), "--plot",
                     str(png_path)]) == 0
    out, err = capsys.readouterr()
    want = inference.Predictor.from_workdir(custom_workdir).timeline_file(path)
    assert not err and [row.split()[1] for row in out.strip().splitlines()[1:]] == [s.emotion for s in want.segments]
    assert {s.emotion for s in want.segments} - {SILENCE} <= set(classes)
    assert csv_path.read_text(encoding="utf-8").splitlines()[0] == ",".join(["start_seconds", "end_seconds",
                                                                             "emotion", *classes])
    assert png_path.stat().st_size > 20_000
    assert cli.main(["timeline", "--workdir", str(custom_workdir), path, "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert [w["probabilities"] and list(w["probabilities"]) for w in got["windows"]] == [
        None if w.silent else classes for w in want.windows]


def test_without_workdir_the_shipped_model_predicts_and_the_compilation_cache_is_on_by_default(files, tmp_path):
    path = str(files["clip.wav"])
    done = _emojax("predict", "--json", path, cache=None, env={"XDG_CACHE_HOME": str(tmp_path / "on")})
    assert done.returncode == 0 and not _errors(done), done.stderr[-2000:]
    want = inference.Predictor.pretrained().predict_file(path)
    got = json.loads(done.stdout)
    assert got["emotion"] == want.emotion
    np.testing.assert_allclose([got["probabilities"][e] for e in EMOTIONS],
                               [want.probabilities[e] for e in EMOTIONS], atol=1e-5)
    assert any((tmp_path / "on" / "emojax" / "jax").iterdir())
    for flag, env in ((["--no-cache"], {}), ([], {"EMOJAX_NO_CACHE": "1"})):
        off = _emojax("predict", *flag, str(tmp_path / "missing.wav"), cache=None,
                      env={"XDG_CACHE_HOME": str(tmp_path / "off"), **env})
        assert off.returncode == 1 and not (tmp_path / "off").exists()
