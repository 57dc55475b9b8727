"""The synthetic prosody corpus (``emojax.synthetic``) as an emojax dataset: generated, no download."""

from __future__ import annotations

from collections.abc import Iterator

import tensorflow_datasets as tfds

from emojax import corpora, prepared, synthetic


class Builder(corpora.EmojaxBuilder):
    """12 synthetic speakers x 8 emotions, carried by prosody; speaker-disjoint splits from ``emojax.synthetic``."""

    CORPUS = synthetic.CORPUS

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Iterator]:
        del dl_manager  # nothing to download: the audio is generated
        return {split: self._generate_examples(split, self._clips(split)) for split in prepared.SPLITS}

    def _clips(self, split: str) -> Iterator[corpora.Clip]:
        for clip in synthetic.generate(split):
            self.report.found += 1
            yield corpora.Clip(clip.key, clip.audio, clip.emotion, {
                "speaker": clip.speaker,
                "gender": clip.gender,
                "corpus": self.CORPUS,
                "original_label": clip.emotion,
                "intensity": "",
                "text": clip.text,
                "file": "",
            })
