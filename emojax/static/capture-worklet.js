// The microphone's audio as mono float32 chunks at the server's rate (16 kHz), posted to the page.
//
// Each render quantum (128 frames at the context's rate) is mixed down to mono and resampled with a windowed-sinc
// low-pass interpolator: output sample n is taken at input time n * rate / target, from the input samples within
// 16 zero crossings of the low-pass filter (cutoff at the lower of the two Nyquist frequencies, Blackman window).
// With equal rates it passes the samples through unchanged. Every `chunkSamples` output samples are posted as one
// Float32Array; the message "flush" posts what is left.

class CaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const { targetRate, chunkSamples } = options.processorOptions;
    this.step = sampleRate / targetRate; // input samples per output sample
    this.cutoff = Math.min(1, targetRate / sampleRate); // of the input's Nyquist frequency
    this.half = Math.ceil(16 / this.cutoff); // input samples on each side of an output sample
    this.history = new Float32Array(0); // input samples from absolute index this.base on
    this.base = 0;
    this.next = 0; // index of the next output sample
    this.chunkSamples = chunkSamples;
    this.out = new Float32Array(chunkSamples);
    this.filled = 0;
    this.port.onmessage = (event) => {
      if (event.data === "flush") {
        this.post(this.filled);
        this.port.postMessage("flushed");
      }
    };
  }

  post(count) {
    if (count > 0) {
      const chunk = this.out.slice(0, count);
      this.port.postMessage(chunk, [chunk.buffer]);
    }
    this.filled = 0;
  }

  value(t) {
    // The band-limited input at (fractional) input time t.
    const { history, base, half, cutoff } = this;
    const centre = Math.floor(t);
    let sum = 0;
    for (let k = Math.max(centre - half + 1, 0); k <= centre + half; k++) {
      const d = t - k;
      const x = cutoff * d;
      const sinc = x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x);
      const w = 0.42 + 0.5 * Math.cos((Math.PI * d) / half) + 0.08 * Math.cos((2 * Math.PI * d) / half);
      sum += history[k - base] * cutoff * sinc * w;
    }
    return sum;
  }

  process(inputs) {
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true;
    const frames = channels[0].length;
    const grown = new Float32Array(this.history.length + frames);
    grown.set(this.history);
    for (const channel of channels) {
      for (let i = 0; i < frames; i++) grown[this.history.length + i] += channel[i] / channels.length;
    }
    this.history = grown;
    const end = this.base + this.history.length; // input samples received
    while (this.next * this.step + this.half < end) {
      this.out[this.filled++] = this.value(this.next * this.step);
      this.next++;
      if (this.filled === this.chunkSamples) this.post(this.filled);
    }
    const keep = Math.max(Math.floor(this.next * this.step) - this.half, this.base);
    this.history = this.history.slice(keep - this.base);
    this.base = keep;
    return true;
  }
}

registerProcessor("emojax-capture", CaptureProcessor);
