// Settings → Messenger: the app's messenger look, language, office hours and away message, with a
// live preview. Saved settings reach every messenger at its next load (GET /v1/messenger).
import { useEffect, useState } from "react";
import type { components } from "../../api/schema";
import { type Api, errorText } from "../api";

type Settings = components["schemas"]["MessengerSettingsOut"];
type Range = components["schemas"]["OfficeHoursRange"];
const DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];
const LANGUAGES: Record<Settings["language"], string> = { en: "English", fr: "Français" };

export function MessengerSettings({ api, canWrite }: { api: Api; canWrite: boolean }) {
  const [saved, setSaved] = useState<Settings | null>(null);
  const [draft, setDraft] = useState<Settings | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);

  useEffect(() => {
    void api.GET("/admin/api/messenger").then(({ data }) => {
      if (data) {
        setSaved(data);
        setDraft(data);
      }
    });
  }, [api]);
  if (!draft || !saved) return null;

  const set = <K extends keyof Settings>(key: K, value: Settings[K]) => {
    setDraft({ ...draft, [key]: value });
    setNotice(null);
  };
  const dayRange = (day: number): Range | undefined => draft.office_hours.find((r) => r.day === day);
  const setDay = (day: number, range: Range | null) => {
    const others = draft.office_hours.filter((r) => r.day !== day);
    set("office_hours", range ? [...others, range].sort((a, b) => a.day - b.day) : others);
  };
  const save = async () => {
    const { updated_at: _, ...body } = draft;
    const { data, error: failure } = await api.PATCH("/admin/api/messenger", { body });
    if (!data) return setError(errorText(failure));
    setError(null);
    setSaved(data);
    setDraft(data);
    setNotice("Saved: messengers show it from their next page load.");
  };
  const changed = JSON.stringify(draft) !== JSON.stringify(saved);

  return (
    <section className="panel messenger-settings" data-testid="messenger-settings">
      <h2>Messenger</h2>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      <div className="messenger-columns">
        <fieldset disabled={!canWrite}>
          <label>
            Colour
            <span className="inline">
              <input type="color" data-testid="messenger-color" value={draft.color} onChange={(e) => set("color", e.target.value)} />
              <code>{draft.color}</code>
            </span>
          </label>
          <label>
            Launcher position
            <select data-testid="messenger-position" value={draft.launcher_position} onChange={(e) => set("launcher_position", e.target.value as Settings["launcher_position"])}>
              <option value="right">Bottom right</option>
              <option value="left">Bottom left</option>
            </select>
          </label>
          <label>
            Team name
            <input data-testid="messenger-team" maxLength={80} value={draft.team_name} onChange={(e) => set("team_name", e.target.value)} />
          </label>
          <label>
            Avatar URL
            <input data-testid="messenger-avatar" maxLength={1000} placeholder="https://…" value={draft.avatar_url ?? ""} onChange={(e) => set("avatar_url", e.target.value || null)} />
          </label>
          <label>
            Greeting
            <input data-testid="messenger-greeting" maxLength={200} value={draft.greeting} onChange={(e) => set("greeting", e.target.value)} />
          </label>
          <label>
            Intro
            <textarea data-testid="messenger-intro" maxLength={1000} rows={2} value={draft.intro} onChange={(e) => set("intro", e.target.value)} />
          </label>
          <label>
            Language
            <select data-testid="messenger-language" value={draft.language} onChange={(e) => set("language", e.target.value as Settings["language"])}>
              {Object.entries(LANGUAGES).map(([code, name]) => (
                <option key={code} value={code}>
                  {name}
                </option>
              ))}
            </select>
          </label>
          <h3>Office hours</h3>
          <label className="check">
            <input type="checkbox" data-testid="messenger-hours-enabled" checked={draft.office_hours_enabled} onChange={(e) => set("office_hours_enabled", e.target.checked)} />
            <span>Only in office hours; outside them the messenger shows the away message</span>
          </label>
          <label>
            Time zone
            <input data-testid="messenger-timezone" value={draft.timezone} onChange={(e) => set("timezone", e.target.value)} placeholder="Europe/Paris" />
          </label>
          <table className="hours">
            <tbody>
              {DAYS.map((name, day) => {
                const range = dayRange(day);
                return (
                  <tr key={day}>
                    <td>
                      <label className="check">
                        <input type="checkbox" data-testid={`messenger-day-${day}`} checked={!!range} onChange={(e) => setDay(day, e.target.checked ? { day, open: "09:00", close: "17:00" } : null)} />
                        <span>{name}</span>
                      </label>
                    </td>
                    <td>{range && <input type="time" aria-label={`${name} opens`} value={range.open} onChange={(e) => setDay(day, { ...range, open: e.target.value })} />}</td>
                    <td>{range && <input type="time" aria-label={`${name} closes`} value={range.close === "24:00" ? "23:59" : range.close} onChange={(e) => setDay(day, { ...range, close: e.target.value })} />}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
          <label>
            Away message
            <textarea data-testid="messenger-away" maxLength={1000} rows={2} value={draft.away_message} onChange={(e) => set("away_message", e.target.value)} />
          </label>
          <label className="check">
            <input type="checkbox" data-testid="messenger-auto-reply" checked={draft.auto_reply} onChange={(e) => set("auto_reply", e.target.checked)} />
            <span>Automatic reply while away (once per conversation per away period)</span>
          </label>
          {canWrite && (
            <button data-testid="messenger-save" disabled={!changed} onClick={() => void save()}>
              Save messenger
            </button>
          )}
          {notice && <p className="muted">{notice}</p>}
        </fieldset>
        <Preview settings={draft} />
      </div>
    </section>
  );
}

/** What an end user will see, following every change before it is saved. */
function Preview({ settings }: { settings: Settings }) {
  const color = { background: settings.color };
  return (
    <div className={`messenger-preview ${settings.launcher_position}`} data-testid="messenger-preview" aria-label="Preview">
      <div className="preview-panel">
        <div className="preview-header" style={color} data-testid="preview-header">
          {settings.avatar_url && <img src={settings.avatar_url} alt="" />}
          <strong data-testid="preview-team">{settings.team_name}</strong>
        </div>
        {settings.office_hours_enabled && <div className="preview-away">{settings.away_message}</div>}
        <div className="preview-body">
          <strong data-testid="preview-greeting">{settings.greeting}</strong>
          <p>{settings.intro}</p>
          <span className="preview-bubble" style={color}>
            {settings.language === "fr" ? "Bonjour !" : "Hello!"}
          </span>
        </div>
      </div>
      <div className="preview-launcher" style={color} />
    </div>
  );
}
