// The card page: keeps the card in this browser, draws a stamp card per shop (the shop the
// customer is at first, right under the QR), shows a change within about two seconds (polling
// while the page is visible) and says in words what it was, works offline (says so), and the
// "save your card" tools. Words come from the page (#texts) via say().
import { api, cards, onDevice, say } from "./customer.js";

const data = JSON.parse(document.getElementById("card-data").textContent);
const token = data.token;
const list = document.getElementById("stamp-cards");
const calm = window.matchMedia("(prefers-reduced-motion: reduce)");
const HERE_HOURS = 24; // a shop's empty card, from its poster, is shown this long without a stamp
const FAST = 1500; // ms between polls while someone may be standing at the till
const CALM = 5000; // after five minutes without a change
const OFFLINE = 8000;
const MAX_DRAWN = 30; // larger programs get a bar instead of single stamps
const EXPIRY_NOTICE_DAYS = 30; // stamps about to expire are announced this long before

cards.keep(token);

// --- drawing ------------------------------------------------------------------------------
function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text; // merchant texts are shown as entered, never as HTML
  return node;
}

const keyOf = (c) => `${c.merchant.slug}:${c.program.id}`;

// How many stamps the card shows filled: a full card while a reward is waiting.
function filledOf(stamps, required) {
  return stamps >= required ? required : stamps;
}

function programLine(program) {
  const reward = program.reward;
  if (program.stamps_required === 1) return say("program_one", { reward });
  return say("program_other", { n: program.stamps_required, reward });
}

// --- dates, as Babel formats them for the page's language (card-data.date_format) -----------
const DATE_FORMAT = data.date_format;

const fill = (template, parts) =>
  template.replace(/\{(\w+)\}/g, (whole, key) => (key in parts ? String(parts[key]) : whole));
const two = (n) => String(n).padStart(2, "0");

/** "2027-01-06" → "6. Jan. 2027" / "6 Jan 2027" / "Jan 6, 2027": the server's pattern and month names. */
function day(iso) {
  if (!DATE_FORMAT) return iso;
  const [y, m, d] = iso.split("-").map(Number);
  return fill(DATE_FORMAT.pattern, { y, yyyy: y, M: m, MM: two(m), MMM: DATE_FORMAT.months[m - 1], d, dd: two(d) });
}

/** A moment with its day and time, on this phone's clock, as Babel writes them for the page's
 * locale: "6. Dez. 2026, 22:49", "6 Dec 2026, 22:49", "Dec 6, 2026, 10:49 PM". */
function when(value) {
  const date = new Date(value);
  if (Number.isNaN(date.getTime()) || !DATE_FORMAT) return "";
  const iso = `${date.getFullYear()}-${two(date.getMonth() + 1)}-${two(date.getDate())}`;
  const H = date.getHours();
  const h = H % 12 || 12;
  const time = fill(DATE_FORMAT.time, { H, HH: two(H), h, hh: two(h), m: date.getMinutes(),
    mm: two(date.getMinutes()), a: H < 12 ? DATE_FORMAT.am : DATE_FORMAT.pm });
  return fill(DATE_FORMAT.joined, { date: day(iso), time });
}

/** Whole days from today (this phone's date) to a "YYYY-MM-DD" day. */
function daysUntil(iso) {
  const [y, m, d] = iso.split("-").map(Number);
  const now = new Date();
  return Math.round((Date.UTC(y, m - 1, d) - Date.UTC(now.getFullYear(), now.getMonth(), now.getDate())) / 86400000);
}

// --- one program's card: stamps, its reward ladder, bonus, expiry, ended -------------------

/** The rewards of a program, lowest first, where the card stands among them. */
function ladder(c) {
  const rungs = [
    ...c.levels.map((l) => ({ stamps: l.stamps, reward: l.reward, available: l.available })),
    { stamps: c.program.stamps_required, reward: c.program.reward, available: c.rewards_available > 0 },
  ].sort((a, b) => a.stamps - b.stamps);
  const list = el("ol", "ladder");
  let placed = false;
  const here = () => {
    const li = el("li", "rung here", say(c.stamps === 1 ? "ladder_here_one" : "ladder_here", { stamps: c.stamps }));
    placed = true;
    return li;
  };
  for (const rung of rungs) {
    if (!placed && c.stamps < rung.stamps) list.append(here());
    const li = el("li", rung.available ? "rung available" : "rung");
    li.append(el("span", "rung-what", programLine({ stamps_required: rung.stamps, reward: rung.reward })));
    const left = rung.stamps - c.stamps;
    li.append(" ", el("span", "rung-state", rung.available
      ? say("ladder_ready") : say(left === 1 ? "ladder_more_one" : "ladder_more", { n: left })));
    list.append(li);
  }
  if (!placed) list.append(here());
  return list;
}

/** "+1 Happy Hour, +2 Stammgast": the bonuses the latest stamp brought. */
function bonusWords(bonus) {
  return bonus.map((b) => say("bonus_item", { n: b.stamps, title: b.title })).join(", ");
}

function expiryNote(c) {
  if (!c.expires_on || c.stamps <= 0) return null;
  const days = daysUntil(c.expires_on);
  if (days < 0 || days > EXPIRY_NOTICE_DAYS) return null;
  const text = say(c.stamps === 1 ? "expiry_one" : "expiry", { n: c.stamps, date: day(c.expires_on) });
  return el("p", "expiry", text);
}

function stampCard(c, before, named) {
  const required = c.program.stamps_required;
  const box = el("div", c.ended ? "program ended" : "program");
  box.dataset.key = keyOf(c);
  if (named) box.append(el("h4", "program-name", c.program.name));
  if (c.ended) {
    const anyDue = c.rewards_available > 0 || c.levels.some((l) => l.available);
    box.append(el("p", "ended-note", say(anyDue ? "ended" : "ended_nothing")));
  }
  box.append(el("p", "program-line", programLine(c.program)));
  const filled = filledOf(c.stamps, required);
  const firstNew = before === null ? filled : filledOf(before, required);
  if (required <= MAX_DRAWN) {
    const row = el("ol", "stamps");
    row.setAttribute("aria-hidden", "true");
    for (let i = 0; i < required; i += 1) {
      const stamp = el("li", i < filled ? "stamp filled" : "stamp");
      if (i >= firstNew && i < filled) {
        stamp.classList.add("new");
        stamp.style.animationDelay = `${(i - firstNew) * 120}ms`; // CSSOM, allowed by the CSP
      }
      row.append(stamp);
    }
    box.append(row);
  } else {
    const bar = el("div", "bar");
    bar.setAttribute("aria-hidden", "true");
    const fill = el("span", firstNew < filled ? "new" : "");
    fill.style.width = `${(100 * filled) / required}%`;
    bar.append(fill);
    box.append(bar);
  }
  if (c.rewards_available > 0) {
    const ready = el("p", "reward-ready");
    ready.append(el("strong", "", c.rewards_available === 1
      ? say("ready_one") : say("ready_many", { n: c.rewards_available })));
    const rest = c.stamps - c.rewards_available * required;
    if (rest > 0) ready.append(" ", say(rest === 1 ? "toward_next_one" : "toward_next", { n: rest }));
    box.append(ready);
  } else {
    box.append(el("p", "count", say("count", { stamps: c.stamps, required })));
  }
  if (c.levels.length) box.append(ladder(c));
  if (c.bonus.length) box.append(el("p", "bonus", say("bonus_line", { bonus: bonusWords(c.bonus) })));
  const expiry = expiryNote(c);
  if (expiry) box.append(expiry);
  return box;
}

/** The card's regulars' status at a shop, and how far it is to the next one. */
function tierLines(c) {
  const lines = [];
  if (c.tier) {
    const text = c.tier.perk
      ? say("tier_perk", { name: c.tier.name, perk: c.tier.perk }) : say("tier", { name: c.tier.name });
    lines.push(el("p", "tier", text));
  }
  if (c.next_tier) {
    const n = c.next_tier.lifetime_stamps_needed;
    lines.push(el("p", "next-tier", say(n === 1 ? "next_tier_one" : "next_tier", { n, name: c.next_tier.name })));
  }
  return lines;
}

// --- the shop the customer is at ------------------------------------------------------------
// A card opened from a shop's poster page shows that shop's card at once, empty until its first
// stamp. Which shop that was is kept on this phone only (the server never learns it): the page
// came with #…shop=slug, and the shop's programs are what its public page shows.
let here = onDevice.get("here", token);
if (here && Date.now() - here.at > HERE_HOURS * 3600000) {
  here = null;
  onDevice.set("here", token, null);
}

function placeholders(balances) {
  if (!here) return [];
  const slug = here.merchant.slug;
  if (balances.some((c) => c.merchant.slug === slug)) return []; // stamped there: the real card
  return here.programs.map((program) => ({ merchant: here.merchant, program, stamps: 0,
    rewards_available: 0, lifetime_stamps: 0, redeemed: 0, last_visit_at: null, empty: true }));
}

async function arrivedFrom(slug) {
  let shop = null;
  try {
    // The poster page left what it showed in this tab (customer.js), else ask for that page.
    shop = JSON.parse(sessionStorage.getItem("treu.shop-page") || "null");
  } catch {
    shop = null;
  }
  if (!shop || shop.merchant.slug !== slug) {
    try {
      const response = await fetch(`/m/${encodeURIComponent(slug)}`, { headers: { Accept: "text/html" } });
      if (!response.ok) return;
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      shop = JSON.parse(page.getElementById("shop-data").textContent);
    } catch {
      return;
    }
  }
  if (!shop || !Array.isArray(shop.programs)) return;
  here = { merchant: shop.merchant, programs: shop.programs, at: Date.now() };
  onDevice.set("here", token, here);
  shown = null; // draw again, with this shop first
  render(latest, false);
}

// The shop the customer most likely stands in comes first: the latest visit, or the poster
// page just opened if that was later.
function byShop(balances) {
  const shops = new Map();
  for (const c of balances) {
    if (!shops.has(c.merchant.slug)) shops.set(c.merchant.slug, { merchant: c.merchant, cards: [], at: 0 });
    const shop = shops.get(c.merchant.slug);
    shop.cards.push(c);
    shop.at = Math.max(shop.at, c.last_visit_at ? Date.parse(c.last_visit_at) : 0);
  }
  if (here && shops.has(here.merchant.slug)) {
    const shop = shops.get(here.merchant.slug);
    shop.at = Math.max(shop.at, here.at);
  }
  // A shop's programs as its till lists them: running ones first, each in the order made.
  for (const shop of shops.values()) shop.cards.sort((a, b) => a.ended - b.ended || a.program.id - b.program.id);
  return [...shops.values()].sort((a, b) => b.at - a.at);
}

/** The shop's name, after its logo when it has one (the logo's text is the name beside it). */
function shopHeading(merchant) {
  const heading = el("h3", "shop-name", merchant.name);
  if (merchant.logo_url) {
    const logo = document.createElement("img");
    logo.className = "shop-logo";
    logo.src = merchant.logo_url;
    logo.alt = "";
    logo.width = 48;
    logo.height = 48;
    heading.prepend(logo);
  }
  return heading;
}

/** The shop's accent colour on its card only. Set through the CSS object model: the page's
 * policy allows no style attribute in markup. */
function lookOf(article, merchant) {
  if (!merchant.accent_color) return;
  article.classList.add("shop-look");
  article.style.setProperty("--brand", merchant.accent_color);
  article.style.setProperty("--shop-accent", merchant.accent_color);
}

let shown = null;
let latest = data.view.cards;
let known = new Map(); // program key → what was last drawn: stamps, earned, redeemed

// What a drawing shows, independent of the order of keys in the JSON it came from.
const signature = (balances) => JSON.stringify([here && here.merchant.slug, balances.map((c) => [
  c.merchant.slug, c.merchant.name, c.merchant.accent_color, c.merchant.logo_url, c.code, c.program.id, c.program.name, c.program.stamps_required,
  c.program.reward, c.stamps, c.rewards_available, c.lifetime_stamps, c.redeemed, c.ended, c.expires_on,
  c.levels.map((l) => [l.id, l.stamps, l.reward, l.available]),
  c.tier && [c.tier.name, c.tier.perk], c.next_tier && [c.next_tier.name, c.next_tier.lifetime_stamps_needed],
  c.bonus.map((b) => [b.promotion_id, b.title, b.stamps])])]);

/** A view from an older server (or an older cached copy) lacks the loyalty fields; without the
 * earned and redeemed counts, a change is told from the stamps alone. */
function complete(c) {
  return { levels: [], tier: null, next_tier: null, expires_on: null, ended: false, bonus: [],
    lifetime_stamps: null, redeemed: null, ...c };
}

const stateOf = (c) => ({ stamps: c.stamps, earned: c.lifetime_stamps, redeemed: c.redeemed });

/** The ledger changes between two drawings of one program's card, from its counts: stamps
 * earned (bonuses included) or taken back, rewards redeemed or given back. */
function changesOf(c, before) {
  const found = [];
  if (c.earned === null || before.earned === null || c.redeemed === null || before.redeemed === null) {
    if (c.stamps > before.stamps) found.push({ kind: "stamp", n: c.stamps - before.stamps });
    return found;
  }
  const earned = c.earned - before.earned;
  const redeemed = c.redeemed - before.redeemed;
  if (earned > 0) found.push({ kind: "stamp", n: earned });
  if (earned < 0) found.push({ kind: "stamp_undone", n: -earned });
  // What a redemption took: the stamps that went without being taken back as earned ones.
  const spent = earned - (c.stamps - before.stamps);
  if (redeemed > 0) found.push({ kind: "redeemed", n: redeemed, spent });
  if (redeemed < 0) found.push({ kind: "redemption_undone", n: -redeemed });
  return found;
}

function render(received, animate) {
  latest = received;
  const real = received.map(complete);
  const balances = [...real, ...placeholders(real).map(complete)];
  const text = signature(balances);
  if (text === shown) return null;
  shown = text;
  const changes = [];
  list.replaceChildren();
  byShop(balances).forEach((shop, index) => {
    const article = el("article", index === 0 ? "panel shop-card here" : "panel shop-card");
    article.id = `m-${shop.merchant.slug}`;
    article.append(shopHeading(shop.merchant));
    lookOf(article, shop.merchant);
    // The card's short code at this shop: what the till shows after a scan ("Card …K7QF").
    const code = shop.cards.map((c) => c.code).find(Boolean);
    const label = list.dataset.codeLabel; // absent on a page cached before this
    if (code && label) article.append(el("p", "shop-code muted small", fill(label, { code })));
    // The status is the shop's, the same on each of its programs' cards.
    article.append(...tierLines(shop.cards[0]));
    for (const c of shop.cards) {
      const now = stateOf(c);
      const before = known.get(keyOf(c)) || (animate ? { stamps: 0, earned: 0, redeemed: 0 } : null);
      const found = before && !c.empty ? changesOf(now, before) : [];
      const grew = found.some((f) => f.kind === "stamp") && c.stamps > before.stamps;
      const box = stampCard(c, grew ? before.stamps : null, shop.cards.length > 1);
      // The reward moment: a stamp that made a reward ready.
      const wasReady = before ? Math.floor(before.stamps / c.program.stamps_required) : 0;
      if (grew && c.rewards_available > wasReady) box.classList.add("reward-moment");
      article.append(box);
      for (const change of found) changes.push({ c, box, ...change });
    }
    const slot = el("div", "feedback");
    slot.dataset.feedback = shop.merchant.slug;
    article.append(slot);
    if (changes.some((g) => g.c.merchant.slug === shop.merchant.slug)) article.classList.add("bump");
    list.append(article);
  });
  known = new Map(balances.filter((c) => !c.empty).map((c) => [keyOf(c), stateOf(c)]));
  document.getElementById("no-stamps").hidden = balances.length > 0;
  showFeedback();
  return changes;
}

// --- telling what changed -------------------------------------------------------------------
const live = el("p", "visually-hidden");
live.setAttribute("aria-live", "polite");
document.body.append(live);
const toast = document.getElementById("toast");
toast.removeAttribute("role");
toast.removeAttribute("aria-live");
toast.setAttribute("aria-hidden", "true"); // the live region above speaks; the toast is for eyes
let toastTimer = 0;

/** What a new stamp brought, in words: "+1 at Café Sonne, +1 Happy Hour: now 3 of 10". */
function stampedLine({ c, n }) {
  const shop = c.merchant.name;
  const extra = c.bonus.reduce((sum, b) => sum + b.stamps, 0);
  // The bonuses came with the stamp that was just seen (n counts them too).
  if (extra > 0 && n > extra) {
    const values = { n: n - extra, shop, bonus: bonusWords(c.bonus), stamps: c.stamps,
      required: c.program.stamps_required };
    return say(c.rewards_available > 0 ? "stamped_ready_bonus" : "stamped_bonus", values);
  }
  return c.rewards_available > 0
    ? say("stamped_ready", { n, shop })
    : say("stamped", { n, shop, stamps: c.stamps, required: c.program.stamps_required });
}

/** The reward a redemption took the stamps for: a level's or the program's own. */
function rewardOf(c, spent) {
  const level = c.levels.find((l) => l.stamps === spent);
  return level ? level.reward : c.program.reward;
}

/** One line per ledger change, in words that match it. */
function lineOf(change) {
  const { c } = change;
  const values = { shop: c.merchant.name, stamps: c.stamps, required: c.program.stamps_required };
  switch (change.kind) {
    case "stamp":
      return stampedLine(change);
    case "stamp_undone":
      return say(change.n === 1 ? "stamp_undone_one" : "stamp_undone", { ...values, n: change.n });
    case "redeemed":
      return say("redeemed", { ...values, reward: rewardOf(c, change.spent) });
    default:
      return say(c.rewards_available > 0 ? "redemption_undone_ready" : "redemption_undone", values);
  }
}

function announce(changes) {
  if (changes === null) return; // nothing new drawn: what is said still holds
  clearTimeout(toastTimer);
  if (!changes.length) {
    // The figures changed without a change to tell (an expiry, a program's new goal): no
    // earlier note may stay over numbers it no longer matches.
    toast.hidden = true;
    return;
  }
  const lines = changes.map(lineOf);
  live.textContent = lines.join(" ");
  toast.textContent = lines.join("\n");
  toast.hidden = false;
  toast.classList.remove("show");
  void toast.offsetWidth; // restart the slide-in
  toast.classList.add("show");
  toastTimer = setTimeout(() => { toast.hidden = true; }, 6000);
  // Bring the card that changed into view, clear of the note at the bottom.
  changes[0].box.scrollIntoView({ block: "nearest", behavior: calm.matches ? "auto" : "smooth" });
}

// --- offline ------------------------------------------------------------------------------
const offlineNote = document.getElementById("offline");

function showOffline(asOf) {
  if (asOf === false) {
    offlineNote.hidden = true;
    return;
  }
  const time = asOf ? when(asOf) : "";
  offlineNote.textContent = time ? say("offline_since", { time }) : say("offline");
  offlineNote.hidden = false;
}

function cardGone() {
  cards.forget(token);
  clearTimeout(timer);
  const main = document.getElementById("main");
  const box = el("section", "panel center");
  box.append(el("h1", "", say("deleted")));
  const home = el("a", "button", "treu");
  home.href = "/";
  box.append(home);
  main.replaceChildren(box);
}

// --- polling ------------------------------------------------------------------------------
let timer = 0;
let lastChange = Date.now();

function schedule(ms) {
  clearTimeout(timer);
  timer = setTimeout(poll, ms);
}

async function poll() {
  clearTimeout(timer);
  if (document.visibilityState !== "visible") return; // resumes on visibilitychange
  let response;
  try {
    response = await fetch(`/api/v1/cards/${token}`, { headers: { Accept: "application/json" } });
  } catch {
    showOffline(data.as_of);
    schedule(OFFLINE);
    return;
  }
  if (response.status === 410) {
    cardGone();
    return;
  }
  if (!response.ok) {
    schedule(OFFLINE);
    return;
  }
  const offline = response.headers.get("X-Treu-Offline") === "1";
  const view = await response.json();
  showOffline(offline ? response.headers.get("Date") || data.as_of : false);
  const changes = render(view.cards, true);
  announce(changes);
  if (changes && changes.length) {
    lastChange = Date.now();
    loadFeedback();
  }
  schedule(offline ? OFFLINE : Date.now() - lastChange > 300000 ? CALM : FAST);
}

document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") poll();
});
window.addEventListener("online", poll);

// --- feedback (the feedback area's API; until it exists, nothing is shown) ----------------
let feedback = [];

async function loadFeedback() {
  try {
    const result = await api("GET", `/api/v1/cards/${token}/feedback`);
    if (!result.ok || !result.data || !Array.isArray(result.data.merchants)) return;
    feedback = result.data.merchants;
  } catch {
    return;
  }
  showFeedback();
}

function showFeedback() {
  for (const shop of feedback) {
    const slot = list.querySelector(`[data-feedback="${CSS.escape(String(shop.slug))}"]`);
    if (!slot) continue;
    slot.replaceChildren();
    const name = slot.parentElement.querySelector("h3").textContent;
    for (const reply of shop.replies || []) {
      const box = el("div", "reply");
      const head = el("p", "reply-head", say("reply_from", { shop: name }));
      if (reply.unread) head.append(" ", el("span", "badge", say("new")));
      box.append(head, el("p", "", reply.text));
      if (reply.replied_at) box.append(el("p", "muted small", when(reply.replied_at)));
      slot.append(box);
    }
    // Once given, the feedback stays reachable: to edit it (24 h) and to read the conversation.
    const given = shop.can_edit_feedback || (shop.replies || []).length > 0;
    if (shop.feedback_url && (shop.can_give_feedback || given)) {
      const text = shop.can_give_feedback ? say("give_feedback") : say("your_feedback");
      const link = el("a", "feedback-link", text);
      link.href = shop.feedback_url;
      slot.append(link);
    }
  }
}

// --- save your card -----------------------------------------------------------------------
const qr = document.getElementById("qr");
const recoveryCode = document.getElementById("recovery-code").textContent.trim();

async function saveImage() {
  const image = new Image();
  image.src = qr.currentSrc || qr.src;
  await image.decode();
  const canvas = el("canvas");
  canvas.width = 1080;
  canvas.height = 1400;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#ffffff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(image, 90, 150, 900, 900);
  ctx.fillStyle = "#111827";
  ctx.textAlign = "center";
  ctx.font = "bold 64px system-ui, sans-serif";
  ctx.fillText(say("card_image_title"), 540, 110);
  ctx.font = "40px system-ui, sans-serif";
  ctx.fillText(say("card_image_hint"), 540, 1130);
  ctx.fillText(`${say("card_image_code")}:`, 540, 1230);
  ctx.font = "bold 44px ui-monospace, monospace";
  ctx.fillText(recoveryCode, 540, 1300);
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
  const link = el("a");
  link.href = URL.createObjectURL(blob);
  link.download = "treu-card.png";
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
}

// Once the card was saved one of these ways, this phone remembers it and the section shrinks
// to its heading (still one tap away) on the next visit; "I noted it" folds it at once.
const saveBox = document.getElementById("save");

function saved(fold) {
  onDevice.set("saved", token, { at: Date.now() });
  document.getElementById("saved-mark").hidden = false;
  document.getElementById("welcome").hidden = true;
  if (fold) saveBox.open = false;
}

if (onDevice.get("saved", token)) {
  saveBox.open = false;
  document.getElementById("saved-mark").hidden = false;
}

document.getElementById("save-image").addEventListener("click", () => {
  saveImage().then(() => saved(false), () => {});
});
document.getElementById("print").addEventListener("click", () => {
  window.print();
  saved(false);
});
document.getElementById("noted").addEventListener("click", () => saved(true));

const copyStatus = document.getElementById("copy-status");
document.getElementById("copy-code").addEventListener("click", async () => {
  try {
    await navigator.clipboard.writeText(recoveryCode);
    copyStatus.textContent = say("copied");
    saved(false);
  } catch {
    copyStatus.textContent = say("copy_failed");
  }
});

// Home screen: the browser's own install prompt where there is one, else the steps for it.
const installButton = document.getElementById("install");
let installPrompt = null;
window.addEventListener("beforeinstallprompt", (event) => {
  event.preventDefault();
  installPrompt = event;
  installButton.hidden = false;
});
installButton.addEventListener("click", async () => {
  if (!installPrompt) return;
  installPrompt.prompt();
  await installPrompt.userChoice.catch(() => null);
  installPrompt = null;
  installButton.hidden = true;
});
const ua = navigator.userAgent;
const platform = /iPhone|iPad|iPod/.test(ua) || (/Macintosh/.test(ua) && navigator.maxTouchPoints > 1)
  ? "ios" : /Android/.test(ua) ? "android" : "other";
const steps = document.querySelector(`details[data-platform="${platform}"]`);
if (steps) steps.open = true;
if (window.matchMedia("(display-mode: standalone)").matches || navigator.standalone) {
  document.getElementById("installed").hidden = false;
}

// Other cards this browser holds (opening a card's URL never drops the one held before).
const others = cards.all().filter((t) => t !== token);
if (others.length) {
  const box = document.getElementById("other-cards");
  const ul = box.querySelector("ul");
  for (const other of others) {
    const li = el("li");
    const link = el("a", "", say("other_card", { end: other.slice(-6) }));
    link.href = `/c/${other}`;
    li.append(link);
    ul.append(li);
  }
  box.hidden = false;
}

// --- start --------------------------------------------------------------------------------
function start() {
  let claimed = null;
  try {
    claimed = JSON.parse(sessionStorage.getItem("treu.claimed") || "null");
    sessionStorage.removeItem("treu.claimed");
  } catch {
    claimed = null;
  }
  if (claimed && location.hash === "#claimed") {
    // Just claimed a till's code: draw the stamps it brought as new ones.
    for (const c of data.view.cards.map(complete)) {
      const state = stateOf(c);
      if (c.merchant.slug === claimed.slug && c.program.id === claimed.program) {
        // The code's stamps and the bonuses they brought are the new ones.
        const n = claimed.count + c.bonus.reduce((sum, b) => sum + b.stamps, 0);
        state.stamps = Math.max(c.stamps - n, 0);
        if (state.earned !== null) state.earned = Math.max(state.earned - n, 0);
      }
      known.set(keyOf(c), state);
    }
    announce(render(data.view.cards, false));
  } else {
    render(data.view.cards, false);
  }
  // #new, #restored, #claimed; "&shop=slug" (or "#shop=slug"): opened from that shop's page.
  const hash = new URLSearchParams(location.hash.slice(1));
  const notice = hash.has("new") ? "welcome" : hash.has("restored") ? "restored" : null;
  if (notice && !(notice === "welcome" && onDevice.get("saved", token))) {
    document.getElementById(notice).hidden = false;
  }
  if (location.hash) history.replaceState(null, "", location.pathname);
  if (hash.get("shop")) arrivedFrom(hash.get("shop"));
  loadFeedback();
  poll();
}

start();
