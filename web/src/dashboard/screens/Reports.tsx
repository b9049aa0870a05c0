// Reports (OWNER/ADMIN): new conversations, messages, first-response and resolution times, CSAT,
// busiest hours and agents for a date range by day or week, drawn with chart.js; CSV export.
import {
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  Tooltip,
  type ChartConfiguration,
} from "chart.js";
import { useEffect, useRef, useState } from "react";
import type { components } from "../../api/schema";
import { type Api, errorText } from "../api";
import type { SessionStore } from "../session";

Chart.register(BarController, BarElement, CategoryScale, LinearScale, LineController, LineElement, PointElement, Tooltip, Legend);

type Report = components["schemas"]["Report"];
type Durations = components["schemas"]["Durations"];
const DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

function isoDay(date: Date): string {
  return date.toISOString().slice(0, 10);
}

export function duration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined) return "—";
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 90 * 60) return `${Math.round(seconds / 60)} min`;
  if (seconds < 48 * 3600) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86400).toFixed(1)} d`;
}

function ChartCanvas({ config, testid }: { config: ChartConfiguration; testid: string }) {
  const canvas = useRef<HTMLCanvasElement>(null);
  useEffect(() => {
    if (!canvas.current) return;
    const chart = new Chart(canvas.current, config);
    return () => chart.destroy();
  }, [config]);
  return (
    <div className="chart">
      <canvas ref={canvas} data-testid={testid} />
    </div>
  );
}

function minutes(d: Durations): number | null {
  return d.median === null || d.median === undefined ? null : Math.round((d.median / 60) * 10) / 10;
}

export function ReportsScreen({ api, sessions }: { api: Api; sessions: SessionStore }) {
  const today = new Date();
  const [start, setStart] = useState(isoDay(new Date(today.getTime() - 29 * 86400_000)));
  const [end, setEnd] = useState(isoDay(today));
  const [group, setGroup] = useState<"day" | "week">("day");
  const [report, setReport] = useState<Report | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    let live = true;
    void api.GET("/admin/api/reports", { params: { query: { start, end, group } } }).then(({ data, error: failure }) => {
      if (!live) return;
      setReport(data ?? null);
      setError(data ? null : errorText(failure));
    });
    return () => {
      live = false;
    };
  }, [api, start, end, group]);

  const exportCsv = async () => {
    // A download with the bearer token: fetched, then saved from a blob URL.
    const token = await sessions.accessToken();
    const response = await fetch(`/admin/api/reports/export.csv?start=${start}&end=${end}&group=${group}`, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
    if (!response.ok) return setError("The export failed.");
    const url = URL.createObjectURL(await response.blob());
    const link = document.createElement("a");
    link.href = url;
    link.download = `replyhq-report-${start}-${end}-${group}.csv`;
    link.click();
    URL.revokeObjectURL(url);
  };

  const labels = report?.series.map((p) => p.period) ?? [];
  const volume: ChartConfiguration | null = report && {
    type: "bar",
    data: {
      labels,
      datasets: [
        { label: "New conversations", data: report.series.map((p) => p.new_conversations), backgroundColor: "#3454d1" },
        { label: "Messages", data: report.series.map((p) => p.messages), backgroundColor: "#9fb3ff" },
      ],
    },
    options: { responsive: true, maintainAspectRatio: false, animation: false },
  };
  const times: ChartConfiguration | null = report && {
    type: "line",
    data: {
      labels,
      datasets: [
        { label: "First response, median (min)", data: report.series.map((p) => minutes(p.first_response)), borderColor: "#3454d1", spanGaps: true },
        { label: "Resolution, median (min)", data: report.series.map((p) => minutes(p.resolution)), borderColor: "#e5484d", spanGaps: true },
      ],
    },
    options: { responsive: true, maintainAspectRatio: false, animation: false },
  };
  const csat: ChartConfiguration | null = report && {
    type: "line",
    data: { labels, datasets: [{ label: "CSAT (% rated 4-5)", data: report.series.map((p) => p.csat.satisfied_percent ?? null), borderColor: "#3fb07a", spanGaps: true }] },
    options: { responsive: true, maintainAspectRatio: false, animation: false, scales: { y: { min: 0, max: 100 } } },
  };
  const hourCounts = Array.from({ length: 24 }, (_, hour) => report?.busiest_hours.filter((h) => h.hour === hour).reduce((n, h) => n + h.conversations, 0) ?? 0);
  const hours: ChartConfiguration | null = report && {
    type: "bar",
    data: { labels: hourCounts.map((_, h) => `${h}:00`), datasets: [{ label: `New conversations by hour (${report.timezone})`, data: hourCounts, backgroundColor: "#f5a524" }] },
    options: { responsive: true, maintainAspectRatio: false, animation: false },
  };
  const busiest = report?.busiest_hours.reduce<(typeof report.busiest_hours)[number] | null>((top, h) => (!top || h.conversations > top.conversations ? h : top), null);
  const t = report?.totals;

  return (
    <div className="page reports" data-testid="reports">
      <h1>Reports</h1>
      <div className="inline report-controls">
        <label>
          From <input type="date" data-testid="report-start" value={start} max={end} onChange={(e) => e.target.value && setStart(e.target.value)} />
        </label>
        <label>
          To <input type="date" data-testid="report-end" value={end} min={start} onChange={(e) => e.target.value && setEnd(e.target.value)} />
        </label>
        <label>
          By
          <select data-testid="report-group" value={group} onChange={(e) => setGroup(e.target.value as "day" | "week")}>
            <option value="day">day</option>
            <option value="week">week</option>
          </select>
        </label>
        <button data-testid="report-csv" onClick={() => void exportCsv()}>
          Export CSV
        </button>
      </div>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      {t && (
        <dl className="report-totals" data-testid="report-totals">
          <div>
            <dt>New conversations</dt>
            <dd data-testid="total-new">{t.new_conversations}</dd>
          </div>
          <div>
            <dt>Messages</dt>
            <dd data-testid="total-messages">{t.messages}</dd>
          </div>
          <div>
            <dt>First response (median · p90)</dt>
            <dd data-testid="total-first-response">
              {duration(t.first_response.median)} · {duration(t.first_response.p90)}
            </dd>
          </div>
          <div>
            <dt>Resolution (median · p90)</dt>
            <dd data-testid="total-resolution">
              {duration(t.resolution.median)} · {duration(t.resolution.p90)}
            </dd>
          </div>
          <div>
            <dt>CSAT</dt>
            <dd data-testid="total-csat">{t.csat.count ? `${t.csat.satisfied_percent}% · ${t.csat.average}/5 (${t.csat.count})` : "—"}</dd>
          </div>
          <div>
            <dt>Busiest hour</dt>
            <dd>{busiest ? `${DAYS[busiest.weekday]} ${busiest.hour}:00` : "—"}</dd>
          </div>
        </dl>
      )}
      {report && (
        <div className="charts">
          {volume && <ChartCanvas config={volume} testid="chart-volume" />}
          {times && <ChartCanvas config={times} testid="chart-times" />}
          {csat && <ChartCanvas config={csat} testid="chart-csat" />}
          {hours && <ChartCanvas config={hours} testid="chart-hours" />}
        </div>
      )}
      {report && (
        <section className="panel">
          <h2>Agents</h2>
          <table className="agents" data-testid="report-agents">
            <thead>
              <tr>
                <th>Agent</th>
                <th>First responses</th>
                <th>First response (median)</th>
                <th>Closed</th>
                <th>Resolution (median)</th>
                <th>CSAT</th>
              </tr>
            </thead>
            <tbody>
              {report.agents.map((a) => (
                <tr key={a.staff_id} data-testid="report-agent">
                  <td>{a.name ?? a.email ?? a.staff_id}</td>
                  <td>{a.first_responses}</td>
                  <td>{duration(a.first_response.median)}</td>
                  <td>{a.closed}</td>
                  <td>{duration(a.resolution.median)}</td>
                  <td>{a.csat.count ? `${a.csat.average}/5 (${a.csat.count})` : "—"}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
      )}
    </div>
  );
}
