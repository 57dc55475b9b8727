"""What a build found, built and skipped, and its warnings: ``BuildReport``, printed at the end of every emojax
build (``emojax.corpora``, ``emojax.beam``, ``emojax.custom``) and kept in the dataset's ``metadata.json``."""

from __future__ import annotations

import collections
import dataclasses
from typing import Any

from absl import logging

from emojax.labels import EMOTIONS
from emojax.prepared import SPLITS


@dataclasses.dataclass
class BuildReport:
    """What a build found, built and skipped, and its warnings (printed at the end, kept in ``metadata.json``);
    ``labels`` are the class names counted."""

    found: int = 0
    ignored: list[str] = dataclasses.field(default_factory=list)
    skipped: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)  # (file, reason, detail)
    counts: dict[str, collections.Counter] = dataclasses.field(
        default_factory=lambda: {split: collections.Counter() for split in SPLITS})
    warnings: list[str] = dataclasses.field(default_factory=list)
    labels: tuple[str, ...] = EMOTIONS

    def skip(self, file: str, reason: str, detail: str) -> None:
        """Records a skipped file and warns, naming it."""
        self.skipped.append((file, reason, detail))
        warn_skipped(file, reason, detail)

    def warn(self, message: str) -> None:
        """Records a warning about the whole build (repeated at its end) and logs it."""
        self.warnings.append(message)
        logging.warning("%s", message)

    @property
    def built(self) -> int:
        return sum(sum(c.values()) for c in self.counts.values())

    def summary(self) -> str:
        """One line, e.g. ``found 12, built 10, skipped 2 (1 duplicate, 1 undecodable); ignored 1 other file``."""
        reasons = collections.Counter(reason for _, reason, _ in self.skipped)
        detail = ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items()))
        line = f"found {self.found}, built {self.built}, skipped {len(self.skipped)}"
        line += f" ({detail})" if detail else ""
        if self.ignored:
            line += f"; ignored {len(self.ignored)} non-audio file(s), e.g. {self.ignored[0]}"
        return line

    def table(self) -> str:
        """Per-split, per-label example counts as a text table."""
        width = max(len(e) for e in self.labels + ("total",))
        rows = [f"{'':{width}} " + " ".join(f"{s:>10}" for s in SPLITS) + f" {'total':>10}"]
        for emotion in self.labels + ("total",):
            cells = [sum(c.values()) if emotion == "total" else c[emotion] for c in self.counts.values()]
            rows.append(f"{emotion:{width}} " + " ".join(f"{n:>10}" for n in cells) + f" {sum(cells):>10}")
        return "\n".join(rows)

    def as_metadata(self) -> dict[str, Any]:
        return {
            "summary": self.summary(),
            "found": self.found,
            "built": self.built,
            "skipped": [{"file": f, "reason": r, "detail": d} for f, r, d in self.skipped],
            "ignored": self.ignored,
            "counts": {split: dict(sorted(c.items())) for split, c in self.counts.items()},
            "warnings": self.warnings,
        }


def warn_skipped(file: str, reason: str, detail: str) -> None:
    """Logs that ``file`` was left out of a build, and why."""
    logging.warning("skipped %s (%s): %s", file, reason, detail)
