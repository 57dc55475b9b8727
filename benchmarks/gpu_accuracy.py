"""The data for ``benchmarks/accuracy.py --cache`` on a machine without the prepared corpora (e.g. a GPU machine
without TensorFlow): the same examples, splits and windows as the runs from the prepared corpora.

The prepared corpora fix each example's label, speaker and order, and the random protocol's split depends on that
order. So:

1. ``export`` (where the corpora are prepared) writes a manifest: per example its builder split, corpus, file,
   label, speaker and gender in stored order, the frame count and statistics of its stored MFCCs, and the whole MFCCs
   of one example per split and corpus, to check the recomputed ones against.
2. ``features`` (there, with the audio as ``AUDIO/<corpus>/<file>``, e.g. a copy of ``../shared/corpora``) decodes the
   manifest's files that are present and not yet cached, computes their MFCCs and pitch rows with the builders' front
   end (``features.clip_mfccs``, ``features.clip_pitch``) on JAX's CPU backend, checks them against the manifest and
   caches them; it can run on parts of the audio. On the CPU backend they equal the prepared ones exactly; on a GPU
   they differ by more than the check allows (the float products round differently), hence the CPU backend.
3. ``python benchmarks/accuracy.py --manifest M --cache C ...`` trains runs from the cache there.

    python benchmarks/gpu_accuracy.py export --data_dir DATA --manifest .gpu/manifest.npz
    python benchmarks/gpu_accuracy.py features --manifest .gpu/manifest.npz --audio ../shared/corpora --cache /tmp/mfcc
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import os
import time
from pathlib import Path

import numpy as np

from emojax import features, protocols

_STRINGS = ("split", "corpus", "path", "speaker", "gender")  # "path": a Corpus's "file" (np.savez takes "file")
_MAX_ABS_DIFF = 0.05  # recomputed MFCCs (dB-scaled cepstra, std ~5-100) must match the stored ones this closely


def export(data_dir: str, manifest: Path) -> None:
    """Writes the manifest of the four prepared corpora in ``data_dir`` (see the module docstring)."""
    from emojax import prepared  # reads TFDS: only here, not where the features are computed

    rows: dict[str, list] = {k: [] for k in (*_STRINGS, "label", "frames", "mean", "std")}
    samples = []
    for split in protocols.SPLITS:
        for name in prepared.CORPORA:
            keys = ("mfcc", "label", "corpus", "file", "speaker", "gender")
            d = prepared.load_split(name, split, data_dir, keys=keys)
            samples.append((len(rows["label"]), d["mfcc"][0]))
            rows["split"] += [split] * len(d["label"])
            for key in ("corpus", "path", "speaker", "gender", "label"):
                rows[key] += list(d["file" if key == "path" else key])
            rows["frames"] += [m.shape[1] for m in d["mfcc"]]
            rows["mean"] += [m.mean(dtype=np.float64) for m in d["mfcc"]]
            rows["std"] += [m.std(dtype=np.float64) for m in d["mfcc"]]
    manifest.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(manifest, data_dir=data_dir, **{k: np.asarray(v) for k, v in rows.items()},
                        sample_index=np.array([i for i, _ in samples]),
                        sample_mfcc=np.concatenate([m for _, m in samples], axis=1))
    print(f"{manifest}: {len(rows['label'])} examples of {', '.join(prepared.CORPORA)} from {data_dir}")


def _read_pcm(path: str) -> np.ndarray:
    """A file's samples at 16 kHz as int16, as ``recordings.read_recording`` stores them."""
    return features.to_int16(features.load_audio(path, features.SAMPLE_RATE)[0])


def compute_features(manifest: Path, audio: Path, cache: Path) -> None:
    """Caches the MFCCs and pitch rows of the manifest's files present under ``audio`` and not cached yet, computed on
    the CPU and checked against the manifest: the same frame counts, per-clip mean and std, and the whole sample
    clips within ``_MAX_ABS_DIFF``."""
    import jax

    jax.config.update("jax_platforms", "cpu")  # before any computation: the prepared MFCCs were computed on a CPU
    m = np.load(manifest)
    cache.mkdir(parents=True, exist_ok=True)
    done: set[int] = set()
    for part in cache.glob("part-*.npz"):
        with np.load(part) as d:
            done.update(int(i) for i in d["index"])
    paths = {i: audio / c / f for i, (c, f) in enumerate(zip(m["corpus"], m["path"])) if i not in done}
    todo = [i for i, p in paths.items() if p.is_file()]
    if not todo:
        print(f"nothing to do: {len(done)} cached, none of the other {len(paths)} files under {audio}")
        return
    started = time.perf_counter()
    spawn = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(os.cpu_count(), mp_context=spawn) as pool:
        clips = list(pool.map(_read_pcm, [str(paths[i]) for i in todo], chunksize=32))
    decoded = time.perf_counter() - started
    mfccs = features.clip_mfccs(clips)
    pitches = features.clip_pitch(clips)
    seconds = time.perf_counter() - started
    frames = np.array([x.shape[1] for x in mfccs])
    bad = np.flatnonzero(frames != m["frames"][todo])
    if bad.size:
        first = todo[bad[0]]
        raise ValueError(f"{bad.size} clips have other frame counts than the prepared ones, e.g. {paths[first]}: "
                         f"{frames[bad[0]]} against {m['frames'][first]}; is {audio} the audio {manifest} was exported "
                         "from?")
    mean_diff = np.abs([x.mean(dtype=np.float64) for x in mfccs] - m["mean"][todo]).max()
    std_diff = np.abs([x.std(dtype=np.float64) for x in mfccs] - m["std"][todo]).max()
    samples = np.split(m["sample_mfcc"], np.cumsum(m["frames"][m["sample_index"]])[:-1], axis=1)
    position = {i: k for k, i in enumerate(todo)}
    sample_diff = max((np.abs(mfccs[position[i]] - s).max() for i, s in zip(m["sample_index"], samples)
                       if i in position), default=float("nan"))
    print(f"MFCCs and pitch rows of {len(todo)} clips in {seconds:.1f} s ({decoded:.1f} s decoding, "
          f"{os.cpu_count()} processes; "
          f"{jax.devices()[0].platform}); against the prepared ones: frames equal, per-clip mean and std within "
          f"{mean_diff:.2e} / {std_diff:.2e}, sample clips within {sample_diff:.2e}", flush=True)
    if max(mean_diff, std_diff, np.nan_to_num(sample_diff)) > _MAX_ABS_DIFF:
        raise ValueError(f"the recomputed MFCCs differ from the prepared ones by more than {_MAX_ABS_DIFF}")
    np.savez(cache / f"part-{len(list(cache.glob('part-*.npz'))):02d}.npz", index=np.array(todo), frames=frames,
             mfcc=np.concatenate(mfccs, axis=1), pitch=np.concatenate(pitches, axis=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("export", help="write the manifest of the prepared corpora (needs TFDS)")
    p.add_argument("--data_dir", required=True, help="TFDS data dir with the four prepared corpora")
    p.add_argument("--manifest", type=Path, required=True)
    p = commands.add_parser("features", help="cache the MFCCs and pitch rows of the audio files present")
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument("--audio", type=Path, required=True, help="folder of <corpus>/<file> as in the manifest")
    p.add_argument("--cache", type=Path, required=True)
    args = parser.parse_args()
    if args.command == "export":
        export(args.data_dir, args.manifest)
    else:
        compute_features(args.manifest, args.audio, args.cache)


if __name__ == "__main__":
    main()
