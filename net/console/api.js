// api.js -- the console's only door to the server: every fetch is here.
//
// The API key lives in this module's memory (and in sessionStorage only if
// the person asked to stay signed in for the tab); it is never put in a URL,
// a cookie or localStorage.  Every call sends it as a Bearer token.  A reply
// that is not success becomes an ApiError carrying the API's code, message
// and field, and the HTTP status.

const STORE = 'userdb-console-key';
let key = null;

export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field || null;
  }
}

export function savedKey() {
  try { return sessionStorage.getItem(STORE); } catch { return null; }
}

export function setKey(k, remember) {
  key = k;
  try {
    if (k && remember) sessionStorage.setItem(STORE, k);
    else sessionStorage.removeItem(STORE);
  } catch { /* storage may be disabled: memory is enough */ }
}

export function hasKey() {
  return key !== null;
}

async function call(method, path, { body, etag, signal } = {}) {
  const headers = { Authorization: 'Bearer ' + key, Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (etag) headers['If-Match'] = etag;
  let res;
  try {
    res = await fetch(path, {
      method, headers, signal, cache: 'no-store', credentials: 'omit',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', 'The server could not be reached: ' + e.message);
  }
  let json = null;
  try { json = await res.json(); } catch { /* not JSON */ }
  if (!res.ok || !json || json.success === false) {
    const err = (json && json.error) || {};
    throw new ApiError(res.status, err.code || 'http_' + res.status,
      err.message || 'The server answered ' + res.status + ' ' + res.statusText, err.field);
  }
  return { json, etag: res.headers.get('ETag') };
}

const enc = encodeURIComponent;
const userPath = (id) => '/v1/users/' + enc(id);

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== '' && v != null) q.set(k, v);
  return q.toString();
}

// {data: [user], pagination: {page, limit, total, pages}}
export async function listUsers(params, signal) {
  const { json } = await call('GET', '/v1/users?' + query(params), { signal });
  return json;
}

// {user, etag}
export async function getUser(id) {
  const { json, etag } = await call('GET', userPath(id));
  return { user: json.data, etag };
}

export async function createUser(fields) {
  const { json, etag } = await call('POST', '/v1/users', { body: fields });
  return { user: json.data, etag };
}

// A 412 (someone else changed the user) is an ApiError with status 412.
export async function updateUser(id, fields, etag) {
  const r = await call('PATCH', userPath(id), { body: fields, etag });
  return { user: r.json.data, etag: r.etag };
}

export async function deleteUser(id, etag) {
  await call('DELETE', userPath(id), { etag });
}

export async function setPassword(id, password) {
  const r = await call('PATCH', userPath(id) + '/password', { body: { password } });
  return { user: r.json.data, etag: r.etag };
}

export async function setSuspended(id, suspended) {
  const r = await call('PATCH', userPath(id) + '/is-suspended', { body: { is_suspended: suspended } });
  return { user: r.json.data, etag: r.etag };
}

export async function unlinkIdentity(id, target) {
  const r = await call('DELETE', userPath(id) + '/identities/' + enc(target));
  return { user: r.json.data, etag: r.etag };
}

// {data: [event], pagination}
export async function listLogs(userId, page, limit) {
  const { json } = await call('GET', '/v1/logs?' + query({ user_id: userId, page, limit }));
  return json;
}

// Check the key: resolves, or throws the API's 401.
export async function checkKey() {
  await call('GET', '/v1/users?limit=1');
}

// May this key write?  A PATCH of an id that no server makes (the '-'
// cannot appear in a generated id), guarded by a weak If-Match that never
// matches, changes nothing for anyone: an admin key gets 404 (or 412 if an
// import ever used that id), a read-only key 403 forbidden.
export async function canWrite() {
  try {
    await call('PATCH', userPath('usr_-console-probe-'), { body: { name: 'probe' }, etag: 'W/"probe"' });
    return true;
  } catch (e) {
    return !(e instanceof ApiError && e.status === 403);
  }
}
