// dialogs.js -- modal dialogs (native <dialog>: focus stays inside, Escape
// closes) and the generated passwords they show.
//
// A generated password comes from crypto.getRandomValues, is shown once in
// a dialog with a copy button and is forgotten when the dialog closes.

import * as api from './api.js';
import { field, fieldError, h, replace, select, text } from './dom.js';

const ALPHABET = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789-_.!@#%+=';

// A 20-character password, uniform over ALPHABET (rejection sampling).
export function generatePassword(len = 20) {
  const out = [];
  const limit = 256 - (256 % ALPHABET.length);
  const buf = new Uint8Array(64);
  while (out.length < len) {
    crypto.getRandomValues(buf);
    for (const b of buf) {
      if (b < limit && out.length < len) out.push(ALPHABET[b % ALPHABET.length]);
    }
  }
  return out.join('');
}

// A dialog with title and body; removed from the page when it closes.
export function openDialog(title, ...body) {
  const heading = h('h2', { id: 'dlg-title' }, title);
  const dlg = h('dialog', { 'aria-labelledby': 'dlg-title', class: 'dialog' }, heading, ...body);
  dlg.addEventListener('close', () => dlg.remove());
  document.body.appendChild(dlg);
  dlg.showModal();
  return dlg;
}

function alertIn(dlg) {
  return dlg.querySelector('.dlg-alert');
}

export function dialogError(dlg, err) {
  const a = alertIn(dlg);
  text(a, err.message);
  a.hidden = false;
}

function dlgAlert() {
  return h('div', { role: 'alert', class: 'alert dlg-alert', hidden: true });
}

// The password once, with Copy password and Close.
function passwordPanel(password, what) {
  const out = h('output', { class: 'secret', id: 'generated-password', 'aria-label': 'Generated password' }, password);
  const copied = h('span', { role: 'status', class: 'hint' }, '');
  const copy = h('button', { type: 'button' }, 'Copy password');
  copy.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(password);
      text(copied, 'Copied');
    } catch {
      const r = document.createRange();
      r.selectNodeContents(out);
      const s = getSelection();
      s.removeAllRanges();
      s.addRange(r);
      text(copied, 'Selected: press Ctrl+C to copy');
    }
  });
  return h('div', { class: 'password-panel' },
    h('p', {}, what + ' It is shown only this once: copy it now.'),
    out, h('div', { class: 'actions' }, copy, copied));
}

export function showPassword(title, password, what) {
  const close = h('button', { type: 'button', class: 'primary', value: 'close' }, 'Close');
  const dlg = openDialog(title, passwordPanel(password, what), h('div', { class: 'actions' }, close));
  close.addEventListener('click', () => dlg.close());
  close.focus();
  return dlg;
}

// Ask first; resolves true when the confirm button was pressed.
export function confirmDialog(title, message, confirmLabel) {
  return new Promise((resolve) => {
    const cancel = h('button', { type: 'button' }, 'Cancel');
    const ok = h('button', { type: 'button', class: 'danger' }, confirmLabel);
    const dlg = openDialog(title, h('p', {}, message), h('div', { class: 'actions' }, cancel, ok));
    let answer = false;
    cancel.addEventListener('click', () => dlg.close());
    ok.addEventListener('click', () => { answer = true; dlg.close(); });
    dlg.addEventListener('close', () => resolve(answer));
    cancel.focus();
  });
}

// Add user: Name, Email, Role, Password (empty: one is generated), Create.
export function addUserDialog(ctx, created) {
  const name = h('input', { type: 'text', required: true, maxlength: '128', autocomplete: 'off' });
  const email = h('input', { type: 'email', required: true, autocomplete: 'off' });
  const role = select({}, [['user', 'user'], ['admin', 'admin'], ['viewer', 'viewer']], 'user');
  const password = h('input', { type: 'password', autocomplete: 'new-password', minlength: '8', maxlength: '256' });
  const cancel = h('button', { type: 'button' }, 'Cancel');
  const create = h('button', { type: 'submit', class: 'primary' }, 'Create');
  const form = h('form', { novalidate: true },
    field('Name', name), field('Email', email), field('Role', role),
    field('Password', password, 'Leave empty to generate a strong one.'),
    dlgAlert(), h('div', { class: 'actions' }, cancel, create));
  const dlg = openDialog('Add user', form);
  cancel.addEventListener('click', () => dlg.close());
  const controls = { name, email, role, password };
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    alertIn(dlg).hidden = true;
    for (const c of Object.values(controls)) fieldError(c, null);
    const generated = password.value === '' ? generatePassword() : null;
    const fields = { name: name.value, email: email.value.trim(), role: role.value, password: generated || password.value };
    create.disabled = true;
    try {
      const { user } = await api.createUser(fields);
      created(user);
      ctx.announce('User ' + user.name + ' created');
      if (generated) {
        replace(dlg, h('h2', { id: 'dlg-title' }, 'User created'),
          passwordPanel(generated, 'The generated password of ' + user.name + ' (' + user.email + ').'),
          h('div', { class: 'actions' },
            h('a', { href: '#/users/' + encodeURIComponent(user.id), class: 'button', onclick: () => dlg.close() }, 'Open user'),
            h('button', { type: 'button', class: 'primary', onclick: () => dlg.close() }, 'Close')));
        dlg.querySelector('.primary').focus();
      } else {
        dlg.close();
      }
    } catch (e) {
      create.disabled = false;
      if (e.field && controls[e.field]) fieldError(controls[e.field], e.message);
      dialogError(dlg, e);
    }
  });
  name.focus();
}
