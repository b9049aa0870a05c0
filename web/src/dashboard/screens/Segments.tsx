// Segments: a visual builder of the segment DSL (nested groups; attribute and event conditions
// whose pickers list what the app has actually sent), a live count of who it selects, and the
// saved segments. See docs/analytics.md and docs/web.md.
import { useCallback, useEffect, useState } from "react";
import type { components } from "../../api/schema";
import { type Api, errorText } from "../api";
import {
  type AttributeCondition,
  BUILT_IN,
  COUNT_OPERATORS,
  type EventCondition,
  type Group,
  MAX_DEPTH,
  type Node,
  OPERATORS,
  complete,
  isGroup,
  kindOf,
  needsValue,
  newAttribute,
  newEvent,
  newGroup,
  operatorsFor,
  typedValue,
  valueText,
} from "../segmentQuery";

type Catalog = components["schemas"]["CatalogOut"];
type Segment = components["schemas"]["SegmentOut"];

const EMPTY_CATALOG: Catalog = { events: [], attributes: [] };

export function useCatalog(api: Api): Catalog {
  const [catalog, setCatalog] = useState<Catalog>(EMPTY_CATALOG);
  useEffect(() => {
    void api.GET("/admin/api/analytics/catalog").then(({ data }) => data && setCatalog(data));
  }, [api]);
  return catalog;
}

export function SegmentsScreen({ api, canWrite }: { api: Api; canWrite: boolean }) {
  const catalog = useCatalog(api);
  const [segments, setSegments] = useState<Segment[]>([]);
  const [editing, setEditing] = useState<Segment | null>(null);
  const [name, setName] = useState("");
  const [query, setQuery] = useState<Group>(newGroup());
  const [error, setError] = useState<string | null>(null);
  const [saved, setSaved] = useState<string | null>(null);

  const load = useCallback(async () => {
    const { data } = await api.GET("/admin/api/segments");
    if (data) setSegments(data.items);
  }, [api]);
  useEffect(() => {
    void load();
  }, [load]);

  const open = (segment: Segment | null) => {
    setEditing(segment);
    setName(segment?.name ?? "");
    setQuery(segment ? (segment.query as unknown as Group) : newGroup());
    setError(null);
    setSaved(null);
  };
  const save = async () => {
    const body = { name, query: query as unknown as Record<string, unknown> };
    const result = editing
      ? await api.PATCH("/admin/api/segments/{segment_id}", { params: { path: { segment_id: editing.id } }, body })
      : await api.POST("/admin/api/segments", { body });
    if (!result.data) return setError(errorText(result.error));
    setError(null);
    setSaved(result.data.name);
    setEditing(result.data);
    void load();
  };
  const remove = async (segment: Segment) => {
    if (!confirm(`Delete the segment ${segment.name}?`)) return;
    await api.DELETE("/admin/api/segments/{segment_id}", { params: { path: { segment_id: segment.id } } });
    if (editing?.id === segment.id) open(null);
    void load();
  };

  return (
    <div className="page segments" data-testid="segments">
      <h1>Segments</h1>
      <div className="segments-layout">
        <aside className="segment-list">
          <button className="link" data-testid="new-segment" onClick={() => open(null)}>
            + New segment
          </button>
          <ul className="plain-list">
            {segments.map((segment) => (
              <li key={segment.id} data-testid="saved-segment" data-name={segment.name} className={editing?.id === segment.id ? "active" : ""}>
                <button className="link" onClick={() => open(segment)}>
                  {segment.name}
                </button>
                {canWrite && (
                  <button className="link danger" aria-label={`Delete ${segment.name}`} onClick={() => void remove(segment)}>
                    ×
                  </button>
                )}
              </li>
            ))}
          </ul>
        </aside>
        <section className="segment-editor">
          <GroupEditor group={query} depth={1} catalog={catalog} onChange={setQuery} path="query" />
          <Preview api={api} query={query} />
          {canWrite && (
            <form
              className="inline"
              data-testid="segment-save-form"
              onSubmit={(event) => {
                event.preventDefault();
                void save();
              }}
            >
              <input required maxLength={100} placeholder="Segment name" aria-label="Segment name" data-testid="segment-name" value={name} onChange={(e) => setName(e.target.value)} />
              <button className="primary" data-testid="segment-save" disabled={!complete(query)}>
                {editing ? "Save changes" : "Save segment"}
              </button>
            </form>
          )}
          {error && (
            <p className="error" role="alert" data-testid="segment-error">
              {error}
            </p>
          )}
          {saved && !error && (
            <p className="notice" data-testid="segment-saved">
              Saved “{saved}”.
            </p>
          )}
        </section>
      </div>
    </div>
  );
}

/** How many people the query selects now, asked again 300 ms after the last change. */
function Preview({ api, query }: { api: Api; query: Group }) {
  const [state, setState] = useState<{ count?: number; error?: string; sample?: string[] }>({});
  const text = JSON.stringify(query);
  useEffect(() => {
    if (!complete(query)) {
      setState({});
      return;
    }
    let current = true;
    const timer = setTimeout(() => {
      void api.POST("/admin/api/segments/preview", { body: { query: JSON.parse(text) as Record<string, unknown> } }).then(({ data, error }) => {
        if (!current) return;
        if (data) setState({ count: data.count, sample: data.sample.map((u) => u.name || u.email || u.user_id || u.id) });
        else setState({ error: errorText(error) });
      });
    }, 300);
    return () => {
      current = false;
      clearTimeout(timer);
    };
  }, [api, text]); // eslint-disable-line react-hooks/exhaustive-deps
  if (!complete(query)) return <p className="muted preview-box">Add a condition to see who it selects.</p>;
  if (state.error)
    return (
      <p className="error preview-box" data-testid="preview-error" role="alert">
        {state.error}
      </p>
    );
  return (
    <div className="preview-box" data-testid="preview" aria-live="polite">
      {state.count === undefined ? (
        <span className="muted">Counting…</span>
      ) : (
        <>
          <strong data-testid="preview-count">{state.count}</strong> {state.count === 1 ? "person" : "people"} now
          {state.sample && state.sample.length > 0 && <span className="muted"> · {state.sample.slice(0, 5).join(", ")}</span>}
        </>
      )}
    </div>
  );
}

interface EditorProps<T> {
  catalog: Catalog;
  onChange: (node: T) => void;
  path: string;
}

export function GroupEditor({ group, depth, catalog, onChange, onRemove, path }: EditorProps<Group> & { group: Group; depth: number; onRemove?: () => void }) {
  const set = (index: number, node: Node) => onChange({ ...group, conditions: group.conditions.map((c, i) => (i === index ? node : c)) });
  const drop = (index: number) => onChange({ ...group, conditions: group.conditions.filter((_, i) => i !== index) });
  const add = (node: Node) => onChange({ ...group, conditions: [...group.conditions, node] });
  const firstEvent = catalog.events[0]?.name ?? "";
  const firstKey = catalog.attributes[0]?.key ?? "plan";
  return (
    <fieldset className="group" data-testid="group" data-path={path} data-depth={depth}>
      <legend>
        <select aria-label="Match" data-testid="group-operator" value={group.operator} onChange={(e) => onChange({ ...group, operator: e.target.value as Group["operator"] })}>
          <option value="AND">All of</option>
          <option value="OR">Any of</option>
        </select>
        {onRemove && (
          <button type="button" className="link danger" data-testid="remove-group" onClick={onRemove}>
            Remove group
          </button>
        )}
      </legend>
      {group.conditions.map((node, index) => {
        const at = `${path}.conditions.${index}`;
        if (isGroup(node)) return <GroupEditor key={index} group={node} depth={depth + 1} catalog={catalog} path={at} onChange={(n) => set(index, n)} onRemove={() => drop(index)} />;
        return (
          <div className="condition" key={index} data-testid="condition" data-path={at}>
            {node.type === "event" ? (
              <EventEditor node={node} catalog={catalog} path={at} onChange={(n) => set(index, n)} />
            ) : (
              <AttributeEditor node={node} catalog={catalog} path={at} onChange={(n) => set(index, n)} />
            )}
            <button type="button" className="link danger" data-testid="remove-condition" aria-label="Remove condition" onClick={() => drop(index)}>
              ×
            </button>
          </div>
        );
      })}
      <div className="group-add">
        <button type="button" data-testid="add-attribute" onClick={() => add(newAttribute(firstKey))}>
          + User attribute
        </button>
        <button type="button" data-testid="add-event" onClick={() => add(newEvent(firstEvent))}>
          + Event
        </button>
        {depth < MAX_DEPTH && (
          <button type="button" data-testid="add-group" onClick={() => add(newGroup(group.operator === "AND" ? "OR" : "AND"))}>
            + Group
          </button>
        )}
      </div>
    </fieldset>
  );
}

/** A text box holding what was typed, reporting the typed JSON value for `operator`. */
function ValueInput({ value, operator, onChange, testid }: { value: unknown; operator: string; onChange: (value: unknown) => void; testid: string }) {
  const [text, setText] = useState(valueText(value));
  useEffect(() => {
    if (JSON.stringify(typedValue(text, operator)) !== JSON.stringify(value)) setText(valueText(value));
  }, [value]); // eslint-disable-line react-hooks/exhaustive-deps
  return (
    <input
      aria-label="Value"
      data-testid={testid}
      placeholder={operator === "in" || operator === "not_in" ? "a, b, c" : "value"}
      value={text}
      onChange={(e) => {
        setText(e.target.value);
        onChange(typedValue(e.target.value, operator));
      }}
    />
  );
}

function AttributeEditor({ node, catalog, onChange }: EditorProps<AttributeCondition> & { node: AttributeCondition }) {
  const kind = kindOf(node.field);
  const operators = operatorsFor(node.field);
  const setField = (field: string) => {
    const allowed = operatorsFor(field);
    const operator = allowed.includes(node.operator) ? node.operator : (allowed[0] ?? "equals");
    const next: AttributeCondition = { type: "user_attribute", field, operator };
    if (kindOf(field) === "bool") next.value = true;
    else if (kindOf(field) === "time") next.value = { ago: 7, unit: "days" };
    else if (needsValue(operator)) next.value = kindOf(node.field) === kindOf(field) ? node.value : "";
    onChange(next);
  };
  const setOperator = (operator: string) => {
    const next: AttributeCondition = { ...node, operator };
    if (!needsValue(operator)) delete next.value;
    else if (kind === "json" || kind === "text") next.value = typedValue(valueText(node.value), operator);
    else if (node.value === undefined) next.value = kind === "time" ? { ago: 7, unit: "days" } : true;
    onChange(next);
  };
  const keys = catalog.attributes.map((a) => a.key);
  const known = keys.includes(node.field) || node.field in BUILT_IN;
  return (
    <>
      <span className="what">User</span>
      <select aria-label="Attribute" data-testid="attribute-field" value={node.field} onChange={(e) => setField(e.target.value)}>
        <optgroup label="Attributes your app sent">
          {catalog.attributes.map((a) => (
            <option key={a.key} value={a.key}>
              {a.key} ({a.users} {a.users === 1 ? "user" : "users"})
            </option>
          ))}
          {!known && <option value={node.field}>{node.field}</option>}
        </optgroup>
        <optgroup label="Built-in">
          {Object.keys(BUILT_IN).map((field) => (
            <option key={field} value={field}>
              {field}
            </option>
          ))}
        </optgroup>
      </select>
      <select aria-label="Operator" data-testid="attribute-operator" value={node.operator} onChange={(e) => setOperator(e.target.value)}>
        {operators.map((op) => (
          <option key={op} value={op}>
            {OPERATORS[op]}
          </option>
        ))}
      </select>
      {needsValue(node.operator) &&
        (kind === "bool" ? (
          <select aria-label="Value" data-testid="attribute-value" value={String(node.value)} onChange={(e) => onChange({ ...node, value: e.target.value === "true" })}>
            <option value="true">true</option>
            <option value="false">false</option>
          </select>
        ) : kind === "time" ? (
          <Ago value={node.value} onChange={(value) => onChange({ ...node, value })} />
        ) : (
          <ValueInput value={node.value} operator={node.operator} testid="attribute-value" onChange={(value) => onChange({ ...node, value })} />
        ))}
    </>
  );
}

function Ago({ value, onChange }: { value: unknown; onChange: (value: { ago: number; unit: string }) => void }) {
  const current = (value && typeof value === "object" ? value : { ago: 7, unit: "days" }) as { ago: number; unit: string };
  return (
    <>
      <input type="number" min={0} aria-label="How long ago" data-testid="ago-value" value={current.ago} onChange={(e) => onChange({ ...current, ago: Number(e.target.value) })} />
      <select aria-label="Unit" value={current.unit} onChange={(e) => onChange({ ...current, unit: e.target.value })}>
        <option value="days">days ago</option>
        <option value="hours">hours ago</option>
      </select>
    </>
  );
}

type Did = "did" | "did_not" | "times";

function EventEditor({ node, catalog, onChange }: EditorProps<EventCondition> & { node: EventCondition }) {
  const did: Did = node.count ? "times" : node.operator === "not_exists" && !node.field ? "did_not" : "did";
  const setDid = (next: Did) => {
    const { count: _count, operator: _operator, ...rest } = node;
    void _count;
    void _operator;
    if (next === "times") onChange({ ...rest, ...(node.field ? { operator: node.operator } : {}), count: { operator: "gte", value: 1 } });
    else if (next === "did_not") {
      const { field: _f, value: _v, ...plain } = rest;
      void _f;
      void _v;
      onChange({ ...plain, operator: "not_exists" });
    } else onChange({ ...rest, ...(node.field ? { operator: node.operator } : {}) });
  };
  const setWhere = (on: boolean) => {
    if (on) onChange({ ...node, field: "properties.", operator: "equals", value: "" });
    else {
      const { field: _f, value: _v, operator: _o, ...rest } = node;
      void _f;
      void _v;
      void _o;
      onChange(rest);
    }
  };
  const names = catalog.events.map((e) => e.name);
  return (
    <>
      <span className="what">Did</span>
      <select aria-label="Event" data-testid="event-name" value={node.eventName} onChange={(e) => onChange({ ...node, eventName: e.target.value })}>
        {!names.includes(node.eventName) && <option value={node.eventName}>{node.eventName || "(no event tracked yet)"}</option>}
        {catalog.events.map((e) => (
          <option key={e.name} value={e.name}>
            {e.name} ({e.count})
          </option>
        ))}
      </select>
      <select aria-label="How" data-testid="event-did" value={did} onChange={(e) => setDid(e.target.value as Did)}>
        <option value="did">at least once</option>
        <option value="did_not">never</option>
        <option value="times">a number of times</option>
      </select>
      {node.count && (
        <>
          <select aria-label="Count operator" data-testid="event-count-operator" value={node.count.operator} onChange={(e) => onChange({ ...node, count: { operator: e.target.value, value: node.count?.value ?? 1 } })}>
            {COUNT_OPERATORS.map((op) => (
              <option key={op} value={op}>
                {OPERATORS[op]}
              </option>
            ))}
          </select>
          <input type="number" min={0} aria-label="Times" data-testid="event-count" value={node.count.value} onChange={(e) => onChange({ ...node, count: { operator: node.count?.operator ?? "gte", value: Number(e.target.value) } })} />
        </>
      )}
      <select
        aria-label="When"
        data-testid="event-timeframe"
        value={node.timeframe ? node.timeframe.unit : "ever"}
        onChange={(e) => {
          const { timeframe: _t, ...rest } = node;
          void _t;
          onChange(e.target.value === "ever" ? rest : { ...rest, timeframe: { type: "relative", value: node.timeframe?.value ?? 7, unit: e.target.value as "days" | "hours" } });
        }}
      >
        <option value="ever">ever</option>
        <option value="days">in the last … days</option>
        <option value="hours">in the last … hours</option>
      </select>
      {node.timeframe && (
        <input type="number" min={1} aria-label="Timeframe" data-testid="event-timeframe-value" value={node.timeframe.value} onChange={(e) => onChange({ ...node, timeframe: { ...node.timeframe!, value: Number(e.target.value) } })} />
      )}
      {did !== "did_not" &&
        (node.field !== undefined ? (
          <span className="where">
            where
            <input aria-label="Property" data-testid="event-field" value={node.field} onChange={(e) => onChange({ ...node, field: e.target.value })} />
            <select aria-label="Property operator" data-testid="event-operator" value={node.operator} onChange={(e) => onChange({ ...node, operator: e.target.value, ...(needsValue(e.target.value) ? { value: typedValue(valueText(node.value), e.target.value) } : { value: undefined }) })}>
              {Object.keys(OPERATORS).map((op) => (
                <option key={op} value={op}>
                  {OPERATORS[op]}
                </option>
              ))}
            </select>
            {needsValue(node.operator) && <ValueInput value={node.value} operator={node.operator ?? "equals"} testid="event-value" onChange={(value) => onChange({ ...node, value })} />}
            <button type="button" className="link" onClick={() => setWhere(false)}>
              any properties
            </button>
          </span>
        ) : (
          <button type="button" className="link" data-testid="event-where" onClick={() => setWhere(true)}>
            + where…
          </button>
        ))}
    </>
  );
}
