"""Flax Linen models over MFCC windows.

Inputs are the input pipeline's normalised windows ``{"mfcc": (batch, coefficients, frames)}``, with
``"pitch": (batch, 2, frames)`` for a model that reads pitch (height = row, width = time frame); outputs are logits
``(batch, num_classes)``. Parameters are float32; ``dtype`` sets the computation type (``jnp.bfloat16`` for
mixed precision; BatchNorm statistics stay float32).

``SeedCNN`` is the reference network exactly; ``CNN`` is our configurable one (wider and deeper, residual blocks,
statistics pooling over time so that any number of frames works, pitch as input channels). ``create_model`` builds
either from a config. Their layers ``Conv3x3``, ``max_pool`` and ``BatchNorm`` compute what Flax's
``nn.Conv``, ``nn.max_pool`` and ``nn.BatchNorm`` compute, written for speed on XLA:CPU (each says what it gained).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from emojax.labels import NUM_CLASSES, class_names

# Keras defaults, which the reference used: Glorot-uniform kernels, BatchNorm momentum 0.99, epsilon 1e-3.
_KERNEL_INIT = nn.initializers.glorot_uniform()
_BN_EPSILON = 1e-3
_BN_MOMENTUM = 0.99


# How ``Conv3x3`` computes: "auto" (matrix products on CPU, ``lax.conv`` on GPU/TPU), "matmul" or "lax".
CONV_IMPLEMENTATIONS = ("auto", "matmul", "lax")
CONV_IMPLEMENTATION = "auto"


def conv_implementation() -> str:
    """``CONV_IMPLEMENTATION`` resolved for the default backend: "matmul" or "lax"."""
    if CONV_IMPLEMENTATION not in CONV_IMPLEMENTATIONS:
        raise ValueError(f"models.CONV_IMPLEMENTATION must be one of {CONV_IMPLEMENTATIONS}, "
                         f"got {CONV_IMPLEMENTATION!r}")
    if CONV_IMPLEMENTATION == "auto":
        return "matmul" if jax.default_backend() == "cpu" else "lax"
    return CONV_IMPLEMENTATION


class Conv3x3(nn.Module):
    """3x3 'same' convolution (NHWC): matrix products on CPU, the backend's convolution elsewhere.

    Same parameters as ``nn.Conv(features, (3, 3), padding="SAME")`` (``kernel`` (3, 3, C_in, features),
    ``bias``); ``conv_implementation()`` picks the form. XLA:CPU runs convolutions inside ``lax.scan`` (our fast
    path: a scanned epoch) many times slower than matrix products: on the 2-core dev machine a scanned SeedCNN
    epoch ran at 30 examples/s with ``lax.conv``, about 250 with im2col and about 20 % faster again with the nine
    per-tap products below (XLA:CPU's 9-way concatenation of an im2col is slow). On a GPU, ``lax.conv`` (cuDNN)
    is the faster form (BENCHMARKS.md, "Training speed", GPU).
    """

    features: int
    use_bias: bool = True
    kernel_init: Any = _KERNEL_INIT
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        """x: (B, H, W, C_in) -> (B, H, W, features)."""
        batch, height, width, channels = x.shape
        kernel = self.param("kernel", self.kernel_init, (3, 3, channels, self.features), jnp.float32)
        kernel = kernel.astype(self.dtype)
        if self.use_bias:
            bias = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32).astype(self.dtype)
        if conv_implementation() == "lax":
            y = jax.lax.conv_general_dilated(x.astype(self.dtype), kernel, (1, 1), "SAME",
                                             dimension_numbers=("NHWC", "HWIO", "NHWC"))
            return y + bias if self.use_bias else y
        padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
        taps = [padded[:, i:i + height, j:j + width, :] for i in range(3) for j in range(3)]
        if channels <= 3:  # im2col of a 1-3 channel input: one (B*H*W, 9 C_in) x (9 C_in, features) product
            y = jnp.concatenate(taps, axis=-1).reshape(-1, 9 * channels) @ kernel.reshape(9 * channels, self.features)
        else:  # nine (B*H*W, C_in) x (C_in, features) products, summed: no 9x patch copy
            y = sum(tap.reshape(-1, channels) @ kernel[t // 3, t % 3] for t, tap in enumerate(taps))
        y = y.reshape(batch, height, width, self.features)
        return y + bias if self.use_bias else y


def max_pool(x: jnp.ndarray, window: tuple[int, int]) -> jnp.ndarray:
    """Non-overlapping max pooling ('VALID': trailing rows/columns that do not fill a window are dropped).

    x: (B, H, W, C) -> (B, H // wh, W // ww, C). Same values as ``nn.max_pool(x, window, strides=window)``
    and the same gradient where a window's maximum is unique (at ties it is shared equally among the tied
    inputs, where select-and-scatter gives it all to the first). Written as a reshape and a max so that XLA:CPU
    differentiates it with a cheap mask instead of its slow select-and-scatter (a scanned SeedCNN epoch ran
    1.43x faster on the 2-core dev machine).
    """
    batch, height, width, channels = x.shape
    wh, ww = window
    x = x[:, : height // wh * wh, : width // ww * ww]
    return x.reshape(batch, height // wh, wh, width // ww, ww, channels).max(axis=(2, 4))


def _normalize(x: jnp.ndarray, mean: jnp.ndarray, inv_std: jnp.ndarray, scale: jnp.ndarray, bias: jnp.ndarray
               ) -> jnp.ndarray:
    """``(x - mean) * inv_std * scale + bias`` as one multiply-add per value: x (..., C) -> float32 (..., C)."""
    multiplier = scale * inv_std
    return x.astype(jnp.float32) * multiplier + (bias - mean * multiplier)


def _batch_norm_forward(x: jnp.ndarray, scale: jnp.ndarray, bias: jnp.ndarray, epsilon: float
                        ) -> tuple[tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray], tuple[jnp.ndarray, ...]]:
    axes = tuple(range(x.ndim - 1))
    x32 = x.astype(jnp.float32)
    mean = x32.mean(axes)
    var = jnp.maximum(jnp.square(x32).mean(axes) - jnp.square(mean), 0.0)
    inv_std = jax.lax.rsqrt(var + epsilon)
    y = _normalize(x32, mean, inv_std, scale, bias).astype(x.dtype)
    return (y, mean, var), (x, mean, inv_std, scale)


def _batch_norm_backward(epsilon: float, residuals: tuple[jnp.ndarray, ...],
                         cotangents: tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]
                         ) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    x, mean, inv_std, scale = residuals
    dy, dmean, dvar = cotangents
    axes = tuple(range(x.ndim - 1))
    count = x.size // x.shape[-1]
    x32, dy32 = x.astype(jnp.float32), dy.astype(jnp.float32)
    dbias = dy32.sum(axes)
    dscale = ((dy32 * x32).sum(axes) - mean * dbias) * inv_std  # sum of dy * (x - mean) * inv_std
    multiplier = scale * inv_std
    # dx = dy * multiplier + x * per_x + per_channel: the direct path plus the paths through mean and var (and the
    # cotangents of the returned mean and var), all affine in x per channel.
    per_x = (2.0 * dvar - multiplier * inv_std * dscale) / count
    per_channel = (dmean - multiplier * dbias) / count - mean * per_x
    dx = (dy32 * multiplier + x32 * per_x + per_channel).astype(x.dtype)
    return dx, dscale, dbias


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def batch_norm_train(x: jnp.ndarray, scale: jnp.ndarray, bias: jnp.ndarray, epsilon: float
                     ) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """Training-mode batch normalisation over every axis but the last, with a hand-derived gradient.

    x: (..., C) -> (y (..., C) in x's dtype, batch mean (C,), batch variance (C,) float32); ``scale``, ``bias``:
    (C,) float32. ``y = (x - mean) / sqrt(var + epsilon) * scale + bias``; statistics in float32, the variance as
    ``E[x^2] - E[x]^2`` (as Flax computes it). The gradient takes two passes over x (one pair of reductions, one
    elementwise pass) where autodiff of the same formula took more: the seed CNN's scanned training step ran
    about 10 % faster on a 2-core CPU (BENCHMARKS.md, "Training speed").
    """
    return _batch_norm_forward(x, scale, bias, epsilon)[0]


batch_norm_train.defvjp(_batch_norm_forward, _batch_norm_backward)


class BatchNorm(nn.Module):
    """Batch normalisation over every axis but the last, with ``batch_norm_train``'s gradient in training mode.

    Same variables (``params``: ``scale``, ``bias``; ``batch_stats``: ``mean``, ``var``, float32) and results as
    ``nn.BatchNorm(use_running_average, momentum, epsilon)`` with Keras's defaults (momentum 0.99, epsilon 1e-3),
    so checkpoints are interchangeable. x: (..., C) -> (..., C) in ``dtype``.
    """

    use_running_average: bool
    momentum: float = _BN_MOMENTUM
    epsilon: float = _BN_EPSILON
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        features = x.shape[-1]
        scale = self.param("scale", nn.initializers.ones, (features,), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (features,), jnp.float32)
        running_mean = self.variable("batch_stats", "mean", jnp.zeros, (features,), jnp.float32)
        running_var = self.variable("batch_stats", "var", jnp.ones, (features,), jnp.float32)
        if self.use_running_average:
            inv_std = jax.lax.rsqrt(running_var.value + self.epsilon)
            return _normalize(x, running_mean.value, inv_std, scale, bias).astype(self.dtype)
        y, mean, var = batch_norm_train(x, scale, bias, self.epsilon)
        if not self.is_initializing():
            running_mean.value = self.momentum * running_mean.value + (1.0 - self.momentum) * mean
            running_var.value = self.momentum * running_var.value + (1.0 - self.momentum) * var
        return y.astype(self.dtype)


def _nhwc(x: jnp.ndarray, dtype: Any) -> jnp.ndarray:
    """(B, H, W) or (B, H, W, 1) -> (B, H, W, 1) in ``dtype``."""
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise ValueError(f"expected MFCC windows (batch, coefficients, frames[, 1]), got shape {x.shape}")
    return x.astype(dtype)


class SeedCNN(nn.Module):
    """The reference 2D CNN: 56,040 values (55,656 params, 384 batch statistics) for (25, 216) inputs.

    Four blocks of Conv 3x3 (32, 'same') + ReLU -> BatchNorm -> MaxPool 2x2 -> Dropout; Flatten (416 for
    25 x 216) -> Dense 64 + ReLU -> Dropout -> BatchNorm -> Dropout -> Dense ``num_classes``.
    """

    num_classes: int = NUM_CLASSES
    dropout_rate: float = 0.2
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, inputs: dict[str, jnp.ndarray], *, train: bool) -> jnp.ndarray:
        """inputs: {"mfcc": (B, 25, 216)} -> logits (B, num_classes) float32."""
        x = _nhwc(inputs["mfcc"], self.dtype)
        for _ in range(4):
            x = Conv3x3(32, dtype=self.dtype)(x)
            x = nn.relu(x)
            x = BatchNorm(use_running_average=not train, dtype=self.dtype)(x)
            x = max_pool(x, (2, 2))
            x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        x = x.reshape((x.shape[0], -1))
        x = nn.relu(nn.Dense(64, kernel_init=_KERNEL_INIT, dtype=self.dtype)(x))
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        x = BatchNorm(use_running_average=not train, dtype=self.dtype)(x)
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        x = nn.Dense(self.num_classes, kernel_init=_KERNEL_INIT, dtype=self.dtype)(x)
        return x.astype(jnp.float32)


class ConvBlock(nn.Module):
    """Conv 3x3 -> BN -> ReLU (-> Conv 3x3 -> BN, with a 1x1-projected skip when ``residual``) -> ReLU ->
    MaxPool 2x2 (frequency pooling stops once the height is 1) -> Dropout. (B, H, W, C) -> (B, H', W/2, features).
    """

    features: int
    residual: bool
    dropout_rate: float
    frozen: bool = False  # BatchNorm normalises with its running statistics in training too (a frozen encoder)
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, *, train: bool) -> jnp.ndarray:
        def norm(y: jnp.ndarray) -> jnp.ndarray:
            return BatchNorm(use_running_average=not train or self.frozen, dtype=self.dtype)(y)

        def conv(y: jnp.ndarray) -> jnp.ndarray:
            return Conv3x3(self.features, use_bias=False, kernel_init=nn.initializers.lecun_normal(),
                           dtype=self.dtype)(y)

        y = nn.relu(norm(conv(x)))
        if self.residual:
            y = norm(conv(y))
            # A Dense layer over channels is the 1x1 projection of the skip path.
            skip = x if x.shape[-1] == self.features else norm(
                nn.Dense(self.features, use_bias=False, dtype=self.dtype)(x))
            y = nn.relu(y + skip)
        window = (2 if y.shape[1] >= 2 else 1, 2)
        y = max_pool(y, window)
        return nn.Dropout(self.dropout_rate, deterministic=not train)(y)


class CNN(nn.Module):
    """Configurable CNN: ``ConvBlock`` per entry of ``widths``, then a head.

    With ``pitch``, the input's per-frame pitch rows (``features.clip_pitch``: log f0 and periodicity) are given to
    every MFCC row as extra input channels, so each convolution sees the pitch of its frames. ``pooling="stats"``
    averages over frequency and takes the mean and standard deviation over time (any number of frames works);
    ``"flatten"`` flattens (fixed input size, like ``SeedCNN``).
    Head: Dropout -> Dense ``hidden`` + ReLU -> Dropout -> Dense ``num_classes``; ``hidden=0`` leaves out the hidden
    layer (Dropout -> Dense ``num_classes`` on the pooled features), which frees its parameters for convolutions.
    ``frozen_encoder``: the blocks' BatchNorm layers use their running statistics in training too, for fine-tuning
    the head alone (``config.freeze="encoder"``), so that training and prediction see the same features.
    """

    widths: Sequence[int] = (32, 64, 128, 128)
    residual: bool = True
    pooling: str = "stats"
    hidden: int = 128
    dropout_rate: float = 0.2
    pitch: bool = False
    num_classes: int = NUM_CLASSES
    frozen_encoder: bool = False
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, inputs: dict[str, jnp.ndarray], *, train: bool) -> jnp.ndarray:
        """inputs: {"mfcc": (B, H, W)} and, with ``pitch``, {"pitch": (B, P, W)} -> logits (B, num_classes) float32."""
        if self.hidden < 0:
            raise ValueError(f"hidden must be >= 0 (0: no hidden layer), got {self.hidden}")
        x = _nhwc(inputs["mfcc"], jnp.float32)
        if self.pitch:
            pitch = jnp.swapaxes(inputs["pitch"].astype(jnp.float32), 1, 2)[:, None]  # (B, 1, W, P)
            x = jnp.concatenate([x, jnp.broadcast_to(pitch, (*x.shape[:3], pitch.shape[-1]))], axis=-1)
        x = x.astype(self.dtype)
        for width in self.widths:
            x = ConvBlock(width, self.residual, self.dropout_rate, self.frozen_encoder, self.dtype)(x, train=train)
        if self.pooling == "stats":
            x = x.astype(jnp.float32).mean(axis=1)  # (B, W, C)
            x = jnp.concatenate([x.mean(axis=1), jnp.sqrt(x.var(axis=1) + 1e-5)], axis=-1).astype(self.dtype)
        elif self.pooling == "flatten":
            x = x.reshape((x.shape[0], -1))
        else:
            raise ValueError(f"unknown pooling {self.pooling!r}; use 'stats' or 'flatten'")
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        if self.hidden:
            x = nn.relu(nn.Dense(self.hidden, dtype=self.dtype)(x))
            x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        return nn.Dense(self.num_classes, dtype=self.dtype)(x).astype(jnp.float32)


def head_layers(params: Any) -> tuple[str, ...]:
    """The names of the dense layers after pooling (the head) in a ``CNN`` or ``SeedCNN`` parameter tree, in order:
    the last one is the output layer."""
    return tuple(sorted((name for name in params if name.startswith("Dense_")), key=lambda n: int(n.split("_")[1])))


def create_model(config: ml_collections.ConfigDict) -> nn.Module:
    """The model ``config.model`` names (``"seed_cnn"`` or ``"cnn"``), computing in ``config.dtype``, with one output
    per class of ``labels.class_names(config)``."""
    dtype = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}.get(config.dtype)
    if dtype is None:
        raise ValueError(f"config.dtype must be 'float32' or 'bfloat16', got {config.dtype!r}")
    if config.model == "seed_cnn":
        if config.pitch:
            raise ValueError("the reference network (config.model='seed_cnn') takes MFCCs only; set "
                             "config.pitch=False, or config.model='cnn'")
        if config.get("freeze", "none") != "none":
            raise ValueError("config.freeze needs config.model='cnn'; the reference network trains whole")
        return SeedCNN(num_classes=len(class_names(config)), dropout_rate=config.dropout_rate, dtype=dtype)
    if config.model == "cnn":
        return CNN(widths=tuple(config.widths), residual=config.residual, pooling=config.pooling,
                   hidden=config.hidden, dropout_rate=config.dropout_rate, pitch=config.pitch,
                   num_classes=len(class_names(config)), frozen_encoder=config.get("freeze", "none") == "encoder",
                   dtype=dtype)
    raise ValueError(f"unknown config.model {config.model!r}; use 'seed_cnn' or 'cnn'")
