/*
 * bulk_import.c -- POST /v1/users/import: lines cut on the loop, parsed
 * (and plain passwords hashed) in batches on the worker pool, applied in
 * line order on the loop; see bulk.h.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apikey.h"
#include "bulk.h"
#include "codec.h"
#include "import_line.h"
#include "pool.h"

#define BATCH_LINES_MIN 16
#define BATCH_LINES_MAX 512
#define BATCH_BYTES	(256u << 10) /* cut a batch past this much text */
#define IMPORT_INFLIGHT 4	     /* batches of one import in the pool */

enum conflict { ON_FAIL, ON_SKIP, ON_UPDATE };

/* One line of a batch: where its text is, then what the worker made. */
struct slot {
	uint64_t lineno;
	size_t off, len; /* in batch->text */
	bool overlong;	 /* over BULK_LINE_MAX: no text, fails */
	int rc;		 /* 0: f and x are ready to apply */
	struct ud_error err;
	struct ud_fields f;
	struct ud_import_extra x;
};

struct batch {
	struct pool_job base;
	struct bulk_import *im;
	const struct ud_options *opt; /* Argon2 costs */
	uint64_t seq;		      /* batches apply in this order */
	struct ud_buf text;
	struct slot *slots;
	size_t n, cap;
	struct ud_arena arena; /* what the slots' fields point at */
	bool hashed;	       /* a line carried a plain password */
	char actor[KEY_NAME_MAX + 1];
	size_t actor_len;
	struct batch *next; /* bulk_import.ready, by seq */
};

struct bulk_import {
	struct server *srv;
	enum conflict on_conflict;
	struct ud_error query_err; /* code 0: the query is good */
	struct ud_buf line;	   /* a line cut across feeds */
	bool overlong;		   /* discarding the rest of a long line */
	uint64_t lineno, created, updated, skipped, failed;
	unsigned nerrors;
	struct ud_buf errors; /* ",{...}" per reported error */
	struct batch *cur;    /* being filled */
	unsigned batch_lines; /* lines per batch, adapted */
	uint64_t next_seq, apply_seq;
	unsigned inflight;   /* batches submitted and not applied */
	struct batch *ready; /* returned early, waiting for their turn */
	bulk_import_wake_fn wake;
	void *wake_ctx;
	bool want_more; /* feed said stop: wake MORE when there is room */
	bool ending;	/* end said pending: wake DONE when all applied */
	bool orphan;	/* freed by its owner with batches in flight */
	char actor[KEY_NAME_MAX + 1];
	size_t actor_len;
};

/* ---- the query ----------------------------------------------------------- */

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
				    size_t query_len, bulk_import_wake_fn wake,
				    void *ctx)
{
	struct bulk_import *im = calloc(1, sizeof(*im));
	if (!im)
		return NULL;
	im->srv = srv;
	im->wake = wake;
	im->wake_ctx = ctx;
	im->batch_lines = BATCH_LINES_MIN;
	conflict_query(query, query_len, &im->on_conflict, &im->query_err);
	return im;
}

/* ---- the worker: parse a batch ------------------------------------------- */

/* A plain password: hash it here and keep only the hash. */
static int slot_hash(struct batch *b, struct slot *s)
{
	struct ud_fields *f = &s->f;
	char *h = ud_arena_alloc(&b->arena, UD_PWHASH_MAX);
	int rc = h ? ud_password_hash(b->opt, f->password, f->password_len, h,
				      &s->err)
		   : ud_error_set(&s->err, UD_ENOMEM, NULL, "out of memory");
	sodium_memzero((char *)f->password, f->password_len); /* arena's */
	sodium_memzero(b->text.data + s->off, s->len);
	b->hashed = true;
	if (rc)
		return rc;
	f->set = (f->set & ~(unsigned)UD_F_PASSWORD) | UD_F_PASSWORD_HASH;
	f->password = NULL;
	f->password_len = 0;
	f->password_hash = h;
	f->password_hash_len = strlen(h);
	return 0;
}

static void batch_work(struct pool_job *pj)
{
	struct batch *b = (struct batch *)pj;
	for (size_t i = 0; i < b->n; i++) {
		struct slot *s = &b->slots[i];
		if (s->overlong) {
			s->rc =
			    ud_error_set(&s->err, UD_ETOOLARGE, NULL,
					 "line over %u bytes", BULK_LINE_MAX);
			continue;
		}
		s->rc = import_line_parse(b->text.data + s->off, s->len, &s->f,
					  &s->x, &b->arena, &s->err);
		if (s->rc == 0 && (s->f.set & UD_F_PASSWORD))
			s->rc = slot_hash(b, s);
	}
}

/* ---- the loop: apply a batch --------------------------------------------- */

static void line_failed(struct bulk_import *im, uint64_t lineno,
			const struct ud_error *err)
{
	struct ud_buf *b = &im->errors;
	const char *code = ud_code_name(err->code ? err->code : UD_EINTERNAL);
	char num[32];
	im->failed++;
	if (im->nerrors >= BULK_ERRORS_MAX)
		return;
	im->nerrors++;
	snprintf(num, sizeof num,
		 ",{\"line\":%llu,\"code\":", (unsigned long long)lineno);
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

/* A line that may name an existing user (skip or update): per
 * on_conflict.  1 when it names none (create it), else 0 or a code. */
static int line_conflict(struct bulk_import *im, const struct ud_fields *f,
			 const struct ud_import_extra *x, struct ud_error *err)
{
	ud_db *db = im->srv->db;
	const ud_user *by_id =
	    (f->set & UD_F_ID) ? ud_user_get(db, f->id, f->id_len) : NULL;
	const ud_user *by_email =
	    ud_user_get_by_email(db, f->email, f->email_len);
	if (!by_id && !by_email)
		return 1;
	if (im->on_conflict == ON_SKIP) {
		im->skipped++;
		return 0;
	}
	if (by_id && by_email && by_id != by_email)
		return ud_error_set(err, UD_EDUPEMAIL, "email",
				    "the id and the email belong to two "
				    "different users");
	int rc = ud_user_import_update(db, by_id ? by_id : by_email, f, x, NULL,
				       err);
	if (rc == 0)
		im->updated++;
	return rc;
}

/* One parsed line.  on_conflict=fail needs no lookup of its own: the
 * create refuses an existing id or email with the same 409. */
static int line_commit(struct bulk_import *im, struct slot *s,
		       struct ud_error *err)
{
	int rc = im->on_conflict == ON_FAIL
		     ? 1
		     : line_conflict(im, &s->f, &s->x, err);
	if (rc != 1)
		return rc;
	rc = ud_user_import(im->srv->db, &s->f, &s->x, NULL, err);
	if (rc == 0)
		im->created++;
	return rc;
}

static void batch_apply(struct bulk_import *im, struct batch *b)
{
	/* the request's key caused these, not whichever ran last */
	ud_set_actor(im->srv->db, b->actor_len ? b->actor : NULL, b->actor_len);
	server_actor_forget(im->srv);
	for (size_t i = 0; i < b->n; i++) {
		struct slot *s = &b->slots[i];
		struct ud_error err = {0};
		if (s->rc)
			line_failed(im, s->lineno, &s->err);
		else if (line_commit(im, s, &err))
			line_failed(im, s->lineno, &err);
	}
	/* A batch that hashed passwords held a worker for a long time: cut
	 * the next ones to one line, so that other clients' password work
	 * queues between them; else grow towards BATCH_LINES_MAX. */
	if (b->hashed)
		im->batch_lines = 1;
	else if (im->batch_lines < BATCH_LINES_MAX)
		im->batch_lines *= 2;
}

static void batch_free(struct batch *b)
{
	if (!b)
		return;
	if (b->hashed) /* the arena held plain passwords' copies too */
		sodium_memzero(b->text.data, b->text.len);
	ud_buf_free(&b->text);
	ud_arena_free(&b->arena);
	free(b->slots);
	free(b);
}

static void import_destroy(struct bulk_import *im)
{
	while (im->ready) {
		struct batch *b = im->ready;
		im->ready = b->next;
		batch_free(b);
	}
	batch_free(im->cur);
	if (im->line.data)
		sodium_memzero(im->line.data, im->line.cap);
	ud_buf_free(&im->line);
	ud_buf_free(&im->errors);
	free(im);
}

/* A batch came back (in any order): apply every batch whose turn it is. */
static void batch_done(struct pool_job *pj)
{
	struct batch *b = (struct batch *)pj, **pp;
	struct bulk_import *im = b->im;
	for (pp = &im->ready; *pp && (*pp)->seq < b->seq; pp = &(*pp)->next)
		;
	b->next = *pp;
	*pp = b;
	while (im->ready && im->ready->seq == im->apply_seq) {
		b = im->ready;
		im->ready = b->next;
		batch_apply(im, b);
		batch_free(b);
		im->apply_seq++;
		im->inflight--;
	}
	if (im->orphan) {
		if (im->inflight == 0)
			import_destroy(im);
		return;
	}
	if (im->want_more && im->inflight < IMPORT_INFLIGHT) {
		im->want_more = false;
		im->wake(im->wake_ctx, BULK_IMPORT_MORE); /* may free im */
	} else if (im->ending && im->inflight == 0) {
		im->ending = false;
		im->wake(im->wake_ctx, BULK_IMPORT_DONE); /* may free im */
	}
}

/* ---- the loop: cut lines into batches ------------------------------------ */

static void batch_submit(struct bulk_import *im)
{
	struct batch *b = im->cur;
	im->cur = NULL;
	b->seq = im->next_seq++;
	memcpy(b->actor, im->actor, im->actor_len);
	b->actor_len = im->actor_len;
	im->inflight++;
	pool_submit(im->srv->pool, &b->base);
}

/* The batch being filled, with room for one more line; NULL: no memory. */
static struct batch *batch_cur(struct bulk_import *im)
{
	struct batch *b = im->cur;
	if (b)
		return b;
	if (!(b = calloc(1, sizeof(*b))) ||
	    !(b->slots = calloc(im->batch_lines, sizeof(*b->slots)))) {
		free(b);
		return NULL;
	}
	b->cap = im->batch_lines;
	b->base.work = batch_work;
	b->base.done = batch_done;
	b->im = im;
	b->opt = &im->srv->dbopt;
	return im->cur = b;
}

/* Line number lineno, s[0..n) (NULL: over the limit), joins the batch. */
static void slot_add(struct bulk_import *im, const char *s, size_t n)
{
	struct batch *b = batch_cur(im);
	struct ud_error err;
	struct slot *sl;
	im->lineno++;
	if (!b || (s && ud_buf_append(&b->text, s, n))) {
		ud_error_set(&err, UD_ENOMEM, NULL, "out of memory");
		line_failed(im, im->lineno, &err);
		return;
	}
	sl = &b->slots[b->n++];
	sl->lineno = im->lineno;
	sl->overlong = !s;
	sl->off = s ? b->text.len - n : 0;
	sl->len = s ? n : 0;
	if (b->n >= b->cap || b->text.len >= BATCH_BYTES)
		batch_submit(im);
}

static void line_cut(struct bulk_import *im, const char *s, size_t n)
{
	if (n && s[n - 1] == '\r')
		n--;
	size_t i = 0;
	while (i < n && (s[i] == ' ' || s[i] == '\t'))
		i++;
	if (i == n) {
		im->lineno++; /* a blank line is no user */
		return;
	}
	slot_add(im, s, n);
}

bool bulk_import_feed(struct bulk_import *im, const char *actor,
		      size_t actor_len, const char *p, size_t n)
{
	const char *end = p + n;
	if (im->query_err.code)
		return true;
	if (actor_len > KEY_NAME_MAX)
		actor_len = KEY_NAME_MAX;
	memcpy(im->actor, actor, actor_len);
	im->actor_len = actor_len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = (size_t)((nl ? nl : end) - p);
		if (!im->overlong && im->line.len + len > BULK_LINE_MAX) {
			im->overlong = true;
			im->line.len = 0;
		}
		if (!im->overlong && nl && im->line.len == 0)
			line_cut(im, p, len); /* whole in this piece */
		else if (!im->overlong &&
			 ud_buf_append(&im->line, p, len) == 0 && nl) {
			line_cut(im, im->line.data, im->line.len);
			im->line.len = 0;
		}
		if (nl && im->overlong) {
			slot_add(im, NULL, 0);
			im->overlong = false;
			im->line.len = 0;
		}
		p = nl ? nl + 1 : end;
	}
	if (im->inflight < IMPORT_INFLIGHT)
		return true;
	im->want_more = true;
	return false;
}

int bulk_import_end(struct bulk_import *im)
{
	if (im->query_err.code)
		return 0;
	if (im->overlong)
		slot_add(im, NULL, 0);
	else if (im->line.len)
		line_cut(im, im->line.data, im->line.len);
	im->overlong = false;
	im->line.len = 0;
	if (im->cur)
		batch_submit(im);
	if (im->inflight == 0)
		return 0;
	im->ending = true;
	return 1;
}

int bulk_import_finish(struct bulk_import *im, struct ud_buf *out,
		       struct ud_error *err)
{
	char head[256];
	if (im->query_err.code) {
		*err = im->query_err;
		return err->code;
	}
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
	if (im->inflight == 0) {
		import_destroy(im);
		return;
	}
	/* Batches in the pool point at im: they still apply (what was
	 * received is applied, in order, as it would have been), and the
	 * last one frees it. */
	im->orphan = true;
	batch_free(im->cur);
	im->cur = NULL;
}
