// Playback of the daemon's stream: an AudioContext at the stream's rate when the browser
// allows it, an AudioWorklet holding the jitter buffer, and a gain node for mute.
// Where AudioWorklet is unavailable (a page served over plain http from a non-loopback
// address is not a secure context), the same jitter buffer runs in a ScriptProcessorNode,
// and `mode` says so.
import { JitterBuffer } from "./jitter.js";

const BUFFER_MS = { prebufferMs: 100, maxBufferedMs: 400, capacityMs: 2000 };

// Linear-interpolating resampler that keeps its phase across frames (only used when the
// context could not be opened at the stream's own rate).
class LinearResampler {
  constructor(fromHz, toHz) {
    this.step = fromHz / toHz;
    this.pos = 0; // position of the next output sample, 0 = the previous frame's last sample
    this.last = 0;
  }

  process(x) {
    const n = x.length;
    const out = new Float32Array(Math.ceil((n - this.pos) / this.step) + 1);
    let k = 0;
    let pos = this.pos;
    while (pos < n) {
      const i = Math.floor(pos);
      const f = pos - i;
      const a = i === 0 ? this.last : x[i - 1];
      out[k++] = a + (x[i] - a) * f;
      pos += this.step;
    }
    this.pos = pos - n;
    if (n) this.last = x[n - 1];
    return out.subarray(0, k);
  }
}

export class Player extends EventTarget {
  constructor() {
    super();
    this.ctx = null;
    this.node = null;
    this.gain = null;
    this.mode = "none"; // "worklet" | "scriptprocessor" | "none"
    this.streamRate = 0;
    this.resampler = null;
    this.muted = false;
    this.ready = false;
    this.stats = null; // latest counters from the jitter buffer
    this.error = "";
  }

  get state() {
    return this.ctx ? this.ctx.state : "off";
  }

  // Open (or reopen, if the stream's rate changed) the audio graph.
  async open(streamRate) {
    if (this.ctx && this.streamRate === streamRate) return;
    await this.close();
    this.streamRate = streamRate;
    try {
      this.ctx = new AudioContext({ sampleRate: streamRate, latencyHint: "interactive" });
    } catch {
      this.ctx = new AudioContext({ latencyHint: "interactive" });
    }
    const ctx = this.ctx;
    ctx.onstatechange = () => this.dispatchEvent(new Event("state"));
    this.resampler = ctx.sampleRate === streamRate ? null : new LinearResampler(streamRate, ctx.sampleRate);
    this.gain = ctx.createGain();
    this.gain.gain.value = this.muted ? 0 : 1;
    this.gain.connect(ctx.destination);
    try {
      if (!ctx.audioWorklet) throw new Error("AudioWorklet needs a secure context (https or localhost)");
      await ctx.audioWorklet.addModule(new URL("./worklet.js", import.meta.url));
      this.node = new AudioWorkletNode(ctx, "vcstream-player", {
        numberOfInputs: 0,
        numberOfOutputs: 1,
        outputChannelCount: [1],
        processorOptions: BUFFER_MS,
      });
      this.node.port.onmessage = (e) => {
        if (e.data.type === "stats") this.onStats(e.data.stats);
        else if (e.data.type === "played") this.onPlayed(e.data.pcm, ctx.sampleRate);
      };
      this.mode = "worklet";
    } catch (err) {
      this.error = String(err && err.message ? err.message : err);
      this.openScriptProcessor(ctx);
    }
    this.node.connect(this.gain);
    this.ready = true;
    this.dispatchEvent(new Event("state"));
  }

  openScriptProcessor(ctx) {
    const ms = (v) => Math.round((ctx.sampleRate * v) / 1000);
    const jb = new JitterBuffer(ms(BUFFER_MS.capacityMs), {
      prebuffer: ms(BUFFER_MS.prebufferMs),
      maxBuffered: ms(BUFFER_MS.maxBufferedMs),
    });
    const node = ctx.createScriptProcessor(1024, 1, 1);
    let blocks = 0;
    node.onaudioprocess = (e) => {
      const out = e.outputBuffer.getChannelData(0);
      jb.pull(out);
      this.onPlayed(out.slice(), ctx.sampleRate);
      if (++blocks % 2 === 0) this.onStats(jb.snapshot(ctx.sampleRate));
    };
    this.fallbackBuffer = jb;
    this.node = node;
    this.mode = "scriptprocessor";
  }

  // Samples just played (float, at the rate of the context that played them, before the
  // mute gain): a "played" event whose detail is {pcm, sampleRate}. The rate comes from that
  // context, not this.ctx: a block can still arrive after close() or a reopen.
  onPlayed(pcm, sampleRate) {
    this.dispatchEvent(new CustomEvent("played", { detail: { pcm, sampleRate } }));
  }

  // True while the audio graph is actually pulling samples (so "played" events flow).
  get playing() {
    return this.ready && this.state === "running";
  }

  onStats(stats) {
    this.stats = stats;
    this.dispatchEvent(new Event("stats"));
  }

  // One received frame: int16 samples at the stream's rate.
  push(int16, voiced, requestId) {
    if (!this.ready) return;
    let pcm = new Float32Array(int16.length);
    for (let i = 0; i < int16.length; i++) pcm[i] = int16[i] / 32768;
    if (this.resampler) pcm = this.resampler.process(pcm).slice();
    if (this.mode === "worklet") {
      this.node.port.postMessage({ type: "frame", pcm, voiced, id: requestId }, [pcm.buffer]);
    } else {
      this.fallbackBuffer.push(pcm, voiced, requestId);
    }
  }

  clear() {
    if (!this.ready) return;
    if (this.mode === "worklet") this.node.port.postMessage({ type: "clear" });
    else this.fallbackBuffer.clear();
  }

  setMuted(muted) {
    this.muted = muted;
    if (this.gain) this.gain.gain.setTargetAtTime(muted ? 0 : 1, this.ctx.currentTime, 0.01);
  }

  // Resolves once audio runs; rejects if the browser has not started it within `timeoutMs`
  // (with no output device, Firefox's resume() never settles and the page would just wait).
  async resume(timeoutMs = 3000) {
    if (!this.ctx || this.ctx.state === "running") return;
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(
        () => reject(new Error("the browser did not start audio: is an output device connected?")),
        timeoutMs,
      );
    });
    try {
      await Promise.race([this.ctx.resume(), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async close() {
    this.ready = false;
    if (this.ctx) {
      const ctx = this.ctx;
      if (this.node) {
        this.node.onaudioprocess = null; // the fallback's callback may still be queued
        if (this.node.port) this.node.port.onmessage = null;
      }
      this.ctx = null;
      this.node = null;
      await ctx.close().catch(() => {});
    }
  }
}
