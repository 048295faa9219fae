// The live voice's adaptation (status.adapt, and the adapt_* events) as the page shows it.

const fmt = (x, d) => (typeof x === "number" ? x.toFixed(d) : "–");

// One line for status.adapt: what the voice rests on and how far adaptation has got.
export function describeAdapt(a) {
  if (!a) return "–";
  if (a.state === "unavailable") return "not available with this synthesiser";
  const heard = `${fmt(a.voice_seconds, 1)} s of voice kept`;
  if (a.state === "adapting") {
    const p = a.progress || {};
    const pct = typeof p.fraction === "number" ? ` ${Math.round(100 * p.fraction)}%` : "";
    return `adapting: ${p.stage || "starting"}${pct} · ${heard}`;
  }
  const d = a.adapted;
  if (d) {
    const sim = typeof d.similarity === "number" ? ` · similarity ${fmt(d.similarity_before, 2)} → ${fmt(d.similarity, 2)}` : "";
    return `adapted (${d.plan}) on ${fmt(d.seconds, 1)} s in ${fmt(d.wall_s, 0)} s${sim} · ${heard}`;
  }
  if (a.state === "error") return `adaptation failed: ${(a.last_error || {}).message || "?"}`;
  const need = (a.min_seconds || 0) - (a.voice_seconds || 0);
  return need > 0 ? `not adapted: needs ${fmt(need, 1)} s more voice` : `not adapted yet · ${heard}`;
}

// A log line for an adapt_* event, or null for progress the status line already shows.
export function adaptEventLine(m) {
  if (m.type === "adapted") {
    const sim = typeof m.similarity === "number" ? `, similarity ${fmt(m.similarity_before, 3)} → ${fmt(m.similarity, 3)}` : "";
    return [`voice adapted (${m.plan}, ${m.steps} steps on ${fmt(m.seconds, 1)} s, ${fmt(m.wall_s, 1)} s)${sim}`, "ok"];
  }
  if (m.type === "adapt_error") return [`adaptation failed: ${m.message}`, "error"];
  if (m.type === "adapt_progress" && m.stage === "queued") return [`adapting to ${fmt(m.seconds, 1)} s of voice (${m.reason})`, "ok"];
  return null;
}
