// The official JavaScript Socket.IO client against a running ReplyHQ server (tests/test_interop_js.py).
//
//   node tests/js/interop.mjs '<json config>'
//   config: {url, app_id, api_key, device_id, user_id, user_hash, conversation_id,
//            client_msg_id, wait_for_client_msg_id, timeout_ms}
//
// Prints one JSON object per line on stdout, in this order:
//   {"step": "refused", ...}     a wrong api_key: the handshake's connect_error and its data
//   {"step": "connected", ...}   the real credentials, websocket transport only
//   {"step": "sent", ack}        message:send with an acknowledgement
//   (the test now sends a message over HTTP, whose client_msg_id is wait_for_client_msg_id)
//   {"step": "received", ...}    every message:new seen, once that one has arrived
//   {"step": "synced", ack}      sync from after_seq 0
//   {"step": "done"}
// Exits 1 with {"step": "failed", "error"} on any failure or after timeout_ms.
import { io } from "socket.io-client";

const config = JSON.parse(process.argv[2]);
const timeoutMs = config.timeout_ms ?? 20000;

function say(step, fields = {}) {
  process.stdout.write(JSON.stringify({ step, ...fields }) + "\n");
}

function fail(error) {
  say("failed", { error: String(error && error.stack ? error.stack : error) });
  process.exit(1);
}

setTimeout(() => fail(`timed out after ${timeoutMs} ms`), timeoutMs).unref();

function open(auth) {
  return io(config.url, {
    path: "/socket.io",
    transports: ["websocket"],
    reconnection: false,
    forceNew: true,
    timeout: 5000,
    auth,
  });
}

const auth = {
  app_id: config.app_id,
  api_key: config.api_key,
  device_id: config.device_id,
  user_id: config.user_id,
  user_hash: config.user_hash,
};

async function refused() {
  const socket = open({ ...auth, api_key: "rhq_sdk_not-the-key" });
  const outcome = await new Promise((resolve) => {
    socket.on("connect", () => resolve({ connected: true }));
    socket.on("connect_error", (err) => resolve({ message: err.message, data: err.data ?? null }));
  });
  socket.close();
  if (outcome.connected) throw new Error("a wrong api_key was accepted");
  say("refused", outcome);
}

async function main() {
  await refused();

  const socket = open(auth);
  const seen = [];
  let arrived;
  const awaited = new Promise((resolve) => (arrived = resolve));
  socket.on("message:new", (payload) => {
    seen.push(payload);
    if (payload?.message?.client_msg_id === config.wait_for_client_msg_id) arrived();
  });
  await new Promise((resolve, reject) => {
    socket.on("connect", resolve);
    socket.on("connect_error", (err) => reject(new Error(`refused: ${err.message}`)));
  });
  say("connected", { id: socket.id, transport: socket.io.engine.transport.name });

  const ack = await socket.timeout(5000).emitWithAck("message:send", {
    conversation_id: config.conversation_id,
    body: "Hello from socket.io-client",
    client_msg_id: config.client_msg_id,
  });
  say("sent", { ack });

  await awaited;
  say("received", { events: seen });

  const synced = await socket.timeout(5000).emitWithAck("sync", {
    conversation_id: config.conversation_id,
    after_seq: 0,
  });
  say("synced", { ack: synced });

  socket.close();
  say("done");
  process.exit(0);
}

main().catch(fail);
