// effect-session-repo/http: the session cookie and `with_session` for Effect HTTP servers.
export {
  clear_session_cookie,
  INSECURE_SESSION_COOKIE_NAME,
  SECURE_SESSION_COOKIE_NAME,
  SessionCookie,
  type SessionCookieShape,
  session_cookie,
  set_session_cookie,
} from "./http/cookie.js"
export {
  CurrentSession,
  type CurrentSessionShape,
  request_session_token,
  request_session_tokens,
  session_middleware,
  session_rejections,
  with_session,
} from "./http/session.js"
