"""The ``emojax`` command: emotions of recordings (``emojax predict``) and of a long recording over time
(``emojax timeline``), with a trained model, and a local web page that shows them live from the microphone
(``emojax serve``, ``emojax.serve``); ``emojax --help`` and ``emojax COMMAND --help`` explain every flag.

Each file that cannot be read gets one line ``error: FILE: reason`` on stderr and the other files are still
processed; the exit status is 0 when every file was processed, 1 when one failed (or an output could not be
written, or the model could not be restored) and 2 for a usage error. JAX's persistent compilation cache lives in
``$XDG_CACHE_HOME/emojax/jax`` (``~/.cache/emojax/jax``), so that a second run does not compile again;
``--no-cache`` or ``EMOJAX_NO_CACHE=1`` turn it off, and ``JAX_COMPILATION_CACHE_DIR`` moves it.

``read_audio`` and ``predict_files`` are also ``eval.py --audio``'s.
"""

from __future__ import annotations

import argparse
import errno
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the command imports JAX only once its arguments are parsed (--help and usage errors)
    import numpy as np

    from emojax.inference import Predictor

_EXAMPLES = """\
examples:
  emojax predict a.wav b.mp3                   the shipped model; one line per file: FILE<TAB>emotion<TAB>probability
  emojax predict --json a.wav                  all 8 probabilities and the windows as JSON
  emojax predict --workdir runs/a --workdir runs/b a.wav    your own trained runs, as an ensemble
  emojax timeline interview.flac --smooth 5 --csv interview.csv --plot interview.png
  emojax serve                                            the live page at http://127.0.0.1:8000/
"""


def report_failure(path: str, error: Exception) -> None:
    """Prints ``error: PATH: reason`` on stderr (the reason without the path its message may start with)."""
    reason = (error.strerror if isinstance(error, OSError) else None) or str(error)
    print(f"error: {path}: {reason.removeprefix(f'{Path(path)}: ')}", file=sys.stderr, flush=True)


def _check_input(path: str) -> None:
    """Raises ``IsADirectoryError`` for a directory (``load_audio`` would call it a missing file)."""
    if Path(path).is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a directory, not an audio file", path)


def read_audio(path: str) -> tuple[np.ndarray, int] | None:
    """``features.load_audio(path, 16 kHz)``, or None after ``report_failure`` when the file cannot be read."""
    from emojax import features

    try:
        _check_input(path)
        return features.load_audio(path, features.SAMPLE_RATE)
    except (OSError, ValueError) as e:  # features.AudioFileError is a ValueError naming the file
        report_failure(path, e)
        return None


def predict_files(predictor: Predictor, files: Sequence[str], as_json: bool, one_speaker: bool = False) -> int:
    """Prints a prediction per readable file, ``FILE<TAB>emotion<TAB>probability`` or (``as_json``) the
    ``Prediction`` as one JSON object, and an error line per other file; returns the exit status (1 if any file
    failed). With ``one_speaker`` the readable files' joint speaker statistics normalise each
    (``Predictor.speaker_statistics``)."""
    failed, speaker = 0, None

    def read(path: str) -> tuple[np.ndarray, int] | None:
        nonlocal failed
        audio = read_audio(path)
        failed += audio is None
        return audio

    # Decoded once each: all first with one_speaker (their statistics come before any prediction), else one by one.
    recordings = ((path, read(path)) for path in files)
    if one_speaker:
        recordings = [(path, audio) for path, audio in recordings if audio is not None]
        if recordings:
            speaker = predictor.speaker_statistics(audio for _, audio in recordings)
    for path, audio in recordings:
        if audio is None:
            continue
        try:
            result = predictor.predict(*audio, file=path, speaker=speaker)
        except ValueError as e:
            report_failure(path, e)
            failed += 1
            continue
        if as_json:
            print(json.dumps(result.to_dict()), flush=True)
        else:
            print(f"{path}\t{result.emotion}\t{result.probability:.3f}", flush=True)
    return 1 if failed else 0


def _number(minimum: float, inclusive: bool):
    """An argparse type: a finite number >= ``minimum`` (> when not ``inclusive``)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value) or not (value >= minimum if inclusive else value > minimum):
            raise argparse.ArgumentTypeError(f"{text} must be {'at least' if inclusive else 'more than'} {minimum:g}")
        return value
    return parse


def _parser() -> argparse.ArgumentParser:
    from emojax import timeline as silence  # the silence thresholds' defaults

    formatter = argparse.RawDescriptionHelpFormatter
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--workdir", action="append", metavar="DIR",
                        help="predict with this train.py workdir's best checkpoint instead of the model shipped "
                             "with emojax (MODEL_CARD.md); repeat it for an ensemble of runs (their probabilities "
                             "are averaged)")
    common.add_argument("--no-cache", action="store_true",
                        help="do not use JAX's compilation cache ($XDG_CACHE_HOME/emojax/jax or ~/.cache/emojax/jax, "
                             "or $JAX_COMPILATION_CACHE_DIR); EMOJAX_NO_CACHE=1 does the same")
    parser = argparse.ArgumentParser(
        prog="emojax", formatter_class=formatter, epilog=_EXAMPLES,
        description="Speech emotion recognition: the emotion of recordings (the shipped model's 8 emotions: neutral, "
                    "calm, happiness, sadness, anger, fear, disgust, surprise; a model of your own, --workdir, has its "
                    "own classes). Audio: any format libsndfile reads (WAV, FLAC, OGG, MP3, AIFF, ...), any sample "
                    "rate, any number of channels, any length.")
    from importlib.metadata import version

    parser.add_argument("--version", action="version", version=f"emojax {version('emojax')}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    predict = commands.add_parser(
        "predict", parents=[common], formatter_class=formatter, help="the emotion of each recording",
        description="Prints one line per file: FILE<TAB>emotion<TAB>probability. A recording longer than 3 s is "
                    "cut into 2.5 s windows every 1.25 s and its probabilities are their mean. A file that cannot "
                    "be read gets a line 'error: FILE: reason' on stderr; the others are still predicted (exit "
                    "status 1).",
        epilog="examples:\n  emojax predict a.wav b.mp3\n"
               "  emojax predict --json speech/*.flac > predictions.jsonl\n"
               "  emojax predict --workdir runs/demo a.wav      a model you trained (python train.py)\n")
    predict.set_defaults(parser=predict)
    predict.add_argument("files", nargs="+", metavar="FILE", help="audio files")
    predict.add_argument("--json", action="store_true",
                         help="print one JSON object per file: file, emotion, the probabilities of the model's "
                              "classes (the 8 emotions, or a fine-tuned model's own), the windows (start and end "
                              "seconds, emotion, probabilities) and the duration")
    timeline = commands.add_parser(
        "timeline", parents=[common], formatter_class=formatter, help="the emotions of a recording over time",
        description="Prints the emotions of a recording over time as a table of segments (start-end in m:ss, "
                    "emotion, mean probability): 2.5 s windows, each classified on its own, consecutive windows of "
                    "one emotion merged. Windows without speech are 'silence' and not classified. The file is "
                    "streamed: any length fits in memory.",
        epilog="examples:\n  emojax timeline interview.flac\n"
               "  emojax timeline call.wav --hop 0.5 --smooth 5 --plot call.png\n"
               "  emojax timeline podcast.mp3 --json --csv podcast.csv > podcast.json\n")
    timeline.set_defaults(parser=timeline)
    timeline.add_argument("file", metavar="FILE", help="an audio file")
    timeline.add_argument("--hop", type=_number(0, False), metavar="SECONDS",
                          help="seconds between the starts of consecutive windows (default: half a window, 1.25 s; "
                               "the last window always ends at the end)")
    timeline.add_argument("--smooth", type=_number(0, True), default=0.0, metavar="SECONDS",
                          help="average each window's probabilities with those of the speech windows whose centres "
                               "are within SECONDS/2 of its own (default 0: none); e.g. 5 for steadier segments")
    timeline.add_argument("--silence-db", type=_number(0, False), metavar="DB", default=silence.SILENCE_DB,
                          help=f"a frame more than DB decibels below the recording's loud level (the "
                               f"{silence.LOUD_PERCENTILE:g}th percentile of its frame levels) is not speech; a window "
                               f"with less than {silence.SPEECH_FRACTION:.0%}% speech frames is silence (default "
                               f"{silence.SILENCE_DB:g}; lower it, e.g. to 20, when background noise between "
                               "utterances is classified)")
    timeline.add_argument("--csv", metavar="OUT.csv",
                          help="write one row per window: start_seconds, end_seconds, emotion and the probability "
                               "of each of the model's classes (empty for silence)")
    timeline.add_argument("--json", action="store_true",
                          help="print JSON instead of the table: file, duration, hop, windows and segments")
    timeline.add_argument("--plot", metavar="OUT.png",
                          help="write a PNG of the classes' probabilities over time, the segments above them")
    serve = commands.add_parser(
        "serve", parents=[common], formatter_class=formatter,
        help="a local web page: the emotion of your voice live, and the timeline of a recording",
        description="Starts a web page on this machine: 'Listen' streams the microphone to the model and shows the "
                    "current emotion and the last minute of the model's probabilities (2.5 s windows every 0.5 s); a "
                    "recording dropped on the page gets the timeline 'emojax timeline' gives, with its segments, "
                    "CSV and JSON. Needs the serve extra: pip install \"emojax[serve]\". Everything the page "
                    "uses is served from the installed packages: it works offline.",
        epilog="examples:\n"
               "  emojax serve                                    the shipped model on http://127.0.0.1:8000/\n"
               "  emojax serve --workdir runs/a --workdir runs/b  an ensemble of two runs\n"
               "  emojax serve --host 0.0.0.0 --port 8080         reachable from other machines (no "
               "authentication:\n                                                  trusted networks only)\n")
    serve.set_defaults(parser=serve)
    serve.add_argument("--host", default="127.0.0.1",
                       help="the address to listen on (default 127.0.0.1: this machine only; browsers allow the "
                            "microphone only on localhost or HTTPS)")
    serve.add_argument("--port", type=int, default=8000, help="the port (default 8000; 0: any free port)")
    serve.add_argument("--max-upload-mb", type=_number(0, False), default=200, metavar="MB",
                       help="larger uploaded files are refused (default 200)")
    serve.add_argument("--max-minutes", type=_number(0, False), default=60, metavar="MINUTES",
                       help="longer uploaded recordings are refused (default 60)")
    serve.add_argument("--max-clients", type=int, default=8, metavar="N",
                       help="listening clients served at once; more are asked to try later (default 8)")
    return parser


def _use_compilation_cache() -> None:
    """Turns on JAX's persistent compilation cache in the user's cache directory (unless another is set)."""
    import jax

    if not jax.config.jax_compilation_cache_dir:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        path = base / "emojax" / "jax"
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            print(f"warning: cannot create the compilation cache {path} ({e.strerror}); compiling afresh "
                  "(--no-cache silences this)", file=sys.stderr, flush=True)
            return
        jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)  # the small programs add up at start


def _predictor(args: argparse.Namespace) -> Predictor:
    """The model of ``--workdir`` (an ensemble when repeated; the shipped model without it), refused when it needs
    a speaker's statistics."""
    from emojax.inference import Predictor

    if not args.workdir:
        return Predictor.pretrained()  # missing or damaged files: main prints the error, which says to reinstall
    predictor = Predictor.from_workdirs(args.workdir)
    if predictor.speaker_normalization != "none":
        args.parser.error(f"{args.workdir[0]} was trained with speaker normalisation: it needs several recordings "
                          "of the speaker; use 'python eval.py --one_speaker --workdir DIR --audio FILE ...'")
    return predictor


def _writable(path: str) -> None:
    """Raises ``OSError`` when ``path`` cannot be written (a directory, or its folder missing or read-only)."""
    target = Path(path)
    if target.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a directory; give a file name", path)
    folder = target.parent
    if not folder.is_dir():
        raise FileNotFoundError(errno.ENOENT, f"cannot write it: no folder {folder}", path)
    if not os.access(folder, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise PermissionError(errno.EACCES, "cannot write it: permission denied", path)


def _timeline(args: argparse.Namespace) -> int:
    """``emojax timeline``: the table (or JSON) on stdout, the files asked for; returns the exit status."""
    outputs = [path for path in (args.csv, args.plot) if path]
    try:
        for path in outputs:
            _writable(path)
    except OSError as e:
        report_failure(e.filename, e)
        return 1
    predictor = _predictor(args)
    try:
        _check_input(args.file)
        result = predictor.timeline_file(args.file, hop=args.hop, smooth=args.smooth, silence_db=args.silence_db)
    except (OSError, ValueError) as e:  # features.AudioFileError is a ValueError naming the file
        report_failure(args.file, e)
        return 1
    if args.json:
        print(result.to_json(), flush=True)
    else:
        smoothing = f", smoothed over {result.smooth_seconds:g} s" if result.smooth_seconds else ""
        print(f"{args.file}: {result.duration_seconds:.1f} s, {len(result.windows)} windows of "
              f"{result.window_seconds:.2f} s every {result.hop_seconds:.2f} s{smoothing}\n{result.table()}",
              flush=True)
    if result.message:
        print(f"{args.file}: {result.message}", file=sys.stderr, flush=True)
    try:
        if args.csv:
            result.to_csv(args.csv)
        if args.plot:
            result.plot(args.plot)
    except OSError as e:
        report_failure(e.filename or args.csv or args.plot, e)
        return 1
    return 0


def _serve(args: argparse.Namespace) -> int:
    """``emojax serve``: serves the page until Ctrl-C; returns the exit status."""
    try:
        from emojax import serve
    except ModuleNotFoundError as e:
        if e.name not in ("starlette", "uvicorn", "plotly"):
            raise
        print(f'error: emojax serve needs the serve extra ({e.name} is missing): pip install "emojax[serve]"',
              file=sys.stderr, flush=True)
        return 1
    if not 0 <= args.port <= 65535 or args.max_clients < 1:
        args.parser.error("--port must be 0-65535 and --max-clients at least 1")
    try:
        sock = serve.listening_socket(args.host, args.port)
    except OSError as e:
        print(f"error: cannot listen on {args.host} port {args.port}: {e.strerror or e}", file=sys.stderr, flush=True)
        return 1
    with sock:  # _predictor refuses a model trained with speaker normalisation, which create_app cannot serve
        app = serve.create_app(_predictor(args), max_upload_bytes=int(args.max_upload_mb * 2**20),
                               max_seconds=args.max_minutes * 60, max_clients=args.max_clients)
        serve.serve(app, sock)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Runs ``emojax ARGS`` (``sys.argv[1:]`` by default); returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    from absl import logging

    logging.set_verbosity(logging.WARNING)  # orbax logs every file at INFO
    if not args.no_cache and os.environ.get("EMOJAX_NO_CACHE", "") in ("", "0"):
        _use_compilation_cache()
    from emojax.checkpoints import TrainingError
    from emojax.pretrained import DamagedWeightsError

    try:
        if args.command == "predict":
            return predict_files(_predictor(args), args.files, args.json)
        if args.command == "serve":
            return _serve(args)
        return _timeline(args)
    except (FileNotFoundError, TrainingError, DamagedWeightsError) as e:  # no checkpoint or none usable; no weights
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        return 130  # 128 + SIGINT, as a shell reports it
    except BrokenPipeError:  # stdout closed early (emojax ... | head): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
