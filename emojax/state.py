"""The training state and what builds it: ``TrainState`` (step, parameters, BatchNorm statistics, optimizer state,
the run's PRNG key), the optimizer with its learning-rate schedule, and the device mesh.

Everything a run needs to continue lives in one ``TrainState`` pytree, which orbax saves and restores
(``emojax.checkpoints``).
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax.training import train_state
from jax.sharding import Mesh

from emojax import input_pipeline, models


class TrainState(train_state.TrainState):
    """step, params, opt_state (optax), plus BatchNorm ``batch_stats`` and the run's base PRNG key ``rng``."""

    batch_stats: Any
    rng: jax.Array


def num_parameters(params: Any) -> int:
    """The number of values in a parameter pytree (batch statistics and optimizer state not included)."""
    return int(sum(p.size for p in jax.tree.leaves(params)))


def model_variables(state: TrainState) -> dict[str, Any]:
    """The variables a model is applied with for evaluation and inference: ``{"params", "batch_stats"}``."""
    return {"params": state.params, "batch_stats": state.batch_stats}


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


FREEZE = ("none", "encoder")
"""``config.freeze``: ``"none"`` trains every parameter; ``"encoder"`` only the head (``models.head_layers``)."""


def make_optimizer(config: ml_collections.ConfigDict, steps_per_epoch: int) -> optax.GradientTransformation:
    """``config.optimizer`` (``adam`` or ``adamw``) with the learning-rate schedule; with ``config.freeze="encoder"``
    only the head's parameters are updated (the others' updates are zero, and they hold no optimizer state)."""
    lr = learning_rate_schedule(config, steps_per_epoch)
    if config.optimizer == "adam":
        tx = optax.adam(lr, eps=1e-7)  # Keras's epsilon, as the reference
    elif config.optimizer == "adamw":
        tx = optax.adamw(lr, weight_decay=config.weight_decay)
    else:
        raise ValueError(f"unknown config.optimizer {config.optimizer!r}; use 'adam' or 'adamw'")
    freeze = config.get("freeze", "none")
    if freeze not in FREEZE:
        raise ValueError(f"unknown config.freeze {freeze!r}; use one of {', '.join(FREEZE)}")
    if freeze == "none":
        return tx

    def trained(params: Any) -> dict[str, str]:
        head = set(models.head_layers(params))
        return {name: jax.tree.map(lambda _: "train" if name in head else "frozen", tree)
                for name, tree in params.items()}

    return optax.multi_transform({"train": tx, "frozen": optax.set_to_zero()}, trained)


def create_train_state(config: ml_collections.ConfigDict, model: nn.Module, steps_per_epoch: int) -> TrainState:
    """Fresh state: parameters from ``config.seed``, step 0."""
    init_key, run_key = jax.random.split(jax.random.PRNGKey(config.seed))
    dummy = {name: jnp.zeros((1, *shape), jnp.float32) for name, shape in input_pipeline.input_shapes(config).items()}
    variables = jax.jit(functools.partial(model.init, train=False))(init_key, dummy)
    return TrainState.create(apply_fn=model.apply, params=variables["params"],
                             batch_stats=variables["batch_stats"], tx=make_optimizer(config, steps_per_epoch),
                             rng=run_key)
