// The till without a network: the service worker (/sw.js) serves its page and files again.

// Every module the till imports, by the URLs the imports use (relative, unversioned).
const MODULES = [
  "till-card.js", "till-claim.js", "till-offline.js", "till-queue.js", "till-rewards.js",
  "till-scan.js", "till-sound.js", "till-text.js",
];

/**
 * The service worker keeps what passes through it once it controls the page, which is only
 * after this first load: fetch the till's own files through it now, so that the till also
 * opens with no network (a closed tab, a restarted tablet) and its camera decoder too.
 */
export async function keepForOffline() {
  if (!("serviceWorker" in navigator)) return;
  try {
    await navigator.serviceWorker.register("/sw.js");
    await navigator.serviceWorker.ready;
    if (!navigator.serviceWorker.controller) {
      await new Promise((resolve) => navigator.serviceWorker.addEventListener("controllerchange", resolve, { once: true }));
    }
    const urls = [
      location.pathname,
      ...Array.from(document.querySelectorAll("script[src], link[rel=stylesheet]"), (e) => e.src || e.href),
      // The modules this one imports, by the URLs the imports use.
      ...MODULES.map((f) => new URL(f, import.meta.url).href),
    ];
    if (!("BarcodeDetector" in window)) {
      urls.push(
        "/static/vendor/barcode-detector/es/ponyfill.js",
        "/static/vendor/barcode-detector/es/zxing-exported.js",
        "/static/vendor/zxing-wasm/reader/zxing_reader.wasm",
      );
    }
    await Promise.all(urls.map((url) => fetch(url).catch(() => {})));
  } catch {
    /* no service worker here (e.g. plain http on a LAN address): online use still works */
  }
}
