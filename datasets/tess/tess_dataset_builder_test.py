"""Builds TESS from its dummy data: generated tones named like the corpus (one AIFF inside a .wav, one at
24,414 Hz), split by spoken word."""


def test_builds_dummy_data(build_dummy) -> None:
    assert build_dummy("tess") == {
        "train": [("tess/OAF", "anger", "female", "", "back"), ("tess/YAF", "surprise", "female", "", "base")],
        "validation": [("tess/OAF", "fear", "female", "", "bar")],
        "test": [("tess/YAF", "sadness", "female", "", "book")],
    }
