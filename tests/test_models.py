"""Models: the reference's exact size, every config's model size, the im2col convolution, BatchNorm, any-length CNN,
pitch channels, mixed precision."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from emojax import models


def _count(tree) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def test_seed_cnn_has_the_reference_size():
    init = lambda: models.SeedCNN().init(jax.random.PRNGKey(0), {"mfcc": jnp.zeros((1, 25, 216))},  # noqa: E731
                                         train=False)
    variables = jax.eval_shape(init)
    assert _count(variables["params"]) == 55_656
    assert _count(variables["batch_stats"]) == 384
    assert _count(variables) == 56_040
    # Flatten sees 1 x 13 x 32 = 416 values, as in the reference.
    assert variables["params"]["Dense_0"]["kernel"].shape == (416, 64)


@pytest.mark.parametrize("name, params", [("seed", 55_656), ("demo", None), ("small", 58_376), ("default", 131_320),
                                          ("speaker", 131_320), ("large", 521_704), ("xlarge", 1_171_160)])
def test_every_config_builds_its_model_with_the_documented_size(name, params):
    import importlib
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the configs/ package
    config = importlib.import_module(f"configs.{name}").get_config()
    shapes = jax.eval_shape(lambda: models.create_model(config).init(
        jax.random.PRNGKey(0), {"mfcc": jnp.zeros((1, config.n_mfcc, config.window_frames))}, train=False))
    assert set(shapes) == {"params", "batch_stats"}
    if params is not None:  # the counts BENCHMARKS.md and the configs' docstrings state
        assert _count(shapes["params"]) == params


def _variables(model: nn.Module, x: dict[str, jnp.ndarray]) -> dict:
    """Random parameters of the right shapes without compiling ``init`` (XLA:CPU compiles its PRNG slowly)."""
    shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x, train=False))
    rng = np.random.default_rng(0)
    params = jax.tree.map(lambda s: jnp.asarray(rng.normal(0.0, 0.2, s.shape), jnp.float32), shapes["params"])
    return {"params": params, "batch_stats": jax.tree.map(lambda s: jnp.ones(s.shape), shapes["batch_stats"])}


@pytest.mark.parametrize("implementation", ["matmul", "lax"])
@pytest.mark.parametrize("channels", [1, 3, 5])  # im2col (1-3 input channels) and per-tap products
def test_conv3x3_equals_flax_conv(channels, implementation, monkeypatch):
    monkeypatch.setattr(models, "CONV_IMPLEMENTATION", implementation)
    assert models.conv_implementation() == implementation
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 7, 11, channels))
    rng = np.random.default_rng(0)
    params = {"params": {"kernel": jnp.asarray(rng.normal(size=(3, 3, channels, 6)), jnp.float32),
                         "bias": jnp.asarray(rng.normal(size=(6,)), jnp.float32)}}
    reference = nn.Conv(6, (3, 3), padding="SAME").apply(params, x)
    np.testing.assert_allclose(models.Conv3x3(6).apply(params, x), reference, rtol=1e-4, atol=1e-4)


def test_conv_implementation_auto_and_unknown(monkeypatch):
    assert models.conv_implementation() == ("matmul" if jax.default_backend() == "cpu" else "lax")
    monkeypatch.setattr(models, "CONV_IMPLEMENTATION", "cudnn")
    with pytest.raises(ValueError, match="CONV_IMPLEMENTATION must be one of"):
        models.conv_implementation()


@pytest.mark.parametrize("shape,window", [((2, 25, 216, 3), (2, 2)), ((1, 1, 27, 2), (1, 2))])
def test_max_pool_equals_flax_max_pool(shape, window):
    x = jax.random.normal(jax.random.PRNGKey(1), shape)  # no ties: the gradients must agree too
    ours, theirs = models.max_pool(x, window), nn.max_pool(x, window, strides=window)
    np.testing.assert_array_equal(ours, theirs)
    weights = jax.random.normal(jax.random.PRNGKey(2), ours.shape)
    grad = lambda pool: jax.grad(lambda v: (pool(v) * weights).sum())(x)
    np.testing.assert_array_equal(grad(lambda v: models.max_pool(v, window)),
                                  grad(lambda v: nn.max_pool(v, window, strides=window)))


def _batch_norm_results(module: nn.Module, variables: dict, x: jnp.ndarray) -> tuple:
    """Training-mode output, gradients (params and x) of a loss that weighs every output differently, new
    batch statistics, and the eval-mode output with those statistics."""
    weights = jax.random.normal(jax.random.PRNGKey(3), x.shape)

    def loss(params, x):
        y, updates = module.apply({"params": params, "batch_stats": variables["batch_stats"]}, x,
                                  mutable=["batch_stats"])
        return (jnp.sin(y) * weights).sum(), (y, updates["batch_stats"])

    (_, (y, stats)), grads = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(variables["params"], x)
    evaluated = module.clone(use_running_average=True).apply({"params": variables["params"], "batch_stats": stats}, x)
    return y, grads, stats, evaluated


def test_batch_norm_equals_flax_batch_norm_with_keras_defaults():
    x = 3.0 * jax.random.normal(jax.random.PRNGKey(1), (4, 5, 6, 3)) + jnp.array([1.0, -2.0, 0.5])
    ours = models.BatchNorm(use_running_average=False)
    theirs = nn.BatchNorm(use_running_average=False, momentum=0.99, epsilon=1e-3)
    shapes = jax.eval_shape(ours.init, jax.random.PRNGKey(0), x)
    assert jax.tree.map(lambda s: (s.shape, s.dtype), shapes) == jax.tree.map(
        lambda s: (s.shape, s.dtype), jax.eval_shape(theirs.init, jax.random.PRNGKey(0), x))  # checkpoints fit both
    variables = {"params": {"scale": jnp.array([1.5, -0.7, 0.2]), "bias": jnp.array([0.1, 0.0, -1.0])},
                 "batch_stats": {"mean": jnp.array([0.5, 0.0, -0.5]), "var": jnp.array([2.0, 1.0, 0.5])}}
    for a, b in zip(jax.tree.leaves(_batch_norm_results(ours, variables, x)),
                    jax.tree.leaves(_batch_norm_results(theirs, variables, x)), strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-4)


def test_batch_norm_train_gradient_includes_its_returned_statistics():
    x = 2.0 * jax.random.normal(jax.random.PRNGKey(1), (7, 9, 2)) + 1.0
    scale, bias = jnp.array([0.8, -1.3]), jnp.array([0.3, 0.1])

    def reference(x, scale, bias):
        mean, var = x.mean((0, 1)), x.var((0, 1))
        return (x - mean) / jnp.sqrt(var + 1e-3) * scale + bias, mean, var

    def loss(function):
        def value(x, scale, bias):
            y, mean, var = function(x, scale, bias)
            return jnp.cos(y).sum() + (mean * jnp.array([2.0, -1.0])).sum() + (var ** 2).sum()
        return jax.grad(value, argnums=(0, 1, 2))(x, scale, bias)

    for a, b in zip(loss(lambda *args: models.batch_norm_train(*args, 1e-3)), loss(reference), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_cnn_takes_any_number_of_frames():
    model = models.CNN(widths=(8, 16), hidden=16)
    variables = _variables(model, {"mfcc": jnp.zeros((1, 25, 216))})
    apply = jax.jit(lambda v, x: model.apply(v, x, train=False))
    for frames in (40, 500):
        logits = apply(variables, {"mfcc": jnp.ones((3, 25, frames))})
        assert logits.shape == (3, 8) and bool(jnp.isfinite(logits).all())


def test_hidden_zero_classifies_the_pooled_statistics_directly():
    """``hidden=0``: one Dense from the mean and std of the last block's 16 channels to the 8 logits."""
    x = {"mfcc": jnp.asarray(np.random.default_rng(0).normal(size=(2, 25, 40)), jnp.float32)}
    direct, with_hidden = models.CNN(widths=(8, 16), hidden=0), models.CNN(widths=(8, 16), hidden=16)
    v_direct, v_hidden = _variables(direct, x), _variables(with_hidden, x)
    assert list(v_direct["params"]) == ["ConvBlock_0", "ConvBlock_1", "Dense_0"]
    assert v_direct["params"]["Dense_0"]["kernel"].shape == (2 * 16, 8)
    assert _count(v_hidden["params"]) - _count(v_direct["params"]) == (32 * 16 + 16) + (16 * 8 + 8) - (32 * 8 + 8)
    logits = direct.apply(v_direct, x, train=False)
    assert logits.shape == (2, 8) and bool(jnp.isfinite(logits).all())


def test_pitch_rows_are_input_channels_of_every_mfcc_row():
    """``pitch=True``: the 2 pitch rows of each frame become 2 more input channels of every MFCC row (2 x 9 x 8 more
    weights); with those channels' weights zero, the logits are the MFCC rows' alone, and a pitch contour changes them
    otherwise."""
    rng = np.random.default_rng(0)
    x = {"mfcc": jnp.asarray(rng.normal(size=(2, 25, 40)), jnp.float32)}
    xp = {**x, "pitch": jnp.asarray(rng.normal(size=(2, 2, 40)), jnp.float32)}
    plain = models.CNN(widths=(8, 16), residual=False, hidden=16)
    with_pitch = models.CNN(widths=(8, 16), residual=False, hidden=16, pitch=True)
    v_plain, v_pitch = _variables(plain, x), _variables(with_pitch, xp)
    assert _count(v_pitch["params"]) - _count(v_plain["params"]) == 2 * 9 * 8
    first = v_pitch["params"]["ConvBlock_0"]["Conv3x3_0"]["kernel"]
    assert first.shape == (3, 3, 3, 8)
    v_pitch = jax.tree.map(lambda a: a, v_plain)
    v_pitch["params"]["ConvBlock_0"]["Conv3x3_0"]["kernel"] = jnp.zeros_like(first).at[:, :, :1].set(
        v_plain["params"]["ConvBlock_0"]["Conv3x3_0"]["kernel"])
    np.testing.assert_allclose(with_pitch.apply(v_pitch, xp, train=False), plain.apply(v_plain, x, train=False),
                               rtol=1e-5, atol=1e-5)
    v_pitch["params"]["ConvBlock_0"]["Conv3x3_0"]["kernel"] = first
    flat = {**x, "pitch": jnp.zeros_like(xp["pitch"])}
    assert not np.allclose(with_pitch.apply(v_pitch, xp, train=False), with_pitch.apply(v_pitch, flat, train=False),
                           atol=1e-3)
    # A model without pitch ignores pitch rows it is given.
    np.testing.assert_array_equal(plain.apply(v_plain, xp, train=False), plain.apply(v_plain, x, train=False))
    # create_model reads config.pitch; the reference network takes MFCCs only.
    assert models.create_model(_config(pitch=True)).pitch
    with pytest.raises(ValueError, match="config.pitch=False"):
        models.create_model(_config(model="seed_cnn", pitch=True))


def _config(**overrides) -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict(dict(model="cnn", dtype="float32", dropout_rate=0.1, widths=(8, 8),
                                            residual=True, pooling="stats", hidden=16, pitch=False))
    config.update(overrides)
    return config


def test_bfloat16_computes_in_bf16_with_float32_params():
    model = models.create_model(_config(dtype="bfloat16"))
    x = {"mfcc": jnp.ones((2, 25, 64))}
    variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x, train=False))
    assert {p.dtype for p in jax.tree.leaves(variables)} == {jnp.dtype(jnp.float32)}
    assert jax.eval_shape(lambda v: model.apply(v, x, train=False), variables).dtype == jnp.float32
    intermediate = jax.make_jaxpr(lambda v: model.apply(v, x, train=False))(variables)
    assert "bf16" in str(intermediate)


@pytest.mark.parametrize("field,value,message", [("model", "vit", "unknown config.model"),
                                                 ("dtype", "float16", "config.dtype must be"),
                                                 ("pooling", "max", "unknown pooling"),
                                                 ("pooling", "attention", "unknown pooling"),
                                                 ("hidden", -1, "hidden must be >= 0")])
def test_bad_config_says_what_is_wrong(field, value, message):
    with pytest.raises(ValueError, match=message):
        model = models.create_model(_config(**{field: value}))
        jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), {"mfcc": jnp.zeros((1, 25, 64))}, train=False))
