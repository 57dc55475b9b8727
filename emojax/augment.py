"""On-device augmentation (pure ``jax.numpy``, jit-safe, per example) of input windows and of waveforms.

Input windows: ``random_crop`` and ``spec_augment`` take a PRNG key and a batch of inputs ``{name: (B, R, frames)}``
(``input_pipeline.Inputs``: the MFCC rows and, with pitch, the pitch rows of the same frames) and return a new batch in
which every input of an example is transformed alike (the same crop, the same masked frames).

Waveforms: the other functions take a batch ``x`` (B, samples) float32 at ``audio.SAMPLE_RATE`` (16 kHz), values in
[-1, 1], and ``lengths`` (B,) int32, each clip's valid samples (the rest is zero); each draws its parameters, if
any, per clip and keeps every sample at or beyond a clip's (new) length zero. ``augment_waveforms`` applies those a
config enables (its ``wave_*`` fields).

The trainer derives the keys from (seed, epoch, step), so augmentation is deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import scipy.fft

from emojax.audio import SAMPLE_RATE

Batch = dict[str, jnp.ndarray]


def random_crop(key: jax.Array, x: Batch, frames: int) -> Batch:
    """Crop every input of each example to the same ``frames`` frames at a uniformly random start.

    x: ``{name: (B, R, W)}`` with W >= frames -> ``{name: (B, R, frames)}``.
    """
    batch, width = next(iter(x.values())).shape[::2]
    if width < frames:
        raise ValueError(f"cannot crop {frames} frames out of windows of {width}")
    starts = jax.random.randint(key, (batch,), 0, width - frames + 1)

    def crop(rows: jnp.ndarray) -> jnp.ndarray:
        return jax.vmap(lambda row, start: jax.lax.dynamic_slice(row, (0, start), (row.shape[0], frames)))(
            rows, starts)

    return {name: crop(rows) for name, rows in x.items()}


def _masks(key: jax.Array, batch: int, size: int, count: int, max_width: int) -> jnp.ndarray:
    """(batch, size) bool: the union of ``count`` random bands of width 0..max_width per example."""
    width_key, start_key = jax.random.split(key)
    widths = jax.random.randint(width_key, (batch, count, 1), 0, max_width + 1)
    starts = jax.random.randint(start_key, (batch, count, 1), 0, size) - widths // 2
    positions = jnp.arange(size)[None, None, :]
    return ((positions >= starts) & (positions < starts + widths)).any(axis=1)


def spec_augment(key: jax.Array, x: Batch, *, freq_masks: int, max_freq_width: int, time_masks: int,
                 max_time_width: int) -> Batch:
    """SpecAugment-style masking (Park et al. 2019) of input windows: masked values become 0 (the mean).

    x: ``{"mfcc": (B, H, W), ...}`` -> the same shapes with, per example, ``freq_masks`` bands of up to
    ``max_freq_width`` MFCC coefficients and ``time_masks`` bands of up to ``max_time_width`` frames set to zero;
    the masked frames are masked in every input (other inputs, such as the pitch rows, are masked in time only).
    """
    batch, height, width = x["mfcc"].shape
    freq_key, time_key = jax.random.split(key)
    in_time = jnp.zeros((batch, 1, width), bool)
    if time_masks:
        in_time = _masks(time_key, batch, width, time_masks, max_time_width)[:, None, :]
    in_freq = jnp.zeros((batch, height, 1), bool)
    if freq_masks:
        in_freq = _masks(freq_key, batch, height, freq_masks, max_freq_width)[:, :, None]
    return {name: jnp.where((in_freq | in_time) if name == "mfcc" else in_time, jnp.zeros((), rows.dtype), rows)
            for name, rows in x.items()}


NOISE_KINDS = ("white", "pink", "babble")
_TINY = 1e-20  # power floor: a silent clip gets no noise and no rescaling instead of 0 / 0
_LN_1000 = math.log(1000.0)  # amplitude decay (60 dB) over one RT60
_PINK_LOW_HZ = 20.0  # pink noise has no power below this (inaudible rumble that would dominate a short clip's power)
_SINC_ZEROS = 16  # zero crossings on each side of speed_perturb's windowed sinc
_SINC_ROLLOFF = 0.95  # its cut-off, as a fraction of the lower of the input's and output's Nyquist frequencies
_STRETCH_FFT = 1024  # pitch_shift's phase vocoder: 64-ms frames at 16 kHz, hops of a quarter of that
_BAND_EDGE_HZ = 100.0  # width of band_limit's raised-cosine transitions, outside the pass band


def _valid(x: jnp.ndarray, lengths: jnp.ndarray) -> jnp.ndarray:
    """(B, samples) bool: True at each clip's valid samples."""
    return jnp.arange(x.shape[-1]) < lengths[:, None]


def _power(x: jnp.ndarray, lengths: jnp.ndarray) -> jnp.ndarray:
    """(B, 1) mean square of each clip over its valid samples (x is zero beyond them)."""
    return jnp.sum(jnp.square(x), axis=-1, keepdims=True) / jnp.maximum(lengths[:, None], 1)


def _uniform(key: jax.Array, batch: int, bounds: Sequence[float]) -> jnp.ndarray:
    """(batch, 1) float32 uniform in [low, high] (exactly low when they are equal)."""
    return jax.random.uniform(key, (batch, 1), minval=bounds[0], maxval=bounds[1])


def _below(key: jax.Array, shape: tuple[int, ...], n: int | jnp.ndarray) -> jnp.ndarray:
    """int32 uniform in [0, n), n (broadcast to ``shape``) up to 2**24: ``jax.random.randint`` compiles to several
    times the code, and the train step compiles each draw."""
    return jnp.minimum(jnp.floor(jax.random.uniform(key, shape) * n), n - 1).astype(jnp.int32)


def random_gain(key: jax.Array, x: jnp.ndarray, max_db: float) -> jnp.ndarray:
    """Each clip scaled by a gain uniform in [-max_db, max_db] dB: (B, samples) -> (B, samples).

    Nothing is clipped: the gain is the level the front end sees, not a recording's overload (``hard_clip``)."""
    return x * 10.0 ** (_uniform(key, x.shape[0], (-max_db, max_db)) / 20.0)


def _pink_gains(n_fft: int, sample_rate: int) -> np.ndarray:
    """(n_fft // 2 + 1,) float32 amplitudes of power 1/f (-3 dB per octave) above ``_PINK_LOW_HZ``, 0 below."""
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    return np.where(freqs >= _PINK_LOW_HZ, 1.0 / np.sqrt(np.maximum(freqs, _PINK_LOW_HZ)), 0.0).astype(np.float32)


def _babble(key: jax.Array, x: jnp.ndarray, lengths: jnp.ndarray, talkers: Sequence[int]) -> jnp.ndarray:
    """(B, samples): for each clip, the sum of talkers[0]..talkers[1] (at most B - 1) other clips of the batch, the same
    rolls of the batch for all, each at unit power and circularly shifted by a random amount within its own valid
    length (so repeated when shorter)."""
    batch, samples = x.shape
    if batch < 2:
        raise ValueError("babble noise is made of the other clips of the batch, and this batch has one clip: use "
                         "batches of at least 2 clips, or leave 'babble' out of the noise kinds")
    low, high = min(int(talkers[0]), batch - 1), min(int(talkers[1]), batch - 1)
    roll_key, count_key, shift_key = jax.random.split(key, 3)
    rolls = 1 + jnp.argsort(jax.random.uniform(roll_key, (batch - 1,)))[:high]  # distinct, so distinct other clips
    sources = (jnp.arange(batch)[:, None] + rolls) % batch  # (B, high)
    source_lengths = jnp.maximum(lengths[sources], 1)
    shifts = _below(shift_key, (batch, high), source_lengths)
    scales = jax.lax.rsqrt(jnp.maximum(_power(x, lengths)[sources, 0], _TINY))
    scales = jnp.where(jnp.arange(high) < low + _below(count_key, (batch, 1), high - low + 1), scales, 0.0)
    babble = jnp.zeros_like(x)
    for talker in range(high):  # one (B, samples) gather at a time: B * high * samples indices at once is large
        positions = (jnp.arange(samples) + shifts[:, talker, None]) % source_lengths[:, talker, None]
        babble += scales[:, talker, None] * x[sources[:, talker, None], positions]
    return babble


def add_noise(key: jax.Array, x: jnp.ndarray, lengths: jnp.ndarray, *, snr_db: Sequence[float] = (5.0, 20.0),
              kinds: Sequence[str] = NOISE_KINDS, babble_talkers: Sequence[int] = (3, 5),
              sample_rate: int = SAMPLE_RATE) -> jnp.ndarray:
    """Noise added to each clip's valid samples at a signal-to-noise ratio uniform in ``snr_db`` (dB; the signal: the
    clip's mean power over its valid samples), of a kind drawn per clip among ``kinds``:

    - ``"white"``: Gaussian, the inverse FFT of a Gaussian spectrum;
    - ``"pink"``: that spectrum shaped to power 1/f above 20 Hz (-3 dB per octave), 0 below;
    - ``"babble"``: the sum of ``babble_talkers`` (low, high; at most B - 1) other clips of the batch, each at unit
      power and circularly shifted within its own valid length: speech-like noise made of training clips.

    (B, samples) -> (B, samples); a silent clip stays silent. Cost: each kind in ``kinds`` is made for every clip
    (an inverse FFT for white and for pink, ``babble_talkers[1]`` gathers for babble), then one per clip is kept.
    """
    if not kinds or len(set(kinds)) < len(kinds) or not set(kinds) <= set(NOISE_KINDS):
        raise ValueError(f"noise kinds must be distinct names among {NOISE_KINDS}, at least one, got {tuple(kinds)}")
    kind_key, snr_key, spectrum_key, babble_key = jax.random.split(key, 4)
    # White and pink noise share one draw (a clip gets one of them): drawing costs more than an inverse FFT.
    batch, samples = x.shape
    n_fft = scipy.fft.next_fast_len(samples, real=True)
    spectrum = jax.random.normal(spectrum_key, (batch, n_fft // 2 + 1), jnp.complex64)
    makers: dict[str, Callable[[], jnp.ndarray]] = {
        "white": lambda: jnp.fft.irfft(spectrum, n_fft)[:, :samples],
        "pink": lambda: jnp.fft.irfft(spectrum * _pink_gains(n_fft, sample_rate), n_fft)[:, :samples],
        "babble": lambda: _babble(babble_key, x, lengths, babble_talkers)}
    noises = [makers[kind]() for kind in kinds]
    chosen = _below(kind_key, (batch, 1), len(kinds))
    noise = noises[0]
    for index, other in enumerate(noises[1:], 1):
        noise = jnp.where(chosen == index, other, noise)
    noise = jnp.where(_valid(x, lengths), noise, 0.0)
    snr = 10.0 ** (_uniform(snr_key, batch, snr_db) / 10.0)
    return x + noise * jnp.sqrt(_power(x, lengths) / (snr * jnp.maximum(_power(noise, lengths), _TINY)))


def speed_perturb(key: jax.Array, x: jnp.ndarray, lengths: jnp.ndarray, factors: Sequence[float] = (0.9, 1.1)
                  ) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Speed perturbation as Kaldi's (sox ``speed``): each clip played ``factor`` times as fast, uniform in
    ``factors``, tempo and pitch together. Output sample n is the clip at time n * factor, so a clip of L samples
    becomes ceil(L / factor) (cut at ``samples``; the rest is zeros) and a tone of f Hz becomes f * factor Hz.

    Interpolation: a Hann-windowed sinc of 16 zero crossings a side, cut off at 0.95 of the lower of the input's and
    output's Nyquist frequencies, so a faster clip is low-passed, not aliased: flat within 0.1 dB up to 0.86 of that
    frequency (6.9 kHz of a 16 kHz clip at factors <= 1), 3 dB down at 0.93, 40 dB down from 1.05. Cost:
    2 * ceil(16 * max(1, factors[1]) / 0.95 - 0.5) + 1 taps (39 up to 1.1), each a gather and a few multiply-adds
    per output sample (the sines are taken once per output sample).

    Returns the new x (B, samples) and lengths (B,) int32.
    """
    return _resample(x, lengths, _uniform(key, x.shape[0], factors), factors[1])


def _resample(x: jnp.ndarray, lengths: jnp.ndarray, factor: jnp.ndarray, max_factor: float
              ) -> tuple[jnp.ndarray, jnp.ndarray]:
    """``speed_perturb`` at the given factors (B, 1), each at most ``max_factor``: (B, samples) -> (B, samples) and
    the new lengths (B,) int32."""
    samples = x.shape[-1]
    cutoff = _SINC_ROLLOFF * jnp.minimum(1.0, 1.0 / factor)  # (B, 1), fraction of the input's Nyquist frequency
    reach = math.ceil(_SINC_ZEROS * max(1.0, max_factor) / _SINC_ROLLOFF - 0.5)  # taps on each side
    # n * factor = n + n * (factor - 1): the nearest input sample and the distance to it, in [-0.5, 0.5] (exact to
    # the float32 rounding of the small term, under 3e-4 samples at 3.5 s), so that only the tap at distance 0 can
    # come near a zero of the sinc's denominator.
    offset = jnp.arange(samples, dtype=jnp.float32) * (factor - 1.0)
    nearest = jnp.round(offset)
    fraction = offset - nearest
    start = jnp.arange(samples) + nearest.astype(jnp.int32) + reach
    padded = jnp.pad(x, ((0, 0), (reach, reach + 1)))  # zeros, where indices past either end are clamped
    # sin(pi * u) and the Hann window's cos(pi * u / zeros) at u = cutoff * (fraction - tap), from the sines of the
    # two terms: four sines per output sample instead of two per tap.
    phase = jnp.pi * cutoff * fraction
    sin_f, cos_f = jnp.sin(phase), jnp.cos(phase)
    sin_w, cos_w = jnp.sin(phase / _SINC_ZEROS), jnp.cos(phase / _SINC_ZEROS)
    y = jnp.zeros_like(x)
    for tap in range(-reach, reach + 1):
        u = cutoff * (fraction - tap)  # (B, samples): distance in zero crossings
        tap_phase = jnp.pi * cutoff * tap  # (B, 1)
        sin_u = sin_f * jnp.cos(tap_phase) - cos_f * jnp.sin(tap_phase)
        window = 0.5 + 0.5 * (cos_w * jnp.cos(tap_phase / _SINC_ZEROS) + sin_w * jnp.sin(tap_phase / _SINC_ZEROS))
        sinc = jnp.where(u == 0, 1.0, sin_u / jnp.where(u == 0, 1.0, jnp.pi * u))
        weight = jnp.where(jnp.abs(u) < _SINC_ZEROS, cutoff * sinc * window, 0.0)
        y += weight * jnp.take_along_axis(padded, start + tap, axis=1, mode="clip")
    lengths = jnp.minimum(jnp.ceil(lengths / factor[:, 0]), samples).astype(jnp.int32)
    return jnp.where(_valid(y, lengths), y, 0.0), lengths


def _stretch(x: jnp.ndarray, rate: jnp.ndarray, out_samples: int) -> jnp.ndarray:
    """Phase-vocoder time stretch (Flanagan and Golden 1966; librosa's ``phase_vocoder``): each clip played ``rate``
    times as long, pitch kept. Output frame j takes the magnitudes interpolated at input time j / rate and a phase
    advanced by each bin's frequency as measured between the two input frames around that time (Hann frames of
    ``_STRETCH_FFT`` samples, hops of a quarter of that). At rate 1 it gives x back to float32 rounding (1e-4 of
    full scale), but for the last 48 ms before an abrupt end (5e-3: bins whose phase was lost in the float32 noise
    floor). Without phase locking, as librosa's, bins keep the relative phases they had at the start: a stretched tone
    is steady but up to ~10 % quieter (``pitch_shift`` restores the level), and speech sounds a little phasey.
    x (B, samples), rate (B, 1) -> (B, out_samples); past samples * rate it holds the last frame's spectrum."""
    batch, samples = x.shape
    n_fft, hop = _STRETCH_FFT, _STRETCH_FFT // 4
    window = np.hanning(n_fft + 1)[:-1].astype(np.float32)  # periodic: squares summing to 1.5 at a hop of n_fft / 4
    lead = n_fft - hop  # frame j starts at sample j * hop - lead, so that four frames cover every sample
    blocks = -(-(samples + 2 * lead) // hop)
    padded = jnp.pad(x, ((0, 0), (lead, blocks * hop - samples - lead))).reshape(batch, blocks, hop)
    frames = jnp.concatenate([padded[:, i:blocks - 3 + i] for i in range(4)], axis=-1)  # (B, T, n_fft)
    spectra = jnp.fft.rfft(frames * window, axis=-1)  # (B, T, bins)
    count = spectra.shape[1]
    out_frames = -(-(out_samples + lead) // hop)
    # Frame j is centred on sample (j - 1) * hop; output frame j reads the input at (j - 1) / rate frames from there.
    position = jnp.clip(1.0 + (jnp.arange(out_frames) - 1.0) / rate, 0.0, count - 1.0)  # (B, out_frames)
    before = jnp.minimum(jnp.floor(position).astype(jnp.int32), count - 2)
    after_weight = (position - before)[..., None]
    take = lambda a, i: jnp.take_along_axis(a, i[..., None], axis=1)  # noqa: E731  (B, out_frames, bins)
    magnitude = jnp.abs(spectra)
    unit = spectra / jnp.maximum(magnitude, _TINY)  # phasors: products of two faint bins' spectra would underflow
    first, second = take(unit, before), take(unit, before + 1)
    magnitude = (1.0 - after_weight) * take(magnitude, before) + after_weight * take(magnitude, before + 1)
    # Bin k advances by its own frequency, 2 pi k hop / n_fft = (pi / 2) k a hop, times i ** k, exactly; plus the
    # deviation from it measured between the two input frames, in [-pi, pi], summed over the output frames. The phase
    # starts at the first input frame's.
    quarter_turns = np.arange(n_fft // 2 + 1) % 4
    deviation = jnp.angle(second * jnp.conj(first) * (1j ** -quarter_turns).astype(np.complex64))
    deviation = jnp.concatenate([jnp.zeros_like(deviation[:, :1]), jnp.cumsum(deviation[:, :-1], axis=1)], axis=1)
    advance = (1j ** ((np.arange(out_frames)[:, None] * quarter_turns) % 4)).astype(np.complex64)  # (out_frames, bins)
    out = magnitude * unit[:, :1] * advance * jnp.exp(1j * deviation)
    out = jnp.fft.irfft(out, n_fft, axis=-1) * (window / 1.5)  # (B, out_frames, n_fft)
    out = out.reshape(batch, out_frames, 4, hop)
    added = sum(jnp.pad(out[:, :, i], ((0, 0), (i, 3 - i), (0, 0))) for i in range(4))  # overlap-add, in hops
    return added.reshape(batch, -1)[:, lead:lead + out_samples]


def pitch_shift(key: jax.Array, x: jnp.ndarray, lengths: jnp.ndarray, semitones: Sequence[float] = (-2.0, 2.0)
                ) -> jnp.ndarray:
    """Each clip's pitch (and spectral envelope, as librosa's ``pitch_shift``) raised by a number of semitones
    uniform in ``semitones`` (negative: lowered), its tempo and length kept: a tone of f Hz becomes
    f * 2 ** (semitones / 12) Hz. The clip is time-stretched by that factor r (``_stretch``: a phase vocoder of 64-ms
    frames, 16-ms hops), then played r times as fast (``speed_perturb``'s interpolation), and rescaled to its RMS.

    (B, samples) -> (B, samples), cut at each clip's length. Cost: two real FFTs per 16-ms hop of the stretched clip
    and ``speed_perturb``'s taps per sample, of samples * 2 ** (semitones[1] / 12) samples.
    """
    samples = x.shape[-1]
    factor = 2.0 ** (_uniform(key, x.shape[0], semitones) / 12.0)  # (B, 1)
    max_factor = 2.0 ** (float(semitones[1]) / 12.0)
    stretched_samples = max(samples, math.ceil(samples * max_factor))
    stretched = _stretch(x, factor, stretched_samples)
    stretched_lengths = jnp.minimum(jnp.ceil(lengths * factor[:, 0]), stretched_samples).astype(jnp.int32)
    stretched = jnp.where(_valid(stretched, stretched_lengths), stretched, 0.0)
    y = _resample(stretched, stretched_lengths, factor, max_factor)[0][:, :samples]
    y = jnp.where(_valid(y, lengths), y, 0.0)
    return y * jnp.sqrt(_power(x, lengths) / jnp.maximum(_power(y, lengths), _TINY))


def reverberate(key: jax.Array, x: jnp.ndarray, lengths: jnp.ndarray, *, rt60: Sequence[float] = (0.2, 0.8),
                drr_db: Sequence[float] = (0.0, 10.0), sample_rate: int = SAMPLE_RATE) -> jnp.ndarray:
    """Each clip convolved with a synthetic room impulse response: a unit direct path at t = 0, then Gaussian noise
    decaying exponentially by 60 dB in RT60 seconds (uniform in ``rt60``), scaled so that the direct-to-reverberant
    energy ratio is uniform in ``drr_db`` (dB). The responses last rt60[1] s (to -60 dB; at most ``samples``).

    The result is rescaled to the clip's RMS and cut at its length, which does not change: the tail past the last
    valid sample is dropped (the corpora's clips end in a pause, where most of it falls).
    (B, samples) -> (B, samples). Cost: three real FFTs of next_fast_len(samples + rt60[1] * sample_rate) per clip.
    """
    batch, samples = x.shape
    taps = min(max(math.ceil(rt60[1] * sample_rate), 2), samples)
    rt60_key, drr_key, noise_key = jax.random.split(key, 3)
    decay = _LN_1000 / (_uniform(rt60_key, batch, rt60) * sample_rate)  # (B, 1) per sample
    tail = jax.random.normal(noise_key, (batch, taps - 1)) * jnp.exp(-decay * jnp.arange(1, taps))
    tail *= jnp.sqrt(10.0 ** (-_uniform(drr_key, batch, drr_db) / 10.0) / jnp.sum(jnp.square(tail), -1, keepdims=True))
    response = jnp.concatenate([jnp.ones((batch, 1), x.dtype), tail], axis=1)
    n_fft = scipy.fft.next_fast_len(samples + taps - 1, real=True)
    y = jnp.fft.irfft(jnp.fft.rfft(x, n_fft) * jnp.fft.rfft(response, n_fft), n_fft)[:, :samples]
    y = jnp.where(_valid(x, lengths), y, 0.0)
    return y * jnp.sqrt(_power(x, lengths) / jnp.maximum(_power(y, lengths), _TINY))


def band_limit(x: jnp.ndarray, lengths: jnp.ndarray, *, low_hz: float = 300.0, high_hz: float = 3400.0,
               sample_rate: int = SAMPLE_RATE) -> jnp.ndarray:
    """A zero-phase band-pass in the FFT domain, by default the telephone band: gain 1 from ``low_hz`` to
    ``high_hz``, falling to 0 by raised-cosine transitions 100 Hz wide outside it (0 below low_hz - 100 Hz and above
    high_hz + 100 Hz). (B, samples) -> (B, samples), cut at each clip's length. Cost: two real FFTs per clip."""
    samples = x.shape[-1]
    n_fft = scipy.fft.next_fast_len(samples + round(8 * sample_rate / _BAND_EDGE_HZ), real=True)  # ringing: no wrap
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    outside = np.maximum(low_hz - freqs, freqs - high_hz) / _BAND_EDGE_HZ  # <= 0 in the band, >= 1 beyond the edges
    gain = (0.5 + 0.5 * np.cos(np.pi * np.clip(outside, 0.0, 1.0))).astype(np.float32)
    y = jnp.fft.irfft(jnp.fft.rfft(x, n_fft) * gain, n_fft)[:, :samples]
    return jnp.where(_valid(x, lengths), y, 0.0)


def hard_clip(key: jax.Array, x: jnp.ndarray, drive_db: Sequence[float] = (0.0, 20.0)) -> jnp.ndarray:
    """An overloaded recording: each clip scaled so that its peak is ``drive`` dB above full scale (uniform in
    ``drive_db``), then clipped at ±1. (B, samples) -> (B, samples), peak 1 (0 for a silent clip)."""
    peak = jnp.max(jnp.abs(x), axis=-1, keepdims=True)
    drive = 10.0 ** (_uniform(key, x.shape[0], drive_db) / 20.0)
    return jnp.clip(x * (drive / jnp.maximum(peak, _TINY)), -1.0, 1.0)


_PROBABILITIES = ("wave_reverb_prob", "wave_noise_prob", "wave_telephone_prob", "wave_clip_prob")
_RANGES: dict[str, tuple[str, Callable[[float, float], bool]]] = {  # field: (its rule, the rule)
    "wave_speed": ("0 < low <= high", lambda low, high: 0 < low <= high),
    "wave_pitch_semitones": ("-12 <= low <= high <= 12", lambda low, high: -12 <= low <= high <= 12),
    "wave_reverb_rt60": ("0 < low <= high (seconds)", lambda low, high: 0 < low <= high),
    "wave_reverb_drr_db": ("low <= high (dB)", lambda low, high: low <= high),
    "wave_noise_snr_db": ("low <= high (dB)", lambda low, high: low <= high),
    "wave_babble_talkers": ("whole numbers 1 <= low <= high",
                            lambda low, high: low == int(low) and high == int(high) and 1 <= low <= high),
    "wave_clip_drive_db": ("0 <= low <= high (dB)", lambda low, high: 0 <= low <= high),
}


def _range(config: ml_collections.ConfigDict, name: str) -> tuple[float, float]:
    """``config.<name>`` as (low, high) floats, or a ValueError saying what it must be."""
    rule, holds = _RANGES[name]
    value = config[name]
    try:
        low, high = (float(v) for v in value)
        valid = math.isfinite(low) and math.isfinite(high) and holds(low, high)
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise ValueError(f"config.{name} must be a pair (low, high) of numbers with {rule}, got {value!r}")
    return low, high


def check_waveform_config(config: ml_collections.ConfigDict) -> None:
    """A ValueError naming the first ``wave_*`` field of ``config`` that ``augment_waveforms`` cannot use, and the
    values it may take."""
    for name in _PROBABILITIES:
        if not 0.0 <= config[name] <= 1.0:
            raise ValueError(f"config.{name} must be a probability in [0, 1] (0: off), got {config[name]!r}")
    if not 0.0 <= config.wave_gain_db < math.inf:
        raise ValueError(f"config.wave_gain_db must be a number of dB >= 0 (0: off), got {config.wave_gain_db!r}")
    for name in _RANGES:
        _range(config, name)
    kinds = config.wave_noise_kinds
    if (isinstance(kinds, str) or any(kind not in NOISE_KINDS for kind in kinds) or len(set(kinds)) < len(kinds)
            or (config.wave_noise_prob and not kinds)):
        raise ValueError(f"config.wave_noise_kinds must be distinct names among {NOISE_KINDS} (at least one when "
                         f"config.wave_noise_prob > 0), got {kinds!r}")


def waveform_augmentations(config: ml_collections.ConfigDict) -> tuple[str, ...]:
    """The names of the waveform augmentations ``config`` turns on, in ``augment_waveforms``' order."""
    on = {"speed": tuple(config.wave_speed) != (1.0, 1.0), "pitch": tuple(config.wave_pitch_semitones) != (0.0, 0.0),
          "reverberation": config.wave_reverb_prob > 0,
          "noise": config.wave_noise_prob > 0, "telephone band": config.wave_telephone_prob > 0,
          "clipping": config.wave_clip_prob > 0, "gain": config.wave_gain_db > 0}
    return tuple(name for name, enabled in on.items() if enabled)


def _sometimes(key: jax.Array, probability: float, augmentation: Callable[[jax.Array], jnp.ndarray],
               x: jnp.ndarray) -> jnp.ndarray:
    """``augmentation(key)`` for a share ``probability`` of the clips (drawn per clip), x for the others."""
    choice_key, key = jax.random.split(key)
    y = augmentation(key)
    if probability >= 1.0:
        return y
    return jnp.where(jax.random.uniform(choice_key, (x.shape[0], 1)) < probability, y, x)


def augment_waveforms(key: jax.Array, x: jnp.ndarray, lengths: jnp.ndarray, config: ml_collections.ConfigDict
                      ) -> tuple[jnp.ndarray, jnp.ndarray]:
    """The waveform augmentations the ``wave_*`` fields of ``config`` enable, in this order: speed perturbation, pitch
    shift, reverberation, noise, telephone band, clipping, gain (the speaker, the room, noise in it, the line, an
    overloaded recorder, the recording's level). Each has its own sub-key, so enabling one does not change another's
    draws; one with a probability applies to that share of the clips, drawn per clip.

    x (B, samples) float32 at 16 kHz, lengths (B,) int32 -> the same; only the speed changes lengths, and babble is
    made of the batch as speed and reverberation left it. Peaks may pass ±1 after the gain (a level, not an
    overload). An augmentation that is off (probability 0, speed (1, 1), pitch (0, 0), gain 0) is not traced; with
    all of them off, (x, lengths) come back as they are. Raises ValueError (``check_waveform_config``) for a field it
    cannot use.
    """
    check_waveform_config(config)
    speed_key, reverb_key, noise_key, telephone_key, clip_key, gain_key, pitch_key = jax.random.split(key, 7)
    if _range(config, "wave_speed") != (1.0, 1.0):
        x, lengths = speed_perturb(speed_key, x, lengths, _range(config, "wave_speed"))
    if _range(config, "wave_pitch_semitones") != (0.0, 0.0):
        x = pitch_shift(pitch_key, x, lengths, _range(config, "wave_pitch_semitones"))
    if config.wave_reverb_prob:
        x = _sometimes(reverb_key, config.wave_reverb_prob, lambda k: reverberate(
            k, x, lengths, rt60=_range(config, "wave_reverb_rt60"), drr_db=_range(config, "wave_reverb_drr_db")), x)
    if config.wave_noise_prob:
        x = _sometimes(noise_key, config.wave_noise_prob, lambda k: add_noise(
            k, x, lengths, snr_db=_range(config, "wave_noise_snr_db"), kinds=tuple(config.wave_noise_kinds),
            babble_talkers=_range(config, "wave_babble_talkers")), x)
    if config.wave_telephone_prob:
        x = _sometimes(telephone_key, config.wave_telephone_prob, lambda k: band_limit(x, lengths), x)
    if config.wave_clip_prob:
        x = _sometimes(clip_key, config.wave_clip_prob,
                       lambda k: hard_clip(k, x, _range(config, "wave_clip_drive_db")), x)
    if config.wave_gain_db:
        x = random_gain(gain_key, x, config.wave_gain_db)
    return x, lengths
