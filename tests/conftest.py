"""Shared fixtures: where the real corpora are (tests that need them skip when absent), and session-wide
resources: an XLA compilation cache, the synthetic TFDS corpus, a trained demo workdir and a workdir of other
classes."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the configs/ package


def _shared(name: str, env: str) -> Path | None:
    path = Path(os.environ[env]) if env in os.environ else REPO.parent / "shared" / name
    return path if path.is_dir() else None


@pytest.fixture(scope="session")
def corpora_dir() -> Path:
    """`../shared/corpora` or `$EMOJAX_CORPORA`: the four corpora as 16 kHz Opus; skip when absent."""
    path = _shared("corpora", "EMOJAX_CORPORA")
    if path is None:
        pytest.skip("real corpora not found (../shared/corpora or $EMOJAX_CORPORA)")
    return path


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """`../shared/corpus-samples` or `$EMOJAX_CORPUS_SAMPLES`: untouched originals; skip when absent."""
    path = _shared("corpus-samples", "EMOJAX_CORPUS_SAMPLES")
    if path is None:
        pytest.skip("corpus samples not found (../shared/corpus-samples or $EMOJAX_CORPUS_SAMPLES)")
    return path


@pytest.fixture(scope="session")
def compilation_cache(tmp_path_factory) -> str:
    """A persistent XLA compilation cache for this session: repeated runs of one config compile once."""
    import jax

    path = str(tmp_path_factory.mktemp("xla_cache"))
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return path


@pytest.fixture(scope="session")
def synthetic_data_dir(tmp_path_factory) -> str:
    """The synthetic_prosody TFDS dataset, built once per session."""
    from emojax import corpora

    data_dir = str(tmp_path_factory.mktemp("tfds"))
    corpora.build("synthetic_prosody", data_dir=data_dir)
    return data_dir


@pytest.fixture(scope="session")
def trained_workdir(tmp_path_factory, synthetic_data_dir, compilation_cache) -> Path:
    """A demo-config run on the synthetic corpus (12 epochs), shared by the training and inference tests."""
    from configs import demo
    from emojax import train

    workdir = tmp_path_factory.mktemp("demo")
    config = demo.get_config()
    config.data_dir = synthetic_data_dir
    config.epochs = 12
    train.train_and_evaluate(config, workdir)
    return workdir


@pytest.fixture(scope="session")
def custom_workdir(tmp_path_factory, trained_workdir) -> Path:
    """A workdir whose model has classes of its own (``neutral``, ``colère``, ``joie``, ``ennui``): the demo run
    with the output layer fine-tuning starts from (``finetune.initialize``: neutral's weights kept, the three new
    classes' drawn), saved untrained. Its outputs mean little; it stands in for a fine-tuned model, in seconds."""
    from emojax import checkpoints, finetune, models
    from emojax.state import create_train_state

    source = finetune.load_source(str(trained_workdir))
    config = source.config.copy_and_resolve_references()
    config.labels = ["neutral", "colère", "joie", "ennui"]
    fresh = create_train_state(config, models.create_model(config), config.steps_per_epoch)
    state, _ = finetune.initialize(fresh, config, source)
    workdir = tmp_path_factory.mktemp("custom")
    manager = checkpoints.checkpoint_manager(workdir, writer=True)
    checkpoints.save(manager, state, source.normalization, config.to_dict(), {checkpoints.BEST_METRIC: 0.0})
    manager.wait_until_finished()
    manager.close()
    return workdir


def _distance(a: list, b: list) -> float:
    import numpy as np

    return float(np.sqrt(sum(np.sum((np.asarray(u, np.float64) - np.asarray(v, np.float64)) ** 2)
                             for u, v in zip(a, b, strict=True))))


@pytest.fixture(scope="session")
def same_training():
    """``same_training(start, a, b)``: asserts that two runs of one training from ``start`` (lists of the parameter
    and BatchNorm-statistic arrays) that differ only in the order of float32 sums (other device or process counts)
    ended in the same place. Per-value tolerances do not hold across CPUs: a different summation order changes a
    gradient in its last bits, and Adam's normalised updates carry that on, so after tens of steps single values
    differ by up to ~1e-3 relative on some machines. What the runs share is their path: the distance between their
    end points must be under 1 % of the distance training moved either of them."""
    def check(start: list, a: list, b: list) -> None:
        moved = min(_distance(start, a), _distance(start, b))
        apart = _distance(a, b)
        assert moved > 0 and apart <= 0.01 * moved, f"the runs ended {apart:.3g} apart after moving {moved:.3g}"
    return check
