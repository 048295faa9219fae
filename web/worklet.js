// AudioWorkletProcessor that plays the daemon's stream from a jitter buffer.
// The page posts {type: "frame", pcm: Float32Array, voiced, id} (already at the context's
// sample rate); the processor posts {type: "stats", ...counters} about 8 times a second and
// {type: "played", pcm} with each PLAYED_BLOCK samples it has played (before the mute gain),
// so the page's spectrogram shows what is heard now, not what arrived a jitter buffer ago.
import { JitterBuffer } from "./jitter.js";

const PLAYED_BLOCK = 1024; // samples per "played" message: about 22 messages a second at 22050 Hz

class VcstreamPlayer extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = (options && options.processorOptions) || {};
    const ms = (v) => Math.round((sampleRate * v) / 1000);
    this.jb = new JitterBuffer(ms(o.capacityMs || 2000), {
      prebuffer: ms(o.prebufferMs || 100),
      maxBuffered: ms(o.maxBufferedMs || 400),
    });
    this.blocks = 0;
    this.statsEvery = Math.max(1, Math.round(sampleRate / 128 / 8));
    this.played = new Float32Array(PLAYED_BLOCK);
    this.playedFill = 0;
    this.port.onmessage = (e) => {
      const m = e.data;
      if (m.type === "frame") this.jb.push(m.pcm, m.voiced, m.id);
      else if (m.type === "clear") this.jb.clear();
    };
  }

  process(_inputs, outputs) {
    const out = outputs[0];
    if (out && out.length) {
      this.jb.pull(out[0]);
      for (let ch = 1; ch < out.length; ch++) out[ch].set(out[0]);
      this.report(out[0]);
    }
    if (++this.blocks % this.statsEvery === 0) {
      this.port.postMessage({ type: "stats", stats: this.jb.snapshot(sampleRate) });
    }
    return true;
  }

  report(block) {
    let i = 0;
    while (i < block.length) {
      const take = Math.min(block.length - i, PLAYED_BLOCK - this.playedFill);
      this.played.set(block.subarray(i, i + take), this.playedFill);
      this.playedFill += take;
      i += take;
      if (this.playedFill === PLAYED_BLOCK) {
        this.port.postMessage({ type: "played", pcm: this.played }, [this.played.buffer]);
        this.played = new Float32Array(PLAYED_BLOCK);
        this.playedFill = 0;
      }
    }
  }
}

registerProcessor("vcstream-player", VcstreamPlayer);
