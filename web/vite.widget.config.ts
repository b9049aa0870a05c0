// widget.js: one self-contained script (React included, CSS inlined) served at /widget.js.
// The messenger runs on @replyhq/sdk, compiled from its sources (sdk/js/src) into this one
// script: nothing of the SDK needs building first, and a change to it rebuilds the widget.
import { fileURLToPath } from "node:url";
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

export default defineConfig({
  plugins: [react()],
  resolve: {
    alias: { "@replyhq/sdk": fileURLToPath(new URL("../sdk/js/src/index.ts", import.meta.url)) },
    // The SDK's own imports (socket.io-client) resolve from web/node_modules: one copy, pinned
    // by web/package-lock.json at the SDK's version.
    dedupe: ["socket.io-client"],
  },
  define: { "process.env.NODE_ENV": JSON.stringify("production") },
  build: {
    outDir: "../src/replyhq/static",
    emptyOutDir: false,
    sourcemap: false,
    minify: true,
    lib: {
      entry: "src/widget/main.tsx",
      name: "ReplyHQWidget",
      formats: ["iife"],
      fileName: () => "widget.js",
    },
  },
});
