// console.test.js -- the admin console (SPEC §10) in a real browser against
// the real server: every feature driven by accessible names, the server's
// state checked through the API after each action.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { gunzipSync } from 'node:zlib';
import { client, KEY, launch, shot, signIn, startServer, watchedPage } from './helpers.js';

let srv, api, browser;

before(async () => {
  srv = await startServer();
  api = client(srv.base);
  browser = await launch();
});

after(async () => {
  if (browser) await browser.close();
  if (srv) assert.equal(await srv.stop(), 0);
});

const FILES = ['index.html', 'app.js', 'api.js', 'dom.js', 'list.js', 'user.js', 'dialogs.js', 'style.css', 'icon.svg'];

describe('static files', () => {
  test('served without a key, with types, CSP, ETag, 304 and gzip', async () => {
    let total = 0;
    for (const f of FILES) {
      const url = srv.base + '/console/' + (f === 'index.html' ? '' : f);
      const res = await fetch(url, { headers: { 'Accept-Encoding': 'identity' } });
      assert.equal(res.status, 200, f);
      const raw = Buffer.from(await res.arrayBuffer());
      const ct = res.headers.get('content-type');
      const want = f.endsWith('.js') ? 'text/javascript' : f.endsWith('.css') ? 'text/css'
        : f.endsWith('.svg') ? 'image/svg+xml' : 'text/html';
      assert.ok(ct.startsWith(want), `${f}: ${ct}`);
      const csp = res.headers.get('content-security-policy');
      assert.match(csp, /default-src 'none'/);
      assert.match(csp, /script-src 'self'/);
      assert.match(csp, /frame-ancestors 'none'/);
      assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
      assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
      assert.equal(res.headers.get('referrer-policy'), 'no-referrer');
      const etag = res.headers.get('etag');
      assert.match(etag, /^"[0-9a-f]{16}"$/);
      const again = await fetch(url, { headers: { 'If-None-Match': etag } });
      assert.equal(again.status, 304, f);
      assert.equal((await again.arrayBuffer()).byteLength, 0);
      // Node's fetch asks for gzip and inflates; ask by hand to see the bytes.
      const gz = await new Promise((resolve, reject) => {
        import('node:http').then(({ get }) => get(url, { headers: { 'Accept-Encoding': 'gzip' } }, (r) => {
          const parts = [];
          r.on('data', (d) => parts.push(d));
          r.on('end', () => resolve({ enc: r.headers['content-encoding'], body: Buffer.concat(parts) }));
        }).on('error', reject));
      });
      if (gz.enc === 'gzip') assert.deepEqual(gunzipSync(gz.body), raw, f);
      else assert.deepEqual(gz.body, raw, f);
      total += gz.body.length;
    }
    console.log(`console files: ${FILES.length}, ${total} bytes as sent with gzip (goal <= 61440)`);
    const redirect = await fetch(srv.base + '/console', { redirect: 'manual' });
    assert.equal(redirect.status, 301);
    assert.equal(redirect.headers.get('location'), '/console/');
    assert.equal((await fetch(srv.base + '/console/nope.js')).status, 404);
    assert.equal((await fetch(srv.base + '/console/', { method: 'POST' })).status, 405);
    assert.equal((await fetch(srv.base + '/v1/users')).status, 401, 'the API still needs a key');
  });
});

describe('sign-in', () => {
  test('a wrong key shows the API message in an alert; the right key shows the list', async () => {
    const { page, context, trouble } = await watchedPage(browser);
    await signIn(page, srv.base, 'not-the-key');
    await assertAlert(page, /missing or wrong api key/);
    assert.equal(await page.getByRole('table').count(), 0);
    await page.getByLabel('API key').fill(KEY);
    await page.getByLabel('API key').press('Enter');
    await page.getByRole('columnheader', { name: 'Email' }).waitFor();
    assert.equal(await page.getByRole('alert').count(), 0, 'the alert is gone');
    const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }) + document.cookie);
    assert.ok(!stored.includes(KEY), 'the key is in no storage without opt-in');
    assert.ok(!page.url().includes(KEY));
    assert.deepEqual(trouble.dialogs, []);
    assert.deepEqual(trouble.pageErrors, []);
    await context.close();
  });
});

async function assertAlert(page, re) {
  const alert = page.getByRole('alert');
  await alert.waitFor();
  assert.match(await alert.textContent(), re);
}

// n users named prefix-00..; roles and statuses cycle.
async function seed(prefix, n) {
  const roles = ['user', 'admin', 'viewer'];
  const users = [];
  for (let i = 0; i < n; i++) {
    const status = i % 5 === 4 ? 'inactive' : 'active';
    users.push(await api.create({ name: `${prefix} ${String(i).padStart(2, '0')}`, email: `${prefix}-${i}@example.com`, role: roles[i % 3], status }));
  }
  return users;
}

async function rowNames(page) {
  return page.locator('tbody tr td:first-child').allTextContents();
}

async function totalText(page) {
  const t = page.getByText(/^\d+ users$/);
  await t.waitFor();
  return t.textContent();
}

describe('list', () => {
  test('columns, total, paging, search, filters, all in the URL', async () => {
    await seed('Listing', 25);
    const { page, context } = await watchedPage(browser);
    await signIn(page, srv.base);
    for (const c of ['Name', 'Email', 'Role', 'Status', 'Created']) {
      await page.getByRole('columnheader', { name: c, exact: true }).waitFor();
    }
    const all = await api.call('GET', '/v1/users?limit=1');
    assert.equal(await totalText(page), `${all.body.pagination.total} users`);

    await page.getByRole('searchbox', { name: 'Search' }).fill('listing');
    await page.waitForFunction(() => location.hash === '#/users?search=listing' &&
      document.querySelector('table').getAttribute('aria-busy') === 'false');
    assert.equal(await totalText(page), '25 users');
    const first = await rowNames(page);
    assert.equal(first.length, 20);
    assert.equal(first[0], 'Listing 24', 'newest first, as the API lists');

    await page.getByRole('button', { name: 'Next page' }).click();
    await page.waitForFunction(() => /page=2/.test(location.hash) && document.querySelectorAll('tbody tr').length === 5);
    assert.deepEqual(await rowNames(page), ['Listing 04', 'Listing 03', 'Listing 02', 'Listing 01', 'Listing 00']);
    assert.equal(await page.getByRole('button', { name: 'Next page' }).isDisabled(), true);

    await page.reload();
    await signInAgain(page);
    await page.waitForFunction(() => document.querySelectorAll('tbody tr').length === 5);
    assert.equal(await page.getByRole('searchbox', { name: 'Search' }).inputValue(), 'listing');
    await page.getByRole('button', { name: 'Previous page' }).click();
    await page.waitForFunction(() => document.querySelectorAll('tbody tr').length === 20);

    const role = page.getByRole('combobox', { name: 'Role' });
    assert.equal(await role.locator('option').first().textContent(), 'All');
    assert.equal(await page.getByRole('combobox', { name: 'Status' }).locator('option').first().textContent(), 'All');
    await role.selectOption('admin');
    await page.getByRole('combobox', { name: 'Status' }).selectOption('inactive');
    // admin: i % 3 == 1; inactive: i % 5 == 4 -> i in {4, 19}
    await page.waitForFunction(() => document.querySelector('#total').textContent === '2 users');
    assert.deepEqual(await rowNames(page), ['Listing 19', 'Listing 04']);
    assert.match(page.url(), /search=listing&role=admin&status=inactive/);
    const api2 = await api.call('GET', '/v1/users?search=listing&role=admin&status=inactive');
    assert.equal(api2.body.pagination.total, 2);

    await page.getByRole('searchbox', { name: 'Search' }).fill('nobody-has-this-name');
    await page.getByText('No users match these filters.').waitFor();
    assert.equal(await totalText(page), '0 users');

    // A shared link opens the same list (after sign-in).
    const { page: p2, context: c2 } = await watchedPage(browser);
    await p2.goto(srv.base + '/console/#/users?search=listing&role=viewer&page=2');
    await p2.getByLabel('API key').fill(KEY);
    await p2.getByRole('button', { name: 'Sign in' }).click();
    await p2.waitForFunction(() => document.querySelector('#total') && document.querySelector('#total').textContent === '8 users');
    assert.equal(await p2.getByRole('combobox', { name: 'Role' }).inputValue(), 'viewer');
    await c2.close();
    await context.close();
  });
});

async function signInAgain(page) {
  await page.getByLabel('API key').fill(KEY);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

describe('add user', () => {
  test('with a password given, and with one generated and shown once', async () => {
    const { page, context } = await watchedPage(browser);
    await signIn(page, srv.base);
    await page.getByRole('button', { name: 'Add user' }).click();
    const dlg = page.getByRole('dialog', { name: 'Add user' });
    await dlg.getByLabel('Name').fill('Given Password');
    await dlg.getByLabel('Email').fill('given@example.com');
    await dlg.getByLabel('Role').selectOption('viewer');
    await dlg.getByLabel('Password').fill('correct horse battery');
    await shot(page, 'add-user-dialog');
    await dlg.getByRole('button', { name: 'Create' }).click();
    await dlg.waitFor({ state: 'detached' });
    const list = await api.call('GET', '/v1/users?email=given@example.com');
    const u = list.body.data[0];
    assert.equal(u.name, 'Given Password');
    assert.equal(u.role, 'viewer');
    assert.equal(await api.verify(u.id, 'correct horse battery'), true);
    await page.getByRole('link', { name: 'Given Password' }).waitFor();

    await page.getByRole('button', { name: 'Add user' }).click();
    await dlg.getByLabel('Name').fill('Generated Password');
    await dlg.getByLabel('Email').fill('generated@example.com');
    await dlg.getByLabel('Email').press('Enter');
    const created = page.getByRole('dialog', { name: 'User created' });
    const out = created.getByLabel('Generated password');
    await out.waitFor();
    const pw = await out.textContent();
    assert.ok(pw.length >= 16, pw);
    await created.getByRole('button', { name: 'Copy password' }).click();
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), pw);
    const g = (await api.call('GET', '/v1/users?email=generated@example.com')).body.data[0];
    assert.equal(g.role, 'user');
    assert.equal(g.has_password, true);
    assert.equal(await api.verify(g.id, pw), true);
    await page.keyboard.press('Escape');
    await created.waitFor({ state: 'detached' });
    await page.waitForFunction((p) => !document.body.textContent.includes(p), pw);
    assert.equal(await page.locator('dialog').count(), 0, 'shown once, then gone');

    // The API's error in the dialog, on the field.
    await page.getByRole('button', { name: 'Add user' }).click();
    await dlg.getByLabel('Name').fill('Dup');
    await dlg.getByLabel('Email').fill('GIVEN@example.com');
    await dlg.getByRole('button', { name: 'Create' }).click();
    await assertAlert(dlg, /email/i);
    await page.keyboard.press('Escape');
    await dlg.waitFor({ state: 'detached' });
    await context.close();
  });
});
