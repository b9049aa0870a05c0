// Many official socket.io-client sockets in one process, for bench/bench_realtime.py.
//
//   node bench/node/load_client.mjs CONFIG.json
//   config: {"sockets": [{"url": ..., "auth": {...}}, ...], "local_addresses": ["127.0.0.2", ...],
//            "concurrency": 100, "report_ms": 50}
//
// Connects every socket (websocket transport, no reconnection) from the local addresses in turn,
// at most `concurrency` handshakes at a time, then holds them. Every `report_ms` it prints
//   {"progress": {"connected", "failed", "dropped", "received", "errors": [...]}}
// where `received` counts `message:new` events. Commands, one JSON line each on stdin:
//   {"cmd": "record", "on": true|false}   keep send-to-receive latencies of `message:new`
//                                         events whose message body is "t=<ms since epoch>"
//   {"cmd": "latencies"}                   -> {"latencies": [ms, ...]} (and forget them)
//   {"cmd": "send", "senders": [{"index": i, "conversation_id": c}], "mode": "closed"|"open",
//    "rate": messages per second over this process' senders (open), "duration": s}
//        message:send from those sockets: closed = each sends again when acknowledged;
//        open = on a fixed schedule (latency counts from the scheduled time)
//                                         -> {"sent": {"acked", "errors", "error_samples", "ack_ms"}}
//   {"cmd": "close"}                      closes everything and exits
import { readFileSync } from "node:fs";
import { randomUUID } from "node:crypto";
import { createInterface } from "node:readline";
import { io } from "socket.io-client";

const config = JSON.parse(readFileSync(process.argv[2], "utf8"));
const addresses = config.local_addresses ?? [];
const sockets = new Array(config.sockets.length);
const errors = [];
let connected = 0;
let failed = 0;
let dropped = 0;
let received = 0;
let recording = false;
let latencies = [];

const now = () => performance.timeOrigin + performance.now();

function say(value) {
  process.stdout.write(JSON.stringify(value) + "\n");
}

function noteError(text) {
  if (errors.length < 5) errors.push(String(text).slice(0, 300));
}

function onMessage(payload) {
  received++;
  if (!recording) return;
  const body = payload?.message?.body;
  if (typeof body === "string" && body.startsWith("t=")) {
    latencies.push(now() - Number(body.slice(2)));
  }
}

function open(index) {
  const spec = config.sockets[index];
  return new Promise((resolve) => {
    const socket = io(spec.url, {
      transports: ["websocket"],
      reconnection: false,
      forceNew: true,
      timeout: 60000,
      auth: spec.auth,
      ...(addresses.length ? { localAddress: addresses[index % addresses.length] } : {}),
    });
    socket.on("message:new", onMessage);
    socket.on("connect", () => {
      connected++;
      sockets[index] = socket;
      resolve();
    });
    socket.on("connect_error", (err) => {
      failed++;
      noteError(`${err.message} ${JSON.stringify(err.data ?? null)}`);
      socket.close();
      resolve();
    });
    socket.on("disconnect", (reason) => {
      if (reason !== "io client disconnect") {
        dropped++;
        noteError(`disconnected: ${reason}`);
      }
    });
  });
}

async function connectAll() {
  let next = 0;
  const worker = async () => {
    while (next < config.sockets.length) await open(next++);
  };
  await Promise.all(Array.from({ length: config.concurrency ?? 100 }, worker));
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function send(command) {
  const result = { acked: 0, errors: 0, error_samples: [], ack_ms: [] };
  const stopAt = now() + command.duration * 1000;
  const one = async (sender, due) => {
    const socket = sockets[sender.index];
    try {
      const ack = await socket.timeout(30000).emitWithAck("message:send", {
        conversation_id: sender.conversation_id,
        body: `t=${due}`,
        client_msg_id: randomUUID(),
      });
      if (ack?.ok) {
        result.acked++;
        result.ack_ms.push(now() - due);
      }
      else throw new Error(JSON.stringify(ack));
    } catch (err) {
      result.errors++;
      if (result.error_samples.length < 5) result.error_samples.push(String(err).slice(0, 300));
    }
  };
  const loops = command.senders.map(async (sender, position) => {
    if (!sockets[sender.index]) throw new Error(`socket ${sender.index} is not connected`);
    if (command.mode === "closed") {
      while (now() < stopAt) await one(sender, now());
      return;
    }
    const interval = (1000 * command.senders.length) / command.rate;
    let due = now() + (interval * position) / command.senders.length;
    const pending = [];
    while (due < stopAt) {
      await sleep(Math.max(0, due - now()));
      pending.push(one(sender, due));
      due += interval;
    }
    await Promise.all(pending);
  });
  await Promise.all(loops);
  say({ sent: result });
}

createInterface({ input: process.stdin }).on("line", (line) => {
  const command = JSON.parse(line);
  if (command.cmd === "record") {
    recording = command.on;
    latencies = [];
  } else if (command.cmd === "latencies") {
    say({ latencies });
    latencies = [];
  } else if (command.cmd === "send") {
    send(command).catch((err) => say({ sent: { fatal: String(err) } }));
  } else if (command.cmd === "close") {
    for (const socket of sockets) socket?.close();
    process.exit(0);
  }
});
process.stdin.on("end", () => process.exit(0));

const report = () => say({ progress: { connected, failed, dropped, received, errors } });
setInterval(report, config.report_ms ?? 50);
connectAll().then(report);
