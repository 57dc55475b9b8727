"""Builds CREMA-D from its dummy data: generated tones named like AudioWAV/ files."""


def test_builds_dummy_data(build_dummy) -> None:
    assert build_dummy("crema_d") == {
        "train": [("crema_d/1001", "anger", "male", "", "DFA"), ("crema_d/1002", "happiness", "female", "high", "IEO")],
        "validation": [("crema_d/1071", "neutral", "male", "", "ITS")],
        "test": [("crema_d/1091", "sadness", "female", "low", "TSI")],
    }
