// effect-session-repo/http: the session cookie and `with_session` for Effect HTTP servers.
export {
  clear_session_cookie,
  SessionCookie,
  type SessionCookieShape,
  set_session_cookie,
} from "./http/cookie.js"
export { CurrentSession, request_session_token, with_session } from "./http/session.js"
