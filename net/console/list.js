// list.js -- the user list: search, Role and Status filters, one page of
// users, the total and previous/next.  Everything is asked of the server
// (it pages, filters and counts), so the view costs the same at 1M users.
// The query lives in the hash (#/users?page=&search=&role=&status=); typing
// in the search box replaces the hash (no history entry per key) and an
// older request still in flight is cancelled.

import * as api from './api.js';
import { h, replace, select, text, time } from './dom.js';
import { addUserDialog } from './dialogs.js';

const LIMIT = 20;
const ROLES = [['', 'All'], ['admin', 'admin'], ['user', 'user'], ['viewer', 'viewer']];
const STATUSES = [['', 'All'], ['active', 'active'], ['inactive', 'inactive'], ['suspended', 'suspended']];

let inflight = null;

function hashOf(q) {
  const p = new URLSearchParams();
  if (q.search) p.set('search', q.search);
  if (q.role) p.set('role', q.role);
  if (q.status) p.set('status', q.status);
  if (q.page > 1) p.set('page', String(q.page));
  const s = p.toString();
  return '#/users' + (s ? '?' + s : '');
}

export function render(main, ctx, params) {
  const q = {
    search: params.get('search') || '',
    role: params.get('role') || '',
    status: params.get('status') || '',
    page: Math.max(1, parseInt(params.get('page') || '1', 10) || 1),
  };
  const search = h('input', { type: 'search', id: 'search', value: q.search, placeholder: 'Name or email', autocomplete: 'off' });
  const role = select({ id: 'filter-role' }, ROLES, q.role);
  const status = select({ id: 'filter-status' }, STATUSES, q.status);
  const total = h('p', { class: 'total', id: 'total' }, '');
  const tbody = h('tbody', {});
  const table = h('table', { 'aria-labelledby': 'users-title', 'aria-busy': 'true' },
    h('thead', {}, h('tr', {}, ['Name', 'Email', 'Role', 'Status', 'Created'].map((c) => h('th', { scope: 'col' }, c)))),
    tbody);
  const prev = h('button', { type: 'button', disabled: q.page <= 1 }, 'Previous page');
  const next = h('button', { type: 'button', disabled: true }, 'Next page');
  const pageInfo = h('span', { class: 'page-info' }, '');
  const add = ctx.canWrite ? h('button', { type: 'button', class: 'primary' }, 'Add user') : null;

  replace(main,
    h('div', { class: 'head' }, h('h1', { id: 'users-title', tabindex: '-1' }, 'Users'), add),
    h('form', { class: 'filters', role: 'search', onsubmit: (e) => { e.preventDefault(); refresh(true); } },
      h('div', { class: 'field grow' }, h('label', { for: 'search' }, 'Search'), search),
      h('div', { class: 'field' }, h('label', { for: 'filter-role' }, 'Role'), role),
      h('div', { class: 'field' }, h('label', { for: 'filter-status' }, 'Status'), status)),
    total,
    h('div', { class: 'table-wrap' }, table),
    h('nav', { class: 'pager', 'aria-label': 'Pages' }, prev, pageInfo, next));

  function refresh(resetPage) {
    if (resetPage) q.page = 1;
    q.search = search.value.trim();
    q.role = role.value;
    q.status = status.value;
    history.replaceState(null, '', hashOf(q));
    load();
  }

  let timer = null;
  search.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(() => refresh(true), 40);
  });
  role.addEventListener('change', () => refresh(true));
  status.addEventListener('change', () => refresh(true));
  prev.addEventListener('click', () => { q.page -= 1; ctx.go(hashOf(q)); });
  next.addEventListener('click', () => { q.page += 1; ctx.go(hashOf(q)); });
  if (add) add.addEventListener('click', () => addUserDialog(ctx, () => load()));

  async function load() {
    if (inflight) inflight.abort();
    const ctl = new AbortController();
    inflight = ctl;
    table.setAttribute('aria-busy', 'true');
    if (!tbody.firstChild) replace(tbody, h('tr', {}, h('td', { colspan: '5', class: 'empty' }, 'Loading users…')));
    let res;
    try {
      res = await api.listUsers({ page: q.page, limit: LIMIT, search: q.search, role: q.role, status: q.status }, ctl.signal);
    } catch (e) {
      if (e.name === 'AbortError') return;
      table.setAttribute('aria-busy', 'false');
      replace(tbody, h('tr', {}, h('td', { colspan: '5', class: 'empty' }, 'Could not load users.')));
      ctx.showError(e);
      return;
    } finally {
      if (inflight === ctl) inflight = null;
    }
    if (ctl.signal.aborted) return;
    ctx.clearError();
    const pg = res.pagination;
    text(total, pg.total + ' users');
    text(pageInfo, pg.pages ? 'Page ' + pg.page + ' of ' + pg.pages : '');
    prev.disabled = pg.page <= 1;
    next.disabled = pg.page >= pg.pages;
    if (res.data.length === 0) {
      const filtered = q.search || q.role || q.status;
      replace(tbody, h('tr', {}, h('td', { colspan: '5', class: 'empty' },
        filtered ? 'No users match these filters.' : pg.page > 1 ? 'No users on this page.' : 'No users yet.')));
    } else {
      replace(tbody, res.data.map(row));
    }
    table.setAttribute('aria-busy', 'false');
    document.dispatchEvent(new CustomEvent('userdb:list-painted'));
  }

  load();
  if (!params.toString()) main.querySelector('h1').focus();
}

function row(u) {
  return h('tr', {},
    h('td', {}, h('a', { href: '#/users/' + encodeURIComponent(u.id) }, u.name)),
    h('td', { class: 'email' }, u.email),
    h('td', {}, u.role),
    h('td', {}, h('span', { class: 'pill ' + u.status }, u.status)),
    h('td', {}, time(u.created_at)));
}
