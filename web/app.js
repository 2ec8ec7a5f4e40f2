// snakeid's page: the photo and country in, the answer out. All inference happens in worker.js; this module only
// talks to it and renders. For automated tests it sets globalThis.snakeidReady and globalThis.snakeidIdentify.
const TOP_SHOWN = 3;
const $ = (id) => document.getElementById(id);

// --- The worker, replaced by a fresh one if its wasm instance ever traps (but not in a loop: a worker that cannot
// even load, e.g. a browser without WebAssembly SIMD, is not restarted). ---
let worker, ready, pending = new Map(), nextId = 0, loadedOnce = false;

function startWorker() {
  worker = new Worker("worker.js", { type: "module" });
  worker.onmessage = ({ data }) => {
    const p = pending.get(data.id);
    pending.delete(data.id);
    // A failed load is final (restarting would fail the same way); a trap in a call gets a fresh worker.
    if (data.fatal && p?.op !== "load") restartWorker();
    if (!p) return;
    if (data.error) p.reject(Object.assign(new Error(data.error.message), { kind: data.error.kind }));
    else p.resolve(data.value);
  };
  worker.onerror = (e) => {
    e.preventDefault();
    failAll("internal", e.message || "the inference worker stopped");
    if (loadedOnce) restartWorker();
  };
  ready = call("load");
  ready.then(() => { loadedOnce = true; }, () => {});
  return ready;
}

function restartWorker() {
  worker.terminate();
  failAll("internal", "the inference worker stopped and was restarted");
  startWorker();
}

function failAll(kind, message) {
  for (const p of pending.values()) p.reject(Object.assign(new Error(message), { kind }));
  pending.clear();
}

function call(op, args = []) {
  return new Promise((resolve, reject) => {
    const id = nextId++;
    pending.set(id, { resolve, reject, op });
    worker.postMessage({ id, op, args });
  });
}

async function identify(bytes, country, topK, at = null) {
  await ready;
  return call("identify", [bytes, country, topK, at?.latitude ?? null, at?.longitude ?? null]);
}

startWorker();
globalThis.snakeidReady = ready.then(() => true);
globalThis.snakeidIdentify = (bytes, country, topK, at) => identify(bytes, country ?? null, topK, at ?? null);
// For the tests of a failpoints build (tests/web/check_web.py); a shipped build answers "no failpoints". Limits:
// (maxBytes, maxSide, maxPixels), for a page that embeds the app on a small phone, and for the tests.
globalThis.snakeidFailpoints = async (spec) => { await ready; return call("failpoints", [spec]); };
globalThis.snakeidLimits = async (maxBytes, maxSide, maxPixels) => { await ready; return call("limits", [maxBytes, maxSide, maxPixels]); };

if ("serviceWorker" in navigator) {
  navigator.serviceWorker.register("sw.js").catch((e) => console.warn("offline cache unavailable:", e.message));
}

// --- Country: the user's choice among the bundle's countries, or unknown. Never the browser's language: en-US is the
// default language of phones all over the world, and the US prior turned a Philippine cobra into a night snake. ---
const regionNames = (() => { try { return new Intl.DisplayNames(["en"], { type: "region" }); } catch { return null; } })();
const countryName = (code) => { try { return regionNames?.of(code) ?? code; } catch { return code; } };

function fillCountries(codes) {
  const list = $("countries");
  list.replaceChildren(...codes.filter((c) => c !== "unknown").map((c) => {
    const o = document.createElement("option");
    o.value = `${c} — ${countryName(c)}`;
    return o;
  }));
}

// An option exactly as the list shows it gives its code; any other text goes to the core as typed, which resolves
// a code or an English name or answers "unknown country" (shown under the field): text is never silently replaced
// ("US — United StatesPH" used to mean US).
function chosenCountry() {
  const v = $("country").value.trim();
  if (!v) return null;
  const m = v.match(/^([A-Za-z]{2}) — (.+)$/);
  return m && m[2] === countryName(m[1].toUpperCase()) ? m[1].toUpperCase() : v;
}

// --- The device's position: asked for once per visit, when the first photo comes and no country is chosen. GPS
// answers without a network; the core turns the position into a country offline. A refusal or a timeout leaves the
// country unknown, and says so. ---
let device = null, asked = null;

function devicePosition() {
  if (asked) return asked;
  asked = new Promise((resolve) => {
    if (!navigator.geolocation) { $("place").textContent = "This browser cannot tell where you are."; resolve(null); return; }
    $("place").textContent = "Asking where you are (for the country)…";
    navigator.geolocation.getCurrentPosition(
      (p) => { device = { latitude: p.coords.latitude, longitude: p.coords.longitude }; $("place").textContent = ""; resolve(device); },
      (e) => { $("place").textContent = `Your position is not known (${e.message || "refused"}): choose the country above.`; resolve(null); },
      { enableHighAccuracy: false, timeout: 20000, maximumAge: 3600000 });
  });
  return asked;
}

// --- The answer, as the native apps show it. ---
const pct = (p, digits = 0) => `${(p * 100).toFixed(digits)}%`;
const el = (tag, cls, text) => Object.assign(document.createElement(tag), cls ? { className: cls } : {}, text != null ? { textContent: text } : {});

function render(a) {
  const out = [];
  const verdict = { snake: "Snake", possible: "Possibly a snake", none: "No snake recognised in this photo" }[a.snake_verdict];
  out.push(el("p", "verdict", `${verdict} (${pct(a.snake_probability)})`));
  if (a.venomous_warning) {
    const named = a.warning_species.map((s) => `${s.label} ${pct(s.probability)}`).join(", ");
    out.push(el("p", "warning", `POSSIBLY VENOMOUS (${named}) — seek medical care`));
  }
  if (a.uncertain) out.push(el("p", "uncertain", "Uncertain: treat as venomous and seek care"));
  // "None" reads as none: no species (and no "venomous") under "no snake" (issue 33).
  const shown = a.snake_verdict === "none" ? [] : a.predictions.slice(0, TOP_SHOWN);
  if (a.snake_verdict === "none") out.push(el("p", "meta", "If there is a snake, photograph it whole, closer and in focus, and try again."));
  else if (a.snake_verdict !== "snake") out.push(el("p", "meta", "If it is a snake, the closest species are:"));
  for (const p of shown) {
    const row = el("div", "species");
    const name = el("div");
    name.append(el("div", null, p.label), el("div", "sci", p.scientific_name));
    const prob = el("div", "p", pct(p.probability, 1));
    if (p.venomous) prob.append(el("span", "venomous", "venomous"));
    row.append(name, prob);
    out.push(row);
  }
  if (a.genus) out.push(el("p", "meta", `Genus ${a.genus.genus}: ${pct(a.genus.probability)}${a.genus.venomous ? " (venomous)" : ""}`));
  const from = { chosen: "", photo_gps: ", from the photo's GPS", device_location: ", from this device's location" }[a.country_source] ?? "";
  const where = a.country ? `${countryName(a.country)}${from}${a.prior_applied ? " (range prior applied)" : ""}` : "country unknown";
  out.push(el("p", "meta", `${where} · ${a.timings_ms.total.toFixed(0)} ms on this device`));
  return out;
}

let photo = null, seq = 0;

async function showAnswer() {
  if (!photo) return;
  const mine = ++seq, answer = $("answer");
  $("error").hidden = true;
  answer.dataset.state = "busy";
  try {
    const country = chosenCountry();
    const at = country ? null : await devicePosition();
    if (mine !== seq) return;
    const a = await identify(photo, country, 5, at);
    if (mine !== seq) return;
    answer.replaceChildren(...render(a));
    answer.dataset.json = JSON.stringify(a);
    answer.dataset.state = "done";
    answer.scrollIntoView({ block: "start" });
  } catch (e) {
    if (mine !== seq) return;
    answer.replaceChildren();
    delete answer.dataset.json;
    $("error").textContent = e.message.split("\n")[0];
    $("error").hidden = false;
    answer.dataset.state = "error";
  }
  answer.dataset.seq = String(mine);
}

$("photo").addEventListener("change", async (ev) => {
  const file = ev.target.files[0];
  if (!file) return;
  photo = new Uint8Array(await file.arrayBuffer());
  const preview = $("preview");
  if (preview.src) URL.revokeObjectURL(preview.src);
  preview.src = URL.createObjectURL(file);
  preview.hidden = false;
  showAnswer();
});
$("country").addEventListener("change", showAnswer);

// --- Benchmark tab: cold start and per-stage percentiles, measured here. ---
let coldStartMs = 0;

$("bench-run").addEventListener("click", async () => {
  const file = $("bench-photo").files[0];
  const bytes = file ? new Uint8Array(await file.arrayBuffer()) : photo;
  const out = $("bench-result");
  if (!bytes) { out.textContent = "Choose a photo first."; return; }
  out.textContent = "Measuring…";
  try {
    const r = await call("benchmark", [bytes, Math.max(1, Number($("bench-iterations").value) | 0)]);
    const table = el("table");
    table.append(row("th", ["stage", "p50 ms", "p90 ms"]));
    for (const stage of ["decode", "preprocess", "inference", "postprocess", "total"]) {
      const s = r.stages_ms[stage];
      table.append(row("td", [stage, s.p50.toFixed(1), s.p90.toFixed(1)]));
    }
    out.replaceChildren(
      el("p", null, `Cold start (load and compile the model): ${coldStartMs.toFixed(0)} ms; first call ${r.first_call_ms.toFixed(0)} ms; ${r.iterations} calls.`),
      table);
  } catch (e) {
    out.textContent = e.message;
  }
});

function row(cell, values) {
  const tr = el("tr");
  tr.append(...values.map((v) => el(cell, null, v)));
  return tr;
}

for (const [tab, section] of [["tab-identify", "identify"], ["tab-bench", "bench"]]) {
  $(tab).addEventListener("click", () => {
    for (const t of document.querySelectorAll(".tab")) t.setAttribute("aria-selected", String(t.id === tab));
    $("identify").hidden = section !== "identify";
    $("bench").hidden = section !== "bench";
  });
}

function showBundle(bundle) {
  fillCountries(bundle.countries);
  $("status").textContent = `Ready, offline. ${bundle.species.length} species (${bundle.name} ${bundle.version}).`;
  $("bundle-info").textContent = `Model: ${bundle.name} ${bundle.version}, ${bundle.input_width}×${bundle.input_height} input, ${bundle.species.length} species.`;
}

// Another bundle, until the page is reloaded (a restarted worker goes back to the built-in one).
$("bundle-file").addEventListener("change", async (ev) => {
  const file = ev.target.files[0];
  if (!file) return;
  $("bundle-error").hidden = true;
  try {
    showBundle(await call("useBundle", [new Uint8Array(await file.arrayBuffer())]));
    showAnswer();
  } catch (e) {
    $("bundle-error").textContent = e.message.split("\n")[0];
    $("bundle-error").hidden = false;
  }
});

ready.then(({ coldStartMs: ms, bundle }) => {
  coldStartMs = ms;
  showBundle(bundle);
  $("bench-run").disabled = false;
}, (e) => {
  $("status").textContent = `The model could not be loaded: ${e.message}`;
});
