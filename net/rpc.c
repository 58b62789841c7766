/*
 * rpc.c -- MessagePack-RPC framing, dispatch and methods; see rpc.h.
 */
#include "rpc.h"

#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "backoff.h"
#include "changes.h"
#include "codec.h"
#include "valid.h"
#include "mpframe.h"
#include "persist.h"
#include "pwjob.h"

#define RPC_ASYNC    1		 /* handler replies later */
#define RPC_READ_MAX (64u << 10) /* bytes moved from the socket per step */

struct rpc_conn {
	struct ud_buf in; /* unread bytes; frames start at in_off */
	size_t in_off;
	struct mpframe fr;
	msgpack_zone *zone;
	struct ud_buf res; /* result of the call being answered */
	struct ud_buf tmp; /* re-packed params */
	uint64_t now_ns;   /* clock at the end of the last call (frames_run) */
};

struct rpc_call {
	struct conn *c;
	struct rpc_conn *rc;
	uint64_t msgid;
	bool notify;
	enum metric_route route;
	uint64_t start_ns;
	const msgpack_object *argv;
	uint32_t argc;
	msgpack_packer pk; /* writes into rc->res */
	struct ud_error err;
};

struct rpc_method {
	const char *name;
	enum metric_route route;
	int (*fn)(struct rpc_call *call);
	bool write; /* mutates: reply waits for the log */
	bool noauth;
	enum key_scope scope; /* what the key must allow (default admin) */
};

static void rpc_pwjob_finish(struct pwjob *j);

/* ---- replies ---------------------------------------------------------- */

static int evbuffer_write_cb(void *data, const char *buf, size_t len)
{
	return evbuffer_add(data, buf, len);
}

static void pack_str(msgpack_packer *pk, const char *s)
{
	size_t n = strlen(s);
	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
}

static void pack_error(msgpack_packer *pk, const struct ud_error *err)
{
	msgpack_pack_map(pk, err->field ? 3 : 2);
	pack_str(pk, "code");
	pack_str(pk, ud_code_name(err->code));
	pack_str(pk, "message");
	pack_str(pk, err->message[0] ? err->message : ud_code_name(err->code));
	if (err->field) {
		pack_str(pk, "field");
		pack_str(pk, err->field);
	}
}

/* The head of a successful reply, [1, msgid, nil, (at most 12 bytes),
 * packed on the stack so it is one evbuffer_add rather than four. */
struct reply_head {
	size_t n;
	char b[16];
};

static int reply_head_write_cb(void *data, const char *buf, size_t len)
{
	struct reply_head *h = data;
	memcpy(h->b + h->n, buf, len);
	h->n += len;
	return 0;
}

/* Append [1, msgid, err, nil] to out. */
static void pack_error_reply(struct evbuffer *out, uint64_t msgid,
			     const struct ud_error *err)
{
	msgpack_packer pk;
	msgpack_packer_init(&pk, out, evbuffer_write_cb);
	msgpack_pack_array(&pk, 4);
	msgpack_pack_uint8(&pk, 1);
	msgpack_pack_uint64(&pk, msgid);
	pack_error(&pk, err);
	msgpack_pack_nil(&pk);
}

/* Queue [1, msgid, error|nil, result|nil].  rc != 0 sends err. */
static void rpc_reply(struct conn *c, uint64_t msgid, int rc,
		      const struct ud_error *err, const struct ud_buf *res,
		      bool write)
{
	msgpack_packer pk;
	struct evbuffer *out = conn_reply_begin(c);
	c->reply_tag = msgid;
	if (rc) {
		pack_error_reply(out, msgid, err);
	} else {
		struct reply_head h = {0};
		msgpack_packer_init(&pk, &h, reply_head_write_cb);
		msgpack_pack_array(&pk, 4);
		msgpack_pack_uint8(&pk, 1);
		msgpack_pack_uint64(&pk, msgid);
		msgpack_pack_nil(&pk);
		evbuffer_add(out, h.b, h.n);
		evbuffer_add(out, res->data, res->len);
	}
	conn_reply_end(c, write);
}

/* conn_proto.refused: the error reply of call tag (its msgid). */
static void rpc_refused(struct conn *c, uint64_t tag,
			const struct ud_error *err, struct evbuffer *out)
{
	(void)c;
	pack_error_reply(out, tag, err);
}

static void rpc_error_reply(struct conn *c, uint64_t msgid, int code,
			    const char *field, const char *msg)
{
	struct ud_error err;
	ud_error_set(&err, code, field, "%s", msg);
	rpc_reply(c, msgid, code, &err, NULL, false);
}

/* Finish a call: count it, answer unless it was a notification.  The
 * clock read here also starts the next call of the same run (frames_run):
 * one clock_gettime per request instead of two.
 *
 * Profile (issue 14): `perf record -g` of a --no-persist server with 100k
 * users under `userdb-bench --op get_by_id --pipeline 16` (50 connections)
 * showed 4.3% of the server's CPU in __vdso_clock_gettime (two readings
 * per request) and 1.5% in evbuffer_add (five per reply: the reply head
 * went through msgpack-c's packer field by field).  Now one reading and
 * two evbuffer_adds (struct reply_head).  User-space instructions per
 * request, callgrind, 20k users, 16 connections (deterministic, unlike
 * CPU time on the shared busy VM): get_by_id P=16 2790 -> 2485, P=1
 * 4770 -> 4495; list_first P=16 24.3k either way (the 20 user maps).
 * The rest at P=16 is the kernel (45%: the loopback send of each writev,
 * which also runs the receiver's side) and the hash probe's cache miss
 * (id_eq/table_find ~23%, after the prefetch of each read's run of gets);
 * at P=1 the kernel is 88% with exactly one read(2) and one writev(2)
 * per request (strace -c). */
static void call_finish(struct rpc_call *call, int rc, bool write)
{
	struct server *srv = call->c->srv;
	uint64_t now = metrics_now_ns();
	metrics_observe_at(&srv->metrics, call->route, rc != 0, call->start_ns,
			   now);
	call->rc->now_ns = now;
	if (!call->notify)
		rpc_reply(call->c, call->msgid, rc, &call->err, &call->rc->res,
			  write);
}

/* ---- argument helpers -----------------------------------------------------
 */

static int arg_count(struct rpc_call *call, uint32_t min, uint32_t max)
{
	if (call->argc < min || call->argc > max)
		return ud_error_set(&call->err, UD_EINVAL, "params",
				    "expected %u to %u params, got %u", min,
				    max, call->argc);
	return 0;
}

static int arg_str(struct rpc_call *call, uint32_t i, const char *field,
		   const char **s, size_t *n)
{
	const msgpack_object *o = &call->argv[i];
	*s = NULL;
	*n = 0;
	if (o->type != MSGPACK_OBJECT_STR)
		return ud_error_set(&call->err, UD_EINVAL, field,
				    "%s must be a string", field);
	*s = o->via.str.ptr;
	*n = o->via.str.size;
	return 0;
}

/* Re-pack one decoded object into rc->tmp (raw msgpack for the parsers). */
static const struct ud_buf *repack(struct rpc_call *call,
				   const msgpack_object *o)
{
	msgpack_packer pk;
	call->rc->tmp.len = 0;
	msgpack_packer_init(&pk, &call->rc->tmp, codec_buf_write_cb);
	if (msgpack_pack_object(&pk, *o))
		return NULL;
	return &call->rc->tmp;
}

static int result_user(struct rpc_call *call, const ud_user *u)
{
	return ud_user_write_msgpack(u, &call->rc->res);
}

static int not_found(struct rpc_call *call, const char *what)
{
	return ud_error_set(&call->err, UD_ENOTFOUND, NULL, "no such %s", what);
}

/* Optional {"if_match": etag} at argv[i]; *etag = 0 when absent. */
static int arg_if_match(struct rpc_call *call, uint32_t i, uint64_t *etag)
{
	*etag = 0;
	if (call->argc <= i || call->argv[i].type == MSGPACK_OBJECT_NIL)
		return 0;
	const msgpack_object *o = &call->argv[i];
	if (o->type != MSGPACK_OBJECT_MAP)
		return ud_error_set(&call->err, UD_EINVAL, "options",
				    "options must be a map");
	for (uint32_t k = 0; k < o->via.map.size; k++) {
		const msgpack_object *key = &o->via.map.ptr[k].key,
				     *val = &o->via.map.ptr[k].val;
		if (key->type != MSGPACK_OBJECT_STR || key->via.str.size != 8 ||
		    memcmp(key->via.str.ptr, "if_match", 8))
			return ud_error_set(&call->err, UD_EINVAL, "options",
					    "unknown option");
		if (val->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
			*etag = val->via.u64;
			continue;
		}
		char hex[17] = {0};
		const char *s = val->via.str.ptr;
		size_t n =
		    val->type == MSGPACK_OBJECT_STR ? val->via.str.size : 0;
		if (n >= 2 && s[0] == '"' && s[n - 1] == '"')
			s++, n -= 2;
		char *end;
		memcpy(hex, s, n < 16 ? n : 16);
		*etag = n > 0 && n <= 16 ? strtoull(hex, &end, 16) : 0;
		if (n == 0 || n > 16 || *end || *etag == 0)
			*etag = UINT64_MAX; /* matches nothing */
	}
	return 0;
}

/* ---- methods ----------------------------------------------------------------
 */

static int m_auth(struct rpc_call *call)
{
	const char *key;
	size_t n;
	int rc = arg_count(call, 1, 1);
	if (rc || (rc = arg_str(call, 0, "api_key", &key, &n)))
		return rc;
	uint8_t h[32];
	int i = keyset_find(&call->c->srv->keys, key, n, h);
	if (i < 0) {
		call->c->authed = false;
		return ud_error_set(&call->err, UD_EUNAUTHORIZED, NULL,
				    "wrong api key");
	}
	conn_key_set(call->c, (unsigned)i, h);
	return msgpack_pack_true(&call->pk);
}

static int m_ping(struct rpc_call *call)
{
	msgpack_pack_str(&call->pk, 4);
	return msgpack_pack_str_body(&call->pk, "pong", 4);
}

static int m_get(struct rpc_call *call)
{
	const char *id;
	size_t n;
	int rc = arg_count(call, 1, 1);
	if (rc || (rc = arg_str(call, 0, "id", &id, &n)))
		return rc;
	const ud_user *u = ud_user_get(call->c->srv->db, id, n);
	return u ? result_user(call, u) : not_found(call, "user");
}

static int m_get_by_email(struct rpc_call *call)
{
	const char *email;
	size_t n;
	int rc = arg_count(call, 1, 1);
	if (rc || (rc = arg_str(call, 0, "email", &email, &n)))
		return rc;
	const ud_user *u = ud_user_get_by_email(call->c->srv->db, email, n);
	return u ? result_user(call, u) : not_found(call, "user");
}

static int m_get_many(struct rpc_call *call)
{
	int rc = arg_count(call, 1, 1);
	if (rc)
		return rc;
	const msgpack_object *a = &call->argv[0];
	if (a->type != MSGPACK_OBJECT_ARRAY)
		return ud_error_set(&call->err, UD_EINVAL, "ids",
				    "ids must be an array of strings");
	if (a->via.array.size > UD_GET_MANY_MAX)
		return ud_error_set(&call->err, UD_EINVAL, "ids",
				    "at most %d ids", UD_GET_MANY_MAX);
	for (uint32_t i = 0; i < a->via.array.size; i++)
		if (a->via.array.ptr[i].type != MSGPACK_OBJECT_STR)
			return ud_error_set(&call->err, UD_EINVAL, "ids",
					    "ids must be strings");
	msgpack_pack_array(&call->pk, a->via.array.size);
	for (uint32_t i = 0; i < a->via.array.size && !rc; i++) {
		const msgpack_object_str *s = &a->via.array.ptr[i].via.str;
		const ud_user *u =
		    ud_user_get(call->c->srv->db, s->ptr, s->size);
		rc = u ? result_user(call, u) : msgpack_pack_nil(&call->pk);
	}
	return rc;
}

/* Hand password work to the pool; the reply comes from rpc_pwjob_finish. */
static int start_job(struct rpc_call *call, enum pwjob_kind kind,
		     const char *id, size_t id_len, const char *pw,
		     size_t pw_len, const struct ud_buf *body, const char *hash)
{
	struct pwjob *j =
	    pwjob_new(call->c->srv, call->c, kind, id, id_len, pw, pw_len,
		      body ? body->data : NULL, body ? body->len : 0);
	if (!j)
		return ud_error_set(&call->err, UD_ENOMEM, NULL,
				    "out of memory");
	if (hash)
		strcpy(j->hash, hash);
	j->msgid = call->msgid;
	j->notify = call->notify;
	j->route = call->route;
	j->start_ns = call->start_ns;
	j->finish = rpc_pwjob_finish;
	pwjob_submit(j);
	return RPC_ASYNC;
}

static int m_create(struct rpc_call *call)
{
	struct ud_arena arena = {0};
	struct ud_fields f;
	const ud_user *u;
	int rc = arg_count(call, 1, 1);
	const struct ud_buf *raw = rc ? NULL : repack(call, &call->argv[0]);
	if (rc || !raw)
		return rc ? rc : UD_ENOMEM;
	rc = ud_fields_from_msgpack(raw->data, raw->len, true, &f, &arena,
				    &call->err);
	if (rc == 0 && (f.set & UD_F_PASSWORD)) {
		rc = ud_fields_validate(&f, true, &call->err);
		if (rc == 0)
			rc = start_job(call, PWJOB_CREATE, NULL, 0, f.password,
				       f.password_len, raw, NULL);
	} else if (rc == 0) {
		rc = ud_user_create(call->c->srv->db, &f, &u, &call->err);
		rc = rc ? rc : result_user(call, u);
	}
	ud_arena_free(&arena);
	return rc;
}

static int m_update(struct rpc_call *call)
{
	struct ud_arena arena = {0};
	struct ud_fields f;
	const ud_user *u;
	const char *id;
	size_t n;
	uint64_t etag;
	int rc = arg_count(call, 2, 3);
	if (rc || (rc = arg_str(call, 0, "id", &id, &n)) ||
	    (rc = arg_if_match(call, 2, &etag)))
		return rc;
	const struct ud_buf *raw = repack(call, &call->argv[1]);
	if (!raw)
		return UD_ENOMEM;
	rc = ud_fields_from_msgpack(raw->data, raw->len, false, &f, &arena,
				    &call->err);
	if (rc == 0)
		rc = ud_user_update(call->c->srv->db, id, n, &f, etag, &u,
				    &call->err);
	rc = rc ? rc : result_user(call, u);
	ud_arena_free(&arena);
	return rc;
}

static int m_delete(struct rpc_call *call)
{
	const char *id;
	size_t n;
	uint64_t etag;
	int rc = arg_count(call, 1, 2);
	if (rc || (rc = arg_str(call, 0, "id", &id, &n)) ||
	    (rc = arg_if_match(call, 1, &etag)) ||
	    (rc = ud_user_delete(call->c->srv->db, id, n, etag, &call->err)))
		return rc;
	backoff_forget(call->c->srv->backoff, id, n);
	return msgpack_pack_true(&call->pk);
}

static void pack_pagination(msgpack_packer *pk, unsigned page, unsigned limit,
			    uint64_t total, uint64_t pages)
{
	pack_str(pk, "pagination");
	msgpack_pack_map(pk, 4);
	pack_str(pk, "page");
	msgpack_pack_unsigned_int(pk, page);
	pack_str(pk, "limit");
	msgpack_pack_unsigned_int(pk, limit);
	pack_str(pk, "total");
	msgpack_pack_uint64(pk, total);
	pack_str(pk, "pages");
	msgpack_pack_uint64(pk, pages);
}

/* A page is answered from srv->pages while the store is unchanged
 * (pagecache.h), keyed by the query's bytes ("\xc0" for none). */
static int m_list(struct rpc_call *call)
{
	struct server *srv = call->c->srv;
	uint64_t gen = ud_generation(srv->db);
	const struct ud_buf *raw = NULL, *hit;
	struct ud_query q;
	struct ud_page *page;
	int rc = arg_count(call, 0, 1);
	ud_query_init(&q);
	if (rc == 0 && call->argc == 1 &&
	    call->argv[0].type != MSGPACK_OBJECT_NIL) {
		raw = repack(call, &call->argv[0]);
		if (!raw)
			return UD_ENOMEM;
	}
	const char *key = raw ? raw->data : "\xc0";
	size_t key_len = raw ? raw->len : 1;
	if (rc == 0 && (hit = pagecache_get(&srv->pages, gen, key, key_len)))
		return ud_buf_append(&call->rc->res, hit->data, hit->len)
			   ? UD_ENOMEM
			   : 0;
	if (rc == 0 && raw)
		rc = ud_query_from_msgpack(&q, raw->data, raw->len, &call->err);
	if (rc)
		return rc;
	page = malloc(sizeof(*page));
	if (!page)
		return UD_ENOMEM;
	rc = ud_user_list(call->c->srv->db, &q, page, &call->err);
	if (rc == 0) {
		msgpack_pack_map(&call->pk, 2);
		pack_str(&call->pk, "data");
		msgpack_pack_array(&call->pk, page->count);
		for (unsigned i = 0; i < page->count && !rc; i++)
			rc = result_user(call, page->items[i]);
		pack_pagination(&call->pk, page->page, page->limit, page->total,
				page->pages);
	}
	free(page);
	if (rc == 0)
		pagecache_put(&srv->pages, gen, key, key_len,
			      call->rc->res.data, call->rc->res.len);
	return rc;
}

static int m_set_password(struct rpc_call *call)
{
	const char *id, *pw;
	size_t n, pn;
	int rc = arg_count(call, 2, 2);
	if (rc || (rc = arg_str(call, 0, "id", &id, &n)) ||
	    (rc = arg_str(call, 1, "password", &pw, &pn)))
		return rc;
	if (!ud_user_get(call->c->srv->db, id, n))
		return not_found(call, "user");
	if ((rc = valid_password(pn, &call->err)))
		return rc;
	return start_job(call, PWJOB_SET, id, n, pw, pn, NULL, NULL);
}

static int m_verify_password(struct rpc_call *call)
{
	const char *id, *pw;
	size_t n, pn;
	char hash[UD_PWHASH_MAX];
	int rc = arg_count(call, 2, 2);
	if (rc || (rc = arg_str(call, 0, "id", &id, &n)) ||
	    (rc = arg_str(call, 1, "password", &pw, &pn)))
		return rc;
	if (ud_user_password_hash_copy(call->c->srv->db, id, n, hash))
		return not_found(call, "user");
	return start_job(call, PWJOB_VERIFY, id, n, pw, pn, NULL, hash);
}

static int m_set_suspended(struct rpc_call *call)
{
	const char *id;
	size_t n;
	const ud_user *u;
	int rc = arg_count(call, 2, 2);
	if (rc || (rc = arg_str(call, 0, "id", &id, &n)))
		return rc;
	if (call->argv[1].type != MSGPACK_OBJECT_BOOLEAN)
		return ud_error_set(&call->err, UD_EINVAL, "is_suspended",
				    "is_suspended must be a boolean");
	rc = ud_user_set_suspended(call->c->srv->db, id, n,
				   call->argv[1].via.boolean, &u, &call->err);
	return rc ? rc : result_user(call, u);
}

/* {"user_id": str, "details": map?} -> ext id and raw details in tmp. */
static int identity_arg(struct rpc_call *call, const msgpack_object *o,
			const char **uid, size_t *un,
			const struct ud_buf **details)
{
	*uid = NULL;
	*un = 0;
	*details = NULL;
	if (o->type != MSGPACK_OBJECT_MAP)
		return ud_error_set(&call->err, UD_EINVAL, "identity",
				    "identity must be a map");
	for (uint32_t k = 0; k < o->via.map.size; k++) {
		const msgpack_object *key = &o->via.map.ptr[k].key,
				     *val = &o->via.map.ptr[k].val;
		const msgpack_object_str *ks = &key->via.str;
		if (key->type == MSGPACK_OBJECT_STR && ks->size == 7 &&
		    !memcmp(ks->ptr, "user_id", 7) &&
		    val->type == MSGPACK_OBJECT_STR) {
			*uid = val->via.str.ptr;
			*un = val->via.str.size;
		} else if (key->type == MSGPACK_OBJECT_STR && ks->size == 7 &&
			   !memcmp(ks->ptr, "details", 7) &&
			   (val->type == MSGPACK_OBJECT_MAP ||
			    val->type == MSGPACK_OBJECT_NIL)) {
			if (val->type == MSGPACK_OBJECT_MAP &&
			    !(*details = repack(call, val)))
				return UD_ENOMEM;
		} else {
			return ud_error_set(&call->err, UD_EINVAL, "identity",
					    "identity takes user_id (string) "
					    "and details (map)");
		}
	}
	if (!*uid)
		return ud_error_set(&call->err, UD_EINVAL, "user_id",
				    "user_id is required");
	return 0;
}

static int m_link_identity(struct rpc_call *call)
{
	const char *id, *target, *uid;
	size_t n, tn, un;
	const struct ud_buf *det;
	const ud_user *u;
	int rc = arg_count(call, 3, 3);
	if (rc || (rc = arg_str(call, 0, "id", &id, &n)) ||
	    (rc = arg_str(call, 1, "target", &target, &tn)) ||
	    (rc = identity_arg(call, &call->argv[2], &uid, &un, &det)))
		return rc;
	rc = ud_user_link_identity(call->c->srv->db, id, n, target, tn, uid, un,
				   det ? det->data : NULL, det ? det->len : 0,
				   &u, &call->err);
	return rc ? rc : result_user(call, u);
}

static int m_unlink_identity(struct rpc_call *call)
{
	const char *id, *target;
	size_t n, tn;
	const ud_user *u;
	int rc = arg_count(call, 2, 2);
	if (rc || (rc = arg_str(call, 0, "id", &id, &n)) ||
	    (rc = arg_str(call, 1, "target", &target, &tn)))
		return rc;
	rc = ud_user_unlink_identity(call->c->srv->db, id, n, target, tn, &u,
				     &call->err);
	return rc ? rc : result_user(call, u);
}

/* log.list [{"user_id", "page", "limit"}]: page/limit ints or strings. */
static int log_query(struct rpc_call *call, const char **uid, size_t *un,
		     unsigned *page, unsigned *limit)
{
	const msgpack_object *o = &call->argv[0];
	*uid = NULL;
	*page = 1;
	*limit = 20;
	if (o->type != MSGPACK_OBJECT_MAP)
		return ud_error_set(&call->err, UD_EINVAL, "query",
				    "query must be a map");
	for (uint32_t k = 0; k < o->via.map.size; k++) {
		const msgpack_object *key = &o->via.map.ptr[k].key,
				     *val = &o->via.map.ptr[k].val;
		const char *kn = key->via.str.ptr;
		size_t kl =
		    key->type == MSGPACK_OBJECT_STR ? key->via.str.size : 0;
		if (kl == 7 && !memcmp(kn, "user_id", 7) &&
		    val->type == MSGPACK_OBJECT_STR) {
			*uid = val->via.str.ptr;
			*un = val->via.str.size;
			continue;
		}
		bool is_page = kl == 4 && !memcmp(kn, "page", 4);
		bool is_limit = kl == 5 && !memcmp(kn, "limit", 5);
		uint64_t v = 0;
		if ((is_page || is_limit) &&
		    val->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
			v = val->via.u64;
		else if ((is_page || is_limit) &&
			 val->type == MSGPACK_OBJECT_STR &&
			 val->via.str.size > 0 && val->via.str.size < 10) {
			for (uint32_t i = 0; i < val->via.str.size; i++) {
				char d = val->via.str.ptr[i];
				v = d >= '0' && d <= '9'
					? v * 10 + (unsigned)(d - '0')
					: 0;
				if (!v && d != '0')
					break;
			}
		}
		if (is_page && v >= 1 && v <= 1000000000)
			*page = (unsigned)v;
		else if (is_limit && v >= 1 && v <= UD_LIMIT_MAX)
			*limit = (unsigned)v;
		else
			return ud_error_set(&call->err, UD_EINVAL,
					    is_page    ? "page"
					    : is_limit ? "limit"
						       : "query",
					    is_page || is_limit
						? "out of range"
						: "unknown query key");
	}
	if (!*uid)
		return ud_error_set(&call->err, UD_EINVAL, "user_id",
				    "user_id is required");
	return 0;
}

static int m_log_list(struct rpc_call *call)
{
	const char *uid;
	size_t un = 0;
	unsigned page, limit;
	int rc = arg_count(call, 1, 1);
	if (rc || (rc = log_query(call, &uid, &un, &page, &limit)))
		return rc;
	struct ud_log_page *lp = malloc(sizeof(*lp));
	if (!lp)
		return UD_ENOMEM;
	rc =
	    ud_log_list(call->c->srv->db, uid, un, page, limit, lp, &call->err);
	if (rc == 0) {
		msgpack_pack_map(&call->pk, 2);
		pack_str(&call->pk, "data");
		msgpack_pack_array(&call->pk, lp->count);
		for (unsigned i = 0; i < lp->count && !rc; i++)
			rc =
			    ud_log_write_msgpack(&lp->items[i], &call->rc->res);
		pack_pagination(&call->pk, lp->page, lp->limit, lp->total,
				lp->pages);
	}
	free(lp);
	return rc;
}

static void pack_kv(msgpack_packer *pk, const char *k, uint64_t v)
{
	pack_str(pk, k);
	msgpack_pack_uint64(pk, v);
}

static int m_stats(struct rpc_call *call)
{
	struct server *srv = call->c->srv;
	struct ud_stats st;
	msgpack_packer *pk = &call->pk;
	uint64_t reqs = 0;
	ud_stats(srv->db, &st);
	for (int r = 0; r < MR__COUNT; r++)
		reqs += srv->metrics.requests[r];
	msgpack_pack_map(pk, 18);
	pack_kv(pk, "users", st.users);
	pack_kv(pk, "record_bytes", st.record_bytes);
	pack_kv(pk, "log_events", st.log_events);
	pack_kv(pk, "evictions", st.evictions);
	pack_kv(pk, "failed_verifies", st.failed_verifies);
	pack_kv(pk, "log_bytes", st.log_bytes);
	pack_kv(pk, "log_records", st.log_records);
	pack_kv(pk, "log_seq", st.log_seq);
	pack_kv(pk, "snapshots", st.snapshots);
	pack_kv(pk, "snapshot_failures", st.snapshot_failures);
	pack_str(pk, "last_snapshot_ms");
	msgpack_pack_int64(pk, st.last_snapshot_ms);
	pack_str(pk, "snapshot_running");
	st.snapshot_running ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
	pack_str(pk, "unavailable");
	st.unavailable ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
	pack_str(pk, "persist");
	srv->cfg.no_persist ? msgpack_pack_false(pk) : msgpack_pack_true(pk);
	pack_kv(pk, "connections", srv->metrics.connections_open);
	pack_kv(pk, "connections_total", srv->metrics.connections_total);
	pack_kv(pk, "requests", reqs);
	pack_kv(pk, "password_jobs", pool_inflight(srv->pool));
	return 0;
}

static void snapshot_done_cb(struct conn *c, uint64_t msgid, int rc)
{
	struct ud_error err;
	struct ud_buf res = {0};
	const char *why = persist_snapshot_error(c->srv->db);
	ud_error_set(&err, rc ? rc : 0, NULL, "snapshot failed%s%s",
		     *why ? ": " : "", why);
	ud_buf_append(&res, "\xc3", 1);
	if (!c->closed)
		rpc_reply(c, msgid, rc, &err, &res, false);
	ud_buf_free(&res);
}

static int m_snapshot(struct rpc_call *call)
{
	int rc = arg_count(call, 0, 0);
	if (rc)
		return rc;
	if (call->notify)
		return ud_snapshot_start(call->c->srv->db, &call->err);
	rc = server_snapshot_wait(call->c->srv, call->c, call->msgid,
				  snapshot_done_cb, &call->err);
	if (rc == 0) /* counted now; the reply follows */
		metrics_observe(&call->c->srv->metrics, call->route, false,
				call->start_ns);
	return rc ? rc : RPC_ASYNC;
}

/* changes.watch [since | nil]: {"seq": last}, then notifications. */
static int m_watch(struct rpc_call *call)
{
	const msgpack_object *o = call->argc ? &call->argv[0] : NULL;
	bool has = o && o->type != MSGPACK_OBJECT_NIL;
	uint64_t last;
	int rc = arg_count(call, 0, 1);
	if (rc)
		return rc;
	if (has && o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return ud_error_set(&call->err, UD_EINVAL, "since",
				    "since must be a change seq or nil");
	rc = changes_watch(call->c->srv->changes, call->c, CHANGES_RPC, has,
			   has ? o->via.u64 : 0, NULL, 0, &last, &call->err);
	if (rc)
		return rc;
	msgpack_pack_map(&call->pk, 1);
	pack_str(&call->pk, "seq");
	return msgpack_pack_uint64(&call->pk, last);
}

static int m_unwatch(struct rpc_call *call)
{
	int rc = arg_count(call, 0, 0);
	if (rc)
		return rc;
	changes_unwatch(call->c->srv->changes, call->c);
	return msgpack_pack_true(&call->pk);
}

static const struct rpc_method methods[] = {
    {"auth", MR_RPC_AUTH, m_auth, false, true, SCOPE_ADMIN},
    {"ping", MR_RPC_PING, m_ping, false, true, SCOPE_ADMIN},
    {"user.get", MR_RPC_USER_GET, m_get, false, false, SCOPE_READ},
    {"user.get_by_email", MR_RPC_USER_GET_BY_EMAIL, m_get_by_email, false,
     false, SCOPE_READ},
    {"user.get_many", MR_RPC_USER_GET_MANY, m_get_many, false, false,
     SCOPE_READ},
    {"user.create", MR_RPC_USER_CREATE, m_create, true, false, SCOPE_ADMIN},
    {"user.update", MR_RPC_USER_UPDATE, m_update, true, false, SCOPE_ADMIN},
    {"user.delete", MR_RPC_USER_DELETE, m_delete, true, false, SCOPE_ADMIN},
    {"user.list", MR_RPC_USER_LIST, m_list, false, false, SCOPE_READ},
    {"user.set_password", MR_RPC_USER_SET_PASSWORD, m_set_password, true, false,
     SCOPE_ADMIN},
    {"user.verify_password", MR_RPC_USER_VERIFY_PASSWORD, m_verify_password,
     true, false, SCOPE_VERIFY},
    {"user.set_suspended", MR_RPC_USER_SET_SUSPENDED, m_set_suspended, true,
     false, SCOPE_ADMIN},
    {"user.link_identity", MR_RPC_USER_LINK_IDENTITY, m_link_identity, true,
     false, SCOPE_ADMIN},
    {"user.unlink_identity", MR_RPC_USER_UNLINK_IDENTITY, m_unlink_identity,
     true, false, SCOPE_ADMIN},
    {"log.list", MR_RPC_LOG_LIST, m_log_list, false, false, SCOPE_READ},
    {"server.stats", MR_RPC_SERVER_STATS, m_stats, false, false, SCOPE_READ},
    {"server.snapshot", MR_RPC_SERVER_SNAPSHOT, m_snapshot, false, false,
     SCOPE_ADMIN},
    {"changes.watch", MR_RPC_CHANGES_WATCH, m_watch, false, false, SCOPE_READ},
    {"changes.unwatch", MR_RPC_CHANGES_UNWATCH, m_unwatch, false, false,
     SCOPE_READ},
};

static const struct rpc_method *method_find(const char *s, size_t n)
{
	for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
		if (strlen(methods[i].name) == n &&
		    !memcmp(methods[i].name, s, n))
			return &methods[i];
	return NULL;
}

static void rpc_pwjob_finish(struct pwjob *j)
{
	struct ud_buf res = {0};
	int rc = j->rc;
	metrics_observe(&j->srv->metrics, j->route, rc != 0, j->start_ns);
	if (j->notify || j->conn->closed)
		return;
	if (rc == 0 && j->kind == PWJOB_CREATE)
		rc = ud_user_write_msgpack(j->user, &res);
	else if (rc == 0 && j->kind == PWJOB_SET)
		rc = ud_buf_append(&res, "\xc3", 1);
	else if (rc == 0)
		rc = ud_buf_append(&res, j->valid ? "\xc3" : "\xc2", 1);
	if (rc && !j->err.message[0])
		ud_error_set(&j->err, rc, NULL, "%s", ud_code_name(rc));
	rpc_reply(j->conn, j->msgid, rc, &j->err, &res, j->rc == 0);
	ud_buf_free(&res);
}

/* ---- frames ----------------------------------------------------------------
 */

static void call_run(struct rpc_call *call, const msgpack_object *method,
		     const msgpack_object *params)
{
	const struct rpc_method *m = NULL;
	const struct key_entry *key = NULL;
	int rc;
	call->rc->res.len = 0;
	msgpack_packer_init(&call->pk, &call->rc->res, codec_buf_write_cb);
	memset(&call->err, 0, sizeof call->err);
	if (method->type == MSGPACK_OBJECT_STR)
		m = method_find(method->via.str.ptr, method->via.str.size);
	if (m)
		call->route = m->route;
	if (!m) {
		rc = ud_error_set(&call->err, UD_EINVAL, "method",
				  "unknown method");
	} else if (!m->noauth && !(key = conn_key(call->c))) {
		rc = ud_error_set(&call->err, UD_EUNAUTHORIZED, NULL,
				  "call auth with an api key first");
	} else if (key && !scope_allows(key->scope, m->scope)) {
		char msg[96];
		scope_denied_message(m->scope, msg, sizeof msg);
		rc = ud_error_set(&call->err, UD_EFORBIDDEN, NULL, "%s", msg);
	} else if (params->type != MSGPACK_OBJECT_ARRAY) {
		rc = ud_error_set(&call->err, UD_EINVAL, "params",
				  "params must be an array");
	} else {
		call->argv = params->via.array.ptr;
		call->argc = params->via.array.size;
		if (key)
			server_key_use(call->c->srv, key);
		rc = m->fn(call);
	}
	if (rc == RPC_ASYNC)
		return;
	if (rc && !call->err.message[0])
		ud_error_set(&call->err, rc, NULL, "%s", ud_code_name(rc));
	/* An error reports no mutation: it need not wait for the log (a
	 * write refused as unavailable is answered while the log is down). */
	call_finish(call, rc, m && m->write && rc == 0);
}

/* A malformed request still shows its msgid: [0, msgid, ...]. */
static bool request_msgid(const msgpack_object *o, uint64_t *msgid)
{
	if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < 2)
		return false;
	const msgpack_object *a = o->via.array.ptr;
	if (a[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER || a[0].via.u64 != 0 ||
	    a[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return false;
	*msgid = a[1].via.u64;
	return true;
}

/* A plain lookup request recognised by its bytes (see peek_get). */
struct peeked {
	uint64_t msgid;
	const char *arg; /* the id or email, inside the frame */
	size_t len;
	bool email; /* user.get_by_email, else user.get */
};
static size_t peek_get(const uint8_t *p, size_t n, struct peeked *out);

/* Decode and execute one complete frame. */
static void frame_run(struct conn *c, struct rpc_conn *rc, const char *p,
		      size_t n)
{
	struct rpc_call call = {
	    .c = c, .rc = rc, .route = MR_RPC_UNKNOWN, .start_ns = rc->now_ns};
	msgpack_object o = {.type = MSGPACK_OBJECT_NIL};
	size_t off = 0;
	uint64_t msgid;
	struct peeked g;

	if (peek_get((const uint8_t *)p, n, &g) == n) {
		/* The whole frame is [0, msgid, "user.get" or
		 * "user.get_by_email", [str]]: run it on the objects
		 * msgpack_unpack would build (the string pointing into the
		 * frame), without the unpacker and its zone. */
		msgpack_object arg = {.type = MSGPACK_OBJECT_STR};
		msgpack_object params = {.type = MSGPACK_OBJECT_ARRAY};
		msgpack_object method = {.type = MSGPACK_OBJECT_STR};
		arg.via.str.ptr = g.arg;
		arg.via.str.size = (uint32_t)g.len;
		params.via.array.ptr = &arg;
		params.via.array.size = 1;
		method.via.str.ptr = g.email ? "user.get_by_email" : "user.get";
		method.via.str.size = (uint32_t)strlen(method.via.str.ptr);
		call.msgid = g.msgid;
		call_run(&call, &method, &params);
		return;
	}
	msgpack_zone_clear(rc->zone);
	int ur = msgpack_unpack(p, n, &off, rc->zone, &o);
	const msgpack_object *a = o.via.array.ptr;
	uint32_t len = o.type == MSGPACK_OBJECT_ARRAY ? o.via.array.size : 0;
	bool ok_unpack = ur == MSGPACK_UNPACK_SUCCESS && off == n;
	if (ok_unpack && len == 4 &&
	    a[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER && a[0].via.u64 == 0 &&
	    a[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
		call.msgid = a[1].via.u64;
		call_run(&call, &a[2], &a[3]);
	} else if (ok_unpack && len == 3 &&
		   a[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
		   a[0].via.u64 == 2) {
		call.notify = true;
		call_run(&call, &a[1], &a[2]);
	} else if (ok_unpack
		       ? request_msgid(&o, &msgid)
		       : mpframe_peek_msgid((const uint8_t *)p, n, &msgid)) {
		metrics_observe(&c->srv->metrics, MR_RPC_UNKNOWN, true,
				call.start_ns);
		rpc_error_reply(c, msgid, UD_EINVAL, NULL,
				ok_unpack ? "a request is [0, msgid, method, "
					    "params]"
					  : "malformed MessagePack");
	} else {
		metrics_observe(&c->srv->metrics, MR_RPC_UNKNOWN, true,
				call.start_ns);
	}
}

/* A frame that cannot be delimited: answer if we can, then hang up. */
static void frame_fail(struct conn *c, struct rpc_conn *rc, long why)
{
	uint64_t msgid;
	const uint8_t *p = (const uint8_t *)rc->in.data + rc->in_off;
	metrics_observe(&c->srv->metrics, MR_RPC_UNKNOWN, true,
			metrics_now_ns());
	if (mpframe_peek_msgid(p, rc->in.len - rc->in_off, &msgid))
		rpc_error_reply(c, msgid, UD_EINVAL, NULL,
				why == MPFRAME_ETOOBIG
				    ? "frame over the size limit"
				    : "malformed MessagePack");
	conn_close_lingering(c);
}

/* ---- prefetching a run of lookups ----------------------------------------
 *
 * A pipelining client sends many requests per read; looked up one after
 * the other, each user.get waits for its own cache misses (the key's index
 * slot, then the record: at 1M users the store is ~270 MB, far beyond the
 * caches).  Before running the frames, the run of plain user.get and
 * user.get_by_email requests at the front of the buffer is recognised by
 * their bytes (nothing is decoded or trusted: frames are still scanned and
 * decoded as usual after), and ud_user_prefetch() starts the slot loads of
 * all of them, then the record loads, so the misses overlap instead of
 * adding up.  The same recognition lets frame_run() skip the generic
 * unpacker for such a frame.
 */
#define RPC_PREFETCH 32

/* The bytes of [0, msgid, up to the method: the offset of the method, with
 * *msgid; 0 when p does not start so.  Needs n >= 16. */
static size_t peek_head(const uint8_t *p, size_t n, uint64_t *msgid)
{
	size_t i = 2;
	if (n < 16 || p[0] != 0x94 || p[1] != 0x00)
		return 0;
	if (p[i] < 0x80) {
		*msgid = p[i];
		return i + 1;
	}
	if (p[i] == 0xcc || p[i] == 0xcd || p[i] == 0xce) {
		size_t w = 1u << (p[i] - 0xcc);
		*msgid = 0;
		for (size_t k = 1; k <= w; k++) /* n >= 16 covers i + w */
			*msgid = *msgid << 8 | p[i + k];
		return i + 1 + w;
	}
	return 0;
}

/* If p starts with a complete [0, msgid, "user.get", [id]] or
 * [0, msgid, "user.get_by_email", [email]] with a str argument, return its
 * length, the argument and *email; else 0. */
static size_t peek_get(const uint8_t *p, size_t n, struct peeked *out)
{
	static const uint8_t by_id[] = "\xa8user.get\x91";
	static const uint8_t by_email[] = "\xb1user.get_by_email\x91";
	size_t i = peek_head(p, n, &out->msgid), len;
	if (!i)
		return 0;
	/* p[i] and p[i + 1] must be in the buffer after the method */
	if (n >= i + sizeof by_id - 1 + 2 &&
	    !memcmp(p + i, by_id, sizeof by_id - 1)) {
		i += sizeof by_id - 1;
		out->email = false;
	} else if (n >= i + sizeof by_email - 1 + 2 &&
		   !memcmp(p + i, by_email, sizeof by_email - 1)) {
		i += sizeof by_email - 1;
		out->email = true;
	} else {
		return 0;
	}
	if ((p[i] & 0xe0) == 0xa0) {
		len = p[i] & 0x1f;
		i += 1;
	} else if (p[i] == 0xd9) {
		len = p[i + 1];
		i += 2;
	} else {
		return 0;
	}
	if (i + len > n)
		return 0;
	out->arg = (const char *)p + i;
	out->len = len;
	return i + len;
}

/* If p starts with a complete [0, msgid, "user.update" | "user.delete" |
 * "user.set_suspended", [id, ...]] with a str id, return the frame's
 * length (from a frame scan of its own) and the id; else 0.  Only a hint
 * for the prefetch: the frame is decoded as usual when it runs. */
static size_t peek_write(const uint8_t *p, size_t n, size_t max_frame,
			 struct peeked *out)
{
	static const uint8_t *const methods[] = {
	    (const uint8_t *)"\xabuser.update",
	    (const uint8_t *)"\xabuser.delete",
	    (const uint8_t *)"\xb2user.set_suspended"};
	size_t i = peek_head(p, n, &out->msgid), len, m = 0;
	if (!i)
		return 0;
	for (size_t k = 0; k < sizeof methods / sizeof methods[0]; k++) {
		size_t ml = 1 + (methods[k][0] & 0x1f);
		if (n >= i + ml + 3 && !memcmp(p + i, methods[k], ml)) {
			m = ml;
			break;
		}
	}
	if (!m)
		return 0;
	i += m;
	if (p[i] < 0x91 || p[i] > 0x9f) /* params: a short array */
		return 0;
	i += 1;
	if ((p[i] & 0xe0) != 0xa0) /* the id: a fixstr */
		return 0;
	len = p[i] & 0x1f;
	i += 1;
	if (i + len > n)
		return 0;
	struct mpframe fr;
	mpframe_reset(&fr);
	long f = mpframe_scan(&fr, p, n, max_frame);
	if (f <= 0 || (size_t)f < i + len)
		return 0;
	out->arg = (const char *)p + i;
	out->len = len;
	out->email = false;
	return (size_t)f;
}

/* Prefetch for the run of lookups at p (gets, and writes that name a user
 * by id); returns the bytes it covers.  Pipelined updates spent ~27% of
 * the server's CPU in hash-table probes waiting for the slot and the
 * record (perf, update P=16 at 1M users). */
static size_t prefetch_gets(ud_db *db, const uint8_t *p, size_t n,
			    size_t max_frame)
{
	struct ud_lookup keys[RPC_PREFETCH];
	struct peeked g;
	size_t off = 0, m;
	size_t k = 0;
	while (k < RPC_PREFETCH &&
	       ((m = peek_get(p + off, n - off, &g)) > 0 ||
		(m = peek_write(p + off, n - off, max_frame, &g)) > 0)) {
		keys[k++] = (struct ud_lookup){.kind = g.email ? UD_KEY_EMAIL
							       : UD_KEY_ID,
					       .key = g.arg,
					       .len = g.len};
		off += m;
	}
	if (k >= 2)
		ud_user_prefetch(db, keys, k);
	return off;
}

/* Execute the complete frames buffered.  Returns false when the
 * connection must not be read further. */
static bool frames_run(struct conn *c, struct rpc_conn *rc)
{
	size_t fetched = 0; /* buffer offset up to which prefetch ran */
	rc->now_ns = metrics_now_ns(); /* then advanced by call_finish */
	while (conn_may_read(c) && rc->in_off < rc->in.len) {
		if (rc->in_off >= fetched) {
			size_t m = prefetch_gets(
			    c->srv->db,
			    (const uint8_t *)rc->in.data + rc->in_off,
			    rc->in.len - rc->in_off, c->srv->cfg.max_frame);
			fetched = rc->in_off + (m ? m : 1);
		}
		long n = mpframe_scan(
		    &rc->fr, (const uint8_t *)rc->in.data + rc->in_off,
		    rc->in.len - rc->in_off, c->srv->cfg.max_frame);
		if (n == 0)
			return true;
		if (n < 0) {
			frame_fail(c, rc, n);
			return false;
		}
		frame_run(c, rc, rc->in.data + rc->in_off, (size_t)n);
		rc->in_off += (size_t)n;
		mpframe_reset(&rc->fr);
	}
	return conn_may_read(c);
}

static void rpc_on_read(struct conn *c)
{
	struct rpc_conn *rc = c->state;
	struct evbuffer *input = bufferevent_get_input(c->bev);
	while (frames_run(c, rc)) {
		size_t avail = evbuffer_get_length(input);
		if (avail == 0)
			break;
		if (rc->in_off > 0) { /* keep only the unfinished frame */
			memmove(rc->in.data, rc->in.data + rc->in_off,
				rc->in.len - rc->in_off);
			rc->in.len -= rc->in_off;
			rc->in_off = 0;
		}
		size_t take = avail < RPC_READ_MAX ? avail : RPC_READ_MAX;
		if (ud_buf_reserve(&rc->in, take)) {
			conn_close(c);
			return;
		}
		int got =
		    evbuffer_remove(input, rc->in.data + rc->in.len, take);
		rc->in.len += got > 0 ? (size_t)got : 0;
	}
	if (rc->in_off == rc->in.len)
		rc->in.len = rc->in_off = 0;
}

static int rpc_init(struct conn *c)
{
	struct rpc_conn *rc = calloc(1, sizeof(*rc));
	if (!rc)
		return -1;
	rc->zone = msgpack_zone_new(8192);
	if (!rc->zone) {
		free(rc);
		return -1;
	}
	mpframe_reset(&rc->fr);
	c->state = rc;
	return 0;
}

static void rpc_free(struct conn *c)
{
	struct rpc_conn *rc = c->state;
	if (!rc)
		return;
	msgpack_zone_free(rc->zone);
	ud_buf_free(&rc->in);
	ud_buf_free(&rc->res);
	ud_buf_free(&rc->tmp);
	free(rc);
}

const struct conn_proto rpc_proto = {
    .name = "rpc",
    .init = rpc_init,
    .on_read = rpc_on_read,
    .on_free = rpc_free,
    .refused = rpc_refused,
};
