// bench.js -- the console at scale (a benchmark: it reports, it asserts
// nothing; not part of ctest).
//
//   node tests/console/bench.js [USERS]        (default 1000000)
//
// Starts userdb-server --no-persist on loopback, loads USERS users with
// userdb-bench's pipelined RPC loader, then in chromium measures (1) from
// navigation (a reload with the key kept for the tab) to the first list
// painted, and (2) from the last keystroke in Search to the results painted,
// each as the median of several runs.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { KEY, launch, startServer, watchedPage } from './helpers.js';

const users = Number(process.argv[2] || 1000000);
const bin = path.dirname(process.env.USERDB_SERVER || path.resolve('build/userdb-server'));
const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

const srv = await startServer();
const t0 = Date.now();
const load = spawnSync(path.join(bin, 'userdb-bench'), ['--proto', 'userdb', '--port', String(srv.rpcPort),
  '--api-key', KEY, '--op', 'load', '--users', String(users), '--conns', '4', '--pipeline', '64'], { encoding: 'utf8' });
if (load.status !== 0) throw new Error('load failed: ' + load.stderr);
console.log(`loaded ${users} users in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

const browser = await launch();
const { page, context } = await watchedPage(browser);
await page.addInitScript(() => {
  window.__painted = [];
  window.__typed = 0;
  document.addEventListener('userdb:list-painted', () =>
    requestAnimationFrame(() => window.__painted.push(performance.now())));
  document.addEventListener('input', () => { window.__typed = performance.now(); }, true);
});
await page.goto(srv.base + '/console/');
await page.getByLabel('API key').fill(KEY);
await page.getByLabel('Stay signed in in this tab').check();
await page.getByRole('button', { name: 'Sign in' }).click();
await page.getByText(`${users} users`).waitFor({ timeout: 60000 });

const nav = [];
for (let i = 0; i < 7; i++) {
  await page.reload();
  await page.waitForFunction(() => window.__painted.length > 0, null, { timeout: 60000 });
  nav.push(await page.evaluate(() => window.__painted[0]));
}
const search = [];
const words = ['name 12345', 'user77@', 'name 999999', 'nobody-at-all', 'user5000@example', 'name 31', 'User Name 4242'];
for (const w of words) {
  const box = page.getByRole('searchbox', { name: 'Search' });
  await box.fill('');
  await page.waitForFunction(() => document.querySelector('table').getAttribute('aria-busy') === 'false');
  const n = await page.evaluate(() => window.__painted.length);
  await box.pressSequentially(w, { delay: 30 });
  await page.waitForFunction((k) => window.__painted.length > k &&
    document.querySelector('table').getAttribute('aria-busy') === 'false' &&
    location.hash.includes('search='), n, { timeout: 60000 });
  await page.waitForTimeout(200); // a late, cancelled request would paint after
  search.push(await page.evaluate(() => window.__painted[window.__painted.length - 1] - window.__typed));
}
console.log(JSON.stringify({
  users,
  navigation_to_first_list_ms: { median: Math.round(median(nav)), runs: nav.map(Math.round) },
  last_keystroke_to_results_ms: { median: Math.round(median(search)), runs: search.map(Math.round), words },
}, null, 1));
await context.close();
await browser.close();
await srv.stop();
