"""The builder logic the emojax TFDS builders share, and ``build``.

Each folder ``datasets/<corpus>/`` holds a ``Builder`` with only what is particular to its corpus: how a
file name is parsed (``CorpusBuilder.parse``), which speakers go to which split (``SPLIT_SPEAKERS``), the download
instructions, README and citation (a user's own corpus, ``datasets/custom``, is planned from its folders or CSV
manifest by ``emojax.custom``). Everything else lives here, once: planning a build from the recordings under the
manual dir (found and decoded by ``emojax.recordings``, in any layout and inside ``.zip`` archives), duplicate
detection, skipping bad files with a warning that names them, the example features (the same in all builders), MFCCs
in jitted, length-bucketed batches (``emojax.features.clip_mfccs``), and the build summary (``emojax.build_report``,
printed and kept in the dataset's ``metadata.json``); each example also keeps its pitch rows
(``emojax.features.clip_pitch``: log f0 and periodicity per MFCC frame). Given Beam pipeline options (``tfds build
--beam_pipeline_options=...``), a real corpus's splits are built on Apache Beam (``emojax.beam``): the workers decode
batches of files and compute their MFCCs, and report what they built and skipped; the data and the summary are the
same as without Beam.

The builders are registered as ``emojax_<corpus>`` (``emojax.prepared.dataset_name``), so ``tfds build
datasets/crema_d`` writes ``<data_dir>/emojax_crema_d/<version>/``, which ``emojax.prepared`` reads back (the names
both sides agree on, such as ``CORPORA`` and ``SPLITS``, are defined there). New builds are written as ArrayRecord
unless ``--file_format`` says otherwise. Building needs the ``build`` extra (TensorFlow, Apache Beam, mlcroissant:
``pip install "emojax[build]"``); reading does not.
"""

from __future__ import annotations

import abc
import concurrent.futures
import dataclasses
import importlib.util
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

import numpy as np
import tensorflow_datasets as tfds
from absl import logging

from emojax import features
from emojax.build_report import BuildReport
from emojax.labels import EMOTIONS
from emojax.prepared import SPLITS, STRING_FEATURES, VERSION, corpus_name, dataset_name, default_data_dir
from emojax.recordings import CORRUPT_ZIP, AudioFile, find_audio_files, read_recording, skip_reason

DATASETS_DIR = Path(__file__).resolve().parents[1] / "datasets"
"""Where the builder folders live (the source tree; ``pip install -e .`` keeps it)."""
BUILD_EXTRA: tuple[str, ...] = ("tensorflow", "apache_beam", "mlcroissant")
"""What the ``build`` extra installs (``pip install "emojax[build]"``); ``build`` does not start without it."""
_CHUNK = 1024  # clips decoded and sent to clip_mfccs at a time (fewer, fuller length buckets than 256)


def example_features(label_names: Sequence[str] = EMOTIONS) -> tfds.features.FeaturesDict:
    """The features of every emojax example (all builders); ``label`` has the classes ``label_names``."""
    raw = tfds.features.Encoding.BYTES  # raw array bytes: ~50x faster to write and read than number lists
    text = {key: tfds.features.Text() for key in STRING_FEATURES}
    return tfds.features.FeaturesDict({
        "audio": tfds.features.Tensor(shape=(None,), dtype=np.int16, encoding=raw,
                                      doc=f"mono PCM at {features.SAMPLE_RATE} Hz, the whole recording"),
        "mfcc": tfds.features.Tensor(shape=(features.FRONT_END["n_mfcc"], None), dtype=np.float32, encoding=raw,
                                     doc="emojax.features.clip_mfccs of the audio (FRONT_END), (40, frames)"),
        "pitch": tfds.features.Tensor(shape=(features.PITCH_ROWS, None), dtype=np.float32, encoding=raw,
                                      doc="emojax.features.clip_pitch of the audio: log2 f0 and periodicity, "
                                          "(2, frames) on the MFCC frames"),
        "label": tfds.features.ClassLabel(names=label_names),
        **text,
    })


@dataclasses.dataclass(frozen=True)
class Recording:
    """What a file name (and the corpus's tables) say about one recording.

    Attributes:
      key: the recording's id, unique in its corpus and the same in every copy/layout, e.g. ``DC_a01``.
      speaker: corpus-local speaker id, e.g. ``"07"`` (stored as ``"<corpus>/07"``); ``""`` where unknown (stored so).
      gender: ``"male"``, ``"female"`` or ``"unknown"``.
      emotion: its class, one of the builder's ``label_names`` (``EMOTIONS`` but for a user's corpus).
      original_label: the corpus's own emotion code, e.g. ``"ps"``.
      intensity: emotional intensity as the corpus names it, ``""`` where none.
      text: sentence or word id, ``""`` where none.
      source: where the metadata was read when not from the file's name, e.g. ``labels.csv row 7`` (named when the
        file is skipped).
    """

    key: str
    speaker: str
    gender: str
    emotion: str
    original_label: str
    intensity: str = ""
    text: str = ""
    source: str = ""


# ----------------------------------------------------------------------------------------------------------------
# Builders
# ----------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Clip:
    """One example before its MFCCs: ``audio`` (samples,) int16 at 16 kHz plus its string features."""

    key: str
    audio: np.ndarray
    emotion: str
    strings: dict[str, str]  # the STRING_FEATURES


def _clip(corpus: str, file: AudioFile, recording: Recording, audio: np.ndarray) -> Clip:
    """The clip of ``recording`` (read from ``file``), ``audio`` its ``(samples,)`` int16 samples."""
    return Clip(f"{corpus}/{recording.key}", audio, recording.emotion, {
        "speaker": f"{corpus}/{recording.speaker}" if recording.speaker else "",
        "gender": recording.gender,
        "corpus": corpus,
        "original_label": recording.original_label,
        "intensity": recording.intensity,
        "text": recording.text,
        "file": file.name,
    })


def _with_mfccs(clips: Sequence[Clip]) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(key, example)`` of each clip, in order; the MFCCs and pitch rows of all ``clips`` computed together
    (``clip_mfccs``, ``clip_pitch``)."""
    audio = [c.audio for c in clips]
    for clip, mfcc, pitch in zip(clips, features.clip_mfccs(audio), features.clip_pitch(audio)):
        yield clip.key, {"audio": clip.audio, "mfcc": mfcc, "pitch": pitch, "label": clip.emotion, **clip.strings}


class EmojaxBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base of every emojax builder: features, file format, MFCCs in batches, the build summary.

    A subclass sets ``CORPUS`` (its folder name); it is registered as ``emojax_<CORPUS>``.
    """

    VERSION = VERSION
    RELEASE_NOTES: ClassVar[dict[str, str]] = {"1.0.0": "First emojax release.",
                                               "1.1.0": "Adds `pitch` (emojax.features.clip_pitch) to every example.",
                                               "1.2.0": "Speaker-disjoint splits in every corpus: TESS (two speakers) "
                                                        "is training data only; the other corpora are unchanged.",
                                               "1.3.0": "MFCCs with the mel power floored at 1e-20 "
                                                        "(emojax.features.FRONT_END_AMIN), not 1e-10: a gain moves c0 "
                                                        "alone; of the four corpora only CREMA-D's all-silent "
                                                        "1076_MTI_SAD_XX changes."}
    CORPUS: ClassVar[str]
    HOMEPAGE: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        if "CORPUS" in cls.__dict__:
            cls.name = dataset_name(cls.CORPUS)
        super().__init_subclass__(**kwargs)

    def __init__(self, *, file_format: str | tfds.core.FileFormat | None = None, **kwargs: Any) -> None:
        super().__init__(file_format=file_format, **kwargs)
        if file_format is None and not (self.data_path / "dataset_info.json").exists():  # new: ArrayRecord
            self.info.set_file_format(tfds.core.FileFormat.ARRAY_RECORD, override=True)
        self.report = BuildReport(labels=self.label_names)
        self._on_beam = False  # whether the build was asked to run on Apache Beam (set by _download_and_prepare)
        self._beam_reports: dict[str, tfds.core.Path] = {}  # on Beam: the workers' report file of each split

    @property
    def corpus(self) -> str:
        """The ``corpus`` its examples store (and their keys' and speakers' prefix): ``CORPUS``."""
        return self.CORPUS

    @property
    def label_names(self) -> tuple[str, ...]:
        """The classes of ``label``, in label order: ``EMOTIONS``."""
        return EMOTIONS

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=example_features(self.label_names),
            supervised_keys=("mfcc", "label"),
            homepage=self.HOMEPAGE,
            metadata=tfds.core.MetadataDict(),
        )

    def _generate_examples(self, split: str, clips: Iterable[Clip]) -> Iterator[tuple[str, dict[str, Any]]]:
        """Adds MFCCs (``clip_mfccs``, in chunks of ``_CHUNK`` clips) and counts what is built."""
        pending: list[Clip] = []

        def flush() -> Iterator[tuple[str, dict[str, Any]]]:
            for key, example in _with_mfccs(pending):
                self.report.counts[split][example["label"]] += 1
                yield key, example
            pending.clear()

        for clip in clips:
            pending.append(clip)
            if len(pending) == _CHUNK:
                yield from flush()
        yield from flush()

    def _download_and_prepare(self, dl_manager: tfds.download.DownloadManager, download_config: Any) -> None:
        self.report = BuildReport(labels=self.label_names)
        self._on_beam = download_config.beam_runner is not None or download_config.beam_options is not None
        self._beam_reports = {}
        super()._download_and_prepare(dl_manager=dl_manager, download_config=download_config)
        if self._beam_reports:  # the runner, not this code, moves the examples from the workers to the files
            written = {split: info.num_examples for split, info in self.info.splits.items()}
            built = {split: sum(c.values()) for split, c in self.report.counts.items() if c}
            if written != built:
                raise RuntimeError(
                    f"{self.name}: the Beam workers built {built} examples per split but the runner wrote {written}: "
                    "it lost examples (the direct runner has, with direct_num_workers > 1). Nothing was kept; build "
                    "again without --beam_pipeline_options, with direct_num_workers=1, or on another runner")
        self.info.metadata["build"] = self.report.as_metadata()
        on = " (on Apache Beam)" if self._beam_reports else ""
        warnings = "".join(f"\nwarning: {message}" for message in self.report.warnings)
        print(f"\n{self.name}{on}: {self.report.summary()}\n{self.report.table()}{warnings}", flush=True)


Plan = dict[str, list[tuple[AudioFile, Recording]]]
"""A build's plan: each split's files and what they are, in build order."""


class ManualBuilder(EmojaxBuilder, skip_registration=True):
    """Base of the builders of recordings in the manual dir: plans the build (``_plan``), then decodes the files and
    computes their MFCCs, plainly or on Apache Beam."""

    MANUAL_DOWNLOAD_INSTRUCTIONS: ClassVar[str]

    @abc.abstractmethod
    def _plan(self, root: Path) -> Plan:
        """The files under ``root`` to build, by split; those left out recorded in ``self.report``."""

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Iterator]:
        root = Path(dl_manager.manual_dir)
        plan = self._plan(root)
        for split in SPLITS:
            if not plan[split]:
                logging.warning("%s: no recordings for the %s split in %s; the split is left out",
                                self.name, split, root)
        planned = {split: items for split, items in plan.items() if items}
        if self._on_beam:
            from emojax.beam import _beam_split  # emojax.beam imports this module: imported here, for Beam builds

            self._beam_reports = {split: self.data_path / f"{split}-build-report.json" for split in planned}
            return {split: _beam_split(items, self.corpus, os.fspath(self._beam_reports[split]))
                    for split, items in planned.items()}
        return {split: self._generate_examples(split, self._clips(split, items)) for split, items in planned.items()}

    def _process_pipeline_result(self, pipeline_result: Any) -> None:
        """After a Beam build: adds the workers' skips (they warned) and counts to the report, in plain-build order."""
        del pipeline_result  # the records are in the report files
        for split, path in self._beam_reports.items():
            records = sorted(json.loads(path.read_text()), key=lambda record: record[0])
            path.unlink()
            for _, skipped, counts in records:
                self.report.skipped += [tuple(skip) for skip in skipped]
                self.report.counts[split].update(counts)

    def _clips(self, split: str, items: Sequence[tuple[AudioFile, Recording]]) -> Iterator[Clip]:
        """Decodes ``items`` (threads, one chunk ahead) and yields their clips; bad files are skipped."""
        workers = max(1, min(4, os.cpu_count() or 1))
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            def submit(start: int) -> list[concurrent.futures.Future]:
                return [pool.submit(read_recording, file) for file, _ in items[start : start + _CHUNK]]

            bar = tfds.core.utils.tqdm(total=len(items), desc=f"{self.name}: decoding", unit=" files", leave=False)
            decoded = 0
            ahead = submit(0)
            for start in range(0, len(items), _CHUNK):
                done, ahead = ahead, submit(start + _CHUNK)
                for (file, recording), future in zip(items[start : start + _CHUNK], done):
                    bar.update(1)
                    try:
                        audio = future.result()
                    except features.AudioFileError as e:
                        where = f"{recording.source}: " if recording.source else ""
                        self.report.skip(file.name, skip_reason(e), f"{where}{e}")
                        continue
                    decoded += 1
                    yield _clip(self.corpus, file, recording, audio)
            bar.close()
        if not decoded:
            raise ValueError(f"none of the {len(items)} recording(s) of the {split} split could be decoded (see the "
                             f"warnings above, e.g. {self.report.skipped[-1][0]}); replace the files and build again")


class CorpusBuilder(ManualBuilder, skip_registration=True):
    """Base of the four real corpora: recordings from the manual dir in any of the usual layouts, named as the
    corpus names them."""

    @classmethod
    @abc.abstractmethod
    def parse(cls, name: PurePosixPath) -> Recording:
        """Reads a recording's metadata from its path relative to the manual dir.

        Raises:
          ValueError: the name is not one of this corpus's recordings (the message says why).
        """

    SPLIT_SPEAKERS: ClassVar[dict[str, tuple[str, ...]]] = {}
    """Corpus-local ids of the validation and test speakers; every other speaker trains. No speaker is in two
    splits, so the speaker protocol tests on unseen voices only."""

    @classmethod
    def split_of(cls, recording: Recording) -> str:
        """The split (one of ``SPLITS``) ``recording`` belongs to: its speaker's (``SPLIT_SPEAKERS``)."""
        return next((split for split, speakers in cls.SPLIT_SPEAKERS.items() if recording.speaker in speakers),
                    "train")

    def _plan(self, root: Path) -> Plan:
        return self.plan(root, self.report)

    @classmethod
    def plan(cls, root: Path, report: BuildReport) -> Plan:
        """Discovers, parses and de-duplicates the recordings under ``root``; assigns each to its split.

        Misnamed files and second copies are recorded in ``report`` (with a warning each).

        Raises:
          ValueError: ``root`` holds no recording of this corpus (says where to download it and which
            layouts are accepted).
        """
        files, report.ignored, corrupt = find_audio_files(root)
        report.found = len(files) + len(corrupt)
        parsed: list[tuple[AudioFile, Recording]] = []
        misnamed: list[tuple[str, str]] = []
        for file in files:
            try:
                parsed.append((file, cls.parse(PurePosixPath(file.name))))
            except ValueError as e:
                misnamed.append((file.name, str(e)))
        if not parsed:
            broken = f", {len(corrupt)} corrupt .zip archive(s) such as {corrupt[0][0]}" if corrupt else ""
            raise ValueError(
                f"no {cls.CORPUS} recordings in {root} ({len(files)} audio file(s), {len(report.ignored)} other "
                f"file(s){broken} found, none named like a {cls.CORPUS} recording). Point --manual_dir at the "
                f"corpus:\n{cls.MANUAL_DOWNLOAD_INSTRUCTIONS}")
        for name, detail in corrupt:
            report.skip(name, CORRUPT_ZIP, detail)
        for name, reason in misnamed:
            report.skip(name, "misnamed", reason)
        plan: Plan = {split: [] for split in SPLITS}
        first: dict[str, str] = {}
        for file, recording in parsed:
            if recording.key in first:
                report.skip(file.name, "duplicate", f"a second copy of {first[recording.key]}, built once")
                continue
            first[recording.key] = file.name
            plan[cls.split_of(recording)].append((file, recording))
        return plan


# ----------------------------------------------------------------------------------------------------------------
# Building
# ----------------------------------------------------------------------------------------------------------------


class MissingBuildExtra(ImportError):
    """A build was asked for where the ``build`` extra is not installed (the message says how to install it)."""


def require_build_extra() -> None:
    """Raises ``MissingBuildExtra`` (one line naming the fix) unless every module of ``BUILD_EXTRA`` is installed."""
    missing = [module for module in BUILD_EXTRA if importlib.util.find_spec(module) is None]
    if missing:
        raise MissingBuildExtra(f"building emojax datasets needs the build extra ({', '.join(missing)} missing): "
                                'pip install "emojax[build]"')


def builder_class(name: str) -> type[EmojaxBuilder]:
    """The ``Builder`` of ``datasets/<name>/``, imported the way ``tfds build datasets/<name>`` does."""
    dataset_name(name)  # validates
    module = DATASETS_DIR / name / f"{name}_dataset_builder.py"
    if not module.is_file():
        raise FileNotFoundError(f"{module} not found: the builders ship with the emojax source tree; "
                                "install emojax from a checkout (pip install -e .)")
    with tfds.core.utils.add_sys_path(DATASETS_DIR):
        return tfds.core.community.builder_cls_from_module(f"{name}.{name}_dataset_builder")


def build(name: str, *, manual_dir: str | None = None, data_dir: str | None = None,
          file_format: str | None = None, beam_pipeline_options: str | None = None,
          builder_config: dict[str, Any] | None = None) -> None:
    """Builds dataset ``name`` (same result as ``tfds build datasets/<name> --manual_dir ...``; for a user's corpus
    ``"custom/<c>"``, as ``tfds build datasets/custom --config '{"name": "<c>", ...}' --manual_dir ...``).

    Args:
      name: one of ``emojax.prepared.BUILDERS``, or ``"custom/<c>"``: a user's corpus named ``<c>``.
      manual_dir: the downloaded corpus (not needed for ``synthetic_prosody``).
      data_dir: where to write; default ``default_data_dir()``.
      file_format: ``"array_record"`` (default for new builds) or ``"tfrecord"``.
      beam_pipeline_options: build on Apache Beam with these comma-separated pipeline options, as
        ``tfds build --beam_pipeline_options`` takes them, e.g. ``"runner=DataflowRunner,project=P,region=R,
        temp_location=gs://B/tmp"``: the real corpora's files are then decoded and their MFCCs computed on the
        workers (which need emojax installed). The same data either way; on one machine the plain build is
        faster (BENCHMARKS.md).
      builder_config: for ``"custom/<c>"``, the fields of its config but the name (``emojax.custom.CustomConfig``),
        e.g. ``{"manifest": "labels.csv"}``.

    Raises:
      MissingBuildExtra: the ``build`` extra is not installed.
      ValueError: a bad name or ``builder_config`` (the message says what to change).
    """
    require_build_extra()
    folder, _, corpus = name.partition("/")
    if builder_config is not None and not corpus:
        raise ValueError(f"builder_config is for a corpus of yours, 'custom/<name>'; {name!r} takes none")
    cls = builder_class(folder)
    config = cls.builder_config_cls(**{**(builder_config or {}), "name": corpus_name(name)}) if corpus else None
    builder = cls(data_dir=data_dir or default_data_dir(), file_format=file_format, config=config)
    config = tfds.download.DownloadConfig(manual_dir=manual_dir)
    if beam_pipeline_options:
        import apache_beam as beam

        config.beam_options = beam.options.pipeline_options.PipelineOptions(
            flags=[f"--{option}" for option in beam_pipeline_options.split(",")])
    builder.download_and_prepare(download_config=config)
