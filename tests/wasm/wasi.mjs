// Runs a WASI test binary (cargo test --target wasm32-wasip1 --no-run) under Node.js, with the repository readable
// at its own path (tests name files by absolute paths): `node tests/wasm/wasi.mjs TEST.wasm [libtest arguments]`.
// Exit status: the binary's. WebAssembly has no threads here and cannot unwind: a panic ends the whole run.
import { readFile } from "node:fs/promises";
import { WASI } from "node:wasi";
import { argv, exit } from "node:process";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../..", import.meta.url));
const wasi = new WASI({ version: "preview1", args: ["test", ...argv.slice(3)], env: { RUST_BACKTRACE: "0" }, preopens: { [root]: root }, returnOnExit: true });
const module = await WebAssembly.compile(await readFile(argv[2]));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
exit(wasi.start(instance));
