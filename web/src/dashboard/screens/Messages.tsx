// Messages to people: campaigns (once to each member of a saved segment) and event-triggered
// messages (once to each person who performs an event, optionally only those a saved segment
// selects then). Both list their counts (sent, opened, replied) and can be stopped.
import { useCallback, useEffect, useState, type FormEvent } from "react";
import type { components } from "../../api/schema";
import type { Me, Staff } from "../../api/types";
import { type Api, errorText } from "../api";
import { when } from "../components";
import { useCatalog } from "./Segments";

type Campaign = components["schemas"]["CampaignOut"];
type Triggered = components["schemas"]["TriggeredMessageOut"];
type Segment = components["schemas"]["SegmentOut"];

const REFRESH_MS = 5000;

export function MessagesScreen({ api, me }: { api: Api; me: Me }) {
  const canWrite = me.permissions.includes("segments:write");
  const catalog = useCatalog(api);
  const [campaigns, setCampaigns] = useState<Campaign[]>([]);
  const [triggered, setTriggered] = useState<Triggered[]>([]);
  const [segments, setSegments] = useState<Segment[]>([]);
  const [team, setTeam] = useState<Staff[]>([]);
  const [error, setError] = useState<string | null>(null);

  const load = useCallback(async () => {
    const [c, t] = await Promise.all([api.GET("/admin/api/campaigns"), api.GET("/admin/api/triggered-messages")]);
    if (c.data) setCampaigns(c.data.items);
    if (t.data) setTriggered(t.data.items);
  }, [api]);
  useEffect(() => {
    void load();
    const timer = setInterval(() => void load(), REFRESH_MS); // the counts move as people read
    return () => clearInterval(timer);
  }, [load]);
  useEffect(() => {
    void api.GET("/admin/api/segments").then(({ data }) => data && setSegments(data.items));
    if (me.permissions.includes("team:read")) void api.GET("/admin/api/team").then(({ data }) => data && setTeam(data.filter((s) => s.active)));
  }, [api, me]);

  const senders = team.length > 0 ? team : me.staff ? [me.staff as unknown as Staff] : [];
  const stopCampaign = async (campaign: Campaign) => {
    if (!confirm(`Stop the campaign ${campaign.name}? No one more will receive it.`)) return;
    const { error: failure } = await api.POST("/admin/api/campaigns/{campaign_id}/stop", { params: { path: { campaign_id: campaign.id } } });
    setError(failure ? errorText(failure) : null);
    void load();
  };
  const stopTriggered = async (item: Triggered) => {
    if (!confirm(`Stop ${item.name}? No one more will receive it.`)) return;
    const { error: failure } = await api.POST("/admin/api/triggered-messages/{triggered_message_id}/stop", { params: { path: { triggered_message_id: item.id } } });
    setError(failure ? errorText(failure) : null);
    void load();
  };

  return (
    <div className="page" data-testid="messages">
      <h1>Messages to people</h1>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      <h2>Campaigns</h2>
      <p className="muted">A message from a team member to every member of a saved segment, once each, in a new conversation of theirs.</p>
      <Counts
        rows={campaigns.map((c) => ({ ...c, to: segments.find((s) => s.id === c.segment_id)?.name ?? "segment", live: c.status === "sending" }))}
        testid="campaign"
        onStop={canWrite ? (row) => void stopCampaign(row as unknown as Campaign) : undefined}
      />
      {canWrite && <CampaignForm api={api} segments={segments} senders={senders} me={me} onDone={() => void load()} />}
      <h2>Event-triggered messages</h2>
      <p className="muted">A message to each person who performs an event, at most once per person, from now on.</p>
      <Counts
        rows={triggered.map((t) => ({ ...t, to: `on ${t.event_name}${t.condition ? " (with a condition)" : ""}`, live: t.status === "active" }))}
        testid="triggered"
        onStop={canWrite ? (row) => void stopTriggered(row as unknown as Triggered) : undefined}
      />
      {canWrite && <TriggeredForm api={api} segments={segments} senders={senders} me={me} events={catalog.events.map((e) => e.name)} onDone={() => void load()} />}
    </div>
  );
}

interface Row {
  id: string;
  name: string;
  to: string;
  status: string;
  sender_name: string | null;
  created_at: string;
  sent: number;
  opened: number;
  replied: number;
  live: boolean;
}

function Counts({ rows, testid, onStop }: { rows: Row[]; testid: string; onStop?: (row: Row) => void }) {
  if (rows.length === 0) return <p className="muted">None yet.</p>;
  return (
    <table className="table">
      <thead>
        <tr>
          <th>Name</th>
          <th>To</th>
          <th>From</th>
          <th>Status</th>
          <th>Sent</th>
          <th>Opened</th>
          <th>Replied</th>
          <th />
        </tr>
      </thead>
      <tbody>
        {rows.map((row) => (
          <tr key={row.id} data-testid={testid} data-name={row.name} data-status={row.status}>
            <td>
              {row.name} <span className="muted">{when(row.created_at)}</span>
            </td>
            <td>{row.to}</td>
            <td>{row.sender_name ?? "—"}</td>
            <td data-testid={`${testid}-status`}>{row.status}</td>
            <td data-testid={`${testid}-sent`}>{row.sent}</td>
            <td data-testid={`${testid}-opened`}>{row.opened}</td>
            <td data-testid={`${testid}-replied`}>{row.replied}</td>
            <td>
              {onStop && row.live && (
                <button className="link danger" data-testid={`${testid}-stop`} onClick={() => onStop(row)}>
                  Stop
                </button>
              )}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

interface FormProps {
  api: Api;
  segments: Segment[];
  senders: Staff[];
  me: Me;
  onDone: () => void;
}

function SenderSelect({ senders, value, onChange, testid }: { senders: Staff[]; value: string; onChange: (id: string) => void; testid: string }) {
  return (
    <select aria-label="From" data-testid={testid} value={value} onChange={(e) => onChange(e.target.value)}>
      {senders.map((s) => (
        <option key={s.id} value={s.id}>
          {s.name || s.email}
        </option>
      ))}
    </select>
  );
}

function CampaignForm({ api, segments, senders, me, onDone }: FormProps) {
  const [name, setName] = useState("");
  const [segmentId, setSegmentId] = useState("");
  const [senderId, setSenderId] = useState(me.staff?.id ?? "");
  const [body, setBody] = useState("");
  const [error, setError] = useState<string | null>(null);
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const chosen = segmentId || segments[0]?.id;
    if (!chosen) return setError("Save a segment first.");
    const { data, error: failure } = await api.POST("/admin/api/campaigns", { body: { name, segment_id: chosen, sender_id: senderId, body } });
    if (!data) return setError(errorText(failure));
    setError(null);
    setName("");
    setBody("");
    onDone();
  };
  return (
    <form className="stack-form" data-testid="campaign-form" onSubmit={(e) => void submit(e)}>
      <h3>New campaign</h3>
      <input required maxLength={100} placeholder="Name (the conversation's subject)" aria-label="Campaign name" data-testid="campaign-name" value={name} onChange={(e) => setName(e.target.value)} />
      <select aria-label="Segment" data-testid="campaign-segment" value={segmentId || segments[0]?.id || ""} onChange={(e) => setSegmentId(e.target.value)}>
        {segments.map((s) => (
          <option key={s.id} value={s.id}>
            {s.name}
          </option>
        ))}
      </select>
      <SenderSelect senders={senders} value={senderId} onChange={setSenderId} testid="campaign-sender" />
      <textarea required placeholder="Message" aria-label="Message" data-testid="campaign-body" value={body} onChange={(e) => setBody(e.target.value)} />
      <button className="primary" data-testid="campaign-send">
        Send to the segment
      </button>
      {error && (
        <p className="error" role="alert" data-testid="campaign-error">
          {error}
        </p>
      )}
    </form>
  );
}

function TriggeredForm({ api, segments, senders, me, events, onDone }: FormProps & { events: string[] }) {
  const [name, setName] = useState("");
  const [eventName, setEventName] = useState("");
  const [segmentId, setSegmentId] = useState("");
  const [senderId, setSenderId] = useState(me.staff?.id ?? "");
  const [body, setBody] = useState("");
  const [error, setError] = useState<string | null>(null);
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const condition = segments.find((s) => s.id === segmentId)?.query ?? null;
    const { data, error: failure } = await api.POST("/admin/api/triggered-messages", {
      body: { name, event_name: eventName || events[0] || "", condition, sender_id: senderId, body },
    });
    if (!data) return setError(errorText(failure));
    setError(null);
    setName("");
    setBody("");
    onDone();
  };
  return (
    <form className="stack-form" data-testid="triggered-form" onSubmit={(e) => void submit(e)}>
      <h3>New event-triggered message</h3>
      <input required maxLength={100} placeholder="Name (the conversation's subject)" aria-label="Triggered message name" data-testid="triggered-name" value={name} onChange={(e) => setName(e.target.value)} />
      <label>
        When someone does
        <input required list="tracked-events" maxLength={100} aria-label="Event" data-testid="triggered-event" value={eventName} onChange={(e) => setEventName(e.target.value)} />
        <datalist id="tracked-events">
          {events.map((e) => (
            <option key={e} value={e} />
          ))}
        </datalist>
      </label>
      <select aria-label="Only people in" data-testid="triggered-condition" value={segmentId} onChange={(e) => setSegmentId(e.target.value)}>
        <option value="">anyone</option>
        {segments.map((s) => (
          <option key={s.id} value={s.id}>
            only if in “{s.name}”
          </option>
        ))}
      </select>
      <SenderSelect senders={senders} value={senderId} onChange={setSenderId} testid="triggered-sender" />
      <textarea required placeholder="Message" aria-label="Message" data-testid="triggered-body" value={body} onChange={(e) => setBody(e.target.value)} />
      <button className="primary" data-testid="triggered-create">
        Start sending
      </button>
      {error && (
        <p className="error" role="alert" data-testid="triggered-error">
          {error}
        </p>
      )}
    </form>
  );
}
