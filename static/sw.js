// treu service worker: the pages and the card open without a network once they were loaded.
// Pages and card data: network first, the last good copy when offline (marked so the page can
// say its figures may be old). Static files: from the cache, refreshed in the background.
// Writes (POST, DELETE) are never cached: the till queues them itself.
const CACHE = "treu-v1";
const OFFLINE_HEADER = "X-Treu-Offline";
// The server (or its database, or a proxy in front) is out for a moment: as good as offline.
const UNAVAILABLE = [502, 503, 504];

self.addEventListener("install", (event) => {
  event.waitUntil(self.skipWaiting());
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((names) => Promise.all(names.filter((n) => n !== CACHE).map((n) => caches.delete(n))))
      .then(() => self.clients.claim()),
  );
});

function cacheable(request, url) {
  if (request.method !== "GET" || url.origin !== self.location.origin) return false;
  if (url.pathname.endsWith("/export")) return false; // a download, asked for on purpose
  // The merchant area holds a business's figures: never left in a cache after logout.
  if (url.pathname.startsWith("/merchant") || url.pathname.startsWith("/api/v1/merchant")) {
    return false;
  }
  // A till's per-card look-ups name customers' tokens: never keep them on the shop's tablet.
  // Claim polls and claim QR images are one-off.
  if (url.pathname.startsWith("/api/v1/till/cards/") || url.pathname.startsWith("/api/v1/claims/")
      || url.pathname === "/api/v1/till/qr.svg") {
    return false;
  }
  // Live streams (server-sent events) cannot be cached.
  if ((request.headers.get("accept") || "").includes("text/event-stream")) return false;
  return true;
}

async function networkFirst(request) {
  const cache = await caches.open(CACHE);
  let response;
  try {
    response = await fetch(request);
  } catch (error) {
    const cached = await lastGoodCopy(cache, request);
    if (!cached) throw error;
    return cached;
  }
  if (response.ok) await cache.put(request, response.clone());
  if (!UNAVAILABLE.includes(response.status)) return response;
  return (await lastGoodCopy(cache, request)) || response;
}

/** The copy kept from the last good answer, marked as such; undefined if there is none. */
async function lastGoodCopy(cache, request) {
  const cached = await cache.match(request, { ignoreSearch: request.mode === "navigate" });
  if (!cached) return undefined;
  const headers = new Headers(cached.headers);
  headers.set(OFFLINE_HEADER, "1");
  return new Response(await cached.blob(), { status: cached.status, headers });
}

async function cacheFirst(request) {
  const cache = await caches.open(CACHE);
  const cached = await cache.match(request);
  const refresh = fetch(request)
    .then((response) => {
      if (response.ok) cache.put(request, response.clone());
      return response;
    })
    .catch(() => cached);
  return cached || refresh;
}

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (!cacheable(event.request, url)) return;
  if (url.pathname.startsWith("/static/")) {
    event.respondWith(cacheFirst(event.request));
  } else {
    event.respondWith(networkFirst(event.request));
  }
});
