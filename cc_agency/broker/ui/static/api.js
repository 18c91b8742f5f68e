// The REST API as the dashboard uses it: relative URLs (the API is one level above /ui/, under any prefix), a
// token kept in sessionStorage (this tab only; gone when the tab closes or on logout), JSON errors as ApiError.
const SESSION_KEY = 'cc-agency-session';
const API_ROOT = '../';
// sent with every call: the broker then answers a failed login without a Basic challenge, which would make the
// browser show its own password dialog (see cc_agency/broker/routes/ui.py)
const DASHBOARD_HEADER = ['X-Requested-With', 'cc-agency-ui'];

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function session() {
  const raw = sessionStorage.getItem(SESSION_KEY);
  return raw ? JSON.parse(raw) : null;
}

export function logout() {
  sessionStorage.removeItem(SESSION_KEY);
}

function url(path, params) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== '') query.set(key, String(value));
  }
  const text = query.toString();
  return API_ROOT + path + (text ? '?' + text : '');
}

async function errorOf(response) {
  let message = response.status + ' ' + response.statusText;
  try {
    const body = await response.json();
    if (body && body.message) message = body.message;
  } catch (e) { /* not JSON: keep the status line */ }
  return new ApiError(response.status, message);
}

async function call(method, path, {params, body, authorization, text} = {}) {
  const headers = {[DASHBOARD_HEADER[0]]: DASHBOARD_HEADER[1]};
  const current = session();
  if (authorization) headers.Authorization = authorization;
  else if (current) headers.Authorization = 'Bearer ' + current.token;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch(url(path, params), {method, headers, cache: 'no-store', credentials: 'omit',
      body: body === undefined ? undefined : JSON.stringify(body)});
  } catch (e) {
    throw new ApiError(0, 'the broker cannot be reached (' + e.message + ')');
  }
  if (!response.ok) {
    const error = await errorOf(response);
    if (response.status === 401 && !authorization) {
      logout();  // the token expired or was revoked: back to the login form
      window.dispatchEvent(new CustomEvent('cc-logged-out', {detail: 'Your session ended; please log in again.'}));
    }
    throw error;
  }
  return text ? response.text() : response.json();
}

export const get = (path, params) => call('GET', path, {params});
export const getText = (path) => call('GET', path, {text: true});
export const del = (path) => call('DELETE', path);
export const post = (path, body) => call('POST', path, {body: body === undefined ? {} : body});
export const patch = (path, body) => call('PATCH', path, {body});

export async function login(username, password) {
  // UTF-8 user names and passwords, base64 as RFC 7617 says
  const bytes = new TextEncoder().encode(username + ':' + password);
  const basic = 'Basic ' + btoa(String.fromCharCode(...bytes));
  const answer = await call('GET', 'token', {authorization: basic});
  const stored = {token: answer.token, username: answer.username || username, isAdmin: !!answer.isAdmin};
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(stored));
  return stored;
}

// Whether the API offers `method` on `path`, asked without side effects: the broker answers OPTIONS with 405 and
// an Allow header on a route it has, 404 on one it has not. Routes other people are adding (cancel a whole
// experiment, resubmit, cordon) appear in the dashboard as soon as the broker serves them.
const offered = new Map();
export async function offers(method, path) {
  const key = method + ' ' + path;
  if (!offered.has(key)) {
    offered.set(key, fetch(url(path), {method: 'OPTIONS', cache: 'no-store', credentials: 'omit',
      headers: {[DASHBOARD_HEADER[0]]: DASHBOARD_HEADER[1]}})
      .then((response) => {
        const allow = (response.headers.get('Allow') || '').toUpperCase().split(/\s*,\s*/);
        return allow.includes(method);
      })
      .catch(() => false));
  }
  return offered.get(key);
}
