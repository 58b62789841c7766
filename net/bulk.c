/*
 * bulk.c -- NDJSON export through a forked writer, streaming import; see
 * bulk.h.
 */
#define _GNU_SOURCE
#include "bulk.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <msgpack.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "codec.h"
#include "http.h"
#include "import.h"
#include "record.h"
#include "valid.h"

/* ---- export: the child ---------------------------------------------------
 */

#define EXPORT_CHUNK   (256u << 10) /* bytes per HTTP chunk the child writes */
#define EXPORT_HEAD    10	    /* "%08zx\r\n" */
#define EXPORT_READ    (256u << 10) /* bytes moved from the pipe at a time */
#define EXPORT_POLL_US 1000	    /* recheck a full connection this often */

struct export_walk {
	int fd;
	int role, status; /* -1: any */
	struct ud_buf b;
};

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w, n -= (size_t)w;
	}
	return 0;
}

/* Frame b's payload (after the reserved head) as one chunk and write it. */
static int walk_flush(struct export_walk *w)
{
	size_t len = w->b.len - EXPORT_HEAD;
	char head[32];
	if (len == 0)
		return 0;
	snprintf(head, sizeof head, "%08x\r\n", (unsigned)len); /* < 2^32 */
	memcpy(w->b.data, head, EXPORT_HEAD);
	if (ud_buf_append(&w->b, "\r\n", 2) ||
	    write_all(w->fd, w->b.data, w->b.len))
		return -1;
	w->b.len = EXPORT_HEAD;
	return 0;
}

static int walk_user_cb(const ud_user *u, void *ctx)
{
	struct export_walk *w = ctx;
	const struct record *r = (const struct record *)u;
	struct record_parts p;
	char pwbuf[UD_PWHASH_MAX];
	const char *pw;
	size_t pw_len;
	if ((w->role >= 0 && (int)r->role != w->role) ||
	    (w->status >= 0 && (int)r->status != w->status))
		return 0;
	if (ud_user_write_json(u, &w->b))
		return -1;
	record_parts(r, &p);
	pw = record_parts_pw_text(&p, pwbuf, &pw_len); /* may be packed */
	w->b.len--;				       /* the closing brace */
	if (ud_buf_append(&w->b, ",\"password_hash\":", 17))
		return -1;
	if (pw_len ? codec_json_string(&w->b, pw, pw_len)
		   : ud_buf_append(&w->b, "null", 4))
		return -1;
	if (ud_buf_append(&w->b, "}\n", 2))
		return -1;
	return w->b.len >= EXPORT_CHUNK ? walk_flush(w) : 0;
}

static void __attribute__((noreturn))
export_child(ud_db *db, int fd, int role, int status)
{
	struct export_walk w = {.fd = fd, .role = role, .status = status};
	/* Only the pipe: an inherited client socket would stay open here. */
	if (fd > 3)
		close_range(3, (unsigned)fd - 1, 0);
	close_range((unsigned)fd + 1, ~0u, 0);
	if (ud_buf_reserve(&w.b, EXPORT_CHUNK + (64u << 10)))
		_exit(1);
	w.b.len = EXPORT_HEAD;
	if (ud_user_foreach(db, walk_user_cb, &w) || walk_flush(&w) ||
	    write_all(fd, "0\r\n\r\n", 5))
		_exit(1);
	_exit(0);
}

/* ---- export: the loop side ----------------------------------------------- */

struct bulk_export {
	struct conn *c;
	bulk_export_done_fn done;
	int fd;
	pid_t pid;
	bool eof, ok;
	struct event *rev, *timer;
	uint64_t start_ns;
};

static size_t conn_unsent(const struct conn *c)
{
	return evbuffer_get_length(c->held) +
	       evbuffer_get_length(bufferevent_get_output(c->bev));
}

static void export_free(struct bulk_export *ex)
{
	if (ex->pid > 0) {
		kill(ex->pid, SIGKILL);
		while (waitpid(ex->pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	if (ex->fd >= 0)
		close(ex->fd);
	event_free(ex->rev);
	event_free(ex->timer);
	conn_unref(ex->c);
	free(ex);
}

/* Finish: the child's exit status says whether the stream is whole. */
static void export_end(struct bulk_export *ex)
{
	struct conn *c = ex->c;
	bool ok = ex->ok && !c->closed;
	metrics_observe(&c->srv->metrics, MR_HTTP_EXPORT, !ok, ex->start_ns);
	if (!c->closed) {
		if (!ok)
			conn_close_when_done(c);
		ex->done(c, ok);
	}
	export_free(ex);
}

static void export_wait(struct bulk_export *ex)
{
	struct timeval tv = {0, EXPORT_POLL_US};
	int st;
	pid_t r = waitpid(ex->pid, &st, WNOHANG);
	if (r == 0) {
		evtimer_add(ex->timer, &tv);
		return;
	}
	ex->ok = r == ex->pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
	ex->pid = 0;
	export_end(ex);
}

static void export_pump(struct bulk_export *ex)
{
	struct conn *c = ex->c;
	struct timeval tv = {0, EXPORT_POLL_US};
	if (c->closed) {
		ex->ok = false;
		export_end(ex);
		return;
	}
	if (ex->eof) {
		export_wait(ex);
		return;
	}
	while (conn_unsent(c) < CONN_HIGH_WATER) {
		struct evbuffer *out = conn_reply_begin(c);
		int n = evbuffer_read(out, ex->fd, EXPORT_READ);
		conn_reply_end(c, false);
		if (n > 0)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			event_add(ex->rev, NULL);
			return;
		}
		ex->eof = true; /* EOF, or the pipe broke: the status tells */
		event_del(ex->rev);
		export_wait(ex);
		return;
	}
	/* The client is behind: leave the child blocked on the full pipe. */
	event_del(ex->rev);
	evtimer_add(ex->timer, &tv);
}

static void export_event_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	export_pump(arg);
}

/* role=/status= of the export; anything else is a bad query. */
static int export_query(const char *q, size_t n, int *role, int *status,
			struct ud_error *err)
{
	const char *p = q, *end = q + n;
	*role = *status = -1;
	while (p < end) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *stop = amp ? amp : end;
		const char *eq = memchr(p, '=', (size_t)(stop - p));
		char k[16], v[32];
		long kl, vl;
		if (stop == p) {
			p++;
			continue;
		}
		kl = eq && eq - p < (long)sizeof k
			 ? http_pct_decode(p, (size_t)(eq - p), k, true)
			 : -1;
		vl = eq && stop - eq - 1 < (long)sizeof v
			 ? http_pct_decode(eq + 1, (size_t)(stop - eq - 1), v,
					   true)
			 : -1;
		p = stop;
		if (kl == 4 && !memcmp(k, "role", 4) &&
		    (*role = vl < 0 ? -1 : ud_role_parse(v, (size_t)vl)) >= 0)
			continue;
		if (kl == 6 && !memcmp(k, "status", 6) &&
		    (*status = vl < 0 ? -1 : ud_status_parse(v, (size_t)vl)) >=
			0)
			continue;
		if (kl == 4 && !memcmp(k, "role", 4))
			return ud_error_set(err, UD_EINVAL, "role",
					    "role must be admin, user or "
					    "viewer");
		if (kl == 6 && !memcmp(k, "status", 6))
			return ud_error_set(err, UD_EINVAL, "status",
					    "status must be active, inactive "
					    "or suspended");
		return ud_error_set(err, UD_EINVAL, NULL,
				    "an export takes only role and status");
	}
	return 0;
}

static int export_fork(struct bulk_export *ex, ud_db *db, int role, int status,
		       struct ud_error *err)
{
	int p[2];
	pid_t parent = getpid();
	if (pipe2(p, O_CLOEXEC) != 0)
		return ud_error_set(err, UD_EINTERNAL, NULL, "pipe: %s",
				    strerror(errno));
	fcntl(p[0], F_SETPIPE_SZ, 1 << 20); /* fewer wake-ups; best effort */
	ex->pid = fork();
	if (ex->pid < 0) {
		close(p[0]);
		close(p[1]);
		ex->pid = 0;
		return ud_error_set(err, UD_EINTERNAL, NULL, "fork: %s",
				    strerror(errno));
	}
	if (ex->pid == 0) {
		close(p[0]);
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 ||
		    getppid() != parent)
			_exit(1);
		signal(SIGPIPE, SIG_DFL);
		export_child(db, p[1], role, status);
	}
	close(p[1]);
	ex->fd = p[0];
	fcntl(ex->fd, F_SETFL, O_NONBLOCK);
	return 0;
}

int bulk_export_start(struct conn *c, const char *query, size_t query_len,
		      bool keep_alive, bulk_export_done_fn done,
		      struct ud_error *err)
{
	struct server *srv = c->srv;
	struct bulk_export *ex;
	int role, status, rc;
	if ((rc = export_query(query, query_len, &role, &status, err)) != 0)
		return rc;
	if (!(ex = calloc(1, sizeof(*ex))))
		return ud_error_set(err, UD_ENOMEM, NULL, "out of memory");
	ex->c = c;
	ex->done = done;
	ex->fd = -1;
	ex->start_ns = metrics_now_ns();
	conn_ref(c);
	if ((rc = export_fork(ex, srv->db, role, status, err)) != 0)
		goto fail;
	ex->rev = event_new(srv->base, ex->fd, EV_READ, export_event_cb, ex);
	ex->timer = evtimer_new(srv->base, export_event_cb, ex);
	if (!ex->rev || !ex->timer) {
		rc = ud_error_set(err, UD_ENOMEM, NULL, "out of memory");
		goto fail;
	}
	evbuffer_add_printf(conn_reply_begin(c),
			    "HTTP/1.1 200 OK\r\n"
			    "Content-Type: application/x-ndjson\r\n"
			    "Transfer-Encoding: chunked\r\n%s\r\n",
			    keep_alive ? "" : "Connection: close\r\n");
	conn_reply_end(c, false);
	event_add(ex->rev, NULL);
	return 0;
fail:
	export_free(ex);
	return rc;
}

/* ---- import -------------------------------------------------------------- */

enum conflict { ON_FAIL, ON_SKIP, ON_UPDATE };

struct bulk_import {
	struct server *srv;
	enum conflict on_conflict;
	struct ud_error query_err; /* code 0: the query is good */
	struct ud_buf line;
	bool overlong; /* discarding the rest of a line over the limit */
	uint64_t lineno, created, updated, skipped, failed;
	unsigned nerrors;
	struct ud_buf errors; /* ",{...}" per reported error */
};

static int conflict_query(const char *q, size_t n, enum conflict *out,
			  struct ud_error *err)
{
	const char *p = q, *end = q + n;
	*out = ON_FAIL;
	while (p < end) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *stop = amp ? amp : end;
		size_t len = (size_t)(stop - p);
		if (len == 0) {
			p++;
			continue;
		}
		if (len == 16 && !memcmp(p, "on_conflict=fail", 16)) {
			*out = ON_FAIL;
		} else if (len == 16 && !memcmp(p, "on_conflict=skip", 16)) {
			*out = ON_SKIP;
		} else if (len == 18 && !memcmp(p, "on_conflict=update", 18)) {
			*out = ON_UPDATE;
		} else if (len >= 12 && !memcmp(p, "on_conflict=", 12)) {
			return ud_error_set(err, UD_EINVAL, "on_conflict",
					    "on_conflict must be fail, skip "
					    "or update");
		} else {
			return ud_error_set(err, UD_EINVAL, NULL,
					    "an import takes only "
					    "on_conflict");
		}
		p = stop;
	}
	return 0;
}

struct bulk_import *bulk_import_new(struct server *srv, const char *query,
				    size_t query_len)
{
	struct bulk_import *im = calloc(1, sizeof(*im));
	if (!im)
		return NULL;
	im->srv = srv;
	conflict_query(query, query_len, &im->on_conflict, &im->query_err);
	return im;
}

static void line_failed(struct bulk_import *im, const struct ud_error *err)
{
	struct ud_buf *b = &im->errors;
	const char *code = ud_code_name(err->code ? err->code : UD_EINTERNAL);
	char num[32];
	im->failed++;
	if (im->nerrors >= BULK_ERRORS_MAX)
		return;
	im->nerrors++;
	snprintf(num, sizeof num,
		 ",{\"line\":%llu,\"code\":", (unsigned long long)im->lineno);
	ud_buf_append(b, num, strlen(num));
	codec_json_string(b, code, strlen(code));
	ud_buf_append(b, ",\"message\":", 11);
	codec_json_string(b, err->message, strlen(err->message));
	ud_buf_append(b, ",\"field\":", 9);
	if (err->field)
		codec_json_string(b, err->field, strlen(err->field));
	else
		ud_buf_append(b, "null", 4);
	ud_buf_append(b, "}", 1);
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static bool digits(const char *s, int n, unsigned *out)
{
	unsigned v = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	*out = v;
	return true;
}

/* RFC 3339 UTC: YYYY-MM-DDTHH:MM:SS[.fraction]Z -> Unix ms (fraction
 * beyond milliseconds dropped).  0 or -1. */
static int time_parse(const char *s, size_t n, int64_t *ms)
{
	static const unsigned mdays[] = {31, 29, 31, 30, 31, 30,
					 31, 31, 30, 31, 30, 31};
	unsigned y, mo, d, h, mi, se, frac = 0;
	size_t i = 19;
	if (n < 20 || s[4] != '-' || s[7] != '-' ||
	    (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':' ||
	    !digits(s, 4, &y) || !digits(s + 5, 2, &mo) ||
	    !digits(s + 8, 2, &d) || !digits(s + 11, 2, &h) ||
	    !digits(s + 14, 2, &mi) || !digits(s + 17, 2, &se))
		return -1;
	if (s[i] == '.') {
		unsigned scale = 100;
		if (++i >= n - 1)
			return -1;
		for (; i < n - 1; i++) {
			if (s[i] < '0' || s[i] > '9')
				return -1;
			frac += (unsigned)(s[i] - '0') * scale;
			scale /= 10;
		}
	}
	if (i != n - 1 || (s[i] != 'Z' && s[i] != 'z'))
		return -1;
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] ||
	    (mo == 2 && d == 29 && !leap) || h > 23 || mi > 59 || se > 59)
		return -1;
	*ms = ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60000 +
	      (int64_t)se * 1000 + frac;
	return 0;
}

/* Take key (a time string, or null when nullable) out of o into *ms. */
static int take_time(json_t *o, const char *key, bool nullable, int64_t *ms,
		     struct ud_error *err)
{
	json_t *v = json_object_get(o, key);
	*ms = UD_IMPORT_NO_TIME;
	if (!v)
		return 0;
	if (json_is_null(v) && nullable) {
		json_object_del(o, key);
		return 0;
	}
	if (!json_is_string(v) ||
	    time_parse(json_string_value(v), json_string_length(v), ms))
		return ud_error_set(err, UD_EINVAL, key,
				    "%s must be an RFC 3339 UTC time such as "
				    "2025-01-20T15:00:00Z%s",
				    key, nullable ? " or null" : "");
	json_object_del(o, key);
	return 0;
}

/* identities {"target": {"user_id": s, "details": {...}}} -> the stored
 * msgpack form (ops.c's ident_entry order). */
static int take_identities(json_t *o, struct ud_buf *mp, bool *given,
			   struct ud_error *err)
{
	json_t *ids = json_object_get(o, "identities"), *e;
	const char *t;
	msgpack_packer pk;
	int rc = 0;
	*given = false;
	if (!ids || json_is_null(ids))
		goto done;
	if (!json_is_object(ids))
		return ud_error_set(err, UD_EINVAL, "identities",
				    "identities must be an object");
	msgpack_packer_init(&pk, mp, codec_buf_write_cb);
	msgpack_pack_map(&pk, json_object_size(ids));
	json_object_foreach(ids, t, e)
	{
		json_t *uid = json_object_get(e, "user_id");
		json_t *det = json_object_get(e, "details");
		size_t keys = json_is_object(e) ? json_object_size(e) : 0;
		if (!json_is_object(e) || !json_is_string(uid) ||
		    keys != 1u + (det != NULL) ||
		    (det && !json_is_object(det) && !json_is_null(det)))
			return ud_error_set(err, UD_EINVAL, "identities",
					    "each identity must be "
					    "{\"user_id\": string, "
					    "\"details\": object}");
		if ((rc = valid_identity(t, strlen(t), json_string_value(uid),
					 json_string_length(uid), err)) != 0)
			return rc;
		msgpack_pack_str_with_body(&pk, t, strlen(t));
		msgpack_pack_map(&pk, 2);
		msgpack_pack_str_with_body(&pk, "user_id", 7);
		msgpack_pack_str_with_body(&pk, json_string_value(uid),
					   json_string_length(uid));
		msgpack_pack_str_with_body(&pk, "details", 7);
		if (det && json_is_object(det))
			rc = codec_json_to_mp(det, mp, "identities", err);
		else
			msgpack_pack_map(&pk, 0);
		if (rc)
			return rc;
	}
	if (!mp->data)
		return ud_error_set(err, UD_ENOMEM, NULL, "out of memory");
	*given = true;
done:
	json_object_del(o, "identities");
	return 0;
}

/* The line's extras out of root into x (mp owns the identities). */
static int take_extras(json_t *root, struct ud_import_extra *x,
		       struct ud_buf *mp, struct ud_error *err)
{
	json_t *hp = json_object_get(root, "has_password");
	bool given;
	int rc;
	memset(x, 0, sizeof(*x));
	if (hp && !json_is_boolean(hp))
		return ud_error_set(err, UD_EINVAL, "has_password",
				    "has_password must be a boolean");
	json_object_del(root, "has_password"); /* read-only: ignored */
	if (json_is_null(json_object_get(root, "password_hash")))
		json_object_del(root, "password_hash"); /* as export writes */
	if ((rc = take_time(root, "created_at", false, &x->created_ms, err)) ||
	    (rc = take_time(root, "updated_at", false, &x->updated_ms, err)) ||
	    (rc = take_time(root, "last_sign_in_at", true, &x->last_sign_in_ms,
			    err)) ||
	    (rc = take_identities(root, mp, &given, err)))
		return rc;
	if (given)
		x->identities = mp->data, x->identities_len = mp->len;
	return 0;
}

/* on_conflict=update: set what the line gives on user u. */
static int line_update(struct bulk_import *im, const ud_user *u,
		       struct ud_fields *f, struct ud_error *err)
{
	ud_db *db = im->srv->db;
	struct ud_user_view v;
	struct ud_fields up = *f;
	int rc = 0;
	ud_user_view(u, &v);
	char id[UD_ID_MAX + 1];
	size_t idn = v.id_len;
	memcpy(id, v.id, idn);
	up.set &= ~(unsigned)(UD_F_ID | UD_F_PASSWORD_HASH | UD_F_PASSWORD);
	if (up.set)
		rc = ud_user_update(db, id, idn, &up, 0, NULL, err);
	if (rc == 0 && (f->set & UD_F_PASSWORD_HASH))
		rc = ud_user_set_password_hash(db, id, idn, f->password_hash,
					       f->password_hash_len, NULL, err);
	return rc;
}

/* A line that names an existing user: per on_conflict.  1 when the line
 * was not a conflict (create it), else 0 or a code. */
static int line_conflict(struct bulk_import *im, struct ud_fields *f,
			 struct ud_error *err)
{
	ud_db *db = im->srv->db;
	const ud_user *by_id =
	    (f->set & UD_F_ID) ? ud_user_get(db, f->id, f->id_len) : NULL;
	const ud_user *by_email =
	    ud_user_get_by_email(db, f->email, f->email_len);
	if (!by_id && !by_email)
		return 1;
	if (im->on_conflict == ON_FAIL)
		return by_id ? ud_error_set(err, UD_EDUPID, "id",
					    "a user with this id exists")
			     : ud_error_set(err, UD_EDUPEMAIL, "email",
					    "a user with this email exists");
	if (im->on_conflict == ON_SKIP) {
		im->skipped++;
		return 0;
	}
	if (by_id && by_email && by_id != by_email)
		return ud_error_set(err, UD_EDUPEMAIL, "email",
				    "the id and the email belong to two "
				    "different users");
	int rc = line_update(im, by_id ? by_id : by_email, f, err);
	if (rc == 0)
		im->updated++;
	return rc;
}

static int line_apply(struct bulk_import *im, const char *s, size_t n,
		      struct ud_error *err)
{
	struct ud_arena arena = {0};
	struct ud_buf mp = {0};
	struct ud_import_extra x;
	struct ud_fields f;
	json_error_t jerr;
	json_t *root = json_loadb(s, n, JSON_REJECT_DUPLICATES, &jerr);
	int rc;
	if (!root)
		return ud_error_set(err, UD_EINVAL, NULL,
				    "malformed JSON at byte %d: %s",
				    jerr.position, jerr.text);
	if (!json_is_object(root))
		rc = ud_error_set(err, UD_EINVAL, NULL,
				  "a line must be a JSON object");
	else if ((rc = take_extras(root, &x, &mp, err)) == 0 &&
		 (rc = fields_from_jansson(root, &f, &arena, err)) == 0 &&
		 (f.set & UD_F_PASSWORD))
		rc = ud_error_set(err, UD_EINVAL, "password",
				  "an import takes password_hash, not a "
				  "plain password");
	if (rc == 0 && (rc = line_conflict(im, &f, err)) == 1) {
		rc = ud_user_import(im->srv->db, &f, &x, NULL, err);
		if (rc == 0)
			im->created++;
	}
	json_decref(root);
	ud_buf_free(&mp);
	ud_arena_free(&arena);
	return rc;
}

static void line_run(struct bulk_import *im, const char *s, size_t n)
{
	struct ud_error err = {0};
	im->lineno++;
	if (n && s[n - 1] == '\r')
		n--;
	size_t i = 0;
	while (i < n && (s[i] == ' ' || s[i] == '\t'))
		i++;
	if (i == n)
		return; /* a blank line is no user */
	if (line_apply(im, s, n, &err))
		line_failed(im, &err);
}

static void line_too_long(struct bulk_import *im)
{
	struct ud_error err;
	im->lineno++;
	ud_error_set(&err, UD_ETOOLARGE, NULL, "line over %u bytes",
		     BULK_LINE_MAX);
	line_failed(im, &err);
}

void bulk_import_feed(struct bulk_import *im, const char *p, size_t n)
{
	const char *end = p + n;
	if (im->query_err.code)
		return;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = (size_t)((nl ? nl : end) - p);
		if (!im->overlong && im->line.len + len > BULK_LINE_MAX) {
			im->overlong = true;
			im->line.len = 0;
		}
		if (!im->overlong && nl && im->line.len == 0)
			line_run(im, p, len); /* whole in this piece: no copy */
		else if (!im->overlong &&
			 ud_buf_append(&im->line, p, len) == 0 && nl) {
			line_run(im, im->line.data, im->line.len);
			im->line.len = 0;
		}
		if (nl && im->overlong) {
			line_too_long(im);
			im->overlong = false;
			im->line.len = 0;
		}
		p = nl ? nl + 1 : end;
	}
}

int bulk_import_finish(struct bulk_import *im, struct ud_buf *out,
		       struct ud_error *err)
{
	char head[256];
	if (im->query_err.code) {
		*err = im->query_err;
		return err->code;
	}
	if (im->overlong)
		line_too_long(im);
	else if (im->line.len)
		line_run(im, im->line.data, im->line.len);
	im->overlong = false;
	im->line.len = 0;
	snprintf(
	    head, sizeof head,
	    "{\"success\":true,\"data\":{\"created\":%llu,\"updated\":"
	    "%llu,\"skipped\":%llu,\"failed\":%llu,\"errors\":[",
	    (unsigned long long)im->created, (unsigned long long)im->updated,
	    (unsigned long long)im->skipped, (unsigned long long)im->failed);
	out->len = 0;
	if (ud_buf_append(out, head, strlen(head)) ||
	    (im->errors.len &&
	     ud_buf_append(out, im->errors.data + 1, im->errors.len - 1)) ||
	    ud_buf_append(out, "]}}", 3))
		return ud_error_set(err, UD_ENOMEM, NULL, "out of memory");
	return 0;
}

void bulk_import_free(struct bulk_import *im)
{
	if (!im)
		return;
	ud_buf_free(&im->line);
	ud_buf_free(&im->errors);
	free(im);
}
