// Ingest load for bench/bench_analytics.py: POST /v1/events batches over keep-alive HTTP, from a
// process of its own, in Node (no dependencies) so that the generator costs the 2 shared cores
// little CPU beside the server under test (httpx in the bench's own process cost as much per
// request as the server's hot path, and its event loop's stalls were counted as latency).
//
// node events_load.cjs < spec.json, the spec:
//   {"base_url": "http://127.0.0.1:8000", "headers": [{...}, ...], "batch": 10,
//    "mode": "open" | "closed", "rate": 100, "clients": 16, "seconds": 6, "tag": false}
// open: batches due at `rate` a second whatever the answers, each latency counted from when it was
// due (no coordinated omission); closed: `clients` loops each sending its next batch when the last
// one is answered. The devices' headers are taken in turn. "tag": each request carries
// X-Bench-Seq (its number) for bench/ingest_stages.py to join with the server's timestamps.
// Prints one JSON object: latencies (ms), events stored, late batches, and per request
// [seq, due, written, answered] in seconds of CLOCK_MONOTONIC (Python's time.perf_counter()).
"use strict";
const http = require("http");

const now = () => Number(process.hrtime.bigint()) / 1e9;

function main(spec) {
  const u = new URL(spec.base_url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: spec.max_sockets || 64 });
  const batch = spec.batch || 10;
  // The body made once (the httpx client built each one per request): what varies per batch is
  // not what is measured.
  const events = [];
  for (let i = 0; i < batch; i++) events.push({ name: "tap", properties: { n: i } });
  const body = Buffer.from(JSON.stringify({ events }));
  const headers = spec.headers.map((h) =>
    Object.assign({ "content-type": "application/json", "content-length": body.length }, h));
  const records = [];
  const latencies = [];
  let stored = 0;
  let late = 0;
  let failed = null;
  let seq = 0;

  function post(due) {
    return new Promise((resolve) => {
      const n = seq++;
      const h = headers[n % headers.length];
      const hs = spec.tag ? Object.assign({ "x-bench-seq": String(n) }, h) : h;
      const r = http.request({ host: u.hostname, port: u.port, method: "POST", path: "/v1/events",
        agent, headers: hs }, (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => {
          const done = now();
          if (res.statusCode !== 202 && failed === null)
            failed = res.statusCode + " " + Buffer.concat(chunks).toString();
          const start = due === null ? written : due;
          latencies.push((done - start) * 1000);
          records.push([n, start, written, done]);
          stored += batch;
          resolve();
        });
      });
      r.on("error", (e) => { if (failed === null) failed = String(e); resolve(); });
      r.end(body);
      const written = now();
    });
  }

  const started = now();
  const deadline = started + spec.seconds;
  let finish;
  if (spec.mode === "closed") {
    const loops = [];
    for (let c = 0; c < spec.clients; c++) {
      loops.push((async () => { while (now() < deadline) await post(null); })());
    }
    finish = Promise.all(loops);
  } else {
    const count = Math.floor(spec.rate * spec.seconds);
    const pending = [];
    finish = new Promise((resolve) => {
      let n = 0;
      const tick = () => {
        const t = now();
        while (n < count && started + n / spec.rate <= t) {
          const due = started + n / spec.rate;
          if (t - due > 0.005) late++;
          pending.push(post(due));
          n++;
        }
        if (n >= count) { Promise.all(pending).then(resolve); return; }
        const wait = (started + n / spec.rate - now()) * 1000;
        setTimeout(tick, Math.max(0, wait));
      };
      tick();
    });
  }
  finish.then(() => {
    const elapsed = now() - started;
    const usage = process.cpuUsage();
    process.stdout.write(JSON.stringify({
      latencies, stored, late, elapsed, failed, records,
      cpu_seconds: (usage.user + usage.system) / 1e6,
    }) + "\n");
    agent.destroy();
  });
}

let input = "";
process.stdin.on("data", (c) => (input += c));
process.stdin.on("end", () => main(JSON.parse(input)));
