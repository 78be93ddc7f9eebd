import { Layer } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { PASSWORD_RULE } from "./password-policy.ts"

// The example's single page: plain HTML, a style sheet and a little script
// over the JSON API. Script and styles are files of their own, not inline, so
// the Content-Security-Policy needs no 'unsafe-inline' (./security-headers.ts).

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>effect-session-repo example</title>
<link rel="stylesheet" href="/app.css">
<script src="/app.js" defer></script>
</head>
<body>
<h1>effect-session-repo example</h1>
<p id="message" role="status"></p>

<section id="signed-out">
  <h2>Sign up or log in</h2>
  <form id="auth-form">
    <input name="username" placeholder="username" autocomplete="username" required>
    <input name="password" type="password" placeholder="password" autocomplete="current-password" aria-describedby="signup-rule" required>
    <button type="submit" data-action="login">Log in</button>
    <button type="submit" data-action="signup">Sign up</button>
  </form>
  <p id="signup-rule" class="rule">A new account's password: ${PASSWORD_RULE}</p>
</section>

<section id="signed-in" hidden>
  <p>Signed in as <strong id="username"></strong>. <button id="logout">Log out</button></p>
  <h2>My sessions</h2>
  <table><thead><tr><th>browser</th><th>OS</th><th>IP address</th><th>created</th><th>last active</th><th></th><th></th></tr></thead>
  <tbody id="sessions"></tbody></table>
  <p><button id="revoke-others">Sign out everywhere else</button></p>
  <form id="reauth-form" hidden>
    <input name="password" type="password" placeholder="your password" autocomplete="current-password" required>
    <button type="submit">Confirm</button>
  </form>
  <h2>Change password</h2>
  <p id="password-change-required" role="alert" hidden></p>
  <form id="password-form">
    <input name="current_password" type="password" placeholder="current password" autocomplete="current-password" required>
    <input name="new_password" type="password" placeholder="new password" autocomplete="new-password" aria-describedby="new-password-rule" required>
    <button type="submit">Change (signs out other sessions)</button>
  </form>
  <p id="new-password-rule" class="rule">${PASSWORD_RULE}</p>
  <h2>Recent activity</h2>
  <table><thead><tr><th>when</th><th>what happened</th></tr></thead>
  <tbody id="activity"></tbody></table>
  <section id="admin" hidden>
    <h2>All active sessions (admin)</h2>
    <table><thead><tr><th>user</th><th>session</th><th>browser</th><th>OS</th><th>IP address</th><th>last active</th><th>expires</th><th></th></tr></thead>
    <tbody id="all-sessions"></tbody></table>
    <h2>Audit log (admin)</h2>
    <table><thead><tr><th>when</th><th>user</th><th>event</th><th>reason</th><th>sessions</th><th>session</th><th>browser</th><th>OS</th><th>IP address</th></tr></thead>
    <tbody id="audit"></tbody></table>
  </section>
</section>

</body>
</html>
`

const STYLE = `  body { font: 15px/1.45 system-ui, sans-serif; max-width: 860px; margin: 2rem auto; padding: 0 1rem; color: #222; }
  h1 { font-size: 1.4rem; } h2 { font-size: 1.1rem; margin-top: 2rem; }
  form { display: flex; gap: .5rem; flex-wrap: wrap; align-items: center; margin: .5rem 0; }
  input { padding: .35rem .5rem; } button { padding: .35rem .8rem; cursor: pointer; }
  table { border-collapse: collapse; width: 100%; } td, th { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid #ddd; font-size: 13px; }
  code { font-size: 12px; } .current { font-weight: 600; color: #0a6; } #message { min-height: 1.4em; color: #555; }
  .rule { font-size: 13px; color: #555; margin-top: 0; } #password-change-required { color: #a40; font-weight: 600; }
  [hidden] { display: none !important; }
`

const SCRIPT = `const $ = (id) => document.getElementById(id)
const say = (text) => { $("message").textContent = text ?? "" }
const api = async (method, path, body) => {
  const response = await fetch(path, {
    method,
    headers: body ? { "content-type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  })
  const data = await response.json().catch(() => ({}))
  if (!response.ok) {
    const error = new Error(data.error ?? response.statusText)
    throw Object.assign(error, { status: response.status, reauthenticate: data.reauthenticate === true })
  }
  return data
}
const time = (iso) => new Date(iso).toLocaleString()
// textContent only: user agents are whatever the client sent
const cell = (text) => { const td = document.createElement("td"); td.textContent = text; return td }
const unknown = (text) => text ?? "unknown"

async function render() {
  let me
  try { me = await api("GET", "/api/me") } catch { me = undefined }
  $("signed-out").hidden = !!me
  $("signed-in").hidden = !me
  if (!me) { $("password-change-required").hidden = true; return }
  $("username").textContent = me.account.username
  const { sessions } = await api("GET", "/api/sessions")
  $("sessions").replaceChildren(...sessions.map((s) => {
    const row = document.createElement("tr")
    row.dataset.session = s.id
    const marker = cell(s.current ? "this device" : "")
    if (s.current) marker.className = "current"
    const revoke = document.createElement("button")
    revoke.textContent = "Revoke"
    revoke.onclick = async () => {
      try {
        await api("DELETE", "/api/sessions/" + s.id)
        say(s.current ? "This session was revoked." : "Session revoked.")
      } catch (e) { say(e.message) }
      render()
    }
    const action = document.createElement("td"); action.append(revoke)
    row.append(cell(unknown(s.browser)), cell(unknown(s.os)), cell(unknown(s.ip)),
      cell(time(s.created_at)), cell(time(s.last_seen_at)), marker, action)
    return row
  }))
  const { activity } = await api("GET", "/api/activity")
  $("activity").replaceChildren(...activity.map((a) => {
    const row = document.createElement("tr")
    row.append(cell(time(a.at)), cell(a.text))
    return row
  }))
  $("admin").hidden = !me.account.admin
  if (me.account.admin) {
    const all = await api("GET", "/api/admin/sessions")
    $("all-sessions").replaceChildren(...all.sessions.map((s) => {
      const row = document.createElement("tr")
      const sign_out = document.createElement("button")
      sign_out.textContent = "Sign out user"
      sign_out.onclick = () => with_password_check(async () => {
        const { revoked } = await api("POST", "/api/admin/accounts/" + encodeURIComponent(s.account_id) + "/revoke")
        say(revoked + " session(s) of " + s.username + " signed out.")
        render()
      })
      const action = document.createElement("td"); action.append(sign_out)
      row.append(cell(s.username), cell(s.id), cell(unknown(s.browser)), cell(unknown(s.os)), cell(unknown(s.ip)),
        cell(time(s.last_seen_at)), cell(time(s.expires_at)), action)
      return row
    }))
    const { entries } = await api("GET", "/api/admin/audit")
    $("audit").replaceChildren(...entries.map((e) => {
      const row = document.createElement("tr")
      row.append(cell(time(e.at)), cell(e.account ?? ""), cell(e.kind), cell(e.reason ?? ""), cell(String(e.count)),
        cell(e.session ?? ""), cell(e.browser ?? ""), cell(e.os ?? ""), cell(e.ip ?? ""))
      return row
    }))
  }
}

$("auth-form").addEventListener("submit", async (event) => {
  event.preventDefault()
  const form = new FormData(event.target)
  const action = event.submitter?.dataset.action ?? "login"
  let signed_in
  try {
    signed_in = await api("POST", "/api/" + action, { username: form.get("username"), password: form.get("password") })
    say("")
  } catch (e) { say(e.message) }
  await render()
  // a password chosen before today's rules: signed in, and asked for a new one
  if (signed_in?.password_change_required) {
    $("password-change-required").textContent = signed_in.password_problem + " Please choose a new password."
    $("password-change-required").hidden = false
    $("password-form").elements.current_password.focus()
  }
})
$("logout").onclick = async () => { await api("POST", "/api/logout").catch(() => {}); say("Logged out."); render() }
// A sensitive action on a session whose password proof is old: ask for the
// password, then retry the action once it is confirmed.
let after_password
const with_password_check = async (action) => {
  try { await action() } catch (e) {
    say(e.message)
    if (!e.reauthenticate) return
    after_password = action
    $("reauth-form").hidden = false
    $("reauth-form").elements.password.focus()
  }
}
$("reauth-form").addEventListener("submit", async (event) => {
  event.preventDefault()
  const form = new FormData(event.target)
  try {
    await api("POST", "/api/reauthenticate", { password: form.get("password") })
  } catch (e) { return say(e.message) }
  event.target.reset()
  event.target.hidden = true
  const action = after_password
  after_password = undefined
  if (action) await with_password_check(action)
})
$("revoke-others").onclick = () => with_password_check(async () => {
  const { revoked } = await api("POST", "/api/sessions/revoke-others")
  say(revoked + " other session(s) signed out.")
  render()
})
$("password-form").addEventListener("submit", async (event) => {
  event.preventDefault()
  const form = new FormData(event.target)
  try {
    const { revoked } = await api("POST", "/api/password", Object.fromEntries(form))
    say("Password changed; " + revoked + " other session(s) signed out.")
    event.target.reset()
    $("password-change-required").hidden = true
  } catch (e) { say(e.message) }
  render()
})
render()
`

/** The page and its two assets. */
export const PageRoutes = Layer.mergeAll(
  HttpRouter.add("GET", "/", HttpServerResponse.html(PAGE)),
  HttpRouter.add(
    "GET",
    "/app.css",
    HttpServerResponse.text(STYLE, { contentType: "text/css; charset=utf-8" }),
  ),
  HttpRouter.add(
    "GET",
    "/app.js",
    HttpServerResponse.text(SCRIPT, { contentType: "text/javascript; charset=utf-8" }),
  ),
)
