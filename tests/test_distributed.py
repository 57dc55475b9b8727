"""Many devices and many processes: ``python train.py`` on 4 CPU devices of one process, and as two
processes joined by ``jax.distributed`` (coordinator on 127.0.0.1), ends with the same parameters,
``metrics.jsonl`` and test metrics as one device; only process 0 prints and writes logs, and the checkpoints
the processes wrote together restore.

The three subprocesses run at the same time while the one-device reference trains in this process. The
reference and the 4-device run feed batches from device-resident data (the default), the two processes
feed them from the host (each process transfers only its devices' rows): the same training, up to the order in
which float32 sums are taken (``same_training`` in conftest.py says what that allows).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the configs/ package

from configs import demo  # noqa: E402
from emojax import checkpoints, models, train  # noqa: E402
from emojax.state import create_train_state  # noqa: E402

# The demo recipe with a very small CNN: 20 steps per epoch, batches split over up to 4 devices.
OVERRIDES = dict(widths=(8, 8), hidden=16, window_frames=32, crop_shift_frames=4, batch_size=32, epochs=2,
                 freq_masks=1, max_freq_width=3, time_masks=1, max_time_width=5, eval_batch_size=32)
TIMING = ("epoch_seconds", "train_examples_per_second")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(workdir: Path, data_dir: str, cache: str, devices: int, log: Path, *flags: str) -> subprocess.Popen:
    """``python train.py`` on ``devices`` CPU devices with ``OVERRIDES``, output to ``log``."""
    overrides = [f"--config.{k}={v}" for k, v in {**OVERRIDES, "data_dir": data_dir}.items()]
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
           "JAX_COMPILATION_CACHE_DIR": cache, "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, str(REPO / "train.py"), f"--workdir={workdir}",
                                 f"--config={REPO / 'configs' / 'demo.py'}", *overrides, *flags],
                                env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, synthetic_data_dir, compilation_cache) -> dict[str, Path]:
    """Workdirs and logs: ``one`` (this process, one CPU device), ``four`` (one process, 4 devices),
    ``two`` (two processes of one device, host-fed), and the logs ``log4``, ``log0``, ``log1`` of the latter."""
    root = tmp_path_factory.mktemp("distributed")
    paths = {name: root / name for name in ("one", "four", "two")}
    logs = {name: root / f"{name}.txt" for name in ("log4", "log0", "log1")}
    port = _free_port()
    procs = {"log4": _start(paths["four"], synthetic_data_dir, compilation_cache, 4, logs["log4"])}
    for i in range(2):
        procs[f"log{i}"] = _start(paths["two"], synthetic_data_dir, compilation_cache, 1, logs[f"log{i}"],
                                  "--config.data_on_device=False", f"--coordinator=127.0.0.1:{port}",
                                  "--num_processes=2", f"--process_id={i}")
    try:
        config = demo.get_config()
        config.update({**OVERRIDES, "data_dir": synthetic_data_dir})
        train.train_and_evaluate(config, paths["one"])
        for name, proc in procs.items():
            assert proc.wait(timeout=300) == 0, logs[name].read_text()
    finally:  # a failed run leaves no process behind (the other one of a pair would wait for it)
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return {**paths, **logs}


def _records(workdir: Path) -> list[dict]:
    lines = (workdir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in lines]


def _assert_same_run(reference: Path, other: Path, same_training) -> None:
    """Same checkpointed step, the same training (``same_training``: parameters and BatchNorm statistics), the same
    metrics.jsonl losses and validation figures, and test metrics that differ by at most one clip's prediction (the
    devices sum the gradients in another order, so a clip near a decision boundary may flip)."""
    (config, a, _, step_a), (_, b, _, step_b) = (checkpoints.restore(d, "latest") for d in (reference, other))
    assert step_a == step_b == OVERRIDES["epochs"] * (640 // OVERRIDES["batch_size"])
    start = create_train_state(config, models.create_model(config), 640 // OVERRIDES["batch_size"])
    leaves = lambda s: jax.tree.leaves((s.params, s.batch_stats))  # noqa: E731
    same_training(leaves(start), leaves(a), leaves(b))
    ra, rb = _records(reference), _records(other)
    assert [r["epoch"] for r in ra] == [r["epoch"] for r in rb] == list(range(1, OVERRIDES["epochs"] + 1))
    for x, y in zip(ra, rb):
        assert x.keys() == y.keys()
        assert x["step"] == y["step"]
        np.testing.assert_allclose(x["train_loss"], y["train_loss"], rtol=1e-3)
        for key in ("train_accuracy", "val_accuracy", "val_unweighted_accuracy"):  # one example or clip may flip
            assert abs(x[key] - y[key]) <= 1 / 160 + 1e-9, (key, x[key], y[key])
    ta, tb = (json.loads((d / "test_metrics.json").read_text()) for d in (reference, other))
    assert ta["checkpoint_step"] == tb["checkpoint_step"] and ta["num_examples"] == tb["num_examples"] == 160
    assert np.abs(np.asarray(ta["confusion_matrix"]) - np.asarray(tb["confusion_matrix"])).sum() <= 2


def test_four_devices_match_one(runs, same_training):
    assert "4 device(s)" in runs["log4"].read_text()
    _assert_same_run(runs["one"], runs["four"], same_training)


def test_two_processes_match_one_and_only_process_0_logs(runs, same_training):
    log0, log1 = runs["log0"].read_text(), runs["log1"].read_text()
    assert "2 device(s)" in log0 and f"epoch {OVERRIDES['epochs']}/{OVERRIDES['epochs']}" in log0, log0
    assert "test (best checkpoint" in log0
    for line in ("data:", "model:", "epoch 1/", "test (best checkpoint"):
        assert line not in log1, log1
    _assert_same_run(runs["one"], runs["two"], same_training)  # one metrics.jsonl line per epoch: written once
    assert len(list((runs["two"] / "tensorboard").glob("events.out.tfevents.*"))) == 1
