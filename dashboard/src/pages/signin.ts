// Sign-in: an API token, or a user name and password; or, from the first-start link, a one-time
// code in the URL (?code=...), redeemed at once and then removed from the address bar.
import { errorBox } from "../components";
import { h, replace } from "../dom";
import { navigate, type PageContext } from "../router";
import { signIn, type Credentials } from "../session";
import { field } from "../filters";

// Where to go afterwards: only a path inside the app, never another origin.
function nextPath(query: URLSearchParams): string {
  const next = query.get("next") ?? "/";
  return next.startsWith("/") && !next.startsWith("//") && !next.startsWith("/ui/signin")
    ? next
    : "/";
}

export async function signinPage(ctx: PageContext): Promise<void> {
  ctx.title("Sign in");
  const message = h("div", { class: "signin-message" });
  const done = (onRefresh: () => void) => {
    onRefresh();
    navigate(nextPath(ctx.query), true);
  };
  const attempt = async (creds: Credentials) => {
    replace(message);
    try {
      await signIn(creds);
      done(() => window.dispatchEvent(new Event("cf-session")));
    } catch (e) {
      replace(message, errorBox(e instanceof Error ? e.message : String(e)));
    }
  };

  const code = ctx.query.get("code");
  if (code) {
    // The code is spent on first use: keep it out of the history either way.
    history.replaceState(null, "", "/ui/signin");
    await attempt({ code });
    if (!ctx.alive()) return;
  }

  const token = h("input", {
    name: "token",
    type: "password",
    autocomplete: "off",
    placeholder: "cft_…",
    spellcheck: "false",
  });
  const username = h("input", { name: "username", autocomplete: "username" });
  const password = h("input", {
    name: "password",
    type: "password",
    autocomplete: "current-password",
  });
  const form = (kind: string, title: string, submit: () => Credentials, ...fields: HTMLElement[]) =>
    h(
      "form",
      {
        class: "signin-form",
        "data-form": kind,
        onsubmit: (ev: Event) => {
          ev.preventDefault();
          void attempt(submit());
        },
      },
      h("h2", null, title),
      fields,
      h("button", { type: "submit", class: "btn primary" }, "Sign in"),
    );
  const tokenForm = form(
    "token",
    "With an API token",
    () => ({ token: token.value.trim() }),
    field("Token", token),
  );
  const passwordForm = form(
    "password",
    "With a user name and password",
    () => ({ username: username.value.trim(), password: password.value }),
    field("User", username),
    field("Password", password),
  );
  replace(
    ctx.root,
    h(
      "section",
      { class: "signin" },
      h("div", { class: "page-head" }, h("h1", null, "Sign in to chartflow")),
      message,
      h("div", { class: "signin-forms" }, passwordForm, tokenForm),
    ),
  );
}
