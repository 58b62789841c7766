/*
 * pg_apply.c -- replication row changes into the store; see pg_apply.h.
 */
#include "pg_apply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "db.h"
#include "journal.h"
#include "record.h"

struct filled {
	struct pg_val v[PGU__COUNT];
	char pw[UD_PWHASH_MAX];
	char ms[3][24];
	struct ud_buf json[2];
};

/* A timestamptz column as the integer milliseconds pg_row_put reads. */
static int time_col(struct filled *f, int col, int slot, struct ud_error *err)
{
	int64_t ms = -1;

	if (f->v[col].s && pg_row_time(f->v[col].s, f->v[col].n, &ms))
		return ud_error_set(err, UD_EINVAL, NULL,
				    "a time column is not ISO UTC text");
	if (!f->v[col].s && col != PGU_SIGNIN_MS)
		return ud_error_set(err, UD_EINVAL, NULL, "a time is NULL");
	f->v[col].n = (size_t)snprintf(f->ms[slot], sizeof f->ms[slot], "%lld",
				       (long long)ms);
	f->v[col].s = f->ms[slot];
	return 0;
}

/* Unchanged TOAST columns: memory's value. */
static int keep_own(struct filled *f, const struct pg_row_change *c,
		    const ud_user *u, struct ud_error *err)
{
	struct ud_user_view v;

	if (!u) {
		for (int i = 0; i < PGU__COUNT; i++)
			if (c->unchanged[i])
				return ud_error_set(
				    err, UD_EINVAL, NULL,
				    "unchanged column of an unknown user");
		return 0;
	}
	ud_user_view(u, &v);
	if (c->unchanged[PGU_CUSTOM]) {
		if (codec_mp_to_json(v.custom_data, v.custom_data_len,
				     &f->json[0]))
			return UD_ENOMEM;
		f->v[PGU_CUSTOM] =
		    (struct pg_val){f->json[0].data, f->json[0].len};
	}
	if (c->unchanged[PGU_IDENT]) {
		if (codec_mp_to_json(v.identities, v.identities_len,
				     &f->json[1]))
			return UD_ENOMEM;
		f->v[PGU_IDENT] =
		    (struct pg_val){f->json[1].data, f->json[1].len};
	}
	if (c->unchanged[PGU_PWHASH]) {
		const struct record *r = (const struct record *)u;
		struct record_parts p;
		const char *pw;
		size_t n;
		record_parts(r, &p);
		pw = record_parts_pw_text(&p, f->pw, &n);
		f->v[PGU_PWHASH] = (struct pg_val){n ? pw : NULL, n};
	}
	if (c->unchanged[PGU_NAME] || c->unchanged[PGU_EMAIL] ||
	    c->unchanged[PGU_AVATAR])
		return ud_error_set(err, UD_EINVAL, NULL,
				    "unexpected unchanged column");
	return 0;
}

/* f->v: row c as pg_row_put reads it (times in milliseconds, unchanged
 * TOAST columns from u). */
static int row_fill(struct filled *f, const struct pg_row_change *c,
		    const ud_user *u, struct ud_error *err)
{
	int rc;

	memcpy(f->v, c->v, sizeof f->v);
	if ((rc = time_col(f, PGU_SIGNIN_MS, 0, err)) ||
	    (rc = time_col(f, PGU_CREATED_MS, 1, err)) ||
	    (rc = time_col(f, PGU_UPDATED_MS, 2, err)))
		return rc;
	return keep_own(f, c, u, err);
}

static int apply_put(ud_db *db, const struct pg_row_change *c, const ud_user *u,
		     struct ud_error *err)
{
	struct filled f = {0};
	struct ud_user_view view;
	struct ud_buf rec = {0};
	int64_t ver;
	int rc;

	if (!c->v[PGU_VERSION].s ||
	    pg_row_int(c->v[PGU_VERSION].s, c->v[PGU_VERSION].n, &ver) ||
	    ver < 1)
		return ud_error_set(err, UD_EINVAL, NULL, "bad version");
	if (u) {
		ud_user_view(u, &view);
		if (view.etag == (uint64_t)ver)
			return 1; /* already applied */
	}
	if ((rc = row_fill(&f, c, u, err)))
		goto done;
	if (u)
		rc = pg_row_put(f.v, ((const struct record *)u)->seq,
				UD_EV_UPDATED, db->last_event + 1, &rec, err);
	else
		rc = pg_row_put(f.v, db->last_event + 1, UD_EV_CREATED,
				db->last_event + 1, &rec, err);
	if (rc == 0)
		rc = ud_db_apply_foreign(db, rec.data, rec.len, err);
done:
	ud_buf_free(&rec);
	ud_buf_free(&f.json[0]);
	ud_buf_free(&f.json[1]);
	return rc;
}

int pg_apply_change(ud_db *db, const struct pg_row_change *c, int64_t now_ms,
		    struct ud_error *err)
{
	const struct pg_val *id = &c->v[PGU_ID];
	const ud_user *u;
	struct ud_buf rec = {0};
	int rc;

	if (c->table != PGT_USERS || c->own)
		return 1;
	if (!id->s)
		return ud_error_set(err, UD_EINVAL, NULL, "a row without id");
	u = ud_user_get(db, id->s, id->n);
	if (c->op != PGO_DELETE)
		return apply_put(db, c, u, err);
	if (!u)
		return 1;
	rc = pg_row_delete(id->s, id->n, db->last_event + 1, now_ms, &rec);
	if (rc == 0)
		rc = ud_db_apply_foreign(db, rec.data, rec.len, err);
	ud_buf_free(&rec);
	return rc;
}

int pg_apply_restore(ud_db *db, const char *id, size_t id_len,
		     const struct pg_val *row, struct ud_error *err)
{
	const ud_user *u = ud_user_get(db, id, id_len);
	struct ud_buf rec = {0};
	int rc;

	if (!row && !u)
		return 1;
	if (!row)
		rc = pg_row_delete(id, id_len, 0, 0, &rec);
	else
		rc = pg_row_put(row,
				u ? ((const struct record *)u)->seq
				  : db->last_event + 1,
				-1, 0, &rec, err);
	if (rc == 0)
		rc = ud_db_restore(db, rec.data, rec.len, err);
	ud_buf_free(&rec);
	return rc;
}

int pg_apply_describe(ud_db *db, const struct pg_row_change *c,
		      struct ud_buf *rec, int64_t *at_ms, struct ud_error *err)
{
	const struct pg_val *id = &c->v[PGU_ID];
	const ud_user *u;
	struct filled f = {0};
	int rc;

	if (c->table != PGT_USERS || !id->s)
		return ud_error_set(err, UD_EINVAL, NULL, "not a user row");
	if (c->op == PGO_DELETE)
		return pg_row_delete(id->s, id->n, 1, *at_ms, rec);
	u = ud_user_get(db, id->s, id->n);
	rc = row_fill(&f, c, u, err);
	if (rc == 0)
		rc = pg_row_put(f.v, u ? ((const struct record *)u)->seq : 1,
				UD_EV_UPDATED, 1, rec, err);
	if (rc == 0)
		pg_row_int(f.v[PGU_UPDATED_MS].s, f.v[PGU_UPDATED_MS].n, at_ms);
	ud_buf_free(&f.json[0]);
	ud_buf_free(&f.json[1]);
	return rc;
}
