"""The jitted computations: the loss and one update, a scanned epoch, and class probabilities of many windows.

Parallelism: one ``Mesh`` over all devices of all processes (``state.make_mesh``) with a ``"data"`` axis. The state
is replicated, each batch is sharded on ``"data"`` (``NamedSharding``), and the step is plain ``jax.jit``: XLA
partitions it, so gradients and BatchNorm statistics are global-batch means as on one device (up to the order of
float32 sums). Host-fed path: each process transfers only the rows of every global batch that belong to its own
devices (``jax.make_array_from_callback``). On-device path: every device holds the whole training set
(replicated, a few hundred MB at most), so the scanned epoch gathers each batch locally, without communication;
only the gradients and BatchNorm statistics are reduced across devices. Outputs (losses, predictions) are
replicated, so every process reads the same numbers.

Speed: with ``config.data_on_device`` (the default) the normalised training windows are put on the device once and
an epoch is ONE jitted call, a ``lax.scan`` over steps that gathers each batch by a per-epoch permutation, crops,
augments and updates; otherwise (data that does not fit) the host gathers ``config.host_chunk_steps`` batches at a
time and one jitted scan of the same step runs them, while the host gathers the next chunk (same steps and keys;
same numbers up to float rounding). XLA:CPU runs a step about twice as fast inside a scan as in a call of its own,
hence chunks rather than single steps.

Determinism: the permutation of epoch e comes from ``fold_in(state.rng, e)`` and the crop / mask / dropout keys of
step s from ``fold_in(that, s)``, so a run resumed at an epoch boundary continues with the same data order and keys
as an uninterrupted one.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from emojax import augment, features, input_pipeline
from emojax.labels import class_names
from emojax.state import TrainState

PREDICT_BATCHES_PER_CALL = 32  # evaluation batches per jitted call of Classifier.predict (a scan over them)
Batch = dict[str, Any]  # input windows {"mfcc": (..., R, frames), ...}, as input_pipeline.Inputs


def class_weights(config: ml_collections.ConfigDict, labels: np.ndarray) -> np.ndarray | None:
    """Per-class loss weights (num_classes,) for ``config.class_weighting``: None for ``"none"``; for
    ``"balanced"``, ``n / (k * count_c)`` from the training labels (k: the classes present), so every present
    class carries the same total weight and the mean weight of an example is 1 (absent classes get 0)."""
    if config.class_weighting == "none":
        return None
    if config.class_weighting != "balanced":
        raise ValueError(f"config.class_weighting must be 'none' or 'balanced', got {config.class_weighting!r}")
    counts = np.bincount(labels, minlength=len(class_names(config))).astype(np.float64)
    present = counts > 0
    weights = np.zeros(len(counts))
    weights[present] = len(labels) / (present.sum() * counts[present])
    return weights.astype(np.float32)


def augment_batch(config: ml_collections.ConfigDict, key: jax.Array, x: Batch) -> Batch:
    """Random crop to ``config.window_frames`` (when training windows are wider) and SpecAugment masks."""
    crop_key, mask_key = jax.random.split(key)
    if x["mfcc"].shape[-1] > config.window_frames:
        x = augment.random_crop(crop_key, x, config.window_frames)
    if config.freq_masks or config.time_masks:
        x = augment.spec_augment(mask_key, x, freq_masks=config.freq_masks, max_freq_width=config.max_freq_width,
                                 time_masks=config.time_masks, max_time_width=config.max_time_width)
    return x


def step_windows(config: ml_collections.ConfigDict, normalization: input_pipeline.Normalization, key: jax.Array,
                 x: Batch) -> Batch:
    """The front end in the train step (``config.front_end="step"``): normalised training windows
    ``{"mfcc": (B, n_mfcc, window_frames + 2 crop_shift_frames)}`` of a batch of clips x
    (``input_pipeline.waveform_inputs``: "audio" (B, S) int16, "length", "frames", "peak", "level" (B,)), after the
    waveform augmentations (``augment.augment_waveforms``) drawn from ``key``.

    A clip the augmentations left unchanged keeps its whole-clip ``top_db`` peak, level (c0 mean) and frame count, so
    its windows equal the prepared ones (``input_pipeline.prepare``); a changed clip gets those of its own segment.
    """
    first, frames = input_pipeline.step_segment(config)
    audio = x["audio"].astype(jnp.float32) / features.INT16_SCALE
    wave, lengths = augment.augment_waveforms(key, audio, x["length"], config)
    changed = jnp.any(wave != audio, axis=1) | (lengths != x["length"])
    mfcc = features.segment_mfccs(wave, lengths, first + frames, jnp.where(changed, jnp.nan, x["peak"]))
    whole_frames = jnp.where(changed, features.clip_frames(lengths), x["frames"])  # of the whole (augmented) clip
    if config.utterance_normalization == "level":
        in_clip = jnp.arange(first + frames) < whole_frames[:, None]
        own_level = (mfcc[:, 0] * in_clip).sum(axis=1) / jnp.maximum(in_clip.sum(axis=1), 1)
        mfcc = mfcc.at[:, 0].add(-jnp.where(changed, own_level, x["level"])[:, None])
    rows = mfcc[:, :config.n_mfcc, first:]
    rows = jnp.where((jnp.arange(first, first + frames) < whole_frames[:, None])[:, None, :], rows, 0.0)
    mean, std = normalization.statistics["mfcc"]
    return {"mfcc": (rows - mean) / std}


def train_step(config: ml_collections.ConfigDict, batch_sharding: NamedSharding, weights: np.ndarray | None,
               windows: Callable[[jax.Array, Batch], Batch] | None, state: TrainState, x: Batch, y: jnp.ndarray,
               key: jax.Array) -> tuple[TrainState, dict[str, jnp.ndarray]]:
    """One update on a batch of training windows x ``{name: (B, R, W >= window_frames)}``, labels y (B,);
    ``weights`` (num_classes,) or None: the per-class loss weights of ``class_weights``; ``windows``: None, or the
    front end in the step (``step_windows``) that makes those windows from a batch of clips x.

    Returns the new state and {"loss", "accuracy"} of the batch (before the update).
    """
    augment_key, dropout_key = jax.random.split(key)
    if windows is not None:
        augment_key, wave_key = jax.random.split(augment_key)
        x = windows(wave_key, jax.lax.with_sharding_constraint(x, batch_sharding))
    x = jax.lax.with_sharding_constraint(augment_batch(config, augment_key, x), batch_sharding)
    y = jax.lax.with_sharding_constraint(y, batch_sharding)
    hard = jax.nn.one_hot(y, len(class_names(config)))
    targets = optax.smooth_labels(hard, config.label_smoothing)
    example_weights = jnp.ones(y.shape) if weights is None else hard @ weights

    def loss_fn(params: Any) -> tuple[jnp.ndarray, tuple[jnp.ndarray, Any]]:
        logits, updates = state.apply_fn({"params": params, "batch_stats": state.batch_stats}, x, train=True,
                                         mutable=["batch_stats"], rngs={"dropout": dropout_key})
        loss = (example_weights * optax.softmax_cross_entropy(logits, targets)).mean()
        return loss, (logits, updates["batch_stats"])

    (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    state = state.apply_gradients(grads=grads, batch_stats=batch_stats)
    return state, {"loss": loss, "accuracy": (logits.argmax(-1) == y).mean()}


def epoch_permutation(state_rng: jax.Array, epoch: int, num_examples: int, batch_size: int) -> jax.Array:
    """Batches of epoch ``epoch``: (steps, batch_size) example indices (the remainder is dropped)."""
    steps = num_examples // batch_size
    perm = jax.random.permutation(jax.random.fold_in(state_rng, epoch), num_examples)
    return perm[: steps * batch_size].reshape(steps, batch_size)


def _step_key(state_rng: jax.Array, epoch: jax.Array, step: jax.Array) -> jax.Array:
    return jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(state_rng, epoch), 1), step)


def _num_examples(x: Batch) -> int:
    return len(next(iter(x.values())))


def _gather(values: Any, indices: np.ndarray, sharding: NamedSharding) -> Any:
    """The global batches ``values[indices]`` (K, B, ...) of every leaf of ``values``, for indices (K, B), sharded
    on ``"data"`` along B: this process gathers and transfers only the rows of its own devices."""
    def one(leaf: np.ndarray) -> jax.Array:
        shape = (*indices.shape, *leaf.shape[1:])
        # The sharding splits axis 1 only, so index[1] is the device's slice of each batch and the rest is ``:``.
        return jax.make_array_from_callback(shape, sharding, lambda index: leaf[indices[:, index[1]]])

    return jax.tree.map(one, values)


class Classifier:
    """Class probabilities of many input windows under one model, in batches scanned on a mesh."""

    def __init__(self, model: nn.Module, mesh: Mesh, batch_size: int):
        """``batch_size``: windows per evaluation batch (rounded up to a multiple of the device count)."""
        self.model, self.mesh = model, mesh
        self.batch_size = math.ceil(batch_size / mesh.size) * mesh.size
        self.replicated = NamedSharding(mesh, PartitionSpec())
        self.batch_sharding = NamedSharding(mesh, PartitionSpec("data"))
        self.chunk_sharding = NamedSharding(mesh, PartitionSpec(None, "data"))
        self._predict = jax.jit(self._scan_probs, out_shardings=self.replicated)  # every process reads all

    def place(self, tree: Any) -> Any:
        """``tree`` (a state or variables) replicated over the mesh (through the host: it may be on one device)."""
        return jax.device_put(jax.device_get(tree), self.replicated)

    def _scan_probs(self, variables: dict, xs: Batch) -> jax.Array:
        """Class probabilities (K, B, C) of K batches xs ``{name: (K, B, R, frames)}``, one after another."""
        def probs(x: Batch) -> jax.Array:
            x = jax.lax.with_sharding_constraint(x, self.batch_sharding)
            return jax.nn.softmax(self.model.apply(variables, x, train=False))

        return jax.lax.map(probs, xs)

    def predict(self, variables: dict, x: Batch) -> np.ndarray:
        """Class probabilities (N, C) float32 of windows x ``{name: (N, R, frames)}`` (as the model reads them), in
        batches of ``batch_size`` (fewer windows than that: one batch of the next power of two).

        Each jitted call scans over ``PREDICT_BATCHES_PER_CALL`` batches (the remainder in one call of its own),
        gathered like the host-fed training batches, and is dispatched asynchronously, so the host prepares the next
        call's windows meanwhile. XLA:CPU runs small batches in a scan ~3x faster than large batches one call at a
        time (BENCHMARKS.md, "Training speed").
        """
        n = _num_examples(x)
        if not n:
            return np.zeros((0, self.model.num_classes), np.float32)
        x = {name: np.asarray(v, np.float32) for name, v in x.items()}
        # Fewer windows than a batch: a batch of the next power of two (a few compiled shapes, little padding).
        size = min(self.batch_size, math.ceil((1 << (n - 1).bit_length()) / self.mesh.size) * self.mesh.size)
        num_batches = math.ceil(n / size)
        # Window indices (batches, B); the last batch is filled up with copies of the last window (dropped).
        indices = np.minimum(np.arange(num_batches * size), n - 1).reshape(num_batches, size)
        out = [self._predict(variables, _gather(x, indices[first:first + PREDICT_BATCHES_PER_CALL],
                                                self.chunk_sharding))
               for first in range(0, num_batches, PREDICT_BATCHES_PER_CALL)]
        return np.concatenate([probs.reshape(-1, self.model.num_classes) for probs in jax.device_get(out)])[:n]


class Trainer(Classifier):
    """The compiled training functions of one config, model and mesh, and its ``Classifier`` (batches of
    ``config.eval_batch_size``)."""

    def __init__(self, config: ml_collections.ConfigDict, model: nn.Module, mesh: Mesh,
                 weights: np.ndarray | None = None, normalization: input_pipeline.Normalization | None = None):
        """``weights``: per-class loss weights (``class_weights``), None for an unweighted loss; ``normalization``:
        the training windows' statistics, which the front end in the step (``config.front_end="step"``) needs."""
        if config.batch_size % mesh.size:
            raise ValueError(f"config.batch_size={config.batch_size} must be a multiple of the {mesh.size} devices")
        super().__init__(model, mesh, config.eval_batch_size)
        self.config = config
        self.weights = None if weights is None else np.asarray(weights, np.float32)
        self.windows = None
        if config.get("front_end", "prepared") == "step":
            if normalization is None:
                raise ValueError("the front end in the train step needs the training windows' normalization")
            self.windows = functools.partial(step_windows, config, normalization)
        self.step = jax.jit(functools.partial(train_step, config, self.batch_sharding, self.weights, self.windows),
                            donate_argnums=0)  # one update (tests, FLOP counts)
        self.epoch = jax.jit(self._epoch, donate_argnums=0)
        self._chunk = jax.jit(self._chunk_steps, donate_argnums=0)
        self._compiled_chunks: dict[int, Any] = {}  # steps per chunk -> compiled scan (host-fed path)

    def _scan_steps(self, state: TrainState, epoch: jax.Array, first: jax.Array, inputs: Any,
                    batch: Callable[[Any], tuple[Batch, jax.Array]]) -> tuple[TrainState, dict[str, jax.Array]]:
        """Steps ``first``, ``first + 1``, ... of ``epoch``, one per leading entry of ``inputs``; ``batch(entry)``
        gives that step's (x, y). Returns the state and per-step {"loss", "accuracy"}."""
        def body(state: TrainState, item: tuple[jax.Array, Any]) -> tuple[TrainState, dict]:
            index, entry = item
            key = _step_key(state.rng, epoch, first + index)
            return train_step(self.config, self.batch_sharding, self.weights, self.windows, state, *batch(entry), key)

        steps = jax.tree.leaves(inputs)[0].shape[0]
        return jax.lax.scan(body, state, (jnp.arange(steps, dtype=jnp.int32), inputs))

    def _epoch(self, state: TrainState, x: Batch, y: jax.Array, epoch: jax.Array
               ) -> tuple[TrainState, dict[str, jax.Array]]:
        """A whole epoch on device-resident data x ``{name: (N, R, W)}``, y (N,): a scan over its batches."""
        batches = epoch_permutation(state.rng, epoch, y.shape[0], self.config.batch_size)
        return self._scan_steps(state, epoch, jnp.int32(0), batches,
                                lambda indices: (jax.tree.map(lambda a: a[indices], x), y[indices]))

    def _chunk_steps(self, state: TrainState, xs: Batch, ys: jax.Array, epoch: jax.Array, first: jax.Array
                     ) -> tuple[TrainState, dict[str, jax.Array]]:
        """Steps ``first``, ... of ``epoch`` on host-gathered batches xs ``{name: (K, B, R, W)}``, ys (K, B)."""
        return self._scan_steps(state, epoch, first, (xs, ys), lambda batch: batch)

    def _chunk_sizes(self, num_examples: int) -> list[int]:
        """Steps per jitted call of a host-fed epoch: ``config.host_chunk_steps`` each, the remainder last."""
        steps = num_examples // self.config.batch_size
        size = max(1, min(self.config.host_chunk_steps, steps))
        return [size] * (steps // size) + ([steps % size] if steps % size else [])

    def _compiled_chunk(self, state: TrainState, steps: int, x: Batch, y: np.ndarray) -> Any:
        """The host-fed scan over ``steps`` batches of data like ``(x, y)``, compiled once per size."""
        if steps not in self._compiled_chunks:
            def spec(leaf: np.ndarray) -> jax.ShapeDtypeStruct:
                return jax.ShapeDtypeStruct((steps, self.config.batch_size, *leaf.shape[1:]), leaf.dtype,
                                            sharding=self.chunk_sharding)

            self._compiled_chunks[steps] = self._chunk.lower(
                state, jax.tree.map(spec, x), spec(y), jnp.int32(0), jnp.int32(0)).compile()
        return self._compiled_chunks[steps]

    def compile(self, state: TrainState, data: tuple[Batch, Any]) -> float:
        """Compiles the epoch (on-device data) or the chunks of steps (host-fed) ahead of time; returns seconds."""
        started = time.perf_counter()
        x, y = data
        if isinstance(y, jax.Array):
            self.epoch = self.epoch.lower(state, x, y, jnp.int32(0)).compile()
        else:
            for steps in set(self._chunk_sizes(len(y))):
                self._compiled_chunk(state, steps, x, y)
        return time.perf_counter() - started

    def train_epoch(self, state: TrainState, data: tuple[Batch, Any], epoch: int
                    ) -> tuple[TrainState, dict[str, np.ndarray]]:
        """One epoch; ``data`` is (x, y) device arrays (on-device path: one jitted scan) or numpy arrays
        (host-fed path: the host gathers ``config.host_chunk_steps`` batches at a time, while the device runs
        the previous chunk, and one jitted scan runs them; same steps, keys and results).

        Returns the state and per-step {"loss", "accuracy"} arrays (steps,).
        """
        x, y = data
        if isinstance(y, jax.Array):
            state, history = self.epoch(state, x, y, jnp.int32(epoch))
            return state, jax.device_get(history)
        batches = np.asarray(epoch_permutation(state.rng, epoch, len(y), self.config.batch_size))
        outputs, first = [], 0
        for steps in self._chunk_sizes(len(y)):
            indices = batches[first:first + steps]
            run = self._compiled_chunk(state, steps, x, y)
            state, out = run(state, _gather(x, indices, self.chunk_sharding), _gather(y, indices, self.chunk_sharding),
                             jnp.int32(epoch), jnp.int32(first))  # asynchronous: the next chunk is gathered meanwhile
            outputs.append(out)
            first += steps
        outputs = jax.device_get(outputs)
        return state, {name: np.concatenate([out[name] for out in outputs]) for name in ("loss", "accuracy")}
