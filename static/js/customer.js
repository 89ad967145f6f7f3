// treu customer pages: the card kept in this browser, offline support, and the small pages
// (home, shop poster, "my card", claim code, my data, deleted). The card page is card.js.
// Every word shown comes from the page (#texts, in the page's language); nothing here is text.

const CURRENT = "treu.card";
const ALL = "treu.cards";

// --- the cards this browser holds --------------------------------------------------------
// The current card opens from "My card"; older ones are kept too, so opening another card's
// URL on this phone never loses the one it held.
function read(key) {
  try {
    return localStorage.getItem(key);
  } catch {
    return null; // storage blocked (private mode in some browsers): the URL still works
  }
}

function write(key, value) {
  try {
    if (value === null) localStorage.removeItem(key);
    else localStorage.setItem(key, value);
  } catch {
    /* nothing to keep it in */
  }
}

export const cards = {
  current() {
    return read(CURRENT);
  },
  all() {
    try {
      const list = JSON.parse(read(ALL) || "[]");
      return Array.isArray(list) ? list.filter((t) => typeof t === "string") : [];
    } catch {
      return [];
    }
  },
  keep(token) {
    write(CURRENT, token);
    write(ALL, JSON.stringify([token, ...cards.all().filter((t) => t !== token)]));
  },
  forget(token) {
    const rest = cards.all().filter((t) => t !== token);
    write(ALL, JSON.stringify(rest));
    if (cards.current() === token) write(CURRENT, rest[0] || null);
    for (const name of DEVICE_NOTES) onDevice.set(name, token, null);
    forgetCached(token);
  },
};

// What this phone remembers about one of its cards, for itself only: "saved" (the card was
// backed up), "here" (the shop whose poster page it came from). Never sent anywhere.
const DEVICE_NOTES = ["saved", "here"];
export const onDevice = {
  get(name, token) {
    try {
      return JSON.parse(read(`treu.${name}.${token}`) || "null");
    } catch {
      return null;
    }
  },
  set(name, token, value) {
    write(`treu.${name}.${token}`, value === null ? null : JSON.stringify(value));
  },
};

// A deleted card must not open from the offline cache either.
async function forgetCached(token) {
  if (!("caches" in window)) return;
  try {
    for (const name of await caches.keys()) {
      const cache = await caches.open(name);
      for (const request of await cache.keys()) {
        if (request.url.includes(token)) await cache.delete(request);
      }
    }
  } catch {
    /* the cache is best effort */
  }
}

// --- words and numbers ----------------------------------------------------------------------
let loaded = null;
export function texts() {
  if (loaded === null) {
    const el = document.getElementById("texts");
    loaded = el ? JSON.parse(el.textContent) : {};
  }
  return loaded;
}

export function say(name, values = {}) {
  const template = texts()[name] || name;
  return template.replace(/\{(\w+)\}/g, (whole, key) => (key in values ? String(values[key]) : whole));
}

// --- offline ------------------------------------------------------------------------------
// The service worker caches what passes through it. The very first visit is loaded before it
// controls the page, so once it does, the page's own files are fetched again through it.
function pageFiles() {
  const urls = new Set([location.pathname, new URL("./customer.js", import.meta.url).pathname]);
  const selector = "link[rel=stylesheet], link[rel=manifest], link[rel=icon], link[rel=apple-touch-icon], script[src], img[src]";
  for (const el of document.querySelectorAll(selector)) urls.add(el.href || el.src);
  return [...urls];
}

function warm() {
  for (const url of pageFiles()) fetch(url, { credentials: "same-origin" }).catch(() => {});
}

function registerServiceWorker() {
  if (!("serviceWorker" in navigator)) return;
  const hadController = Boolean(navigator.serviceWorker.controller);
  navigator.serviceWorker.register("/sw.js").catch(() => {});
  if (hadController) return;
  navigator.serviceWorker.addEventListener("controllerchange", warm, { once: true });
}

// --- the small pages ----------------------------------------------------------------------
function showForCard(hasCard) {
  for (const el of document.querySelectorAll("[data-has-card]")) el.hidden = !hasCard;
  for (const el of document.querySelectorAll("[data-no-card]")) el.hidden = hasCard;
}

export async function api(method, path, body) {
  const options = { method, headers: { Accept: "application/json" } };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  return { status: response.status, ok: response.ok, data, headers: response.headers };
}

function openPage() {
  const token = cards.current();
  showForCard(Boolean(token));
  if (token) location.replace(`/c/${token}`);
}

function merchantPage() {
  // What the page shows of the shop, for the card page that comes next in this tab: it draws
  // this shop's card at once, before the first stamp (card.js).
  const shop = document.getElementById("shop-data");
  let slug = "";
  if (shop) {
    try {
      sessionStorage.setItem("treu.shop-page", shop.textContent);
      slug = JSON.parse(shop.textContent).merchant.slug;
    } catch {
      /* the card page asks for the shop's page instead */
    }
  }
  // A poster scanned by someone who already has a card: straight to the card, this shop first.
  const token = cards.current();
  if (token) location.replace(`/c/${token}${slug ? `#shop=${encodeURIComponent(slug)}` : ""}`);
}

function claimMessage(result) {
  const code = result.data && result.data.code;
  const messages = {
    "claim-used": "claim_used",
    "claim-expired": "claim_expired",
    "claim-revoked": "claim_expired",
    "unknown-claim": "claim_unknown",
    cooldown: "cooldown",
    "daily-cap": "daily_cap",
    "card-deleted": "card_deleted",
  };
  const retry = Number(result.headers.get("Retry-After") || 0);
  return say(messages[code] || "failed", { n: retry });
}

function claimPage() {
  const box = document.getElementById("claim");
  if (!box || box.dataset.state !== "open") return;
  const status = document.getElementById("claim-status");
  const offer = document.getElementById("claim-new");
  const retry = document.getElementById("claim-retry");
  const code = box.dataset.code;

  const fromRestore = /^#card=([A-Z2-7]+)$/.exec(location.hash);
  if (fromRestore) {
    cards.keep(fromRestore[1]);
    history.replaceState(null, "", location.pathname);
  }

  async function claim(token) {
    offer.hidden = true;
    retry.hidden = true;
    status.className = "";
    status.textContent = say("claim_working");
    let result;
    try {
      result = await api("POST", `/api/v1/claims/${code}`, { token });
    } catch {
      result = null;
    }
    if (result && result.status === 201) {
      const body = result.data;
      sessionStorage.setItem("treu.claimed", JSON.stringify({
        slug: body.merchant.slug, shop: body.merchant.name, program: body.program.id,
        count: Number(box.dataset.count),
      }));
      location.replace(`/c/${token}#claimed`);
      return;
    }
    status.className = "notice bad";
    status.textContent = result ? claimMessage(result) : say("no_connection");
    const code_ = result && result.data && result.data.code;
    if (code_ === "card-deleted") {
      cards.forget(token);
      offer.hidden = false;
    } else if (!result || result.status >= 500 || code_ === "cooldown") {
      retry.hidden = false;
    }
  }

  retry.addEventListener("click", () => claim(cards.current()));
  const getCard = document.getElementById("claim-get-card");
  getCard.addEventListener("click", async () => {
    getCard.disabled = true;
    try {
      const made = await api("POST", "/api/v1/cards");
      if (made.status !== 201) throw new Error("no card");
      cards.keep(made.data.token);
      await claim(made.data.token);
    } catch {
      status.className = "notice bad";
      status.textContent = say("no_connection");
    } finally {
      getCard.disabled = false;
    }
  });

  const token = cards.current();
  if (token) claim(token);
  else offer.hidden = false;
}

function dataPage() {
  const zone = document.getElementById("delete");
  if (!zone) return;
  const token = zone.dataset.token;
  const start = document.getElementById("delete-start");
  const confirmBox = document.getElementById("delete-confirm");
  const error = document.getElementById("delete-error");

  function ask(open) {
    confirmBox.hidden = !open;
    start.setAttribute("aria-expanded", String(open));
    if (open) document.getElementById("delete-no").focus();
    else start.focus();
  }
  start.addEventListener("click", () => ask(true));
  document.getElementById("delete-no").addEventListener("click", () => ask(false));
  const yes = document.getElementById("delete-yes");
  yes.addEventListener("click", async () => {
    yes.disabled = true;
    error.hidden = true;
    let result = null;
    try {
      result = await api("DELETE", `/api/v1/cards/${token}`);
    } catch {
      result = null;
    }
    yes.disabled = false;
    // 410: it was deleted already (another tab, another phone): the same outcome for this one.
    if (result && (result.status === 204 || result.status === 410)) {
      cards.forget(token);
      zone.hidden = true;
      for (const el of document.querySelectorAll("main > p, main > section:not(#deleted)")) el.hidden = true;
      const done = document.getElementById("deleted");
      done.hidden = false;
      done.focus();
      return;
    }
    error.textContent = say("delete_failed");
    error.hidden = false;
  });
}

function deletedPage() {
  const gone = document.querySelector("[data-forget]");
  if (gone) cards.forget(gone.dataset.forget);
  showForCard(Boolean(cards.current()));
}

const PAGES = { open: openPage, merchant: merchantPage, claim: claimPage, data: dataPage,
  deleted: deletedPage };

registerServiceWorker();
showForCard(Boolean(cards.current()));
for (const [name, run] of Object.entries(PAGES)) {
  if (document.body.classList.contains(`page-${name}`)) run();
}
