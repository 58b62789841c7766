/*
 * pg_load.c -- the start-up load: every user and its kept activity, by
 * COPY, at one snapshot; rules in pg.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journal.h"
#include "pg.h"
#include "pg_row.h"

#define MAX_COLS 16

struct loader {
	PGconn *c;
	ud_db *db;
	pg_skip_fn skip;
	void *skip_ctx;
	struct pg_load_stats *st;
	struct ud_buf rec;
	/* the events of the user being gathered */
	char uid[128];
	size_t uid_len;
	struct pg_event *ev;
	size_t nev, cap;
	struct ud_buf details;
};

static int pg_fail(PGconn *c, const char *what, struct ud_error *err)
{
	return ud_error_set(err, UD_EUNAVAILABLE, NULL, "postgres: %s: %s",
			    what, PQerrorMessage(c));
}

static int exec_cmd(PGconn *c, const char *sql, struct ud_error *err)
{
	PGresult *r = PQexec(c, sql);
	int ok = PQresultStatus(r) == PGRES_COMMAND_OK ||
		 PQresultStatus(r) == PGRES_TUPLES_OK;

	PQclear(r);
	return ok ? 0 : pg_fail(c, sql, err);
}

/* Undo COPY text escaping of one field in place; "\N" is NULL. */
static void copy_field(char *s, size_t n, struct pg_val *v)
{
	static const char esc[] = "b\bf\fn\nr\rt\tv\v";
	size_t i, o = 0;

	if (n == 2 && s[0] == '\\' && s[1] == 'N') {
		*v = (struct pg_val){NULL, 0};
		return;
	}
	for (i = 0; i < n; i++) {
		char ch = s[i];
		if (ch == '\\' && i + 1 < n) {
			const char *e = strchr(esc, s[++i]);
			ch = e && (e - esc) % 2 == 0 ? e[1] : s[i];
		}
		s[o++] = ch;
	}
	*v = (struct pg_val){s, o};
}

/* Split one COPY row into want fields.  0 or -1. */
static int copy_split(char *line, size_t n, struct pg_val *v, int want)
{
	int f = 0;
	size_t start = 0;

	if (n && line[n - 1] == '\n')
		n--;
	for (size_t i = 0; i <= n; i++) {
		if (i < n && line[i] != '\t')
			continue;
		if (f == want)
			return -1;
		copy_field(line + start, i - start, &v[f++]);
		start = i + 1;
	}
	return f == want ? 0 : -1;
}

static void skipped(struct loader *l, const char *what, const char *why)
{
	l->st->rows_skipped++;
	if (l->skip)
		l->skip(l->skip_ctx, what, why);
}

static void load_user(struct loader *l, const struct pg_val *v)
{
	struct ud_error e = {0};
	char what[160];

	l->rec.len = 0;
	snprintf(what, sizeof what, "user %.*s",
		 v[PGU_ID].s ? (int)v[PGU_ID].n : 4,
		 v[PGU_ID].s ? v[PGU_ID].s : "NULL");
	if (pg_row_put(v, l->st->users + l->st->rows_skipped + 1, -1, 0,
		       &l->rec, &e) ||
	    ud_db_apply(l->db, l->rec.data, l->rec.len, &e)) {
		skipped(l, what, e.message);
		return;
	}
	l->st->users++;
}

/* Apply the gathered log of l->uid, if any. */
static void flush_log(struct loader *l)
{
	struct ud_error e = {0};
	bool live;
	char what[160];

	if (!l->nev)
		return;
	live = ud_user_get(l->db, l->uid, l->uid_len) != NULL;
	l->rec.len = 0;
	snprintf(what, sizeof what, "events of %.*s", (int)l->uid_len, l->uid);
	if (pg_row_log(l->uid, l->uid_len, !live, l->ev, l->nev, &l->details,
		       &l->rec) ||
	    ud_db_apply(l->db, l->rec.data, l->rec.len, &e))
		skipped(l, what, e.message);
	else
		l->st->events += l->nev;
	l->nev = 0;
	l->details.len = 0;
}

static void load_event(struct loader *l, const struct pg_val *v)
{
	struct ud_error e = {0};
	const struct pg_val *u = &v[PGE_USER_ID];

	if (!u->s || u->n >= sizeof l->uid) {
		skipped(l, "an event", "user_id is NULL or too long");
		return;
	}
	if (u->n != l->uid_len || memcmp(u->s, l->uid, u->n)) {
		flush_log(l);
		memcpy(l->uid, u->s, u->n);
		l->uid_len = u->n;
	}
	if (l->nev == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 128;
		struct pg_event *ev = realloc(l->ev, cap * sizeof(*ev));
		if (!ev) {
			skipped(l, "an event", "out of memory");
			return;
		}
		l->ev = ev;
		l->cap = cap;
	}
	if (pg_row_event(v, &l->ev[l->nev], &l->details, &e))
		skipped(l, "an event", e.message);
	else
		l->nev++;
}

/* Run one COPY ... TO STDOUT and hand each row of ncols to row. */
static int copy_rows(struct loader *l, const char *sql, int ncols,
		     void (*row)(struct loader *, const struct pg_val *),
		     struct ud_error *err)
{
	PGresult *r = PQexec(l->c, sql);
	struct pg_val v[MAX_COLS];
	char *line;
	int n;

	if (PQresultStatus(r) != PGRES_COPY_OUT) {
		PQclear(r);
		return pg_fail(l->c, "COPY", err);
	}
	PQclear(r);
	while ((n = PQgetCopyData(l->c, &line, 0)) > 0) {
		if (copy_split(line, (size_t)n, v, ncols))
			skipped(l, "a row", "wrong number of columns");
		else
			row(l, v);
		PQfreemem(line);
	}
	r = PQgetResult(l->c);
	n = n == -1 && PQresultStatus(r) == PGRES_COMMAND_OK;
	PQclear(r);
	while ((r = PQgetResult(l->c)) != NULL)
		PQclear(r);
	return n ? 0 : pg_fail(l->c, "COPY", err);
}

/* The counters record: highest version, event id and time in the data. */
static int load_counters(struct loader *l, struct ud_error *err)
{
	PGresult *r = PQexec(
	    l->c, "SELECT (SELECT coalesce(max(version), 0) FROM userdb.users),"
		  " (SELECT coalesce(max(id), 0) FROM userdb.events),"
		  " floor(extract(epoch FROM greatest("
		  "  (SELECT max(updated_at) FROM userdb.users),"
		  "  (SELECT max(created_at) FROM userdb.events),"
		  "  'epoch'::timestamptz)) * 1000)::bigint");
	struct ud_error e = {0};
	int64_t v[3];
	int rc = 0;

	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		PQclear(r);
		return pg_fail(l->c, "counters", err);
	}
	for (int i = 0; i < 3; i++)
		if (pg_row_int(PQgetvalue(r, 0, i), strlen(PQgetvalue(r, 0, i)),
			       &v[i]) ||
		    v[i] < 0)
			rc = UD_EINVAL;
	PQclear(r);
	l->rec.len = 0;
	if (rc ||
	    pg_row_counters((uint64_t)v[0], (uint64_t)v[1], v[2], &l->rec) ||
	    ud_db_apply(l->db, l->rec.data, l->rec.len, &e))
		return ud_error_set(err, UD_EUNAVAILABLE, NULL,
				    "postgres: counters out of range: %s",
				    e.message);
	return 0;
}

int pg_load(PGconn *c, ud_db *db, const char *snapshot, pg_skip_fn skip,
	    void *skip_ctx, struct pg_load_stats *st, struct ud_error *err)
{
	struct loader l = {
	    .c = c, .db = db, .skip = skip, .skip_ctx = skip_ctx, .st = st};
	char set[128];
	int rc;

	memset(st, 0, sizeof(*st));
	snprintf(set, sizeof set, "SET TRANSACTION SNAPSHOT '%s'",
		 snapshot ? snapshot : "");
	if (snapshot &&
	    strspn(snapshot, "0123456789ABCDEF-") != strlen(snapshot))
		return ud_error_set(err, UD_EINVAL, NULL,
				    "postgres: bad snapshot name");
	rc =
	    exec_cmd(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", err);
	if (rc == 0 && snapshot)
		rc = exec_cmd(c, set, err);
	if (rc == 0)
		rc = load_counters(&l, err);
	if (rc == 0)
		rc = copy_rows(&l,
			       "COPY (SELECT " PG_USERS_COLS
			       " FROM userdb.users ORDER BY created_at, id)"
			       " TO STDOUT",
			       PGU__COUNT, load_user, err);
	if (rc == 0)
		rc = copy_rows(&l,
			       "COPY (SELECT " PG_EVENTS_COLS
			       " FROM (SELECT *, row_number() OVER (PARTITION"
			       " BY user_id ORDER BY id DESC) AS k FROM"
			       " userdb.events) e WHERE k <= 100"
			       " ORDER BY user_id, id) TO STDOUT",
			       PGE__COUNT, load_event, err);
	if (rc == 0)
		flush_log(&l);
	if (rc == 0)
		rc = exec_cmd(c, "COMMIT", err);
	else
		PQclear(PQexec(c, "ROLLBACK"));
	ud_buf_free(&l.rec);
	ud_buf_free(&l.details);
	free(l.ev);
	return rc;
}
