// Jitter buffer for the streamed audio: frames are pushed as they arrive from the network and
// pulled by the audio clock in small blocks. Plain code with no Web Audio calls, so the
// AudioWorklet and the ScriptProcessor fallback share it (and tests can drive it directly).
//
// Policy:
// * Playback starts (and restarts after an underrun) only once `prebuffer` samples are
//   queued, so ordinary network jitter does not click.
// * On underrun the rest of the block is silence and the buffer re-primes: counted.
// * If more than `maxBuffered` samples pile up (the daemon's clock runs faster than the sound
//   card's, or the tab was in the background), the oldest are dropped down to `prebuffer`,
//   so latency stays bounded: counted.

export class JitterBuffer {
  constructor(capacity, { prebuffer, maxBuffered }) {
    if (!(prebuffer > 0 && maxBuffered > prebuffer && capacity > maxBuffered)) {
      throw new Error("JitterBuffer needs 0 < prebuffer < maxBuffered < capacity");
    }
    this.buf = new Float32Array(capacity);
    this.capacity = capacity;
    this.prebuffer = prebuffer;
    this.maxBuffered = maxBuffered;
    // Frame bookkeeping: [end (cumulative sample index), voiced, requestId] per queued frame.
    this.frames = [];
    this.written = 0; // cumulative samples pushed
    this.readPos = 0; // cumulative samples pulled or dropped
    this.playing = false;
    this.resetCounters();
  }

  resetCounters() {
    this.counters = {
      framesReceived: 0,
      voicedFramesReceived: 0,
      samplesReceived: 0,
      framesPlayed: 0,
      voicedFramesPlayed: 0,
      samplesPlayed: 0,
      voicedSamplesPlayed: 0,
      framesDropped: 0,
      samplesDropped: 0,
      underruns: 0,
    };
    this.playedByRequest = new Map(); // requestId -> voiced samples played (recent ids only)
    this.levelSum = 0;
    this.levelPeak = 0;
    this.levelCount = 0;
    this.currentRequest = "";
  }

  get buffered() {
    return this.written - this.readPos;
  }

  // Forget queued audio (e.g. after a reconnect); counters keep running.
  clear() {
    this.readPos = this.written;
    this.frames.length = 0;
    this.playing = false;
  }

  push(pcm, voiced, requestId) {
    let samples = pcm;
    if (samples.length > this.maxBuffered) samples = samples.subarray(samples.length - this.maxBuffered);
    const n = samples.length;
    const c = this.counters;
    c.framesReceived += 1;
    c.samplesReceived += pcm.length;
    if (voiced) c.voicedFramesReceived += 1;
    let at = this.written % this.capacity;
    const first = Math.min(n, this.capacity - at);
    this.buf.set(samples.subarray(0, first), at);
    if (first < n) this.buf.set(samples.subarray(first), 0);
    this.written += n;
    this.frames.push([this.written, voiced, requestId || ""]);
    if (this.buffered > this.maxBuffered) this.dropTo(this.prebuffer);
  }

  dropTo(keep) {
    const newRead = this.written - keep;
    const c = this.counters;
    c.samplesDropped += newRead - this.readPos;
    this.readPos = newRead;
    while (this.frames.length && this.frames[0][0] <= this.readPos) {
      this.frames.shift();
      c.framesDropped += 1;
    }
  }

  // Fill `out` (a Float32Array block); returns how many samples came from the buffer.
  pull(out) {
    const want = out.length;
    if (!this.playing) {
      if (this.buffered >= this.prebuffer) this.playing = true;
      else {
        out.fill(0);
        return 0;
      }
    }
    const n = Math.min(want, this.buffered);
    let at = this.readPos % this.capacity;
    const first = Math.min(n, this.capacity - at);
    out.set(this.buf.subarray(at, at + first), 0);
    if (first < n) out.set(this.buf.subarray(0, n - first), first);
    if (n < want) out.fill(0, n);
    this.account(out, n);
    if (n < want) {
      this.counters.underruns += 1;
      this.playing = false;
    }
    return n;
  }

  account(out, n) {
    const c = this.counters;
    const start = this.readPos;
    const end = start + n;
    // Voiced samples played, split at frame boundaries.
    let frameStart = start;
    for (let i = 0; i < this.frames.length && frameStart < end; i++) {
      const [fEnd, voiced, rid] = this.frames[i];
      const overlap = Math.min(fEnd, end) - frameStart;
      if (overlap > 0) {
        if (voiced) {
          c.voicedSamplesPlayed += overlap;
          if (rid) {
            this.playedByRequest.set(rid, (this.playedByRequest.get(rid) || 0) + overlap);
            this.currentRequest = rid;
          }
        }
        frameStart += overlap;
      }
    }
    let sum = 0;
    let peak = 0;
    for (let i = 0; i < n; i++) {
      const v = out[i];
      sum += v * v;
      const a = v < 0 ? -v : v;
      if (a > peak) peak = a;
    }
    this.levelSum += sum;
    this.levelCount += out.length;
    if (peak > this.levelPeak) this.levelPeak = peak;
    this.readPos = end;
    c.samplesPlayed += n;
    while (this.frames.length && this.frames[0][0] <= this.readPos) {
      const [, voiced] = this.frames.shift();
      c.framesPlayed += 1;
      if (voiced) c.voicedFramesPlayed += 1;
    }
    if (this.playedByRequest.size > 32) {
      this.playedByRequest.delete(this.playedByRequest.keys().next().value);
    }
  }

  // Counters plus the output level since the last snapshot (RMS and peak, dBFS).
  snapshot(sampleRate) {
    const rms = this.levelCount ? Math.sqrt(this.levelSum / this.levelCount) : 0;
    const out = {
      ...this.counters,
      bufferedMs: (1000 * this.buffered) / sampleRate,
      playing: this.playing,
      rmsDbfs: rms > 1e-6 ? 20 * Math.log10(rms) : -120,
      peakDbfs: this.levelPeak > 1e-6 ? 20 * Math.log10(this.levelPeak) : -120,
      currentRequest: this.currentRequest,
      playedByRequest: Object.fromEntries(this.playedByRequest),
    };
    this.levelSum = 0;
    this.levelPeak = 0;
    this.levelCount = 0;
    return out;
  }
}
