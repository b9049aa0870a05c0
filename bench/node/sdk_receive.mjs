// How many messages per second one client receives: @replyhq/sdk (exactly-once, ordered, with
// its storage writes) against a bare socket.io-client, from the same local server that streams
// `message:new` as fast as it can (real Socket.IO wire protocol; no database in the way, so the
// client is what is measured). Modes: `server`, `client bare|sdk <url> <n>`.
import { createServer } from "node:http";
import { createRequire } from "node:module";

const [mode, ...rest] = process.argv.slice(2);
const here = new URL(".", import.meta.url).pathname;
const root = createRequire(here + "../../package.json");

const CONVERSATION = "00000000-0000-4000-8000-000000000001";
function message(seq) {
  return {
    id: `00000000-0000-4000-8000-${String(seq).padStart(12, "0")}`,
    conversation_id: CONVERSATION,
    seq,
    client_msg_id: `m-${seq}`,
    sender: "agent",
    author: { type: "agent", id: "00000000-0000-4000-8000-00000000000a", name: "Sam" },
    body: `Reply number ${seq}, about the size of a chat line.`,
    body_html: `<p>Reply number ${seq}, about the size of a chat line.</p>`,
    created_at: new Date().toISOString(),
  };
}

if (mode === "server") {
  const { Server } = root("socket.io");
  const http = createServer((req, res) => {
    if (req.url.startsWith("/v1/identify")) {
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end(JSON.stringify({ device_id: "d", user: { id: "u", user_id: null, name: null, email: null, attributes: {}, anonymous: true, verified: false } }));
    } else if (req.url.startsWith("/go")) {
      const n = Number(new URL(req.url, "http://x").searchParams.get("n"));
      res.end("ok");
      let seq = 0;
      const burst = () => {
        for (let i = 0; i < 500 && seq < n; i++) io.emit("message:new", { message: message(++seq) });
        if (seq < n) setImmediate(burst);
      };
      burst();
    } else {
      res.writeHead(404).end("{}");
    }
  });
  const io = new Server(http, { transports: ["websocket"] });
  io.on("connection", (socket) => {
    socket.on("sync", (_data, ack) => ack({ ok: true, messages: [], has_more: false }));
  });
  http.listen(0, "127.0.0.1", () => console.log(JSON.stringify({ port: http.address().port })));
} else {
  const [kind, url, n] = rest;
  const total = Number(n);
  let received = 0;
  let started = 0;
  const sdk = kind === "sdk" ? await import("../../sdk/js/dist/index.js") : null;
  const done = new Promise((resolve) => {
    const count = () => {
      received += 1;
      if (received === total) resolve();
    };
    if (kind === "bare") {
      const { io } = root("socket.io-client");
      const socket = io(url, { transports: ["websocket"] });
      socket.on("message:new", count);
      socket.on("connect", go);
    } else {
      const { ReplyHQ, memoryStorage } = sdk;
      const client = new ReplyHQ({ url, appId: "a", sdkKey: "k", storage: memoryStorage() });
      client.on("message", count);
      client.on("state", (state) => state === "connected" && go());
      void client.identify();
    }
  });
  async function go() {
    started = performance.now();
    await fetch(`${url}/go?n=${total}`);
  }
  await done;
  const seconds = (performance.now() - started) / 1000;
  console.log(JSON.stringify({ kind, received, seconds, per_second: received / seconds }));
  process.exit(0);
}
