"""Train a model: ``python train.py --workdir DIR [--config configs/NAME.py] [--config.FIELD=VALUE ...]``.

Without ``--config`` it uses ``configs/default.py`` on the four corpora when all are prepared, and
otherwise says so and trains the embedded synthetic demo (``configs/demo.py``). Running again on the
same workdir resumes from its latest good checkpoint (keep the config the same: ``epochs`` also shapes the
learning-rate schedule; a workdir trained with an incompatible config is refused). ``--config.FIELD=VALUE``
overrides need ``--config``.

SIGTERM or Ctrl-C finishes the running epoch, checkpoints it and exits with status 128 + the signal
number; a second one, or one before the first epoch runs (loading, compiling), stops at once with a
one-line message (status 128 + the signal number) keeping the checkpoints already written. A non-finite loss or an unusable
workdir exits with status 1 and a message saying what to do, e.g. resume with a lower
``--config.learning_rate``.

All local devices (GPUs, TPU cores) are used. Several hosts: run the same command on every host with
``--multihost`` (``jax.distributed.initialize()`` finds the cluster on TPU pod slices, SLURM, ...), or name
the cluster with ``--coordinator HOST:PORT --num_processes N --process_id I``; the workdir must be a
directory all hosts share. Only process 0 prints and writes logs.
"""

from __future__ import annotations

import importlib.util
import signal
import sys
from pathlib import Path

from absl import app, flags, logging
import ml_collections
from ml_collections import config_flags

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics.jsonl and TensorBoard logs.", required=True)
config_flags.DEFINE_config_file("config", None, "Training config file, e.g. configs/seed.py.", lock_config=True)
flags.DEFINE_bool("multihost", False, "One process of a multi-host run: jax.distributed.initialize() detects the "
                  "cluster (TPU pod slices, SLURM, ...).")
flags.DEFINE_string("coordinator", None, "HOST:PORT of process 0 of a multi-process run, with --num_processes and "
                    "--process_id (e.g. 127.0.0.1:12345 for several processes on one machine).")
flags.DEFINE_integer("num_processes", None, "Number of processes of a multi-process run (with --coordinator).")
flags.DEFINE_integer("process_id", None, "This process's index, 0 .. num_processes - 1 (with --coordinator).")

CONFIGS = Path(__file__).resolve().parent / "configs"


def _load(name: str) -> ml_collections.ConfigDict:
    """``get_config()`` of ``configs/<name>.py``."""
    spec = importlib.util.spec_from_file_location(f"configs.{name}", CONFIGS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def _initialize_distributed() -> None:
    """``jax.distributed.initialize`` as the flags ask (nothing without --multihost or --coordinator)."""
    import jax

    cluster = (FLAGS.coordinator, FLAGS.num_processes, FLAGS.process_id)
    if any(value is not None for value in cluster):
        if any(value is None for value in cluster):
            raise app.UsageError("--coordinator, --num_processes and --process_id go together; give all three "
                                 "(or --multihost alone on a TPU pod slice or SLURM cluster)")
        jax.distributed.initialize(*cluster)
    elif FLAGS.multihost:
        jax.distributed.initialize()


def main(argv: list[str]) -> int:
    del argv
    logging.set_verbosity(logging.WARNING)  # orbax and tfds log every file at INFO
    try:
        from emojax import train

        train.stop_on_signals()
        _initialize_distributed()
        return _train()
    except KeyboardInterrupt as e:  # before train_and_evaluate, which handles its own
        signum = getattr(e, "signum", signal.SIGINT)
        print(f"stopped by {signal.Signals(signum).name} before training started: nothing new was saved",
              file=sys.stderr, flush=True)
        return 128 + signum


def _train() -> int:
    """Trains the chosen config in --workdir; returns the exit status."""
    import jax
    from emojax import prepared, train

    config = FLAGS.config
    if config is None:
        missing = [name for name in prepared.CORPORA if not prepared.is_prepared(name)]
        if missing and jax.process_index() == 0:
            print(f"The corpora {', '.join(missing)} are not prepared in {prepared.default_data_dir()}, so this run "
                  "trains the embedded synthetic demo (configs/demo.py).\nTo train on real speech, prepare each "
                  "corpus once, e.g. `tfds build datasets/ravdess --manual_dir /path/to/ravdess` (likewise "
                  "savee, crema_d, tess), then run train.py again.", flush=True)
        config = _load("demo" if missing else "default")
    try:
        train.train_and_evaluate(config, FLAGS.workdir)
    except train.Interrupted as e:  # preempted: the epoch boundary is checkpointed
        print(e, file=sys.stderr, flush=True)
        return 128 + e.signum
    except train.TrainingError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    app.run(main)
