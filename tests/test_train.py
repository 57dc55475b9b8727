"""Training: a step learns, epochs are deterministic, host-fed = on-device, resume =
uninterrupted, a short run on the synthetic corpus gets well above chance, bfloat16 compute trains like
float32 and keeps a float32 state, workdirs that used removed options are refused by name, and readers
of a workdir without checkpoints create nothing.

The session fixtures (``synthetic_data_dir``, ``trained_workdir``, ...) live in tests/conftest.py.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the configs/ package

from configs import demo  # noqa: E402
from emojax import checkpoints, evaluate, input_pipeline, metrics, models, protocols, steps, train  # noqa: E402
from emojax.state import TrainState, create_train_state, make_mesh, model_variables  # noqa: E402


def tiny_config(**overrides) -> ml_collections.ConfigDict:
    """The demo recipe with a very small CNN and short windows: seconds to compile and run."""
    config = demo.get_config()
    config.update(dict(widths=(8, 8), hidden=16, window_frames=32, crop_shift_frames=4, batch_size=8, epochs=2,
                       freq_masks=1, max_freq_width=3, time_masks=1, max_time_width=5, eval_batch_size=32))
    config.update(overrides)
    return config


def learnable_arrays(n: int = 64, frames: int = 40, seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Random windows {"mfcc": (n, 25, frames)} whose class shifts a few coefficients: easy to learn."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 8).astype(np.int32)
    x = rng.normal(size=(n, 25, frames)).astype(np.float32)
    x[np.arange(n), y] += 2.0
    return {"mfcc": x}, y


def _frames(x: dict[str, np.ndarray], frames: int) -> dict[str, np.ndarray]:
    return {name: v[..., :frames] for name, v in x.items()}


def _trainer(config: ml_collections.ConfigDict) -> tuple[steps.Trainer, TrainState]:
    model = models.create_model(config)
    trainer = steps.Trainer(config, model, make_mesh())
    return trainer, trainer.place(create_train_state(config, model, steps_per_epoch=8))


@pytest.fixture(scope="module")
def compiled() -> tuple[ml_collections.ConfigDict, steps.Trainer, TrainState]:
    config = tiny_config()
    trainer, state = _trainer(config)
    return config, trainer, state


def _leaves(state: TrainState) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree.leaves((state.params, state.batch_stats))]


def test_one_step_lowers_the_loss(compiled):
    config, trainer, state = compiled
    x, y = learnable_arrays(8, 40)
    key = jax.random.PRNGKey(0)
    state = jax.tree.map(lambda a: a.copy(), state)  # steps donate their input state
    losses = []
    for _ in range(3):
        state, out = trainer.step(state, x, y, key)
        losses.append(float(out["loss"]))
    assert losses[2] < losses[0], losses


def test_balanced_class_weights_give_each_present_class_the_same_total_weight():
    labels = np.array([0, 0, 0, 1, 5, 5], np.int32)
    weights = steps.class_weights(tiny_config(class_weighting="balanced"), labels)
    np.testing.assert_allclose(weights[[0, 1, 5]] * [3, 1, 2], 2.0, rtol=1e-6)  # n / k = 6 / 3 per class
    assert weights[[2, 3, 4, 6, 7]].tolist() == [0.0] * 5
    assert weights[labels].mean() == pytest.approx(1.0)
    assert steps.class_weights(tiny_config(), labels) is None
    with pytest.raises(ValueError, match="class_weighting"):
        steps.class_weights(tiny_config(class_weighting="inverse"), labels)


def test_the_weighted_loss_is_the_mean_of_per_class_weighted_terms(compiled):
    """The loss is linear in the class weights, equals the unweighted loss for weights of 1, and a class absent
    from the batch contributes nothing: so it is mean_i(w[y_i] * loss_i)."""
    config, _, state = compiled
    x, _ = learnable_arrays(8, 40)
    y = np.array([0, 0, 1, 1, 2, 2, 3, 3], np.int32)
    key = jax.random.PRNGKey(4)
    sharding = jax.sharding.NamedSharding(make_mesh(), jax.sharding.PartitionSpec("data"))
    weighted = jax.jit(lambda weights: steps.train_step(config, sharding, weights, None, state, x, y, key)[1]["loss"])
    unweighted_step = jax.jit(lambda: steps.train_step(config, sharding, None, None, state, x, y, key)[1]["loss"])

    def loss(weights):  # the weights as an argument: one compilation for all of them
        return float(unweighted_step() if weights is None else weighted(jnp.asarray(weights)))

    e = np.eye(8, dtype=np.float32)
    unweighted = loss(None)
    assert loss(np.ones(8, np.float32)) == pytest.approx(unweighted, rel=1e-6)
    per_class = [loss(e[c]) for c in range(4)]
    assert sum(per_class) == pytest.approx(unweighted, rel=1e-5)
    assert loss(e[0] * 2 + e[1] * 3) == pytest.approx(2 * per_class[0] + 3 * per_class[1], rel=1e-5)
    assert loss(e[7]) == 0.0
    assert min(per_class) > 0


def test_epochs_are_deterministic_and_host_fed_matches_on_device(compiled, same_training):
    config, trainer, state = compiled
    x, y = learnable_arrays()
    copy = lambda s: jax.tree.map(lambda a: a.copy(), s)  # noqa: E731
    a, history = trainer.train_epoch(copy(state), (jax.device_put(x), jax.device_put(y)), 3)
    b, _ = trainer.train_epoch(copy(state), (jax.device_put(x), jax.device_put(y)), 3)
    host, host_history = trainer.train_epoch(copy(state), (x, y), 3)
    chunked = steps.Trainer(tiny_config(host_chunk_steps=3), trainer.model, trainer.mesh)  # chunks of 3, 3, 2 steps
    assert chunked._chunk_sizes(len(y)) == [3, 3, 2]
    host3, host3_history = chunked.train_epoch(copy(state), (x, y), 3)
    assert history["loss"].shape == (len(y) // config.batch_size,)
    for u, v in zip(_leaves(a), _leaves(b)):
        np.testing.assert_array_equal(u, v)
    same_training(_leaves(state), _leaves(a), _leaves(host))  # XLA may order the sums of other programs otherwise
    same_training(_leaves(state), _leaves(a), _leaves(host3))
    np.testing.assert_allclose(history["loss"], host_history["loss"], rtol=1e-3)
    np.testing.assert_allclose(history["loss"], host3_history["loss"], rtol=1e-3)
    other, _ = trainer.train_epoch(copy(state), (jax.device_put(x), jax.device_put(y)), 4)
    assert any(not np.array_equal(u, v) for u, v in zip(_leaves(a), _leaves(other)))


def test_short_synthetic_run_is_well_above_chance(trained_workdir):
    test = json.loads((trained_workdir / "test_metrics.json").read_text())
    assert test["num_examples"] == 160
    assert test["accuracy"] > 0.6, test["accuracy"]  # chance: 0.125
    records = [json.loads(line) for line in (trained_workdir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == list(range(1, 13))
    for key in ("step", "train_loss", "train_accuracy", "val_accuracy", "val_unweighted_accuracy", "epoch_seconds",
                "train_examples_per_second"):
        assert all(np.isfinite(r[key]) for r in records), key
    assert records[-1]["train_loss"] < records[0]["train_loss"]
    assert list((trained_workdir / "tensorboard").glob("events.out.tfevents.*"))
    best = max(records, key=lambda r: r["val_unweighted_accuracy"])
    assert test["checkpoint_step"] == best["step"]



def test_predict_scans_batches_and_matches_the_model_window_by_window(compiled, monkeypatch):
    config, trainer, state = compiled
    monkeypatch.setattr(steps, "PREDICT_BATCHES_PER_CALL", 2)  # 37 windows, batches of 8: calls of 2, 2 and 1 batch
    x, _ = learnable_arrays(37, frames=config.window_frames)
    variables = model_variables(state)
    classifier = steps.Classifier(trainer.model, trainer.mesh, batch_size=8)
    probs = classifier.predict(variables, {"mfcc": x["mfcc"].astype(np.float64)})
    assert probs.shape == (37, 8) and probs.dtype == np.float32
    expected = jax.nn.softmax(trainer.model.apply(variables, x, train=False))
    np.testing.assert_allclose(probs, expected, rtol=1e-5, atol=1e-6)
    assert classifier.predict(variables, {"mfcc": x["mfcc"][:0]}).shape == (0, 8)


def test_held_out_class_metrics_restrict_the_decision(compiled):
    config, trainer, state = compiled
    x, y = learnable_arrays(48, frames=config.window_frames)
    arrays = input_pipeline.Arrays({"mfcc": x["mfcc"].reshape(16, 3, *x["mfcc"].shape[1:])}, y[::3] % 2 * 4,
                                   np.array(["a", "b"] * 8))
    result = evaluate.evaluate(trainer, model_variables(state), arrays, ("neutral", "anger"))
    probs = trainer.predict(model_variables(state), x).reshape(16, 3, -1).mean(axis=1)
    assert result["accuracy"] == metrics.classification_metrics(arrays.y, probs)["accuracy"]
    held_out = result["held_out_classes"]
    assert held_out["classes"] == ["neutral", "anger"]
    matrix = np.asarray(held_out["confusion_matrix"])
    assert matrix.sum() == 16 and matrix[:, [1, 2, 3, 5, 6, 7]].sum() == 0  # only neutral (0) and anger (4)
    expected = metrics.classification_metrics(arrays.y, metrics.restrict(probs, [0, 4]), {"corpus": arrays.corpus})
    assert held_out["accuracy"] == expected["accuracy"] and held_out["per_corpus"] == expected["per_corpus"]
    assert "held_out_classes" not in evaluate.evaluate(trainer, model_variables(state), arrays)

def test_resume_gives_the_same_state_as_an_uninterrupted_run(tmp_path, synthetic_data_dir, compilation_cache):
    # A constant schedule: the cosine one depends on config.epochs, which this test changes between runs.
    config = tiny_config(data_dir=synthetic_data_dir, batch_size=32, schedule="constant", warmup_epochs=0)
    train.train_and_evaluate(config, tmp_path / "straight")
    config.epochs = 1
    train.train_and_evaluate(config, tmp_path / "resumed")
    config.epochs = 2
    train.train_and_evaluate(config, tmp_path / "resumed")
    (_, straight, _, s1), (_, resumed, _, s2) = (checkpoints.restore(tmp_path / d, "latest")
                                                 for d in ("straight", "resumed"))
    assert s1 == s2 == int(straight.step) == 2 * (640 // 32)
    for u, v in zip(_leaves(straight), _leaves(resumed)):
        np.testing.assert_array_equal(u, v)
    lines = (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]


def test_bfloat16_compute_trains_like_float32_with_float32_params_and_statistics(compiled):
    _, trainer, state = compiled
    mixed, mixed_state = _trainer(tiny_config(dtype="bfloat16"))
    x, y = learnable_arrays()
    variables = lambda s: {"params": s.params, "batch_stats": s.batch_stats}  # noqa: E731
    jaxpr = str(jax.make_jaxpr(lambda v, x: mixed.model.apply(v, x, train=False))(variables(mixed_state),
                                                                                   _frames(x, 32)))
    assert "bf16[64," in jaxpr  # activations of the batch are computed in bfloat16
    runs = {}
    for name, (t, s) in {"float32": (trainer, jax.tree.map(lambda a: a.copy(), state)),
                         "bfloat16": (mixed, mixed_state)}.items():
        data, losses = (jax.device_put(x), jax.device_put(y)), []
        for epoch in range(2):
            s, history = t.train_epoch(s, data, epoch)
            losses.append(history["loss"])
        runs[name] = np.concatenate(losses), _leaves(s), s
    (loss32, leaves32, _), (loss16, leaves16, trained) = runs["float32"], runs["bfloat16"]
    assert {leaf.dtype for leaf in leaves16} == {np.dtype(np.float32)}  # params and BatchNorm statistics
    np.testing.assert_allclose(loss16, loss32, atol=0.02)  # bfloat16 keeps ~3 significant digits
    assert max(np.abs(u - v).max() for u, v in zip(leaves32, _leaves(state))) > 0.1  # training moved them ...
    for u, v in zip(leaves16, leaves32):
        np.testing.assert_allclose(u, v, atol=0.02)  # ... and the same way in bfloat16
    probs = mixed.predict(variables(trained), _frames(x, 32))
    assert probs.dtype == np.float32 and probs.shape == (len(y), 8)


def test_a_refit_run_trains_on_validation_too_and_keeps_its_last_epoch(tmp_path, synthetic_data_dir,
                                                                         compilation_cache):
    config = tiny_config(data_dir=synthetic_data_dir, epochs=3)
    plain = protocols.load_splits(config)
    config.refit = True
    test = train.train_and_evaluate(config, tmp_path / "refit")
    records = [json.loads(line) for line in (tmp_path / "refit" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3] and not any("val_accuracy" in r for r in records)
    steps_per_epoch = (len(plain["train"]) + len(plain["validation"])) // config.batch_size
    assert test["checkpoint_step"] == records[-1]["step"] == 3 * steps_per_epoch
    assert test["num_examples"] == len(plain["test"])
    assert evaluate.evaluate_checkpoint(tmp_path / "refit")["accuracy"] == test["accuracy"]
    with pytest.raises(train.TrainingError, match="trained with config.refit.*--split=test"):
        evaluate.evaluate_checkpoint(tmp_path / "refit", split="validation")
    config.refit, config.epochs = False, 4  # another training set: another workdir
    with pytest.raises(train.TrainingError, match="refit: True there, False now"):
        train.train_and_evaluate(config, tmp_path / "refit")


def test_a_run_on_splits_in_memory_reads_no_prepared_data(tmp_path, synthetic_data_dir, compilation_cache):
    config = tiny_config(epochs=1, data_dir=synthetic_data_dir)
    splits = protocols.load_splits(config)
    expected = train.train_and_evaluate(config, tmp_path / "read")
    config.data_dir = str(tmp_path / "nothing-prepared-here")
    got = train.train_and_evaluate(config, tmp_path / "given", splits)
    assert got["confusion_matrix"] == expected["confusion_matrix"] and got["accuracy"] == expected["accuracy"]
    assert not (tmp_path / "nothing-prepared-here").exists()


def test_a_workdir_that_used_a_removed_option_or_lacks_a_field_is_refused_by_name(tmp_path, trained_workdir):
    """Options that did not pay were removed: a workdir trained with one cannot be rebuilt as it was trained, and one
    whose config lacks a field this version reads was written by an older emojax; both are refused naming the field,
    while one that used none of them (the removed fields at their off values) still restores."""
    config, state, normalization, step = checkpoints.restore(trained_workdir)
    saved = {**config.to_dict(), "steps_per_epoch": int(config.steps_per_epoch)}
    cases = {"ema": ({**saved, "ema_decay": 0.999}, "ema_decay=0.999"),
             "off": ({**saved, "ema_decay": 0.0, "mixup_alpha": 0.0, "deltas": 0, "teacher_workdir": "",
                      "distill_weight": 0.5}, None),
             "old": ({k: v for k, v in saved.items() if k != "pitch"}, "lacks the field\\(s\\) pitch"),
             "attention": ({**saved, "pooling": "attention"}, "pooling:? 'attention'")}
    for name, (saved_config, message) in cases.items():
        manager = checkpoints.checkpoint_manager(tmp_path / name, writer=True)
        checkpoints.save(manager, state, normalization, saved_config, {checkpoints.BEST_METRIC: 0.5})
        manager.close()
        if message is None:
            restored = checkpoints.restore(tmp_path / name)
            assert "ema_decay" not in restored[0] and int(restored[1].step) == int(state.step)
            continue
        with pytest.raises(train.TrainingError, match=message):
            checkpoints.restore(tmp_path / name)
        with pytest.raises(train.TrainingError, match=message):
            train.train_and_evaluate(ml_collections.ConfigDict(config.to_dict()), tmp_path / name)


def test_readers_of_a_workdir_without_checkpoints_create_nothing(tmp_path):
    from emojax import inference

    empty = tmp_path / "empty"
    empty.mkdir()
    for workdir in (tmp_path / "nonexistent", empty):
        message = re.escape(f"no checkpoints in {workdir / checkpoints.CHECKPOINT_DIR}: train first with python "
                            f"train.py --workdir {workdir}")
        for read in (checkpoints.restore, evaluate.evaluate_checkpoint, inference.Predictor.from_workdir):
            with pytest.raises(FileNotFoundError, match=message):
                read(workdir)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]
    assert not list(empty.iterdir())
