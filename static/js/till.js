// The till: scan a card, see its stamps at once, stamp (+1 is Enter), redeem, undo; offline,
// stamps wait in IndexedDB and are sent when the network is back.
import { Keys, findCard } from "./till-card.js";
import { setupClaims } from "./till-claim.js";
import { keepForOffline } from "./till-offline.js";
import * as queue from "./till-queue.js";
import { dueRewards, nextGoal, redeemLabel, sensibleCounts, stampWords } from "./till-rewards.js";
import { Camera, KeyboardWedge } from "./till-scan.js";
import { beep, soundOn, toggleSound } from "./till-sound.js";
import {
  DEVICE_STORE, REVOKED_STORE, T, fmt, loadDevice, newKey, problemText, readProblem,
} from "./till-text.js";

const INFO_STORE = "treu.till.info";
const CAMERA_STORE = "treu.till.camera";
const WRITE_TIMEOUT_MS = 5000; // then the stamp is kept on the till and sent later
const READ_TIMEOUT_MS = 3000;
const SAME_CODE_MS = 2500; // the camera sees a card many times a second: act once
const PLUS_BUTTONS = 6; // +2 … +6 as buttons; larger counts by digit keys up to the limit
// The server (or its database, or a proxy in front) is out for a moment: as good as offline.
const UNAVAILABLE = new Set([502, 503, 504]);

const $ = (id) => document.getElementById(id);
const keys = new Keys();
const state = {
  device: loadDevice(),
  info: null,
  online: navigator.onLine,
  // balances: {program_id: balance and `until`, when its cooldown ends}; tier: {name, perk}
  card: null, // {token, verified, balances | null, tier, stale}
  programId: null, // the program chosen for stamps, when the shop runs several
  asked: null, // the reward the confirm dialog asks about
  busy: false,
  // The last action, for undo: {kind, delta, token, at, programId, entryId?, seq?, bonus?, reward?}
  last: null,
  lastCamera: { text: "", at: 0 },
  cardSeq: 0,
  // When each card was last stamped here (by this till, or as the server said at a scan), so
  // that offline the till refuses a second stamp inside the cooldown as the server would.
  stampedAt: new Map(),
};

// ------------------------------------------------------------------ talking to the server

function withTimeout(ms) {
  const controller = new AbortController();
  setTimeout(() => controller.abort(), ms);
  return controller.signal;
}

/**
 * fetch with the device secret; throws when the network is down (or too slow), or when the
 * server answers 502, 503 or 504: every caller then does what it does offline, so a stamp is
 * kept on the till and sent again later with the same Idempotency-Key (never lost, never
 * doubled).
 */
async function api(path, { method = "GET", body, key, timeout = READ_TIMEOUT_MS } = {}) {
  if (!state.device) throw new Error("this till is not paired");
  const headers = { Authorization: `Bearer ${state.device.secret}`, Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (key) headers["Idempotency-Key"] = key;
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
    signal: withTimeout(timeout),
  });
  if (UNAVAILABLE.has(response.status)) throw new Error(`unavailable (${response.status})`);
  // The service worker answers a GET from its cache when the network is gone, and says so.
  setOnline(response.headers.get("X-Treu-Offline") !== "1");
  if (response.status === 401) {
    const problem = await readProblem(response.clone());
    lock(problem);
  }
  return response;
}

// ------------------------------------------------------------------ the till's state

function programs() {
  return (state.info && state.info.programs) || [];
}

/** Paused and ended programs take no stamps (their rewards can still be redeemed). */
function takesStamps(p) {
  return p.active && !p.ended;
}

function stampable() {
  return programs().filter(takesStamps);
}

/** The program stamps go to: the one chosen, else the first that takes stamps. */
function program() {
  const open = stampable();
  return (
    open.find((p) => p.id === state.programId) || open[0] ||
    programs().find((p) => !p.ended) || programs()[0] || null
  );
}

function balanceOf(p) {
  if (!state.card || !state.card.balances || !p) return null;
  return state.card.balances[p.id] || { stamps: 0, rewards_available: 0, cooldown_remaining: 0, until: 0 };
}

function balance() {
  return balanceOf(program());
}

/**
 * The rewards to offer: the chosen program's, then those of paused and ended programs (which
 * have no button of their own), marked `aside`.
 */
function rewardsDue() {
  const chosen = program();
  const due = dueRewards(chosen, balanceOf(chosen));
  for (const p of programs()) {
    if (!takesStamps(p) && p !== chosen && state.card.balances && state.card.balances[p.id]) {
      due.push(...dueRewards(p, balanceOf(p)).map((reward) => ({ ...reward, aside: true })));
    }
  }
  return due;
}

/** With several programs a message names the program it is about. */
function named(p, text) {
  return p && (stampable().length > 1 || !takesStamps(p)) ? fmt(T.in_program, p.name, text) : text;
}

function setOnline(online) {
  state.online = online;
  const net = $("till-net");
  net.textContent = online ? T.online : T.offline;
  $("till-status").classList.toggle("is-offline", !online);
  renderCard();
}

async function updateWaiting() {
  const waiting = await queue.count().catch(() => 0);
  const badge = $("till-waiting");
  badge.hidden = waiting === 0;
  badge.textContent = fmt(T.waiting, waiting);
  return waiting;
}

// ------------------------------------------------------------------ showing things

function showSection(id) {
  for (const section of ["till-unpaired", "till-locked", "till-app"]) $(section).hidden = section !== id;
  $("till-status").hidden = id !== "till-app";
  $("till-where").hidden = id !== "till-app";
  $("till-sound").hidden = id !== "till-app";
}

/** Show what happened; `code` (the card's short code here) says which card it happened to. */
function result(kind, text, code = "") {
  const box = $("till-result");
  box.hidden = false;
  box.className = `till-result ${kind}`;
  $("till-result-text").textContent = text;
  $("till-result-card").hidden = !code;
  $("till-result-card").textContent = code ? fmt(T.card_code, code) : "";
  // Restart the flash, so the same message twice still visibly arrives.
  box.classList.remove("flash");
  void box.offsetWidth;
  box.classList.add("flash");
  beep(kind === "ok" || kind === "queued");
}

function clearResult() {
  $("till-result").hidden = true;
}

function span(className, text) {
  const node = document.createElement("span");
  node.className = className;
  node.textContent = text; // merchant texts as entered, never as HTML
  return node;
}

/** One large button per program that takes stamps, when there are several: the chosen one marked. */
function renderPrograms() {
  const row = $("till-programs");
  const list = stampable();
  row.hidden = list.length < 2;
  if (row.hidden) return;
  const chosen = program();
  row.replaceChildren(
    ...list.map((p) => {
      const tab = document.createElement("button");
      tab.type = "button";
      tab.className = "till-program";
      tab.setAttribute("role", "tab");
      tab.setAttribute("aria-selected", String(p.id === chosen.id));
      tab.append(span("till-program-name", p.name));
      const b = state.card && state.card.balances && state.card.balances[p.id];
      if (b) tab.append(span("till-program-count", `${b.stamps}/${p.stamps_required}`));
      if (dueRewards(p, b).length) tab.append(span("till-program-due", "★"));
      tab.addEventListener("click", () => {
        state.programId = p.id;
        renderCard();
      });
      return tab;
    }),
  );
}

function renderPlusButtons() {
  const p = program();
  const row = $("till-plusn");
  const max = p && !p.ended ? Math.min(sensibleCounts(p), PLUS_BUTTONS) : 0;
  row.replaceChildren();
  for (let n = 2; n <= max; n += 1) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "secondary";
    button.textContent = `+${n}`;
    button.dataset.count = String(n);
    button.addEventListener("click", () => stamp(n));
    row.append(button);
  }
}

function renderCard() {
  const card = state.card;
  $("till-idle").hidden = Boolean(card);
  $("till-current").hidden = !card;
  if (!card) return;
  const p = program();
  if (!p) return;
  renderPrograms();
  renderTier();
  const code = $("till-card-code");
  code.hidden = !card.code;
  code.textContent = card.code ? fmt(T.card_code, card.code) : "";
  const b = balance();
  const required = p.stamps_required;
  const count = $("till-count-text");
  const dots = $("till-dots");
  if (b) {
    count.textContent = fmt(T.stamps_of, b.stamps, required);
    const filled = b.stamps % required || (b.stamps > 0 && b.rewards_available > 0 ? required : 0);
    const levels = new Set((p.levels || []).map((level) => level.stamps));
    dots.replaceChildren(
      ...Array.from({ length: Math.min(required, 30) }, (_, i) => {
        const dot = document.createElement("li");
        if (i < filled) dot.classList.add("on");
        if (levels.has(i + 1)) dot.classList.add("level"); // a lower reward sits here
        return dot;
      }),
    );
    dots.hidden = false;
  } else {
    count.textContent = state.card.verified === false ? "" : T.card_ok;
    dots.hidden = true;
  }
  const due = b ? rewardsDue() : [];
  const banner = $("till-due");
  banner.hidden = !due.length;
  if (due.length > 1) banner.textContent = T.choose_reward;
  else if (due.length) {
    banner.textContent = due[0].count > 1
      ? fmt(T.rewards_due, due[0].count, due[0].text) : fmt(T.reward_due, due[0].text);
  }
  $("till-current").classList.toggle("is-due", due.length > 0);

  renderHint();
  renderRewards(due);
  // An ended program takes no more stamps: only its rewards are offered.
  $("till-plus1").hidden = Boolean(p.ended);
  renderPlusButtons();
  for (const button of document.querySelectorAll(".till-actions button")) button.disabled = state.busy;
}

/** One button per due reward, the largest first; none of them is what Enter does. */
function renderRewards(due) {
  $("till-rewards").replaceChildren(
    ...due.map((reward) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "till-redeem";
      button.textContent = redeemLabel(reward);
      button.addEventListener("click", () => askRedeem(reward));
      return button;
    }),
  );
}

/** The card's regulars' status here and what the cashier gives for it. */
function renderTier() {
  const tier = state.card && state.card.tier;
  const line = $("till-tier");
  line.hidden = !tier;
  if (tier) line.textContent = tier.perk ? fmt(T.tier_perk, tier.name, tier.perk) : tier.name;
}

/** The line under the count: offline state, cooldown countdown, or how many to go. */
function renderHint() {
  const card = state.card;
  const p = program();
  if (!card || !p) return;
  const b = balance();
  const required = p.stamps_required;
  const due = b ? rewardsDue().length : 0;
  const hint = $("till-hint");
  let hintText = "";
  if (card.stale || !state.online) {
    hintText = b ? fmt(T.offline_balance, b.stamps, required) : T.offline_card;
  } else if (b && b.cooldown_remaining > 0 && b.until > Date.now()) {
    const wait = Math.ceil((b.until - Date.now()) / 1000);
    hintText = fmt(T.cooldown, Math.max(p.cooldown_seconds - wait, 0), wait);
  } else if (b && !due && !p.ended) {
    const goal = nextGoal(p, b);
    hintText = fmt(T.to_go, goal.left, goal.text);
  }
  hint.hidden = !hintText;
  hint.textContent = hintText;
}

function renderLast() {
  const last = state.last;
  const bar = $("till-last");
  const windowMs = ((state.info && state.info.undo_window_seconds) || 600) * 1000;
  if (!last || Date.now() - last.at > windowMs) {
    bar.hidden = true;
    return;
  }
  bar.hidden = false;
  $("till-undo").textContent =
    last.kind === "redemption" ? T.undo_what_redeem : fmt(T.undo_what, stampWords(last.delta, last.bonus));
  const ago = agoText(Math.round((Date.now() - last.at) / 1000));
  // Undo acts on the last action, which may belong to the customer before this one.
  const elsewhere = state.card && state.card.token !== last.token;
  $("till-last-when").textContent = elsewhere ? `${T.previous_card}, ${ago}` : ago;
}

/** "just now", "25 seconds ago", "3 minutes ago": as a person says it, not "0 s ago". */
function agoText(seconds) {
  if (seconds < 10) return T.just_now;
  if (seconds < 60) return fmt(T.seconds_ago, seconds);
  const minutes = Math.floor(seconds / 60);
  return minutes === 1 ? T.minute_ago : fmt(T.minutes_ago, minutes);
}

function renderSound() {
  const button = $("till-sound");
  const on = soundOn();
  button.setAttribute("aria-pressed", String(on));
  button.title = on ? button.dataset.titleOn : button.dataset.titleOff;
}

// ------------------------------------------------------------------ a scan arrives

async function onScan(text, source) {
  if (!state.device || $("till-app").hidden) return;
  const now = Date.now();
  if (source === "camera") {
    if (anyDialogOpen()) return;
    const same = text === state.lastCamera.text && now - state.lastCamera.at < SAME_CODE_MS;
    state.lastCamera = { text, at: now };
    if (same) return;
  } else {
    closeDialogs();
  }
  const found = await findCard(keys, text);
  if (!found) {
    // Another QR code drifting through the camera's view must not throw away the card shown.
    if (source !== "camera") {
      state.card = null;
      renderCard();
    }
    result("bad", T["not-a-card"]);
    return;
  }
  if (source === "camera" && state.card && state.card.token === found.token) return;
  flashCamera();
  await openCard(found);
}

async function openCard(found, { keepResult = false } = {}) {
  const seq = ++state.cardSeq;
  state.card = {
    token: found.token, verified: found.verified, balances: null, tier: null, stale: false, code: "",
  };
  if (!keepResult) clearResult();
  renderCard();
  renderLast();
  try {
    const response = await api(`/api/v1/till/cards/${found.token}`);
    if (seq !== state.cardSeq) return; // another card was scanned meanwhile
    if (!response.ok) {
      const problem = await readProblem(response);
      if (response.status === 401) return;
      state.card = null;
      renderCard();
      result("bad", problemText(problem));
      return;
    }
    const data = await response.json();
    const now = Date.now();
    state.card.balances = Object.fromEntries(
      data.balances.map((b) => [b.program_id, { ...b, until: now + b.cooldown_remaining * 1000 }]),
    );
    state.card.tier = data.tier || null;
    state.card.code = data.code || "";
    state.card.stale = response.headers.get("X-Treu-Offline") === "1";
    for (const entry of data.balances) {
      const p = programs().find((q) => q.id === entry.program_id);
      if (p && entry.cooldown_remaining > 0) {
        const at = Date.now() - (p.cooldown_seconds - entry.cooldown_remaining) * 1000;
        state.stampedAt.set(`${found.token}/${p.id}`, at);
      }
    }
  } catch {
    if (seq !== state.cardSeq) return;
    setOnline(false);
    state.card.stale = true; // genuine (checked here), balance unknown until back online
  }
  renderCard();
}

function flashCamera() {
  const camera = $("till-camera");
  camera.classList.remove("seen");
  void camera.offsetWidth;
  camera.classList.add("seen");
}

// ------------------------------------------------------------------ stamp, redeem, undo

/** Which program a request is for: said only when the shop has more than one. */
function programIdFor(p) {
  return programs().length > 1 && p ? p.id : null;
}

function programIdForRequest() {
  return programIdFor(program());
}

async function stamp(count) {
  const card = state.card;
  const p = program();
  if (!card || !p || state.busy || anyDialogOpen()) return;
  if (p.ended) {
    result("bad", T["program-ended"]);
    return;
  }
  if (count > p.max_stamps_per_scan) {
    result("bad", fmt(T["too-many-stamps"], p.max_stamps_per_scan));
    return;
  }
  const key = newKey();
  const body = { token: card.token, count, program_id: programIdForRequest() };
  state.busy = true;
  renderCard();
  try {
    let response;
    try {
      response = await api("/api/v1/stamps", { method: "POST", body, key, timeout: WRITE_TIMEOUT_MS });
    } catch {
      setOnline(false);
      await keepForLater(card, p, body, key);
      return;
    }
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      if (response.status !== 401) result("bad", problemText(data));
      return;
    }
    setBalance(card, data);
    state.stampedAt.set(`${card.token}/${data.program.id}`, Date.now());
    const bonus = data.bonus || [];
    state.last = {
      kind: "stamp", delta: count, bonus, token: card.token, at: Date.now(),
      programId: data.program.id, entryId: data.entry_id,
    };
    const said = bonus.length
      ? fmt(T.stamped_bonus, stampWords(count, bonus), data.stamps, p.stamps_required)
      : fmt(count === 1 ? T.stamped : T.stamped_many, count, data.stamps, p.stamps_required);
    result("ok", named(p, said), card.code);
  } finally {
    state.busy = false;
    renderCard();
    renderLast();
  }
}

/** Offline: keep the stamp (with its key) for later; refuse locally what the server would. */
async function keepForLater(card, p, body, key) {
  if (card.verified === false) {
    result("bad", T["not-a-card"]);
    return;
  }
  const now = Date.now();
  // Queued stamps survive a reload, the in-memory times do not: check both.
  const queued = (await queue.all()).filter((i) => i.token === card.token && i.program_id === body.program_id);
  const latest = Math.max(
    queued.length ? queued[queued.length - 1].queued_at : 0,
    state.stampedAt.get(`${card.token}/${p.id}`) || 0,
  );
  const ago = Math.floor((now - latest) / 1000);
  if (latest && ago < p.cooldown_seconds) {
    result("bad", fmt(T.cooldown, ago, p.cooldown_seconds - ago));
    return;
  }
  const seq = await queue.add({ ...body, key, secret: state.device.secret, queued_at: now });
  state.stampedAt.set(`${card.token}/${p.id}`, now);
  // No bonus is promised: the server decides it when the stamp arrives (sync() learns it then).
  state.last = { kind: "stamp", delta: body.count, bonus: [], token: card.token, programId: p.id, at: now, seq };
  result("queued", named(p, fmt(T.queued, body.count)), card.code);
  await updateWaiting();
}

function setBalance(card, data) {
  if (!card.balances) card.balances = {};
  card.balances[data.program.id] = {
    program_id: data.program.id,
    stamps: data.stamps,
    rewards_available: data.rewards_available,
    cooldown_remaining: 0,
    until: 0,
  };
  card.stale = false;
}

/** Ask before giving a reward: {program, level (null: the main reward), stamps, text}. */
function askRedeem(reward) {
  if (!state.card || !reward || state.busy) return;
  if (!state.online || state.card.stale) {
    result("bad", T.offline_redeem);
    return;
  }
  state.asked = reward;
  $("till-confirm-title").textContent = fmt(T.confirm_redeem, reward.text);
  $("till-confirm-detail").textContent = fmt(T.confirm_redeem_detail, reward.stamps);
  $("till-confirm").showModal();
  $("till-confirm-yes").focus();
}

async function redeem(reward) {
  const card = state.card;
  if (!card || !reward || state.busy) return;
  const p = reward.program;
  const body = { token: card.token, program_id: programIdFor(p) };
  if (reward.level) body.reward_id = reward.level.id;
  state.busy = true;
  renderCard();
  try {
    let response;
    try {
      response = await api("/api/v1/redemptions", {
        method: "POST", body, key: newKey(), timeout: WRITE_TIMEOUT_MS,
      });
    } catch {
      setOnline(false);
      result("bad", T.offline_redeem);
      return;
    }
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      if (response.status !== 401) result("bad", problemText(data));
      return;
    }
    setBalance(card, data);
    state.last = {
      kind: "redemption", delta: 1, token: card.token, at: Date.now(), programId: p.id,
      entryId: data.entry_id, reward,
    };
    result("ok", named(p, fmt(T.redeemed, reward.text, data.stamps)), card.code);
  } finally {
    state.busy = false;
    renderCard();
    renderLast();
  }
}

async function undo() {
  const last = state.last;
  if (!last || state.busy) return;
  if (last.seq !== undefined && !last.entryId) {
    // Still on this till: taking it out of the queue is the whole undo.
    const waiting = (await queue.all()).some((item) => item.seq === last.seq);
    if (waiting) {
      await queue.remove(last.seq);
      state.stampedAt.delete(`${last.token}/${last.programId}`);
      state.last = null;
      result("ok", T.undone_queued);
      await updateWaiting();
      renderLast();
      return;
    }
    if (!last.entryId) return; // being sent right now: the entry id arrives with it
  }
  state.busy = true;
  try {
    let response;
    try {
      response = await api(`/api/v1/entries/${last.entryId}/void`, {
        method: "POST", key: newKey(), timeout: WRITE_TIMEOUT_MS,
      });
    } catch {
      setOnline(false);
      result("bad", T.offline_undo);
      return;
    }
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      if (response.status !== 401) result("bad", problemText(data));
      if (data.code === "voided" || data.code === "undo-window") state.last = null;
      return;
    }
    state.last = null;
    if (last.kind === "stamp") state.stampedAt.delete(`${last.token}/${data.program.id}`);
    const same = state.card && state.card.token === last.token;
    if (same) setBalance(state.card, data);
    result("ok", named(programs().find((p) => p.id === data.program.id), undoneText(last, data)),
      same ? state.card.code : "");
  } finally {
    state.busy = false;
    renderCard();
    renderLast();
  }
}

/** What an undo did, in words: the stamp and its bonuses, or which reward came back. */
function undoneText(last, data) {
  const required = data.program.stamps_required;
  if (last.kind === "stamp") {
    return fmt(T.undone_what, stampWords(last.delta, last.bonus), data.stamps, required);
  }
  const reward = last.reward;
  if (reward && (reward.level || (reward.program.levels || []).length || reward.aside)) {
    return fmt(T.undone_redemption, reward.text, data.stamps, required);
  }
  return fmt(T.undone, data.stamps, required);
}

// ------------------------------------------------------------------ offline queue

let syncing = false;
async function sync() {
  if (syncing || !state.device) return;
  syncing = true;
  try {
    if ((await updateWaiting()) === 0) return;
    $("till-waiting").textContent = T.sending;
    const outcome = await queue.sync(async (item) => {
      const response = await fetch("/api/v1/stamps", {
        method: "POST",
        headers: {
          Authorization: `Bearer ${item.secret}`,
          "Content-Type": "application/json",
          "Idempotency-Key": item.key,
        },
        body: JSON.stringify({ token: item.token, count: item.count, program_id: item.program_id }),
        cache: "no-store",
        signal: withTimeout(WRITE_TIMEOUT_MS),
      });
      if (response.ok && state.last && state.last.seq === item.seq) {
        // Now undoable online; what its undo takes back includes the bonuses it got on arrival.
        const sent = await response.clone().json().catch(() => ({}));
        state.last.entryId = sent.entry_id;
        state.last.bonus = sent.bonus || [];
        renderLast();
      }
      return response;
    });
    if (outcome.locked) {
      if (outcome.locked.secret === state.device.secret) {
        await lock(outcome.locked.problem);
        return;
      }
      // Taken by an earlier pairing of this browser that has since been revoked: never sendable.
      const lost = await queue.dropFor(outcome.locked.secret);
      result("bad", fmt(T.lost, lost));
    }
    if (outcome.sent) {
      setOnline(true);
      if ($("till-result").hidden || !state.card) result("ok", outcome.sent === 1 ? T.sent_one : fmt(T.sent, outcome.sent));
      if (state.card) openCard(state.card, { keepResult: true }); // its stamps may have changed
    }
    for (const { problem } of outcome.refused) result("bad", fmt(T.refused_sync, problemText(problem)));
  } finally {
    syncing = false;
    await updateWaiting();
  }
}

/** Offline or unsure: a cheap read tells whether the server answers again. */
async function probe() {
  if (!state.device || state.online) return;
  try {
    await api("/api/v1/till");
  } catch {
    return;
  }
  if (state.online) sync();
}

// ------------------------------------------------------------------ dialogs

function anyDialogOpen() {
  return Boolean(document.querySelector("dialog[open]"));
}

function closeDialogs() {
  for (const dialog of document.querySelectorAll("dialog[open]")) dialog.close("cancel");
}

// ------------------------------------------------------------------ pairing and locking

async function lock(problem) {
  const secret = state.device && state.device.secret;
  localStorage.removeItem(DEVICE_STORE);
  state.device = null;
  camera.stop(false);
  closeDialogs();
  // What this device still had waiting can never be sent now (not even after pairing anew,
  // which makes a new device): say how much, and let it go.
  const lost = secret ? await queue.dropFor(secret).catch(() => 0) : 0;
  if (problem && problem.code === "device-revoked") {
    localStorage.setItem(REVOKED_STORE, "1");
    showLocked(lost);
  } else {
    showUnpaired(problem ? problemText(problem) : "");
  }
}

function showLocked(lost = 0) {
  showSection("till-locked");
  $("till-locked-lost").hidden = lost === 0;
  $("till-locked-lost").textContent = fmt(T.lost, lost);
}

function showUnpaired(why) {
  showSection("till-unpaired");
  const line = $("till-unpaired-why");
  line.hidden = !why;
  line.textContent = why || "";
}

$("till-unlock").addEventListener("click", () => {
  localStorage.removeItem(REVOKED_STORE);
  showUnpaired("");
});

// Pairing by this till's own camera: an installed web app (e.g. on an iPad home screen) keeps
// its own storage, so the code must be opened inside it, not by the system camera.
const PAIR_URL = /\/till\/pair\/([A-Za-z2-7]{12})(?:[?#]|$)/;
let pairCamera = null;
$("till-pair-scan").addEventListener("click", () => {
  $("till-pair-camera").hidden = false;
  pairCamera = pairCamera || new Camera($("till-pair-video"), {
    onScan: (text) => {
      const match = PAIR_URL.exec(text.trim());
      if (!match) return;
      pairCamera.stop(false);
      location.assign(`/till/pair/${match[1].toUpperCase()}`);
    },
    onState: (name) => {
      $("till-pair-camera").dataset.state = name;
      $("till-pair-camera-msg").textContent = name === "camera_on" ? T.pair_scan : T[name] || "";
    },
  });
  pairCamera.start();
});

$("till-code-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const code = $("till-code").value.toUpperCase().replace(/[\s\-_.]/g, "").replace(/0/g, "O").replace(/1/g, "I").replace(/8/g, "B");
  if (!/^[A-Z2-7]{12}$/.test(code)) {
    showUnpaired(T.code_short);
    return;
  }
  location.assign(`/till/pair/${code}`);
});

// ------------------------------------------------------------------ wiring

const camera = new Camera($("till-video"), {
  onScan,
  onState: (name) => {
    $("till-camera-msg").textContent = T[name] || "";
    $("till-camera").dataset.state = name;
  },
});

new KeyboardWedge({
  active: () => Boolean(state.device) && !$("till-app").hidden,
  onScan,
  onKey: (key) => {
    if ($("till-confirm").open) {
      if (key === "Enter") $("till-confirm").close("ok");
      return;
    }
    if (anyDialogOpen()) return;
    if (key === "Enter") stamp(1);
    else if (key === "Escape") {
      state.card = null;
      clearResult();
      renderCard();
    } else if (/^[1-9]$/.test(key)) stamp(Number(key));
  },
});

$("till-plus1").addEventListener("click", () => stamp(1));
$("till-undo").addEventListener("click", undo);
$("till-confirm").addEventListener("close", () => {
  const reward = state.asked;
  state.asked = null;
  if ($("till-confirm").returnValue === "ok") redeem(reward);
});
const openClaim = setupClaims({
  api, program, programId: programIdForRequest, writeTimeout: WRITE_TIMEOUT_MS,
  maxButtons: PLUS_BUTTONS,
});
$("till-claim-open").addEventListener("click", () => {
  if (state.online) openClaim();
  else result("bad", T.offline_claim);
});
$("till-manual").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = $("till-manual-input");
  const text = input.value;
  input.value = "";
  input.blur(); // back to scanner mode: Enter stamps again
  if (text.trim()) onScan(text, "manual");
});
$("till-sound").addEventListener("click", () => {
  const on = toggleSound();
  renderSound();
  if (on) beep(true);
});
$("till-camera-toggle").addEventListener("click", () => {
  if (camera.running) {
    camera.stop();
    localStorage.setItem(CAMERA_STORE, "off");
  } else {
    localStorage.setItem(CAMERA_STORE, "on");
    camera.start();
  }
});
window.addEventListener("online", () => probe().then(sync));
window.addEventListener("offline", () => setOnline(false));
document.addEventListener("visibilitychange", () => {
  if (document.hidden) return;
  sync();
  keepAwake(); // the lock is released whenever the page is hidden
});

async function loadInfo() {
  try {
    const response = await api("/api/v1/till");
    if (response.ok) {
      state.info = await response.json();
      localStorage.setItem(INFO_STORE, JSON.stringify(state.info));
      return;
    }
    if (response.status === 401) return;
  } catch {
    setOnline(false);
  }
  // Offline start: the programs as last seen.
  state.info = state.info || JSON.parse(localStorage.getItem(INFO_STORE) || "null");
}

function renderWhere() {
  const info = state.info || state.device;
  $("till-where").textContent = info ? `${info.merchant.name} · ${info.device.label}` : "";
}

/** A till's screen stays on while it is in front (where the browser allows it). */
async function keepAwake() {
  if (!navigator.wakeLock || document.hidden || !state.device) return;
  try {
    await navigator.wakeLock.request("screen");
  } catch {
    /* battery saver or no permission: the tablet's own settings decide */
  }
}

async function start() {
  keepForOffline();
  if (!state.device) {
    if (localStorage.getItem(REVOKED_STORE)) showLocked();
    else showUnpaired("");
    return;
  }
  showSection("till-app");
  keepAwake();
  renderWhere();
  renderSound();
  setOnline(navigator.onLine);
  state.info = JSON.parse(localStorage.getItem(INFO_STORE) || "null");
  if (localStorage.getItem(CAMERA_STORE) !== "off") camera.start();
  else $("till-camera-msg").textContent = T.camera_off;
  await loadInfo();
  if (!state.device) return; // locked while loading
  renderWhere();
  keys.refresh().catch(() => {});
  renderCard();
  await sync();
  setInterval(() => {
    renderLast();
    if (state.card && state.card.balances) renderHint();
  }, 1000);
  setInterval(() => (state.online ? sync() : probe()), 10000);
  document.body.dataset.ready = "1";
}

start();
