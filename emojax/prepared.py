"""Prepared emojax datasets: what a build is called, where it lives, and reading it back without TensorFlow.

The data path: the builders (``emojax.corpora`` and ``datasets/<name>/``) write each corpus once as a TFDS
dataset, this module reads it back, and ``emojax.input_pipeline`` turns it into model inputs. The names both sides
agree on are defined here: the corpora (``CORPORA``, ``BUILDERS``), the ``VERSION``, the ``SPLITS``, the string
features of an example, and where a build lives, ``<data_dir>/emojax_<name>/<VERSION>/`` (registered as
``emojax_<name>`` because tensorflow-datasets ships its own, different ``crema_d`` and ``savee``).

A user's own corpus, built by ``datasets/custom`` (``emojax.custom``) under a name of their choosing, is named
``"custom/<name>"`` wherever a dataset name is accepted here; it lives in ``<data_dir>/emojax_custom/<name>/<VERSION>/``
(``<name>`` is the builder config), its stored ``corpus`` is ``<name>`` (``corpus_name``) and its classes are its
own (``label_names``).

Reading needs tensorflow-datasets, array-record and protobuf, not TensorFlow, Apache Beam or mlcroissant (the
``build`` extra): ``load_split`` opens a build from its ``dataset_info.json`` (no builder class is imported),
reads ArrayRecord files (the default format) with array-record, and deserialises each stored ``tf.train.Example``
with tfds's NumPy example parser, which uses the protobuf message tfds ships (``tensorflow_datasets.proto``).
Builds written as TFRecord (``--file_format tfrecord``) are read with ``tf.data``, so they need TensorFlow.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

CORPORA: tuple[str, ...] = ("ravdess", "savee", "crema_d", "tess")
"""The four real corpora, each a builder in ``datasets/<name>/``."""
BUILDERS: tuple[str, ...] = CORPORA + ("synthetic_prosody",)
"""Every emojax dataset builder: the real corpora and the generated one."""
CUSTOM = "custom"
"""The builder of a user's own labelled corpus (``datasets/custom``); each build is named ``"custom/<name>"``."""
_CUSTOM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")  # a tfds config name that is also a plain folder name
SPLITS: tuple[str, ...] = ("train", "validation", "test")
VERSION = tfds.core.Version("1.3.0")
"""The builders' version: ``is_prepared`` and ``load_split`` read builds of this version only."""
STRING_FEATURES: tuple[str, ...] = ("speaker", "gender", "corpus", "original_label", "intensity", "text", "file")
DEFAULT_KEYS: tuple[str, ...] = ("mfcc", "pitch", "label") + STRING_FEATURES
"""What ``load_split`` returns unless asked otherwise: every feature except the raw audio."""
_READ_CHUNK = 1024  # raw records held in memory at a time while reading


def check_custom_name(name: str) -> str:
    """``name`` if it can name a user's corpus (``"custom/<name>"``); ``ValueError`` saying why not and what to do."""
    if not _CUSTOM_NAME.fullmatch(name):
        raise ValueError(f"{name!r} cannot name a corpus: use letters, digits, '_', '.', '+' and '-', starting with a "
                         'letter or digit (a tfds config name), e.g. "my_corpus"')
    if name.lower() in BUILDERS + (CUSTOM,):
        raise ValueError(f"{name!r} is the name of a built-in emojax dataset; name your corpus differently, e.g. "
                         f'"my_{name.lower()}"')
    return name


def dataset_name(name: str) -> str:
    """Registered TFDS name (and data-dir folder) of emojax dataset ``name``: ``emojax_ravdess`` for a built-in one,
    ``emojax_custom/mycorpus`` (builder/config) for a user's corpus ``"custom/mycorpus"``, ``emojax_custom`` for the
    builder of those, ``"custom"``."""
    builder, _, corpus = name.partition("/")
    if builder == CUSTOM and corpus:
        return f"emojax_{CUSTOM}/{check_custom_name(corpus)}"
    if name not in BUILDERS + (CUSTOM,):
        raise ValueError(f"unknown emojax dataset {name!r}; expected one of {', '.join(BUILDERS)}, or "
                         f"'{CUSTOM}/<name>' for a corpus of yours built with datasets/{CUSTOM}")
    return f"emojax_{name}"


def corpus_name(name: str) -> str:
    """The ``corpus`` its examples store: ``"mycorpus"`` for ``"custom/mycorpus"``, a built-in ``name`` itself."""
    dataset_name(name)  # validates
    return name.removeprefix(f"{CUSTOM}/")


def build_command(name: str, data_dir: str | None = None) -> str:
    """The command that builds dataset ``name`` into ``data_dir`` (``DIR`` stands for the user's recordings)."""
    target = f" --data_dir {data_dir}" if data_dir else ""
    if name == "synthetic_prosody":
        return f"tfds build datasets/{name}{target}"
    if name.startswith(f"{CUSTOM}/"):
        return (f"tfds build datasets/{CUSTOM} --manual_dir DIR --config '{{\"name\": \"{corpus_name(name)}\"}}'"
                f"{target}")
    return f"tfds build datasets/{name} --manual_dir DIR{target}"


def default_data_dir() -> str:
    """``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``, as tfds itself chooses."""
    return os.path.expanduser(os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets"))


def dataset_dir(name: str, data_dir: str | None = None) -> Path:
    """Where the ``VERSION`` build of ``name`` lives: ``<data_dir>/emojax_<name>/<VERSION>`` (a user's corpus
    ``"custom/mycorpus"``: ``<data_dir>/emojax_custom/mycorpus/<VERSION>``)."""
    if name == CUSTOM:
        raise ValueError(f"name the corpus built with datasets/{CUSTOM}: '{CUSTOM}/<name>', e.g. '{CUSTOM}/mycorpus'")
    return Path(data_dir or default_data_dir()) / dataset_name(name) / str(VERSION)


def is_prepared(name: str, data_dir: str | None = None) -> bool:
    """Whether ``name`` (e.g. ``"ravdess"``) is built (at this ``VERSION``) in ``data_dir``."""
    return (dataset_dir(name, data_dir) / "dataset_info.json").is_file()


def _info(name: str, data_dir: str | None) -> tfds.core.DatasetInfo:
    """The stored info of the build of ``name`` (no builder class imported); ``FileNotFoundError`` with the command
    that builds it when there is none."""
    path = dataset_dir(name, data_dir)
    if not is_prepared(name, data_dir):
        root = data_dir or default_data_dir()
        custom = f", with the config fields your corpus needs (datasets/{CUSTOM}/README.md)" if "/" in name else ""
        config = ", builder_config={...}" if "/" in name else ""
        raise FileNotFoundError(
            f"{dataset_name(name)} is not built in {root}: run `{build_command(name, root)}`{custom} (or "
            f"emojax.corpora.build({name!r}, manual_dir=DIR, data_dir={root!r}{config}))")
    return tfds.builder_from_directory(os.fspath(path)).info


def label_names(name: str, data_dir: str | None = None) -> tuple[str, ...]:
    """The class names of the build of ``name``, in label order (its ``label`` ClassLabel): ``EMOTIONS`` for the
    built-in datasets, a user's corpus's own classes for ``"custom/<name>"``."""
    return tuple(_info(name, data_dir).features["label"].names)


def _records(info: tfds.core.DatasetInfo, split: str) -> Iterator[bytes]:
    """The serialized examples of ``split``, in stored order, whatever the file format."""
    file_format = info.file_format
    paths = [os.fspath(p) for p in info.splits[split].filepaths]
    if file_format == tfds.core.FileFormat.ARRAY_RECORD:
        from array_record.python import array_record_data_source

        source = array_record_data_source.ArrayRecordDataSource(paths)
        for start in range(0, len(source), _READ_CHUNK):  # bounded memory: a chunk of raw records at a time
            yield from source.__getitems__(range(start, min(start + _READ_CHUNK, len(source))))
    elif file_format == tfds.core.FileFormat.TFRECORD:
        try:
            import tensorflow as tf
        except ImportError:
            raise ImportError(f"{info.data_dir} is a TFRecord build, which is read with TensorFlow: "
                              'pip install "emojax[build]", or rebuild it as ArrayRecord (the default)') from None
        yield from tf.data.TFRecordDataset(paths).as_numpy_iterator()
    else:
        raise ValueError(f"{info.data_dir}: file format {file_format} is not supported; rebuild with "
                         "--file_format array_record")


def load_split(name: str, split: str, data_dir: str | None = None,
               keys: Sequence[str] = DEFAULT_KEYS) -> dict[str, np.ndarray | list]:
    """Reads a whole split into memory, in stored order (the same on every read of the same build).

    Args:
      name: one of ``BUILDERS``, e.g. ``"ravdess"``, or ``"custom/<name>"``.
      split: ``"train"``, ``"validation"`` or ``"test"``.
      data_dir: where it was built; default ``default_data_dir()``.
      keys: features to return (default all but ``"audio"``).

    Returns:
      ``{key: values}``: ``"mfcc"``, ``"pitch"`` and ``"audio"`` are lists of float32 ``(40, frames)`` /
      float32 ``(2, frames)`` / int16 ``(samples,)`` arrays, ``"label"`` an int64 array (indices into
      ``label_names(name, data_dir)``), strings a ``np.ndarray`` of ``str``; all empty for a split the build has no
      recording in.
    """
    info = _info(name, data_dir)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    spec = info.features
    unknown = set(keys) - set(spec.keys())
    if unknown:
        raise ValueError(f"unknown feature(s) {sorted(unknown)}; {info.data_dir} has {', '.join(spec.keys())}")
    decoders = {key: tfds.decode.SkipDecoding() for key in spec.keys() if key not in keys}
    columns: dict[str, list] = {key: [] for key in keys}
    # A split the builder assigned no recording to (TESS's validation and test) is not written: it reads as empty.
    for record in _records(info, split) if split in info.splits else ():
        example = spec.deserialize_example_np(record, decoders=decoders)
        for key in keys:
            columns[key].append(example[key])
    out: dict[str, np.ndarray | list] = {}
    for key, values in columns.items():
        if key == "label":
            out[key] = np.asarray(values, np.int64)
        elif key in ("mfcc", "pitch", "audio"):
            out[key] = values
        else:
            out[key] = np.asarray([v.decode() if isinstance(v, bytes) else str(v) for v in values], dtype=str)
    return out
