"""Train a model: ``python train.py --workdir DIR [--config configs/NAME.py] [--config.FIELD=VALUE ...]``.

Without ``--config`` it uses ``configs/default.py`` on the four corpora when all are prepared, and
otherwise says so and trains the embedded synthetic demo (``configs/demo.py``). Running again on the
same workdir resumes from its latest good checkpoint (keep the config the same: ``epochs`` also shapes the
learning-rate schedule; a workdir trained with an incompatible config is refused). ``--config.FIELD=VALUE``
overrides need ``--config``.

SIGTERM or Ctrl-C finishes the running epoch, checkpoints it and exits with status 128 + the signal
number (a second one stops at once); a non-finite loss or an unusable workdir exits with status 1 and a
message saying what to do, e.g. resume with a lower ``--config.learning_rate``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from absl import app, flags, logging
import ml_collections
from ml_collections import config_flags

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics.jsonl and TensorBoard logs.", required=True)
config_flags.DEFINE_config_file("config", None, "Training config file, e.g. configs/seed.py.", lock_config=True)

CONFIGS = Path(__file__).resolve().parent / "configs"


def _load(name: str) -> ml_collections.ConfigDict:
    """``get_config()`` of ``configs/<name>.py``."""
    spec = importlib.util.spec_from_file_location(f"configs.{name}", CONFIGS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def main(argv: list[str]) -> int:
    del argv
    logging.set_verbosity(logging.WARNING)  # orbax and tfds log every file at INFO
    from emojax import corpora, train

    config = FLAGS.config
    if config is None:
        missing = [name for name in corpora.CORPORA if not corpora.is_prepared(name)]
        if missing:
            print(f"The corpora {', '.join(missing)} are not prepared in {corpora.default_data_dir()}, so this run "
                  "trains the embedded synthetic demo (configs/demo.py).\nTo train on real speech, prepare each "
                  "corpus once, e.g. `tfds build datasets/ravdess --manual_dir /path/to/ravdess` (likewise "
                  "savee, crema_d, tess), then run train.py again.", flush=True)
            config = _load("demo")
        else:
            config = _load("default")
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
