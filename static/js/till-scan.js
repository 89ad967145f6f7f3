// The till's three ways in: the camera (continuous QR scanning), a handheld scanner that types
// like a keyboard, and a field to paste or type into. Each calls onScan(text) with raw text;
// finding the token in it is till-card.js's job.

const VENDOR = "/static/vendor";
// Handheld scanners type a whole code in well under a second; people do not. The typical gap
// between keys decides (the median, so one hiccup of a busy tablet or a Bluetooth link does not
// cut a scan in two); a pause of a second starts afresh.
const SCANNER_GAP_MS = 60;
const SCANNER_MIN_CHARS = 8;
const PAUSE_MS = 1000;
const QUIET_MS = 90; // a lone key counts as a shortcut once no further key follows this soon

/** The native BarcodeDetector where it reads QR codes, else the zxing-wasm polyfill. */
async function qrDetector() {
  if ("BarcodeDetector" in window) {
    try {
      const formats = await window.BarcodeDetector.getSupportedFormats();
      if (formats.includes("qr_code")) return new window.BarcodeDetector({ formats: ["qr_code"] });
    } catch {
      /* fall through to the polyfill */
    }
  }
  const zxing = await import(`${VENDOR}/barcode-detector/es/ponyfill.js`);
  // The WebAssembly comes from treu itself, never from the library's default CDN.
  zxing.setZXingModuleOverrides({
    locateFile: (path, prefix) =>
      path.endsWith(".wasm") ? `${VENDOR}/zxing-wasm/reader/${path}` : prefix + path,
  });
  return new zxing.BarcodeDetector({ formats: ["qr_code"] });
}

export class Camera {
  constructor(video, { onScan, onState }) {
    this.video = video;
    this.onScan = onScan;
    this.onState = onState;
    this.stream = null;
    this.detector = null;
    this.running = false;
  }

  async start() {
    if (this.running) return;
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      this.onState(window.isSecureContext ? "camera_missing" : "camera_insecure");
      return;
    }
    this.running = true;
    this.onState("camera_starting");
    try {
      const detector = this.detector ? Promise.resolve(this.detector) : qrDetector();
      this.stream = await navigator.mediaDevices.getUserMedia({
        audio: false,
        video: { facingMode: { ideal: "environment" }, width: { ideal: 1280 }, height: { ideal: 720 } },
      });
      this.video.srcObject = this.stream;
      await this.video.play().catch(() => {});
      this.detector = await detector;
    } catch (error) {
      this.stop(false);
      const name = error && error.name;
      if (name === "NotAllowedError" || name === "SecurityError") this.onState("camera_denied");
      else if (name === "NotFoundError" || name === "OverconstrainedError") this.onState("camera_missing");
      else if (name === "NotReadableError" || name === "AbortError") this.onState("camera_busy");
      else this.onState("camera_failed");
      return;
    }
    if (!this.running) return; // stopped while starting
    this.onState("camera_on");
    this.loop();
  }

  stop(report = true) {
    this.running = false;
    if (this.stream) this.stream.getTracks().forEach((track) => track.stop());
    this.stream = null;
    this.video.srcObject = null;
    if (report) this.onState("camera_off");
  }

  async loop() {
    while (this.running) {
      const started = performance.now();
      if (this.video.readyState >= 2 && !document.hidden) {
        try {
          for (const code of await this.detector.detect(this.video)) {
            if (code.rawValue) this.onScan(code.rawValue, "camera");
          }
        } catch {
          /* a frame that could not be read: the next one will do */
        }
      }
      // About eight looks a second, less if decoding is slow, so the tablet stays responsive.
      const spent = performance.now() - started;
      await new Promise((resolve) => setTimeout(resolve, Math.max(40, 120 - spent)));
    }
  }
}

function typingIntoField(target) {
  if (!target || !(target instanceof HTMLElement)) return false;
  if (target.isContentEditable) return true;
  if (target instanceof HTMLTextAreaElement || target instanceof HTMLSelectElement) return true;
  return target instanceof HTMLInputElement && !["button", "submit", "checkbox", "radio"].includes(target.type);
}

/**
 * Keys typed with no text field focused: a fast burst ending in Enter is a handheld scan;
 * a lone key is a shortcut (Enter, Escape, digits) handed to onKey once it is clear that no
 * scan is under way.
 */
export class KeyboardWedge {
  constructor({ onScan, onKey, active }) {
    this.onScan = onScan;
    this.onKey = onKey;
    this.active = active;
    this.buffer = "";
    this.times = [];
    this.pending = null;
    document.addEventListener("keydown", (event) => this.keydown(event), true);
  }

  reset() {
    this.buffer = "";
    this.times = [];
  }

  isScan() {
    if (this.buffer.length < SCANNER_MIN_CHARS) return false;
    const gaps = this.times.slice(1).map((t, i) => t - this.times[i]).sort((a, b) => a - b);
    return gaps[Math.floor(gaps.length / 2)] <= SCANNER_GAP_MS;
  }

  keydown(event) {
    if (!this.active() || typingIntoField(event.target) || event.ctrlKey || event.metaKey || event.altKey) {
      return;
    }
    const now = performance.now();
    const last = this.times[this.times.length - 1];
    if (last !== undefined && now - last > PAUSE_MS) this.reset();
    clearTimeout(this.pending);
    if (event.key === "Enter") {
      // Never let Enter "click" whatever button kept the focus: the till decides what it means.
      event.preventDefault();
      if (this.isScan()) {
        const text = this.buffer;
        this.reset();
        this.onScan(text, "scanner");
      } else {
        this.reset();
        this.onKey("Enter");
      }
      return;
    }
    if (event.key.length !== 1) {
      if (event.key === "Escape") this.onKey("Escape");
      return;
    }
    if (event.key === " ") event.preventDefault();
    this.buffer += event.key;
    this.times.push(now);
    // Digits are shortcuts (+N); no scan starts with one (tokens start with "A", URLs with "h").
    if (this.buffer.length === 1 && /^[1-9]$/.test(event.key)) {
      const key = event.key;
      this.pending = setTimeout(() => {
        if (this.buffer.length === 1) {
          this.reset();
          this.onKey(key);
        }
      }, QUIET_MS);
    }
  }
}
