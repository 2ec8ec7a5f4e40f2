// The browser race, one engine per page load (so cold starts are cold): `race.cold()` from nothing to ready to
// identify; `race.warm(photoUrl, iterations)` the photo-to-answer and model inference times of each call, each timed
// around the engine's call in JS (snakeid's `logits`, onnxruntime-web's `session.run`), its input made untimed.
// ?engine=snakeid: the web app's .wasm (bundle inside), its own decoding and preprocessing.
// ?engine=ort: onnxruntime-web's wasm backend (SIMD, 1 thread) on the bundle's model.onnx, the photo decoded with
// createImageBitmap, cropped and resized on a canvas and normalised in JS, as a careful web developer would.
const engine = new URLSearchParams(location.search).get("engine");
const now = () => performance.now();
let ready;

async function loadSnakeid() {
  const { default: init, Classifier } = await import("./snakeid/snakeid_wasm.js");
  await init();
  const classifier = Classifier.new();
  return {
    answer: async (bytes) => classifier.identify(bytes, null, 5),
    // The input tensor made outside the timing; the model run timed here, at the JS boundary, as onnxruntime-web's.
    inference: async (bytes) => {
      const tensor = classifier.preprocess(bytes);
      const t = now();
      classifier.logits(tensor);
      return now() - t;
    },
  };
}

async function loadOrt() {
  const ort = await import("./ort/ort.wasm.min.mjs");
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.wasmPaths = new URL("./ort/", location.href).href;
  const [model, manifest] = await Promise.all([fetch("model.onnx").then((r) => r.arrayBuffer()), fetch("manifest.json").then((r) => r.json())]);
  const session = await ort.InferenceSession.create(model, { executionProviders: ["wasm"], graphOptimizationLevel: "all" });
  const { width: W, height: H, mean, std, resize } = manifest.input;
  const canvas = new OffscreenCanvas(W, H);
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  const input = new Float32Array(3 * W * H);

  // Shorter side to `resize.shorter_side`, then the centre W x H: in source pixels, one crop and one resize.
  async function tensorOf(bytes) {
    const bitmap = await createImageBitmap(new Blob([bytes]));
    const scale = resize.shorter_side / Math.min(bitmap.width, bitmap.height);
    const sw = W / scale, sh = H / scale;
    ctx.imageSmoothingQuality = "medium";
    ctx.drawImage(bitmap, (bitmap.width - sw) / 2, (bitmap.height - sh) / 2, sw, sh, 0, 0, W, H);
    bitmap.close();
    const rgba = ctx.getImageData(0, 0, W, H).data;
    const plane = W * H;
    for (let i = 0; i < plane; i++) {
      for (let c = 0; c < 3; c++) input[c * plane + i] = (rgba[4 * i + c] / 255 - mean[c]) / std[c];
    }
    return new ort.Tensor("float32", input, [1, 3, H, W]);
  }

  const run = async (tensor) => {
    const t = now();
    const out = await session.run({ [session.inputNames[0]]: tensor });
    return { logits: out[session.outputNames[0]].data, ms: now() - t };
  };

  return {
    answer: async (bytes) => {
      const { logits } = await run(await tensorOf(bytes));
      // Softmax and the top 5, as the app would show them.
      const max = logits.reduce((a, b) => Math.max(a, b), -Infinity);
      const exp = Array.from(logits, (l) => Math.exp(l - max));
      const sum = exp.reduce((a, b) => a + b, 0);
      return exp.map((e, i) => [e / sum, i]).sort((a, b) => b[0] - a[0]).slice(0, 5);
    },
    inference: async (bytes) => (await run(await tensorOf(bytes))).ms,
  };
}

globalThis.race = {
  async cold() {
    const t = now();
    ready = await (engine === "ort" ? loadOrt() : loadSnakeid());
    return now() - t;
  },
  async warm(photoUrl, iterations) {
    ready ??= await (engine === "ort" ? loadOrt() : loadSnakeid());
    const bytes = new Uint8Array(await (await fetch(photoUrl)).arrayBuffer());
    await ready.answer(bytes);
    await ready.inference(bytes);
    // Photo to answer, then the model alone (its input made untimed), both timed here in JS on both engines.
    const inference = [], total = [];
    for (let i = 0; i < iterations; i++) {
      const t = now();
      await ready.answer(bytes);
      total.push(now() - t);
    }
    for (let i = 0; i < iterations; i++) inference.push(await ready.inference(bytes));
    return { inference, total };
  },
};
document.getElementById("state").textContent = "ready";
