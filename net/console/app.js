// app.js -- the console's entry: sign-in, the router and the page-wide
// alert and status regions.
//
// Routes live in the URL hash so that a reload or a shared link shows the
// same view: "#/users?page=2&search=ann&role=admin&status=active" is the
// list, "#/users/{id}" a user's page.  Views are modules (list.js, user.js)
// exporting render(main, ctx); ctx carries what every view needs.

import * as api from './api.js';
import { h, replace, text } from './dom.js';
import * as list from './list.js';
import * as user from './user.js';

const main = document.getElementById('main');
const alertBox = document.getElementById('alert');
const statusBox = document.getElementById('status');
const signOutBtn = document.getElementById('sign-out');
const modeBadge = document.getElementById('mode');

const ctx = {
  canWrite: false,
  // The API's message in the page's alert, with an optional action button.
  showError(err, action) {
    const msg = err && err.message ? err.message : String(err);
    replace(alertBox, h('span', {}, msg),
      action ? h('button', { type: 'button', onclick: action.run }, action.label) : null);
    alertBox.hidden = false;
  },
  clearError() {
    alertBox.hidden = true;
    replace(alertBox);
  },
  announce(s) {
    text(statusBox, s);
  },
  go(hash) {
    if (location.hash === hash) route();
    else location.hash = hash;
  },
  signOut,
};

function signInView() {
  const input = h('input', { type: 'password', id: 'api-key', name: 'api-key', autocomplete: 'off', required: true, spellcheck: 'false' });
  const remember = h('input', { type: 'checkbox', id: 'remember' });
  const form = h('form', { class: 'card signin' },
    h('h1', { tabindex: '-1' }, 'Sign in'),
    h('p', { class: 'hint' }, 'Paste an API key (the generated one is in DATA_DIR/api-key). It stays in this page’s memory.'),
    h('div', { class: 'field' }, h('label', { for: 'api-key' }, 'API key'), input),
    h('div', { class: 'check' }, remember, h('label', { for: 'remember' }, 'Stay signed in in this tab')),
    h('button', { type: 'submit', class: 'primary' }, 'Sign in'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const k = input.value.trim();
    if (!k) return;
    await signIn(k, remember.checked);
  });
  replace(main, form);
  input.focus();
}

async function signIn(k, remember) {
  ctx.clearError();
  api.setKey(k, false);
  try {
    await api.checkKey();
  } catch (e) {
    api.setKey(null, false);
    ctx.showError(e);
    if (!document.getElementById('api-key')) signInView();
    return;
  }
  api.setKey(k, remember);
  ctx.canWrite = await api.canWrite();
  document.body.classList.toggle('read-only', !ctx.canWrite);
  modeBadge.hidden = ctx.canWrite;
  text(modeBadge, ctx.canWrite ? '' : 'Read-only key');
  signOutBtn.hidden = false;
  if (!location.hash || location.hash === '#' || location.hash === '#/') {
    history.replaceState(null, '', '#/users');
  }
  route();
}

function signOut() {
  api.setKey(null, false);
  signOutBtn.hidden = true;
  modeBadge.hidden = true;
  ctx.clearError();
  ctx.announce('Signed out');
  signInView();
}

function route() {
  if (!api.hasKey()) {
    signInView();
    return;
  }
  const hash = location.hash.replace(/^#/, '') || '/users';
  const [path, qs] = hash.split('?');
  const m = /^\/users\/([^/]+)$/.exec(path);
  if (m) {
    user.render(main, ctx, decodeURIComponent(m[1]));
  } else {
    list.render(main, ctx, new URLSearchParams(qs || ''));
  }
}

signOutBtn.addEventListener('click', signOut);
window.addEventListener('hashchange', () => { ctx.clearError(); route(); });

const saved = api.savedKey();
if (saved) signIn(saved, true);
else signInView();
