/*
 * pgcache_write.c -- writes through the connector: PostgreSQL first, then
 * the cache (userdb_pg.h).
 *
 * The engine does what a write is (validation, a generated id, the
 * password hash, the times, the new ETag, the activity event) and hands
 * the resulting change record to its journal; our journal is
 * pgc_journal_cb, which commits that record in PostgreSQL with the same
 * prepared statements a userdb node uses (pg_write_stmt) and returns
 * PostgreSQL's verdict, so the engine applies the change to the cache only
 * once it committed.  The store written to is the cache when the feed
 * streams (pgc_keeping), else scratch: the result is returned, not kept.
 *
 * A user's ETag is the row's version, and every statement but a create is
 * conditional on the version the store held (WHERE version = $old); a
 * refusal (UD_EPRECONDITION) means the cached copy was stale or someone
 * wrote in between: the user is reloaded and the write tried again.
 */
#include <stdio.h>
#include <string.h>

#include <libpq-fe.h>

#include "db.h"
#include "journal.h"
#include "pg_row.h"
#include "pg_write.h"
#include "pgcache_int.h"

#define WRITE_TRIES 4

int pgc_journal_cb(void *ctx, const void *rec, size_t len)
{
	ud_pg *c = ctx;
	struct pg_row_params p;
	const char *name;
	PGresult *res;
	uint32_t failed;
	uint64_t ver;
	int rc;

	ver = pg_write_old_version(c->writing, rec, len, &failed);
	if ((rc = pg_row_params(rec, len, ver, failed, &p)))
		return rc == UD_EINVAL ? UD_EINTERNAL : rc;
	if (p.kind == PGS_NONE || !pg_write_stmt(p.kind, &name)) {
		ud_buf_free(&p.txt);
		return 0;
	}
	if (!c->q) {
		ud_buf_free(&p.txt);
		return UD_EUNAVAILABLE;
	}
	res = PQexecPrepared(c->q, name, p.n, p.p, p.len, NULL, 0);
	c->st.queries++;
	rc = pg_write_verdict(res);
	c->jcode = rc;
	snprintf(c->jmsg, sizeof c->jmsg, "%s",
		 rc == UD_EPRECONDITION ? "the user changed in postgres"
					: PQresultErrorMessage(res));
	c->jmsg[strcspn(c->jmsg, "\n")] = 0;
	PQclear(res);
	if (rc == UD_EUNAVAILABLE && PQstatus(c->q) == CONNECTION_BAD)
		pgc_query_broken(c);
	ud_buf_free(&p.txt);
	return rc;
}

/* One write on the store that holds user id (loaded first), with the
 * retries of a stale copy.  What the write does: */
struct wop {
	enum {
		W_UPDATE,
		W_DELETE,
		W_PASSWORD,
		W_VERIFY,
		W_SUSPEND,
		W_LINK,
		W_UNLINK
	} kind;
	const struct ud_fields *f;
	uint64_t if_match;
	const char *pw; /* the password; W_LINK, W_UNLINK: the target */
	size_t pw_len;
	bool *valid;
	bool suspended;
	const char *ext; /* W_LINK: the external user id and details */
	size_t ext_len;
	const void *details;
	size_t details_len;
};

static int run(ud_db *db, const char *id, size_t len, const struct wop *w,
	       const ud_user **out, struct ud_error *err)
{
	switch (w->kind) {
	case W_UPDATE:
		return ud_user_update(db, id, len, w->f, w->if_match, out, err);
	case W_DELETE:
		return ud_user_delete(db, id, len, w->if_match, err);
	case W_PASSWORD:
		return ud_user_set_password(db, id, len, w->pw, w->pw_len, out,
					    err);
	case W_VERIFY:
		return ud_user_verify_password(db, id, len, w->pw, w->pw_len,
					       w->valid, err);
	case W_SUSPEND:
		return ud_user_set_suspended(db, id, len, w->suspended, out,
					     err);
	case W_LINK:
		return ud_user_link_identity(db, id, len, w->pw, w->pw_len,
					     w->ext, w->ext_len, w->details,
					     w->details_len, out, err);
	default:
		return ud_user_unlink_identity(db, id, len, w->pw, w->pw_len,
					       out, err);
	}
}

/* A refusal PostgreSQL gave: its message (the engine's codes carry their
 * own). */
static int verdict_error(ud_pg *c, int rc, struct ud_error *err)
{
	if (rc == 0 || rc != c->jcode)
		return rc;
	return ud_error_set(err, rc,
			    rc == UD_EDUPEMAIL ? "email"
			    : rc == UD_EDUPID  ? "id"
					       : NULL,
			    "postgres: %s", c->jmsg);
}

static int write_user(ud_pg *c, const char *id, size_t len, const struct wop *w,
		      const ud_user **out, struct ud_error *err)
{
	bool fresh = false;
	int rc = UD_EPRECONDITION;

	for (int i = 0; i < WRITE_TRIES && rc == UD_EPRECONDITION; i++) {
		const ud_user *u;
		if ((rc = pgc_query_conn(c, err)))
			return rc;
		if (!(u = pgc_lookup(c, UD_KEY_ID, id, len, err)))
			return err ? err->code : UD_ENOTFOUND;
		c->writing = (const ud_user *)db_find(c->db, id, len) == u
				 ? c->db
				 : c->scratch;
		c->jcode = 0;
		rc = verdict_error(c, run(c->writing, id, len, w, out, err),
				   err);
		if (rc != UD_EPRECONDITION || (fresh && w->if_match))
			break;
		/* stale copy, or a write in between: reload and retry */
		pgc_evict(c, id, len);
		fresh = true;
	}
	return rc;
}

int ud_pg_create(ud_pg *c, const struct ud_fields *f, const ud_user **out,
		 struct ud_error *err)
{
	const ud_user *u = NULL;
	struct ud_user_view v;
	int rc;

	if ((rc = pgc_query_conn(c, err)))
		return rc;
	if (!pgc_keeping(c) && pgc_scratch_reset(c))
		return ud_error_set(err, UD_ENOMEM, NULL, "out of memory");
	c->writing = pgc_keeping(c) ? c->db : c->scratch;
	c->jcode = 0;
	rc = verdict_error(c, ud_user_create(c->writing, f, &u, err), err);
	if (rc == 0) {
		ud_user_view(u, &v);
		neg_drop(&c->neg, neg_key(UD_KEY_ID, v.id, v.id_len));
		neg_drop(&c->neg, neg_key(UD_KEY_EMAIL, v.email, v.email_len));
	}
	if (out)
		*out = u;
	return rc;
}

int ud_pg_update(ud_pg *c, const char *id, size_t len,
		 const struct ud_fields *f, uint64_t if_match,
		 const ud_user **out, struct ud_error *err)
{
	struct wop w = {.kind = W_UPDATE, .f = f, .if_match = if_match};
	const ud_user *u = NULL;
	struct ud_user_view v;
	int rc = write_user(c, id, len, &w, &u, err);

	if (rc == 0 && u) {
		ud_user_view(u, &v);
		neg_drop(&c->neg, neg_key(UD_KEY_EMAIL, v.email, v.email_len));
	}
	if (out)
		*out = u;
	return rc;
}

int ud_pg_delete(ud_pg *c, const char *id, size_t len, uint64_t if_match,
		 struct ud_error *err)
{
	struct wop w = {.kind = W_DELETE, .if_match = if_match};

	return write_user(c, id, len, &w, NULL, err);
}

int ud_pg_set_password(ud_pg *c, const char *id, size_t len, const char *pw,
		       size_t pw_len, const ud_user **out, struct ud_error *err)
{
	struct wop w = {.kind = W_PASSWORD, .pw = pw, .pw_len = pw_len};

	return write_user(c, id, len, &w, out, err);
}

int ud_pg_verify_password(ud_pg *c, const char *id, size_t len, const char *pw,
			  size_t pw_len, bool *valid, struct ud_error *err)
{
	struct wop w = {
	    .kind = W_VERIFY, .pw = pw, .pw_len = pw_len, .valid = valid};

	*valid = false;
	return write_user(c, id, len, &w, NULL, err);
}

int ud_pg_set_suspended(ud_pg *c, const char *id, size_t len, bool suspended,
			const ud_user **out, struct ud_error *err)
{
	struct wop w = {.kind = W_SUSPEND, .suspended = suspended};

	return write_user(c, id, len, &w, out, err);
}

int ud_pg_link_identity(ud_pg *c, const char *id, size_t len,
			const char *target, size_t target_len,
			const char *ext_user_id, size_t ext_user_id_len,
			const void *details, size_t details_len,
			const ud_user **out, struct ud_error *err)
{
	struct wop w = {.kind = W_LINK,
			.pw = target,
			.pw_len = target_len,
			.ext = ext_user_id,
			.ext_len = ext_user_id_len,
			.details = details,
			.details_len = details_len};

	return write_user(c, id, len, &w, out, err);
}

int ud_pg_unlink_identity(ud_pg *c, const char *id, size_t len,
			  const char *target, size_t target_len,
			  const ud_user **out, struct ud_error *err)
{
	struct wop w = {.kind = W_UNLINK, .pw = target, .pw_len = target_len};

	return write_user(c, id, len, &w, out, err);
}
