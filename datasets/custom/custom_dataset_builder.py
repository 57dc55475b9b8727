"""A corpus of your own as an emojax dataset: a folder per label or a CSV manifest, named by its config
(``emojax.custom``; README.md says how)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import tensorflow_datasets as tfds

from emojax import corpora, custom
from emojax.labels import EMOTIONS


class Builder(corpora.ManualBuilder):
    """A user's labelled recordings, built under the name their config gives (``tfds build datasets/custom --config
    '{"name": "mycorpus", ...}'``) into ``<data_dir>/emojax_custom/<name>/``."""

    CORPUS = "custom"
    BUILDER_CONFIGS: ClassVar[list[custom.CustomConfig]] = [custom.EXAMPLE]  # a placeholder: tfds needs one
    RELEASE_NOTES: ClassVar[dict[str, str]] = {
        "1.3.0": "First release: a corpus of your own, from a folder per label or a CSV manifest."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
    Put your recordings (any format libsndfile reads, any rate) in the manual dir in one of two layouts:
    a folder per label, DIR/<label>/**/*.wav, or anywhere with a CSV manifest whose header names the columns
    path,label (and optionally speaker, split, gender, text), given as --config '{"name": "mycorpus",
    "manifest": "labels.csv"}'. See datasets/custom/README.md.
    """

    def __init__(self, *, config: str | custom.CustomConfig | None = None, **kwargs: Any) -> None:
        super().__init__(config=custom.named_config(config), **kwargs)

    @property
    def corpus(self) -> str:
        """The config's name."""
        return self.builder_config.name

    @property
    def label_names(self) -> tuple[str, ...]:
        """The config's ``labels``, or the 8 ``EMOTIONS``."""
        return self.builder_config.labels or EMOTIONS

    def _plan(self, root: Path) -> corpora.Plan:
        return custom.plan(root, self.builder_config, self.report)

    def _download_and_prepare(self, dl_manager: tfds.download.DownloadManager, download_config: Any) -> None:
        super()._download_and_prepare(dl_manager=dl_manager, download_config=download_config)
        self.info.metadata["config"] = self.builder_config.as_metadata()
