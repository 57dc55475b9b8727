"""A user's own labelled corpus as an emojax dataset (``datasets/custom``): its config, its labels and its build plan.

The recordings lie under the manual dir in one of two layouts: a folder per label (``<root>/<label>/**/*.wav``) or
a CSV manifest (columns ``path`` and ``label``, optionally ``speaker``, ``split``, ``gender`` and ``text``).
``CustomConfig`` names the corpus (several are built side by side, ``<data_dir>/emojax_custom/<name>/``) and says
which layout and which classes; ``Labels`` turns the raw labels into those classes (the 8 ``EMOTIONS`` by default,
matched through ``emojax.labels.canonical``); ``plan`` lists what to build, by split, and records in the
``BuildReport`` every file left out and why. Decoding, MFCCs and the summary are every emojax builder's
(``emojax.corpora.ManualBuilder``); the data are then read as ``emojax.prepared.load_split("custom/<name>", ...)``.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import tensorflow_datasets as tfds

from emojax.build_report import BuildReport
from emojax.corpora import Plan, Recording
from emojax.labels import EMOTIONS, canonical, fold
from emojax.prepared import CUSTOM, SPLITS, check_custom_name
from emojax.recordings import CORRUPT_ZIP, AudioFile, find_audio_files

README = f"datasets/{CUSTOM}/README.md"
NAME_YOUR_CORPUS = (
    f"emojax_{CUSTOM} builds a corpus of yours and needs its name: `tfds build datasets/{CUSTOM} --manual_dir DIR "
    f"--config '{{\"name\": \"mycorpus\"}}'` for a folder per label, --config '{{\"name\": \"mycorpus\", \"manifest\": "
    f"\"labels.csv\"}}' for a CSV manifest (in Python: emojax.corpora.build(\"{CUSTOM}/mycorpus\", manual_dir=DIR, "
    f"builder_config={{...}})); the config's fields are in {README}")
# Skip reasons of this builder (besides recordings' "undecodable", "empty" and "corrupt zip archive").
UNKNOWN_LABEL = "unknown label"
NO_LABEL_FOLDER = "no label folder"
NO_SPEAKER = "no speaker"
MISSING = "missing"
DUPLICATE = "duplicate"
UNKNOWN_SPLIT = "unknown split"
NOT_IN_MANIFEST = "not in the manifest"

MANIFEST_COLUMNS: tuple[str, ...] = ("path", "label", "speaker", "split", "gender", "text")
"""The columns a manifest's header may name (in any order and case; others are ignored); path and label are needed."""
SPLIT_SPELLINGS: dict[str, str] = {"": "train", "train": "train", "validation": "validation", "val": "validation",
                                   "valid": "validation", "dev": "validation", "test": "test"}
"""A manifest's ``split`` values (case-insensitive) → split; an empty value trains."""
GENDER_SPELLINGS: dict[str, str] = {"": "unknown", "unknown": "unknown", "male": "male", "m": "male",
                                    "female": "female", "f": "female"}
"""A manifest's ``gender`` values (case-insensitive) → stored gender; any other value is stored as unknown."""

Entry = tuple[str, AudioFile, Recording]  # (split, file, recording)
Skip = tuple[str, str, str]  # (file, reason, detail), as BuildReport.skipped


class Labels:
    """How raw labels become classes: through ``mapping`` first, then matched to a class by name (case and
    separators ignored, ``emojax.labels.fold``) or by the emotion both spell (``emojax.labels.canonical``:
    ``"angry"`` → the class ``"anger"``).

    Attributes:
      names: the classes, in label order (``EMOTIONS`` when none are given).
    """

    def __init__(self, names: Sequence[str] = (), mapping: Mapping[str, str] | None = None) -> None:
        self.names = tuple(names) or EMOTIONS
        folded = collections.Counter(fold(name) for name in self.names)
        clashes = [name for name in self.names if folded[fold(name)] > 1 or not fold(name)]
        if clashes:
            raise ValueError(f"labels {list(self.names)}: {clashes} are empty or the same class written twice (case "
                             "and separators are ignored); give each class once")
        self._by_name = {fold(name): name for name in self.names}
        spelled = collections.Counter(canonical(name) for name in self.names)
        self._by_emotion = {canonical(name): name for name in self.names if canonical(name) and
                            spelled[canonical(name)] == 1}
        self._mapping: dict[str, str] = {}
        for raw, target in (mapping or {}).items():
            if fold(raw) in self._mapping:
                raise ValueError(f"mapping names {raw!r} twice (case and separators are ignored)")
            if self._class(target) is None:
                raise ValueError(f"mapping {raw!r} → {target!r}: {target!r} is not one of the classes "
                                 f"({', '.join(self.names)}); map it to one of them")
            self._mapping[fold(raw)] = target

    def _class(self, label: str) -> str | None:
        return self._by_name.get(fold(label)) or self._by_emotion.get(canonical(label))

    def __call__(self, raw: str) -> str | None:
        """The class of raw label ``raw``, ``None`` for none."""
        return self._class(self._mapping.get(fold(raw), raw))

    def unknown(self, raw: str) -> str:
        """Why raw label ``raw`` has no class, and what to do."""
        return (f"label {raw!r} is none of the classes ({', '.join(self.names)}) nor a spelling of one: map it in the "
                f'config\'s "mapping", e.g. {{"{raw}": "{self.names[0]}"}}, or list the classes you want in "labels" '
                f'({README}, "Labels")')


@dataclasses.dataclass(eq=False)
class CustomConfig(tfds.core.BuilderConfig):
    """A user's corpus: its name, layout and classes (``datasets/custom/README.md``).

    Attributes:
      name: the corpus's name: ``"custom/<name>"`` in emojax, its data-dir folder, its examples' ``corpus`` and
        their speakers' prefix. Letters, digits, ``_.+-``; not a built-in dataset's.
      manifest: the CSV manifest, relative to the manual dir or absolute; ``""``: a folder per label.
      labels: the classes, in label order; ``()``: the 8 ``EMOTIONS``.
      mapping: raw label → class (or a spelling of one), applied before the raw label is matched to the classes.
      speaker_pattern: folder layout only: a regular expression searched in each file's path below its label
        folder, its first group the speaker; ``""``: speakers unknown.
    """

    manifest: str = ""
    labels: tuple[str, ...] = ()
    mapping: dict[str, str] = dataclasses.field(default_factory=dict)
    speaker_pattern: str = ""

    def __post_init__(self) -> None:
        check_custom_name(self.name)
        for field, value in (("manifest", self.manifest), ("speaker_pattern", self.speaker_pattern)):
            if not isinstance(value, str):
                raise TypeError(f"config field {field!r} is a string, not {value!r}")
        if isinstance(self.labels, str) or not all(isinstance(label, str) for label in self.labels):
            raise TypeError(f'config field "labels" is a list of class names, e.g. ["anger", "boredom"], not '
                            f"{self.labels!r}")
        if not isinstance(self.mapping, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in self.mapping.items()):
            raise TypeError(f'config field "mapping" maps raw labels to classes, e.g. {{"W": "anger"}}, not '
                            f"{self.mapping!r}")
        self.labels, self.mapping = tuple(self.labels), dict(self.mapping)
        if self.speaker_pattern:
            if self.manifest:
                raise ValueError("speaker_pattern is for the folder layout; a manifest names the speakers in its "
                                 "speaker column")
            try:
                groups = re.compile(self.speaker_pattern).groups
            except re.error as e:
                raise ValueError(f"speaker_pattern {self.speaker_pattern!r} is not a regular expression: {e}") from None
            if not groups:
                raise ValueError(f"speaker_pattern {self.speaker_pattern!r} has no group: put the speaker in "
                                 r"parentheses, e.g. ^([A-Z]{2})_ for DC_a01.wav")
        Labels(self.labels, self.mapping)  # validates them
        if self.description is None:
            layout = f"the manifest {self.manifest}" if self.manifest else "a folder per label"
            self.description = f"A user's corpus, from {layout}; classes: {', '.join(self.labels or EMOTIONS)}."

    def as_metadata(self) -> dict[str, Any]:
        """The fields that shaped the build (kept in its ``metadata.json``)."""
        return {"manifest": self.manifest, "labels": list(self.labels or EMOTIONS), "mapping": self.mapping,
                "speaker_pattern": self.speaker_pattern}


EXAMPLE = CustomConfig(name="example", description=f"A placeholder, not a corpus: {NAME_YOUR_CORPUS}")
"""The builder's one predefined config (tfds needs one), refused by ``named_config``."""


def named_config(config: str | CustomConfig | None) -> CustomConfig:
    """The config of a build: ``config``, or for a name the folder layout with the 8 emotions (``--config
    mycorpus``). ``ValueError`` saying how to name the corpus for no config or the placeholder ``EXAMPLE``."""
    if config is None or (config if isinstance(config, str) else config.name) == EXAMPLE.name:
        raise ValueError(NAME_YOUR_CORPUS)
    return CustomConfig(name=config) if isinstance(config, str) else config


@dataclasses.dataclass
class _Survey:
    """What a layout's files and rows say: ``entries`` to build, ``skips``, the raw labels without a class
    (``unknown``), how many files or rows were ``found``, the audio files a manifest does not list, and ``warnings``
    about the whole corpus."""

    entries: list[Entry] = dataclasses.field(default_factory=list)
    skips: list[Skip] = dataclasses.field(default_factory=list)
    unknown: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    found: int = 0
    unlisted: list[str] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)


def plan(root: Path, config: CustomConfig, report: BuildReport) -> Plan:
    """The recordings under ``root`` to build, by split, read from the folders or the manifest ``config`` names.

    Every file found that is not built is recorded in ``report`` with its reason and a warning naming it (those
    not in a manifest with one warning for all); so is a corpus without speakers.

    Raises:
      FileNotFoundError: the manifest does not exist.
      ValueError: nothing can be built (the message lists the raw labels found and says what to do), or the
        manifest lacks a ``path`` or ``label`` column (it names those it has).
    """
    root = Path(os.path.abspath(root))
    labels = Labels(config.labels, config.mapping)
    files, ignored, corrupt = find_audio_files(root)
    survey = _Survey(skips=[(name, CORRUPT_ZIP, detail) for name, detail in corrupt], found=len(corrupt))
    if config.manifest:
        manifest = Path(os.path.abspath(root / config.manifest))  # an absolute manifest replaces root
        _survey_manifest(survey, root, manifest, files, labels)
        ignored = [name for name in ignored if root / name != manifest]
        no_speaker_fix = "give every row a speaker, in a speaker column"
    else:
        _survey_folders(survey, root, files, labels, config.speaker_pattern)
        no_speaker_fix = "give a speaker_pattern"
    if not survey.entries:
        raise ValueError(_nothing_to_build(root, labels, survey))
    report.found, report.ignored = survey.found, ignored
    for skip in survey.skips:
        report.skip(*skip)
    for message in survey.warnings:
        report.warn(message)
    if survey.unlisted:
        report.skipped += [(name, NOT_IN_MANIFEST, f"{config.manifest} does not list it") for name in survey.unlisted]
        report.warn(f"{len(survey.unlisted)} audio file(s) under {root} are not in {config.manifest} and are left out, "
                    f"e.g. {survey.unlisted[0]}; list them in the manifest to build them")
    without = sum(not recording.speaker for _, _, recording in survey.entries)
    if without:
        some = "any" if without == len(survey.entries) else without
        report.warn(f"{config.name}: no speaker is known for {some} of its {len(survey.entries)} recording(s), so "
                    "speaker-independent protocols (speaker splits, k-fold speaker cross-validation) cannot be run on "
                    f"them; {no_speaker_fix} ({README}, \"Speakers\")")
    planned: Plan = {split: [] for split in SPLITS}
    for split, file, recording in survey.entries:
        planned[split].append((file, recording))
    _warn_shared_speakers(planned, report)
    return planned


def _survey_folders(survey: _Survey, root: Path, files: Sequence[AudioFile], labels: Labels,
                    speaker_pattern: str) -> None:
    """The folder-per-label layout: every file trains, its label the first folder below ``root`` (an archive counts
    as extracted where it lies), its speaker from ``speaker_pattern`` (``""``: none)."""
    pattern = re.compile(speaker_pattern) if speaker_pattern else None
    survey.found += len(files)
    for file in files:
        if file.member is None:
            parts = PurePosixPath(file.name).parts
        else:
            archive = PurePosixPath(file.name.removesuffix(f"/{file.member}"))
            parts = archive.parent.parts + PurePosixPath(file.member).parts
        if len(parts) < 2:
            detail = f"{file.name} lies directly in {root}: put it in a folder named after its label, <root>/<label>/"
            survey.skips.append((file.name, NO_LABEL_FOLDER, detail))
            continue
        raw, below = parts[0], "/".join(parts[1:])
        label = labels(raw)
        if label is None:
            survey.unknown[raw] += 1
            survey.skips.append((file.name, UNKNOWN_LABEL, f"folder {labels.unknown(raw)}"))
            continue
        speaker = ""
        if pattern is not None:
            match = pattern.search(below)
            if match is None or not match.group(1):
                detail = (f"speaker_pattern {pattern.pattern!r} does not match {below!r}, its path below the label "
                          "folder")
                survey.skips.append((file.name, NO_SPEAKER, detail))
                continue
            speaker = match.group(1)
        survey.entries.append(("train", file, Recording(key=file.name, speaker=speaker, gender="unknown",
                                                        emotion=label, original_label=raw)))


def _survey_manifest(survey: _Survey, root: Path, manifest: Path, files: Sequence[AudioFile], labels: Labels) -> None:
    """The CSV layout: a row per recording (rows numbered as a spreadsheet shows them, the header being row 1);
    the audio files under ``root`` that no row names are ``unlisted``."""
    if not manifest.is_file():
        raise FileNotFoundError(f"manifest {manifest} not found: name a CSV file relative to the manual dir {root}, "
                                "or give its absolute path")
    with manifest.open(newline="", encoding="utf-8-sig") as f:  # utf-8-sig: spreadsheets often write a BOM
        reader = csv.reader(f)
        header = [column.strip().lower() for column in next(reader, [])]
        missing = [column for column in ("path", "label") if column not in header]
        if missing:
            raise ValueError(f"{manifest}: no {' and no '.join(missing)} column (its header: {','.join(header)}); a "
                             f"manifest's first row names its columns: path,label and optionally "
                             f"{','.join(MANIFEST_COLUMNS[2:])}")
        index = {column: header.index(column) for column in MANIFEST_COLUMNS if column in header}
        rows = [(number, row) for number, row in enumerate(reader, start=2) if any(cell.strip() for cell in row)]
    survey.found += len(rows)
    first: dict[Path, tuple[int, str, str]] = {}  # file → (row, raw label, class or raw) of the first row naming it
    other_genders: collections.Counter[str] = collections.Counter()
    for number, row in rows:
        padded = row + [""] * len(header)  # a short row leaves its last columns empty
        cell = {column: padded[index[column]].strip() if column in index else "" for column in MANIFEST_COLUMNS}
        where, raw = f"{manifest.name} row {number}", cell["label"]
        if not cell["path"]:
            survey.skips.append((where, MISSING, f"{where} has no path"))
            continue
        path = Path(os.path.abspath(manifest.parent / cell["path"]))
        name = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
        label = labels(raw)
        if path in first:
            earlier, earlier_raw, earlier_class = first[path]
            detail = f"{where} repeats row {earlier}, built once"
            if (label or raw) != earlier_class:
                detail = (f"{where} labels it {raw!r} but row {earlier} {earlier_raw!r}: built once, as row {earlier} "
                          "says; correct the manifest")
            survey.skips.append((name, DUPLICATE, detail))
            continue
        first[path] = (number, raw, label or raw)
        split = SPLIT_SPELLINGS.get(cell["split"].lower())
        if not path.is_file():
            survey.skips.append((name, MISSING, f"{where}: {path} " + ("is not a file" if path.exists() else
                                                                       "does not exist")))
        elif label is None:
            survey.unknown[raw] += 1
            survey.skips.append((name, UNKNOWN_LABEL, f"{where}: " + (labels.unknown(raw) if raw else "no label")))
        elif split is None:
            detail = f"{where}: split {cell['split']!r} is none of train, validation (val, valid, dev), test or empty"
            survey.skips.append((name, UNKNOWN_SPLIT, f"{detail} (train)"))
        else:
            gender = GENDER_SPELLINGS.get(cell["gender"].lower())
            if gender is None:
                other_genders[cell["gender"]] += 1
            survey.entries.append((split, AudioFile(name, path), Recording(
                key=name, speaker=cell["speaker"], gender=gender or "unknown", emotion=label, original_label=raw,
                text=cell["text"], source=where)))
    if other_genders:
        survey.warnings.append(f"{manifest.name}: gender values {dict(other_genders)} are none of male, female "
                               "(m, f): stored as unknown")
    survey.unlisted = [file.name for file in files if file.member is not None or root / file.name not in first]
    survey.found += len(survey.unlisted)


def _nothing_to_build(root: Path, labels: Labels, survey: _Survey) -> str:
    """Why a plan is empty, naming the raw labels found when none has a class."""
    if survey.unknown:
        found = ", ".join(f"{label!r} ({n})" for label, n in sorted(survey.unknown.items()))
        return (f"nothing to build in {root}: no label found names one of the classes ({', '.join(labels.names)}). "
                f"Labels found (files): {found}. Map them to classes in the config's \"mapping\", or list the classes "
                f"you want in \"labels\" ({README}, \"Labels\")")
    reasons = collections.Counter(reason for _, reason, _ in survey.skips)
    reasons[NOT_IN_MANIFEST] += len(survey.unlisted)
    counted = ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items()) if n) or "no audio files"
    example = f"; e.g. {survey.skips[0][0]}: {survey.skips[0][2]}" if survey.skips else ""
    return (f"nothing to build in {root} ({counted}){example}. Put the recordings in a folder per label "
            f"(<manual_dir>/<label>/x.wav) or list them in a CSV manifest ({README})")


def _warn_shared_speakers(planned: Plan, report: BuildReport) -> None:
    """Warns (once) when a speaker is in two splits: the speaker protocol would test on voices it trained on."""
    splits = collections.defaultdict(set)
    for split, items in planned.items():
        for _, recording in items:
            if recording.speaker:
                splits[recording.speaker].add(split)
    shared = sorted(speaker for speaker, names in splits.items() if len(names) > 1)
    if shared:
        report.warn(f"speaker(s) {', '.join(shared[:5])}{' ...' if len(shared) > 5 else ''} are in more than one "
                    "split: the speaker protocol would test on voices it trained on; give each speaker one split")
