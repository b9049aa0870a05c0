// A conformance adapter around a client that breaks the protocol's rules on purpose: it shows
// every message:new as it comes (no dedupe, no ordering, no sync) and sends without retrying.
// tests/test_conformance.py checks that the suite fails it on those rules.
import { createInterface } from "node:readline";
import { io } from "socket.io-client";

const say = (report) => process.stdout.write(JSON.stringify(report) + "\n");
let socket = null;
let config = null;

async function http(method, path, body) {
  const response = await fetch(config.url + path, {
    method,
    headers: { "Content-Type": "application/json", "X-App-Id": config.app_id, "X-Api-Key": config.sdk_key, "X-Device-Id": config.device_id },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return response.json();
}

for await (const line of createInterface({ input: process.stdin })) {
  const command = JSON.parse(line);
  const reply = { reply: command.id, ok: true };
  if (command.cmd === "identify") {
    config = { ...command, device_id: `naive-${Date.now()}` };
    await http("POST", "/v1/identify", { platform: "other", user_id: command.user_id, user_hash: command.user_hash });
    socket = io(command.url, {
      transports: ["websocket"],
      auth: { app_id: command.app_id, api_key: command.sdk_key, device_id: config.device_id, user_id: command.user_id, user_hash: command.user_hash },
    });
    socket.on("message:new", ({ message }) => say({ event: "message", message }));
  } else if (command.cmd === "start") {
    const conversation = await http("POST", "/v1/conversations", { first_message: { body: command.body, client_msg_id: `naive-${Date.now()}` } });
    say({ event: "message", message: conversation.last_message });
    reply.conversation_id = conversation.id;
  } else if (command.cmd === "send") {
    socket.emit("message:send", { conversation_id: command.conversation_id, body: command.body, client_msg_id: `naive-${Math.random().toString(16).slice(2)}` });
  } else if (command.cmd === "close") {
    say(reply);
    process.exit(0);
  }
  say(reply);
}
process.exit(0);
