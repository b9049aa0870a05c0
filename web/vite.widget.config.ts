// widget.js: one self-contained script (React included, CSS inlined) served at /widget.js.
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

export default defineConfig({
  plugins: [react()],
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
