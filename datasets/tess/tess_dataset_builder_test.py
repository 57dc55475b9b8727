"""Builds TESS from its dummy data: generated tones named like the corpus (one AIFF inside a .wav, one at
24,414 Hz); both speakers are training data only."""


def test_builds_dummy_data(build_dummy) -> None:
    assert build_dummy("tess") == {
        "train": [("tess/OAF", "anger", "female", "", "back"), ("tess/OAF", "fear", "female", "", "bar"),
                  ("tess/YAF", "sadness", "female", "", "book"), ("tess/YAF", "surprise", "female", "", "base")],
        "validation": [],
        "test": [],
    }
