// The monitor page: wires the connection, the player, the plots and the controls together.
// Everything the page shows comes from the daemon's published stream (audio frames, events,
// status at 10 Hz); the page only ever sends control messages, so it cannot slow the audio path.
//
// window.vcstreamStats exposes the page's live counters (connection, audio worklet, history)
// for tests and for a curious operator's console.
import { adaptEventLine, describeAdapt } from "./adapt.js";
import { Player } from "./audio.js";
import { Connection } from "./connection.js";
import { ConvergencePlot } from "./plot.js";
import { Spectrogram } from "./spectrogram.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const hashParams = new URLSearchParams(location.hash.slice(1));
const wsUrl = params.get("ws") || `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/`;
const STALE_MS = 1500;
const HISTORY_ROWS = 50;

const conn = new Connection(wsUrl, { token: hashParams.get("token") || "" });
const player = new Player();
const spectrogram = new Spectrogram($("spectrogram"));
const plot = new ConvergencePlot($("conv-plot"));
const history = new Map(); // id -> entry; insertion order = arrival order

const stats = {
  url: wsUrl,
  connection: conn.state,
  connects: 0,
  hello: null,
  framesReceived: 0,
  voicedFramesReceived: 0,
  seqGaps: 0,
  lastSeq: null,
  audio: { mode: "none", state: "off" },
  statusReceived: 0,
  lastStatusAt: 0,
  voice: null,
  history: [],
  messages: [],
  errors: [],
  spectrogramSamples: 0, // played samples the spectrogram has analysed
};
window.vcstreamStats = stats;
window.vcstream = { conn, player }; // for the console: vcstream.conn.request({type: "status"})

// ---- helpers ---------------------------------------------------------------------------
const fmt = (v, digits = 0) => (v === null || v === undefined || Number.isNaN(v) ? "–" : Number(v).toFixed(digits));
const dbToPct = (db) => Math.max(0, Math.min(100, ((db + 60) / 60) * 100));
const now = () => performance.now() / 1000;

function log(text, kind = "") {
  const box = $("messages");
  const line = document.createElement("div");
  line.className = kind;
  line.textContent = `${new Date().toLocaleTimeString([], { hour12: false })}  ${text}`;
  box.prepend(line);
  while (box.childElementCount > 30) box.lastElementChild.remove();
  stats.messages.unshift(text);
  stats.messages.length = Math.min(stats.messages.length, 30);
  if (kind === "error") stats.errors.push(text);
}

class Meter {
  constructor(bar, tick, label) {
    this.bar = bar;
    this.tick = tick;
    this.label = label;
    this.peak = -120;
    this.peakAt = 0;
  }

  set(rmsDb, peakDb = rmsDb) {
    this.bar.style.width = `${dbToPct(rmsDb)}%`;
    this.bar.style.setProperty("--full", `${(100 / Math.max(1, dbToPct(rmsDb))) * 100}%`);
    const t = now();
    if (peakDb >= this.peak || t - this.peakAt > 1.5) {
      this.peak = peakDb;
      this.peakAt = t;
    }
    this.tick.style.left = `calc(${dbToPct(this.peak)}% - 3px)`;
    this.label.textContent = rmsDb <= -119 ? "-∞ dB" : `${rmsDb.toFixed(1)} dB`;
  }
}
const inMeter = new Meter($("in-bar"), $("in-peak"), $("in-db"));
const outMeter = new Meter($("out-bar"), $("out-peak"), $("out-db"));

// ---- connection ------------------------------------------------------------------------
function renderConnection() {
  const badge = $("conn");
  let state = conn.state;
  let text = state;
  if (state === "connected" && performance.now() - stats.lastStatusAt > STALE_MS && stats.statusReceived) {
    state = "stale";
    text = "no status";
  } else if (state === "reconnecting") {
    const s = Math.max(0, (conn.retryAt - performance.now()) / 1000);
    text = `reconnecting${s > 0.05 ? ` in ${s.toFixed(1)} s` : "…"}`;
  } else if (state === "connecting") text = "connecting…";
  badge.dataset.state = state;
  badge.textContent = text;
  stats.connection = conn.state;
}

conn.addEventListener("state", () => {
  renderConnection();
  if (conn.state === "reconnecting") {
    log(`connection lost (${conn.lastClose || "closed"}); reconnecting`, "error");
    player.clear();
    stats.lastSeq = null;
  }
});

conn.addEventListener("hello", async () => {
  const h = conn.hello;
  stats.hello = h;
  stats.connects = conn.connects;
  log(`connected to ${wsUrl} (protocol ${h.protocol}, ${h.sample_rate_hz} Hz, ${h.frame_ms} ms frames)`, "ok");
  try {
    await player.open(h.sample_rate_hz);
  } catch (err) {
    log(`audio unavailable: ${err.message || err}`, "error");
  }
  player.clear();
  renderAudioState();
  refreshVoices();
});

conn.addEventListener("audio", (e) => {
  const f = e.detail;
  if (stats.lastSeq !== null && f.seq > stats.lastSeq + 1) stats.seqGaps += f.seq - stats.lastSeq - 1;
  stats.lastSeq = f.seq;
  stats.framesReceived += 1;
  if (!f.silence) stats.voicedFramesReceived += 1;
  player.push(f.pcm, !f.silence, f.requestId);
  // With audio running, the spectrogram follows playback ("played" below) instead.
  if (!player.playing) spectrogram.push(f.pcm, f.sampleRate);
});

player.addEventListener("played", (e) => {
  stats.spectrogramSamples += e.detail.pcm.length;
  spectrogram.push(e.detail.pcm, e.detail.sampleRate, 1);
});

conn.addEventListener("message", (e) => {
  const m = e.detail;
  switch (m.type) {
    case "metrics":
      onStatus(m);
      break;
    case "embedding":
      onVoice(m);
      break;
    case "accepted":
    case "started":
    case "first_audio":
    case "done":
      onRequestEvent(m);
      break;
    case "error":
      if (m.id && history.has(m.id)) onRequestEvent(m);
      if (!m.to) log(`error ${m.code}: ${m.message}`, "error"); // replies' errors are logged by their sender
      break;
    case "adapt_progress":
    case "adapted":
    case "adapt_error": {
      const line = adaptEventLine(m);
      if (line) log(...line);
      break;
    }
    case "dropped":
      log(`this page fell behind: ${m.audio_frames} audio frames dropped`, "error");
      break;
    default:
      break;
  }
});

// ---- audio -------------------------------------------------------------------------------
function renderAudioState() {
  const badge = $("audio-state");
  const state = player.state;
  badge.dataset.state = player.muted && state === "running" ? "muted" : state;
  const mode = player.mode === "scriptprocessor" ? " (fallback)" : "";
  badge.textContent = state === "running" ? (player.muted ? "muted" : `audio on${mode}`) : `audio ${state}`;
  badge.title = player.error ? `AudioWorklet unavailable: ${player.error}` : "";
  $("audio-enable").hidden = state === "running" || state === "off";
  $("mute").setAttribute("aria-pressed", String(player.muted));
  $("mute").textContent = player.muted ? "Unmute" : "Mute";
  stats.audio.mode = player.mode;
  stats.audio.state = state;
  stats.audio.ready = player.ready && state === "running";
  stats.audio.muted = player.muted;
}

player.addEventListener("state", renderAudioState);
player.addEventListener("stats", () => {
  const s = player.stats;
  const prevVoiced = stats.audio.voicedSamplesPlayed || 0;
  Object.assign(stats.audio, s);
  stats.audio.speaking = s.voicedSamplesPlayed > prevVoiced;
});

async function enableAudio() {
  try {
    await player.resume();
  } catch (err) {
    log(`could not start audio: ${err.message || err}`, "error");
  }
  renderAudioState();
}
$("audio-enable").addEventListener("click", enableAudio);
// Browsers start audio only after a user gesture: any click on the page will do.
document.addEventListener("pointerdown", () => player.state === "suspended" && enableAudio());
function toggleMute() {
  player.setMuted(!player.muted);
  renderAudioState();
}
$("mute").addEventListener("click", toggleMute);

// ---- status ------------------------------------------------------------------------------
function onStatus(s) {
  stats.statusReceived += 1;
  stats.lastStatusAt = performance.now();
  stats.status = s;
  const cap = s.capture || {};
  inMeter.set(cap.level_dbfs ?? -120);
  $("vad").dataset.on = String(Boolean(cap.voice_active));
  onVoice(s.voice || {});
  $("adapt-state").textContent = describeAdapt(s.adapt);
  $("adapt").disabled = !s.adapt || s.adapt.state === "adapting" || s.adapt.state === "unavailable";
  const q = s.queues || {};
  const synth = s.synthesizer || {};
  $("d-synth").textContent = `${synth.name || "–"}${synth.clones === false ? " (does not clone)" : ""}`;
  const voc = s.vocoder || {};
  const vocName = { full: "full (HiFi-GAN V1)", lite: "lite (distilled, faster)" }[voc.quality];
  $("d-vocoder").textContent = vocName ? `${vocName}${voc.requested === "auto" ? ", chosen by auto" : ""}` : "–";
  $("d-vocoder").title = voc.reason || "";
  $("d-queue").textContent = `${q.requests ?? "–"} / ${q.requests_max ?? "–"}`;
  $("d-outbuf").textContent = fmt(q.output_ms);
  $("d-xruns").textContent = `${cap.xruns ?? "–"} / ${cap.dropped_samples ?? "–"}`;
  $("d-underrun").textContent = String((s.counters || {}).underrun_frames || 0);
  const fa = (s.stages || {}).first_audio;
  $("d-ttfa").textContent = fa && fa.count ? `${fmt(fa.p50_ms)} / ${fmt(fa.p95_ms)} ms` : "–";
  const ws = (s.network || {}).websocket;
  $("d-clients").textContent = ws ? String(ws.clients.length) : "–";
  const h = stats.hello || {};
  $("daemon-info").textContent =
    `${wsUrl.replace(/\/$/, "")} · ${s.device || "?"} · ${h.sample_rate_hz || s.sample_rate_hz} Hz · ` +
    `${s.frame_ms} ms frames · up ${formatUptime(s.uptime_s)}`;
  for (const entry of s.history || []) mergeHistory(entry);
}

function formatUptime(sec) {
  if (sec === undefined) return "–";
  const t = Math.floor(sec);
  const hh = Math.floor(t / 3600);
  const mm = Math.floor((t % 3600) / 60);
  const ss = String(t % 60).padStart(2, "0");
  return hh ? `${hh}:${String(mm).padStart(2, "0")}:${ss}` : `${mm}:${ss}`;
}

// ---- voice -------------------------------------------------------------------------------
const SPEAKING_IN = {
  loaded: "lines are spoken in the loaded voice",
  live: "lines are spoken in the voice heard from the microphone",
  default: "nothing heard yet: lines are spoken in the synthesiser's default voice",
  fixed: "this synthesiser ignores the voice estimate and speaks in its own voice",
  none: "no voice yet: lines cannot be spoken until one is heard or loaded",
};

function onVoice(v) {
  if (v.voiced_seconds === undefined || v.n_partials === undefined) return;
  const prev = stats.voice;
  const t = now();
  if (prev) {
    if (prev.n_partials > 0 && v.n_partials === 0 && !v.loaded_voice) plot.mark(t, "reset");
    if (v.loaded_voice && v.loaded_voice !== prev.loaded_voice) plot.mark(t, `load ${v.loaded_voice}`);
  }
  stats.voice = { ...v };
  plot.add(t, v.convergence, v.voiced_seconds, v.frozen);
  $("voiced-s").textContent = fmt(v.voiced_seconds, 1);
  $("partials").textContent = String(v.n_partials);
  $("convergence").textContent = typeof v.convergence === "number" ? v.convergence.toFixed(4) : "–";
  const tag = $("voice-state");
  if (v.loaded_voice) {
    tag.dataset.kind = "loaded";
    tag.textContent = `loaded: ${v.loaded_voice}`;
  } else if (v.frozen) {
    tag.dataset.kind = "frozen";
    tag.textContent = "frozen";
  } else if (v.has_embedding) {
    tag.dataset.kind = "live";
    tag.textContent = "live, learning";
  } else if (v.speaking_in === "default") {
    tag.dataset.kind = "";
    tag.textContent = `default voice: ${v.default_voice}`;
  } else {
    tag.dataset.kind = "";
    tag.textContent = "no voice yet";
  }
  if (v.speaking_in === "fixed") tag.textContent += " (not used: backend does not clone)";
  tag.title = SPEAKING_IN[v.speaking_in] || "";
  $("freeze").textContent = v.frozen ? "Unfreeze" : "Freeze";
  showConsent(v.consent);
}

// Consent of the live voice (docs/protocol.md, "Consent and retention"): shown unless it is
// not required; the operator's Approve button only in consent mode "operator".
function showConsent(c) {
  const box = $("consent");
  box.hidden = !c || c.mode === "none";
  $("approve").hidden = !c || c.mode !== "operator" || c.state === "granted";
  if (box.hidden) return;
  box.dataset.state = c.state;
  box.textContent = `consent (${c.mode}): ${c.state}: ${c.reason}`;
}

async function command(msg, describe) {
  const reply = await conn.request(msg);
  if (reply.type === "error") log(`${msg.type}: ${reply.message}`, "error");
  else if (describe) log(describe(reply), "ok");
  // freeze, unfreeze and reset answer with the voice state (save and load with a profile summary)
  if (reply.voice && reply.voice.n_partials !== undefined) onVoice(reply.voice);
  return reply;
}

function toggleFreeze() {
  const frozen = stats.voice && stats.voice.frozen;
  command({ type: frozen ? "unfreeze" : "freeze" }, () => (frozen ? "voice unfrozen: learning again" : "voice frozen"));
}
$("freeze").addEventListener("click", toggleFreeze);
$("reset").addEventListener("click", () => command({ type: "reset" }, () => "voice reset"));
$("approve").addEventListener("click", () => command({ type: "consent_approve" }, () => "voice approved"));
$("adapt").addEventListener("click", () => command({ type: "adapt" }));
$("save").addEventListener("click", async () => {
  const name = $("voice-name").value.trim();
  if (!name) {
    log("save: type a name for the voice first", "error");
    $("voice-name").focus();
    return;
  }
  const r = await command({ type: "save", name }, (r) => `saved voice ${r.voice.name} (${fmt(r.voice.voiced_seconds, 1)} s of voice)`);
  if (r.type === "reply") refreshVoices(name);
});
$("load").addEventListener("click", () => {
  const name = $("voice-list").value;
  if (!name) {
    log("load: choose a saved voice first", "error");
    return;
  }
  command({ type: "load", name }, (r) => `loaded voice ${r.voice.name}`);
});

async function refreshVoices(select) {
  const r = await conn.request({ type: "list" });
  if (r.type !== "reply") {
    if (r.code !== "disconnected") log(`voice list: ${r.message}`, "error");
    return;
  }
  const list = $("voice-list");
  const keep = select || list.value;
  list.replaceChildren(new Option("(saved voices)", ""));
  for (const v of r.voices) {
    if (v.error) continue;
    list.add(new Option(`${v.name} · ${fmt(v.voiced_seconds, 1)} s`, v.name));
  }
  list.value = [...list.options].some((o) => o.value === keep) ? keep : "";
  stats.voices = r.voices.map((v) => v.name);
}

// ---- speaking and history ---------------------------------------------------------------
function entryFor(id) {
  let e = history.get(id);
  if (!e) {
    e = { id, text: "", mode: "", state: "queued", time: null, ttfaMs: null, audioMs: null, mine: false, error: "" };
    history.set(id, e);
    while (history.size > HISTORY_ROWS) history.delete(history.keys().next().value);
  }
  return e;
}

function onRequestEvent(m) {
  const e = entryFor(m.id);
  if (!e.time) e.time = new Date();
  switch (m.type) {
    case "accepted":
      e.state = "queued";
      e.mode = m.mode;
      break;
    case "started":
      e.state = "synthesising";
      break;
    case "first_audio":
      e.state = "playing";
      e.ttfaMs = m.latency_ms;
      break;
    case "done":
      e.state = m.cancelled ? "cancelled" : "done";
      if (m.text) e.text = m.text;
      e.audioMs = m.audio_ms;
      if (m.first_audio_ms !== null && m.first_audio_ms !== undefined) e.ttfaMs = m.first_audio_ms;
      break;
    case "error":
      e.state = "error";
      e.error = `${m.code}: ${m.message}`;
      break;
    default:
      break;
  }
  scheduleHistory();
}

// Entries from the status snapshot: requests finished before this page connected (or while
// it was away).
function mergeHistory(h) {
  const e = history.get(h.id);
  if (e && (e.state === "done" || e.state === "cancelled" || e.state === "error")) return;
  const entry = e || entryFor(h.id);
  entry.state = h.error ? "error" : h.cancelled ? "cancelled" : "done";
  if (h.error && !entry.error) entry.error = h.error;
  entry.text = entry.text || h.text || "";
  entry.audioMs = h.audio_ms;
  entry.ttfaMs = h.first_audio_ms;
  scheduleHistory();
}

let historyQueued = false;
function scheduleHistory() {
  if (historyQueued) return;
  historyQueued = true;
  setTimeout(renderHistory, 30); // not requestAnimationFrame: it pauses in hidden tabs
}

function renderHistory() {
  historyQueued = false;
  const rows = [];
  for (const e of [...history.values()].reverse()) {
    const tr = document.createElement("tr");
    tr.dataset.state = e.state;
    tr.dataset.id = e.id;
    const none = (v) => v === null || v === undefined;
    const cells = [
      ["time num", e.time ? e.time.toLocaleTimeString([], { hour12: false }) : ""],
      ["text", e.text],
      ["state", e.state],
      ["ttfa r num", none(e.ttfaMs) ? "–" : `${fmt(e.ttfaMs)} ms`],
      ["audio r num", none(e.audioMs) ? "–" : `${fmt(e.audioMs / 1000, 1)} s`],
    ];
    for (const [cls, text] of cells) {
      const td = document.createElement("td");
      td.className = cls;
      td.textContent = text;
      if (cls === "text") {
        td.title = e.error || e.text;
        const rid = document.createElement("div");
        rid.className = "rid";
        rid.textContent = e.mine ? `${e.id} (this page)` : e.id;
        td.append(rid);
      }
      if (cls === "state" && e.error) td.title = e.error;
      tr.append(td);
    }
    rows.push(tr);
  }
  $("history").tBodies[0].replaceChildren(...rows);
  stats.history = [...history.values()].map((e) => ({ ...e, time: e.time ? e.time.toISOString() : null }));
}

async function speak() {
  const box = $("speak-text");
  const body = box.value.trim();
  if (!body) {
    box.focus();
    return;
  }
  const kind = document.querySelector('input[name="kind"]:checked').value;
  const mode = document.querySelector('input[name="mode"]:checked').value;
  const id = conn.newId("speak");
  const e = entryFor(id);
  e.text = body;
  e.mode = mode;
  e.mine = true;
  e.time = new Date();
  e.state = "sent";
  scheduleHistory();
  const reply = await conn.request({ type: "speak", id, [kind]: body, mode });
  if (reply.type === "error") {
    e.state = "error";
    e.error = `${reply.code}: ${reply.message}`;
    log(`speak: ${reply.message}`, "error");
    scheduleHistory();
  } else {
    box.value = "";
  }
}
$("speak").addEventListener("click", speak);
$("cancel").addEventListener("click", () =>
  command({ type: "cancel", all: true }, (r) => (r.cancelled ? "stopped everything playing and queued" : "nothing to stop")),
);
$("speak-text").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
    e.preventDefault();
    speak();
  }
});
document.addEventListener("keydown", (e) => {
  if (e.key === "Escape") {
    $("cancel").click();
    return;
  }
  const typing = ["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement?.tagName);
  if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
  if (e.key === "m") toggleMute();
  else if (e.key === "f") toggleFreeze();
});

// ---- animation ---------------------------------------------------------------------------
function frame() {
  spectrogram.draw();
  plot.draw(now());
  const a = stats.audio;
  if (a.rmsDbfs !== undefined) {
    outMeter.set(a.rmsDbfs, a.peakDbfs);
    $("jb-ms").textContent = fmt(a.bufferedMs);
    $("frames-in").textContent = String(stats.framesReceived);
    $("frames-played").textContent = String(a.framesPlayed);
    $("underruns").textContent = String(a.underruns);
    $("dropped").textContent = String(a.framesDropped);
    $("speaking").dataset.on = String(Boolean(a.speaking));
  }
  $("seq-gaps").textContent = String(stats.seqGaps);
  renderConnection();
  requestAnimationFrame(frame);
}

renderAudioState();
renderConnection();
conn.connect();
requestAnimationFrame(frame);
