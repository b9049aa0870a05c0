// What a React Native app (Metro) or a browser bundler takes in: the SDK with socket.io-client,
// resolved with the react-native and browser conditions. Fails (exit 1) when a Node built-in is
// imported anywhere in it, or when the SDK's own code names a DOM or Node global; prints sizes
// (minified + gzip) for the bench. `--json` prints one JSON object.
import { build } from "esbuild";
import { builtinModules } from "node:module";
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";

const builtins = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);
const nodeImports = [];
const detector = {
  name: "node-built-ins",
  setup(b) {
    b.onResolve({ filter: /.*/ }, (args) => {
      if (builtins.has(args.path) || args.path.startsWith("node:")) {
        nodeImports.push({ path: args.path, from: args.importer });
        return { path: args.path, external: true };
      }
      return undefined;
    });
  },
};
const rn = {
  entryPoints: ["src/index.ts"],
  bundle: true,
  minify: true,
  write: false,
  // "browser" makes esbuild apply package.json `browser` maps, as Metro does (engine.io-client
  // maps its Node transports to the WebSocket/XHR ones there).
  platform: "browser",
  format: "esm",
  target: "es2020",
  mainFields: ["react-native", "browser", "module", "main"],
  conditions: ["react-native", "browser", "import", "default"],
  plugins: [detector],
  logLevel: "silent",
};
const whole = await build(rn);
const alone = await build({ ...rn, external: ["socket.io-client"] });
const size = (result) => {
  const bytes = result.outputFiles[0].contents;
  return { min: bytes.length, gzip: gzipSync(bytes, { level: 9 }).length };
};
const withClient = size(whole);
const sdkOnly = size(alone);

// The SDK's own output (socket.io-client excluded): no DOM or Node global by name.
const own = readFileSync("dist/index.js", "utf8");
const sdkGlobals = [...own.matchAll(/(?<![.\w$])(window|document|navigator|process|Buffer|require|__dirname|self)\s*[.([]/g)].map((m) => m[1]);

const report = {
  node_imports: nodeImports,
  sdk_globals: [...new Set(sdkGlobals)],
  bytes_min: sdkOnly.min,
  bytes_gzip: sdkOnly.gzip,
  with_socket_io_min: withClient.min,
  with_socket_io_gzip: withClient.gzip,
};
if (process.argv.includes("--json")) console.log(JSON.stringify(report));
else console.table(report);
process.exit(nodeImports.length === 0 && report.sdk_globals.length === 0 ? 0 : 1);
