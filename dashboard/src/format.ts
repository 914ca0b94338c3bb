// Time, duration, size and money formatting: every page formats through these, so times are
// 24-hour local time everywhere (no AM/PM), charts included. The API sends RFC 3339 UTC (and a
// few epoch milliseconds, e.g. a waiting step's until_ms in the run history).

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

// The same for epoch milliseconds (history details such as until_ms).
export function fmtEpochMs(ms: number | null | undefined, withMs = false): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "—";
  return fmtTime(new Date(ms).toISOString(), withMs);
}

// A time-axis tick of a chart spanning spanSec seconds: "14:05" (or "14:05:30" under two
// minutes), prefixed with the date ("2026-01-30 14:05") when the span is over a day.
export function fmtAxisTime(epochSec: number, spanSec: number): string {
  const d = new Date(epochSec * 1000);
  const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  if (spanSec > 86_400) return `${localDate(d)} ${hm}`;
  return spanSec < 120 ? clock(d) : hm;
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

// A size in bytes with binary units: "512 B", "16 KiB", "1.5 MiB", "2.25 GiB".
export function fmtBytes(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = Math.max(n, 0);
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  if (i === 0) return `${Math.round(v)} B`;
  return `${v.toLocaleString("en-US", { maximumFractionDigits: v < 10 ? 2 : 1 })} ${units[i]}`;
}

// Money with its currency: "$12.50" for USD, "€1,234.50" for EUR (Intl.NumberFormat, en-US
// grouping); "12.50" when the currency is unknown, "XYZ 12.50" for a code Intl does not know.
export function fmtMoney(amount: number | null | undefined, currency?: string | null): string {
  if (amount === null || amount === undefined || !Number.isFinite(amount)) return "—";
  const code = typeof currency === "string" ? currency.trim().toUpperCase() : "";
  if (/^[A-Z]{3}$/.test(code)) {
    try {
      return new Intl.NumberFormat("en-US", { style: "currency", currency: code }).format(amount);
    } catch {
      // not a currency this browser knows: fall through
    }
  }
  const plain = amount.toLocaleString("en-US", {
    minimumFractionDigits: 2,
    maximumFractionDigits: 2,
  });
  return code ? `${code} ${plain}` : plain;
}
