// The page's WebSocket to the daemon: decodes audio frames and JSON events, reconnects on its
// own with backoff, and treats a silent socket (no frame or event for a while) as dead.
//
// Events dispatched: "state" (this.state changed), "hello", "message" (detail: JSON object),
// "audio" (detail: {seq, flags, silence, end, sampleRate, requestId, pcm: Int16Array}).

const BACKOFF_MS = [250, 500, 1000, 2000, 3000];
const SILENT_TIMEOUT_MS = 3000; // the daemon sends a frame every 40 ms and status at 10 Hz
const MAGIC = [0x56, 0x43, 0x53, 0x41]; // "VCSA"
const FLAG_SILENCE = 0x0001;
const FLAG_END = 0x0002;
const decoder = new TextDecoder("ascii");

export function decodeAudio(buf) {
  const view = new DataView(buf);
  if (buf.byteLength < 64) throw new Error(`audio message of ${buf.byteLength} bytes`);
  for (let i = 0; i < 4; i++) {
    if (view.getUint8(i) !== MAGIC[i]) throw new Error("not a vcstream audio message");
  }
  const headerBytes = view.getUint8(5);
  const flags = view.getUint16(6, true);
  const rid = new Uint8Array(buf, 32, 32);
  let end = rid.indexOf(0);
  if (end < 0) end = 32;
  // Int16Array uses the platform's byte order: little-endian on every browser platform,
  // and the header length is even, so the view is aligned.
  return {
    seq: Number(view.getBigUint64(8, true)),
    flags,
    silence: (flags & FLAG_SILENCE) !== 0,
    end: (flags & FLAG_END) !== 0,
    sampleRate: view.getUint32(24, true),
    requestId: decoder.decode(rid.subarray(0, end)),
    pcm: new Int16Array(buf, headerBytes, (buf.byteLength - headerBytes) >> 1),
  };
}

export class Connection extends EventTarget {
  constructor(url, { token = "" } = {}) {
    super();
    this.url = url;
    this.token = token;
    this.ws = null;
    this.state = "connecting"; // connecting | connected | reconnecting
    this.hello = null;
    this.attempt = 0;
    this.retryAt = 0;
    this.lastMessageAt = 0;
    this.pending = new Map(); // request id -> {resolve, reject}
    // A cancel's `id` names the request to cancel, so a cancel without a target carries no id
    // of its own; its reply (which then has none either) is matched by type, oldest first.
    this.unaddressed = []; // [{to, resolve}]
    this.counter = 0;
    this.prefix = `w${Math.floor(Math.random() * 0xffffff).toString(36)}`;
    this.connects = 0;
    setInterval(() => this.watchdog(), 500);
  }

  setState(state) {
    if (state === this.state) return;
    this.state = state;
    this.dispatchEvent(new Event("state"));
  }

  connect() {
    this.ws = new WebSocket(this.url);
    this.ws.binaryType = "arraybuffer";
    this.lastMessageAt = performance.now();
    const ws = this.ws;
    ws.onmessage = (msg) => {
      if (ws !== this.ws) return;
      this.lastMessageAt = performance.now();
      if (typeof msg.data !== "string") {
        let frame;
        try {
          frame = decodeAudio(msg.data);
        } catch (err) {
          console.warn("bad audio message:", err.message);
          return;
        }
        this.dispatchEvent(new CustomEvent("audio", { detail: frame }));
        return;
      }
      const obj = JSON.parse(msg.data);
      if (obj.type === "hello") {
        this.hello = obj;
        if (obj.auth_required) ws.send(JSON.stringify({ type: "auth", token: this.token }));
        this.attempt = 0;
        this.connects += 1;
        this.setState("connected");
        this.dispatchEvent(new Event("hello"));
        return;
      }
      if ((obj.type === "reply" || obj.type === "error") && obj.id && this.pending.has(obj.id)) {
        const p = this.pending.get(obj.id);
        this.pending.delete(obj.id);
        p.resolve(obj);
      } else if ((obj.type === "reply" || obj.type === "error") && !obj.id) {
        const i = this.unaddressed.findIndex((u) => u.to === obj.to);
        if (i >= 0) this.unaddressed.splice(i, 1)[0].resolve(obj);
      }
      this.dispatchEvent(new CustomEvent("message", { detail: obj }));
    };
    ws.onclose = (e) => {
      if (ws === this.ws) this.lost(`${e.code}${e.reason ? " " + e.reason : ""}`);
    };
  }

  // The socket is gone (closed by either side, or silent too long): fail what waits on it
  // and try again.
  lost(why) {
    const ws = this.ws;
    this.ws = null;
    if (ws && ws.readyState <= WebSocket.OPEN) ws.close();
    this.lastClose = why;
    for (const p of [...this.pending.values(), ...this.unaddressed]) {
      p.resolve({ type: "error", code: "disconnected", message: "connection lost" });
    }
    this.pending.clear();
    this.unaddressed = [];
    this.scheduleReconnect();
  }

  scheduleReconnect() {
    const delay = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    this.attempt += 1;
    this.retryAt = performance.now() + delay;
    this.setState("reconnecting");
    setTimeout(() => this.connect(), delay);
  }

  watchdog() {
    if (this.ws && this.ws.readyState === WebSocket.OPEN && this.state === "connected") {
      if (performance.now() - this.lastMessageAt > SILENT_TIMEOUT_MS) {
        // A hung daemon or a half-open TCP connection: start again.
        this.lost("no data for 3 s");
      }
    }
  }

  newId(kind) {
    this.counter += 1;
    return `${this.prefix}-${kind.slice(0, 2)}${this.counter}`;
  }

  // Send a control message; resolves with its reply or error message.
  request(msg) {
    const untargeted = msg.type === "cancel" && !msg.id;
    const id = untargeted ? undefined : msg.id || this.newId(msg.type);
    const body = untargeted ? { ...msg } : { ...msg, id };
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN || this.state !== "connected") {
      return Promise.resolve({ type: "error", id, code: "disconnected", message: "not connected to the daemon" });
    }
    return new Promise((resolve) => {
      if (untargeted) this.unaddressed.push({ to: msg.type, resolve });
      else this.pending.set(id, { resolve });
      this.ws.send(JSON.stringify(body));
    });
  }
}
