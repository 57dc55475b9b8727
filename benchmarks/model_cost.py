"""What a config's model costs to train, counted rather than timed (so it is exact on a busy machine and the same on
any backend): parameters and the matrix-product FLOPs of one training step per example (``train_speed.product_flops``
of ``Trainer.step``'s jaxpr: convolutions and dense layers, forward and backward).

    python benchmarks/model_cost.py --config configs/default.py [--config.FIELD=VALUE ...]
        [--baseline configs/default.py [--baseline.FIELD=VALUE ...]]

With ``--baseline`` it also prints the ratio of the two step costs, e.g. what ``--config.residual=True`` would add to
a run's time on a CPU whose speed is bound by these products.
"""

from __future__ import annotations

import sys
from pathlib import Path

from absl import app, flags
import ml_collections
from ml_collections import config_flags

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from train_speed import product_flops  # noqa: E402

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Training config file, e.g. configs/default.py.", lock_config=True)
config_flags.DEFINE_config_file("baseline", None, "A second config file to compare with (optional; overrides as "
                                "--baseline.FIELD=VALUE).", lock_config=True)
flags.mark_flag_as_required("config")


def step_cost(config: ml_collections.ConfigDict) -> tuple[int, float]:
    """(trainable parameters, matrix-product FLOPs of one training step per example) of ``config``'s model, on
    windows of ``input_pipeline.input_rows(config)`` x ``config.window_frames``."""
    import jax
    import numpy as np

    from emojax import input_pipeline, models, train

    trainer = train.Trainer(config, models.create_model(config), train.make_mesh())
    state = train.create_train_state(config, trainer.model, steps_per_epoch=1)
    x = jax.ShapeDtypeStruct((config.batch_size, input_pipeline.input_rows(config), config.window_frames),
                             np.float32)
    y = jax.ShapeDtypeStruct((config.batch_size,), np.int32)
    jaxpr = jax.make_jaxpr(trainer.step)(state, x, y, jax.random.PRNGKey(0))
    return train.num_parameters(state.params), product_flops(jaxpr.jaxpr) / config.batch_size


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}; configs go in --config and --config.FIELD=VALUE")
    params, flops = step_cost(FLAGS.config)
    print(f"config: {params:,} parameters, {flops / 1e6:.1f} MFLOP per training example")
    if FLAGS.baseline is not None:
        base_params, base_flops = step_cost(FLAGS.baseline)
        print(f"baseline: {base_params:,} parameters, {base_flops / 1e6:.1f} MFLOP per training example")
        print(f"config / baseline: {flops / base_flops:.2f}x the products per step")


if __name__ == "__main__":
    app.run(main)
