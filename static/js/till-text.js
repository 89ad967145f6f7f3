// What the till says, in the page's language (rendered by the server into #till-messages), and
// where a paired till keeps its device secret: only in this browser's localStorage.

export const T = JSON.parse(document.getElementById("till-messages").textContent);

export const DEVICE_STORE = "treu.till.device"; // {secret, device: {id, label}, merchant: {slug, name}}
export const REVOKED_STORE = "treu.till.revoked";

/** "{0} of {1} stamps" → "7 of 10 stamps". */
export function fmt(template, ...args) {
  return String(template).replace(/\{(\d+)\}/g, (_, i) => String(args[Number(i)] ?? ""));
}

/**
 * A refusal from the API in the cashier's language, by its problem code. The API's English
 * detail carries the numbers (seconds, stamps) in the order the translation expects them.
 */
export function problemText(problem) {
  const template = problem && T[problem.code];
  if (!template) return (problem && problem.detail) || T.server;
  return fmt(template, ...((problem.detail || "").match(/\d+/g) || []));
}

export async function readProblem(response) {
  try {
    return await response.json();
  } catch {
    return { status: response.status, detail: T.server };
  }
}

export function loadDevice() {
  try {
    const device = JSON.parse(localStorage.getItem(DEVICE_STORE) || "null");
    return device && typeof device.secret === "string" ? device : null;
  } catch {
    return null;
  }
}

/** crypto.randomUUID where the page is a secure context; the same from getRandomValues elsewhere. */
export function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
