// Stamps taken while offline, kept in IndexedDB (they survive a closed tab or a restart) and
// sent in order when the network is back. Each keeps the Idempotency-Key it was given when the
// cashier tapped, so a stamp whose answer was lost is never written twice.

const DB_NAME = "treu-till";
const STORE = "stamps";

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

let opening = null;
function open() {
  if (!opening) {
    const req = indexedDB.open(DB_NAME, 1);
    req.onupgradeneeded = () => {
      // seq: the order the cashier stamped in, which is the order they are sent in.
      req.result.createObjectStore(STORE, { keyPath: "seq", autoIncrement: true });
    };
    opening = request(req);
  }
  return opening;
}

async function store(mode) {
  const db = await open();
  return db.transaction(STORE, mode).objectStore(STORE);
}

/** Keep a stamp for later: {key, token, count, program_id, secret, queued_at}. */
export async function add(item) {
  return request((await store("readwrite")).add(item));
}

export async function all() {
  return request((await store("readonly")).getAll());
}

export async function count() {
  return request((await store("readonly")).count());
}

export async function remove(seq) {
  return request((await store("readwrite")).delete(seq));
}

/** Drop the stamps a device can no longer send (it was revoked); returns how many. */
export async function dropFor(secret) {
  const gone = (await all()).filter((item) => item.secret === secret);
  for (const item of gone) await remove(item.seq);
  return gone.length;
}

export async function put(item) {
  return request((await store("readwrite")).put(item));
}

/**
 * Send every waiting stamp, oldest first. `post(item)` sends one and returns the Response;
 * it throws when the network is down, which ends this round (the rest wait for the next), and
 * a 5xx (a 503: the server's database or disk is out for a moment) ends it the same way.
 * A card refused for its cooldown (the server stamps with its own clock, so two offline stamps
 * of one card arrive close together) waits for Retry-After; its later stamps wait behind it.
 * Returns {sent, refused: [{item, problem}], waiting, locked: {problem, secret} | null}.
 */
export async function sync(post) {
  const outcome = { sent: 0, refused: [], waiting: 0, locked: null };
  const run = async () => {
    const held = new Set();
    for (const item of await all()) {
      if (outcome.locked) break;
      if (held.has(item.token) || (item.not_before || 0) > Date.now()) {
        held.add(item.token);
        continue;
      }
      let response;
      try {
        response = await post(item);
      } catch {
        break; // offline again: try later, nothing lost
      }
      if (response.ok) {
        await remove(item.seq);
        outcome.sent += 1;
        continue;
      }
      const problem = await response.json().catch(() => ({}));
      if (response.status === 401) {
        outcome.locked = { problem, secret: item.secret };
      } else if (response.status === 429 && problem.code === "cooldown") {
        const wait = Number(response.headers.get("Retry-After") || "60");
        item.not_before = Date.now() + wait * 1000;
        await put(item);
        held.add(item.token);
      } else if (response.status >= 500 || problem.code === "in-flight") {
        break; // the server is busy, restarting or still on it: try later
      } else {
        // The rules refuse it (daily maximum, deleted card...): it would be refused online too.
        await remove(item.seq);
        outcome.refused.push({ item, problem });
      }
    }
    outcome.waiting = await count();
  };
  // Two tabs of the same till must not send the same queue at once (the keys would make it
  // harmless, but the counts shown would jump).
  if (navigator.locks) await navigator.locks.request("treu-till-sync", run);
  else await run();
  return outcome;
}
