"""Training throughput of the seed configuration: emojax (scanned on-device epoch, host-fed steps) against
the same CNN in Keras/TensorFlow, on random data of the real shapes (9,729 windows of 25 MFCC x 216 frames,
labels in [0, 8)), so no dataset is needed; and (``--cost``) what any config's model costs to train, counted.

    python benchmarks/train_speed.py [--rounds 3] [--epochs 1] [--steps 50] [--batch_size 16]
        [--dtype float32] [--conv auto] [--paths all] [--peak_size 2048] [--no_predict]
    python benchmarks/train_speed.py --cost --config configs/default.py [--config.FIELD=VALUE ...]
        [--baseline configs/default.py [--baseline.FIELD=VALUE ...]]

Each measurement runs in its own subprocess (TensorFlow and XLA:CPU both size thread pools to the machine
and fight when they share a process); the paths are interleaved over ``--rounds`` (order reversed every
other round) and the table shows medians over rounds and timed epochs. Per path and round: a warm-up epoch
(after emojax's ahead-of-time compile; Keras traces in it), then ``--epochs`` timed epochs, each of
``--steps`` batches of random data; seconds per epoch are extrapolated from examples/s to 9,729 clips
(``--steps 0``: whole epochs of 608 batches, the remainder dropped as emojax does, no extrapolation). FLOP/s
count the matrix products and convolutions of the SeedCNN's training step per example (``product_flops`` of the
emojax step's jaxpr: 100.4 M; the Keras model is the same network, so the same count; XLA's cost analysis would add
the elementwise work on the CPU and leave out cuDNN's convolutions on a GPU); the peak is a float32 2048 x 2048
``jnp.dot`` timed under ``jit`` in its own subprocess (fastest of 10 calls; ``--peak_size`` sets the size, and with
``--dtype bfloat16`` the product is in bfloat16 as the step's compute is). The speed goal printed at the end: an
epoch in <= 8 s and >= 1.5x the Keras peer on a 2-core CPU.

On a GPU: ``--dtype bfloat16`` times the mixed-precision option (emojax paths; the Keras peer stays float32),
``--conv matmul|lax`` forces ``models.CONV_IMPLEMENTATION`` (default "auto": products on CPU, ``lax.conv`` on
GPU/TPU), ``--paths`` picks a subset of the paths. The Keras peer runs on whatever backend Keras is set to
(``KERAS_BACKEND``; TensorFlow by default, e.g. ``torch`` where TensorFlow has no GPU build installed).

Each round also times evaluation, ``Trainer.predict`` on 2,433 windows (the seed protocol's test clips), as it
runs (batches of 32, up to 32 batches scanned per jitted call) and with one jitted call per 256-window batch, each in
its own subprocess: the fastest of 5 calls after a warm-up.

``--cost`` times nothing: it prints a config's trainable parameters and the matrix-product FLOPs of one training step
per example (``product_flops`` of ``Trainer.step``'s jaxpr: convolutions and dense layers, forward and backward), so
the figure is exact on a busy machine and the same on any backend; with ``--baseline`` also the ratio of the two step
costs, e.g. what ``--config.residual=True`` would add to a run's time on a CPU whose speed these products bound.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
NUM_EXAMPLES = 9_729  # training clips of the seed protocol's random 80/20 split
SHAPE = (25, 216)  # MFCC coefficients x frames
NUM_CLASSES = 8
KERAS_PARAMS = 56_040  # the reference model's parameter count (384 of them BatchNorm statistics)
PATHS = ("emojax on-device", "emojax host-fed", "keras")
EVAL_WINDOWS = 2_433  # test clips of the seed protocol, one window each
# Trainer.predict's settings -> (eval_batch_size, batches per jitted call): the configured one, and unscanned.
PREDICT_VARIANTS = {"batches of 32, 32 per scanned call": (32, 32), "one call per 256 windows": (256, 1)}
TARGET_SECONDS = 8.0
TARGET_VS_KERAS = 1.5


def random_data(num_examples: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """x (num_examples, 25, 216) float32 ~ N(0, 1) (normalised MFCCs), y (num_examples,) int32 in [0, 8)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((num_examples, *SHAPE), dtype=np.float32)
    return x, rng.integers(0, NUM_CLASSES, num_examples).astype(np.int32)


def seed_config(batch_size: int) -> Any:
    """``configs/seed.py``'s config with ``batch_size``."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("configs.seed", REPO / "configs" / "seed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config()
    config.batch_size = batch_size
    return config


def product_flops(jaxpr: Any) -> float:
    """FLOPs of the matrix products and convolutions in ``jaxpr`` (a ``jax.extend.core.Jaxpr``), sub-jaxprs
    included (a scan's body times its length): 2 x output size x contracted size for each ``dot_general`` and
    ``conv_general_dilated``. The same count for either ``Conv3x3`` form and on any backend, where XLA's cost
    analysis leaves out library calls (cuDNN convolutions) and depends on the compiler's rewrites."""
    from jax.extend.core import ClosedJaxpr, Jaxpr

    total = 0.0
    for eqn in jaxpr.eqns:
        out = math.prod(eqn.outvars[0].aval.shape) if eqn.outvars else 0
        if eqn.primitive.name == "dot_general":
            (contracting, _), _ = eqn.params["dimension_numbers"]
            lhs = eqn.invars[0].aval.shape
            total += 2 * out * math.prod(lhs[d] for d in contracting)
        elif eqn.primitive.name == "conv_general_dilated":
            rhs, spec = eqn.invars[1].aval.shape, eqn.params["dimension_numbers"].rhs_spec
            total += 2 * out * math.prod(rhs[d] for d in spec[1:])  # input features x kernel window
        repeats = eqn.params.get("length", 1) if eqn.primitive.name == "scan" else 1
        for value in eqn.params.values():
            for sub in value if isinstance(value, (tuple, list)) else (value,):
                if isinstance(sub, ClosedJaxpr):
                    total += repeats * product_flops(sub.jaxpr)
                elif isinstance(sub, Jaxpr):
                    total += repeats * product_flops(sub)
    return total


def worker_jax(path: str, steps: int, epochs: int, batch_size: int, dtype: str, conv: str) -> dict[str, Any]:
    """Times the emojax Trainer on ``path`` ("emojax on-device" or "emojax host-fed"), computing in ``dtype``
    with ``models.CONV_IMPLEMENTATION = conv``.

    Returns {"epoch_seconds": [...], "warmup_seconds", "examples_per_epoch", "devices", "conv",
    "train_flops_per_example"} (the last: ``product_flops`` of the train step).
    """
    import jax

    from emojax import models, state as states, steps as training_steps

    models.CONV_IMPLEMENTATION = conv
    config = seed_config(batch_size)
    config.dtype = dtype
    config.data_on_device = path == "emojax on-device"
    x, y = random_data(steps * batch_size)
    x = {"mfcc": x}
    trainer = training_steps.Trainer(config, models.create_model(config), states.make_mesh())
    state = trainer.place(states.create_train_state(config, trainer.model, steps))
    data = jax.device_put((x, y), trainer.replicated) if config.data_on_device else (x, y)
    trainer.compile(state, data)
    times = []
    for epoch in range(epochs + 1):  # epoch 0: warm-up
        started = time.perf_counter()
        state, history = trainer.train_epoch(state, data, epoch)
        jax.block_until_ready(state)
        times.append(time.perf_counter() - started)
        if not np.isfinite(history["loss"]).all():
            raise RuntimeError(f"{path}: non-finite loss in epoch {epoch}")
    result = {"epoch_seconds": times[1:], "warmup_seconds": times[0], "examples_per_epoch": steps * batch_size,
              "devices": [str(d) for d in jax.devices()], "conv": models.conv_implementation()}
    # One step (one batch); both paths scan it.
    xb = {"mfcc": jax.ShapeDtypeStruct((batch_size, *x["mfcc"].shape[1:]), x["mfcc"].dtype)}
    yb = jax.ShapeDtypeStruct((batch_size,), y.dtype)
    step = jax.make_jaxpr(trainer.step)(state, xb, yb, jax.random.PRNGKey(0))
    result["train_flops_per_example"] = product_flops(step.jaxpr) / batch_size
    return result


def worker_predict(batch_size: int, batches_per_call: int, dtype: str, conv: str, repeats: int = 5
                   ) -> dict[str, Any]:
    """Times ``Classifier.predict`` of the SeedCNN on ``EVAL_WINDOWS`` random windows, with ``batch_size`` windows
    per batch and ``batches_per_call`` batches per jitted call; a warm-up call first (compiles), then the fastest
    of ``repeats``. Returns {"seconds", "windows"}."""
    import jax

    from emojax import models, state, steps

    models.CONV_IMPLEMENTATION = conv
    config = seed_config(16)
    config.dtype = dtype
    steps.PREDICT_BATCHES_PER_CALL = batches_per_call
    x = {"mfcc": random_data(EVAL_WINDOWS)[0]}
    classifier = steps.Classifier(models.create_model(config), state.make_mesh(), batch_size)
    variables = classifier.place(state.model_variables(state.create_train_state(config, classifier.model, 1)))
    classifier.predict(variables, x)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        classifier.predict(variables, x)
        times.append(time.perf_counter() - started)
    return {"seconds": min(times), "windows": EVAL_WINDOWS, "devices": [str(d) for d in jax.devices()]}


def keras_model(dropout_rate: float = 0.2) -> Any:
    """The reference CNN in Keras: 4 x [Conv2D 32 3x3 same + ReLU -> BatchNorm -> MaxPool 2x2 -> Dropout],
    Flatten -> Dense 64 ReLU -> Dropout -> BatchNorm -> Dropout -> Dense 8 softmax; input (25, 216, 1)."""
    import keras

    layers = [keras.Input((*SHAPE, 1))]
    for _ in range(4):
        layers += [keras.layers.Conv2D(32, 3, padding="same", activation="relu"), keras.layers.BatchNormalization(),
                   keras.layers.MaxPooling2D(2), keras.layers.Dropout(dropout_rate)]
    layers += [keras.layers.Flatten(), keras.layers.Dense(64, activation="relu"), keras.layers.Dropout(dropout_rate),
               keras.layers.BatchNormalization(), keras.layers.Dropout(dropout_rate),
               keras.layers.Dense(NUM_CLASSES, activation="softmax")]
    return keras.Sequential(layers)


def worker_keras(steps: int, epochs: int, batch_size: int) -> dict[str, Any]:
    """Times ``model.fit`` of the Keras peer (Adam 1e-3): one fit call of 1 + ``epochs`` epochs, the first a
    warm-up; epoch times come from a callback. Returns {"epoch_seconds": [...], ...}."""
    import keras

    model = keras_model()
    if model.count_params() != KERAS_PARAMS:
        raise RuntimeError(f"Keras peer has {model.count_params()} parameters, expected {KERAS_PARAMS}")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    x, y = random_data(steps * batch_size)

    class EpochTimes(keras.callbacks.Callback):
        """Wall-clock seconds of each epoch."""

        def __init__(self) -> None:
            super().__init__()
            self.times: list[float] = []

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self.times.append(time.perf_counter() - self.started)

    timer = EpochTimes()
    model.fit(x[..., None], y, batch_size=batch_size, epochs=epochs + 1, verbose=0, callbacks=[timer])
    return {"epoch_seconds": timer.times[1:], "warmup_seconds": timer.times[0],
            "examples_per_epoch": steps * batch_size, "devices": _keras_devices()}


def _keras_devices() -> list[str]:
    """Keras's backend and the devices it computes on."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return [f"tensorflow {d.name}" for d in tf.config.list_logical_devices()]
    if backend == "torch":
        import torch

        return [f"torch {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "torch cpu"]
    import jax

    return [f"{backend} {d}" for d in jax.devices()]


def worker_peak(size: int, dtype: str, repeats: int = 10) -> dict[str, Any]:
    """Matmul peak: FLOP/s of a jitted (size x size) @ (size x size) in ``dtype`` (default precision), the
    fastest of ``repeats`` calls (on a shared machine the median measures the neighbours)."""
    import jax
    import jax.numpy as jnp

    a, b = (jax.random.normal(key, (size, size), dtype) for key in jax.random.split(jax.random.PRNGKey(0)))
    dot = jax.jit(jnp.dot).lower(a, b).compile()
    dot(a, b).block_until_ready()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        dot(a, b).block_until_ready()
        times.append(time.perf_counter() - started)
    return {"flops_per_second": 2 * size**3 / min(times), "size": size, "dtype": dtype}


def step_cost(config: Any) -> tuple[int, float]:
    """(trainable parameters, matrix-product FLOPs of one training step per example) of ``config``'s model, on
    windows of ``input_pipeline.input_shapes(config)``."""
    import jax

    from emojax import input_pipeline, models, state as states, steps

    trainer = steps.Trainer(config, models.create_model(config), states.make_mesh())
    state = states.create_train_state(config, trainer.model, steps_per_epoch=1)
    x = {name: jax.ShapeDtypeStruct((config.batch_size, *shape), np.float32)
         for name, shape in input_pipeline.input_shapes(config).items()}
    y = jax.ShapeDtypeStruct((config.batch_size,), np.int32)
    jaxpr = jax.make_jaxpr(trainer.step)(state, x, y, jax.random.PRNGKey(0))
    return states.num_parameters(state.params), product_flops(jaxpr.jaxpr) / config.batch_size


def model_cost(argv: list[str]) -> None:
    """Prints ``step_cost`` of ``--config`` (and of ``--baseline``, with the ratio), from ``argv``: config files and
    ``--config.FIELD=VALUE`` / ``--baseline.FIELD=VALUE`` overrides as train.py's flags take them."""
    from absl import flags
    from ml_collections import config_flags

    flag_values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", None, "Training config file.", flag_values=flag_values,
                                    lock_config=True, sys_argv=argv)
    config_flags.DEFINE_config_file("baseline", None, "A second config file to compare with.",
                                    flag_values=flag_values, lock_config=True, sys_argv=argv)
    flag_values(argv)
    if flag_values.config is None:
        raise SystemExit("--cost needs --config CONFIG_FILE (and optionally --baseline CONFIG_FILE)")
    params, flops = step_cost(flag_values.config)
    print(f"config: {params:,} parameters, {flops / 1e6:.1f} MFLOP per training example")
    if flag_values.baseline is not None:
        base_params, base_flops = step_cost(flag_values.baseline)
        print(f"baseline: {base_params:,} parameters, {base_flops / 1e6:.1f} MFLOP per training example")
        print(f"config / baseline: {flops / base_flops:.2f}x the products per step")


def run_worker(name: str, args: argparse.Namespace, steps: int) -> dict[str, Any]:
    """Runs one measurement in a fresh interpreter; returns its JSON result plus the 1-minute load averages
    before and after."""
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", name, "--steps", str(steps),
               "--epochs", str(args.epochs), "--batch_size", str(args.batch_size), "--dtype", args.dtype,
               "--conv", args.conv, "--peak_size", str(args.peak_size)]
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    done = subprocess.run(command, check=True, capture_output=True, text=True, cwd=REPO)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result.update(load_before=load_before, load_after=os.getloadavg()[0], wall_seconds=time.perf_counter() - started)
    return result


def median_rate(runs: list[dict[str, Any]]) -> float:
    """Median examples/s over all timed epochs of ``runs`` (one result per round)."""
    return statistics.median(run["examples_per_epoch"] / seconds for run in runs for seconds in run["epoch_seconds"])


def table(results: dict[str, list[dict[str, Any]]], peak: float, peak_dtype: str, flops_per_example: float
          ) -> str:
    """Markdown table of medians: path, examples/s, s/epoch (9,729 clips), GFLOP/s, % of ``peak``, and the ratio
    to the Keras peer where it ran."""
    rates = {path: median_rate(runs) for path, runs in results.items()}
    lines = ["| path | examples/s | s/epoch | GFLOP/s | % of peak | vs keras |", "|---|---|---|---|---|---|"]
    for path, rate in rates.items():
        flops = rate * flops_per_example
        versus = f"{rate / rates['keras']:.2f}x" if "keras" in rates else "-"
        lines.append(f"| {path} | {rate:.0f} | {NUM_EXAMPLES / rate:.2f} | {flops / 1e9:.2f} |"
                     f" {100 * flops / peak:.1f} | {versus} |")
    lines.append(f"| matmul peak ({peak_dtype} jnp.dot) | | | {peak / 1e9:.1f} | 100 | |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds over all paths (medians)")
    parser.add_argument("--epochs", type=int, default=1, help="timed epochs per path and round, after a warm-up")
    parser.add_argument("--steps", type=int, default=50,
                        help=f"batches per epoch, extrapolated to {NUM_EXAMPLES} clips; 0: whole epochs")
    parser.add_argument("--batch_size", type=int, default=16, help="as configs/seed.py")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                        help="emojax's compute dtype (config.dtype) and the matmul peak's; Keras stays float32")
    parser.add_argument("--conv", choices=("auto", "matmul", "lax"), default="auto",
                        help="models.CONV_IMPLEMENTATION for the emojax paths")
    parser.add_argument("--paths", default=",".join(PATHS), help=f"comma-separated subset of {', '.join(PATHS)}")
    parser.add_argument("--peak_size", type=int, default=2048, help="matrix size of the matmul peak")
    parser.add_argument("--no_predict", action="store_true", help="skip the Trainer.predict timings")
    parser.add_argument("--cost", action="store_true",
                        help="time nothing: print the parameters and training FLOPs per example of --config "
                        "(and --baseline), config files with --config.FIELD=VALUE overrides")
    parser.add_argument("--worker", choices=(*PATHS, "peak", *PREDICT_VARIANTS), help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.cost:
        model_cost([sys.argv[0], *rest])
        return
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    steps = args.steps or NUM_EXAMPLES // args.batch_size
    if args.worker:
        if args.worker == "peak":
            result = worker_peak(args.peak_size, args.dtype)
        elif args.worker == "keras":
            result = worker_keras(steps, args.epochs, args.batch_size)
        elif args.worker in PREDICT_VARIANTS:
            result = worker_predict(*PREDICT_VARIANTS[args.worker], args.dtype, args.conv)
        else:
            result = worker_jax(args.worker, steps, args.epochs, args.batch_size, args.dtype, args.conv)
        print(json.dumps(result))
        return

    paths = [path for path in PATHS if path in args.paths.split(",")]
    unknown = set(args.paths.split(",")) - set(PATHS)
    if unknown or not paths:
        parser.error(f"--paths: unknown {sorted(unknown)}; choose from {', '.join(PATHS)}")
    results: dict[str, list[dict[str, Any]]] = {path: [] for path in paths}
    variants = () if args.no_predict else tuple(PREDICT_VARIANTS)
    predictions: dict[str, list[float]] = {variant: [] for variant in variants}
    peaks: list[float] = []
    for round_ in range(1, args.rounds + 1):
        peak = run_worker("peak", args, steps)
        peaks.append(peak["flops_per_second"])
        print(f"[round {round_}] matmul peak {peak['flops_per_second'] / 1e9:.1f} GFLOP/s"
              f" (load {peak['load_before']:.2f})", file=sys.stderr, flush=True)
        for path in paths if round_ % 2 else paths[::-1]:
            run = run_worker(path, args, steps)
            results[path].append(run)
            print(f"[round {round_}] {path}: {', '.join(f'{s:.2f}' for s in run['epoch_seconds'])} s per"
                  f" {run['examples_per_epoch']} examples (warm-up {run['warmup_seconds']:.2f} s; load"
                  f" {run['load_before']:.2f} -> {run['load_after']:.2f}; wall {run['wall_seconds']:.0f} s)",
                  file=sys.stderr, flush=True)
        for variant in variants:
            run = run_worker(variant, args, steps)
            predictions[variant].append(run["seconds"])
            print(f"[round {round_}] predict, {variant}: {run['seconds']:.2f} s per {run['windows']} windows"
                  f" (load {run['load_before']:.2f} -> {run['load_after']:.2f})", file=sys.stderr, flush=True)
    jax_path = next((path for path in paths if path != "keras"), None)
    flops_per_example = results[jax_path][0]["train_flops_per_example"] if jax_path else float("nan")
    loads = [run[key] for runs in results.values() for run in runs for key in ("load_before", "load_after")]
    whole = steps == NUM_EXAMPLES // args.batch_size
    print("; ".join(f"{path}: {runs[0]['devices']}" + (f", conv {runs[0]['conv']}, {args.dtype}" if path != "keras"
                                                      else "") for path, runs in results.items()))
    print(f"{args.rounds} round(s) x {args.epochs} timed epoch(s) of {steps} steps x batch {args.batch_size}"
          f" ({'whole epochs' if whole else f'extrapolated to {NUM_EXAMPLES} clips'}); training FLOPs per example"
          f" (products and convolutions of the emojax step): {flops_per_example / 1e6:.1f} M;"
          f" 1-minute load average {min(loads):.2f}-{max(loads):.2f}")
    print(table(results, statistics.median(peaks), args.dtype, flops_per_example))
    if "emojax on-device" in results and "keras" in results:
        rate, keras_rate = median_rate(results["emojax on-device"]), median_rate(results["keras"])
        met = NUM_EXAMPLES / rate <= TARGET_SECONDS and rate / keras_rate >= TARGET_VS_KERAS
        print(f"target (on-device epoch <= {TARGET_SECONDS:.0f} s and >= {TARGET_VS_KERAS}x keras):"
              f" {'met' if met else 'NOT met'}")
    if not predictions:
        return
    seconds = {variant: statistics.median(times) for variant, times in predictions.items()}
    baseline = seconds["one call per 256 windows"]
    print(f"\nEvaluation: Trainer.predict of the SeedCNN on {EVAL_WINDOWS} windows (medians of the rounds' fastest"
          f" of 5 calls)\n\n| Trainer.predict | windows/s | s | speed-up |\n|---|---|---|---|")
    for variant, value in seconds.items():
        print(f"| {variant} | {EVAL_WINDOWS / value:.0f} | {value:.2f} | {baseline / value:.2f}x |")

if __name__ == "__main__":
    main()
