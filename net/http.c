/*
 * http.c -- HTTP/1.1 connections, routing and the JSON API; see http.h.
 */
#include "http.h"

#include <http_parser.h>
#include <limits.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "codec.h"
#include "console.h"
#include "valid.h"
#include "backoff.h"
#include "changes.h"
#include "bulk.h"
#include "pgmode.h"
#include "pwjob.h"

#define HTTP_ASYNC 1

struct http_conn {
	http_parser parser;
	struct ud_buf url, body, hname, hval, auth, if_match, last_event_id;
	struct ud_buf if_none_match; /* console files only */
	bool has_if_match, in_value, busy, parser_paused, expect_continue;
	bool gzip_ok; /* Accept-Encoding takes gzip */
	bool has_last_event_id;
	bool streaming; /* answered GET /v1/events: input is discarded */
	size_t header_bytes;
	int limit_status; /* 413/414/431 when a limit stopped the parser */
	uint64_t start_ns;
	struct ud_buf out;	    /* response body being built */
	struct bulk_import *import; /* this request is an import (bulk.h) */
	uint64_t import_bytes;	    /* body bytes fed to it */
};

struct http_req {
	struct conn *c;
	struct http_conn *hc;
	int method; /* enum http_method */
	const char *query;
	size_t query_len;
	char id[UD_ID_MAX * 3 + 1], target[UD_TARGET_MAX * 3 + 1];
	size_t id_len, target_len;
	enum metric_route route;
	struct ud_error err;
};

/* ---- percent-decoding ---------------------------------------------------- */

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

long http_pct_decode(const char *s, size_t n, char *out, bool plus_space)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%') {
			int hi = i + 2 < n ? hexval(s[i + 1]) : -1;
			int lo = i + 2 < n ? hexval(s[i + 2]) : -1;
			if (hi < 0 || lo < 0)
				return -1;
			out[o++] = (char)(hi * 16 + lo);
			i += 2;
			continue;
		}
		out[o++] = plus_space && s[i] == '+' ? ' ' : s[i];
	}
	return (long)o;
}

/* ---- responses ---------------------------------------------------------- */

static const char *reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 201:
		return "Created";
	case 301:
		return "Moved Permanently";
	case 304:
		return "Not Modified";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 409:
		return "Conflict";
	case 410:
		return "Gone";
	case 412:
		return "Precondition Failed";
	case 413:
		return "Payload Too Large";
	case 414:
		return "URI Too Long";
	case 431:
		return "Request Header Fields Too Large";
	case 503:
		return "Service Unavailable";
	default:
		return "Internal Server Error";
	}
}

/* Queue status line, headers and body.  extra: complete header lines
 * ("Name: value\r\n"...) or NULL.  body NULL: headers only, len still
 * the Content-Length (a 304). */
static void http_send(struct conn *c, int status, const char *extra,
		      const char *ctype, const char *body, size_t len,
		      bool write)
{
	struct http_conn *hc = c->state;
	bool keep = hc->limit_status == 0 &&
		    http_should_keep_alive(&hc->parser) && !c->srv->stopping;
	struct evbuffer *out = conn_reply_begin(c);
	c->reply_tag = keep;
	evbuffer_add_printf(out,
			    "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
			    "Content-Length: %zu\r\n%s%s\r\n",
			    status, reason(status), ctype, len,
			    keep ? "" : "Connection: close\r\n",
			    extra ? extra : "");
	/* A fatal reply (limit_status) always has its body: the parser may
	 * have guessed HEAD from a malformed method ("H(EAD"). */
	if (body && (hc->parser.method != HTTP_HEAD || hc->limit_status))
		evbuffer_add(out, body, len);
	conn_reply_end(c, write);
	if (!keep)
		conn_close_when_done(c);
}

static int json_lit(struct ud_buf *b, const char *s)
{
	return ud_buf_append(b, s, strlen(s));
}

static void send_json(struct conn *c, int status, const char *extra, bool write)
{
	struct http_conn *hc = c->state;
	http_send(c, status, extra, "application/json", hc->out.data,
		  hc->out.len, write);
}

/* The error envelope of err into b (emptied first). */
static void error_json(struct ud_buf *b, const struct ud_error *err)
{
	int code = err->code ? err->code : UD_EINTERNAL;
	const char *msg = err->message[0] ? err->message : ud_code_name(code);
	b->len = 0;
	json_lit(b, "{\"success\":false,\"error\":{\"code\":");
	codec_json_string(b, ud_code_name(code), strlen(ud_code_name(code)));
	json_lit(b, ",\"message\":");
	codec_json_string(b, msg, strlen(msg));
	if (err->field) {
		json_lit(b, ",\"field\":");
		codec_json_string(b, err->field, strlen(err->field));
	}
	json_lit(b, "}}");
}

/* Error envelope; route counts the request. */
static void send_error(struct conn *c, enum metric_route route,
		       const struct ud_error *err, const char *extra)
{
	struct http_conn *hc = c->state;
	int code = err->code ? err->code : UD_EINTERNAL;
	error_json(&hc->out, err);
	metrics_observe(&c->srv->metrics, route, true, hc->start_ns);
	send_json(c, ud_code_http_status(code), extra, false);
}

/* conn_proto.refused: the error response that replaces a write's
 * (tag: whether that one kept the connection alive). */
static void http_refused(struct conn *c, uint64_t tag,
			 const struct ud_error *err, struct evbuffer *out)
{
	struct ud_buf b = {0};
	int status = ud_code_http_status(err->code);
	error_json(&b, err);
	evbuffer_add_printf(out,
			    "HTTP/1.1 %d %s\r\nContent-Type: application/json"
			    "\r\nContent-Length: %zu\r\n%s\r\n",
			    status, reason(status), b.len,
			    tag ? "" : "Connection: close\r\n");
	evbuffer_add(out, b.data, b.len);
	ud_buf_free(&b);
}

static void send_error_code(struct conn *c, enum metric_route route, int code,
			    const char *field, const char *msg,
			    const char *extra)
{
	struct ud_error err;
	ud_error_set(&err, code, field, "%s", msg);
	send_error(c, route, &err, extra);
}

/* A parse failure or broken limit: status chosen here, then close. */
static void send_fatal(struct conn *c, int status, const char *msg)
{
	struct http_conn *hc = c->state;
	struct ud_error err;
	int code = status == 413 ? UD_ETOOLARGE : UD_EINVAL;
	ud_error_set(&err, code, NULL, "%s", msg);
	hc->limit_status = status;
	struct ud_buf *b = &hc->out;
	b->len = 0;
	json_lit(b, "{\"success\":false,\"error\":{\"code\":\"");
	json_lit(b, ud_code_name(code));
	json_lit(b, "\",\"message\":");
	codec_json_string(b, msg, strlen(msg));
	json_lit(b, "}}");
	metrics_observe(&c->srv->metrics, MR_HTTP_UNMATCHED, true,
			metrics_now_ns());
	send_json(c, status, NULL, false);
	conn_close_lingering(c);
}

/* {"success":true[,"message":m],"data":<user>} */
/* {"success":true[,"message":m],"data":<user>} with the user's ETag (and
 * Location on 201). */
static void send_user(struct http_req *r, int status, const ud_user *u,
		      const char *message)
{
	struct ud_buf *b = &r->hc->out;
	struct ud_user_view v;
	char hdr[64 + 3 * UD_ID_MAX];
	ud_user_view(u, &v);
	int n = snprintf(hdr, sizeof hdr, "ETag: \"%016llx\"\r\n",
			 (unsigned long long)v.etag);
	if (status == 201 && v.id_len <= UD_ID_MAX)
		snprintf(hdr + n, sizeof hdr - (size_t)n,
			 "Location: /v1/users/%.*s\r\n", (int)v.id_len, v.id);
	b->len = 0;
	json_lit(b, "{\"success\":true,");
	if (message) {
		json_lit(b, "\"message\":");
		codec_json_string(b, message, strlen(message));
		json_lit(b, ",");
	}
	json_lit(b, "\"data\":");
	int rc = ud_user_write_json(u, b);
	rc = rc ? rc : json_lit(b, "}");
	if (rc) {
		send_error_code(r->c, r->route, UD_ENOMEM, NULL,
				"out of memory", NULL);
		return;
	}
	metrics_observe(&r->c->srv->metrics, r->route, false, r->hc->start_ns);
	send_json(r->c, status, hdr, message != NULL);
}

static void send_message(struct http_req *r, const char *message)
{
	struct ud_buf *b = &r->hc->out;
	b->len = 0;
	json_lit(b, "{\"success\":true,\"message\":");
	codec_json_string(b, message, strlen(message));
	json_lit(b, "}");
	metrics_observe(&r->c->srv->metrics, r->route, false, r->hc->start_ns);
	send_json(r->c, 200, NULL, true);
}

/* ---- request bodies ------------------------------------------------------ */

/* Parse the body as a JSON object with only the keys in `allowed`
 * (NULL-terminated).  Returns the object (caller json_decref) or NULL with
 * r->err set. */
static json_t *body_object(struct http_req *r, const char *const *allowed)
{
	json_error_t jerr;
	struct ud_buf *body = &r->hc->body;
	json_t *o = json_loadb(body->data ? body->data : "", body->len,
			       JSON_REJECT_DUPLICATES, &jerr);
	const char *key;
	json_t *v;
	if (!o || !json_is_object(o)) {
		ud_error_set(&r->err, UD_EINVAL, NULL,
			     o ? "the body must be a JSON object"
			       : "malformed JSON");
		json_decref(o);
		return NULL;
	}
	json_object_foreach(o, key, v)
	{
		const char *const *a = allowed;
		while (*a && strcmp(*a, key))
			a++;
		if (!*a) {
			ud_error_set(&r->err, UD_EINVAL, NULL,
				     "unknown field \"%.100s\"", key);
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

/* ---- handlers
 * ---------------------------------------------------------------- */

static void http_pwjob_finish(struct pwjob *j);

static int start_job(struct http_req *r, enum pwjob_kind kind, const char *pw,
		     size_t pw_len, const char *body, size_t body_len,
		     const char *hash)
{
	struct pwjob *j = pwjob_new(r->c->srv, r->c, kind, r->id, r->id_len, pw,
				    pw_len, body, body_len);
	if (!j)
		return ud_error_set(&r->err, UD_ENOMEM, NULL, "out of memory");
	if (hash)
		strcpy(j->hash, hash);
	j->body_json = true;
	j->route = r->route;
	j->start_ns = r->hc->start_ns;
	j->finish = http_pwjob_finish;
	r->hc->busy = true;
	pwjob_submit(j);
	return HTTP_ASYNC;
}

static void http_pwjob_finish(struct pwjob *j)
{
	struct conn *c = j->conn;
	struct http_conn *hc = c->state;
	struct http_req r = {.c = c, .hc = hc, .route = j->route};
	hc->busy = false;
	if (c->closed) {
		metrics_observe(&c->srv->metrics, j->route, j->rc != 0,
				j->start_ns);
		return;
	}
	if (j->rc) {
		send_error(c, j->route, &j->err, NULL);
	} else if (j->kind == PWJOB_CREATE) {
		send_user(&r, 201, j->user, "User created");
	} else if (j->kind == PWJOB_SET) {
		send_user(&r, 200, j->user, "Password updated");
	} else {
		struct ud_buf *b = &hc->out;
		b->len = 0;
		json_lit(b,
			 j->valid
			     ? "{\"success\":true,\"data\":{\"valid\":true}}"
			     : "{\"success\":true,\"data\":{\"valid\":false}}");
		metrics_observe(&c->srv->metrics, j->route, false, j->start_ns);
		send_json(c, 200, NULL, true);
	}
}

static int h_create(struct http_req *r)
{
	struct ud_arena arena = {0};
	struct ud_fields f;
	const ud_user *u;
	struct ud_buf *body = &r->hc->body;
	int rc = ud_fields_from_json(body->data ? body->data : "", body->len,
				     true, &f, &arena, &r->err);
	if (rc == 0 && (f.set & UD_F_PASSWORD)) {
		rc = ud_fields_validate(&f, true, &r->err);
		if (rc == 0)
			rc = start_job(r, PWJOB_CREATE, f.password,
				       f.password_len, body->data, body->len,
				       NULL);
	} else if (rc == 0) {
		rc = ud_user_create(r->c->srv->db, &f, &u, &r->err);
		if (rc == 0)
			send_user(r, 201, u, "User created");
	}
	ud_arena_free(&arena);
	return rc;
}

static int h_get(struct http_req *r)
{
	const ud_user *u = ud_user_get(r->c->srv->db, r->id, r->id_len);
	if (!u)
		return ud_error_set(&r->err, UD_ENOTFOUND, NULL,
				    "no such user");
	send_user(r, 200, u, NULL);
	return 0;
}

/* If-Match -> etag for the engine: 0 none, UINT64_MAX never matches. */
static uint64_t if_match_etag(struct http_req *r)
{
	struct http_conn *hc = r->hc;
	const char *s = hc->if_match.data;
	size_t n = hc->if_match.len;
	char hex[17] = {0}, *end;
	if (!hc->has_if_match)
		return 0;
	while (n && (*s == ' ' || *s == '\t'))
		s++, n--;
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	if (n == 1 && *s == '*') {
		const ud_user *u = ud_user_get(r->c->srv->db, r->id, r->id_len);
		struct ud_user_view v;
		if (!u)
			return 0; /* the operation reports not_found */
		ud_user_view(u, &v);
		return v.etag;
	}
	if (n < 3 || n > 18 || s[0] != '"' || s[n - 1] != '"')
		return UINT64_MAX;
	memcpy(hex, s + 1, n - 2);
	uint64_t e = strtoull(hex, &end, 16);
	return *end || e == 0 ? UINT64_MAX : e;
}

static int h_update(struct http_req *r)
{
	struct ud_arena arena = {0};
	struct ud_fields f;
	const ud_user *u;
	struct ud_buf *body = &r->hc->body;
	int rc = ud_fields_from_json(body->data ? body->data : "", body->len,
				     false, &f, &arena, &r->err);
	if (rc == 0)
		rc = ud_user_update(r->c->srv->db, r->id, r->id_len, &f,
				    if_match_etag(r), &u, &r->err);
	if (rc == 0)
		send_user(r, 200, u, "User updated");
	ud_arena_free(&arena);
	return rc;
}

static int h_delete(struct http_req *r)
{
	int rc = ud_user_delete(r->c->srv->db, r->id, r->id_len,
				if_match_etag(r), &r->err);
	if (rc == 0) {
		backoff_forget(r->c->srv->backoff, r->id, r->id_len);
		send_message(r, "User deleted");
	}
	return rc;
}

/* Body {"<key>": string} -> borrowed from o. */
static int body_string(struct http_req *r, json_t *o, const char *key,
		       const char **s, size_t *n)
{
	json_t *v = json_object_get(o, key);
	if (!v || !json_is_string(v))
		return ud_error_set(&r->err, UD_EINVAL, key,
				    "%s must be a string", key);
	*s = json_string_value(v);
	*n = json_string_length(v);
	return 0;
}

static int h_password(struct http_req *r)
{
	static const char *const keys[] = {"password", NULL};
	const char *pw;
	size_t n;
	json_t *o = body_object(r, keys);
	if (!o)
		return r->err.code;
	int rc = body_string(r, o, "password", &pw, &n);
	if (rc == 0 && !ud_user_get(r->c->srv->db, r->id, r->id_len))
		rc = ud_error_set(&r->err, UD_ENOTFOUND, NULL, "no such user");
	if (rc == 0)
		rc = valid_password(n, &r->err);
	if (rc == 0)
		rc = start_job(r, PWJOB_SET, pw, n, NULL, 0, NULL);
	json_decref(o);
	return rc;
}

static int h_verify(struct http_req *r)
{
	static const char *const keys[] = {"password", NULL};
	const char *pw;
	size_t n;
	char hash[UD_PWHASH_MAX];
	json_t *o = body_object(r, keys);
	if (!o)
		return r->err.code;
	int rc = body_string(r, o, "password", &pw, &n);
	if (rc == 0 &&
	    ud_user_password_hash_copy(r->c->srv->db, r->id, r->id_len, hash))
		rc = ud_error_set(&r->err, UD_ENOTFOUND, NULL, "no such user");
	if (rc == 0)
		rc = start_job(r, PWJOB_VERIFY, pw, n, NULL, 0, hash);
	json_decref(o);
	return rc;
}

static int h_suspend(struct http_req *r)
{
	static const char *const keys[] = {"is_suspended", NULL};
	const ud_user *u;
	json_t *o = body_object(r, keys);
	if (!o)
		return r->err.code;
	json_t *v = json_object_get(o, "is_suspended");
	int rc = v && json_is_boolean(v)
		     ? ud_user_set_suspended(r->c->srv->db, r->id, r->id_len,
					     json_is_true(v), &u, &r->err)
		     : ud_error_set(&r->err, UD_EINVAL, "is_suspended",
				    "is_suspended must be a boolean");
	if (rc == 0)
		send_user(r, 200, u,
			  json_is_true(v) ? "User suspended"
					  : "User unsuspended");
	json_decref(o);
	return rc;
}

static int h_link(struct http_req *r)
{
	static const char *const keys[] = {"user_id", "details", NULL};
	struct ud_buf det = {0};
	const ud_user *u;
	const char *uid;
	size_t un;
	json_t *o = body_object(r, keys);
	if (!o)
		return r->err.code;
	int rc = body_string(r, o, "user_id", &uid, &un);
	json_t *d = json_object_get(o, "details");
	if (rc == 0 && d && !json_is_null(d)) {
		rc = json_is_object(d)
			 ? codec_json_to_mp(d, &det, "details", &r->err)
			 : ud_error_set(&r->err, UD_EINVAL, "details",
					"details must be an object");
	}
	if (rc == 0)
		rc = ud_user_link_identity(r->c->srv->db, r->id, r->id_len,
					   r->target, r->target_len, uid, un,
					   det.data, det.len, &u, &r->err);
	if (rc == 0)
		send_user(r, 200, u, "Identity linked");
	ud_buf_free(&det);
	json_decref(o);
	return rc;
}

static int h_unlink(struct http_req *r)
{
	const ud_user *u;
	int rc = ud_user_unlink_identity(r->c->srv->db, r->id, r->id_len,
					 r->target, r->target_len, &u, &r->err);
	if (rc == 0)
		send_user(r, 200, u, "Identity removed");
	return rc;
}

/* ---- lists
 * ------------------------------------------------------------------- */

/* Split the next "k=v" of a raw query string; false at the end. */
static bool query_next(const char **p, const char *end, const char **k,
		       size_t *kl, const char **v, size_t *vl)
{
	while (*p < end && **p == '&')
		(*p)++;
	if (*p >= end)
		return false;
	const char *amp = memchr(*p, '&', (size_t)(end - *p));
	const char *stop = amp ? amp : end;
	const char *eq = memchr(*p, '=', (size_t)(stop - *p));
	*k = *p;
	*kl = (size_t)((eq ? eq : stop) - *p);
	*v = eq ? eq + 1 : stop;
	*vl = (size_t)(stop - *v);
	*p = stop;
	return true;
}

/* Decode one query component into arena memory. */
static int query_decode(struct http_req *r, struct ud_arena *a, const char *s,
			size_t n, const char **out, size_t *out_len)
{
	char *d = ud_arena_alloc(a, n + 1);
	if (!d)
		return ud_error_set(&r->err, UD_ENOMEM, NULL, "out of memory");
	long dl = http_pct_decode(s, n, d, true);
	if (dl < 0)
		return ud_error_set(&r->err, UD_EINVAL, NULL,
				    "bad percent-encoding in the query");
	d[dl] = 0;
	*out = d;
	*out_len = (size_t)dl;
	return 0;
}

/* The next key=value pair of the query at *p, both decoded into arena
 * memory: true and the pair, or false at the end or on a bad component
 * (*rc then holds its code, r->err the message). */
static bool query_next_pair(struct http_req *r, struct ud_arena *a,
			    const char **p, const char *end, const char **dk,
			    size_t *dkl, const char **dv, size_t *dvl, int *rc)
{
	const char *k, *v;
	size_t kl, vl;

	if (!query_next(p, end, &k, &kl, &v, &vl))
		return false;
	*rc = query_decode(r, a, k, kl, dk, dkl);
	*rc = *rc ? *rc : query_decode(r, a, v, vl, dv, dvl);
	return *rc == 0;
}

/* Total-Number and Link headers for a page of a list at `path`. */
static void list_headers(struct http_req *r, const char *path, unsigned page,
			 uint64_t pages, uint64_t total, struct ud_buf *h)
{
	struct ud_buf base = {0};
	const char *p = r->query, *end = r->query + r->query_len, *k, *v;
	size_t kl, vl;
	char tmp[64];
	json_lit(&base, path);
	json_lit(&base, "?");
	while (query_next(&p, end, &k, &kl, &v, &vl)) {
		if (kl == 4 && !memcmp(k, "page", 4))
			continue;
		ud_buf_append(&base, k, (size_t)(v - k) + vl);
		json_lit(&base, "&");
	}
	snprintf(tmp, sizeof tmp,
		 "Total-Number: %llu\r\nLink: ", (unsigned long long)total);
	json_lit(h, tmp);
	uint64_t last = pages ? pages : 1;
	struct {
		const char *rel;
		uint64_t page;
		bool on;
	} rels[] = {{"first", 1, true},
		    {"prev", page - 1, page > 1},
		    {"next", (uint64_t)page + 1, page < pages},
		    {"last", last, true}};
	bool first = true;
	for (int i = 0; i < 4; i++) {
		if (!rels[i].on)
			continue;
		json_lit(h, first ? "<" : ", <");
		first = false;
		ud_buf_append(h, base.data, base.len);
		snprintf(tmp, sizeof tmp, "page=%llu>; rel=\"%s\"",
			 (unsigned long long)rels[i].page, rels[i].rel);
		json_lit(h, tmp);
	}
	json_lit(h, "\r\n");
	ud_buf_append(h, "", 1); /* NUL for http_send */
	ud_buf_free(&base);
}

static void pagination_json(struct ud_buf *b, unsigned page, unsigned limit,
			    uint64_t total, uint64_t pages)
{
	char tmp[160];
	snprintf(tmp, sizeof tmp,
		 "],\"pagination\":{\"page\":%u,\"limit\":%u,\"total\":%llu,"
		 "\"pages\":%llu}}",
		 page, limit, (unsigned long long)total,
		 (unsigned long long)pages);
	json_lit(b, tmp);
}

static int h_list(struct http_req *r)
{
	struct ud_arena arena = {0};
	struct ud_query q;
	struct ud_page *pg = NULL;
	struct ud_buf hdr = {0}, *b = &r->hc->out;
	const char *p = r->query, *end = r->query + r->query_len, *dk, *dv;
	size_t dkl, dvl;
	int rc = 0;
	ud_query_init(&q);
	while (rc == 0 &&
	       query_next_pair(r, &arena, &p, end, &dk, &dkl, &dv, &dvl, &rc))
		rc = ud_query_set(&q, dk, dkl, dv, dvl, &r->err);
	if (rc == 0 && !(pg = malloc(sizeof(*pg))))
		rc = ud_error_set(&r->err, UD_ENOMEM, NULL, "out of memory");
	if (rc == 0)
		rc = ud_user_list(r->c->srv->db, &q, pg, &r->err);
	if (rc == 0) {
		b->len = 0;
		json_lit(b, "{\"success\":true,\"data\":[");
		for (unsigned i = 0; i < pg->count && !rc; i++) {
			if (i)
				json_lit(b, ",");
			rc = ud_user_write_json(pg->items[i], b);
		}
		pagination_json(b, pg->page, pg->limit, pg->total, pg->pages);
		list_headers(r, "/v1/users", pg->page, pg->pages, pg->total,
			     &hdr);
		metrics_observe(&r->c->srv->metrics, r->route, false,
				r->hc->start_ns);
		if (rc == 0)
			send_json(r->c, 200, hdr.data, false);
	}
	free(pg);
	ud_buf_free(&hdr);
	ud_arena_free(&arena);
	return rc;
}

/* page/limit of /v1/logs: decimal, page >= 1, limit 1..100. */
static int log_number(struct http_req *r, const char *key, const char *s,
		      size_t n, unsigned max, unsigned *out)
{
	unsigned long long v = 0;
	if (n == 0 || n > 10)
		goto bad;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			goto bad;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v < 1 || v > max)
		goto bad;
	*out = (unsigned)v;
	return 0;
bad:
	return ud_error_set(&r->err, UD_EINVAL, key, "%s must be 1..%u", key,
			    max);
}

static int log_query(struct http_req *r, struct ud_arena *a, const char **uid,
		     size_t *un, unsigned *page, unsigned *limit)
{
	const char *p = r->query, *end = r->query + r->query_len, *dk, *dv;
	size_t dkl, dvl;
	int rc = 0;
	*uid = NULL;
	*page = 1;
	*limit = 20;
	while (rc == 0 &&
	       query_next_pair(r, a, &p, end, &dk, &dkl, &dv, &dvl, &rc)) {
		if (!strcmp(dk, "user_id") && dvl > 0)
			*uid = dv, *un = dvl;
		else if (!strcmp(dk, "page"))
			rc = log_number(r, "page", dv, dvl, 1000000000, page);
		else if (!strcmp(dk, "limit"))
			rc = log_number(r, "limit", dv, dvl, UD_LIMIT_MAX,
					limit);
		else
			rc = ud_error_set(&r->err, UD_EINVAL,
					  !strcmp(dk, "user_id") ? "user_id"
								 : NULL,
					  "bad query parameter \"%.60s\"", dk);
	}
	if (rc == 0 && !*uid)
		rc = ud_error_set(&r->err, UD_EINVAL, "user_id",
				  "user_id is required");
	return rc;
}

static int h_logs(struct http_req *r)
{
	struct ud_arena arena = {0};
	struct ud_log_page *lp = NULL;
	struct ud_buf hdr = {0}, *b = &r->hc->out;
	const char *uid;
	size_t un = 0;
	unsigned page, limit;
	int rc = log_query(r, &arena, &uid, &un, &page, &limit);
	if (rc == 0 && !(lp = malloc(sizeof(*lp))))
		rc = ud_error_set(&r->err, UD_ENOMEM, NULL, "out of memory");
	if (rc == 0)
		rc = ud_log_list(r->c->srv->db, uid, un, page, limit, lp,
				 &r->err);
	if (rc == 0) {
		b->len = 0;
		json_lit(b, "{\"success\":true,\"data\":[");
		for (unsigned i = 0; i < lp->count && !rc; i++) {
			if (i)
				json_lit(b, ",");
			rc = ud_log_write_json(&lp->items[i], b);
		}
		pagination_json(b, lp->page, lp->limit, lp->total, lp->pages);
		list_headers(r, "/v1/logs", lp->page, lp->pages, lp->total,
			     &hdr);
		metrics_observe(&r->c->srv->metrics, r->route, false,
				r->hc->start_ns);
		if (rc == 0)
			send_json(r->c, 200, hdr.data, false);
	}
	free(lp);
	ud_buf_free(&hdr);
	ud_arena_free(&arena);
	return rc;
}

/* A seq: decimal digits, at most 2^64 - 1. */
static int seq_parse(struct http_req *r, const char *field, const char *s,
		     size_t n, uint64_t *out)
{
	uint64_t v = 0;
	if (n == 0 || n > 20)
		goto bad;
	for (size_t i = 0; i < n; i++) {
		unsigned d = (unsigned)(s[i] - '0');
		if (d > 9 || v > (UINT64_MAX - d) / 10)
			goto bad;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
bad:
	return ud_error_set(&r->err, UD_EINVAL, field,
			    "%s must be a change seq (a decimal integer)",
			    field);
}

static int events_query(struct http_req *r, struct ud_arena *a, bool *has,
			uint64_t *since, const char **uid, size_t *un)
{
	const char *p = r->query, *end = r->query + r->query_len, *dk, *dv;
	size_t dkl, dvl;
	int rc = 0;
	while (rc == 0 &&
	       query_next_pair(r, a, &p, end, &dk, &dkl, &dv, &dvl, &rc)) {
		if (!strcmp(dk, "since")) {
			rc = seq_parse(r, "since", dv, dvl, since);
			*has = true;
		} else if (!strcmp(dk, "user_id")) {
			rc = valid_id(dv, dvl, &r->err);
			r->err.field = "user_id";
			*uid = dv, *un = dvl;
		} else {
			rc = ud_error_set(&r->err, UD_EINVAL, NULL,
					  "bad query parameter \"%.60s\"", dk);
		}
	}
	return rc;
}

/* GET /v1/events: Server-Sent Events (changes.h).  The headers leave with
 * this iteration's replies; the body is the stream, to the close. */
static int h_events(struct http_req *r)
{
	struct http_conn *hc = r->hc;
	struct ud_arena arena = {0};
	const char *uid = NULL;
	size_t un = 0;
	bool has = false;
	uint64_t since = 0, last;
	int rc = events_query(r, &arena, &has, &since, &uid, &un);
	if (rc == 0 && !has && hc->has_last_event_id) {
		rc = seq_parse(r, "Last-Event-ID", hc->last_event_id.data,
			       hc->last_event_id.len, &since);
		has = true;
	}
	if (rc == 0 && hc->parser.method == HTTP_HEAD)
		last = changes_last_seq(r->c->srv->changes);
	else if (rc == 0)
		rc = changes_watch(r->c->srv->changes, r->c, CHANGES_SSE, has,
				   since, uid, un, &last, &r->err);
	ud_arena_free(&arena);
	if (rc)
		return rc;
	metrics_observe(&r->c->srv->metrics, r->route, false, hc->start_ns);
	evbuffer_add_printf(conn_reply_begin(r->c),
			    "HTTP/1.1 200 OK\r\n"
			    "Content-Type: text/event-stream\r\n"
			    "Cache-Control: no-store\r\n"
			    "Connection: close\r\n"
			    "X-Accel-Buffering: no\r\n\r\n"
			    ": last seq %llu\n\n",
			    (unsigned long long)last);
	conn_reply_end(r->c, false);
	if (hc->parser.method == HTTP_HEAD) {
		conn_close_when_done(r->c);
	} else {
		hc->streaming = true;
		hc->busy = true; /* no further requests on this connection */
	}
	return 0;
}

static int h_healthz(struct http_req *r)
{
	struct ud_buf *b = &r->hc->out;
	b->len = 0;
	json_lit(b, "{\"status\":\"ok\"}");
	metrics_observe(&r->c->srv->metrics, r->route, false, r->hc->start_ns);
	send_json(r->c, 200, NULL, false);
	return 0;
}

static int h_metrics(struct http_req *r)
{
	struct server *srv = r->c->srv;
	struct ud_stats st;
	struct ud_buf *b = &r->hc->out;
	b->len = 0;
	ud_stats(srv->db, &st);
	srv->metrics.backoff_users = backoff_users(srv->backoff);
	srv->metrics.changes_watchers = changes_watchers(srv->changes);
	srv->metrics.changes_window_bytes = changes_window_bytes(srv->changes);
	metrics_observe(&srv->metrics, r->route, false, r->hc->start_ns);
	if (metrics_write(&srv->metrics, &st, pool_inflight(srv->pool), b) ||
	    pgmode_metrics(srv, b))
		return ud_error_set(&r->err, UD_ENOMEM, NULL, "out of memory");
	http_send(r->c, 200, NULL, "text/plain; version=0.0.4; charset=utf-8",
		  b->data, b->len, false);
	return 0;
}

/* GET /openapi.json: the document compiled in from openapi/openapi.json. */
extern const char openapi_json[];
extern const size_t openapi_json_len;

static int h_openapi(struct http_req *r)
{
	metrics_observe(&r->c->srv->metrics, r->route, false, r->hc->start_ns);
	http_send(r->c, 200, NULL, "application/json", openapi_json,
		  openapi_json_len, false);
	return 0;
}

/* ---- bulk export and import (bulk.h) ------------------------------------- */

static void export_done(struct conn *c, bool ok)
{
	struct http_conn *hc = c->state;
	hc->busy = false;
	if (ok && !http_should_keep_alive(&hc->parser))
		conn_close_when_done(c);
	else if (ok)
		conn_resume(c);
}

static int h_export(struct http_req *r)
{
	bool keep =
	    http_should_keep_alive(&r->hc->parser) && !r->c->srv->stopping;
	if (r->method == HTTP_HEAD) { /* the head only: no writer to fork */
		metrics_observe(&r->c->srv->metrics, r->route, false,
				r->hc->start_ns);
		http_send(r->c, 200, NULL, "application/x-ndjson", "", 0,
			  false);
		return 0;
	}
	int rc = bulk_export_start(r->c, r->query, r->query_len, keep,
				   export_done, &r->err);
	if (rc)
		return rc;
	r->hc->busy = true;
	return HTTP_ASYNC;
}

/* The import's answer, once every line is applied. */
static void import_reply(struct conn *c, struct http_conn *hc)
{
	struct ud_error err = {0};
	int rc = bulk_import_finish(hc->import, &hc->out, &err);
	bulk_import_free(hc->import);
	hc->import = NULL;
	if (c->closed)
		return;
	if (rc) {
		send_error(c, MR_HTTP_IMPORT, &err, NULL);
		return;
	}
	metrics_observe(&c->srv->metrics, MR_HTTP_IMPORT, false, hc->start_ns);
	send_json(c, 200, NULL, true);
}

/* The import let us go on (bulk.h): read its body again, or answer. */
static void import_wake(void *ctx, int what)
{
	struct conn *c = ctx;
	struct http_conn *hc = c->state;
	if (what == BULK_IMPORT_MORE)
		conn_job_end(c);
	else
		import_reply(c, hc);
	hc->busy = false;
	conn_resume(c);
}

static int h_import(struct http_req *r)
{
	struct http_conn *hc = r->hc;
	if (!hc->import)
		return ud_error_set(&r->err, UD_EINTERNAL, NULL,
				    "import not set up");
	if (bulk_import_end(hc->import) == 1) { /* lines in the pool */
		hc->busy = true;
		return HTTP_ASYNC;
	}
	import_reply(r->c, hc);
	return 0;
}

/* ---- routing
 * ------------------------------------------------------------------ */

typedef int (*handler_fn)(struct http_req *r);

struct route_method {
	int method;
	handler_fn fn;
	enum metric_route route;
	enum key_scope scope; /* what the key must allow (default admin) */
};

struct route {
	const char *allow;
	struct route_method m[3];
};

static const struct route r_users = {
    "GET, POST",
    {{HTTP_GET, h_list, MR_HTTP_USERS_LIST, SCOPE_READ},
     {HTTP_POST, h_create, MR_HTTP_USERS_CREATE, SCOPE_ADMIN}}};
static const struct route r_user = {
    "GET, PATCH, DELETE",
    {{HTTP_GET, h_get, MR_HTTP_USER_GET, SCOPE_READ},
     {HTTP_PATCH, h_update, MR_HTTP_USER_UPDATE, SCOPE_ADMIN},
     {HTTP_DELETE, h_delete, MR_HTTP_USER_DELETE, SCOPE_ADMIN}}};
static const struct route r_password = {
    "PATCH", {{HTTP_PATCH, h_password, MR_HTTP_PASSWORD_SET, SCOPE_ADMIN}}};
static const struct route r_verify = {
    "POST", {{HTTP_POST, h_verify, MR_HTTP_PASSWORD_VERIFY, SCOPE_VERIFY}}};
static const struct route r_suspend = {
    "PATCH", {{HTTP_PATCH, h_suspend, MR_HTTP_SUSPEND, SCOPE_ADMIN}}};
static const struct route r_identity = {
    "PUT, DELETE",
    {{HTTP_PUT, h_link, MR_HTTP_IDENTITY_PUT, SCOPE_ADMIN},
     {HTTP_DELETE, h_unlink, MR_HTTP_IDENTITY_DELETE, SCOPE_ADMIN}}};
static const struct route r_logs = {
    "GET", {{HTTP_GET, h_logs, MR_HTTP_LOGS, SCOPE_READ}}};
static const struct route r_events = {
    "GET", {{HTTP_GET, h_events, MR_HTTP_EVENTS, SCOPE_READ}}};
static const struct route r_healthz = {
    "GET", {{HTTP_GET, h_healthz, MR_HTTP_HEALTHZ, SCOPE_READ}}};
static const struct route r_openapi = {
    "GET", {{HTTP_GET, h_openapi, MR_HTTP_OPENAPI, SCOPE_READ}}};
static const struct route r_metrics = {
    "GET", {{HTTP_GET, h_metrics, MR_HTTP_METRICS, SCOPE_READ}}};
static const struct route r_export = {
    "GET", {{HTTP_GET, h_export, MR_HTTP_EXPORT, SCOPE_READ}}};
static const struct route r_import = {
    "POST", {{HTTP_POST, h_import, MR_HTTP_IMPORT, SCOPE_ADMIN}}};

static bool seg_eq(const char *s, size_t n, const char *lit)
{
	return strlen(lit) == n && !memcmp(s, lit, n);
}

/* Decode a path segment into out (cap bytes incl. NUL).  -1 bad escape,
 * -2 too long. */
static long seg_decode(const char *s, size_t n, char *out, size_t cap)
{
	if (n >= cap)
		return -2;
	long dl = http_pct_decode(s, n, out, false);
	if (dl >= 0)
		out[dl] = 0;
	return dl;
}

/* /v1/users/{id}[/rest]: the route for rest, id and target decoded. */
static const struct route *route_user(struct http_req *r, const char *p,
				      size_t n)
{
	const char *slash = memchr(p, '/', n);
	size_t idn = slash ? (size_t)(slash - p) : n;
	const char *rest = slash ? slash + 1 : p + n;
	size_t rn = slash ? n - idn - 1 : 0;
	const struct route *rt = NULL;
	if (idn == 0)
		return NULL;
	if (!slash)
		rt = &r_user;
	else if (seg_eq(rest, rn, "password"))
		rt = &r_password;
	else if (seg_eq(rest, rn, "password/verify"))
		rt = &r_verify;
	else if (seg_eq(rest, rn, "is-suspended"))
		rt = &r_suspend;
	else if (rn > 11 && !memcmp(rest, "identities/", 11) &&
		 !memchr(rest + 11, '/', rn - 11)) {
		long tl =
		    seg_decode(rest + 11, rn - 11, r->target, sizeof r->target);
		if (tl < 0) {
			ud_error_set(&r->err, UD_EINVAL, "target",
				     "bad identity target");
			return NULL;
		}
		r->target_len = (size_t)tl;
		rt = &r_identity;
	}
	if (!rt)
		return NULL;
	long il = seg_decode(p, idn, r->id, sizeof r->id);
	if (il == -1) {
		ud_error_set(&r->err, UD_EINVAL, "id",
			     "bad percent-encoding in the id");
		return NULL;
	}
	r->id_len = il < 0 ? 0 : (size_t)il; /* too long: no such user */
	return rt;
}

static const struct route *route_find(struct http_req *r, const char *p,
				      size_t n)
{
	if (seg_eq(p, n, "/healthz"))
		return &r_healthz;
	if (seg_eq(p, n, "/metrics"))
		return &r_metrics;
	if (seg_eq(p, n, "/openapi.json"))
		return &r_openapi;
	if (seg_eq(p, n, "/v1/logs"))
		return &r_logs;
	if (seg_eq(p, n, "/v1/events"))
		return &r_events;
	if (seg_eq(p, n, "/v1/users"))
		return &r_users;
	if (seg_eq(p, n, "/v1/users/export"))
		return &r_export;
	if (seg_eq(p, n, "/v1/users/import"))
		return &r_import;
	if (n > 10 && !memcmp(p, "/v1/users/", 10))
		return route_user(r, p + 10, n - 10);
	return NULL;
}

/* The console's static files (console.h): no auth, GET and HEAD only. */
static void console_serve(struct http_req *r, const char *p, size_t n)
{
	struct http_conn *hc = r->hc;
	char hdr[sizeof CONSOLE_HEADERS + 160];
	r->route = MR_HTTP_CONSOLE;
	if (r->method != HTTP_GET && r->method != HTTP_HEAD) {
		send_error_code(r->c, r->route, UD_EMETHOD, NULL,
				"method not allowed", "Allow: GET, HEAD\r\n");
		return;
	}
	if (n == sizeof CONSOLE_PREFIX - 1) {
		metrics_observe(&r->c->srv->metrics, r->route, false,
				hc->start_ns);
		http_send(r->c, 301, "Location: /console/\r\n",
			  "text/plain; charset=utf-8", "", 0, false);
		return;
	}
	const struct console_file *f = console_find(p, n);
	if (!f) {
		send_error_code(r->c, r->route, UD_ENOTFOUND, NULL,
				"no such console file", CONSOLE_HEADERS);
		return;
	}
	bool gz = f->gz && hc->gzip_ok;
	snprintf(
	    hdr, sizeof hdr, "%sETag: %s\r\nCache-Control: no-cache\r\n%s%s",
	    CONSOLE_HEADERS, f->etag, f->gz ? "Vary: Accept-Encoding\r\n" : "",
	    gz ? "Content-Encoding: gzip\r\n" : "");
	metrics_observe(&r->c->srv->metrics, r->route, false, hc->start_ns);
	bool fresh = console_etag_matches(hc->if_none_match.data,
					  hc->if_none_match.len, f->etag);
	http_send(r->c, fresh ? 304 : 200, hdr, f->ctype,
		  fresh ? NULL : (const char *)(gz ? f->gz : f->raw),
		  gz ? f->gz_len : f->raw_len, false);
}

/* The key of the request's Authorization header, or NULL. */
static const struct key_entry *authorized(struct conn *c, struct http_conn *hc)
{
	const char *s = hc->auth.data;
	size_t n = hc->auth.len;
	int i;
	if (n < 7 || strncasecmp(s, "Bearer ", 7))
		return NULL;
	s += 7, n -= 7;
	while (n && *s == ' ')
		s++, n--;
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	i = n > 0 ? keyset_find(&c->srv->keys, s, n, NULL) : -1;
	return i < 0 ? NULL : &c->srv->keys.e[i];
}

static void request_run(struct conn *c, struct http_conn *hc)
{
	struct http_req r = {.c = c,
			     .hc = hc,
			     .method = hc->parser.method,
			     .route = MR_HTTP_UNMATCHED};
	const char *url = hc->url.data ? hc->url.data : "";
	const char *q = memchr(url, '?', hc->url.len);
	size_t plen = q ? (size_t)(q - url) : hc->url.len;
	if (q) {
		r.query = q + 1;
		r.query_len = hc->url.len - plen - 1;
	} else {
		r.query = url + plen;
	}
	if (console_path(url, plen)) {
		console_serve(&r, url, plen);
		return;
	}
	const struct key_entry *key = NULL;
	if (!seg_eq(url, plen, "/healthz") &&
	    !seg_eq(url, plen, "/openapi.json") && !(key = authorized(c, hc))) {
		send_error_code(c, MR_HTTP_UNMATCHED, UD_EUNAUTHORIZED, NULL,
				"missing or wrong api key",
				"WWW-Authenticate: Bearer\r\n");
		return;
	}
	const struct route *rt = route_find(&r, url, plen);
	if (!rt) {
		if (r.err.code)
			send_error(c, MR_HTTP_UNMATCHED, &r.err, NULL);
		else
			send_error_code(c, MR_HTTP_UNMATCHED, UD_ENOTFOUND,
					NULL, "no such route", NULL);
		return;
	}
	const struct route_method *m = rt->m;
	int method = r.method == HTTP_HEAD ? HTTP_GET : r.method; /* no body */
	while (m < rt->m + 3 && m->fn && m->method != method)
		m++;
	if (m == rt->m + 3 || !m->fn) {
		char allow[64];
		snprintf(allow, sizeof allow, "Allow: %s\r\n", rt->allow);
		send_error_code(c, MR_HTTP_UNMATCHED, UD_EMETHOD, NULL,
				"method not allowed", allow);
		return;
	}
	r.route = m->route;
	if (key && !scope_allows(key->scope, m->scope)) {
		char msg[96];
		scope_denied_message(m->scope, msg, sizeof msg);
		send_error_code(c, r.route, UD_EFORBIDDEN, NULL, msg, NULL);
		return;
	}
	if (key)
		server_key_use(c->srv, key);
	int rc = m->fn(&r);
	if (rc < 0) {
		if (!r.err.code)
			ud_error_set(&r.err, rc, NULL, "%s", ud_code_name(rc));
		send_error(c, r.route, &r.err, NULL);
	}
}

/* ---- parser glue
 * ------------------------------------------------------------------ */

static int limit_hit(http_parser *p, int status)
{
	struct conn *c = p->data;
	((struct http_conn *)c->state)->limit_status = status;
	return -1;
}

static int on_message_begin(http_parser *p)
{
	struct conn *c = p->data;
	struct http_conn *hc = c->state;
	hc->url.len = hc->body.len = hc->hname.len = hc->hval.len = 0;
	hc->auth.len = hc->if_match.len = hc->if_none_match.len = 0;
	hc->last_event_id.len = 0;
	hc->has_if_match = hc->in_value = hc->expect_continue = false;
	hc->gzip_ok = hc->has_last_event_id = false;
	hc->header_bytes = 0;
	bulk_import_free(hc->import);
	hc->import = NULL;
	hc->import_bytes = 0;
	return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
	struct conn *c = p->data;
	struct http_conn *hc = c->state;
	if (hc->url.len + n > c->srv->cfg.max_request_line)
		return limit_hit(p, 414);
	return ud_buf_append(&hc->url, at, n) ? -1 : 0;
}

/* A complete header: keep the two we use. */
static int header_done(struct http_conn *hc)
{
	struct ud_buf *dst = NULL;
	if (hc->hname.len == 13 &&
	    !strncasecmp(hc->hname.data, "authorization", 13))
		dst = &hc->auth;
	else if (hc->hname.len == 8 &&
		 !strncasecmp(hc->hname.data, "if-match", 8)) {
		dst = &hc->if_match;
		hc->has_if_match = true;
	} else if (hc->hname.len == 13 &&
		   !strncasecmp(hc->hname.data, "last-event-id", 13)) {
		dst = &hc->last_event_id;
		hc->has_last_event_id = true;
	}
	if (hc->hname.len == 13 &&
	    !strncasecmp(hc->hname.data, "if-none-match", 13))
		dst = &hc->if_none_match;
	if (hc->hname.len == 15 &&
	    !strncasecmp(hc->hname.data, "accept-encoding", 15))
		hc->gzip_ok = console_accepts_gzip(hc->hval.data, hc->hval.len);
	if (hc->hname.len == 6 && !strncasecmp(hc->hname.data, "expect", 6))
		hc->expect_continue =
		    hc->hval.len == 12 &&
		    !strncasecmp(hc->hval.data, "100-continue", 12);
	if (dst) {
		dst->len = 0;
		if (ud_buf_append(dst, hc->hval.data ? hc->hval.data : "",
				  hc->hval.len))
			return -1;
	}
	hc->hname.len = hc->hval.len = 0;
	hc->in_value = false;
	return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
	struct conn *c = p->data;
	struct http_conn *hc = c->state;
	hc->header_bytes += n;
	if (hc->header_bytes > c->srv->cfg.max_header)
		return limit_hit(p, 431);
	if (hc->in_value && header_done(hc))
		return -1;
	return ud_buf_append(&hc->hname, at, n) ? -1 : 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
	struct conn *c = p->data;
	struct http_conn *hc = c->state;
	hc->header_bytes += n;
	if (hc->header_bytes > c->srv->cfg.max_header)
		return limit_hit(p, 431);
	hc->in_value = true;
	return ud_buf_append(&hc->hval, at, n) ? -1 : 0;
}

/* The request's key if it may import (admin scope), else NULL. */
static const struct key_entry *import_key(struct conn *c, struct http_conn *hc)
{
	const struct key_entry *k = authorized(c, hc);
	return k && scope_allows(k->scope, SCOPE_ADMIN) ? k : NULL;
}

/* An authorized POST /v1/users/import streams its body into an import
 * (bulk.h) under --max-import instead of collecting it under --max-body.
 * Anything else, an unauthorized import too, takes the usual path. */
static int import_begin(struct conn *c, struct http_conn *hc)
{
	const char *url = hc->url.data ? hc->url.data : "";
	const char *q = memchr(url, '?', hc->url.len);
	size_t plen = q ? (size_t)(q - url) : hc->url.len;
	if (hc->parser.method != HTTP_POST ||
	    !seg_eq(url, plen, "/v1/users/import") || !import_key(c, hc))
		return 0;
	hc->import =
	    bulk_import_new(c->srv, q ? q + 1 : "",
			    q ? hc->url.len - plen - 1 : 0, import_wake, c);
	return hc->import ? 0 : -1;
}

static int on_headers_complete(http_parser *p)
{
	struct conn *c = p->data;
	struct http_conn *hc = c->state;
	if (hc->in_value && header_done(hc))
		return -1;
	if (import_begin(c, hc))
		return -1;
	if (hc->import) {
		if (!(p->flags & F_CHUNKED) &&
		    p->content_length != ULLONG_MAX &&
		    p->content_length > c->srv->cfg.max_import)
			return limit_hit(p, 413);
	} else if (!(p->flags & F_CHUNKED) && p->content_length != ULLONG_MAX &&
		   p->content_length > c->srv->cfg.max_body)
		return limit_hit(p, 413);
	if (hc->expect_continue && !c->on_held) /* nothing may overtake it */
		evbuffer_add(bufferevent_get_output(c->bev),
			     "HTTP/1.1 100 Continue\r\n\r\n", 25);
	return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
	struct conn *c = p->data;
	struct http_conn *hc = c->state;
	if (hc->import) {
		hc->import_bytes += n;
		if (hc->import_bytes > c->srv->cfg.max_import)
			return limit_hit(p, 413);
		/* Lines are applied between other clients' requests, as this
		 * key (not server_key_use: that counts a request).  A key
		 * removed meanwhile (SIGHUP) gets nothing more cut; the
		 * request then ends in 401. */
		const struct key_entry *k = import_key(c, hc);
		if (k && !bulk_import_feed(hc->import, k->name, k->name_len, at,
					   n)) {
			/* The pool holds enough of it: read nothing more
			 * until the import wakes us (import_wake). */
			hc->busy = true;
			conn_job_begin(c);
			http_parser_pause(p, 1);
		}
		return 0;
	}
	if (hc->body.len + n > c->srv->cfg.max_body)
		return limit_hit(p, 413);
	return ud_buf_append(&hc->body, at, n) ? -1 : 0;
}

static int on_message_complete(http_parser *p)
{
	struct conn *c = p->data;
	struct http_conn *hc = c->state;
	hc->start_ns = metrics_now_ns();
	request_run(c, hc);
	if (hc->busy || !conn_may_read(c))
		http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static void parse_failed(struct conn *c, struct http_conn *hc)
{
	enum http_errno e = HTTP_PARSER_ERRNO(&hc->parser);
	char msg[160];
	if (hc->limit_status == 413)
		send_fatal(c, 413, "request body over the limit");
	else if (hc->limit_status == 414)
		send_fatal(c, 414, "request target over the limit");
	else if (hc->limit_status == 431)
		send_fatal(c, 431, "request headers over the limit");
	else {
		snprintf(msg, sizeof msg, "malformed HTTP request: %s",
			 http_errno_description(e));
		send_fatal(c, 400, msg);
	}
}

static void http_on_read(struct conn *c)
{
	struct http_conn *hc = c->state;
	struct evbuffer *in = bufferevent_get_input(c->bev);
	if (hc->streaming) { /* a client of the stream has nothing to say */
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	while (conn_may_read(c) && !hc->busy) {
		struct evbuffer_iovec v;
		if (hc->parser_paused) {
			http_parser_pause(&hc->parser, 0);
			hc->parser_paused = false;
		}
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
			break;
		size_t n = http_parser_execute(&hc->parser, &parser_settings,
					       v.iov_base, v.iov_len);
		enum http_errno e = HTTP_PARSER_ERRNO(&hc->parser);
		if (c->closed)
			return;
		evbuffer_drain(in, n);
		if (e == HPE_PAUSED) {
			hc->parser_paused = true;
		} else if (e != HPE_OK) {
			parse_failed(c, hc);
			return;
		}
	}
}

static int http_init(struct conn *c)
{
	struct http_conn *hc = calloc(1, sizeof(*hc));
	if (!hc)
		return -1;
	http_parser_init(&hc->parser, HTTP_REQUEST);
	hc->parser.data = c;
	c->state = hc;
	return 0;
}

static void http_free(struct conn *c)
{
	struct http_conn *hc = c->state;
	if (!hc)
		return;
	ud_buf_free(&hc->url);
	ud_buf_free(&hc->body);
	ud_buf_free(&hc->hname);
	ud_buf_free(&hc->hval);
	ud_buf_free(&hc->auth);
	ud_buf_free(&hc->if_match);
	ud_buf_free(&hc->if_none_match);
	ud_buf_free(&hc->last_event_id);
	ud_buf_free(&hc->out);
	bulk_import_free(hc->import);
	free(hc);
}

const struct conn_proto http_proto = {
    .name = "http",
    .init = http_init,
    .on_read = http_on_read,
    .on_free = http_free,
    .refused = http_refused,
};
