// helpers.js -- the real server on 127.0.0.1 port 0, an API client for
// asserting server state, and Debian's chromium through playwright-core.
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const SERVER = process.env.USERDB_SERVER || path.join(here, '../../build/userdb-server');
export const ARTIFACTS = process.env.USERDB_CONSOLE_ARTIFACTS ||
  path.join(process.env.USERDB_BIN_DIR || path.join(here, '../../build'), 'console-artifacts');
export const KEY = 'console-test-admin-key';

// Start userdb-server; resolves {base, rpcPort, stop, log} once it prints ready.
export function startServer(extra = []) {
  const args = ['--bind', '127.0.0.1', '--port', '0', '--http-port', '0', '--no-persist',
    '--argon2-mem', '8192', '--argon2-ops', '1', ...extra];
  if (!extra.includes('--api-key')) args.push('--api-key', KEY);
  const proc = spawn(SERVER, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { proc.kill('SIGKILL'); reject(new Error('server not ready in 20 s:\n' + log)); }, 20000);
    const onData = (d) => {
      log += d;
      const m = /ready rpc=\S+:(\d+) http=(\S+):(\d+)/.exec(log);
      if (m) {
        clearTimeout(timer);
        resolve({
          base: `http://127.0.0.1:${m[3]}`,
          rpcPort: Number(m[1]),
          log: () => log,
          stop: () => new Promise((res) => {
            if (proc.exitCode !== null) return res(proc.exitCode);
            proc.once('exit', (code) => res(code));
            proc.kill('SIGTERM');
          }),
        });
      }
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    proc.once('exit', (code) => { clearTimeout(timer); reject(new Error(`server exited ${code}:\n${log}`)); });
  });
}

// A tiny client of the HTTP API: {status, body, headers}.
export function client(base, key = KEY) {
  const call = async (method, p, body, headers = {}) => {
    const res = await fetch(base + p, {
      method,
      headers: { Authorization: 'Bearer ' + key, ...(body ? { 'Content-Type': 'application/json' } : {}), ...headers },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    let json = null;
    try { json = JSON.parse(text); } catch { /* not JSON */ }
    return { status: res.status, body: json, text, headers: res.headers };
  };
  return {
    call,
    async create(fields) {
      const r = await call('POST', '/v1/users', fields);
      if (r.status !== 201) throw new Error('create failed: ' + r.text);
      return r.body.data;
    },
    async get(id) {
      const r = await call('GET', '/v1/users/' + encodeURIComponent(id));
      return r.status === 200 ? r.body.data : null;
    },
    async verify(id, password) {
      const r = await call('POST', `/v1/users/${encodeURIComponent(id)}/password/verify`, { password });
      return r.body.data.valid;
    },
    async logs(id) {
      const r = await call('GET', '/v1/logs?limit=100&user_id=' + encodeURIComponent(id));
      return r.body.data;
    },
  };
}

export async function launch() {
  mkdirSync(ARTIFACTS, { recursive: true });
  const args = ['--disable-gpu', '--disable-dev-shm-usage'];
  if (process.getuid && process.getuid() === 0) args.push('--no-sandbox');
  return chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args, headless: true });
}

// A page that records what must never happen: dialogs (alert() from an
// injected script), CSP violations, console errors, uncaught exceptions.
export async function watchedPage(browser, opts = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, ...opts });
  await context.grantPermissions(['clipboard-read', 'clipboard-write']).catch(() => {});
  const page = await context.newPage();
  const trouble = { dialogs: [], consoleErrors: [], pageErrors: [], expectedFailures: [] };
  page.on('dialog', (d) => { trouble.dialogs.push(d.message()); d.dismiss().catch(() => {}); });
  page.on('pageerror', (e) => trouble.pageErrors.push(String(e)));
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const where = (m.location() && m.location().url) || '';
    // A failed API call the test provoked is logged by the browser as a
    // resource load failure; it is recorded apart, every other error counts.
    if (/Failed to load resource/.test(m.text()) && /\/v1\//.test(where)) trouble.expectedFailures.push(where);
    else trouble.consoleErrors.push(m.text() + ' @ ' + where);
  });
  await page.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__csp.push(e.violatedDirective + ' ' + e.blockedURI);
    });
  });
  trouble.csp = () => page.evaluate(() => window.__csp);
  return { context, page, trouble };
}

export async function signIn(page, base, key = KEY) {
  await page.goto(base + '/console/');
  await page.getByLabel('API key').fill(key);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

export function shot(page, name) {
  return page.screenshot({ path: path.join(ARTIFACTS, name + '.png'), fullPage: false });
}
