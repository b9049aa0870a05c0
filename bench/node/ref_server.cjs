// Copied unchanged (but for this line) from the session anchors (shared/anchors), for bench/bench_e2e.py.
// A minimal reference of the seed's own stack (Node + Socket.IO + PostgreSQL with RLS), implementing
// the subset of shared/API.md that the load generator drives. It is an anchor for side-by-side
// throughput and latency, not a product: no rate limits, no validation beyond what the path needs.
// Usage: DATABASE_URL=postgres://... PORT=3200 MASTER_API_KEY=... node server.js
const http = require("http");
const crypto = require("crypto");
const { Pool } = require("pg");
const { Server } = require("socket.io");

const master = process.env.MASTER_API_KEY || "master";
const owner = new Pool({ connectionString: process.env.DATABASE_URL, max: 4 });
const pool = new Pool({ connectionString: process.env.DATABASE_URL, max: +(process.env.POOL || 20) });
const keys = new Map(); // sha256(key) -> app_id, the cached verification path

const sha = (s) => crypto.createHash("sha256").update(s).digest("hex");
const tok = (p) => p + crypto.randomBytes(24).toString("base64url");

async function migrate() {
  await owner.query(`
    create table if not exists apps(id uuid primary key default gen_random_uuid(), name text not null,
      sdk_hash text not null, secret_hash text not null);
    create table if not exists devices(app_id uuid not null, id text not null, user_id text, primary key(app_id, id));
    create table if not exists conversations(id uuid primary key default gen_random_uuid(), app_id uuid not null,
      user_key text not null, last_seq bigint not null default 0, last_message_at timestamptz);
    create table if not exists messages(id uuid primary key default gen_random_uuid(), app_id uuid not null,
      conversation_id uuid not null, seq bigint not null, client_msg_id text not null, sender text not null,
      body text not null, created_at timestamptz not null default now(),
      unique(conversation_id, seq), unique(conversation_id, client_msg_id));
    do $$ begin
      if not exists (select 1 from pg_roles where rolname='ref_app') then create role ref_app nologin; end if;
    end $$;
    grant select, insert, update on devices, conversations, messages, apps to ref_app;`);
  for (const t of ["devices", "conversations", "messages"]) {
    await owner.query(`alter table ${t} enable row level security; alter table ${t} force row level security;
      drop policy if exists tenant on ${t};
      create policy tenant on ${t} using (app_id = (select current_setting('app.current_tenant', true))::uuid)`);
  }
}

async function tx(appId, fn) {
  const c = await pool.connect();
  try {
    await c.query("begin");
    await c.query("set local role ref_app");
    await c.query("select set_config('app.current_tenant', $1, true)", [appId]);
    const r = await fn(c);
    await c.query("commit");
    return r;
  } catch (e) {
    await c.query("rollback").catch(() => {});
    throw e;
  } finally {
    c.release();
  }
}

function sdkAuth(h) {
  const appId = keys.get("sdk:" + sha(h["x-api-key"] || ""));
  if (!appId || appId !== h["x-app-id"] || !h["x-device-id"]) return null;
  return { appId, device: h["x-device-id"] };
}

const send = (res, code, body) => {
  res.writeHead(code, { "content-type": "application/json" });
  res.end(body === undefined ? "" : JSON.stringify(body));
};

let io;
async function postMessage(appId, userKey, cid, body, clientMsgId) {
  const out = await tx(appId, async (c) => {
    const conv = await c.query("select id from conversations where id=$1 and user_key=$2", [cid, userKey]);
    if (!conv.rowCount) return null;
    const dup = await c.query("select * from messages where conversation_id=$1 and client_msg_id=$2", [cid, clientMsgId]);
    if (dup.rowCount) return { code: 200, m: dup.rows[0] };
    const s = await c.query("update conversations set last_seq=last_seq+1, last_message_at=now() where id=$1 returning last_seq", [cid]);
    const m = await c.query(`insert into messages(app_id, conversation_id, seq, client_msg_id, sender, body)
      values($1,$2,$3,$4,'user',$5) returning *`, [appId, cid, s.rows[0].last_seq, clientMsgId, body]);
    return { code: 201, m: m.rows[0] };
  });
  if (out && out.code === 201) {
    io.of("/").to("u:" + appId + ":" + userKey).emit("message:new", { message: out.m });
    io.of("/admin").to("a:" + appId).emit("message:new", { message: out.m });
  }
  return out;
}

const server = http.createServer(async (req, res) => {
  let raw = "";
  for await (const chunk of req) raw += chunk;
  const body = raw ? JSON.parse(raw) : {};
  const h = req.headers;
  try {
    if (req.method === "POST" && req.url === "/setup/apps") {
      if (h["x-master-key"] !== master) return send(res, 401, { error: "Unauthorized", code: "MASTER_KEY_REQUIRED" });
      const sdk = tok("rhq_sdk_"), secret = tok("rhq_sk_");
      const r = await owner.query("insert into apps(name, sdk_hash, secret_hash) values($1,$2,$3) returning id",
        [body.name, sha(sdk), sha(secret)]);
      keys.set("sdk:" + sha(sdk), r.rows[0].id);
      keys.set("sk:" + sha(secret), r.rows[0].id);
      return send(res, 201, { id: r.rows[0].id, name: body.name, sdk_key: sdk, secret_key: secret, identity_secret: tok("") });
    }
    if (req.method === "GET" && req.url === "/readyz") return send(res, 200, { ok: true });
    const a = sdkAuth(h);
    if (!a) return send(res, 401, { error: "Unauthorized", code: "BAD_KEY" });
    if (req.method === "POST" && req.url === "/v1/identify") {
      await tx(a.appId, (c) => c.query(`insert into devices(app_id, id, user_id) values($1,$2,$3)
        on conflict (app_id, id) do update set user_id=excluded.user_id`, [a.appId, a.device, body.user_id || null]));
      return send(res, 200, { device_id: a.device });
    }
    const userKey = await userKeyOf(a);
    if (req.method === "POST" && req.url === "/v1/conversations") {
      const r = await tx(a.appId, (c) => c.query("insert into conversations(app_id, user_key) values($1,$2) returning *", [a.appId, userKey]));
      return send(res, 201, r.rows[0]);
    }
    const m = req.url.match(/^\/v1\/conversations\/([0-9a-f-]{36})\/messages$/);
    if (req.method === "POST" && m) {
      const out = await postMessage(a.appId, userKey, m[1], body.body, body.client_msg_id);
      return out ? send(res, out.code, out.m) : send(res, 404, { error: "Not found", code: "NOT_FOUND" });
    }
    return send(res, 404, { error: "Not found", code: "NOT_FOUND" });
  } catch (e) {
    console.error(e);
    return send(res, 500, { error: "Internal error", code: "INTERNAL" });
  }
});

const userKeys = new Map();
async function userKeyOf(a) {
  const k = a.appId + ":" + a.device;
  if (userKeys.has(k)) return userKeys.get(k);
  const r = await tx(a.appId, (c) => c.query("select user_id from devices where id=$1", [a.device]));
  const key = (r.rows[0] && r.rows[0].user_id) ? "user:" + r.rows[0].user_id : "device:" + a.device;
  userKeys.set(k, key);
  return key;
}

io = new Server(server, { transports: ["websocket"], cors: { origin: ["http://allowed.example"] } });
io.of("/").use(async (socket, next) => {
  const au = socket.handshake.auth || {};
  const a = sdkAuth({ "x-api-key": au.api_key, "x-app-id": au.app_id, "x-device-id": au.device_id });
  if (!a) return next(Object.assign(new Error("unauthorized"), { data: { code: "BAD_KEY" } }));
  socket.join("u:" + a.appId + ":" + (await userKeyOf(a)));
  socket.data.a = a;
  next();
});
io.of("/").on("connection", (socket) => {
  socket.on("message:send", async (p, ack) => {
    try {
      const out = await postMessage(socket.data.a.appId, await userKeyOf(socket.data.a), p.conversation_id, p.body, p.client_msg_id);
      ack && ack(out ? { ok: true, message: out.m } : { ok: false, code: "NOT_FOUND" });
    } catch (e) { ack && ack({ ok: false, code: "INTERNAL" }); }
  });
});
io.of("/admin").use((socket, next) => {
  const au = socket.handshake.auth || {};
  const appId = keys.get("sk:" + sha(au.secret_key || ""));
  if (!appId || appId !== au.app_id) return next(Object.assign(new Error("unauthorized"), { data: { code: "BAD_KEY" } }));
  socket.join("a:" + appId);
  next();
});

migrate().then(() => server.listen(+(process.env.PORT || 3200), "127.0.0.1", () => console.log("node-ref listening")));
