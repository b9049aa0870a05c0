// The official Socket.IO client, set up the same way for the messenger and the dashboard:
// websocket transport (no sticky sessions needed), fast reconnects, and the browser's own
// online/offline signal, because a dead network can leave a websocket looking open for a long time.
import { io, type Socket } from "socket.io-client";
import type { Ack, ClientEvents, ServerEvents } from "../api/types";
import { RETRYABLE_CODES, type SendResult } from "./outbox";

export type LiveSocket = Socket<ServerEvents, ClientEvents>;
export type ConnectionState = "connecting" | "connected" | "reconnecting" | "offline";

export function openSocket(
  url: string,
  namespace: string,
  auth: (cb: (data: object) => void) => void,
): LiveSocket {
  return io(url + namespace, {
    path: "/socket.io",
    transports: ["websocket"],
    auth,
    autoConnect: false,
    reconnectionDelay: 500,
    reconnectionDelayMax: 5000,
    timeout: 10_000,
  });
}

/** Follows the browser's network state: disconnect at once when it goes offline (so sends
 * queue instead of vanishing into a dead socket), reconnect as soon as it is back. */
export function followNetwork(socket: LiveSocket, onOffline: () => void): () => void {
  const offline = () => {
    socket.disconnect();
    onOffline();
  };
  const online = () => {
    if (!socket.connected) socket.connect();
  };
  window.addEventListener("offline", offline);
  window.addEventListener("online", online);
  return () => {
    window.removeEventListener("offline", offline);
    window.removeEventListener("online", online);
  };
}

export function isOnline(): boolean {
  return typeof navigator === "undefined" || navigator.onLine !== false;
}

/** An acknowledged emit as a value: a timeout or a closed socket is a transient failure. */
export async function request<T extends object>(
  socket: LiveSocket,
  emit: (s: LiveSocket) => Promise<Ack<T>>,
): Promise<Ack<T> | { ok: false; code: "TIMEOUT"; error: string }> {
  if (!socket.connected) return { ok: false, code: "TIMEOUT", error: "not connected" };
  try {
    return await emit(socket);
  } catch (error) {
    return { ok: false, code: "TIMEOUT", error: String(error) };
  }
}

export function sendResult<M>(ack: { ok: true; message: M } | { ok: false; code: string; error: string }): SendResult<M> {
  if (ack.ok) return { kind: "stored", message: ack.message };
  if (RETRYABLE_CODES.has(ack.code)) return { kind: "retry", error: ack.error };
  return { kind: "refused", code: ack.code, error: ack.error };
}

export const ACK_TIMEOUT_MS = 8000;
