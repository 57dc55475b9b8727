"""Builds RAVDESS from its dummy data: generated tones named like the corpus (one stereo at 48 kHz)."""


def test_builds_dummy_data(build_dummy) -> None:
    assert build_dummy("ravdess",
                       seconds=lambda file: 0.1 if file.startswith("Audio_Speech_Actors_01-24/Actor_02/") else 0.25) == {
        "train": [("ravdess/01", "anger", "male", "strong", "01"), ("ravdess/02", "calm", "female", "normal", "02")],
        "validation": [("ravdess/19", "surprise", "male", "normal", "01")],
        "test": [("ravdess/22", "sadness", "female", "strong", "02")],
    }
