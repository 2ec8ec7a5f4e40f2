// snakeid's inference worker: owns the wasm Classifier so the page never freezes. Messages in: {id, op, args};
// out: {id, value} or {id, error: {kind, message}, fatal}. `fatal`: the wasm instance trapped (a Rust panic); the
// page then replaces this worker with a fresh one.
import init, * as snakeid from "./snakeid_wasm.js";

const { Classifier, takePanicMessage } = snakeid;

const started = performance.now();
let classifier;
const loaded = init().then(() => {
  classifier = Classifier.new();
  return { coldStartMs: performance.now() - started, bundle: classifier.bundleInfo() };
});

const ops = {
  load: () => loaded,
  identify: ([bytes, country, topK, lat, lon]) => classifier.identify(bytes, country, topK, lat ?? undefined, lon ?? undefined),
  benchmark: ([bytes, iterations]) => classifier.benchmark(bytes, iterations),
  limits: ([maxBytes, maxSide, maxPixels]) => classifier.setLimits(maxBytes ?? undefined, maxSide ?? undefined, maxPixels ?? undefined),
  // Test builds only (a .wasm with the `failpoints` feature): make a named step panic.
  failpoints: ([spec]) => {
    if (!snakeid.setFailpoints) throw Object.assign(new Error("this build has no failpoints"), { kind: "internal" });
    snakeid.setFailpoints(spec);
  },
  useBundle: ([bytes]) => {
    const next = Classifier.fromBundleBytes(bytes);
    classifier.free();
    classifier = next;
    return classifier.bundleInfo();
  },
};

self.onmessage = async ({ data: { id, op, args } }) => {
  try {
    await loaded;
    self.postMessage({ id, value: await ops[op](args) });
  } catch (e) {
    // Our errors carry `kind`; anything else is the instance trapping (WebAssembly.RuntimeError after a panic).
    const fatal = !(e && e.kind);
    const message = fatal ? (takePanicMessageSafe() || String(e && e.message || e)) : e.message;
    self.postMessage({ id, error: { kind: fatal ? "internal" : e.kind, message: firstLine(message) }, fatal });
  }
};

function takePanicMessageSafe() {
  try { return takePanicMessage(); } catch { return undefined; }
}

function firstLine(s) {
  return String(s).split("\n")[0];
}
