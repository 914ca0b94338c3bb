// The chartflow HTTP API as the dashboard uses it (engine/http/api_routes.cpp and the chart
// routes). Only same-origin requests: the server's CSP has connect-src 'self'. The session
// cookie rides along; state changes carry the session's CSRF token.

import { csrfToken } from "./session";

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export interface RunSummary {
  id: number;
  workflow: string;
  version: number | null;
  status: string;
  subject: string | null;
  event_id: number | null;
  created_at: string;
  finished_at: string | null;
  error: string | null;
  duration_ms: number | null;
}

export interface Page<T> {
  next: string | null;
  items: T[];
}

export interface DefinitionStep {
  name: string;
  handler?: { name?: string; config?: Json } | string;
  needs?: string[];
  when?: Json;
  retry?: Json;
  timeout?: Json;
  [key: string]: Json | undefined;
}

export interface Definition {
  name?: string;
  on?: Json;
  steps?: DefinitionStep[] | { [name: string]: DefinitionStep };
  [key: string]: Json | undefined | DefinitionStep[] | { [name: string]: DefinitionStep };
}

export interface StepRun {
  name: string;
  handler: string | null;
  status: string;
  attempts: number | null;
  max_attempts: number | null;
  needs: string[] | null;
  started_at: string | null;
  finished_at: string | null;
  run_at: string | null;
  wait_signal: string | null;
  wait_until: string | null;
  output: Json;
  error: string | null;
  parked_at?: string | null;
  skip_reason?: string | null;
}

// A step whose attempts ran out under on_exhausted: park, waiting for an operator.
export interface ParkedStep {
  run_id: number;
  workflow: string;
  step: string;
  handler: string | null;
  subject: string | null;
  run_status: string;
  event_type: string | null;
  parked_at: string | null;
  attempts: number | null;
  error: string | null;
}

export interface HistoryEntry {
  at: string;
  type: string;
  step: string | null;
  attempt: number | null;
  worker: string | null;
  detail: Json;
}

// Who paused a workflow or a run, when and why (POST .../pause).
export interface PauseInfo {
  paused_at: string;
  paused_by: string;
  reason: string | null;
}

// A paused workflow with what queues behind the pause.
export interface WorkflowPause extends PauseInfo {
  queued_runs: number;
  queued_steps: number;
  running_steps: number;
}

export interface RunDetail {
  id: number;
  workflow: string;
  version: number | null;
  status: string;
  subject: string | null;
  event_id?: number | null;
  event_type?: string | null;
  // The W3C trace id of the run (its event's); null for runs from before traces.
  trace_id?: string | null;
  created_at: string;
  finished_at: string | null;
  error: string | null;
  definition: Definition | null;
  steps: StepRun[];
  history: HistoryEntry[];
  paused?: PauseInfo | null;
  workflow_paused?: PauseInfo | null;
  // Child workflows: the run and step that started this run, and the runs this one started.
  parent_run_id?: number | null;
  parent_step?: string | null;
  children?: { id: number; workflow: string; status: string; step: string }[];
}

export interface WorkflowVersion {
  id: number;
  version: number;
  content_hash: string;
  created_at: string;
  source_file: string | null;
  definition: Definition;
}

export interface WorkflowInfo {
  name: string;
  latest_version: number;
  versions: WorkflowVersion[];
  recent_runs: { [status: string]: number };
  paused?: WorkflowPause | null;
  // Triggers that coalesce events per key, and how many coalesced starts wait for their window.
  debounce?: { event: string; key: string; window_ms: number; max_wait_ms: number }[];
  debounce_pending?: number;
}

export interface LogLine {
  id: number;
  at: string;
  level: string;
  workflow: string | null;
  run: number | null;
  step: string | null;
  attempt: number | null;
  message: string;
  fields: Json;
}

export interface Review {
  id: number;
  chart_id: string;
  run_id: number | null;
  step?: string | null;
  assignee: string | null;
  // The practitioner's name from the chart, when the review is assigned to the practitioner the
  // chart names (not after an escalation to a queue).
  assignee_name?: string | null;
  status: string;
  due_at: string | null;
  created_at: string;
  decision?: string | null;
  escalations?: number | null;
  summary: { [key: string]: Json } | null;
}

export interface AuditRecord {
  id: number;
  at: string;
  actor: string;
  actor_name: string | null;
  role: string | null;
  action: string;
  resource_type: string | null;
  resource_id: string | null;
  remote: string | null;
  outcome: string;
  detail: Json;
}

// Retention (GET /v1/retention): how long runs and logs are kept, the archive and log
// partitions with their sizes, and the subjects whose runs a hold keeps past expiry.
export interface RetentionSettings {
  runs: string;
  logs: string;
  archive_after: string;
}

export interface RetentionPartition {
  class: string;
  table: string;
  partition: string;
  from: string | null;
  to: string | null;
  held: boolean;
  bytes: number;
  rows_estimate: number;
}

export interface RetentionHold {
  subject: string;
  reason: string;
  held_by: string;
  created_at: string;
}

export interface RetentionInfo {
  settings: RetentionSettings;
  partitions: RetentionPartition[];
  holds: RetentionHold[];
}

// A partition the next expiry would drop, and how many of its runs a hold moves aside.
export interface ExpiredPartition {
  class: string;
  partition: string;
  until: string;
  bytes: number;
  rows_estimate: number;
  held_runs: number;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export type Query = { [key: string]: string | number | null | undefined };

export function withQuery(path: string, query?: Query): string {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v === null || v === undefined || v === "") continue;
    params.set(k, String(v));
  }
  const qs = params.toString();
  return qs ? `${path}?${qs}` : path;
}

// Called when the server says the session is gone (401): the app goes to the sign-in page.
let onUnauthorized: () => void = () => {};
export function whenUnauthorized(fn: () => void): void {
  onUnauthorized = fn;
}

async function request<T>(method: string, path: string, body?: Json): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  const csrf = csrfToken();
  if (method !== "GET" && csrf) headers["X-CSRF-Token"] = csrf;
  const init: RequestInit = { method, headers };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    headers["Content-Type"] = "application/json";
  }
  let resp: Response;
  try {
    resp = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, `cannot reach the server (${String(e)})`);
  }
  const text = await resp.text();
  let parsed: unknown = null;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = null;
    }
  }
  if (resp.status === 401) onUnauthorized();
  if (!resp.ok) {
    const msg =
      parsed && typeof parsed === "object" && "error" in parsed
        ? String((parsed as { error: unknown }).error)
        : `${resp.status} ${resp.statusText}`;
    throw new ApiError(resp.status, msg);
  }
  return parsed as T;
}

export const api = {
  get<T>(path: string, query?: Query): Promise<T> {
    return request<T>("GET", withQuery(path, query));
  },
  post<T>(path: string, body: Json = {}): Promise<T> {
    return request<T>("POST", path, body);
  },
  del<T>(path: string, body?: Json): Promise<T> {
    return request<T>("DELETE", path, body);
  },

  async runs(query: Query): Promise<Page<RunSummary>> {
    const r = await api.get<{ runs: RunSummary[]; next: string | null }>("/v1/runs", query);
    return { items: r.runs, next: r.next };
  },
  run(id: number | string): Promise<RunDetail> {
    return api.get<RunDetail>(`/v1/runs/${encodeURIComponent(String(id))}`);
  },
  parked(limit = 200): Promise<{ steps: ParkedStep[]; total: number }> {
    return api.get("/v1/steps/parked", { limit });
  },
  // An operator's decision about a parked step; a skip needs a reason.
  decideParked(
    runId: number,
    step: string,
    action: "retry" | "skip" | "fail",
    reason = "",
  ): Promise<{ result?: string }> {
    const path = `/v1/runs/${runId}/steps/${encodeURIComponent(step)}/${action}`;
    return api.post(path, reason ? { reason } : {});
  },
  async workflows(): Promise<WorkflowInfo[]> {
    return (await api.get<{ workflows: WorkflowInfo[] }>("/v1/workflows")).workflows;
  },
  async logs(query: Query): Promise<Page<LogLine>> {
    const r = await api.get<{ logs: LogLine[]; next: string | null }>("/v1/logs", query);
    return { items: r.logs, next: r.next };
  },
  async reviews(query: Query): Promise<Review[]> {
    return (await api.get<{ reviews: Review[] }>("/v1/reviews", query)).reviews;
  },
  audit(query: Query): Promise<{ events: AuditRecord[]; next: string | null }> {
    return api.get("/v1/audit", query);
  },
  chart(id: string): Promise<{ [key: string]: Json }> {
    return api.get(`/v1/charts/${encodeURIComponent(id)}`);
  },
  retention(): Promise<RetentionInfo> {
    return api.get("/v1/retention");
  },
  // What the next expiry would drop; nothing is dropped (the dashboard never expires for real).
  previewExpiry(): Promise<{ dry_run: boolean; dropped: ExpiredPartition[]; bytes: number }> {
    return api.post("/v1/retention/expire", { dry_run: true });
  },
  hold(subject: string, reason: string): Promise<RetentionHold> {
    return api.post("/v1/holds", { subject, reason });
  },
  // A release needs a reason (kept in the audit log).
  releaseHold(subject: string, reason: string): Promise<{ subject: string; released: boolean }> {
    return api.del(`/v1/holds/${encodeURIComponent(subject)}`, { reason });
  },
  async metrics(): Promise<string> {
    const resp = await fetch("/metrics", { headers: { Accept: "text/plain" } });
    if (resp.status === 401) onUnauthorized();
    if (!resp.ok) throw new ApiError(resp.status, `metrics: ${resp.status}`);
    return resp.text();
  },
};

// Prometheus text format, only what the overview needs: name{labels} value, no timestamps.
export interface Sample {
  name: string;
  labels: { [key: string]: string };
  value: number;
}

export function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  const line = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
  const label = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  for (const raw of text.split("\n")) {
    if (!raw || raw.startsWith("#")) continue;
    const m = line.exec(raw);
    if (!m) continue;
    const labels: { [key: string]: string } = {};
    if (m[2]) {
      for (const lm of m[2].matchAll(label)) labels[lm[1]] = lm[2].replace(/\\(.)/g, "$1");
    }
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

export function metricSum(
  samples: Sample[],
  name: string,
  match: { [key: string]: string } = {},
): number | null {
  let found = false;
  let sum = 0;
  for (const s of samples) {
    if (s.name !== name) continue;
    if (Object.entries(match).some(([k, v]) => s.labels[k] !== v)) continue;
    found = true;
    sum += s.value;
  }
  return found ? sum : null;
}
