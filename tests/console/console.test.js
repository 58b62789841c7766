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

async function openUser(page, id) {
  await page.goto(srv.base + '/console/#/users/' + id);
  await signInAgain(page);
  await page.getByRole('button', { name: 'Save' }).or(page.getByRole('heading', { name: 'Activity' })).first().waitFor();
}

async function activityEvents(page) {
  await page.waitForFunction(() => {
    const b = document.querySelector('.activity-body');
    return b && b.getAttribute('aria-busy') === 'false';
  });
  const sec = page.getByRole('region', { name: 'Activity' });
  return sec.locator('li code.event').allTextContents();
}

async function waitActivity(page, event) {
  await page.waitForFunction((e) => {
    const b = document.querySelector('.activity-body');
    const first = b && b.querySelector('li code.event');
    return b.getAttribute('aria-busy') === 'false' && first && first.textContent === e;
  }, event);
}

describe('user page', () => {
  test('deep link, edit and save, custom data checked, the API error on the field', async () => {
    const u = await api.create({ name: 'Edit Me', email: 'edit-me@example.com' });
    const { page, context, trouble } = await watchedPage(browser);
    await openUser(page, u.id);
    await page.getByRole('heading', { level: 1, name: 'Edit Me' }).waitFor();
    assert.deepEqual(await activityEvents(page), ['user.created']);
    await shot(page, 'user-page');

    await page.getByLabel('Name').fill('Edited Name');
    await page.getByLabel('Email').fill('edited@example.com');
    await page.getByLabel('Role').selectOption('admin');
    await page.getByLabel('Status').selectOption('inactive');
    await page.getByLabel('Avatar URL').fill('https://example.com/a.png');
    await page.getByLabel('Custom data').fill('{"plan": "pro", "seats": 3}');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('heading', { level: 1, name: 'Edited Name' }).waitFor();
    await waitActivity(page, 'user.updated');
    const s = await api.get(u.id);
    assert.equal(s.name, 'Edited Name');
    assert.equal(s.email, 'edited@example.com');
    assert.equal(s.role, 'admin');
    assert.equal(s.status, 'inactive');
    assert.equal(s.avatar, 'https://example.com/a.png');
    assert.deepEqual(s.custom_data, { plan: 'pro', seats: 3 });

    // Not JSON, and JSON that is no object: refused before sending.
    const before = (await api.logs(u.id)).length;
    for (const bad of ['{"plan": ', '[1, 2]']) {
      await page.getByLabel('Custom data').fill(bad);
      await page.getByRole('button', { name: 'Save' }).click();
      await assertAlert(page, /Custom data/);
      assert.equal(await page.getByLabel('Custom data').getAttribute('aria-invalid'), 'true');
    }
    assert.equal((await api.logs(u.id)).length, before, 'nothing was sent');

    // The API's own rule and message, shown on the field and in the alert.
    await page.getByLabel('Custom data').fill('{}');
    await page.getByLabel('Email').fill('not-an-email');
    await page.getByRole('button', { name: 'Save' }).click();
    const r = await api.call('PATCH', '/v1/users/' + u.id, { email: 'not-an-email' });
    await assertAlert(page, new RegExp(r.body.error.message.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
    assert.equal(await page.getByLabel('Email').getAttribute('aria-invalid'), 'true');
    assert.equal((await api.get(u.id)).email, 'edited@example.com');
    assert.deepEqual(trouble.pageErrors, []);
    await context.close();
  });

  test('reset password, suspend and unsuspend, identities, activity paged, delete', async () => {
    const u = await api.create({ name: 'Actions', email: 'actions@example.com' });
    await api.call('PUT', `/v1/users/${u.id}/identities/github`, { user_id: 'gh-42', details: { login: 'octo' } });
    await api.call('PUT', `/v1/users/${u.id}/identities/google`, { user_id: 'g-7', details: {} });
    const { page, context } = await watchedPage(browser);
    await openUser(page, u.id);

    await page.getByRole('button', { name: 'Reset password' }).click();
    const dlg = page.getByRole('dialog', { name: 'New password' });
    const pw = await dlg.getByLabel('Generated password').textContent();
    assert.ok(pw.length >= 16);
    await waitActivity(page, 'user.password_changed');
    assert.equal(await api.verify(u.id, pw), true);
    await page.keyboard.press('Escape');
    await page.waitForFunction(() => !document.querySelector('dialog'));

    await page.getByRole('button', { name: 'Suspend' }).click();
    await page.getByRole('button', { name: 'Unsuspend' }).waitFor();
    assert.equal((await api.get(u.id)).status, 'suspended');
    await waitActivity(page, 'user.suspended');
    await page.getByRole('button', { name: 'Unsuspend' }).click();
    await page.getByRole('button', { name: 'Suspend' }).waitFor();
    assert.equal((await api.get(u.id)).status, 'active');
    await waitActivity(page, 'user.unsuspended');

    const ids = page.getByRole('region', { name: 'Identities' }).getByRole('listitem');
    assert.equal(await ids.count(), 2);
    const gh = ids.filter({ hasText: 'github' });
    assert.match(await gh.textContent(), /gh-42/);
    await gh.getByRole('button', { name: 'Remove' }).click();
    await page.waitForFunction(() => document.querySelectorAll('.identities li').length === 1);
    assert.deepEqual(Object.keys((await api.get(u.id)).identities), ['google']);
    await waitActivity(page, 'user.identity_removed');

    // Newest first, paged by 10: make it 14 events, then look at page 2.
    for (let i = 0; i < 5; i++) await api.call('PATCH', '/v1/users/' + u.id, { custom_data: { n: i } });
    await page.reload();
    await signInAgain(page);
    const all = (await api.logs(u.id)).map((e) => e.event);
    assert.ok(all.length > 10, String(all.length));
    assert.deepEqual(await activityEvents(page), all.slice(0, 10));
    const firstDetails = await page.getByRole('region', { name: 'Activity' }).locator('li').first().locator('pre').textContent();
    assert.match(firstDetails, /"fields"|"n"|custom_data/, 'details are readable');
    await page.getByRole('button', { name: 'Older events' }).click();
    await page.waitForFunction(() => document.querySelector('.activity-body .page-info')?.textContent.startsWith('Page 2'));
    assert.deepEqual(await activityEvents(page), all.slice(10, 20));
    await page.getByRole('button', { name: 'Newer events' }).click();
    await page.waitForFunction(() => document.querySelector('.activity-body .page-info')?.textContent.startsWith('Page 1'));

    // Delete asks first: Cancel keeps the user, Delete deletes.
    await page.getByRole('button', { name: 'Delete' }).click();
    const ask = page.getByRole('dialog', { name: 'Delete user' });
    await ask.getByRole('button', { name: 'Cancel' }).click();
    await page.waitForFunction(() => !document.querySelector('dialog'));
    assert.ok(await api.get(u.id));
    await page.getByRole('button', { name: 'Delete' }).click();
    await ask.getByRole('button', { name: 'Delete' }).click();
    await page.waitForFunction(() => location.hash === '#/users');
    assert.equal(await api.get(u.id), null);
    assert.equal((await api.logs(u.id))[0].event, 'user.deleted');
    await context.close();
  });

  test('a save after someone else changed the user is a plain 412 message with Reload', async () => {
    const u = await api.create({ name: 'Contended', email: 'contended@example.com' });
    const { page, context } = await watchedPage(browser);
    await openUser(page, u.id);
    await api.call('PATCH', '/v1/users/' + u.id, { name: 'Changed Elsewhere' });
    await page.getByLabel('Role').selectOption('viewer');
    await page.getByRole('button', { name: 'Save' }).click();
    await assertAlert(page, /Someone else changed this user/);
    const s = await api.get(u.id);
    assert.equal(s.role, 'user', 'the stale save was refused');
    await page.getByRole('alert').getByRole('button', { name: 'Reload' }).click();
    await page.getByRole('heading', { level: 1, name: 'Changed Elsewhere' }).waitFor();
    assert.equal(await page.getByRole('alert').count(), 0);
    await page.getByLabel('Role').selectOption('viewer');
    await page.getByRole('button', { name: 'Save' }).click();
    await waitActivity(page, 'user.updated');
    assert.equal((await api.get(u.id)).role, 'viewer');
    await context.close();
  });

  test('a deep link to no such user says so', async () => {
    const { page, context } = await watchedPage(browser);
    await page.goto(srv.base + '/console/#/users/usr_doesnotexist0000');
    await signInAgain(page);
    await assertAlert(page, /not found|no such/i);
    await page.getByText('No such user.').waitFor();
    await context.close();
  });
});

describe('hostile data', () => {
  test('HTML and script payloads are shown as text; no dialog, no CSP violation, no console error', async () => {
    const p = '<img src=x onerror=alert(1)>';
    const s = '"><script>alert(2)</script>';
    const email = '<svg/onload=alert(3)>@example.com';
    const u = await api.create({ name: p + s, email, custom_data: { html: p, js: 'javascript:alert(4)', [s]: s } });
    await api.call('PUT', `/v1/users/${u.id}/identities/github`, { user_id: p, details: { s } });
    const { page, context, trouble } = await watchedPage(browser);
    await signIn(page, srv.base);
    await page.getByRole('searchbox', { name: 'Search' }).fill('<img');
    const link = page.getByRole('link', { name: p + s });
    await link.waitFor();
    assert.equal(await link.textContent(), p + s);
    assert.equal(await page.getByRole('cell', { name: email }).textContent(), email);
    await link.click();
    await page.getByRole('heading', { level: 1, name: p + s }).waitFor();
    assert.equal(await page.getByLabel('Name').inputValue(), p + s);
    assert.deepEqual(JSON.parse(await page.getByLabel('Custom data').inputValue()), u.custom_data);
    const ident = page.getByRole('region', { name: 'Identities' }).getByRole('listitem');
    assert.match(await ident.textContent(), /github/);
    assert.match(await ident.textContent(), /alert\(2\)<\/script>/);
    assert.equal(await page.getByLabel('Email').inputValue(), email);
    assert.match(await ident.textContent(), /<img src=x onerror=alert\(1\)>/);
    await waitActivity(page, 'user.identity_linked');
    await page.waitForTimeout(300);
    const injected = await page.evaluate(() => ({
      img: document.querySelectorAll('img[src="x"], main script, main svg, main b, main i').length,
      scripts: [...document.scripts].map((x) => x.getAttribute('src')),
    }));
    assert.equal(injected.img, 0, 'no element from user data');
    assert.deepEqual(injected.scripts, ['app.js']);
    assert.deepEqual(trouble.dialogs, []);
    assert.deepEqual(await trouble.csp(), []);
    assert.deepEqual(trouble.consoleErrors, []);
    assert.deepEqual(trouble.pageErrors, []);
    await context.close();
  });
});

describe('keyboard, widths and colour schemes', () => {
  test('keyboard only: sign in, add a user, open it, Escape closes dialogs', async () => {
    const { page, context } = await watchedPage(browser);
    await page.goto(srv.base + '/console/');
    await page.getByLabel('API key').waitFor();
    await page.keyboard.type(KEY); // the key field has the focus
    await page.keyboard.press('Enter');
    await page.getByRole('columnheader', { name: 'Email' }).waitFor();
    const focusOn = async (name, max = 15) => {
      for (let i = 0; i < max; i++) {
        await page.keyboard.press('Tab');
        const t = await page.evaluate(() => document.activeElement.textContent.trim() || document.activeElement.getAttribute('aria-label') || document.activeElement.id);
        if (t === name) return;
      }
      throw new Error('Tab never reached ' + name);
    };
    await focusOn('Add user');
    await page.keyboard.press('Enter');
    const dlg = page.getByRole('dialog', { name: 'Add user' });
    await dlg.waitFor();
    await page.keyboard.type('Keyboard User');
    await page.keyboard.press('Tab');
    await page.keyboard.type('keyboard@example.com');
    await page.keyboard.press('Tab');
    await page.keyboard.press('ArrowDown'); // Role: user -> admin
    await page.keyboard.press('Tab');
    await page.keyboard.type('a password typed');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => !document.querySelector('dialog'));
    const u = (await api.call('GET', '/v1/users?email=keyboard@example.com')).body.data[0];
    assert.equal(u.name, 'Keyboard User');
    assert.equal(u.role, 'admin');
    assert.equal(await api.verify(u.id, 'a password typed'), true);
    await page.getByRole('link', { name: 'Keyboard User' }).waitFor();
    await page.getByRole('link', { name: 'Keyboard User' }).focus();
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { level: 1, name: 'Keyboard User' }).waitFor();
    await focusOn('Delete', 20);
    await page.keyboard.press('Enter');
    await page.getByRole('dialog', { name: 'Delete user' }).waitFor();
    await page.keyboard.press('Escape');
    await page.waitForFunction(() => !document.querySelector('dialog'));
    assert.ok(await api.get(u.id), 'Escape deleted nothing');
    await context.close();
  });

  for (const [w, hgt] of [[1280, 900], [390, 844]]) {
    test(`the list and a user's page fit ${w} px`, async () => {
      const { page, context } = await watchedPage(browser, { viewport: { width: w, height: hgt } });
      await signIn(page, srv.base);
      await page.getByRole('searchbox', { name: 'Search' }).fill('listing');
      await page.waitForFunction(() => document.querySelectorAll('tbody tr').length === 20);
      const fits = () => page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1);
      assert.ok(await fits(), 'no sideways scrolling of the page');
      for (const name of ['Add user', 'Next page']) assert.ok(await page.getByRole('button', { name }).isVisible(), name);
      await shot(page, w < 500 ? 'list-phone' : 'list');
      await page.getByRole('link', { name: 'Listing 24' }).click();
      await page.getByRole('heading', { level: 1, name: 'Listing 24' }).waitFor();
      assert.ok(await fits());
      assert.ok(await page.getByRole('button', { name: 'Save' }).isVisible());
      if (w < 500) await shot(page, 'user-page-phone');
      await context.close();
    });
  }

  test('dark and light follow the system setting', async () => {
    const bg = async (scheme) => {
      const { page, context } = await watchedPage(browser, { colorScheme: scheme });
      await signIn(page, srv.base);
      await page.getByRole('columnheader', { name: 'Email' }).waitFor();
      const c = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
      if (scheme === 'dark') await shot(page, 'list-dark');
      await context.close();
      const [r, g, b] = c.match(/\d+/g).map(Number);
      return (r + g + b) / 3;
    };
    assert.ok(await bg('light') > 200);
    assert.ok(await bg('dark') < 60);
  });
});

describe('read-only key', () => {
  test('a key that may not write gets a console without write controls', async (t) => {
    const ro = 'console-test-read-key';
    const s2 = await startServer(['--api-key', KEY, '--api-key', ro + ':read']).catch(() => null);
    if (!s2) return t.skip('this server has no scoped keys (--api-key KEY:read)');
    try {
      const api2 = client(s2.base, ro);
      if ((await api2.call('GET', '/v1/users')).status !== 200) return t.skip('this server has no scoped keys (--api-key KEY:read)');
      const u = await client(s2.base).create({ name: 'Read Only', email: 'ro@example.com' });
      assert.equal((await api2.call('PATCH', '/v1/users/' + u.id, { name: 'x' })).status, 403);
      const { page, context } = await watchedPage(browser);
      await signIn(page, s2.base, ro);
      await page.getByText('Read-only key').waitFor();
      await page.getByRole('link', { name: 'Read Only' }).waitFor();
      assert.equal(await page.getByRole('button', { name: 'Add user' }).count(), 0);
      await page.getByRole('link', { name: 'Read Only' }).click();
      await page.getByRole('heading', { level: 1, name: 'Read Only' }).waitFor();
      for (const name of ['Save', 'Reset password', 'Suspend', 'Delete']) {
        assert.equal(await page.getByRole('button', { name }).count(), 0, name);
      }
      assert.equal(await page.getByLabel('Name').getAttribute('readonly'), '');
      assert.equal((await client(s2.base).get(u.id)).name, 'Read Only');
      await context.close();
    } finally {
      await s2.stop();
    }
  });
});
