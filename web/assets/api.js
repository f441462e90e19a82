// Staff pages' REST client and login. The bearer token lives in sessionStorage (gone when
// the tab closes). A 401 anywhere shows the login form over the page — what was typed
// stays where it is — and the request is retried after logging in again.

import { h, $, replace, show } from './dom.js';

const TOKEN_KEY = 'concierge.staff.token';
const USER_KEY = 'concierge.staff.user';

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
  }
}

export const auth = {
  token: () => sessionStorage.getItem(TOKEN_KEY),
  user: () => {
    try {
      return JSON.parse(sessionStorage.getItem(USER_KEY) || 'null');
    } catch (_) {
      return null;
    }
  },
  has: (...roles) => {
    const u = auth.user();
    return !!u && (u.roles || []).some((r) => roles.includes(r) || r === 'admin');
  },
};

let waiters = [];
let onLoggedIn = () => {};

/** Builds the login form (in the element #login) for a page titled `title`. */
export function setupLogin(title, subtitle, loggedIn) {
  onLoggedIn = loggedIn;
  const root = $('#login');
  const name = h('input#login-name', { name: 'name', autocomplete: 'username', required: true });
  const password = h('input#login-password', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const error = h('p.login-error#login-error', { role: 'alert' });
  const submit = h('button.btn#login-submit', { type: 'submit' }, '登录');
  const form = h('form.login-card', {
    onsubmit: async (e) => {
      e.preventDefault();
      submit.disabled = true;
      error.textContent = '';
      try {
        const res = await fetch('/v1/auth/login', {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ name: name.value.trim(), password: password.value }),
        });
        const data = await res.json().catch(() => null);
        if (!res.ok) {
          error.textContent = res.status === 401 ? '用户名或密码不正确。' : (data && data.error && data.error.message) || '登录失败，请稍后再试。';
          return;
        }
        sessionStorage.setItem(TOKEN_KEY, data.token);
        sessionStorage.setItem(USER_KEY, JSON.stringify(data.user));
        password.value = '';
        show(root, false);
        const w = waiters;
        waiters = [];
        w.forEach((f) => f());
        onLoggedIn(data.user);
      } catch (_) {
        error.textContent = '网络异常，请稍后再试。';
      } finally {
        submit.disabled = false;
      }
    },
  },
  h('div.login-brand', h('img', { src: '/assets/img/favicon.svg', alt: '' }), h('div', h('h1', title), h('p', subtitle))),
  h('p.login-reason#login-reason'),
  h('label.field', h('span', '用户名'), name),
  h('label.field', h('span', '密码'), password),
  error,
  submit);
  replace(root, form);
}

/** Shows the login form; resolves after a successful login. */
export function needLogin(reason = '') {
  const root = $('#login');
  const r = $('#login-reason');
  if (r) r.textContent = reason;
  show(root, true);
  const name = $('#login-name');
  const u = auth.user();
  if (name && u && !name.value) name.value = u.name;
  setTimeout(() => ($('#login-password') || {}).focus && $('#login-password').focus(), 0);
  return new Promise((resolve) => waiters.push(resolve));
}

export async function logout() {
  const t = auth.token();
  sessionStorage.removeItem(TOKEN_KEY);
  if (t) {
    await fetch('/v1/auth/logout', { method: 'POST', headers: { authorization: `Bearer ${t}` } }).catch(() => {});
  }
  sessionStorage.removeItem(USER_KEY);
}

/** A JSON request with the bearer token; throws ApiError on a non-2xx answer. */
export async function api(method, path, body) {
  for (;;) {
    const headers = {};
    const t = auth.token();
    if (t) headers.authorization = `Bearer ${t}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    if (res.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      await needLogin('登录已过期，请重新登录。您填写的内容都还在。');
      continue;
    }
    const data = await res.json().catch(() => null);
    if (!res.ok) {
      const e = data && data.error;
      throw new ApiError(res.status, e && e.code, e && e.message);
    }
    return data;
  }
}

export const get = (path) => api('GET', path);
export const post = (path, body = {}) => api('POST', path, body);
export const put = (path, body) => api('PUT', path, body);

/** A transient message at the bottom of the page. */
export function toast(text, kind = '') {
  let t = $('#toast');
  if (!t) {
    t = h('div#toast.toast', { role: 'status' });
    document.body.appendChild(t);
  }
  t.textContent = text;
  t.className = `toast ${kind}`;
  show(t, true);
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => show(t, false), 4000);
}
