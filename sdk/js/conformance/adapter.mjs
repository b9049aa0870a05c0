// The conformance adapter of @replyhq/sdk: JSON-line commands on stdin, replies and every
// delivered message on stdout (docs/conformance.md). Run: node sdk/js/conformance/adapter.mjs
import { createInterface } from "node:readline";
import { ReplyHQ, memoryStorage } from "../dist/index.js";

const say = (report) => process.stdout.write(JSON.stringify(report) + "\n");
let client = null;

for await (const line of createInterface({ input: process.stdin })) {
  const command = JSON.parse(line);
  const reply = { reply: command.id, ok: true };
  try {
    if (command.cmd === "identify") {
      client = new ReplyHQ({ url: command.url, appId: command.app_id, sdkKey: command.sdk_key, storage: memoryStorage(), platform: "other" });
      client.on("message", (message) => say({ event: "message", message }));
      client.on("error", (error) => say({ event: "error", code: error.code }));
      await client.identify({ userId: command.user_id, userHash: command.user_hash });
    } else if (command.cmd === "start") {
      const conversation = await client.startConversation({ body: command.body });
      reply.conversation_id = conversation.id;
    } else if (command.cmd === "send") {
      client.send(command.conversation_id, command.body).catch((error) => say({ event: "error", code: error.code }));
    } else if (command.cmd === "switch") {
      await client.identify({ userId: command.user_id, userHash: command.user_hash });
    } else if (command.cmd === "logout") {
      await client.logout();
    } else if (command.cmd === "close") {
      say(reply);
      client?.close();
      process.exit(0);
    }
  } catch (error) {
    reply.ok = false;
    reply.error = String(error);
  }
  say(reply);
}
client?.close();
process.exit(0);
