// Embedding convergence over time. Convergence (cosine between the last two estimates)
// climbs towards 1, so the y axis counts nines: 0.9, 0.99, 0.999 are evenly spaced.
// A dimmer line shows the seconds of voice the estimate rests on (right axis).

const NINES_MAX = 4;

export function nines(c) {
  if (c === null || c === undefined || !(c > 0)) return 0;
  return Math.min(NINES_MAX, -Math.log10(Math.max(1e-12, 1 - c)));
}

export class ConvergencePlot {
  constructor(canvas, { windowS = 120 } = {}) {
    this.canvas = canvas;
    this.windowS = windowS;
    this.points = []; // {t, c, voiced, frozen}
    this.marks = []; // {t, label}
  }

  add(t, convergence, voicedSeconds, frozen) {
    const last = this.points[this.points.length - 1];
    if (last && last.c === convergence && last.voiced === voicedSeconds && last.frozen === frozen && t - last.t < 1) return;
    this.points.push({ t, c: convergence, voiced: voicedSeconds, frozen });
    const cutoff = t - 4 * this.windowS;
    while (this.points.length && this.points[0].t < cutoff) this.points.shift();
  }

  mark(t, label) {
    this.marks.push({ t, label });
    if (this.marks.length > 50) this.marks.shift();
  }

  draw(now) {
    // The time axis grows with the data, from 30 s up to the full window.
    const first = this.points.length ? this.points[0].t : now;
    const span = Math.min(this.windowS, Math.max(30, Math.ceil((now - first) / 10) * 10));
    const dpr = window.devicePixelRatio || 1;
    const c = this.canvas;
    const w = Math.max(100, Math.floor(c.clientWidth * dpr));
    const h = Math.max(60, Math.floor(c.clientHeight * dpr));
    if (c.width !== w) c.width = w;
    if (c.height !== h) c.height = h;
    const g = c.getContext("2d");
    g.clearRect(0, 0, w, h);
    const padL = 54 * dpr;
    const padR = 40 * dpr;
    const padT = 8 * dpr;
    const padB = 18 * dpr;
    const pw = w - padL - padR;
    const ph = h - padT - padB;
    const x = (t) => padL + ((t - (now - span)) / span) * pw;
    const y = (n) => padT + (1 - n / NINES_MAX) * ph;
    g.font = `${Math.round(11 * dpr)}px sans-serif`;
    g.lineWidth = 1;
    // Grid: nines on the left, time ticks every 30 s along the bottom.
    g.strokeStyle = "rgba(255,255,255,0.14)";
    g.fillStyle = "#a3adb8";
    g.textAlign = "right";
    const labels = ["0", "0.9", "0.99", "0.999", "0.9999"];
    for (let n = 0; n <= NINES_MAX; n++) {
      const yy = Math.round(y(n)) + 0.5;
      g.beginPath();
      g.moveTo(padL, yy);
      g.lineTo(padL + pw, yy);
      g.stroke();
      g.fillText(labels[n], padL - 6 * dpr, yy + 4 * dpr);
    }
    g.textAlign = "center";
    const tick = span <= 40 ? 10 : span <= 80 ? 20 : 30;
    for (let s = 0; s <= span; s += tick) {
      g.fillText(s === 0 ? "now" : `-${s}s`, padL + pw - (s / span) * pw, h - 4 * dpr);
    }
    const visible = this.points.filter((p) => p.t >= now - span - 5);
    // Frozen spans, shaded.
    g.fillStyle = "rgba(108,197,255,0.13)";
    for (let i = 0; i < visible.length; i++) {
      if (!visible[i].frozen) continue;
      const x0 = Math.max(padL, x(visible[i].t));
      const x1 = i + 1 < visible.length ? x(visible[i + 1].t) : x(now);
      g.fillRect(x0, padT, Math.max(1, x1 - x0), ph);
    }
    // Marks (reset, load), as vertical lines.
    g.strokeStyle = "rgba(255,90,90,0.8)";
    g.fillStyle = "#ff8080";
    g.textAlign = "left";
    let lastX = -1e9;
    let row = 0;
    for (const m of this.marks) {
      if (m.t < now - span) continue;
      // Labels of marks close together go on successive rows.
      row = x(m.t) - lastX < 90 * dpr ? row + 1 : 0;
      lastX = x(m.t);
      const xx = Math.round(x(m.t)) + 0.5;
      g.beginPath();
      g.moveTo(xx, padT);
      g.lineTo(xx, padT + ph);
      g.stroke();
      const nearRight = xx > padL + pw - 100 * dpr;
      g.textAlign = nearRight ? "right" : "left";
      g.fillText(m.label, xx + (nearRight ? -3 : 3) * dpr, padT + (11 + 13 * (row % 4)) * dpr);
    }
    // Voiced seconds (right axis, scaled to the largest value shown).
    const vmax = Math.max(10, ...visible.map((p) => p.voiced || 0));
    const yv = (v) => padT + (1 - v / vmax) * ph;
    g.strokeStyle = "rgba(163,173,184,0.55)";
    g.lineWidth = 1.5 * dpr;
    this.stepLine(g, visible, now, span, x, (p) => yv(p.voiced || 0));
    g.fillStyle = "#a3adb8";
    g.textAlign = "left";
    g.fillText(`${Math.round(vmax)} s`, padL + pw + 4 * dpr, padT + 10 * dpr);
    g.fillText("voice", padL + pw + 4 * dpr, padT + 24 * dpr);
    // Convergence.
    g.strokeStyle = "#ffb347";
    g.lineWidth = 2.5 * dpr;
    this.stepLine(g, visible, now, span, x, (p) => (p.c === null || p.c === undefined ? null : y(nines(p.c))));
  }

  // A step line through the points; a point whose y is null breaks the line (after a reset).
  stepLine(g, pts, now, span, x, yOf) {
    g.beginPath();
    const left = x(now - span);
    let prevY = null;
    for (const p of pts) {
      const xx = Math.max(left, x(p.t));
      const yy = yOf(p);
      if (prevY !== null) g.lineTo(xx, prevY);
      if (yy === null) {
        prevY = null;
        continue;
      }
      if (prevY === null) g.moveTo(xx, yy);
      else g.lineTo(xx, yy);
      prevY = yy;
    }
    if (prevY !== null) g.lineTo(x(now), prevY);
    g.stroke();
  }
}
