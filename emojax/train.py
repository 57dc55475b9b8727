"""Training: ``train_and_evaluate(config, workdir)``, the epoch loop with its logs, signals and checks.

The pieces it puts together: ``input_pipeline`` (windows of the prepared corpora), ``state`` (the ``TrainState``),
``steps`` (the jitted, scanned epoch; see there for how it is parallelised and kept deterministic), ``checkpoints``
(orbax, resuming) and ``evaluate`` (metrics of the best checkpoint on the test split). With several processes
(``jax.distributed``, see top-level ``train.py``) every process runs this loop on the same data and permutations; all
processes save and restore the orbax checkpoints together (orbax writes each array once); only process 0 prints,
writes ``metrics.jsonl``, TensorBoard and ``test_metrics.json``.

Resilience: a run killed at any point (even during a checkpoint write) and started again on its workdir ends with
the same parameters and ``metrics.jsonl`` as an uninterrupted one (``metrics.jsonl`` and the TensorBoard log are cut
back to the resumed epoch, so redone epochs appear once). SIGTERM/SIGINT let the current epoch finish (one jitted
call on the scanned path), save its checkpoint and raise ``Interrupted``; a resume starts at that epoch boundary. A
SIGINT before the epochs start (loading, compiling), or a second one, raises ``Interrupted`` at once, saying which
checkpoint is kept. A damaged checkpoint is skipped with a warning for the previous good one. A non-finite loss or
parameter stops training (``TrainingError``) before it is checkpointed. A workdir whose checkpoints come from an
incompatible config (``checkpoints.RESUME_FIXED``) is refused.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

from emojax import augment, checkpoints, evaluate, finetune, input_pipeline, models, protocols
from emojax.checkpoints import CHECKPOINT_DIR, BEST_METRIC, TrainingError
from emojax.state import create_train_state, learning_rate_schedule, make_mesh, model_variables, num_parameters
from emojax.steps import Trainer, class_weights


class Interrupted(Exception):
    """Training stopped on SIGTERM/SIGINT after checkpointing an epoch boundary; ``signum`` is the signal."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum


def _is_primary() -> bool:
    """Whether this is process 0, the one that prints and writes logs."""
    return jax.process_index() == 0


def _log(message: str) -> None:
    if _is_primary():
        print(message, flush=True)


def ensure_prepared(config: ml_collections.ConfigDict) -> None:
    """Builds ``synthetic_prosody`` when it is asked for and missing; explains how to prepare the others."""
    from emojax import prepared

    if not config.datasets:
        raise TrainingError("config.datasets names no corpus: give the prepared corpora to train on, e.g. "
                            "--config.datasets=custom/<name> for yours (datasets/custom/README.md)")
    for name in config.datasets:
        if prepared.is_prepared(name, config.data_dir):
            continue
        if name == "synthetic_prosody":
            from emojax import corpora

            _log(f"building the synthetic corpus {name} (once) ...")
            try:
                corpora.build(name, data_dir=config.data_dir)
            except corpora.MissingBuildExtra as e:
                raise TrainingError(str(e)) from None
        else:
            root = config.data_dir or prepared.default_data_dir()
            raise FileNotFoundError(f"corpus {name!r} is not prepared in {root}: run "
                                    f"`{prepared.build_command(name, root)}` first (DIR: the recordings), or choose "
                                    "other corpora with --config.datasets")


def with_labels(config: ml_collections.ConfigDict, classes: tuple[str, ...]) -> ml_collections.ConfigDict:
    """A copy of ``config`` whose ``labels`` are ``classes``, the training data's label set (the model's outputs)."""
    resolved = ml_collections.ConfigDict(config.to_dict())
    resolved.labels = list(classes)
    return resolved


def _check_writable(workdir: Path) -> None:
    """Creates ``workdir`` and writes a scratch file in it; ``TrainingError`` saying so when it cannot."""
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=workdir):
            pass
    except OSError as e:
        raise TrainingError(f"cannot write to the workdir {workdir}: {e.strerror or e}; choose another --workdir "
                            "or make it writable") from e


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
                       splits: dict[str, protocols.Corpus] | None = None) -> dict[str, Any]:
    """Trains ``config`` in ``workdir`` (resuming from its latest good checkpoint), then evaluates the best
    checkpoint on the test split; returns the test metrics (also written to ``workdir/test_metrics.json``).
    With several processes (``jax.distributed``) every process calls it with the same arguments.

    ``splits``: the protocol's examples (``protocols.load_splits``) when they are already in memory; by
    default they are read from the prepared corpora (building the synthetic one when it is asked for).

    Raises ``TrainingError`` (unwritable or incompatible workdir, unreadable checkpoints, non-finite loss)
    and ``Interrupted``: on SIGTERM/SIGINT during an epoch, after checkpointing that epoch; on SIGINT (and, after
    ``stop_on_signals()``, SIGTERM) at any other time (loading, compiling, a second signal), at once, keeping the
    checkpoints already written.
    """
    workdir = Path(workdir)
    if config.protocol == "kfold" and config.fold < 0:
        from emojax import kfold  # runs this function once per fold

        return kfold.train_folds(config, workdir)
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
        manager = checkpoints.checkpoint_manager(workdir)
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
                        splits: dict[str, protocols.Corpus] | None) -> dict[str, Any]:
    primary = _is_primary()
    _check_writable(workdir)
    if splits is None:
        if primary:  # builds the synthetic corpus when needed: once, before the other processes read it
            ensure_prepared(config)
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices("emojax: data prepared")
        if not primary:  # nothing to build any more; explains a corpus missing on this host
            ensure_prepared(config)
        splits = protocols.load_splits(config)
    config = with_labels(config, splits["train"].classes)
    if config.front_end not in input_pipeline.FRONT_ENDS:
        raise TrainingError(f"unknown config.front_end {config.front_end!r}; use one of "
                            f"{', '.join(input_pipeline.FRONT_ENDS)}")
    if augment.waveform_augmentations(config) and config.front_end != "step":
        raise TrainingError(f"the waveform augmentations ({', '.join(augment.waveform_augmentations(config))}) act "
                            "before the front end: train with --config.front_end=step")
    source = finetune.load_source(config.init_from) if config.init_from else None
    if source is not None:
        finetune.check_compatible(config, source)
    kept = source.normalization if source is not None and config.init_normalization == "kept" else None
    arrays, normalization = input_pipeline.prepare(config, splits, kept)
    train = arrays["train"]
    steps_per_epoch = len(train.y) // config.batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"{len(train.y)} training examples are fewer than config.batch_size={config.batch_size}")
    _log(f"data: {', '.join(config.datasets)} ({config.protocol} protocol): "
         + ", ".join(f"{k} {len(v.y)}" for k, v in arrays.items())
         + f"; windows of {' + '.join(f'{x.shape[-2]} {name}' for name, x in arrays['test'].x.items())} rows x "
           f"{config.window_frames} frames" + (" (training windows from the recordings, in the step)"
                                               if config.front_end == "step" else ""))
    validate = len(arrays["validation"].y) > 0
    if not validate:
        _log("no validation clips" + (" (config.refit: they are trained on)" if config.refit else "")
             + f": the last of the {config.epochs} epochs is the checkpoint kept and tested")

    mesh = make_mesh()
    model = models.create_model(config)
    trainer = Trainer(config, model, mesh, class_weights(config, train.y), normalization)
    state = create_train_state(config, model, steps_per_epoch)
    n_params = num_parameters(state.params)
    _log(f"model: {config.model}, {n_params:,} parameters; {mesh.size} device(s) "
         f"({jax.devices()[0].platform}); {steps_per_epoch} steps/epoch of {config.batch_size}")

    saved_config = config.to_dict()
    saved_config["steps_per_epoch"] = steps_per_epoch
    manager = checkpoints.checkpoint_manager(workdir, writer=True)
    writer = None
    try:
        resumed = checkpoints.resume(manager, workdir, state, saved_config)
        if resumed is not None:
            state = resumed
            _log(f"resuming from step {int(state.step)} in {workdir / CHECKPOINT_DIR}")
        elif source is not None:
            state, how = finetune.initialize(state, config, source)
            _log(how + (f"; {config.freeze} frozen" if config.freeze != "none" else ""))
        state = trainer.place(state)
        start_epoch = int(state.step) // steps_per_epoch

        if config.data_on_device:
            data = jax.device_put((train.x, train.y), trainer.replicated)
        else:
            data = (train.x, train.y)
        if primary:
            writer = _tensorboard(workdir / "tensorboard", _truncate_metrics(workdir / "metrics.jsonl", start_epoch))
        if start_epoch < config.epochs:
            seconds = trainer.compile(state, data)
            _log(f"compiled the {'epoch' if config.data_on_device else 'steps'} in {seconds:.1f} s")
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
                    val = evaluate.evaluate(trainer, model_variables(state), arrays["validation"])
                    record.update(val_accuracy=val["accuracy"], val_unweighted_accuracy=val["unweighted_accuracy"],
                                  val_macro_f1=val["macro_f1"])
                    validation = f"val_acc {val['accuracy']:.3f} val_ua {val['unweighted_accuracy']:.3f} "
                if primary:
                    with open(workdir / "metrics.jsonl", "a") as f:
                        f.write(json.dumps(record) + "\n")
                    _scalars(writer, record)
                    writer.flush()
                selection = {BEST_METRIC: record[BEST_METRIC]} if validate else {"epoch": record["epoch"]}
                checkpoints.save(manager, state, normalization, saved_config, selection)
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
    _, best_state, _, best = checkpoints.restore(workdir, "best")
    if not len(arrays["test"].y):  # config.protocol="all": every clip was trained on
        _log(f"no test clips ({config.protocol} protocol): the last checkpoint, step {best}, is the model")
        return {"checkpoint_step": best, "num_parameters": n_params, "num_examples": 0}
    test = evaluate.evaluate(trainer, trainer.place(model_variables(best_state)), arrays["test"],
                             protocols.held_out_classes(config))
    test["checkpoint_step"], test["num_parameters"] = best, n_params
    if primary:
        (workdir / "test_metrics.json").write_text(json.dumps(test, indent=1))
    _log(f"test ({'best' if validate else 'last'} checkpoint, step {best}): accuracy {test['accuracy']:.4f}"
         f" unweighted {test['unweighted_accuracy']:.4f} macro_f1 {test['macro_f1']:.4f}"
         f" keras_precision {test['keras_precision']:.4f}"
         f" keras_recall {test['keras_recall']:.4f} (n={test['num_examples']})")
    if "held_out_classes" in test:
        held_out = test["held_out_classes"]
        _log(f"test restricted to {config.test_corpus}'s emotions ({', '.join(held_out['classes'])}): accuracy "
             f"{held_out['accuracy']:.4f} unweighted {held_out['unweighted_accuracy']:.4f}")
    return test


def epoch_records(workdir: str | Path) -> list[dict[str, Any]]:
    """A run's per-epoch records, as the loop wrote them to ``workdir/metrics.jsonl`` (one dict per epoch)."""
    return [json.loads(line) for line in (Path(workdir) / "metrics.jsonl").read_text().splitlines()]
