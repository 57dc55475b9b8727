"""The model shipped inside the package: exporting a trained run into it, and loading it back.

A shipped model is two files in ``emojax/weights/``: ``<name>.msgpack``, the model's variables (``params``,
``batch_stats``) and the normalisation statistics of each input, serialised with ``flax.serialization`` (msgpack;
the same arrays always give the same bytes, so the file's SHA-256 identifies the weights), and ``<name>.json``: the
config it was trained with, the label names in the order of the model's outputs, where it came from (the training
command and checkpoint step) and that SHA-256, checked on every load. Only what prediction needs is kept: no optimizer
state, nothing of the corpora.

    python -m emojax.pretrained export --workdir runs/pretrained     # writes emojax/weights/<name>.*
    Predictor.pretrained()                                           # emojax.inference
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any

import flax.serialization
import jax
import ml_collections
import numpy as np

from emojax import checkpoints, input_pipeline
from emojax.labels import EMOTIONS, class_names
from emojax.state import model_variables

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
NAME = "emojax-ser"
"""The shipped model's file name (without extension) in ``WEIGHTS_DIR``."""


class DamagedWeightsError(ValueError):
    """The shipped model's files do not match (a damaged or replaced file, or another version's labels)."""


def sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, hex."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def export(workdir: str | Path, out_dir: str | Path = WEIGHTS_DIR, name: str = NAME, command: str = "") -> Path:
    """Writes the best checkpoint of ``workdir`` (the last one for a run without validation clips) as a shipped
    model: ``out_dir/<name>.msgpack`` and ``out_dir/<name>.json`` (``command``: how the run was trained, recorded).
    Returns the msgpack file's path."""
    config, state, normalization, step = checkpoints.restore(workdir, "best")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    arrays = jax.tree.map(np.asarray, {"variables": jax.device_get(model_variables(state)),
                                       "normalization": normalization.to_dict()})
    weights = out_dir / f"{name}.msgpack"
    weights.write_bytes(flax.serialization.msgpack_serialize(arrays))
    config = config.copy_and_resolve_references()
    config.data_dir = None  # where the corpora were on the training machine: not the user's business
    meta = {"labels": list(class_names(config)), "config": config.to_dict(), "checkpoint_step": step,
            "training_command": command, "sha256": sha256(weights)}
    (out_dir / f"{name}.json").write_text(json.dumps(meta, indent=1) + "\n")
    return weights


def load(directory: str | Path = WEIGHTS_DIR, name: str = NAME
         ) -> tuple[ml_collections.ConfigDict, dict[str, Any], input_pipeline.Normalization]:
    """The shipped model ``name`` in ``directory``: (config, variables {"params", "batch_stats"}, normalization).

    Raises ``FileNotFoundError`` when its files are missing and ``DamagedWeightsError`` when the weights' SHA-256 is
    not the one recorded with them (a damaged or replaced file), or their labels are not their config's (for the shipped
    model: this version's ``EMOTIONS``).
    """
    directory = Path(directory)
    weights, meta_path = directory / f"{name}.msgpack", directory / f"{name}.json"
    for path in (weights, meta_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: the shipped model is part of the emojax package; reinstall "
                                    "emojax (pip install -e .), or give a trained run with --workdir")
    meta = json.loads(meta_path.read_text())
    digest = sha256(weights)
    if digest != meta["sha256"]:
        raise DamagedWeightsError(f"{weights}: SHA-256 {digest} is not the {meta['sha256']} recorded in "
                                  f"{meta_path}; the file is damaged or was replaced: reinstall emojax")
    config = checkpoints.upgrade_config(meta["config"])
    expected = list(EMOTIONS) if name == NAME else list(config["labels"])  # the shipped model's are the 8 emotions
    if list(meta["labels"]) != expected:
        raise DamagedWeightsError(f"{meta_path} labels its outputs {meta['labels']}, not {expected}")
    arrays = flax.serialization.msgpack_restore(weights.read_bytes())
    return (ml_collections.ConfigDict(config), arrays["variables"],
            input_pipeline.Normalization.from_dict(arrays["normalization"]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Export a trained run as the model shipped in the emojax package.")
    sub = parser.add_subparsers(dest="command", required=True)
    export_parser = sub.add_parser("export", help="write WORKDIR's best (or last) checkpoint to emojax/weights/")
    export_parser.add_argument("--workdir", required=True, help="a train.py workdir")
    export_parser.add_argument("--out", default=str(WEIGHTS_DIR), help="where to write (default: emojax/weights/)")
    export_parser.add_argument("--training_command", default="", help="how the run was trained (recorded)")
    args = parser.parse_args(argv)
    weights = export(args.workdir, args.out, command=args.training_command)
    print(f"wrote {weights} (sha256 {sha256(weights)}) and {weights.with_suffix('.json')}")


if __name__ == "__main__":
    main()
