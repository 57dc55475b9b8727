"""Training resilience: SIGKILL at any point (also during a checkpoint write) and SIGTERM, then resume, end
exactly like an uninterrupted run; damaged checkpoints fall back to the previous good one; a non-finite
loss stops with an error and a lower learning rate resumes; incompatible or unwritable workdirs are refused.

All runs share one tiny config on the synthetic corpus (seconds per run, one compilation).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import ml_collections
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the configs/ package

from configs import demo  # noqa: E402
from emojax import checkpoints, train  # noqa: E402

# tests/test_train.py's tiny_config, with a constant schedule so that the learning rate may change on resume.
OVERRIDES = dict(widths=(8, 8), hidden=16, window_frames=32, crop_shift_frames=4, batch_size=8, epochs=6,
                 freq_masks=1, max_freq_width=3, time_masks=1, max_time_width=5, eval_batch_size=32,
                 schedule="constant", warmup_epochs=0)
STEPS_PER_EPOCH = 640 // 8
TIMING = ("epoch_seconds", "train_examples_per_second")


def resilience_config(data_dir: str, **overrides) -> ml_collections.ConfigDict:
    config = demo.get_config()
    config.update({**OVERRIDES, "data_dir": data_dir, **overrides})
    return config


def _leaves(workdir: Path) -> tuple[int, list[np.ndarray]]:
    """Step and all arrays (params, batch_stats, optimizer state) of the latest checkpoint."""
    _, state, _, step = checkpoints.restore(workdir, "latest")
    return step, [np.asarray(x) for x in jax.tree.leaves((state.params, state.batch_stats, state.opt_state))]


def _records(workdir: Path) -> list[dict]:
    """metrics.jsonl without the timing fields."""
    lines = (workdir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in lines]


def _assert_same_run(a: Path, b: Path) -> None:
    (step_a, leaves_a), (step_b, leaves_b) = _leaves(a), _leaves(b)
    assert step_a == step_b
    for u, v in zip(leaves_a, leaves_b, strict=True):
        np.testing.assert_array_equal(u, v)
    assert _records(a) == _records(b)
    test_a, test_b = (json.loads((d / "test_metrics.json").read_text()) for d in (a, b))
    assert test_a == test_b


def _committed(workdir: Path) -> list[int]:
    """Steps of the finished checkpoints (orbax writes into a temporary directory, then renames it)."""
    root = workdir / checkpoints.CHECKPOINT_DIR
    return sorted(int(p.name) for p in root.iterdir() if p.name.isdigit()) if root.is_dir() else []


def _writing(workdir: Path) -> bool:
    root = workdir / checkpoints.CHECKPOINT_DIR
    return root.is_dir() and any("tmp" in p.name for p in root.iterdir())


@pytest.fixture(scope="module")
def straight(tmp_path_factory, synthetic_data_dir, compilation_cache) -> Path:
    """An uninterrupted run of the shared config."""
    workdir = tmp_path_factory.mktemp("straight")
    train.train_and_evaluate(resilience_config(synthetic_data_dir), workdir)
    return workdir


def _start(workdir: Path, data_dir: str, cache: str, log: Path) -> subprocess.Popen:
    """``python train.py`` (the CLI) with the shared config, output to ``log``."""
    flags = [f"--config.{k}={v}" for k, v in {**OVERRIDES, "data_dir": data_dir}.items()]
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_COMPILATION_CACHE_DIR": cache,
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, str(REPO / "train.py"), f"--workdir={workdir}",
                                 f"--config={REPO / 'configs' / 'demo.py'}", *flags],
                                env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)


def _wait_for(condition, proc: subprocess.Popen, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"train.py ended early ({proc.returncode}):\n{log.read_text()}"
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.001)


def test_kills_and_sigterm_then_resume_match_an_uninterrupted_run(tmp_path, straight, synthetic_data_dir,
                                                                   compilation_cache):
    workdir, log = tmp_path / "run", tmp_path / "log.txt"
    start = lambda: _start(workdir, synthetic_data_dir, compilation_cache, log)  # noqa: E731

    # SIGKILL once the first checkpoint is committed.
    proc = start()
    _wait_for(lambda: _committed(workdir), proc, log)
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    # SIGKILL while a checkpoint is being written (the temporary directory is there); a fast write may
    # finish between seeing it and the kill, so try up to three times.
    for attempt in range(3):
        proc = start()
        done = _committed(workdir)
        _wait_for(lambda: _writing(workdir) and _committed(workdir) == done, proc, log)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if _writing(workdir):
            break
    else:
        pytest.fail("no kill landed during a checkpoint write")
    assert len(_committed(workdir)) < OVERRIDES["epochs"]

    # SIGTERM: the running epoch ends, is checkpointed, and train.py exits with 128 + SIGTERM.
    proc = start()
    done = _committed(workdir)
    _wait_for(lambda: len(_committed(workdir)) > len(done), proc, log)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM, log.read_text()
    assert "stopped by SIGTERM" in log.read_text()
    assert "Traceback" not in log.read_text()
    assert not _writing(workdir)
    last = _committed(workdir)[-1]
    assert last % STEPS_PER_EPOCH == 0 and last < OVERRIDES["epochs"] * STEPS_PER_EPOCH
    assert _records(workdir)[-1]["step"] == last

    # Resume to the end.
    proc = start()
    assert proc.wait(timeout=120) == 0, log.read_text()
    assert [r["epoch"] for r in _records(workdir)] == list(range(1, OVERRIDES["epochs"] + 1))
    _assert_same_run(straight, workdir)


def _damage(checkpoint: Path, how: str) -> None:
    """Truncates every array file of the checkpoint's state to half, or deletes its metadata file."""
    if how == "truncated":
        files = list((checkpoint / "state").rglob("d/*"))
        assert files
        for path in files:
            os.truncate(path, path.stat().st_size // 2)
    else:
        (checkpoint / "state" / "_METADATA").unlink()


@pytest.mark.parametrize("how", ["truncated", "deleted"])
def test_damaged_latest_checkpoint_falls_back_to_the_previous_good_one(how, tmp_path, straight, synthetic_data_dir,
                                                                        capsys):
    workdir = tmp_path / "run"
    shutil.copytree(straight, workdir)
    last, previous = _committed(workdir)[-1], _committed(workdir)[-2]
    _damage(workdir / checkpoints.CHECKPOINT_DIR / str(last), how)
    capsys.readouterr()

    _, _, _, step = checkpoints.restore(workdir, "latest")  # what eval.py --checkpoint=latest and inference use
    assert step == previous
    err = capsys.readouterr().err
    assert f"{checkpoints.CHECKPOINT_DIR}/{last} is damaged" in err and f"(step {previous})" in err

    train.train_and_evaluate(resilience_config(synthetic_data_dir), workdir)  # redoes the last epoch
    err = capsys.readouterr().err
    assert f"(step {previous})" in err and "deleting the damaged checkpoint" in err
    _assert_same_run(straight, workdir)


def test_no_readable_checkpoint_is_an_error_not_a_fresh_start(tmp_path, straight, synthetic_data_dir):
    workdir = tmp_path / "run"
    shutil.copytree(straight, workdir)
    for step in _committed(workdir):
        _damage(workdir / checkpoints.CHECKPOINT_DIR / str(step), "deleted")
    with pytest.raises(train.TrainingError, match="no checkpoint in .* can be read"):
        train.train_and_evaluate(resilience_config(synthetic_data_dir), workdir)
    with pytest.raises(train.TrainingError, match="move that directory aside"):
        checkpoints.restore(workdir, "best")


def test_non_finite_loss_stops_with_the_step_and_a_lower_learning_rate_resumes(tmp_path, synthetic_data_dir,
                                                                              compilation_cache):
    workdir = tmp_path / "run"
    train.train_and_evaluate(resilience_config(synthetic_data_dir, epochs=1), workdir)
    with pytest.raises(train.TrainingError) as error:
        train.train_and_evaluate(resilience_config(synthetic_data_dir, epochs=2, learning_rate=1e30), workdir)
    message = str(error.value)
    assert "non-finite" in message and "in epoch 2" in message
    assert f"last good checkpoint (step {STEPS_PER_EPOCH})" in message and "--config.learning_rate=" in message
    assert _committed(workdir) == [STEPS_PER_EPOCH]
    assert [r["epoch"] for r in _records(workdir)] == [1]
    train.train_and_evaluate(resilience_config(synthetic_data_dir, epochs=2), workdir)
    assert [r["epoch"] for r in _records(workdir)] == [1, 2]


@pytest.mark.parametrize("field, value", [("widths", (8, 16)), ("protocol", "random"), ("window_frames", 40),
                                          ("n_mfcc", 13), ("batch_size", 16)])
def test_incompatible_workdir_is_refused(field, value, tmp_path, straight, synthetic_data_dir):
    workdir = tmp_path / "run"
    shutil.copytree(straight, workdir)
    config = resilience_config(synthetic_data_dir, **{field: value})
    with pytest.raises(train.TrainingError, match=f"another config .*{field}: .*refusing to overwrite"):
        train.train_and_evaluate(config, workdir)
    assert _committed(workdir) == _committed(straight)
    assert _records(workdir) == _records(straight)


def test_unwritable_workdir_fails_at_start(tmp_path, synthetic_data_dir):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(train.TrainingError, match="cannot write to the workdir .*choose another --workdir"):
        train.train_and_evaluate(resilience_config(synthetic_data_dir), blocker / "run")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_before_the_first_epoch_stops_with_one_line(tmp_path, synthetic_data_dir, compilation_cache, signum):
    workdir, log = tmp_path / "run", tmp_path / "log.txt"
    proc = _start(workdir, synthetic_data_dir, compilation_cache, log)
    _wait_for(workdir.exists, proc, log)  # train_and_evaluate's first act; loading and compiling follow
    proc.send_signal(signum)
    assert proc.wait(timeout=60) == 128 + signum, log.read_text()
    text = log.read_text()
    assert "Traceback" not in text and "KeyboardInterrupt" not in text and "Terminated" not in text, text
    name = signal.Signals(signum).name
    assert text.strip().splitlines()[-1].startswith(f"stopped by {name}: nothing to save yet"), text
    assert not _committed(workdir)


def _tensorboard_scalars(directory: Path) -> dict[str, list[tuple[int, float]]]:
    """(step, value) of every scalar point of every tag in the event files of ``directory``."""
    import tensorflow as tf

    points: dict[str, list[tuple[int, float]]] = {}
    for path in directory.glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                points.setdefault(value.tag, []).append((event.step, value.simple_value))
    return points


def test_a_resumed_run_that_redoes_an_epoch_logs_each_step_once_to_tensorboard(tmp_path, straight,
                                                                                synthetic_data_dir):
    workdir = tmp_path / "run"
    shutil.copytree(straight, workdir)
    shutil.rmtree(workdir / checkpoints.CHECKPOINT_DIR / str(_committed(workdir)[-1]))  # killed before its commit
    train.train_and_evaluate(resilience_config(synthetic_data_dir), workdir)  # redoes the last epoch
    points = _tensorboard_scalars(workdir / "tensorboard")
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == list(range(1, OVERRIDES["epochs"] + 1))
    assert sorted(points) == sorted(k for k in records[0] if k not in ("epoch", "step"))
    for tag, values in points.items():
        assert sorted(values) == [(r["step"], pytest.approx(r[tag], rel=1e-6)) for r in records], tag
