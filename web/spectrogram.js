// Scrolling spectrogram of the output as it is played (the page feeds it the samples the
// audio worklet has just played; while no audio runs, the frames as they arrive), from our
// own radix-2 FFT.
// One column per `hop` samples (512-point Hann window, hop 256: 86 columns a second at
// 22050 Hz), drawn at the right edge of an offscreen canvas that scrolls left.

export class FFT {
  constructor(n) {
    if (n & (n - 1)) throw new Error("FFT size must be a power of two");
    this.n = n;
    this.rev = new Uint32Array(n);
    const bits = Math.log2(n);
    for (let i = 0; i < n; i++) {
      let r = 0;
      for (let b = 0; b < bits; b++) r |= ((i >> b) & 1) << (bits - 1 - b);
      this.rev[i] = r;
    }
    this.cos = new Float64Array(n / 2);
    this.sin = new Float64Array(n / 2);
    for (let i = 0; i < n / 2; i++) {
      this.cos[i] = Math.cos((2 * Math.PI * i) / n);
      this.sin[i] = -Math.sin((2 * Math.PI * i) / n);
    }
  }

  // In-place complex FFT of (re, im).
  transform(re, im) {
    const n = this.n;
    for (let i = 0; i < n; i++) {
      const j = this.rev[i];
      if (j > i) {
        let t = re[i]; re[i] = re[j]; re[j] = t;
        t = im[i]; im[i] = im[j]; im[j] = t;
      }
    }
    for (let size = 2; size <= n; size <<= 1) {
      const half = size >> 1;
      const step = n / size;
      for (let start = 0; start < n; start += size) {
        for (let k = 0; k < half; k++) {
          const wr = this.cos[k * step];
          const wi = this.sin[k * step];
          const a = start + k;
          const b = a + half;
          const xr = re[b] * wr - im[b] * wi;
          const xi = re[b] * wi + im[b] * wr;
          re[b] = re[a] - xr; im[b] = im[a] - xi;
          re[a] += xr; im[a] += xi;
        }
      }
    }
  }
}

// Dark-to-bright colour map (black, violet, red, orange, pale yellow): 256 RGB entries.
function colourMap() {
  const stops = [
    [0.0, [0, 0, 0]], [0.25, [40, 11, 84]], [0.5, [159, 42, 99]],
    [0.75, [245, 125, 21]], [1.0, [252, 255, 164]],
  ];
  const lut = new Uint8ClampedArray(256 * 3);
  for (let i = 0; i < 256; i++) {
    const x = i / 255;
    let s = 0;
    while (s < stops.length - 2 && x > stops[s + 1][0]) s++;
    const [x0, c0] = stops[s];
    const [x1, c1] = stops[s + 1];
    const f = (x - x0) / (x1 - x0);
    for (let c = 0; c < 3; c++) lut[i * 3 + c] = c0[c] + (c1[c] - c0[c]) * f;
  }
  return lut;
}

export class Spectrogram {
  constructor(canvas, { size = 512, hop = 256, maxHz = 8000, floorDb = -100, ceilDb = -20 } = {}) {
    this.canvas = canvas;
    this.size = size;
    this.hop = hop;
    this.maxHz = maxHz;
    this.floorDb = floorDb;
    this.ceilDb = ceilDb;
    this.fft = new FFT(size);
    this.window = new Float32Array(size);
    for (let i = 0; i < size; i++) this.window[i] = 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / size);
    this.re = new Float64Array(size);
    this.im = new Float64Array(size);
    this.pending = new Float32Array(size + 8192);
    this.fill = 0;
    this.lut = colourMap();
    this.columns = []; // queued column intensities (Uint8Array per column), drawn on animation frames
    this.sampleRate = 22050;
    this.columnsDrawn = 0;
    this.rows = 160;
    this.width = 0;
    this.off = document.createElement("canvas");
    this.resize();
  }

  resize() {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(100, Math.floor(this.canvas.clientWidth * dpr));
    const h = Math.max(60, Math.floor(this.canvas.clientHeight * dpr));
    if (h !== this.canvas.height) this.canvas.height = h;
    if (w === this.width) return;
    this.width = w;
    this.canvas.width = w;
    const old = this.off;
    this.off = document.createElement("canvas");
    this.off.width = w;
    this.off.height = this.rows;
    const g = this.off.getContext("2d");
    g.fillStyle = "#000";
    g.fillRect(0, 0, w, this.rows);
    if (old.width) g.drawImage(old, w - old.width, 0);
    this.column = g.createImageData(1, this.rows);
  }

  // Samples at `sampleRate`, each multiplied by `scale` (1 / 32768 for int16, 1 for float).
  push(samples, sampleRate, scale = 1 / 32768) {
    if (sampleRate !== this.sampleRate) this.fill = 0;
    this.sampleRate = sampleRate;
    let i = 0;
    while (i < samples.length) {
      const take = Math.min(samples.length - i, this.pending.length - this.fill);
      for (let k = 0; k < take; k++) this.pending[this.fill + k] = samples[i + k] * scale;
      this.fill += take;
      i += take;
      while (this.fill >= this.size) {
        this.columns.push(this.analyse());
        this.pending.copyWithin(0, this.hop, this.fill);
        this.fill -= this.hop;
      }
    }
    if (this.columns.length > 2000) this.columns.splice(0, this.columns.length - 2000);
  }

  analyse() {
    const n = this.size;
    for (let i = 0; i < n; i++) {
      this.re[i] = this.pending[i] * this.window[i];
      this.im[i] = 0;
    }
    this.fft.transform(this.re, this.im);
    const bins = n / 2;
    const topBin = Math.min(bins - 1, (this.maxHz / (this.sampleRate / 2)) * bins);
    const col = new Uint8Array(this.rows);
    const norm = 2 / (n * 0.5); // a full-scale sine reads about 0 dB (Hann gain 0.5)
    for (let r = 0; r < this.rows; r++) {
      // Row 0 is the top (highest frequency); linear frequency axis.
      const bin = Math.round(((this.rows - 1 - r) / (this.rows - 1)) * topBin);
      const mag = Math.hypot(this.re[bin], this.im[bin]) * norm;
      const db = mag > 1e-9 ? 20 * Math.log10(mag) : -180;
      const x = (db - this.floorDb) / (this.ceilDb - this.floorDb);
      col[r] = Math.max(0, Math.min(255, Math.round(x * 255)));
    }
    return col;
  }

  // Draw queued columns; call from requestAnimationFrame.
  draw() {
    this.resize();
    const n = this.columns.length;
    if (n) {
      const g = this.off.getContext("2d");
      g.drawImage(this.off, -n, 0);
      const data = this.column.data;
      for (let c = 0; c < n; c++) {
        const col = this.columns[c];
        for (let r = 0; r < this.rows; r++) {
          const v = col[r] * 3;
          data[r * 4] = this.lut[v];
          data[r * 4 + 1] = this.lut[v + 1];
          data[r * 4 + 2] = this.lut[v + 2];
          data[r * 4 + 3] = 255;
        }
        g.putImageData(this.column, this.width - n + c, 0);
      }
      this.columns.length = 0;
      this.columnsDrawn += n;
    }
    const ctx = this.canvas.getContext("2d");
    const h = this.canvas.height;
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(this.off, 0, 0, this.width, this.rows, 0, 0, this.width, h);
    // Frequency grid every 2 kHz, labelled.
    ctx.font = `${Math.round(11 * (window.devicePixelRatio || 1))}px sans-serif`;
    ctx.fillStyle = "rgba(255,255,255,0.75)";
    ctx.strokeStyle = "rgba(255,255,255,0.18)";
    for (let hz = 2000; hz < this.maxHz; hz += 2000) {
      const y = Math.round((1 - hz / this.maxHz) * (h - 1)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(0, y);
      ctx.lineTo(this.width, y);
      ctx.stroke();
      ctx.fillText(`${hz / 1000}k`, 4, y - 2);
    }
  }
}
