"""Builds SAVEE from its dummy data: generated tones named like the Surrey AudioData layout."""


def test_builds_dummy_data(build_dummy) -> None:
    assert build_dummy("savee") == {
        "train": [("savee/DC", "anger", "male", "", "a01"), ("savee/JE", "surprise", "male", "", "su03")],
        "validation": [("savee/JK", "sadness", "male", "", "sa05")],
        "test": [("savee/KL", "neutral", "male", "", "n12")],
    }
