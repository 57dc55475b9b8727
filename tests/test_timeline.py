"""Timelines of long recordings: predict's windows, silence, smoothing, segments, streaming, CSV/JSON/PNG, the
classes' colours, and a model of other classes than the 8 emotions."""

from __future__ import annotations

import csv
import json
from collections import Counter

import numpy as np
import pytest
import soundfile

from emojax import features, inference, synthetic
from emojax.labels import EMOTIONS
from emojax.timeline import (_SILENCE_COLOUR, COLOURS, SILENCE, Timeline, class_colours, frame_levels, silent_windows,
                             window_starts)

RATE = synthetic.SAMPLE_RATE
BLOCKS = ("anger", "sadness", "surprise", "disgust")  # emotions the demo model tells apart on the test speakers
GAP_SECONDS = 6.0


@pytest.fixture(scope="module")
def predictor(trained_workdir) -> inference.Predictor:
    return inference.Predictor.from_workdir(trained_workdir)


def _noise(seconds: float, db: float, seed: int) -> np.ndarray:
    """Gaussian noise at ``db`` dBFS RMS, float32."""
    return np.random.default_rng(seed).normal(0.0, 10 ** (db / 20), int(seconds * RATE)).astype(np.float32)


@pytest.fixture(scope="module")
def recording() -> tuple[np.ndarray, list[tuple[float, float, str]]]:
    """Four clips of each emotion of ``BLOCKS`` (test speakers) in a row, a block per emotion, with gaps of room noise
    at -65 dBFS (above the -70 dB floor, far below the speech) before, between and after them: the audio and the
    blocks' (start, end seconds, emotion)."""
    clips = list(synthetic.generate("test"))
    parts, blocks, t = [_noise(GAP_SECONDS, -65, 0)], [], GAP_SECONDS
    for k, emotion in enumerate(BLOCKS):
        audio = np.concatenate([c.audio for c in clips if c.emotion == emotion][:4]).astype(np.float32) / 32768
        parts += [audio, _noise(GAP_SECONDS, -65, k + 1)]
        blocks.append((t, t + len(audio) / RATE, emotion))
        t += len(audio) / RATE + GAP_SECONDS
    return np.concatenate(parts), blocks


def test_window_starts_cover_the_recording_with_the_last_aligned_to_the_end():
    assert window_starts(100, 40, 20).tolist() == [0, 20, 40, 60]
    assert window_starts(101, 40, 20).tolist() == [0, 20, 40, 60, 61]
    assert window_starts(30, 40, 20).tolist() == [0]  # shorter than a window: one window
    assert window_starts(100, 40, 70).tolist() == [0, 60]
    with pytest.raises(ValueError, match="at least one sample"):
        window_starts(100, 40, 0)


def test_frame_levels_do_not_depend_on_how_the_recording_is_cut():
    y = _noise(3.3, -20, 7)
    whole = frame_levels([y])
    assert whole.shape == (-(-len(y) // 512),)
    np.testing.assert_allclose(whole[:-1], -20, atol=1.0)
    np.testing.assert_allclose(frame_levels(np.array_split(y, [1, 513, 9000, 40000])), whole, atol=1e-5)
    assert frame_levels([np.zeros(1000, np.float32)]).max() < -150


def test_the_timeline_has_predicts_windows_and_probabilities(predictor, recording):
    audio, _ = recording
    prediction = predictor.predict(audio, RATE)
    timeline = predictor.timeline(audio, RATE, silence_db=200.0)  # nothing silent: every window classified
    assert [w.to_dict() for w in timeline.windows] == prediction.windows
    assert timeline.duration_seconds == pytest.approx(len(audio) / RATE)
    assert timeline.hop_seconds == pytest.approx(predictor.window_samples // 2 / RATE)


def test_silences_are_marked_and_the_segments_found(predictor, recording):
    audio, blocks = recording
    prediction = predictor.predict(audio, RATE)
    timeline = predictor.timeline(audio, RATE)
    # Every non-silent window is predict's window; silent ones are not classified.
    for window, predicted in zip(timeline.windows, prediction.windows, strict=True):
        assert (window.start_seconds, window.end_seconds) == (predicted["start_seconds"], predicted["end_seconds"])
        if not window.silent:  # batches of other sizes: the same numbers up to float32 rounding
            assert window.emotion == predicted["emotion"]
            assert window.probabilities == pytest.approx(predicted["probabilities"], abs=1e-6)
        else:
            assert window.emotion == SILENCE and window.probabilities is None
    for window in timeline.windows:
        inside = [b for b in blocks if b[0] <= window.start_seconds and window.end_seconds <= b[1]]
        touching = [b for b in blocks if window.start_seconds < b[1] and b[0] < window.end_seconds]
        if not touching:
            assert window.silent, window  # the gaps
        if inside:
            assert not window.silent, window  # the speech
    # The segments: silence, then each block's speech, then silence again, covering the recording.
    segments = timeline.segments
    assert segments[0].start_seconds == 0 and segments[-1].end_seconds == pytest.approx(len(audio) / RATE)
    assert all(a.end_seconds == b.start_seconds for a, b in zip(segments, segments[1:]))
    assert all(a.emotion != b.emotion for a, b in zip(segments, segments[1:]))
    speech, current = [], None  # the spans of consecutive non-silent segments
    for s in segments:
        if s.emotion == SILENCE:
            current = None
        elif current is None:
            current = [s.start_seconds, s.end_seconds]
            speech.append(current)
        else:
            current[1] = s.end_seconds
    hop = timeline.hop_seconds
    assert len(speech) == len(blocks)
    for (start, end), (block_start, block_end, emotion) in zip(speech, blocks):
        assert abs(start - block_start) <= 2 * hop and abs(end - block_end) <= 2 * hop
        inside = [w.emotion for w in timeline.windows if block_start <= w.start_seconds and w.end_seconds <= block_end]
        assert Counter(inside).most_common(1)[0][0] == emotion, (emotion, inside)
    for s in segments:
        if s.emotion != SILENCE:
            run = [w for w in timeline.windows if s.start_seconds <= w.centre_seconds < s.end_seconds]
            assert s.probability == pytest.approx(np.mean([w.probabilities[s.emotion] for w in run]))


def _timeline(probabilities: list[list[float] | None], hop: float = 1.0) -> Timeline:
    """A hand-made timeline of windows of 2 s every ``hop`` seconds (None: silence)."""
    size, step = 2 * RATE, int(hop * RATE)
    starts = np.arange(len(probabilities)) * step
    probs = np.array([[np.nan] * len(EMOTIONS) if p is None else p for p in probabilities], np.float64)
    return Timeline.from_arrays("made.wav", int(starts[-1] + size), step, size, starts, probs)


def _one_hot(emotion: str, weight: float = 0.9) -> list[float]:
    p = np.full(len(EMOTIONS), (1 - weight) / (len(EMOTIONS) - 1))
    p[EMOTIONS.index(emotion)] = weight
    return p.tolist()


def test_smoothing_keeps_a_steady_timeline_and_removes_a_single_odd_window():
    steady = _timeline([_one_hot("calm", 0.7)] * 8)
    smoothed = steady.smoothed(5.0)
    assert smoothed.smooth_seconds == 5.0
    np.testing.assert_allclose(smoothed.probability_array(), steady.probability_array(), atol=1e-12)
    odd = _timeline([_one_hot("anger")] * 4 + [_one_hot("fear")] + [_one_hot("anger")] * 4 + [None, None])
    assert [s.emotion for s in odd.segments] == ["anger", "fear", "anger", SILENCE]
    smoothed = odd.smoothed(4.0)  # windows whose centres are within 2 s: the odd one and two on each side
    assert [s.emotion for s in smoothed.segments] == ["anger", SILENCE]
    assert smoothed.windows[4].probabilities["fear"] == pytest.approx((0.9 + 4 * 0.1 / 7) / 5)
    assert smoothed.windows[-1].silent and odd.smoothed(0.0) is odd
    with pytest.raises(ValueError, match=">= 0 seconds"):
        odd.smoothed(-1.0)


def test_the_plot_averages_a_long_timeline_into_columns(tmp_path):
    short = _timeline([_one_hot("calm"), None, _one_hot("fear")])
    edges, shares = short.columns()
    np.testing.assert_allclose(edges, short.borders())
    assert shares.shape == (3, len(EMOTIONS) + 1) and shares[1, -1] == 1 and shares[2, EMOTIONS.index("fear")] == 0.9
    long = _timeline([_one_hot("anger"), _one_hot("anger"), None, _one_hot("sadness")] * 300)  # 1,200 windows
    edges, shares = long.columns(count=100)
    assert len(edges) == 101 and edges[-1] == long.duration_seconds
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)
    assert shares[:, -1].mean() == pytest.approx(0.25, abs=0.01)  # silence: a quarter of the windows
    assert shares[:, EMOTIONS.index("anger")].mean() == pytest.approx(0.5 * 0.9 + 0.25 * 0.1 / 7, abs=0.01)
    assert long.plot(tmp_path / "long.png").stat().st_size > 20_000


def test_an_all_silent_recording_gets_silence_and_a_message(predictor):
    for audio in (np.zeros(10 * RATE, np.float32), _noise(10, -90, 3)):  # digital silence, dither
        timeline = predictor.timeline(audio, RATE)
        assert timeline.all_silent and len(timeline.windows) == 7
        assert [s.emotion for s in timeline.segments] == [SILENCE] and timeline.segments[0].probability is None
        assert "no speech" in timeline.message
    assert silent_windows(np.full(10, -200.0, np.float32), np.array([0]), 5120).tolist() == [True]


def test_a_recording_shorter_than_a_window_is_one_window(predictor):
    for audio in (next(synthetic.generate("test")).audio[:RATE], np.array([0.25], np.float32)):
        timeline = predictor.timeline(audio, RATE)
        (window,) = timeline.windows
        assert window.start_seconds == 0 and window.end_seconds == pytest.approx(len(audio) / RATE)
        assert window.emotion in EMOTIONS and sum(window.probabilities.values()) == pytest.approx(1.0)
        assert [s.emotion for s in timeline.segments] == [window.emotion] and timeline.message is None


def test_streaming_a_file_equals_the_timeline_in_memory(predictor, recording, tmp_path):
    """A few minutes at 44.1 kHz in stereo (the file is read in many blocks, mixed down and resampled)."""
    audio, _ = recording
    long = np.tile(audio, 3)[: int(150 * RATE)]
    stereo = np.stack([long, 0.5 * long], axis=1)
    n = int(round(len(long) * 44_100 / RATE))
    resampled = np.stack([np.interp(np.linspace(0, len(long) - 1, n), np.arange(len(long)), c) for c in stereo.T], 1)
    path = tmp_path / "long.flac"
    soundfile.write(path, resampled, 44_100, subtype="PCM_24")
    streamed = predictor.timeline_file(path, hop=2.0, smooth=3.0)
    in_memory = predictor.timeline(*features.load_audio(path, features.SAMPLE_RATE), hop=2.0, smooth=3.0,
                                   file=str(path))
    assert streamed.file == str(path) and streamed.duration_seconds == pytest.approx(150, abs=1e-3)
    assert [w.emotion for w in streamed.windows] == [w.emotion for w in in_memory.windows]
    assert any(w.silent for w in streamed.windows) and not streamed.all_silent
    np.testing.assert_allclose(streamed.probability_array(), in_memory.probability_array(), atol=1e-6)
    assert [(w.start_seconds, w.end_seconds) for w in streamed.windows] == [
        (w.start_seconds, w.end_seconds) for w in in_memory.windows]
    (tmp_path / "bad.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt garbage")
    with pytest.raises(features.AudioFileError, match="not a readable audio file"):
        predictor.timeline_file(tmp_path / "bad.wav")
    with pytest.raises(FileNotFoundError):
        predictor.timeline_file(tmp_path / "missing.wav")


def test_a_streamed_file_is_read_as_load_audio_reads_it(predictor, tmp_path):
    """Odd formats give the timeline of their ``load_audio``; files it refuses are refused with its reason."""
    clip = next(synthetic.generate("test")).audio.astype(np.float32) / 32768
    audio = np.tile(clip, 3)
    for name, rate, channels, subtype in (("eight_channels_96k.wav", 96_000, 8, "PCM_16"), ("u8_11k.wav", 11_025, 1,
                                          "PCM_U8"), ("stereo.ogg", 48_000, 2, "VORBIS"), ("mono.mp3", 22_050, 1,
                                                                                            "MPEG_LAYER_III")):
        n = int(len(audio) * rate / RATE)
        y = np.interp(np.linspace(0, len(audio) - 1, n), np.arange(len(audio)), audio)
        soundfile.write(tmp_path / name, np.stack([y * (1 - 0.1 * c) for c in range(channels)], 1), rate,
                        subtype=subtype)
        streamed = predictor.timeline_file(tmp_path / name)
        in_memory = predictor.timeline(*features.load_audio(tmp_path / name, RATE))
        assert streamed.duration_seconds == pytest.approx(in_memory.duration_seconds)
        np.testing.assert_allclose(streamed.probability_array(), in_memory.probability_array(), atol=1e-6)
    soundfile.write(tmp_path / "speech.wav", audio, RATE, subtype="PCM_16")
    whole = (tmp_path / "speech.wav").read_bytes()
    (tmp_path / "truncated.wav").write_bytes(whole[: len(whole) // 3])
    (tmp_path / "empty.flac").write_bytes(b"")
    soundfile.write(tmp_path / "nan.wav", np.full(8000, np.nan, np.float32), RATE, subtype="FLOAT")
    for name in ("truncated.wav", "empty.flac", "nan.wav"):
        with pytest.raises(features.AudioFileError) as expected:
            features.load_audio(tmp_path / name, RATE)
        with pytest.raises(features.AudioFileError) as got:
            predictor.timeline_file(tmp_path / name)
        assert str(got.value).split(" (")[0] == str(expected.value).split(" (")[0], name


def test_csv_json_and_png(predictor, recording, tmp_path):
    audio, _ = recording
    timeline = predictor.timeline(audio, RATE, smooth=4.0, file="speech.wav")
    with timeline.to_csv(tmp_path / "t.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(timeline.windows) and list(rows[0]) == ["start_seconds", "end_seconds", "emotion",
                                                                     *EMOTIONS]
    for row, window in zip(rows, timeline.windows):
        assert row["emotion"] == window.emotion and float(row["end_seconds"]) == pytest.approx(window.end_seconds,
                                                                                               abs=1e-3)
        if window.silent:
            assert all(row[e] == "" for e in EMOTIONS)
        else:
            assert float(row[window.emotion]) == pytest.approx(window.probabilities[window.emotion], abs=1e-4)
    loaded = json.loads(timeline.to_json())
    assert set(loaded) == {"file", "duration_seconds", "hop_seconds", "window_seconds", "smooth_seconds", "windows",
                           "segments"}
    assert loaded["file"] == "speech.wav" and loaded["smooth_seconds"] == 4.0
    assert len(loaded["windows"]) == len(timeline.windows) and len(loaded["segments"]) == len(timeline.segments)
    assert loaded["segments"][0] == {"start_seconds": 0.0, "end_seconds": timeline.segments[0].end_seconds,
                                     "emotion": SILENCE, "probability": None}
    png = timeline.plot(tmp_path / "t.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    table = timeline.table().splitlines()
    assert len(table) == len(timeline.segments) and table[0].startswith("0:00–0:0")
    silent = predictor.timeline(np.zeros(5 * RATE, np.float32), RATE)
    assert silent.plot(tmp_path / "silent.png").stat().st_size > 5_000


def test_the_emotions_keep_their_colours_and_other_classes_get_distinct_ones():
    assert list(class_colours(EMOTIONS).items()) == list(COLOURS.items())
    mine = class_colours(("neutral", "colère", "joie", "ennui"))
    assert mine == class_colours(["neutral", "colère", "joie", "ennui"]) and mine["neutral"] == COLOURS["neutral"]
    many = class_colours([*(f"class {i}" for i in range(40)), "anger"])  # past the end of the palette
    assert many["anger"] == COLOURS["anger"] and len(set(many.values()) | {_SILENCE_COLOUR}) == 42
    for colour in (*mine.values(), *many.values()):  # none grey: silence's
        rgb = [int(colour[i:i + 2], 16) for i in (1, 3, 5)]
        assert max(rgb) - min(rgb) > 40, colour


def test_a_model_of_its_own_classes_gets_their_timeline_csv_json_table_and_plot(custom_workdir, recording, tmp_path):
    from matplotlib.image import imread

    classes = ("neutral", "colère", "joie", "ennui")
    predictor = inference.Predictor.from_workdir(custom_workdir)
    audio, _ = recording
    timeline = predictor.timeline(audio, RATE, smooth=3.0, file="parole.wav")
    speech = [w for w in timeline.windows if not w.silent]
    assert predictor.classes == timeline.classes == classes and speech and len(speech) < len(timeline.windows)
    assert all(tuple(w.probabilities) == classes and w.emotion in classes for w in speech)
    np.testing.assert_allclose(timeline.probability_array()[[not w.silent for w in timeline.windows]].sum(1), 1.0)
    with timeline.to_csv(tmp_path / "t.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["start_seconds", "end_seconds", "emotion", *classes]
    for row, window in zip(rows, timeline.windows, strict=True):
        assert row["emotion"] == window.emotion and all(
            row[c] == ("" if window.silent else f"{window.probabilities[c]:.4f}") for c in classes)
    loaded = json.loads(timeline.to_json())
    assert [w["probabilities"] and list(w["probabilities"]) for w in loaded["windows"]] == [
        None if w.silent else list(classes) for w in timeline.windows]
    assert {s["emotion"] for s in loaded["segments"]} <= {*classes, SILENCE}
    assert [line.split()[1] for line in timeline.table().splitlines()] == [s.emotion for s in timeline.segments]
    edges, shares = timeline.columns()
    assert shares.shape == (len(timeline.windows), len(classes) + 1)
    pixels = {tuple(p) for p in (imread(timeline.plot(tmp_path / "t.png"))[..., :3] * 255).round().astype(int)
              .reshape(-1, 3)}
    for emotion in {s.emotion for s in timeline.segments}:  # each in its colour, in the band above the probabilities
        colour = (class_colours(classes) | {SILENCE: _SILENCE_COLOUR})[emotion]
        assert tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5)) in pixels, emotion
    with pytest.raises(ValueError, match="do not fit 2 windows of 4 classes"):
        Timeline.from_arrays(None, RATE, RATE, RATE, np.array([0, 1]), np.ones((2, 8)), classes)


def test_the_shipped_model_finds_corpus_clips_of_known_emotions_in_a_long_recording(corpora_dir):
    """Four TESS clips of each of four emotions, a block per emotion with 6 s gaps of room noise: the shipped model's
    timeline (which trained on these clips: this checks the path from a file to the segments, not accuracy) finds one
    speech segment per block with the block's emotion, and each window's probabilities are the window classified
    alone."""
    folders = {"anger": "YAF_angry", "sadness": "YAF_sad", "happiness": "YAF_happy", "neutral": "YAF_neutral"}
    parts, blocks, t = [_noise(GAP_SECONDS, -65, 0)], [], GAP_SECONDS
    for k, (emotion, folder) in enumerate(folders.items()):
        files = sorted((corpora_dir / "tess" / folder).iterdir())[:4]
        audio = np.concatenate([features.load_audio(f, RATE)[0] for f in files])
        parts += [audio, _noise(GAP_SECONDS, -65, k + 1)]
        blocks.append((t, t + len(audio) / RATE, emotion))
        t += len(audio) / RATE + GAP_SECONDS
    audio = np.concatenate(parts)
    shipped = inference.Predictor.pretrained()
    timeline = shipped.timeline(audio, RATE)
    speech = [s for s in timeline.segments if s.emotion != SILENCE]
    found = [b for b in blocks if any(b[0] - 2.5 <= s.start_seconds and s.end_seconds <= b[1] + 2.5 for s in speech)]
    assert found == blocks, timeline.table()
    assert all(any(s.start_seconds < b[1] and b[0] < s.end_seconds for b in blocks) for s in speech)  # no gap's
    for start, end, emotion in blocks:
        inside = [w.emotion for w in timeline.windows if start <= w.start_seconds and w.end_seconds <= end]
        assert Counter(inside).most_common(1)[0][0] == emotion, (emotion, inside)
    spoken = [w for w in timeline.windows if not w.silent]
    alone = shipped.classify_windows([audio[round(w.start_seconds * RATE):round(w.end_seconds * RATE)]
                                      for w in spoken])
    np.testing.assert_allclose(alone, [[w.probabilities[e] for e in EMOTIONS] for w in spoken], atol=1e-5)
