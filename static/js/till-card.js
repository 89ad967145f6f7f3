// Finding and checking a card token in the browser, so the till works without the network.
// Mirrors app/tokens/crypto.py: find_card() and verify_token(). The server's verify keys come
// from /.well-known/treu-keys.json and are kept in localStorage for offline use.

const TOKEN_CHARS = 136;
const KID_BYTES = 4;
const CARD_ID_BYTES = 16;
const TOKEN_VERSION = 1;
const DOMAIN = new TextEncoder().encode("treu/card-token/v1\u0000");
const MAX_SCAN_CHARS = 4096;
const KEYS_STORE = "treu.till.keys";

// A scanner that "types" the code with a keyboard layout other than the computer's swaps some
// letters and mangles punctuation; the base32 token survives, apart from these swaps.
const LAYOUT_REPAIRS = [
  null,
  { Y: "Z", Z: "Y" }, // US scanner, German/Austrian/Swiss keyboard
  { A: "Q", Q: "A", Z: "W", W: "Z", "É": "2", '"': "3", "'": "4", "(": "5", "-": "6", "È": "7" },
];
const LONG_RUN = new RegExp(`[A-Z2-7]{${TOKEN_CHARS},}`, "g");

export function base32decode(text) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  const out = new Uint8Array(Math.floor((text.length * 5) / 8));
  let bits = 0, value = 0, index = 0;
  for (const char of text) {
    value = (value << 5) | alphabet.indexOf(char);
    bits += 5;
    if (bits >= 8) {
      out[index++] = (value >>> (bits - 8)) & 0xff;
      bits -= 8;
    }
  }
  return out;
}

function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Every 136-character stretch of what was scanned that could be the token, best first. */
export function candidates(scanned) {
  if (typeof scanned !== "string" || scanned.length > MAX_SCAN_CHARS) return [];
  const upper = scanned.toUpperCase();
  const found = [];
  for (const repair of LAYOUT_REPAIRS) {
    const text = repair ? Array.from(upper, (c) => repair[c] ?? c).join("") : upper;
    // A mangled separator may itself read as a base32 letter and join the run: try both ends;
    // the token is last in a card URL.
    const runs = text.match(LONG_RUN) || [];
    for (const run of runs.reverse()) {
      for (const candidate of [run.slice(-TOKEN_CHARS), run.slice(0, TOKEN_CHARS)]) {
        if (!found.includes(candidate)) found.push(candidate);
      }
    }
  }
  return found;
}

function parse(token) {
  const raw = base32decode(token);
  return {
    version: raw[0],
    kid: raw.slice(1, 1 + KID_BYTES),
    cardId: raw.slice(1 + KID_BYTES, 1 + KID_BYTES + CARD_ID_BYTES),
    signature: raw.slice(1 + KID_BYTES + CARD_ID_BYTES),
  };
}

/** The server's verify keys: fetched when online, else the last copy kept. */
export class Keys {
  constructor() {
    this.byKid = new Map();
    this.imported = new Map();
    this.ed25519 = null; // unknown until first tried
    try {
      this.load(JSON.parse(localStorage.getItem(KEYS_STORE) || "null"));
    } catch {
      /* a damaged copy is replaced by the next fetch */
    }
  }

  load(document) {
    if (!document || !Array.isArray(document.keys)) return;
    this.byKid = new Map(document.keys.filter((k) => k.alg === "Ed25519").map((k) => [k.kid, k]));
    this.imported.clear();
  }

  get known() {
    return this.byKid.size > 0;
  }

  async refresh() {
    const response = await fetch("/.well-known/treu-keys.json", { cache: "no-cache" });
    if (!response.ok) throw new Error(`keys: ${response.status}`);
    const document = await response.json();
    this.load(document);
    localStorage.setItem(KEYS_STORE, JSON.stringify(document));
  }

  async key(kidHex) {
    if (this.imported.has(kidHex)) return this.imported.get(kidHex);
    const entry = this.byKid.get(kidHex);
    if (!entry) return null;
    const raw = Uint8Array.from(atob(entry.public_key), (c) => c.charCodeAt(0));
    const key = await crypto.subtle.importKey("raw", raw, { name: "Ed25519" }, false, ["verify"]);
    this.imported.set(kidHex, key);
    return key;
  }

  /** true: genuine; false: forged or unknown key; null: this browser cannot check Ed25519. */
  async verify(token) {
    const { version, kid, cardId, signature } = parse(token);
    const kidHex = hex(kid);
    if (version !== TOKEN_VERSION || (this.known && !this.byKid.has(kidHex))) return false;
    if (!this.known || this.ed25519 === false || !crypto.subtle) return null;
    let key;
    try {
      key = await this.key(kidHex);
      this.ed25519 = true;
    } catch {
      this.ed25519 = false; // e.g. an older Safari: the server checks instead
      return null;
    }
    const message = new Uint8Array(DOMAIN.length + kid.length + cardId.length);
    message.set(DOMAIN, 0);
    message.set(kid, DOMAIN.length);
    message.set(cardId, DOMAIN.length + kid.length);
    return crypto.subtle.verify({ name: "Ed25519" }, key, signature, message);
  }
}

/**
 * Find the card in whatever was scanned or typed.
 * Returns {token, verified} (verified: true, or null when it could not be checked here),
 * or null when nothing in the text is a genuine treu card.
 */
export async function findCard(keys, scanned) {
  let unchecked = null;
  for (const candidate of candidates(scanned)) {
    const verdict = await keys.verify(candidate);
    if (verdict === true) return { token: candidate, verified: true };
    if (verdict === null && unchecked === null) unchecked = candidate;
  }
  return unchecked === null ? null : { token: unchecked, verified: null };
}
