"""Flax Linen models over MFCC windows.

Inputs are MFCC windows ``(batch, coefficients, frames)`` or NHWC ``(batch, coefficients, frames, 1)``
(height = MFCC coefficient, width = time frame), normalised by the input pipeline; outputs are logits
``(batch, num_classes)``. Parameters are float32; ``dtype`` sets the computation type (``jnp.bfloat16`` for
mixed precision; BatchNorm statistics stay float32).

``SeedCNN`` is the reference network exactly; ``CNN`` is our configurable one (wider and deeper,
residual blocks, statistics pooling over time so that any number of frames works). ``create_model``
builds either from a config.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from emojax import features
from emojax.labels import NUM_CLASSES

# Keras defaults, which the reference used: Glorot-uniform kernels, BatchNorm momentum 0.99, epsilon 1e-3.
_KERNEL_INIT = nn.initializers.glorot_uniform()
_BN_EPSILON = 1e-3
_BN_MOMENTUM = 0.99


class Conv3x3(nn.Module):
    """3x3 'same' convolution (NHWC) computed with matrix products.

    Same parameters as ``nn.Conv(features, (3, 3), padding="SAME")`` (``kernel`` (3, 3, C_in, features),
    ``bias``). XLA:CPU runs convolutions inside ``lax.scan`` (our fast path: a scanned epoch) many times
    slower than matrix products: on the 2-core dev machine a scanned SeedCNN epoch ran at 30 examples/s
    with ``lax.conv``, about 250 with im2col and about 20 % faster again with the nine per-tap products
    below (XLA:CPU's 9-way concatenation of an im2col is slow). On GPU/TPU both forms are fine.
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
        padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
        taps = [padded[:, i:i + height, j:j + width, :] for i in range(3) for j in range(3)]
        if channels <= 3:  # im2col of a 1-3 channel input: one (B*H*W, 9 C_in) x (9 C_in, features) product
            y = jnp.concatenate(taps, axis=-1).reshape(-1, 9 * channels) @ kernel.reshape(9 * channels, self.features)
        else:  # nine (B*H*W, C_in) x (C_in, features) products, summed: no 9x patch copy
            y = sum(tap.reshape(-1, channels) @ kernel[t // 3, t % 3] for t, tap in enumerate(taps))
        y = y.reshape(batch, height, width, self.features)
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32).astype(self.dtype)
        return y


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
    def __call__(self, x: jnp.ndarray, *, train: bool) -> jnp.ndarray:
        """x: (B, 25, 216[, 1]) -> logits (B, num_classes) float32."""
        x = _nhwc(x, self.dtype)
        for _ in range(4):
            x = Conv3x3(32, dtype=self.dtype)(x)
            x = nn.relu(x)
            x = nn.BatchNorm(use_running_average=not train, momentum=_BN_MOMENTUM, epsilon=_BN_EPSILON,
                             dtype=self.dtype)(x)
            x = max_pool(x, (2, 2))
            x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        x = x.reshape((x.shape[0], -1))
        x = nn.relu(nn.Dense(64, kernel_init=_KERNEL_INIT, dtype=self.dtype)(x))
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        x = nn.BatchNorm(use_running_average=not train, momentum=_BN_MOMENTUM, epsilon=_BN_EPSILON,
                         dtype=self.dtype)(x)
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
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, *, train: bool) -> jnp.ndarray:
        def norm(y: jnp.ndarray) -> jnp.ndarray:
            return nn.BatchNorm(use_running_average=not train, momentum=_BN_MOMENTUM, epsilon=_BN_EPSILON,
                                dtype=self.dtype)(y)

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

    ``deltas`` (0, 1 or 2) adds the window's deltas (``features.delta`` over time, width 9) and, with 2, its
    accelerations as input channels. ``pooling="stats"`` averages over frequency and takes the mean and standard
    deviation over time (any number of frames works); ``"flatten"`` flattens (fixed input size, like ``SeedCNN``).
    Head: Dropout -> Dense ``hidden`` + ReLU -> Dropout -> Dense ``num_classes``; ``hidden=0`` leaves out the hidden
    layer (Dropout -> Dense ``num_classes`` on the pooled features), which frees its parameters for convolutions.
    """

    widths: Sequence[int] = (32, 64, 128, 128)
    residual: bool = True
    pooling: str = "stats"
    hidden: int = 128
    dropout_rate: float = 0.2
    deltas: int = 0
    num_classes: int = NUM_CLASSES
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, *, train: bool) -> jnp.ndarray:
        """x: (B, H, W[, 1]) -> logits (B, num_classes) float32."""
        if self.deltas not in (0, 1, 2):
            raise ValueError(f"deltas must be 0, 1 or 2, got {self.deltas}")
        if self.hidden < 0:
            raise ValueError(f"hidden must be >= 0 (0: no hidden layer), got {self.hidden}")
        x = _nhwc(x, jnp.float32)
        x = jnp.concatenate([x, *(features.delta(x, order=k, axis=2) for k in range(1, self.deltas + 1))], axis=-1)
        x = x.astype(self.dtype)
        for width in self.widths:
            x = ConvBlock(width, self.residual, self.dropout_rate, self.dtype)(x, train=train)
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


def create_model(config: ml_collections.ConfigDict) -> nn.Module:
    """The model ``config.model`` names (``"seed_cnn"`` or ``"cnn"``), computing in ``config.dtype``."""
    dtype = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}.get(config.dtype)
    if dtype is None:
        raise ValueError(f"config.dtype must be 'float32' or 'bfloat16', got {config.dtype!r}")
    deltas = config.get("deltas", 0)
    if config.model == "seed_cnn":
        if deltas:
            raise ValueError("the reference network (config.model='seed_cnn') takes MFCCs only; set config.deltas=0 "
                             "or config.model='cnn'")
        return SeedCNN(dropout_rate=config.dropout_rate, dtype=dtype)
    if config.model == "cnn":
        return CNN(widths=tuple(config.widths), residual=config.residual, pooling=config.pooling,
                   hidden=config.hidden, dropout_rate=config.dropout_rate, deltas=deltas, dtype=dtype)
    raise ValueError(f"unknown config.model {config.model!r}; use 'seed_cnn' or 'cnn'")
