"""Building a real corpus's splits on Apache Beam (``tfds build --beam_pipeline_options=...``).

Given Beam pipeline options, ``CorpusBuilder`` (``emojax.corpora``) plans the build as without Beam, then makes each
split a pipeline (``_beam_split``) of batches of its planned files, spread over the workers: they decode the files and
compute their MFCCs and pitch rows (``_beam_batch_examples``), and report what they built and skipped through a side
output, which the builder adds to its build summary. The examples and the summary are the same as a plain build's.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Iterator, Sequence
from typing import Any

import tensorflow_datasets as tfds

from emojax import features
# corpora's clip helpers stay with its plain build; corpora imports this module lazily (Beam builds), so no cycle.
from emojax.build_report import warn_skipped
from emojax.corpora import Clip, Recording, _clip, _with_mfccs
from emojax.recordings import AudioFile, read_recording, skip_reason

_BEAM_BATCH = 64  # planned files per Beam element: whole MFCC batches of 32 (clip_mfccs), many elements per split
_REPORT = "report"  # tag of the workers' report records


def _beam_batch_examples(batch: tuple[int, list[tuple[AudioFile, Recording]]], corpus: str) -> Iterator[Any]:
    """Beam worker step: decodes one batch of a split's planned files and adds their MFCCs.

    Args:
      batch: ``(start, items)``, the batch's position in the split and its ``(file, recording)`` pairs.
      corpus: the builder's ``CORPUS``.

    Yields:
      ``(key, example)`` for each decoded file, then ``TaggedOutput(_REPORT, (start, skipped, counts))``: the
      batch's ``(file, reason, detail)`` skips and its examples per emotion.
    """
    import apache_beam as beam

    start, items = batch
    clips: list[Clip] = []
    skipped: list[tuple[str, str, str]] = []
    for file, recording in items:
        try:
            clips.append(_clip(corpus, file, recording, read_recording(file)))
        except features.AudioFileError as e:
            skipped.append((file.name, skip_reason(e), str(e)))
            warn_skipped(*skipped[-1])  # here: a split with nothing decoded stops the pipeline (TFDS's writer)
    yield from _with_mfccs(clips)
    yield beam.pvalue.TaggedOutput(_REPORT, (start, skipped, collections.Counter(c.emotion for c in clips)))


def _save_report(records: list[tuple[int, list, dict[str, int]]], path: str) -> None:
    """Writes a split's report records (all batches) to ``path``, as JSON, for the builder to read back."""
    tfds.core.Path(path).write_text(json.dumps(records))


def _beam_split(items: Sequence[tuple[AudioFile, Recording]], corpus: str, report_path: str) -> Any:
    """The ``beam.PTransform`` (pipeline root → ``(key, example)``) of one split, ``items`` its planned files.

    Each element is a batch of ``_BEAM_BATCH`` files, spread over the workers (``Reshuffle``), which decode them and
    compute their MFCCs (``_beam_batch_examples``); the report records go to ``report_path``.
    """
    import apache_beam as beam

    @beam.ptransform_fn
    def examples(root: beam.pvalue.PBegin) -> beam.PCollection:
        batches = [(start, list(items[start : start + _BEAM_BATCH])) for start in range(0, len(items), _BEAM_BATCH)]
        out = (root
               | "Batches" >> beam.Create(batches)
               | "Spread" >> beam.Reshuffle()
               | "DecodeAndMfcc" >> beam.FlatMap(_beam_batch_examples, corpus).with_outputs(_REPORT, main="examples"))
        _ = out[_REPORT] | "Collect" >> beam.combiners.ToList() | "Save" >> beam.Map(_save_report, report_path)
        return out.examples

    return examples()
