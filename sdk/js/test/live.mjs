// @replyhq/sdk in Node 20 against a live server (driven by tests/test_sdk_js.py, which passes the
// server's address and an app's keys). Each check prints one JSON line; any failure exits 1.
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { io } from "socket.io-client";
import { NEW_CONVERSATION, ReplyHQ, ReplyHQError, memoryStorage } from "../dist/index.js";

const config = JSON.parse(process.argv[2]);
const { url, app_id: appId, sdk_key: sdkKey, secret_key: secretKey, identity_secret: identitySecret } = config;
const hash = (userId) => createHmac("sha256", identitySecret).update(userId).digest("hex");
const admin = { "Content-Type": "application/json", "X-App-Id": appId, "X-Api-Key": secretKey };

function step(name, data = {}) {
  console.log(JSON.stringify({ step: name, ...data }));
}

async function agentSays(conversationId, body) {
  const response = await fetch(`${url}/admin/api/conversations/${conversationId}/messages`, {
    method: "POST",
    headers: admin,
    body: JSON.stringify({ body, client_msg_id: `agent-${Math.random().toString(16).slice(2)}` }),
  });
  const text = await response.text();
  assert.equal(response.status, 201, text);
  return JSON.parse(text);
}

async function history(conversationId) {
  const response = await fetch(`${url}/admin/api/conversations/${conversationId}/messages?after_seq=0&limit=200`, { headers: admin });
  assert.equal(response.status, 200);
  return (await response.json()).items;
}

function until(predicate, what, ms = 10_000) {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const tick = () => {
      if (predicate()) resolve();
      else if (Date.now() - started > ms) reject(new Error(`timed out waiting for ${what}`));
      else setTimeout(tick, 20);
    };
    tick();
  });
}

const storage = memoryStorage();
const options = { url, appId, sdkKey, platform: "web", storage, ackTimeoutMs: 5000 };

// --- identify, start a conversation, send, receive -------------------------------------------
const client = new ReplyHQ(options);
const received = [];
client.on("message", (message) => received.push(message));
const unreadCounts = [];
client.on("unread", (count) => unreadCounts.push(count));
const user = await client.identify({ userId: "ann", userHash: hash("ann"), name: "Ann" });
assert.equal(user.user_id, "ann");
assert.equal(user.verified, true);
await until(() => client.state === "connected", "connected");
step("identified", { device_id: await client.device() });

const conversation = await client.startConversation({ subject: "Order #42", body: "Hello" });
assert.equal(received.length, 1);
assert.equal(received[0].body, "Hello");
const iterator = client.messages();
const stored = await client.send(conversation.id, "Second");
assert.equal(stored.seq, 2);
assert.equal(stored.sender, "user");
const fromIterator = await iterator.next();
assert.equal(fromIterator.value.seq, 2);
step("sent", { seq: stored.seq });

// Five agent replies as fast as HTTP allows: each delivered once, in order.
for (let i = 1; i <= 5; i++) await agentSays(conversation.id, `Reply ${i}`);
await until(() => received.length === 7, "7 messages");
assert.deepEqual(received.map((m) => m.seq), [1, 2, 3, 4, 5, 6, 7]);
assert.equal(client.unreadCount, 5);
assert.equal(unreadCounts.at(-1), 5);
for (let i = 0; i < 5; i++) assert.equal((await iterator.next()).value.body, `Reply ${i + 1}`);
await iterator.return();
step("received", { seqs: received.map((m) => m.seq) });

// --- read receipts, unread count ---------------------------------------------------------------
await client.read(conversation.id);
assert.equal(client.unreadCount, 0);
const listed = await client.conversations();
assert.equal(listed.find((c) => c.id === conversation.id).unread_count, 0);
step("read", { unread: client.unreadCount });

// --- typing both ways (the agent through the dashboard's namespace) ---------------------------
const agent = io(`${url}/admin`, { transports: ["websocket"], auth: { token: config.agent_token } });
const agentSaw = [];
agent.on("typing", (event) => agentSaw.push(event));
agent.on("read", (event) => agentSaw.push({ read: event.seq }));
await new Promise((resolve, reject) => {
  agent.on("connect", resolve);
  agent.on("connect_error", reject);
});
const typingEvents = [];
client.on("typing", (event) => typingEvents.push(event));
assert.equal(await client.typing(conversation.id, true), true);
await until(() => agentSaw.some((e) => e.typing === true && e.who?.type === "user"), "the agent sees typing");
const agentTyping = await agent.timeout(5000).emitWithAck("typing", { conversation_id: conversation.id, typing: true });
assert.equal(agentTyping.ok, true);
await until(() => typingEvents.some((e) => e.who.type === "agent" && e.typing), "the user sees typing");
const readEvents = [];
client.on("read", (event) => readEvents.push(event));
const agentRead = await agent.timeout(5000).emitWithAck("read", { conversation_id: conversation.id, seq: 2 });
assert.equal(agentRead.ok, true);
await until(() => readEvents.some((e) => e.who.type === "agent" && e.seq === 2), "the agent's read receipt");
agent.disconnect();
step("typing");

// --- typed errors ---------------------------------------------------------------------------
await assert.rejects(client.send("00000000-0000-0000-0000-000000000000", "lost"), (error) => {
  assert.ok(error instanceof ReplyHQError);
  assert.equal(error.code, "CONVERSATION_NOT_FOUND");
  return true;
});
await assert.rejects(client.send(conversation.id, ""), (error) => error instanceof ReplyHQError && error.code === "VALIDATION_ERROR");
const wrongKey = new ReplyHQ({ ...options, sdkKey: "rhq_sdk_wrong", storage: memoryStorage() });
await assert.rejects(wrongKey.identify(), (error) => error instanceof ReplyHQError && error.status === 401 && error.code === "INVALID_CREDENTIALS");
step("errors");

// --- optional routes: used when present, never breaking when absent ---------------------------
const push = await client.registerPushToken({ provider: "fcm", token: "fcm-token-1" });
const tracked = await client.track("opened_help", { screen: "home" });
assert.equal(typeof push.supported, "boolean");
assert.equal(typeof tracked.supported, "boolean");
step("optional", { push: push.supported, events: tracked.supported });

// --- the offline queue survives the process (shared storage) ----------------------------------
client.close();
const offline = new ReplyHQ(options); // not identified, so not connected: sends are queued
const queued = offline.send(conversation.id, "Written offline");
queued.catch(() => undefined);
await until(() => offline.pending.length === 1, "queued");
const again = new ReplyHQ(options); // a new start of the app, same storage
const later = [];
again.on("message", (m) => later.push(m));
await again.identify({ userId: "ann", userHash: hash("ann") });
await until(() => again.pending.length === 0 && later.some((m) => m.body === "Written offline"), "the queued message sent");
const all = await history(conversation.id);
assert.equal(all.filter((m) => m.body === "Written offline").length, 1);
assert.equal(later.filter((m) => m.body === "Written offline").length, 1);
// Messages delivered before the restart are not delivered again.
assert.ok(later.every((m) => m.seq > 7), JSON.stringify(later.map((m) => m.seq)));
step("offline_queue", { seq: later.at(-1).seq });

// --- offline, a conversation's first messages before it exists (the web messenger's draft) -------
again.setOnline(false);
await until(() => again.state === "offline", "offline");
const started = [];
again.on("started", (created, clientMsgId) => started.push({ id: created.id, clientMsgId }));
const firstNew = again.send(NEW_CONVERSATION, "Brand new, written offline");
const secondNew = again.send(NEW_CONVERSATION, "And a second line");
await until(() => again.pending.length === 2, "both queued");
await new Promise((resolve) => setTimeout(resolve, 300));
assert.equal(started.length, 0); // nothing goes out while offline
again.setOnline(true);
const [newFirst, newSecond] = await Promise.all([firstNew, secondNew]);
assert.equal(started.length, 1);
assert.equal(started[0].clientMsgId, newFirst.client_msg_id);
assert.equal(newFirst.conversation_id, started[0].id);
assert.equal(newSecond.conversation_id, started[0].id);
const fresh = await history(started[0].id);
assert.deepEqual(fresh.map((m) => m.body), ["Brand new, written offline", "And a second line"]);
// A closing is a timeline event, nobody's unread message; the agent's next words are.
await again.read(started[0].id);
const closing = await fetch(`${url}/admin/api/conversations/${started[0].id}`, { method: "PATCH", headers: admin, body: JSON.stringify({ status: "closed" }) });
assert.equal(closing.status, 200, await closing.text());
await until(() => later.some((m) => m.conversation_id === started[0].id && m.kind === "event"), "the closing event");
assert.equal(again.unreadIn(started[0].id), 0);
await agentSays(started[0].id, "Reopened by me");
await until(() => later.some((m) => m.body === "Reopened by me"), "the agent's message");
assert.equal(again.unreadIn(started[0].id), 1);
step("new_conversation", { seqs: [newFirst.seq, newSecond.seq] });

// --- attachments: an image in a message, a conversation started with a file -------------------
const picture = new Blob([Buffer.from(config.png, "base64")], { type: "image/png" }); // a browser's File is one
const image = await again.upload(picture, { conversationId: started[0].id, filename: "photo.png" });
assert.equal(image.kind, "image");
assert.equal(image.conversation_id, started[0].id);
assert.equal(image.message_id, null);
const withImage = await again.send(started[0].id, "", { attachmentIds: [image.id] });
assert.deepEqual(withImage.attachments.map((a) => a.id), [image.id]);
const thumbnail = await fetch(again.fileUrl(withImage.attachments[0].thumbnail_url));
assert.equal(thumbnail.status, 200);
assert.equal(thumbnail.headers.get("content-type"), "image/webp");
assert.equal((await again.attachment(image.id)).message_id, withImage.id);
// Uploaded before its conversation exists, a file is the first message of a new one (queued).
const receipt = "Order 1234 was charged twice\n";
const upfront = await again.upload(new TextEncoder().encode(receipt), { filename: "receipt.txt" });
assert.equal(upfront.conversation_id, null);
const opening = await again.send(NEW_CONVERSATION, "", { attachmentIds: [upfront.id] });
assert.equal(opening.seq, 1);
assert.equal(started.length, 2);
assert.equal(opening.conversation_id, started[1].id);
assert.deepEqual(opening.attachments.map((a) => [a.filename, a.content_type]), [["receipt.txt", "text/plain"]]);
assert.equal(await (await fetch(again.fileUrl(opening.attachments[0].url))).text(), receipt);
const seenByAgent = await history(started[1].id);
assert.deepEqual(seenByAgent[0].attachments.map((a) => a.id), [upfront.id]);
await assert.rejects(again.upload(new Uint8Array([0x4d, 0x5a, 0x90, 0])), (error) => error instanceof ReplyHQError && error.code === "UNSUPPORTED_ATTACHMENT_TYPE");
await assert.rejects(again.send(started[1].id, "", { attachmentIds: [image.id] }), (error) => error.code === "INVALID_ATTACHMENT");
step("attachments", { image: image.id, first: opening.conversation_id });

// --- identity switch: nothing of Ann remains for Bob ------------------------------------------
const annDevice = await again.device();
assert.equal((await again.registerPushToken({ provider: "fcm", token: "fcm-token-of-ann" })).supported, true);
await again.identify({ userId: "bob", userHash: hash("bob") }); // withdraws Ann's push token
assert.notEqual(await again.device(), annDevice);
assert.equal(again.user.user_id, "bob");
assert.deepEqual(await again.conversations(), []);
assert.equal(again.unreadCount, 0);
await until(() => again.state === "connected", "bob connected");
await agentSays(conversation.id, "For Ann only");
await new Promise((resolve) => setTimeout(resolve, 300));
assert.ok(!later.some((m) => m.body === "For Ann only"));
await again.logout();
assert.equal(again.state, "idle");
assert.equal(again.user, null);
step("switched");

again.close();
offline.close();
step("done");
process.exit(0);
