// The test console: the app's SDK traffic, live (console:subscribe on the /admin socket), with
// filters by type and device, pause/resume, clear, copy as JSON and auto-scroll.
import { useEffect, useRef, useState } from "react";
import type { ConsoleEntry } from "../../api/types";
import type { Desk } from "../desk";

const TYPES: ConsoleEntry["type"][] = ["connect", "connect_refused", "disconnect", "identify", "message", "typing", "event", "refused"];
const KEEP = 1000; // entries shown at most; older ones scroll away

export function ConsoleScreen({ desk }: { desk: Desk }) {
  const [entries, setEntries] = useState<ConsoleEntry[]>([]);
  const [held, setHeld] = useState<ConsoleEntry[]>([]);
  const [paused, setPaused] = useState(false);
  const [type, setType] = useState<string>("");
  const [device, setDevice] = useState("");
  const [follow, setFollow] = useState(true);
  const [status, setStatus] = useState("Connecting…");
  const [copied, setCopied] = useState(false);
  const pausedRef = useRef(paused);
  pausedRef.current = paused;
  const list = useRef<HTMLDivElement>(null);

  useEffect(() => {
    const stopListening = desk.listen("console:entries", ({ entries: batch }) => {
      if (pausedRef.current) setHeld((h) => [...h, ...batch].slice(-KEEP));
      else setEntries((e) => [...e, ...batch].slice(-KEEP));
    });
    const stopHook = desk.whenConnected((socket) => {
      socket.emit("console:subscribe", {}, (ack) => setStatus(ack.ok ? "Live" : ack.error));
    });
    return () => {
      stopHook();
      stopListening();
      desk.liveSocket?.emit("console:unsubscribe", {}, () => undefined);
    };
  }, [desk]);

  useEffect(() => {
    if (follow && list.current) list.current.scrollTop = list.current.scrollHeight;
  }, [entries, follow]);

  const shown = entries.filter((e) => (!type || e.type === type) && (!device || (e.device_id ?? "").includes(device)));
  const resume = () => {
    setEntries((e) => [...e, ...held].slice(-KEEP));
    setHeld([]);
    setPaused(false);
  };

  return (
    <div className="console" data-testid="console">
      <h2>
        Test console <span className="muted" data-testid="console-status">{paused ? "Paused" : status}</span>
      </h2>
      <p className="muted">Your app's SDK traffic as it happens: connections, identifies, messages, typing, tracked events and every refused call, with its reason. Secrets are never shown.</p>
      <div className="toolbar">
        <select aria-label="Type" value={type} onChange={(e) => setType(e.target.value)} data-testid="console-type">
          <option value="">All types</option>
          {TYPES.map((t) => (
            <option key={t} value={t}>
              {t}
            </option>
          ))}
        </select>
        <input aria-label="Device" placeholder="Device id" value={device} onChange={(e) => setDevice(e.target.value)} data-testid="console-device" />
        {paused ? (
          <button onClick={resume} data-testid="console-resume">
            Resume{held.length ? ` (${held.length} new)` : ""}
          </button>
        ) : (
          <button onClick={() => setPaused(true)} data-testid="console-pause">
            Pause
          </button>
        )}
        <button onClick={() => setEntries([])} data-testid="console-clear">
          Clear
        </button>
        <button
          onClick={() => void navigator.clipboard.writeText(JSON.stringify(shown, null, 2)).then(() => setCopied(true))}
          data-testid="console-copy"
        >
          {copied ? "Copied" : "Copy as JSON"}
        </button>
        <label className="inline">
          <input type="checkbox" checked={follow} onChange={(e) => setFollow(e.target.checked)} data-testid="console-follow" /> Auto-scroll
        </label>
      </div>
      <div className="entries" ref={list} role="log" aria-live="polite" data-testid="console-entries">
        {shown.length === 0 && <p className="muted">Waiting for your app…</p>}
        {shown.map((e) => (
          <div key={e.id} className={`entry entry-${e.type}`} data-testid="console-entry" data-type={e.type}>
            <time>{new Date(e.at).toLocaleTimeString()}</time>
            <strong>{e.type}</strong>
            <span className="device">{e.device_id ?? "—"}</span>
            <span className="user">{e.user_id ?? ""}</span>
            <code>{JSON.stringify(e.data)}</code>
          </div>
        ))}
      </div>
    </div>
  );
}
