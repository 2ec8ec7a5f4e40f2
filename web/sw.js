// snakeid's service worker: on install it caches everything the app needs (page, glue, .wasm with the bundle
// inside, icons); from then on every request is answered from that cache, so the app works with no network.
// web/build.sh replaces BUILD with a hash of the files, so a new build replaces the old cache.
const CACHE = "snakeid-BUILD";
const FILES = ["./", "index.html", "style.css", "app.js", "worker.js", "snakeid_wasm.js", "snakeid_wasm_bg.wasm",
  "manifest.webmanifest", "icon-192.png", "icon-512.png"];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((c) => c.addAll(FILES)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  if (event.request.method !== "GET") return;
  event.respondWith(
    caches.open(CACHE)
      .then((c) => c.match(event.request, { ignoreSearch: true }))
      .then((hit) => hit || fetch(event.request)),
  );
});
