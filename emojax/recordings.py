"""Finding and decoding the recordings under a manual dir, whatever layout the corpus was downloaded in.

People download a corpus in many shapes: the publisher's folders, a Kaggle copy (sometimes holding the corpus
twice), the files flat, ``.zip`` archives (whole or per speaker), or a re-encoding to another format. This module
holds what the builders need to read any of them: ``find_audio_files`` lists every candidate recording under a
folder, recursively and inside ``.zip`` archives, ignoring documents and macOS debris; ``read_recording`` decodes one
by its content, not its extension (``emojax.features.load_audio``: any container libsndfile reads, mono mixdown,
resampling to 16 kHz), and ``skip_reason`` names why a file it rejected is left out of a build. Which files are a
corpus's recordings, and what their names say, is the builders' part (``emojax.corpora``).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

import numpy as np

from emojax import features

AUDIO_EXTENSIONS = frozenset({".wav", ".wave", ".ogg", ".oga", ".opus", ".flac", ".aif", ".aiff", ".aifc", ".mp3"})
"""Files with these extensions are decoded (by content); other files are counted as ignored."""
CORRUPT_ZIP = "corrupt zip archive"
"""The skip reason of an unreadable ``.zip`` archive or archive member."""


@dataclasses.dataclass(frozen=True)
class AudioFile:
    """One candidate recording found under the manual dir.

    Attributes:
      name: path relative to the manual dir (POSIX); for a zip member ``archive.zip/inner/path``.
      path: the file on disk (the archive, for a zip member).
      member: the member's name inside the archive, ``None`` for a plain file.
    """

    name: str
    path: Path
    member: str | None = None


def _hidden(parts: Iterable[str]) -> bool:
    """macOS/metadata debris: dot-files (``._x.wav``, ``.DS_Store``) and ``__MACOSX`` folders."""
    return any(p.startswith(".") or p == "__MACOSX" for p in parts)


def find_audio_files(root: Path) -> tuple[list[AudioFile], list[str], list[tuple[str, str]]]:
    """All candidate recordings under ``root``, recursively and inside ``.zip`` archives, in sorted order.

    Returns:
      ``(files, ignored, corrupt)``: files with an audio extension (decoded later by content), the relative
      names of the other files (documents, spreadsheets, dot-files), which are not recordings, and the
      ``(name, reason)`` of each ``.zip`` archive that cannot be read.
    """
    files: list[AudioFile] = []
    ignored: list[str] = []
    corrupt: list[tuple[str, str]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames.sort()
        for filename in sorted(filenames):
            path = Path(dirpath) / filename
            name = path.relative_to(root).as_posix()
            if _hidden(PurePosixPath(name).parts):
                ignored.append(name)
            elif path.suffix.lower() == ".zip":
                try:
                    members, other = _zip_members(path, name)
                except (zipfile.BadZipFile, OSError, EOFError) as e:
                    corrupt.append((name, f"{path}: not a readable .zip archive ({e}); re-download it or "
                                          "extract it yourself"))
                    continue
                files += members
                ignored += other
            elif path.suffix.lower() in AUDIO_EXTENSIONS:
                files.append(AudioFile(name, path))
            else:
                ignored.append(name)
    return sorted(files, key=lambda f: f.name), sorted(ignored), corrupt


def _zip_members(path: Path, name: str) -> tuple[list[AudioFile], list[str]]:
    """The audio members of archive ``path`` (relative name ``name``), and the names of its other members.

    Raises:
      zipfile.BadZipFile: ``path`` is not a zip archive (or its directory is damaged).
    """
    with zipfile.ZipFile(path) as archive:
        members = sorted(info.filename for info in archive.infolist() if not info.is_dir())
    files, ignored = [], []
    for member in members:
        inner = PurePosixPath(member)
        if _hidden(inner.parts) or inner.suffix.lower() not in AUDIO_EXTENSIONS:
            ignored.append(f"{name}/{member}")
        else:
            files.append(AudioFile(f"{name}/{member}", path, member))
    return files, ignored


def read_recording(file: AudioFile) -> np.ndarray:
    """Decodes one recording (by content) to ``(samples,)`` int16 mono at ``features.SAMPLE_RATE`` (16 kHz).

    Zip members are extracted to a temporary folder first (removed after decoding).

    Raises:
      features.AudioFileError: the file is empty or not decodable audio (the message names it).
    """
    if file.member is None:
        if file.path.stat().st_size == 0:
            raise features.AudioFileError(f"{file.path}: the file is empty (0 bytes)")
        y, _ = features.load_audio(file.path, features.SAMPLE_RATE)
    else:
        with zipfile.ZipFile(file.path) as archive, tempfile.TemporaryDirectory() as tmp:
            if archive.getinfo(file.member).file_size == 0:
                raise features.AudioFileError(f"{file.name}: the file is empty (0 bytes)")
            try:
                extracted = Path(archive.extract(file.member, tmp))
            except (zipfile.BadZipFile, zlib.error, EOFError) as e:
                raise features.AudioFileError(f"{file.name}: {CORRUPT_ZIP} ({e}); re-download {file.path}") from e
            try:
                y, _ = features.load_audio(extracted, features.SAMPLE_RATE)
            except features.AudioFileError as e:  # name the member, not the temporary copy
                raise features.AudioFileError(str(e).replace(str(extracted), file.name)) from e
    return features.to_int16(y)


def skip_reason(error: features.AudioFileError) -> str:
    """The build report's reason for a file ``read_recording`` rejected: empty, undecodable or corrupt zip."""
    message = str(error)
    if CORRUPT_ZIP in message:
        return CORRUPT_ZIP
    return "empty" if "empty" in message or "no audio samples" in message else "undecodable"
