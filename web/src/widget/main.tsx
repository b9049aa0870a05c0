// widget.js: `<script src="https://replyhq.example/widget.js" data-app-id="…" data-api-key="rhq_sdk_…">`
// renders the messenger in a shadow root (the host page's CSS cannot reach it) and exposes
// window.ReplyHQ: identify, open, close, logout, onUnreadCountChange.
import { createRoot } from "react-dom/client";
import css from "./widget.css?inline";
import { type Identity, Messenger } from "./store";
import { MessengerView } from "./Messenger";
import { loadConfig } from "./branding";

export interface ReplyHQApi {
  identify(identity: Identity): Promise<void>;
  open(): void;
  close(): void;
  logout(): Promise<void>;
  onUnreadCountChange(callback: (count: number) => void): () => void;
}

declare global {
  interface Window {
    ReplyHQ?: ReplyHQApi;
  }
}

function mount(): void {
  const script = document.currentScript as HTMLScriptElement | null;
  const appId = script?.dataset.appId;
  const apiKey = script?.dataset.apiKey;
  if (!script || !appId || !apiKey) {
    console.error("ReplyHQ: the widget.js script tag needs data-app-id and data-api-key.");
    return;
  }
  if (window.ReplyHQ) return; // loaded twice: keep the first
  const baseUrl = script.dataset.apiUrl || new URL(script.src, location.href).origin;
  const engine = new Messenger({ appId, apiKey, baseUrl });

  const host = document.createElement("div");
  host.id = "replyhq-messenger";
  // The host page's styles stop at the shadow boundary; inherited ones are reset here.
  host.style.setProperty("all", "initial");
  host.style.setProperty("position", "fixed");
  host.style.setProperty("z-index", "2147483000");
  host.style.setProperty("right", "0");
  host.style.setProperty("bottom", "0");
  const shadow = host.attachShadow({ mode: "open" });
  // A constructed stylesheet works under a strict Content-Security-Policy (no inline <style>).
  if ("adoptedStyleSheets" in Document.prototype && "replaceSync" in CSSStyleSheet.prototype) {
    const sheet = new CSSStyleSheet();
    sheet.replaceSync(css);
    shadow.adoptedStyleSheets = [sheet];
  } else {
    const style = document.createElement("style");
    style.textContent = css;
    shadow.appendChild(style);
  }
  const container = document.createElement("div");
  shadow.appendChild(container);

  window.ReplyHQ = {
    identify: (identity) => engine.identify(identity),
    open: () => engine.setOpen(true),
    close: () => engine.setOpen(false),
    logout: () => engine.logout(),
    onUnreadCountChange: (callback) => engine.onUnreadCountChange(callback),
  };

  // The app's look and words (dashboard → Settings → Messenger), fetched while the page loads.
  const config = loadConfig(engine);
  const start = () => {
    document.body.appendChild(host);
    createRoot(container).render(<MessengerView engine={engine} config={config} host={host} />);
    // After the page's own scripts had their chance to call ReplyHQ.identify first.
    setTimeout(() => void engine.boot(), 0);
  };
  if (document.body) start();
  else document.addEventListener("DOMContentLoaded", start, { once: true });
}

mount();
