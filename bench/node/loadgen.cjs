// Copied from the session anchors (shared/anchors) for bench/bench_e2e.py; changed only to write
// "sending" and "sent" on stderr around the timed part, so that the harness reads the servers' CPU there.
// Contract-level load generator (shared/API.md), in Node so the generator costs little CPU beside the
// server under test. End users send over HTTP at a fixed open-loop rate; their other devices (namespace
// "/") and agents ("/admin") receive message:new. Prints one JSON line: throughput, errors, lost and
// duplicated deliveries, send-to-receive latency percentiles, and the generator's own CPU seconds.
// node loadgen.js URL MASTER [users=20] [listeners=1] [agents=2] [rate=200] [seconds=10] [agentAuth=secret|login] [email] [password]
const http = require("http");
const crypto = require("crypto");
const { io } = require("socket.io-client");

const [url, master, users = 20, listeners = 1, agents = 2, rate = 200, seconds = 10, agentAuth = "secret", email, password] =
  process.argv.slice(2).map((v, i) => (i >= 2 && i <= 6 ? +v : v));
const u = new URL(url);
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
const now = () => Number(process.hrtime.bigint()) / 1e6;

function req(method, path, body, headers = {}) {
  return new Promise((resolve) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const r = http.request({ host: u.hostname, port: u.port, method, path, agent,
      headers: Object.assign({ "content-type": "application/json" }, data ? { "content-length": Buffer.byteLength(data) } : {}, headers) },
      (res) => { let s = ""; res.on("data", (c) => (s += c)); res.on("end", () => resolve({ status: res.statusCode, body: s ? JSON.parse(s) : null })); });
    r.on("error", (e) => resolve({ status: 0, body: String(e) }));
    if (data) r.write(data);
    r.end();
  });
}

const sentAt = new Map(), expected = new Map(), got = new Map(), lat = [];
// LOADGEN_SLOW_FILE=<path>: also append there (a JSON line a run) every message slower than LOADGEN_SLOW_MS (20)
// end to end: its send time (epoch ms) and how late the generator sent it, its POST's duration and each delivery's latency, to set
// beside the server's own timeline (opt-in; the JSON line on stdout is unchanged).
const slowFile = process.env.LOADGEN_SLOW_FILE, slowMs = +(process.env.LOADGEN_SLOW_MS || 20);
const wallAt = new Map(), postMs = new Map(), delivered = new Map();
function onMessage(d) {
  const m = (d && d.message) || d || {};
  const t = sentAt.get(m.client_msg_id);
  if (t === undefined) return;
  got.set(m.client_msg_id, (got.get(m.client_msg_id) || 0) + 1);
  lat.push(now() - t);
  if (slowFile) (delivered.get(m.client_msg_id) || delivered.set(m.client_msg_id, []).get(m.client_msg_id)).push(+(now() - t).toFixed(1));
}
function connect(ns, auth) {
  return new Promise((resolve, reject) => {
    const s = io(url + (ns === "/" ? "" : ns), { auth, transports: ["websocket"], reconnection: false, forceNew: true,
      extraHeaders: { Origin: "http://allowed.example" } });
    s.on("message:new", onMessage);
    s.on("connect", () => resolve(s));
    s.on("connect_error", (e) => reject(new Error(ns + " connect_error " + e.message + " " + JSON.stringify(e.data))));
  });
}
const pct = (xs, p) => (xs.length ? +xs.slice().sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))].toFixed(1) : null);

(async () => {
  // LOADGEN_APP=<file with a POST /setup/apps answer>: use that app (one whose staff owner exists), not a new one.
  const app = process.env.LOADGEN_APP ? JSON.parse(require("fs").readFileSync(process.env.LOADGEN_APP, "utf8"))
    : (await req("POST", "/setup/apps", { name: "load-" + Date.now() }, { "X-Master-Key": master })).body;
  const senders = [], socks = [];
  for (let i = 0; i < users; i++) {
    const uid = "u" + i + "-" + crypto.randomBytes(3).toString("hex");
    const uh = crypto.createHmac("sha256", app.identity_secret).update(uid).digest("hex");
    const h = { "X-App-Id": app.id, "X-Api-Key": app.sdk_key, "X-Device-Id": uid + "-send" };
    const idr = await req("POST", "/v1/identify", { platform: "web", user_id: uid, user_hash: uh }, h);
    if (idr.status !== 200) throw new Error("identify " + idr.status + " " + JSON.stringify(idr.body));
    const conv = await req("POST", "/v1/conversations", {}, h);
    if (conv.status !== 201) throw new Error("conversation " + conv.status + " " + JSON.stringify(conv.body));
    senders.push([h, conv.body.id]);
    for (let d = 0; d < listeners; d++) {
      const dev = uid + "-l" + d;
      await req("POST", "/v1/identify", { platform: "web", user_id: uid, user_hash: uh }, Object.assign({}, h, { "X-Device-Id": dev }));
      socks.push(await connect("/", { app_id: app.id, api_key: app.sdk_key, device_id: dev, user_id: uid, user_hash: uh }));
    }
  }
  for (let i = 0; i < agents; i++) {
    let auth = { app_id: app.id, secret_key: app.secret_key };
    if (agentAuth === "login") {  // app_id in the login body; a failed login is an error, not a silent undefined token
      const lr = await req("POST", "/admin/login", { email, password, app_id: app.id });
      if (lr.status !== 200) throw new Error("login " + lr.status + " " + JSON.stringify(lr.body));
      auth = { token: lr.body.access_token };
    }
    socks.push(await connect("/admin", auth));
  }
  await new Promise((r) => setTimeout(r, 1000));
  const n = Math.round(rate * seconds), codes = {}, postLat = [];
  let errors = 0, done = 0;
  const cpu0 = process.cpuUsage(), start = now();
  process.stderr.write("sending\n");
  await new Promise((resolveAll) => {
    for (let i = 0; i < n; i++) {
      setTimeout(async () => {
        const [h, cid] = senders[i % senders.length];
        const mid = crypto.randomUUID();
        sentAt.set(mid, now());
        if (slowFile) wallAt.set(mid, [Date.now(), +(now() - start - (i * 1000) / rate).toFixed(1)]);
        expected.set(mid, listeners + agents);
        const t0 = now();
        const r = await req("POST", `/v1/conversations/${cid}/messages`, { body: "load " + mid.slice(0, 8), client_msg_id: mid }, h);
        postLat.push(now() - t0);
        if (slowFile) postMs.set(mid, +(now() - t0).toFixed(1));
        codes[r.status] = (codes[r.status] || 0) + 1;
        if (r.status !== 201) { errors++; expected.set(mid, 0); }
        if (++done === n) resolveAll();
      }, (i * 1000) / rate);
    }
  });
  const wall = (now() - start) / 1000;
  await new Promise((r) => setTimeout(r, 3000));
  process.stderr.write("sent\n");
  const cpu = process.cpuUsage(cpu0);
  if (slowFile) {
    const slow = [];
    for (const [m, [w, late]] of wallAt) {
      const ls = delivered.get(m) || [];
      if (ls.length < (expected.get(m) || 0) || Math.max(0, ...ls) >= slowMs) slow.push({ at: w, late_ms: late, post_ms: postMs.get(m), e2e_ms: ls });
    }
    require("fs").appendFileSync(slowFile, JSON.stringify({ url, rate, start_epoch_ms: Date.now() - (now() - start), slow }) + "\n");
  }
  let exp = 0, del = 0, dup = 0;
  for (const [m, e] of expected) { const g = got.get(m) || 0; exp += e; del += Math.min(g, e); dup += Math.max(0, g - e); }
  console.log(JSON.stringify({ offered_rate: rate, sent: n, achieved_rate: +(n / wall).toFixed(1), http_errors: errors, codes,
    deliveries_expected: exp, delivered: del, lost: exp - del, duplicates: dup,
    post_ms: { p50: pct(postLat, 50), p99: pct(postLat, 99) },
    e2e_ms: { p50: pct(lat, 50), p95: pct(lat, 95), p99: pct(lat, 99) },
    loadgen_cpu_s: +((cpu.user + cpu.system) / 1e6).toFixed(1), sockets: socks.length }));
  socks.forEach((s) => s.close());
  process.exit(0);
})().catch((e) => { console.log(JSON.stringify({ error: String(e) })); process.exit(1); });
