// Who the dashboard is signed in as. The session itself is an HttpOnly cookie the page cannot
// read; what the page keeps (in memory only) is the CSRF token it must send back on every
// state-changing request, and the name and role to show. A reload asks the server again
// (GET /v1/auth/session answers only with the cookie, and only to this origin).

export interface SessionInfo {
  name: string;
  role: string;
  assignee: string | null;
  csrf_token?: string;
}

let current: SessionInfo | null = null;

export function session(): SessionInfo | null {
  return current;
}

export function csrfToken(): string | null {
  return current?.csrf_token ?? null;
}

async function post(path: string, body: unknown): Promise<Response> {
  const headers: Record<string, string> = {
    Accept: "application/json",
    "Content-Type": "application/json",
  };
  const csrf = csrfToken();
  if (csrf) headers["X-CSRF-Token"] = csrf;
  return fetch(path, { method: "POST", headers, body: JSON.stringify(body) });
}

// The current session, or null when signed out (or the session expired).
export async function loadSession(): Promise<SessionInfo | null> {
  const resp = await fetch("/v1/auth/session", { headers: { Accept: "application/json" } });
  if (!resp.ok) {
    current = null;
    return null;
  }
  current = (await resp.json()) as SessionInfo;
  return current;
}

export type Credentials =
  { token: string } | { username: string; password: string } | { code: string };

// Signs in; throws an Error with the server's message when refused.
export async function signIn(creds: Credentials): Promise<SessionInfo> {
  const resp = await post("/v1/auth/signin", creds);
  const body = (await resp.json().catch(() => ({}))) as SessionInfo & { error?: string };
  if (!resp.ok) throw new Error(body.error ?? `sign-in failed (${resp.status})`);
  current = body;
  return body;
}

export async function signOut(): Promise<void> {
  try {
    await post("/v1/auth/signout", {});
  } finally {
    current = null;
  }
}

export function isAdmin(): boolean {
  return current?.role === "admin";
}
