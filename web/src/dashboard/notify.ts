// Desktop notifications for agents: a new conversation, or a new message from an end user in a
// conversation assigned to me or to nobody, while the dashboard's tab is hidden. The browser's
// Notification API (no push service); a short tone from Web Audio (no sound file to fetch). Each
// member turns either off for themselves (/admin/me/notifications).
import type { InboxConversation, Message, NotificationPrefs } from "../api/types";
import type { Api } from "./api";
import { navigate } from "./router";

export class DeskNotifier {
  prefs: NotificationPrefs = { desktop: true, sound: true };
  private audio: AudioContext | null = null;

  constructor(
    private readonly api: Api,
    private readonly staffId: string | null,
  ) {}

  async load(): Promise<void> {
    const { data } = await this.api.GET("/admin/me/notifications");
    if (data) this.prefs = data;
  }

  async update(changes: Partial<NotificationPrefs>): Promise<NotificationPrefs> {
    const before = this.prefs;
    this.prefs = { ...before, ...changes }; // in effect from the click, not from the answer
    if (changes.desktop && typeof Notification !== "undefined" && Notification.permission === "default") {
      await Notification.requestPermission();
    }
    const { data } = await this.api.PATCH("/admin/me/notifications", { body: changes });
    this.prefs = data ?? before; // as stored; unchanged when the server refused
    return this.prefs;
  }

  /** A message the desk just received, with its conversation (when known). */
  incoming(message: Message, conversation: InboxConversation | undefined): void {
    if (message.sender !== "user" || document.visibilityState !== "hidden") return;
    const assignee = conversation?.assignee_id ?? null;
    if (assignee !== null && assignee !== this.staffId) return; // a colleague's conversation
    const who = conversation?.user.name || conversation?.user.email || "A visitor";
    const title = message.seq === 1 ? `New conversation from ${who}` : `New message from ${who}`;
    if (this.prefs.desktop && typeof Notification !== "undefined" && Notification.permission === "granted") {
      const note = new Notification(title, { body: message.body.slice(0, 200), tag: message.conversation_id });
      note.onclick = () => {
        window.focus();
        navigate({ screen: "inbox", conversationId: message.conversation_id });
        note.close();
      };
    }
    if (this.prefs.sound) this.chime();
  }

  private chime(): void {
    try {
      this.audio ??= new AudioContext();
      const oscillator = this.audio.createOscillator();
      const gain = this.audio.createGain();
      oscillator.frequency.value = 880;
      gain.gain.setValueAtTime(0.08, this.audio.currentTime);
      gain.gain.exponentialRampToValueAtTime(0.0001, this.audio.currentTime + 0.25);
      oscillator.connect(gain).connect(this.audio.destination);
      oscillator.start();
      oscillator.stop(this.audio.currentTime + 0.25);
      document.documentElement.dataset.chimes = String(Number(document.documentElement.dataset.chimes ?? 0) + 1);
    } catch {
      // No audio device, or the browser refuses sound without a gesture: the notification stays.
    }
  }
}
