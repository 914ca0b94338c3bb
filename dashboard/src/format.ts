// Time and duration formatting. The API sends RFC 3339 UTC; the dashboard shows local time.

function pad(n: number, width = 2): string {
  return String(n).padStart(width, "0");
}

export function parseTime(iso: string | null | undefined): Date | null {
  if (!iso) return null;
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? null : d;
}

export function localDate(d: Date): string {
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

export function clock(d: Date, ms = false): string {
  const base = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return ms ? `${base}.${pad(d.getMilliseconds(), 3)}` : base;
}

// "14:02:11" today, "2026-01-30 14:02:11" otherwise.
export function fmtTime(iso: string | null | undefined, ms = false): string {
  const d = parseTime(iso);
  if (!d) return "—";
  const today = localDate(new Date()) === localDate(d);
  return today ? clock(d, ms) : `${localDate(d)} ${clock(d, ms)}`;
}

export function fmtDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "—";
  if (ms < 0) ms = 0;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  const whole = Math.round(s);
  const m = Math.floor(whole / 60);
  if (m < 60) return `${m}m ${whole % 60}s`;
  const hr = Math.floor(m / 60);
  if (hr < 48) return `${hr}h ${m - hr * 60}m`;
  return `${Math.floor(hr / 24)}d ${hr % 24}h`;
}

export function between(a: string | null | undefined, b: string | null | undefined): number | null {
  const da = parseTime(a);
  const db = parseTime(b);
  return da && db ? db.getTime() - da.getTime() : null;
}

export function fmtAgo(iso: string | null | undefined): string {
  const d = parseTime(iso);
  if (!d) return "—";
  const ms = Date.now() - d.getTime();
  if (ms < 0) return `in ${fmtDuration(-ms)}`;
  if (ms < 5000) return "just now";
  return `${fmtDuration(ms)} ago`;
}

// Accepts what the API accepts for since/until: HH:MM (today, server time zone) or RFC 3339.
export function validTimeInput(v: string): boolean {
  if (!v) return true;
  if (/^\d{1,2}:\d{2}$/.test(v)) {
    const [h, m] = v.split(":").map(Number);
    return h <= 23 && m <= 59;
  }
  return /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})?$/.test(v);
}

export function isoMinutesAgo(minutes: number): string {
  return new Date(Date.now() - minutes * 60_000).toISOString();
}

export function fmtCount(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return "—";
  return n.toLocaleString("en-US", { maximumFractionDigits: 1 });
}
