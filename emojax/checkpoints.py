"""A workdir's checkpoints: the orbax manager, restoring (past damaged steps), resuming, and the config checks that
keep a resumed run, an ensemble and an old workdir consistent.

Each checkpoint holds three items: ``state`` (the ``TrainState``), ``normalization`` (the input pipeline's
statistics) and ``config`` (JSON, with ``steps_per_epoch`` added). Orbax commits a checkpoint by an atomic rename, so
a run killed during a write leaves the previous ones intact; the two latest and the best are kept, so a damaged
latest one has a good predecessor, which restoring falls back to with a warning.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import ml_collections
import orbax.checkpoint as ocp

from emojax import input_pipeline, models
from emojax.labels import EMOTIONS
from emojax.state import TrainState, create_train_state

CHECKPOINT_DIR = "checkpoints"
KFOLD_PLAN = "kfold.json"
"""The file that marks a k-fold cross-validation workdir (``emojax.kfold``): its config and speaker partition."""
BEST_METRIC = "val_unweighted_accuracy"
# Config fields that fix the data a model sees: the corpora, the splits and the input windows.
DATA_FIXED = ("datasets", "protocol", "test_corpus", "test_fraction", "validation_fraction", "split_seed", "refit",
              "folds", "fold", "kfold_validation", "labels", "n_mfcc", "pitch", "offset_frames", "window_frames",
              "normalization", "utterance_normalization", "speaker_normalization")
# Config fields a resumed run must share with its checkpoints: the data, the model, the optimizer state's structure,
# and the step -> epoch mapping (batch size).
RESUME_FIXED = (*DATA_FIXED, "model", "widths", "residual", "pooling", "hidden", "optimizer", "batch_size", "seed",
                "init_from", "freeze", "init_normalization")
# Config fields the members of an ensemble (several workdirs whose class probabilities are averaged) must share: the
# clips of each split and the raw evaluation windows (DATA_FIXED but the normalisations, which each member applies
# with its own statistics, and the pitch rows, which each member reads or not; plus the evaluation windows' placement).
ENSEMBLE_FIXED = (*(f for f in DATA_FIXED if f not in ("normalization", "speaker_normalization", "pitch")),
                  "test_crops", "crop_shift_frames")
# Fields restoring a workdir reads beyond RESUME_FIXED and ENSEMBLE_FIXED.
_RESTORED = ("dropout_rate", "dtype", "eval_batch_size", "steps_per_epoch")
# Options that were measured, did not pay and were removed (BENCHMARKS.md, "What we tried"), with the value under
# which a saved config used none of them (None: any value, meaningless without the option).
REMOVED_FIELDS: dict[str, Any] = {"ema_decay": 0.0, "mixup_alpha": 0.0, "deltas": 0, "teacher_workdir": "",
                                  "distill_weight": None, "distill_temperature": None}
# Config fields added since the first workdirs were written, with the value under which an older run was trained
# (``labels``: the classes of its outputs, which training records).
ADDED_FIELDS: dict[str, Any] = {"labels": list(EMOTIONS), "folds": 5, "fold": -1, "kfold_validation": True,
                                "init_from": "", "freeze": "none", "init_normalization": "data"}


def upgrade_config(saved: dict[str, Any]) -> dict[str, Any]:
    """A saved config with the ``ADDED_FIELDS`` an older emojax did not write, at the values it trained with."""
    return {**ADDED_FIELDS, **saved}


class TrainingError(RuntimeError):
    """A run or workdir that cannot be used; the message says what was wrong and what to do."""


def _warn(message: str) -> None:
    if jax.process_index() == 0:
        print(f"warning: {message}", file=sys.stderr, flush=True)


def check_saved_config(saved: dict[str, Any], workdir: str | Path) -> None:
    """``TrainingError`` naming the field when a workdir's config used a removed option or lacks a field this version
    reads (written by an older emojax): such a model cannot be rebuilt as it was trained."""
    used = [f"{name}={saved[name]!r}" for name, off in REMOVED_FIELDS.items()
            if name in saved and off is not None and saved[name] != off]
    if used:
        raise TrainingError(f"{workdir} was trained with {', '.join(used)}, an option this version of emojax no longer "
                            "has (it did not improve accuracy; BENCHMARKS.md, \"What we tried\"): retrain the model, "
                            "or use the emojax version that trained it")
    missing = sorted((set(RESUME_FIXED) | set(ENSEMBLE_FIXED) | set(_RESTORED)) - set(saved))
    if missing:
        raise TrainingError(f"the config saved in {workdir} lacks the field(s) {', '.join(missing)}: it was written by "
                            "an older emojax; retrain the model with this version")


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


def save(manager: ocp.CheckpointManager, state: TrainState, normalization: input_pipeline.Normalization,
         config: dict[str, Any], metrics: dict[str, float]) -> None:
    """Saves ``state`` with the normalisation and ``config`` (a dict, with ``steps_per_epoch``) at its step;
    ``metrics`` rank it (``selection_score``)."""
    manager.save(int(state.step), metrics=metrics,
                 args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                         normalization=ocp.args.StandardSave(normalization.to_dict()),
                                         config=ocp.args.JsonSave(config)))


def _first_good(manager: ocp.CheckpointManager, steps: list[int], load: Callable[[int], Any]) -> tuple[int, Any]:
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


def _restore_state(manager: ocp.CheckpointManager, step: int, target: TrainState) -> TrainState:
    """The state of checkpoint ``step`` in ``target``'s structure. Checkpoints written while the state could hold a
    weight average (an option since removed; ``check_saved_config`` refuses those that used it) have an empty ``ema``
    entry, which is read and dropped."""
    try:
        return manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target)))["state"]
    except ValueError as e:
        if "tree structures do not match" not in str(e):
            raise
    fields = {name: getattr(target, name) for name in ("step", "params", "opt_state", "batch_stats", "rng")}
    restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore({**fields, "ema": None})))
    return target.replace(**{name: restored["state"][name] for name in fields})


def restore(workdir: str | Path, which: str = "best"
            ) -> tuple[ml_collections.ConfigDict, TrainState, input_pipeline.Normalization, int]:
    """The config, state and normalisation of a training run's ``"best"`` or ``"latest"`` checkpoint; when
    that one is damaged, of the newest good one (with a warning naming it).

    Returns (config, state, normalization, step); raises ``FileNotFoundError`` naming the workdir when it holds no
    checkpoint (creating nothing), ``TrainingError`` when none can be read or its config cannot be used
    (``check_saved_config``).
    """
    directory = Path(workdir) / CHECKPOINT_DIR
    manager = checkpoint_manager(workdir) if directory.is_dir() else None
    preferred = None if manager is None else manager.best_step() if which == "best" else manager.latest_step()
    if preferred is None:
        if (Path(workdir) / KFOLD_PLAN).is_file():
            raise FileNotFoundError(f"{workdir} is a k-fold cross-validation, one run per fold: use one fold's run "
                                    f"({Path(workdir) / 'fold_0'}), or train one model on every clip with the same "
                                    "command and --config.protocol=all")
        raise FileNotFoundError(f"no checkpoints in {directory}: train first with python train.py --workdir {workdir}")

    def load(step: int) -> tuple[ml_collections.ConfigDict, TrainState, dict]:
        meta = manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore(),
                                                             normalization=ocp.args.StandardRestore()))
        saved = upgrade_config(meta["config"])
        check_saved_config(saved, workdir)
        config = ml_collections.ConfigDict({k: v for k, v in saved.items() if k not in REMOVED_FIELDS})
        # An abstract target: shapes, dtypes and placement only, so nothing is initialised or compiled.
        device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        try:
            shapes = jax.eval_shape(lambda: create_train_state(config, models.create_model(config),
                                                               max(int(config.steps_per_epoch), 1)))
        except ValueError as e:  # e.g. a pooling or optimizer this version no longer has
            raise TrainingError(f"{workdir}: {e}; retrain the model with this version of emojax") from None
        target = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=device), shapes)
        return config, _restore_state(manager, step, target), _normalization(meta["normalization"], config)

    others = sorted((s for s in manager.all_steps() if s != preferred), reverse=True)
    step, (config, state, normalization) = _first_good(manager, [preferred, *others], load)
    manager.close()
    return config, state, normalization, step


def _normalization(saved: dict[str, Any], config: ml_collections.ConfigDict) -> input_pipeline.Normalization:
    """The saved statistics of each input; checkpoints that kept the pitch rows' statistics under the MFCCs' (one
    ``mean`` and ``std`` of n_mfcc + 2 rows) are split into the two inputs."""
    if "mean" in saved:
        saved = {"mfcc": {k: v[:config.n_mfcc] for k, v in saved.items()}} | (
            {"pitch": {k: v[config.n_mfcc:] for k, v in saved.items()}} if config.pitch else {})
    return input_pipeline.Normalization.from_dict(saved)


def config_diffs(saved: dict[str, Any], requested: dict[str, Any], fields: Sequence[str], now: str) -> list[str]:
    """``"<field>: <saved> there, <requested> <now>"`` for each of ``fields`` whose values differ (tuples compared
    with the lists JSON gives back)."""
    def plain(value: Any) -> Any:
        return list(value) if isinstance(value, (tuple, list)) else value

    return [f"{name}: {saved.get(name)!r} there, {requested.get(name)!r} {now}" for name in fields
            if plain(saved.get(name)) != plain(requested.get(name))]


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
        diffs = config_diffs(config.to_dict(), first, ENSEMBLE_FIXED, f"in {workdirs[0]}")
        if diffs:
            raise TrainingError(f"{workdir} cannot be averaged with {workdirs[0]}: it was trained on other clips or "
                                f"windows ({'; '.join(diffs)}); ensemble runs of the same protocol, split and window "
                                "settings")
    return members


def resume(manager: ocp.CheckpointManager, workdir: Path, state: TrainState, saved_config: dict[str, Any]
           ) -> TrainState | None:
    """The state of the newest good checkpoint (None when there is none), after checking that its config shares the
    ``RESUME_FIXED`` fields (and steps per epoch) of ``saved_config``, the run's; damaged checkpoints after it are
    deleted with a warning, so that they are redone."""
    steps = sorted(manager.all_steps(), reverse=True)
    if not steps:
        return None

    def load(step: int) -> TrainState:
        old = upgrade_config(manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))["config"])
        check_saved_config(old, workdir)
        diffs = config_diffs(old, saved_config, [*RESUME_FIXED, "steps_per_epoch"], "now")
        if diffs:
            raise TrainingError(f"the checkpoints in {workdir / CHECKPOINT_DIR} (step {step}) were trained with "
                                f"another config ({'; '.join(diffs)}); refusing to overwrite them: use another --workdir, or "
                                "the workdir's config to resume (only epochs, learning rate, schedule, regularisation "
                                "and augmentation may change)")
        return _restore_state(manager, step, state)

    step, state = _first_good(manager, steps, load)
    for bad in steps:
        if bad > step:
            _warn(f"deleting the damaged checkpoint {manager.directory / str(bad)}; its epoch will be trained again")
            manager.delete(bad)
    return state
