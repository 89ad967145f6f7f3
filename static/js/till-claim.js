// Claim codes for shops without camera or scanner: the till shows a one-time QR for N stamps,
// the customer scans it with the phone, the till watches until it is claimed.
import { sensibleCounts } from "./till-rewards.js";
import { beep } from "./till-sound.js";
import { T, fmt, newKey, problemText } from "./till-text.js";

const POLL_MS = 1500;
const $ = (id) => document.getElementById(id);
const claim = { poll: null, url: null, code: null, expiresAt: 0, count: 0 };
let till = null; // {api, program, programId, writeTimeout, maxButtons}

/** Wire the dialog; `deps` gives the till's authenticated fetch and its current program. */
export function setupClaims(deps) {
  till = deps;
  $("till-claim-again").addEventListener("click", open);
  $("till-claim-close").addEventListener("click", () => $("till-claim").close());
  $("till-claim").addEventListener("close", () => {
    stop();
    if (claim.url) URL.revokeObjectURL(claim.url);
    claim.url = null;
  });
  return open;
}

function open() {
  const p = till.program();
  $("till-claim-counts").replaceChildren(
    ...Array.from({ length: Math.min(p ? sensibleCounts(p) : 1, till.maxButtons) }, (_, i) => {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = `${i + 1}`;
      button.addEventListener("click", () => make(i + 1));
      return button;
    }),
  );
  $("till-claim-choose").hidden = false;
  $("till-claim-show").hidden = true;
  $("till-claim-again").hidden = true;
  $("till-claim-error").hidden = true;
  if (!$("till-claim").open) $("till-claim").showModal();
}

function showError(text) {
  $("till-claim-error").textContent = text;
  $("till-claim-error").hidden = false;
}

async function make(count) {
  $("till-claim-error").hidden = true;
  let response;
  let data = null;
  let qr = null;
  try {
    response = await till.api("/api/v1/claims", {
      method: "POST", body: { count, program_id: till.programId() }, key: newKey(),
      timeout: till.writeTimeout,
    });
    if (response.ok) {
      data = await response.json();
      // Drawn by the server (app/tokens/qr.py), like every other QR code of treu.
      qr = await till.api(`/api/v1/till/qr.svg?text=${encodeURIComponent(data.claim_url)}`);
    }
  } catch {
    showError(T.offline_claim);
    return;
  }
  if (!response.ok) {
    if (response.status !== 401) showError(problemText(await response.json().catch(() => ({}))));
    return;
  }
  if (!qr || !qr.ok) {
    showError(T.server);
    return;
  }
  stop();
  if (claim.url) URL.revokeObjectURL(claim.url);
  claim.url = URL.createObjectURL(await qr.blob());
  claim.code = data.code;
  claim.count = data.count;
  claim.expiresAt = Date.parse(data.expires_at);
  $("till-claim-qr").src = claim.url;
  $("till-claim-qr").alt = data.claim_url;
  $("till-claim-what").textContent =
    data.count === 1 ? fmt(T.claim_for_one, data.program.reward) : fmt(T.claim_for, data.count, data.program.reward);
  $("till-claim-choose").hidden = true;
  $("till-claim-show").hidden = false;
  $("till-claim-show").className = "";
  $("till-claim-again").hidden = false;
  claim.poll = setInterval(poll, POLL_MS);
  tick();
}

function tick() {
  if ($("till-claim-show").className) return; // claimed or expired: the line says so
  const left = Math.max(0, Math.round((claim.expiresAt - Date.now()) / 1000));
  const clock = `${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}`;
  $("till-claim-state").textContent = `${T.claim_scan} · ${fmt(T.claim_expires, clock)}`;
}

async function poll() {
  tick();
  if (!claim.code) return;
  let status;
  try {
    const response = await till.api(`/api/v1/claims/${encodeURIComponent(claim.code)}`);
    if (!response.ok) return;
    status = await response.json();
  } catch {
    return; // offline for a moment: ask again next time
  }
  if (status.claimed) {
    finish("claimed", fmt(T.claim_claimed, claim.count));
    beep(true);
  } else if (status.expired) {
    finish("expired", T["claim-expired"]);
  }
}

function finish(kind, text) {
  stop();
  $("till-claim-show").className = kind;
  $("till-claim-state").textContent = text;
}

function stop() {
  clearInterval(claim.poll);
  claim.poll = null;
  claim.code = null;
}
