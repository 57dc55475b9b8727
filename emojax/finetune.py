"""Fine-tuning: a run that starts from a trained model instead of random weights (``config.init_from``).

The source is the model shipped with emojax (``init_from="pretrained"``, ``emojax.pretrained``) or the best
checkpoint of a ``train.py`` workdir. Its parameters and BatchNorm statistics replace the new run's initial ones
(``initialize``); the optimizer starts afresh. When the run's classes (``labels.class_names``: the label set of its
training data) differ from the source's, the output layer is new: its weights for a class the source also has (by
name, e.g. ``anger``) are the source's, those of a new class (e.g. ``boredom``) are freshly initialised; everything
before it is kept. ``config.freeze="encoder"`` then trains the dense head alone (``state.make_optimizer``), with the
encoder's BatchNorm statistics fixed (``models.CNN.frozen_encoder``).

Input statistics (``config.init_normalization``): ``"data"`` (the default) standardises the inputs with statistics
of the new training data, as a run from scratch does: a corpus recorded elsewhere (another microphone, level, language)
then reaches the first layer in the range the source was trained on. ``"kept"`` uses the source's own statistics, so
the same audio gives the source's features exactly (e.g. with a frozen encoder and a corpus like the source's).

The source must read the same inputs through the same network (``INPUT_FIELDS``, ``MODEL_FIELDS``); otherwise
``check_compatible`` says which fields differ and how to align them.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from emojax import checkpoints, input_pipeline, models, pretrained
from emojax.checkpoints import CHECKPOINT_DIR, TrainingError
from emojax.labels import class_names
from emojax.state import TrainState, model_variables

INPUT_FIELDS = ("n_mfcc", "window_frames", "pitch")
"""Config fields that fix the shape of a model's input windows."""
MODEL_FIELDS = ("model", "widths", "residual", "pooling", "hidden")
"""Config fields that fix the network's parameters (besides the output layer's classes)."""
_WARN_FIELDS = ("utterance_normalization", "speaker_normalization", "offset_frames")
INIT_NORMALIZATIONS = ("data", "kept")


@dataclasses.dataclass(frozen=True)
class Source:
    """A trained model to start from: ``name`` (for messages), its ``config``, ``variables`` {"params",
    "batch_stats"} (host arrays) and input ``normalization``."""

    name: str
    config: ml_collections.ConfigDict
    variables: dict[str, Any]
    normalization: input_pipeline.Normalization


def load_source(init_from: str) -> Source:
    """The model ``config.init_from`` names: ``"pretrained"`` or a ``train.py`` workdir (its best checkpoint).

    Raises ``TrainingError`` when ``init_from`` is neither (the message says what to give).
    """
    if init_from == "pretrained":
        config, variables, normalization = pretrained.load()
        return Source("the shipped model (emojax/weights)", config, variables, normalization)
    workdir = Path(init_from)
    if not (workdir / CHECKPOINT_DIR).is_dir():
        folds = sorted(p.name for p in workdir.glob("fold_*") if (p / CHECKPOINT_DIR).is_dir())
        hint = f" (a k-fold workdir: give one of its folds, e.g. {workdir / folds[0]})" if folds else ""
        raise TrainingError(f"config.init_from={init_from!r} is neither 'pretrained' nor a train.py workdir: "
                            f"{workdir / CHECKPOINT_DIR} does not exist{hint}")
    config, state, normalization, _ = checkpoints.restore(workdir, "best")
    return Source(str(workdir), config, jax.device_get(model_variables(state)), normalization)


def check_compatible(config: ml_collections.ConfigDict, source: Source) -> None:
    """``TrainingError`` naming the fields when ``source`` reads other inputs or has another network than ``config``
    asks for; a warning when its windows were normalised differently (it can still be fine-tuned)."""
    if config.init_normalization not in INIT_NORMALIZATIONS:
        raise TrainingError(f"unknown config.init_normalization {config.init_normalization!r}; use one of "
                            f"{', '.join(INIT_NORMALIZATIONS)}")
    saved, requested = source.config.to_dict(), config.to_dict()
    diffs = checkpoints.config_diffs(saved, requested, (*INPUT_FIELDS, *MODEL_FIELDS), "in this config")
    if diffs:
        fix = " ".join(f"--config.{name}={_flag(saved.get(name))}" for name in (*INPUT_FIELDS, *MODEL_FIELDS)
                       if checkpoints.config_diffs(saved, requested, (name,), ""))
        raise TrainingError(f"cannot start from {source.name}: its input windows or network differ from this "
                            f"config's ({'; '.join(diffs)}); train with its settings ({fix}) or from scratch "
                            "(--config.init_from='')")
    for diff in checkpoints.config_diffs(saved, requested, _WARN_FIELDS, "in this config"):
        print(f"warning: {source.name} was trained with other windows ({diff}): it will see inputs unlike its "
              "training data; use its value unless you mean to change it", file=sys.stderr, flush=True)


def _flag(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def initialize(state: TrainState, config: ml_collections.ConfigDict, source: Source) -> tuple[TrainState, str]:
    """``state`` (a fresh run's, from ``config.seed``) with the parameters and BatchNorm statistics of ``source`` and a
    fresh optimizer state; the output layer keeps the source's weights of the classes it shares with ``config``
    (by name) and ``state``'s random ones for new classes. Returns the state and a line saying what was kept."""
    new, old = class_names(config), class_names(source.config)
    params = jax.tree.map(np.asarray, source.variables["params"])
    params = {name: dict(tree) if isinstance(tree, dict) else tree for name, tree in params.items()}
    kept = "all its classes"
    if new != old:
        output = models.head_layers(params)[-1]
        fresh = jax.tree.map(np.array, jax.device_get(state.params[output]))
        shared = [name for name in new if name in old]
        for j, name in enumerate(new):
            if name in old:
                fresh["kernel"][:, j] = params[output]["kernel"][:, old.index(name)]
                fresh["bias"][j] = params[output]["bias"][old.index(name)]
        params[output] = fresh
        added = [name for name in new if name not in old]
        kept = (f"the output weights of {', '.join(shared) or 'no class'}" +
                (f"; new: {', '.join(added)}" if added else ""))
    expected = jax.tree.map(lambda x: (x.shape, x.dtype), state.params)
    if jax.tree.map(lambda x: (x.shape, x.dtype), params) != expected:
        raise TrainingError(f"the parameters of {source.name} do not fit this config's network; train from scratch "
                            "(--config.init_from='')")
    params = jax.tree.map(jnp.asarray, params)
    batch_stats = jax.tree.map(jnp.asarray, source.variables["batch_stats"])
    state = state.replace(params=params, batch_stats=batch_stats, opt_state=state.tx.init(params))
    return state, f"initialised from {source.name}: every layer, with {kept}"
