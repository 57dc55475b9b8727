"""Training: TrainState, the jitted steps, the scanned epoch, checkpoints, ``train_and_evaluate``.

Parallelism: one ``Mesh`` over all devices of all processes (``jax.devices()``) with a ``"data"`` axis.
The state is replicated, each batch is sharded on ``"data"`` (``NamedSharding``), and the step is plain
``jax.jit``: XLA partitions it, so gradients and BatchNorm statistics are global-batch means exactly as on
one device. Several hosts run one process each (``jax.distributed.initialize()``, see top-level
``train.py``); every process loads the same data and normalisation (the corpora are small) and computes the
same permutations. Host-fed path: each process transfers only the rows of every global batch that belong
to its own devices (``jax.make_array_from_callback``). On-device path: every device holds the whole
training set (replicated, a few hundred MB at most), so the scanned epoch gathers each batch locally,
without communication; only the gradients and BatchNorm statistics are reduced across devices. Outputs
(losses, predictions) are replicated, so every process reads the same numbers. All processes save and
restore the orbax checkpoints together (orbax writes each array once); only process 0 prints, writes
``metrics.jsonl``, TensorBoard and ``test_metrics.json``.

Speed: when ``config.data_on_device`` (the default) the normalised training windows are put on the
device once and an epoch is ONE jitted call, a ``lax.scan`` over steps that gathers each batch by a
per-epoch permutation, crops, augments and updates; otherwise (data that does not fit) the host gathers
``config.host_chunk_steps`` batches at a time and one jitted scan of the same step runs them, while the host
gathers the next chunk (same steps and keys; same numbers up to float rounding). XLA:CPU runs a step about
twice as fast inside a scan as in a call of its own, hence chunks rather than single steps.

Determinism: the permutation of epoch e comes from ``fold_in(state.rng, e)`` and the crop / mask /
dropout keys of step s from ``fold_in(that, s)``; the state is checkpointed at the end of every epoch,
so a resumed run continues with the same data order and keys as an uninterrupted one.

Resilience: a run killed at any point (even during a checkpoint write: orbax commits a checkpoint by an
atomic rename) and started again on its workdir ends with the same parameters and ``metrics.jsonl`` as an
uninterrupted one (``metrics.jsonl`` and the TensorBoard log are cut back to the resumed epoch, so redone
epochs appear once). SIGTERM/SIGINT let the current epoch finish (one jitted call on the scanned path),
save its checkpoint and raise ``Interrupted``; a resume starts at that epoch boundary. A SIGINT before the
epochs start (loading, compiling), or a second one, raises ``Interrupted`` at once, saying which checkpoint
is kept. A damaged
checkpoint is skipped with a warning for the previous good one (the two latest and the best are kept). A
non-finite loss or parameter stops training (``TrainingError``) before it is checkpointed. A workdir
whose checkpoints come from an incompatible config (``RESUME_FIXED``) is refused.
"""

from __future__ import annotations

import functools
import json
import math
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp
from flax.training import train_state
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from emojax import augment, input_pipeline, metrics, models
from emojax.labels import EMOTIONS

CHECKPOINT_DIR = "checkpoints"
BEST_METRIC = "val_unweighted_accuracy"
PREDICT_BATCHES_PER_CALL = 32  # evaluation batches per jitted call of Trainer.predict (a scan over them)
# Config fields that fix the data a model sees: the corpora, the splits and the input windows. A distillation
# teacher must share them with its student (a teacher trained on another split has seen the student's validation
# or test clips).
DATA_FIXED = ("datasets", "protocol", "test_corpus", "test_fraction", "validation_fraction", "split_seed", "refit",
              "n_mfcc", "pitch", "offset_frames", "window_frames", "normalization", "utterance_normalization",
              "speaker_normalization")
# Config fields a resumed run must share with its checkpoints: the data, the model, the optimizer state's structure,
# and the step -> epoch mapping (batch size).
RESUME_FIXED = (*DATA_FIXED, "model", "widths", "residual", "pooling", "hidden", "deltas", "optimizer", "batch_size",
                "seed", "ema_decay")
# Config fields the members of an ensemble (several workdirs whose class probabilities are averaged) must share: the
# clips of each split and the raw evaluation windows (DATA_FIXED but the normalisations, which each member applies
# with its own statistics, and the pitch rows, which each member reads or not; plus the evaluation windows' placement).
ENSEMBLE_FIXED = (*(f for f in DATA_FIXED if f not in ("normalization", "speaker_normalization", "pitch")),
                  "test_crops", "crop_shift_frames")
# Values of RESUME_FIXED fields that checkpoints written before the field existed were trained with.
_RESUME_DEFAULTS = {"ema_decay": 0.0, "utterance_normalization": "none", "speaker_normalization": "none",
                    "deltas": 0, "pitch": False, "refit": False}
# The TrainState fields of those checkpoints (no ``ema``).
_FIELDS_BEFORE_EMA = ("step", "params", "opt_state", "batch_stats", "rng")


class TrainingError(RuntimeError):
    """A run that cannot start or go on; the message says what was wrong and what to do."""


class Interrupted(Exception):
    """Training stopped on SIGTERM/SIGINT after checkpointing an epoch boundary; ``signum`` is the signal."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum


class TrainState(train_state.TrainState):
    """step, params, opt_state (optax), plus BatchNorm ``batch_stats``, the run's base PRNG key and, when
    ``config.ema_decay`` > 0, ``ema``: an exponential moving average of {"params", "batch_stats"} (else None)."""

    batch_stats: Any
    rng: jax.Array
    ema: Any = None


def num_parameters(params: Any) -> int:
    """The number of values in a parameter pytree (batch statistics and optimizer state not included)."""
    return int(sum(p.size for p in jax.tree.leaves(params)))


def eval_variables(state: TrainState) -> dict[str, Any]:
    """The variables evaluation and inference use: the weight average ``state.ema`` when the run keeps one,
    else {"params", "batch_stats"}."""
    if state.ema is not None:
        return state.ema
    return {"params": state.params, "batch_stats": state.batch_stats}


def _is_primary() -> bool:
    """Whether this is process 0, the one that prints and writes logs."""
    return jax.process_index() == 0


def _log(message: str) -> None:
    if _is_primary():
        print(message, flush=True)


def _warn(message: str) -> None:
    if _is_primary():
        print(f"warning: {message}", file=sys.stderr, flush=True)


def make_mesh() -> Mesh:
    """A 1-D mesh over all devices of all processes, axis ``"data"``."""
    return Mesh(np.asarray(jax.devices()), ("data",))


def learning_rate_schedule(config: ml_collections.ConfigDict, steps_per_epoch: int) -> optax.Schedule:
    """``config.schedule``: ``"constant"`` or ``"cosine"`` (to 0 at the end), after a linear warm-up."""
    warmup = config.warmup_epochs * steps_per_epoch
    total = config.epochs * steps_per_epoch
    if config.schedule == "constant":
        main = optax.constant_schedule(config.learning_rate)
    elif config.schedule == "cosine":
        main = optax.cosine_decay_schedule(config.learning_rate, max(total - warmup, 1))
    else:
        raise ValueError(f"unknown config.schedule {config.schedule!r}; use 'constant' or 'cosine'")
    if not warmup:
        return main
    return optax.join_schedules([optax.linear_schedule(0.0, config.learning_rate, warmup), main], [warmup])


def make_optimizer(config: ml_collections.ConfigDict, steps_per_epoch: int) -> optax.GradientTransformation:
    """``config.optimizer`` (``adam``, ``adamw``, ``sgd``) with the learning-rate schedule."""
    lr = learning_rate_schedule(config, steps_per_epoch)
    if config.optimizer == "adam":
        return optax.adam(lr, eps=1e-7)  # Keras's epsilon, as the reference
    if config.optimizer == "adamw":
        return optax.adamw(lr, weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        return optax.sgd(lr, momentum=0.9, nesterov=True)
    raise ValueError(f"unknown config.optimizer {config.optimizer!r}; use 'adam', 'adamw' or 'sgd'")


def create_train_state(config: ml_collections.ConfigDict, model: nn.Module, steps_per_epoch: int) -> TrainState:
    """Fresh state: parameters from ``config.seed``, step 0."""
    init_key, run_key = jax.random.split(jax.random.PRNGKey(config.seed))
    dummy = jnp.zeros((1, input_pipeline.input_rows(config), config.window_frames), jnp.float32)
    variables = jax.jit(functools.partial(model.init, train=False))(init_key, dummy)
    ema = dict(variables) if config.get("ema_decay", 0.0) else None
    return TrainState.create(apply_fn=model.apply, params=variables["params"],
                             batch_stats=variables["batch_stats"], tx=make_optimizer(config, steps_per_epoch),
                             rng=run_key, ema=ema)


def update_ema(decay: float, state: TrainState) -> TrainState:
    """``state.ema`` moved towards the current variables: ``ema + (1 - d) (current - ema)`` with
    ``d = min(decay, (1 + step) / (10 + step))`` (``step`` after the update), so the average is not held back by
    the initial weights early in training. Unchanged when the state keeps no average."""
    if state.ema is None:
        return state
    step = state.step.astype(jnp.float32)
    d = jnp.minimum(decay, (1.0 + step) / (10.0 + step))
    current = {"params": state.params, "batch_stats": state.batch_stats}
    return state.replace(ema=jax.tree.map(lambda e, v: e + (1.0 - d) * (v - e), state.ema, current))


class Teacher(NamedTuple):
    """A trained model whose predictions a student learns from (``config.teacher_workdir``): its module and the
    variables of its best checkpoint (numpy, constants of the jitted step)."""

    model: nn.Module
    variables: dict[str, Any]


def load_teacher(config: ml_collections.ConfigDict, normalization: input_pipeline.Normalization) -> Teacher | None:
    """The best checkpoint of ``config.teacher_workdir`` as a ``Teacher`` (None when that field is empty).

    Raises ``TrainingError`` when the teacher was trained on other data, splits or inputs (``DATA_FIXED``) or
    with another normalisation than ``normalization``, the student's.
    """
    workdir = config.get("teacher_workdir", "")
    if not workdir:
        return None
    try:
        teacher_config, state, teacher_normalization, step = restore(workdir, "best")
    except FileNotFoundError as e:
        raise TrainingError(f"config.teacher_workdir: {e}") from None
    diffs = _config_diffs(teacher_config.to_dict(), config.to_dict(), DATA_FIXED, "here")
    same_statistics = all(np.array_equal(a, b) for a, b in zip(
        (normalization.mean, normalization.std), (teacher_normalization.mean, teacher_normalization.std)))
    if not diffs and not same_statistics:
        diffs = ["the normalisation statistics differ (other training data)"]
    if diffs:
        raise TrainingError(f"the teacher in {workdir} (config.teacher_workdir) was trained on other data or inputs "
                            f"({'; '.join(diffs)}); train the teacher with the student's data, protocol, split and "
                            "feature settings, or leave config.teacher_workdir empty")
    _log(f"distilling from the teacher {workdir} (step {step}): weight {config.distill_weight:g}, "
         f"temperature {config.distill_temperature:g}")
    return Teacher(models.create_model(teacher_config), jax.device_get(eval_variables(state)))


def distillation_loss(logits: jnp.ndarray, teacher_logits: jnp.ndarray, temperature: float) -> jnp.ndarray:
    """Per-example knowledge-distillation loss (B,) of student ``logits`` (B, C) against ``teacher_logits`` (B, C):
    ``T^2 * CE(softmax(teacher / T), softmax(student / T))``, the cross-entropy to the teacher's softened
    distribution (its KL divergence plus the teacher's entropy, a constant); ``T^2`` keeps the gradient's scale
    independent of ``T`` (Hinton et al., 2015)."""
    soft = jax.nn.softmax(jax.lax.stop_gradient(teacher_logits) / temperature)
    return temperature ** 2 * optax.softmax_cross_entropy(logits / temperature, soft)


def _augment_batch(config: ml_collections.ConfigDict, key: jax.Array, x: jnp.ndarray) -> jnp.ndarray:
    """Random crop to ``config.window_frames`` (when training windows are wider) and SpecAugment masks."""
    crop_key, mask_key = jax.random.split(key)
    if x.shape[-1] > config.window_frames:
        x = augment.random_crop(crop_key, x, config.window_frames)
    if config.freq_masks or config.time_masks:
        x = augment.spec_augment(mask_key, x, freq_masks=config.freq_masks, max_freq_width=config.max_freq_width,
                                 time_masks=config.time_masks, max_time_width=config.max_time_width,
                                 freq_rows=config.n_mfcc)
    return x


def class_weights(config: ml_collections.ConfigDict, labels: np.ndarray) -> np.ndarray | None:
    """Per-class loss weights (num_classes,) for ``config.class_weighting``: None for ``"none"``; for
    ``"balanced"``, ``n / (k * count_c)`` from the training labels (k: the classes present), so every present
    class carries the same total weight and the mean weight of an example is 1 (absent classes get 0)."""
    weighting = config.get("class_weighting", "none")
    if weighting == "none":
        return None
    if weighting != "balanced":
        raise ValueError(f"config.class_weighting must be 'none' or 'balanced', got {weighting!r}")
    counts = np.bincount(labels, minlength=len(EMOTIONS)).astype(np.float64)
    present = counts > 0
    weights = np.zeros(len(EMOTIONS))
    weights[present] = len(labels) / (present.sum() * counts[present])
    return weights.astype(np.float32)


def train_step(config: ml_collections.ConfigDict, batch_sharding: NamedSharding, weights: np.ndarray | None,
               teacher: Teacher | None, state: TrainState, x: jnp.ndarray, y: jnp.ndarray, key: jax.Array
               ) -> tuple[TrainState, dict[str, jnp.ndarray]]:
    """One update on a batch of training windows x (B, n_mfcc, W >= window_frames), labels y (B,); ``weights``
    (num_classes,) or None: the per-class loss weights of ``class_weights``. With a ``teacher``, an example's loss
    is ``(1 - a) * CE(labels) + a * distillation_loss`` (``a = config.distill_weight``), the teacher predicting the
    same augmented windows.

    Returns the new state and {"loss", "accuracy"} of the batch (before the update).
    """
    augment_key, dropout_key = jax.random.split(key)
    x = jax.lax.with_sharding_constraint(_augment_batch(config, augment_key, x), batch_sharding)
    y = jax.lax.with_sharding_constraint(y, batch_sharding)
    hard = jax.nn.one_hot(y, len(EMOTIONS))
    # Soft targets and the one-hot labels side by side, so that mixup blends both with the same weights.
    targets = jnp.concatenate([optax.smooth_labels(hard, config.label_smoothing), hard], axis=-1)
    if config.get("mixup_alpha", 0.0):
        x, targets = augment.mixup(jax.random.fold_in(augment_key, 1), x, targets, config.mixup_alpha)
    targets, hard = jnp.split(targets, 2, axis=-1)
    example_weights = jnp.ones(y.shape) if weights is None else hard @ weights
    teacher_logits = None if teacher is None else teacher.model.apply(teacher.variables, x, train=False)

    def loss_fn(params: Any) -> tuple[jnp.ndarray, tuple[jnp.ndarray, Any]]:
        logits, updates = state.apply_fn({"params": params, "batch_stats": state.batch_stats}, x, train=True,
                                         mutable=["batch_stats"], rngs={"dropout": dropout_key})
        losses = optax.softmax_cross_entropy(logits, targets)
        if teacher_logits is not None:
            distilled = distillation_loss(logits, teacher_logits, config.distill_temperature)
            losses = (1.0 - config.distill_weight) * losses + config.distill_weight * distilled
        loss = (example_weights * losses).mean()
        return loss, (logits, updates["batch_stats"])

    (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    state = update_ema(config.get("ema_decay", 0.0), state.apply_gradients(grads=grads, batch_stats=batch_stats))
    return state, {"loss": loss, "accuracy": (logits.argmax(-1) == y).mean()}


def epoch_permutation(state_rng: jax.Array, epoch: int, num_examples: int, batch_size: int) -> jax.Array:
    """Batches of epoch ``epoch``: (steps, batch_size) example indices (the remainder is dropped)."""
    steps = num_examples // batch_size
    perm = jax.random.permutation(jax.random.fold_in(state_rng, epoch), num_examples)
    return perm[: steps * batch_size].reshape(steps, batch_size)


def _step_key(state_rng: jax.Array, epoch: jax.Array, step: jax.Array) -> jax.Array:
    return jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(state_rng, epoch), 1), step)


class Trainer:
    """Compiled training and prediction functions for one config, model and mesh."""

    def __init__(self, config: ml_collections.ConfigDict, model: nn.Module, mesh: Mesh,
                 weights: np.ndarray | None = None, teacher: Teacher | None = None):
        """``weights``: per-class loss weights (``class_weights``), None for an unweighted loss; ``teacher``: the
        model to distil from (``load_teacher``), None to learn from the labels alone."""
        if config.batch_size % mesh.size:
            raise ValueError(f"config.batch_size={config.batch_size} must be a multiple of the {mesh.size} devices")
        self.config, self.model, self.mesh = config, model, mesh
        self.replicated = NamedSharding(mesh, PartitionSpec())
        self.batch_sharding = NamedSharding(mesh, PartitionSpec("data"))
        self.weights = None if weights is None else np.asarray(weights, np.float32)
        self.teacher = teacher
        step = functools.partial(train_step, config, self.batch_sharding, self.weights, teacher)
        self.step = jax.jit(step, donate_argnums=0)  # one update (tests, FLOP counts)
        self.epoch = jax.jit(self._epoch, donate_argnums=0)
        self.chunk_sharding = NamedSharding(mesh, PartitionSpec(None, "data"))
        self._chunk = jax.jit(self._chunk_steps, donate_argnums=0)
        self._compiled_chunks: dict[int, Any] = {}  # steps per chunk -> compiled scan (host-fed path)
        self._predict = jax.jit(self._scan_probs, out_shardings=self.replicated)  # every process reads all

    def _scan_steps(self, state: TrainState, epoch: jax.Array, first: jax.Array, inputs: Any,
                    batch: Callable[[Any], tuple[jax.Array, jax.Array]]) -> tuple[TrainState, dict[str, jax.Array]]:
        """Steps ``first``, ``first + 1``, ... of ``epoch``, one per leading entry of ``inputs``; ``batch(entry)``
        gives that step's (x, y). Returns the state and per-step {"loss", "accuracy"}."""
        def body(state: TrainState, item: tuple[jax.Array, Any]) -> tuple[TrainState, dict]:
            index, entry = item
            key = _step_key(state.rng, epoch, first + index)
            return train_step(self.config, self.batch_sharding, self.weights, self.teacher, state, *batch(entry), key)

        steps = jax.tree.leaves(inputs)[0].shape[0]
        return jax.lax.scan(body, state, (jnp.arange(steps, dtype=jnp.int32), inputs))

    def _epoch(self, state: TrainState, x: jax.Array, y: jax.Array, epoch: jax.Array
               ) -> tuple[TrainState, dict[str, jax.Array]]:
        """A whole epoch on device-resident data x (N, n_mfcc, W), y (N,): scan over its batches."""
        batches = epoch_permutation(state.rng, epoch, x.shape[0], self.config.batch_size)
        return self._scan_steps(state, epoch, jnp.int32(0), batches, lambda indices: (x[indices], y[indices]))

    def _chunk_steps(self, state: TrainState, xs: jax.Array, ys: jax.Array, epoch: jax.Array, first: jax.Array
                     ) -> tuple[TrainState, dict[str, jax.Array]]:
        """Steps ``first``, ... of ``epoch`` on host-gathered batches xs (K, B, n_mfcc, W), ys (K, B)."""
        return self._scan_steps(state, epoch, first, (xs, ys), lambda batch: batch)

    def _chunk_sizes(self, num_examples: int) -> list[int]:
        """Steps per jitted call of a host-fed epoch: ``config.host_chunk_steps`` each, the remainder last."""
        steps = num_examples // self.config.batch_size
        size = max(1, min(self.config.get("host_chunk_steps", 16), steps))
        return [size] * (steps // size) + ([steps % size] if steps % size else [])

    def _compiled_chunk(self, state: TrainState, steps: int, example_shape: tuple[int, ...], dtypes: tuple[Any, Any]
                        ) -> Any:
        """The host-fed scan over ``steps`` batches, compiled once per size."""
        if steps not in self._compiled_chunks:
            shape = (steps, self.config.batch_size)
            xs = jax.ShapeDtypeStruct((*shape, *example_shape), dtypes[0], sharding=self.chunk_sharding)
            ys = jax.ShapeDtypeStruct(shape, dtypes[1], sharding=self.chunk_sharding)
            self._compiled_chunks[steps] = self._chunk.lower(state, xs, ys, jnp.int32(0), jnp.int32(0)).compile()
        return self._compiled_chunks[steps]

    def compile(self, state: TrainState, data: tuple[Any, Any]) -> float:
        """Compiles the epoch (on-device data) or the chunks of steps (host-fed) ahead of time; returns seconds."""
        started = time.perf_counter()
        x, y = data
        if isinstance(x, jax.Array):
            self.epoch = self.epoch.lower(state, x, y, jnp.int32(0)).compile()
        else:
            for steps in set(self._chunk_sizes(len(x))):
                self._compiled_chunk(state, steps, x.shape[1:], (x.dtype, y.dtype))
        return time.perf_counter() - started

    def train_epoch(self, state: TrainState, data: tuple[Any, Any], epoch: int
                    ) -> tuple[TrainState, dict[str, np.ndarray]]:
        """One epoch; ``data`` is (x, y) device arrays (on-device path: one jitted scan) or numpy arrays
        (host-fed path: the host gathers ``config.host_chunk_steps`` batches at a time, while the device runs
        the previous chunk, and one jitted scan runs them; same steps, keys and results).

        Returns the state and per-step {"loss", "accuracy"} arrays (steps,).
        """
        x, y = data
        if isinstance(x, jax.Array):
            state, history = self.epoch(state, x, y, jnp.int32(epoch))
            return state, jax.device_get(history)
        batches = np.asarray(epoch_permutation(state.rng, epoch, len(x), self.config.batch_size))
        outputs, first = [], 0
        for steps in self._chunk_sizes(len(x)):
            indices = batches[first:first + steps]
            run = self._compiled_chunk(state, steps, x.shape[1:], (x.dtype, y.dtype))
            state, out = run(state, self._batches(x, indices), self._batches(y, indices), jnp.int32(epoch),
                             jnp.int32(first))  # dispatched asynchronously: the next chunk is gathered meanwhile
            outputs.append(out)
            first += steps
        outputs = jax.device_get(outputs)
        return state, {name: np.concatenate([out[name] for out in outputs]) for name in ("loss", "accuracy")}

    def _batches(self, values: np.ndarray, indices: np.ndarray) -> jax.Array:
        """The global batches ``values[indices]`` (K, B, ...) for indices (K, B), sharded on ``"data"`` along B:
        this process gathers and transfers only the rows of its own devices."""
        shape = (*indices.shape, *values.shape[1:])
        # The sharding splits axis 1 only, so index[1] is the device's slice of each batch and the rest is ``:``.
        return jax.make_array_from_callback(shape, self.chunk_sharding, lambda index: values[indices[:, index[1]]])

    def _scan_probs(self, variables: dict, xs: jax.Array) -> jax.Array:
        """Class probabilities (K, B, C) of K batches xs (K, B, ...), one batch after another in a scan."""
        def probs(x: jax.Array) -> jax.Array:
            x = jax.lax.with_sharding_constraint(x, self.batch_sharding)
            return jax.nn.softmax(self.model.apply(variables, x, train=False))

        return jax.lax.map(probs, xs)

    def predict(self, variables: dict, x: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """Class probabilities (N, C) float32 of windows x (N, n_mfcc, frames), in batches of ``batch_size``
        (default ``config.eval_batch_size``). Each jitted call scans over ``PREDICT_BATCHES_PER_CALL`` batches
        (the remainder in one call of its own), gathered like the host-fed training batches (``_batches``), and is
        dispatched asynchronously, so the host prepares the next call's windows meanwhile. XLA:CPU runs small
        batches in a scan ~3x faster than large batches one call at a time (BENCHMARKS.md, "Training speed")."""
        if not len(x):
            return np.zeros((0, len(EMOTIONS)), np.float32)
        x = np.asarray(x, np.float32)
        batch_size = batch_size or self.config.eval_batch_size
        batch_size = math.ceil(batch_size / self.mesh.size) * self.mesh.size
        num_batches = math.ceil(len(x) / batch_size)
        # Window indices (batches, B); the last batch is filled up with copies of the last window (dropped).
        indices = np.minimum(np.arange(num_batches * batch_size), len(x) - 1).reshape(num_batches, batch_size)
        out = [self._predict(variables, self._batches(x, indices[first:first + PREDICT_BATCHES_PER_CALL]))
               for first in range(0, num_batches, PREDICT_BATCHES_PER_CALL)]
        return np.concatenate([probs.reshape(-1, len(EMOTIONS)) for probs in jax.device_get(out)])[: len(x)]

    def place(self, state: TrainState) -> TrainState:
        """The state replicated over the mesh (through the host: it may be on one device of this process)."""
        return jax.device_put(jax.device_get(state), self.replicated)


def selection_score(metrics: dict[str, float]) -> float:
    """What picks a run's "best" checkpoint from the metrics saved with each: ``BEST_METRIC`` (validation UA), or, in a
    run without validation clips (``config.refit``), the epoch, so that the last one is kept."""
    return metrics[BEST_METRIC] if BEST_METRIC in metrics else metrics["epoch"]


def checkpoint_manager(workdir: str | Path, writer: bool = False) -> ocp.CheckpointManager:
    """Orbax manager of ``workdir/checkpoints``: keeps the two latest epochs (so a damaged latest one has a
    good predecessor) and the best (by ``selection_score``). ``writer``: the training run, which creates the
    directory and deletes unfinished writes of a killed run (a reader creates nothing, and would otherwise
    delete a running training's write)."""
    policy = ocp.checkpoint_managers.AnyPreservationPolicy([
        ocp.checkpoint_managers.LatestN(n=2),
        ocp.checkpoint_managers.BestN(get_metric_fn=selection_score, reverse=False, n=1),
    ])
    options = ocp.CheckpointManagerOptions(preservation_policy=policy, best_fn=selection_score,
                                           best_mode="max", create=writer,
                                           cleanup_tmp_directories=writer)
    return ocp.CheckpointManager(Path(workdir).resolve() / CHECKPOINT_DIR, options=options,
                                 item_names=("state", "normalization", "config"))


def _first_good(manager: ocp.CheckpointManager, steps: list[int], load: Any) -> tuple[int, Any]:
    """(step, ``load(step)``) of the first of ``steps`` that loads; a damaged one is skipped with a warning.

    ``TrainingError`` from ``load`` passes through; raises ``TrainingError`` when no step loads.
    """
    damaged = []
    for step in steps:
        try:
            result = load(step)
        except TrainingError:
            raise
        except Exception as e:  # orbax and tensorstore raise many types for a truncated or missing file
            reason = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
            _warn(f"checkpoint {manager.directory / str(step)} is damaged or incomplete ({reason})")
            damaged.append(step)
            continue
        if damaged:
            _warn(f"using the good checkpoint {manager.directory / str(step)} (step {step}) instead of the "
                  f"damaged step(s) {', '.join(map(str, damaged))}")
        return step, result
    raise TrainingError(f"no checkpoint in {manager.directory} can be read (damaged: steps "
                        f"{', '.join(map(str, damaged))}); move that directory aside to train from scratch")


def _restore_state(manager: ocp.CheckpointManager, step: int, target: TrainState, saved_config: dict[str, Any]
                   ) -> TrainState:
    """The state of checkpoint ``step``, restored into ``target``'s structure. A checkpoint written before
    ``TrainState`` had ``ema`` (its config has no ``ema_decay``) holds the other fields only; it restores with
    ``ema=None``."""
    if "ema_decay" in saved_config:
        return manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target)))["state"]
    fields = {name: getattr(target, name) for name in _FIELDS_BEFORE_EMA}
    restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(fields)))["state"]
    return target.replace(**restored)


def restore(workdir: str | Path, which: str = "best"
            ) -> tuple[ml_collections.ConfigDict, TrainState, input_pipeline.Normalization, int]:
    """The config, state and normalisation of a training run's ``"best"`` or ``"latest"`` checkpoint; when
    that one is damaged, of the newest good one (with a warning naming it).

    Returns (config, state, normalization, step); raises ``FileNotFoundError`` naming the workdir when
    it holds no checkpoint (creating nothing), ``TrainingError`` when none can be read.
    """
    directory = Path(workdir) / CHECKPOINT_DIR
    manager = checkpoint_manager(workdir) if directory.is_dir() else None
    preferred = None if manager is None else manager.best_step() if which == "best" else manager.latest_step()
    if preferred is None:
        raise FileNotFoundError(f"no checkpoints in {directory}: train first with python train.py --workdir {workdir}")

    def load(step: int) -> tuple[ml_collections.ConfigDict, TrainState, dict]:
        meta = manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore(),
                                                             normalization=ocp.args.StandardRestore()))
        config = ml_collections.ConfigDict(meta["config"])
        steps_per_epoch = max(int(meta["config"]["steps_per_epoch"]), 1)
        # An abstract target: shapes, dtypes and placement only, so nothing is initialised or compiled.
        device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        target = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=device), jax.eval_shape(
            lambda: create_train_state(config, models.create_model(config), steps_per_epoch)))
        return config, _restore_state(manager, step, target, meta["config"]), meta["normalization"]

    others = sorted((s for s in manager.all_steps() if s != preferred), reverse=True)
    step, (config, state, normalization) = _first_good(manager, [preferred, *others], load)
    manager.close()
    return config, state, input_pipeline.Normalization.from_dict(normalization), step


def restore_ensemble(workdirs: Sequence[str | Path], which: str = "best"
                     ) -> list[tuple[ml_collections.ConfigDict, TrainState, input_pipeline.Normalization, int]]:
    """``restore`` of each of ``workdirs``: the members of an ensemble, whose class probabilities are averaged.

    Raises ``TrainingError`` naming the workdir and fields when a member differs from the first in
    ``ENSEMBLE_FIXED`` (other clips or other raw windows); members may differ in model, training and
    normalisation statistics.
    """
    if not workdirs:
        raise ValueError("an ensemble needs at least one workdir")
    members = [restore(workdir, which) for workdir in workdirs]
    first = members[0][0].to_dict()
    for workdir, (config, *_) in zip(workdirs[1:], members[1:]):
        diffs = _config_diffs(config.to_dict(), first, ENSEMBLE_FIXED, f"in {workdirs[0]}")
        if diffs:
            raise TrainingError(f"{workdir} cannot be averaged with {workdirs[0]}: it was trained on other clips or "
                                f"windows ({'; '.join(diffs)}); ensemble runs of the same protocol, split and window "
                                "settings")
    return members


def _clip_probabilities(trainer: Trainer, variables: dict, x: np.ndarray) -> np.ndarray:
    """Class probabilities (N, C) of N clips: the mean over each clip's K windows x (N, K, n_mfcc, frames)."""
    probs = trainer.predict(variables, x.reshape(-1, *x.shape[2:]))
    return probs.reshape(*x.shape[:2], -1).mean(axis=1)


def _metrics(probs: np.ndarray, labels: np.ndarray, corpus: np.ndarray, classes: tuple[str, ...] | None = None
             ) -> dict[str, Any]:
    """Metrics of clip probabilities (N, C) against labels (N,), grouped by corpus (N,). With ``classes``
    (``input_pipeline.held_out_classes``), the metrics of the decision restricted to them are added as
    ``held_out_classes``."""
    groups = {"corpus": corpus}
    result = metrics.classification_metrics(labels, probs, groups=groups)
    if classes is not None:
        restricted = metrics.restrict(probs, [EMOTIONS.index(c) for c in classes])
        result["held_out_classes"] = {"classes": list(classes),
                                      **metrics.classification_metrics(labels, restricted, groups=groups)}
    return result


def _evaluate(trainer: Trainer, state: TrainState, arrays: input_pipeline.Arrays,
              classes: tuple[str, ...] | None = None) -> dict[str, Any]:
    """``_metrics`` of evaluation ``arrays`` (x: (N, K, n_mfcc, frames)): a clip's probabilities are the mean over
    its K windows."""
    return _metrics(_clip_probabilities(trainer, eval_variables(state), arrays.x), arrays.y, arrays.corpus, classes)


def evaluate_checkpoint(workdir: str | Path | Sequence[str | Path], split: str = "test", which: str = "best"
                        ) -> dict[str, Any]:
    """Metrics (``metrics.classification_metrics``, grouped by corpus) of a workdir's ``which`` checkpoint on
    ``split`` of the data and protocol it was trained with, plus ``split`` and ``checkpoint_step``.

    With several workdirs, of their ensemble (``restore_ensemble``): a clip's probabilities are the mean over the
    members (each over its windows); ``members`` lists each one's workdir and checkpoint step and
    ``num_parameters`` is the members' total. Raises ``TrainingError`` for the validation split of a run trained with
    ``config.refit`` (it has none).
    """
    workdirs = [workdir] if isinstance(workdir, (str, Path)) else list(workdir)
    if split not in input_pipeline.SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {', '.join(input_pipeline.SPLITS)}")
    members = restore_ensemble(workdirs, which)
    config = ml_collections.ConfigDict(members[0][0].to_dict())
    config.pitch = any(m[0].get("pitch", False) for m in members)  # read the pitch rows if any member needs them
    splits = input_pipeline.load_splits(config)
    corpus = splits[split]
    if not len(corpus):
        raise TrainingError(f"{workdirs[0]} has no {split} clips"
                            + (" (it was trained with config.refit, on the validation clips too); evaluate --split=test"
                               if config.get("refit", False) else ""))
    windows: dict[tuple[str, bool], np.ndarray] = {}  # (speaker normalisation, pitch) -> raw evaluation windows
    mesh, member_probs = make_mesh(), []
    for member_config, state, normalization, _ in members:
        key = (member_config.get("speaker_normalization", "none"), member_config.get("pitch", False))
        if key not in windows:
            needed = {"train": splits["train"], split: corpus}  # the statistics' source and the evaluated split
            windows[key] = input_pipeline.evaluation_windows(
                input_pipeline.speaker_normalize(needed, key[0])[split], member_config)
        trainer = Trainer(member_config, models.create_model(member_config), mesh)
        member_probs.append(_clip_probabilities(trainer, eval_variables(trainer.place(state)),
                                                normalization(windows[key])))
    probs = np.mean(member_probs, axis=0)
    classes = input_pipeline.held_out_classes(config) if split == "test" else None
    result = {**_metrics(probs, corpus.label.astype(np.int32), corpus.corpus, classes), "split": split}
    if len(members) == 1:
        return {**result, "checkpoint_step": members[0][3]}
    return {**result, "members": [{"workdir": str(w), "checkpoint_step": m[3]} for w, m in zip(workdirs, members)],
            "num_parameters": sum(num_parameters(m[1].params) for m in members)}


def ensure_prepared(config: ml_collections.ConfigDict) -> None:
    """Builds ``synthetic_prosody`` when it is asked for and missing; explains how to prepare the others."""
    from emojax import corpora

    for name in config.datasets:
        if corpora.is_prepared(name, config.data_dir):
            continue
        if name == "synthetic_prosody":
            _log(f"building the synthetic corpus {name} (once) ...")
            corpora.build(name, data_dir=config.data_dir)
        else:
            raise FileNotFoundError(
                f"corpus {name!r} is not prepared in {config.data_dir or corpora.default_data_dir()}: run "
                f"`tfds build datasets/{name} --manual_dir /path/to/{name}` first, or choose other corpora "
                f"with --config.datasets")


def _check_writable(workdir: Path) -> None:
    """Creates ``workdir`` and writes a scratch file in it; ``TrainingError`` saying so when it cannot."""
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=workdir):
            pass
    except OSError as e:
        raise TrainingError(f"cannot write to the workdir {workdir}: {e.strerror or e}; choose another --workdir "
                            "or make it writable") from e


def _config_diffs(saved: dict[str, Any], requested: dict[str, Any], fields: Sequence[str], now: str) -> list[str]:
    """``"<field>: <saved> there, <requested> <now>"`` for each of ``fields`` whose values differ, a saved config's
    missing fields read as ``_RESUME_DEFAULTS`` and tuples compared with the lists JSON gives back."""
    def plain(value: Any) -> Any:
        return list(value) if isinstance(value, (tuple, list)) else value

    saved, requested = {**_RESUME_DEFAULTS, **saved}, {**_RESUME_DEFAULTS, **requested}
    return [f"{name}: {saved.get(name)!r} there, {requested.get(name)!r} {now}" for name in fields
            if plain(saved.get(name)) != plain(requested.get(name))]


def _check_compatible(saved: dict[str, Any], requested: dict[str, Any], workdir: Path, step: int) -> None:
    """``TrainingError`` listing the ``RESUME_FIXED`` fields (and steps per epoch) that differ."""
    diffs = _config_diffs(saved, requested, [*RESUME_FIXED, "steps_per_epoch"], "now")
    if diffs:
        raise TrainingError(f"the checkpoints in {workdir / CHECKPOINT_DIR} (step {step}) were trained with another "
                            f"config ({'; '.join(diffs)}); refusing to overwrite them: use another --workdir, or "
                            "the workdir's config to resume (only epochs, learning rate, schedule, regularisation "
                            "and augmentation may change)")


def _resume(manager: ocp.CheckpointManager, workdir: Path, state: TrainState, saved_config: dict[str, Any]
            ) -> TrainState | None:
    """The state of the newest good checkpoint (None when there is none), after checking its config against
    ``saved_config``; damaged checkpoints after it are deleted with a warning, so that they are redone."""
    steps = sorted(manager.all_steps(), reverse=True)
    if not steps:
        return None

    def load(step: int) -> TrainState:
        old = manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))["config"]
        _check_compatible(old, saved_config, workdir, step)
        return _restore_state(manager, step, state, old)

    step, state = _first_good(manager, steps, load)
    for bad in steps:
        if bad > step:
            _warn(f"deleting the damaged checkpoint {manager.directory / str(bad)}; its epoch will be trained again")
            manager.delete(bad)
    return state


def _truncate_metrics(path: Path, epochs: int) -> list[dict[str, Any]]:
    """Keeps one record per epoch of the first ``epochs`` in ``metrics.jsonl`` (a killed run may have logged
    epochs it did not checkpoint, or a partial line); rewritten atomically. Returns the kept records."""
    if not path.exists():
        return []
    records: dict[int, str] = {}
    for line in path.read_text().splitlines():
        try:
            epoch = json.loads(line)["epoch"]
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
        if epoch <= epochs:
            records[epoch] = line
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(records[e] + "\n" for e in sorted(records)))
    os.replace(tmp, path)
    return [json.loads(records[e]) for e in sorted(records)]


class _StopRequest:
    """While active, the first SIGTERM/SIGINT only records ``signum`` (the loop stops at the next epoch
    boundary); the previous handlers are then back, so a second signal acts as usual."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopRequest:
        if threading.current_thread() is threading.main_thread():  # signal handlers live in the main thread
            self._previous = {s: signal.signal(s, self._handle) for s in (signal.SIGTERM, signal.SIGINT)}
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.signum = signum
        self._restore()

    def _restore(self) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}

    def __exit__(self, *exc_info: Any) -> None:
        self._restore()


def _all_finite(tree: Any) -> bool:
    """Whether every floating-point array of ``tree`` is free of NaN and inf."""
    return all(bool(jnp.isfinite(x).all()) for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact))


def _non_finite_error(config: ml_collections.ConfigDict, workdir: Path, manager: ocp.CheckpointManager, epoch: int,
                      losses: np.ndarray, steps_per_epoch: int) -> TrainingError:
    """The error for an epoch whose loss (or, after its last step's gradient, parameters) is not finite."""
    bad = np.flatnonzero(~np.isfinite(losses))
    where = (f"loss at step {epoch * steps_per_epoch + int(bad[0]) + 1}" if bad.size else
             f"parameters after step {(epoch + 1) * steps_per_epoch} (gradient)")
    last = manager.latest_step()
    kept = (f"the last good checkpoint (step {last}) in {workdir / CHECKPOINT_DIR} is kept" if last is not None
            else "no checkpoint was written yet")
    return TrainingError(
        f"non-finite {where}, in epoch {epoch + 1}: training stopped; {kept}. Likely causes: a learning rate too "
        f"high for this model (config.learning_rate={config.learning_rate:g}) or bad input (NaN/inf features). "
        f"Resume with a lower one: python train.py --workdir {workdir} --config CONFIG "
        f"--config.learning_rate={config.learning_rate / 10:g}")


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | Path,
                       splits: dict[str, input_pipeline.Corpus] | None = None) -> dict[str, Any]:
    """Trains ``config`` in ``workdir`` (resuming from its latest good checkpoint), then evaluates the best
    checkpoint on the test split; returns the test metrics (also written to ``workdir/test_metrics.json``).
    With several processes (``jax.distributed``) every process calls it with the same arguments.

    ``splits``: the protocol's examples (``input_pipeline.load_splits``) when they are already in memory; by
    default they are read from the prepared corpora (building the synthetic one when it is asked for).

    Raises ``TrainingError`` (unwritable or incompatible workdir, unreadable checkpoints, non-finite loss)
    and ``Interrupted``: on SIGTERM/SIGINT during an epoch, after checkpointing that epoch; on SIGINT (and, after
    ``stop_on_signals()``, SIGTERM) at any other time (loading, compiling, a second signal), at once, keeping the
    checkpoints already written.
    """
    workdir = Path(workdir)
    try:
        return _train_and_evaluate(config, workdir, splits)
    except KeyboardInterrupt as e:
        raise _stopped_at_once(workdir, getattr(e, "signum", signal.SIGINT)) from None


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGINT outside the epoch loop, raised like Ctrl-C's ``KeyboardInterrupt`` (``stop_on_signals``)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_RECEIVED: list[int] = []  # signals stop_on_signals' handler caught: one a library swallowed still stops the run


def stop_on_signals() -> None:
    """Makes SIGTERM and SIGINT raise ``Terminated``, so that a run preempted while loading or compiling stops with a
    one-line message instead of being killed silently, and records them: if library code swallows the exception,
    ``train_and_evaluate`` still stops before its first epoch. The epoch loop turns the first signal into a graceful
    stop at the epoch boundary. Main thread only."""
    def handler(signum: int, frame: Any) -> None:
        _RECEIVED.append(signum)
        raise Terminated(signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, handler)


def _stopped_at_once(workdir: Path, signum: int) -> Interrupted:
    """The ``Interrupted`` of a signal outside the epoch loop's graceful stop, saying what is kept."""
    directory = workdir / CHECKPOINT_DIR
    last = None
    if directory.is_dir():
        manager = checkpoint_manager(workdir)
        last = manager.latest_step()
        manager.close()
    if last is None:
        kept = f"nothing to save yet (no checkpoint in {directory}); run the same command to start again"
    else:
        kept = (f"the last checkpoint (step {last}) in {directory} is kept; resume with the same command "
                f"(python train.py --workdir {workdir} ...)")
    return Interrupted(f"stopped by {signal.Signals(signum).name}: {kept}", signum)


def _scalars(writer: Any, record: dict[str, Any]) -> None:
    """Writes a ``metrics.jsonl`` record's values as TensorBoard scalars at its step."""
    for name, value in record.items():
        if name not in ("epoch", "step"):
            writer.add_scalar(name, value, record["step"])


def _tensorboard(directory: Path, records: list[dict[str, Any]]) -> Any:
    """A TensorBoard writer in ``directory`` whose log holds exactly ``records`` (``metrics.jsonl`` after
    ``_truncate_metrics``): the old event files are replaced, so epochs a resumed run redoes appear once."""
    from tensorboardX import SummaryWriter

    for path in directory.glob("events.out.tfevents.*"):
        path.unlink()
    writer = SummaryWriter(str(directory))
    for record in records:
        _scalars(writer, record)
    writer.flush()
    return writer


def _train_and_evaluate(config: ml_collections.ConfigDict, workdir: Path,
                        splits: dict[str, input_pipeline.Corpus] | None) -> dict[str, Any]:
    primary = _is_primary()
    _check_writable(workdir)
    if splits is None:
        if primary:  # builds the synthetic corpus when needed: once, before the other processes read it
            ensure_prepared(config)
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices("emojax: data prepared")
        if not primary:  # nothing to build any more; explains a corpus missing on this host
            ensure_prepared(config)
        splits = input_pipeline.load_splits(config)
    arrays, normalization = input_pipeline.prepare(config, splits)
    train = arrays["train"]
    steps_per_epoch = len(train.x) // config.batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"{len(train.x)} training examples are fewer than config.batch_size={config.batch_size}")
    _log(f"data: {', '.join(config.datasets)} ({config.protocol} protocol): "
         + ", ".join(f"{k} {len(v.y)}" for k, v in arrays.items())
         + f"; windows {train.x.shape[1]}x{config.window_frames} frames")
    validate = len(arrays["validation"].y) > 0
    if not validate:
        _log("no validation clips" + (" (config.refit: they are trained on)" if config.get("refit", False) else "")
             + f": the last of the {config.epochs} epochs is the checkpoint kept and tested")

    mesh = make_mesh()
    model = models.create_model(config)
    trainer = Trainer(config, model, mesh, class_weights(config, train.y), load_teacher(config, normalization))
    state = create_train_state(config, model, steps_per_epoch)
    n_params = num_parameters(state.params)
    _log(f"model: {config.model}, {n_params:,} parameters; {mesh.size} device(s) "
         f"({jax.devices()[0].platform}); {steps_per_epoch} steps/epoch of {config.batch_size}")

    saved_config = config.to_dict()
    saved_config["steps_per_epoch"] = steps_per_epoch
    manager = checkpoint_manager(workdir, writer=True)
    writer = None
    try:
        resumed = _resume(manager, workdir, state, saved_config)
        if resumed is not None:
            state = resumed
            _log(f"resuming from step {int(state.step)} in {workdir / CHECKPOINT_DIR}")
        state = trainer.place(state)
        start_epoch = int(state.step) // steps_per_epoch

        if config.data_on_device:
            data = (jax.device_put(train.x, trainer.replicated), jax.device_put(train.y, trainer.replicated))
        else:
            data = (train.x, train.y)
        if primary:
            writer = _tensorboard(workdir / "tensorboard", _truncate_metrics(workdir / "metrics.jsonl", start_epoch))
        if start_epoch < config.epochs:
            _log(f"compiled the {'epoch' if config.data_on_device else 'steps'} in {trainer.compile(state, data):.1f} s")
        started = time.perf_counter()
        if _RECEIVED:  # a signal whose exception some library code caught while loading or compiling
            raise Terminated(_RECEIVED[-1])
        with _StopRequest() as stop:
            for epoch in range(start_epoch, config.epochs):
                t0 = time.perf_counter()
                state, history = trainer.train_epoch(state, data, epoch)
                jax.block_until_ready(state)
                seconds = time.perf_counter() - t0
                if not (np.isfinite(history["loss"]).all() and _all_finite((state.params, state.batch_stats))):
                    raise _non_finite_error(config, workdir, manager, epoch, history["loss"], steps_per_epoch)
                record = {"epoch": epoch + 1, "step": int(state.step), "train_loss": float(history["loss"].mean()),
                          "train_accuracy": float(history["accuracy"].mean()),
                          "learning_rate": float(learning_rate_schedule(config, steps_per_epoch)(int(state.step))),
                          "epoch_seconds": seconds,
                          "train_examples_per_second": steps_per_epoch * config.batch_size / seconds}
                validation = ""
                if validate:
                    val = _evaluate(trainer, state, arrays["validation"])
                    record.update(val_accuracy=val["accuracy"], val_unweighted_accuracy=val["unweighted_accuracy"],
                                  val_macro_f1=val["macro_f1"])
                    validation = f"val_acc {val['accuracy']:.3f} val_ua {val['unweighted_accuracy']:.3f} "
                if primary:
                    with open(workdir / "metrics.jsonl", "a") as f:
                        f.write(json.dumps(record) + "\n")
                    _scalars(writer, record)
                    writer.flush()
                selection = {BEST_METRIC: record[BEST_METRIC]} if validate else {"epoch": record["epoch"]}
                manager.save(int(state.step), metrics=selection,
                             args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                     normalization=ocp.args.StandardSave(normalization.to_dict()),
                                                     config=ocp.args.JsonSave(saved_config)))
                elapsed = time.perf_counter() - started
                eta = elapsed / (epoch + 1 - start_epoch) * (config.epochs - epoch - 1)
                _log(f"epoch {epoch + 1}/{config.epochs} step {record['step']} loss {record['train_loss']:.4f} "
                     f"acc {record['train_accuracy']:.3f} {validation}| {steps_per_epoch / seconds:.1f} steps/s, "
                     f"{seconds:.1f} s, ETA {eta:.0f} s")
                signum = stop.signum or 0
                if jax.process_count() > 1:  # a signal to any process stops all at this epoch boundary
                    signum = int(multihost_utils.process_allgather(np.int32(signum)).max())
                if signum and epoch + 1 < config.epochs:
                    manager.wait_until_finished()
                    raise Interrupted(
                        f"stopped by {signal.Signals(signum).name} after epoch {epoch + 1}/{config.epochs}; "
                        f"checkpoint step {record['step']} saved in {workdir / CHECKPOINT_DIR}. Resume with the same "
                        f"command (python train.py --workdir {workdir} ...)", signum)
        manager.wait_until_finished()
        best = manager.best_step()
    finally:
        manager.close()  # waits for a save in flight, so the last good checkpoint is complete
        if writer is not None:
            writer.close()
    if best is None:
        raise RuntimeError(f"no checkpoint was written in {workdir / CHECKPOINT_DIR} (config.epochs={config.epochs})")
    _, best_state, _, best = restore(workdir, "best")
    test = _evaluate(trainer, trainer.place(best_state), arrays["test"], input_pipeline.held_out_classes(config))
    test["checkpoint_step"], test["num_parameters"] = best, n_params
    if primary:
        (workdir / "test_metrics.json").write_text(json.dumps(test, indent=1))
    _log(f"test ({'best' if validate else 'last'} checkpoint, step {best}): accuracy {test['accuracy']:.4f}"
         f" unweighted {test['unweighted_accuracy']:.4f} macro_f1 {test['macro_f1']:.4f} keras_precision {test['keras_precision']:.4f}"
         f" keras_recall {test['keras_recall']:.4f} (n={test['num_examples']})")
    if "held_out_classes" in test:
        held_out = test["held_out_classes"]
        _log(f"test restricted to {config.test_corpus}'s emotions ({', '.join(held_out['classes'])}): accuracy "
             f"{held_out['accuracy']:.4f} unweighted {held_out['unweighted_accuracy']:.4f}")
    return test


def epoch_records(workdir: str | Path) -> list[dict[str, Any]]:
    """A run's per-epoch records, as the loop wrote them to ``workdir/metrics.jsonl`` (one dict per epoch)."""
    return [json.loads(line) for line in (Path(workdir) / "metrics.jsonl").read_text().splitlines()]
