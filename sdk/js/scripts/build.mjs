// dist/index.js (ESM), dist/index.cjs (CommonJS) and dist/*.d.ts; socket.io-client stays a
// dependency (not bundled), so an app has one copy of it.
import { build } from "esbuild";
import { execFileSync } from "node:child_process";
import { rmSync } from "node:fs";

rmSync("dist", { recursive: true, force: true });
const common = {
  entryPoints: ["src/index.ts"],
  bundle: true,
  external: ["socket.io-client"],
  platform: "neutral",
  target: "es2020",
  sourcemap: true,
  logLevel: "warning",
};
await build({ ...common, format: "esm", outfile: "dist/index.js" });
await build({ ...common, format: "cjs", outfile: "dist/index.cjs" });
// One file for a page's <script> tag (socket.io-client included): window.ReplyHQSDK.
await build({
  ...common,
  external: [],
  platform: "browser",
  format: "iife",
  globalName: "ReplyHQSDK",
  minify: true,
  outfile: "dist/replyhq.browser.js",
});
execFileSync(process.execPath, ["node_modules/typescript/bin/tsc", "-p", "tsconfig.json", "--emitDeclarationOnly"], { stdio: "inherit" });
