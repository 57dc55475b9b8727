"""Shared fixtures: where the real corpora are (tests that need them skip when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _shared(name: str, env: str) -> Path | None:
    path = Path(os.environ[env]) if env in os.environ else REPO.parent / "shared" / name
    return path if path.is_dir() else None


@pytest.fixture(scope="session")
def corpora_dir() -> Path:
    """`../shared/corpora` or `$EMOJAX_CORPORA`: the four corpora as 16 kHz Opus; skip when absent."""
    path = _shared("corpora", "EMOJAX_CORPORA")
    if path is None:
        pytest.skip("real corpora not found (../shared/corpora or $EMOJAX_CORPORA)")
    return path


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """`../shared/corpus-samples` or `$EMOJAX_CORPUS_SAMPLES`: untouched originals; skip when absent."""
    path = _shared("corpus-samples", "EMOJAX_CORPUS_SAMPLES")
    if path is None:
        pytest.skip("corpus samples not found (../shared/corpus-samples or $EMOJAX_CORPUS_SAMPLES)")
    return path
