// user.js -- one user's page (#/users/{id}): the editable fields and Save
// (sent with If-Match: the ETag of the copy on screen; a 412 says plainly
// that someone else changed the user and offers a reload), password reset,
// suspension, deletion after a confirmation, linked identities and the
// activity log (newest first, paged, reloaded after every action here).

import * as api from './api.js';
import { field, fieldError, h, replace, select, time } from './dom.js';
import { confirmDialog, generatePassword, showPassword } from './dialogs.js';

const LOG_LIMIT = 10;

export async function render(main, ctx, id) {
  replace(main, h('p', { class: 'empty', 'aria-busy': 'true' }, 'Loading user…'));
  let cur;
  try {
    cur = await api.getUser(id);
  } catch (e) {
    replace(main, h('p', { class: 'empty' }, e.status === 404 ? 'No such user.' : 'Could not load the user.'),
      h('p', {}, h('a', { href: '#/users' }, 'Back to users')));
    ctx.showError(e);
    return;
  }
  const page = new UserPage(main, ctx, id);
  page.show(cur.user, cur.etag);
  main.querySelector('h1').focus();
}

class UserPage {
  constructor(main, ctx, id) {
    this.main = main;
    this.ctx = ctx;
    this.id = id;
    this.logPage = 1;
  }

  show(user, etag) {
    this.user = user;
    this.etag = etag;
    const w = this.ctx.canWrite;
    const ro = !w;
    const c = {
      name: h('input', { type: 'text', value: user.name, readonly: ro, maxlength: '128' }),
      email: h('input', { type: 'email', value: user.email, readonly: ro }),
      role: select({ disabled: ro }, [['admin', 'admin'], ['user', 'user'], ['viewer', 'viewer']], user.role),
      status: select({ disabled: ro }, [['active', 'active'], ['inactive', 'inactive'], ['suspended', 'suspended']], user.status),
      avatar: h('input', { type: 'url', value: user.avatar || '', readonly: ro, placeholder: 'https://…' }),
      custom_data: h('textarea', { rows: '6', spellcheck: 'false', readonly: ro, class: 'code' }),
    };
    c.custom_data.value = JSON.stringify(user.custom_data || {}, null, 2);
    this.controls = c;
    const form = h('form', { class: 'card user-form', novalidate: true },
      h('h2', {}, 'Profile'),
      h('div', { class: 'grid' },
        field('Name', c.name), field('Email', c.email), field('Role', c.role), field('Status', c.status)),
      field('Avatar URL', c.avatar),
      field('Custom data', c.custom_data, 'A JSON object.'),
      w ? h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Save')) : null);
    form.addEventListener('submit', (e) => { e.preventDefault(); if (w) this.save(); });

    const suspended = user.status === 'suspended';
    const actions = w ? h('div', { class: 'actions' },
      h('button', { type: 'button', onclick: () => this.resetPassword() }, 'Reset password'),
      h('button', { type: 'button', onclick: () => this.suspend(!suspended) }, suspended ? 'Unsuspend' : 'Suspend'),
      h('button', { type: 'button', class: 'danger', onclick: () => this.remove() }, 'Delete')) : null;

    this.activity = h('section', { class: 'card', 'aria-labelledby': 'activity-title' },
      h('h2', { id: 'activity-title' }, 'Activity'));
    replace(this.main,
      h('p', { class: 'crumbs' }, h('a', { href: '#/users' }, 'Users')),
      h('div', { class: 'head' },
        user.avatar ? h('img', { class: 'avatar', src: user.avatar, alt: '', width: '48', height: '48', referrerpolicy: 'no-referrer' }) : null,
        h('div', {},
          h('h1', { tabindex: '-1' }, user.name),
          h('p', { class: 'meta' }, h('code', {}, user.id), ' · ', user.has_password ? 'has a password' : 'no password',
            ' · created ', time(user.created_at), ' · updated ', time(user.updated_at),
            user.last_sign_in_at ? [' · last sign-in ', time(user.last_sign_in_at)] : null)),
        actions),
      form,
      this.identities(user),
      this.activity);
    this.loadActivity();
  }

  identities(user) {
    const ids = Object.entries(user.identities || {});
    return h('section', { class: 'card', 'aria-labelledby': 'identities-title' },
      h('h2', { id: 'identities-title' }, 'Identities'),
      ids.length === 0 ? h('p', { class: 'empty' }, 'No linked identities.') :
        h('ul', { class: 'identities' }, ids.map(([target, ident]) => h('li', {},
          h('span', { class: 'provider' }, target),
          h('span', { class: 'ident-id' }, ident.user_id),
          ident.details && Object.keys(ident.details).length ? h('pre', { class: 'details' }, JSON.stringify(ident.details, null, 2)) : null,
          this.ctx.canWrite ? h('button', { type: 'button', onclick: () => this.unlink(target) }, 'Remove') : null))));
  }

  // Fields that differ from the copy on screen; custom data checked first.
  changes() {
    const c = this.controls;
    const u = this.user;
    for (const k of Object.keys(c)) fieldError(c[k], null);
    let data;
    try {
      data = JSON.parse(c.custom_data.value || '{}');
    } catch (e) {
      throw Object.assign(new Error('Custom data is not valid JSON: ' + e.message), { field: 'custom_data' });
    }
    if (data === null || typeof data !== 'object' || Array.isArray(data)) {
      throw Object.assign(new Error('Custom data must be a JSON object, like {"plan": "pro"}.'), { field: 'custom_data' });
    }
    const f = {};
    if (c.name.value !== u.name) f.name = c.name.value;
    if (c.email.value.trim() !== u.email) f.email = c.email.value.trim();
    if (c.role.value !== u.role) f.role = c.role.value;
    if (c.status.value !== u.status) f.status = c.status.value;
    const av = c.avatar.value.trim() || null;
    if (av !== (u.avatar || null)) f.avatar = av;
    if (JSON.stringify(data) !== JSON.stringify(u.custom_data || {})) f.custom_data = data;
    return f;
  }

  fail(e) {
    if (e.field && this.controls[e.field]) fieldError(this.controls[e.field], e.message);
    if (e.status === 412) {
      this.ctx.showError(new Error('Someone else changed this user after you opened it; your changes were not saved. Reload to see the current version.'),
        { label: 'Reload', run: () => this.reload() });
    } else if (e.status === 404) {
      this.ctx.showError(new Error(e.message + ': the user was deleted meanwhile.'));
    } else {
      this.ctx.showError(e);
    }
  }

  async reload() {
    this.ctx.clearError();
    try {
      const r = await api.getUser(this.id);
      this.show(r.user, r.etag);
      this.ctx.announce('Reloaded');
    } catch (e) {
      this.fail(e);
    }
  }

  async act(what, fn) {
    this.ctx.clearError();
    try {
      const r = await fn();
      if (r && r.user) this.show(r.user, r.etag);
      this.ctx.announce(what);
      return true;
    } catch (e) {
      this.fail(e);
      return false;
    }
  }

  async save() {
    let f;
    try {
      f = this.changes();
    } catch (e) {
      this.fail(e);
      return;
    }
    if (Object.keys(f).length === 0) {
      this.ctx.announce('Nothing to save');
      return;
    }
    await this.act('Saved', () => api.updateUser(this.id, f, this.etag));
  }

  async resetPassword() {
    const pw = generatePassword();
    if (await this.act('Password reset', () => api.setPassword(this.id, pw))) {
      showPassword('New password', pw, 'The new password of ' + this.user.name + '.');
    }
  }

  suspend(on) {
    return this.act(on ? 'Suspended' : 'Unsuspended', () => api.setSuspended(this.id, on));
  }

  unlink(target) {
    return this.act('Identity ' + target + ' removed', () => api.unlinkIdentity(this.id, target));
  }

  async remove() {
    const ok = await confirmDialog('Delete user', 'Delete ' + this.user.name + ' (' + this.user.email + ') for good? This cannot be undone.', 'Delete');
    if (!ok) return;
    this.ctx.clearError();
    try {
      await api.deleteUser(this.id, this.etag);
    } catch (e) {
      this.fail(e);
      return;
    }
    this.ctx.announce('User ' + this.user.name + ' deleted');
    this.ctx.go('#/users');
  }

  async loadActivity() {
    const sec = this.activity;
    const body = h('div', { class: 'activity-body', 'aria-busy': 'true' }, h('p', { class: 'empty' }, 'Loading activity…'));
    replace(sec, sec.firstChild, body);
    let res;
    try {
      res = await api.listLogs(this.id, this.logPage, LOG_LIMIT);
    } catch (e) {
      replace(body, h('p', { class: 'empty' }, 'Could not load the activity.'));
      this.ctx.showError(e);
      return;
    }
    const pg = res.pagination;
    const older = h('button', { type: 'button', disabled: pg.page >= pg.pages }, 'Older events');
    const newer = h('button', { type: 'button', disabled: pg.page <= 1 }, 'Newer events');
    older.addEventListener('click', () => { this.logPage += 1; this.loadActivity(); });
    newer.addEventListener('click', () => { this.logPage -= 1; this.loadActivity(); });
    replace(body,
      res.data.length === 0 ? h('p', { class: 'empty' }, 'No activity yet.') :
        h('ol', { class: 'events' }, res.data.map(eventItem)),
      pg.pages > 1 ? h('nav', { class: 'pager', 'aria-label': 'Activity pages' }, newer,
        h('span', { class: 'page-info' }, 'Page ' + pg.page + ' of ' + pg.pages), older) : null);
    body.setAttribute('aria-busy', 'false');
  }
}

function eventItem(ev) {
  const d = ev.details && Object.keys(ev.details).length ? ev.details : null;
  return h('li', {},
    h('code', { class: 'event' }, ev.event), ' ', time(ev.created_at),
    d ? h('pre', { class: 'details' }, JSON.stringify(d, null, 2)) : null);
}
