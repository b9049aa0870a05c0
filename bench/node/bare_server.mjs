// The baseline of bench/bench_realtime.py: a bare socket.io server, default options, nothing else.
//
//   node bench/node/bare_server.mjs PORT
//
// A socket whose handshake auth carries {room} joins that room. Prints {"listening": port} once
// ready, then obeys JSON lines on stdin, answering each with one JSON line on stdout:
//   {"cmd": "stats"}                                    -> {"sockets": n, "rss": bytes}
//   {"cmd": "blast", "rooms": [...], "start": i, "count": n, "payload": {...}}
//        emits `message:new` with payload to rooms[(start + k) % rooms.length], k < n
//                                                       -> {"emitted": n}
import { createServer } from "node:http";
import { createInterface } from "node:readline";
import { Server } from "socket.io";

const port = Number(process.argv[2] ?? 0);
const httpServer = createServer();
const io = new Server(httpServer, { serveClient: false });

io.on("connection", (socket) => {
  const room = socket.handshake.auth?.room;
  if (typeof room === "string") socket.join(room);
});

function answer(value) {
  process.stdout.write(JSON.stringify(value) + "\n");
}

createInterface({ input: process.stdin }).on("line", (line) => {
  const command = JSON.parse(line);
  if (command.cmd === "stats") {
    answer({ sockets: io.of("/").sockets.size, rss: process.memoryUsage().rss });
  } else if (command.cmd === "blast") {
    const { rooms, start, count, payload } = command;
    for (let k = 0; k < count; k++) {
      io.to(rooms[(start + k) % rooms.length]).emit("message:new", payload);
    }
    answer({ emitted: count });
  } else {
    answer({ error: `unknown command ${command.cmd}` });
  }
});
process.stdin.on("end", () => process.exit(0));

httpServer.listen(port, "127.0.0.1", () => answer({ listening: httpServer.address().port }));
