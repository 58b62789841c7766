/*
 * pg_load.c -- the start-up load: every user and its kept activity, by
 * COPY, at one snapshot; rules in pg.h.
 *
 * Speed (bench/pg.sh, 1M users with one event each, shared 2-core VM).
 * The first version took ~21 s from exec to ready: COPY in text form made
 * PostgreSQL turn every timestamp into numeric epoch arithmetic and escape
 * every field (users ~2.4 s of PostgreSQL CPU, events with a window
 * function ~1.3-2 s), and each row went through ud_db_apply() alone (the
 * id and email sets grown by rehashing, each key hashed and looked up
 * twice).  Now:
 *   - COPY ... (FORMAT binary) of the plain columns: no escaping, times as
 *     int64 microseconds, converted here into the codec's row form
 *     (decimal text, pg_row.h);
 *   - events ORDER BY user_id COLLATE "C", id without the window
 *     function; the newest UD_LOG_KEEP of each user are kept here;
 *   - users through the engine's load halves (ud_load_begin sized by
 *     pg_class.reltuples, ud_load_prepare + ud_load_prefetch +
 *     ud_load_apply in batches of LOAD_BATCH): the same checks as
 *     ud_db_apply(), keys hashed once, no rehash;
 *   - two threads for the users: the owner reads COPY rows into one slot
 *     of LOAD_BATCH and applies the slots in order, a helper turns the
 *     other slot's rows into prepared records (binary fields, pg_row_put,
 *     ud_load_prepare: the half that reads no store).  Skips are reported
 *     by the owner, in row order.  No helper (pthread_create failed): the
 *     owner prepares each slot itself.
 * Figures before/after: bench/README.md.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journal.h"
#include "pg.h"
#include "pg_row.h"

#define MAX_COLS      16
#define LOAD_BATCH    512
#define LOAD_PREFETCH 8
#define PG_EPOCH_MS   946684800000LL /* 2000-01-01 in Unix milliseconds */

/* How a binary COPY column becomes the codec's row form. */
enum col_kind {
	COL_TEXT,   /* text: as it is */
	COL_JSON,   /* jsonb: version byte 1, then JSON text */
	COL_TIME,   /* timestamptz: int64 us since 2000 -> ms text */
	COL_SIGNIN, /* the same, NULL -> "-1" */
	COL_INT8,
	COL_INT4,
};

static const unsigned char user_kinds[PGU__COUNT] = {
    [PGU_CUSTOM] = COL_JSON,	  [PGU_IDENT] = COL_JSON,
    [PGU_SIGNIN_MS] = COL_SIGNIN, [PGU_CREATED_MS] = COL_TIME,
    [PGU_UPDATED_MS] = COL_TIME,  [PGU_VERSION] = COL_INT8,
    [PGU_FAILED] = COL_INT4,
};
static const unsigned char event_kinds[PGE__COUNT] = {
    [PGE_ID] = COL_INT8, [PGE_MS] = COL_TIME, [PGE_DETAILS] = COL_JSON};

/* The columns of the two COPYs, in enum pg_user_col / pg_event_col order. */
#define USERS_BIN                                                              \
	"id, name, email, role, status, avatar, custom_data, identities,"      \
	" password_hash, last_sign_in_at, created_at, updated_at, version,"    \
	" failed_verifies"
#define EVENTS_BIN "id, user_id, event, created_at, details"

/* A batch of user rows on their way: read (the owner), prepared (the
 * helper, or the owner when there is none), applied (the owner). */
enum { SLOT_FREE, SLOT_FULL, SLOT_DONE };
struct slot {
	int state;
	char *line[LOAD_BATCH]; /* PQgetCopyData buffers, freed when applied */
	const unsigned char *p[LOAD_BATCH];
	size_t n[LOAD_BATCH], nrows;
	uint64_t seq0; /* creation seq of row 0 */
	/* prepared: row r is batch entry at[r], or -1 with err[r] */
	int at[LOAD_BATCH];
	struct ud_error *err;
	char ids[LOAD_BATCH][72];
	struct ud_load_batch *batch;
	struct ud_buf rec;
	char num[MAX_COLS][24];
};

struct loader {
	PGconn *c;
	ud_db *db;
	pg_skip_fn skip;
	void *skip_ctx;
	struct pg_load_stats *st;
	struct ud_buf rec;
	bool header;		/* its first row (with the file header) */
	char num[MAX_COLS][24]; /* converted numbers of the current row */
	uint64_t rows; /* user rows read: the next one's creation seq */
	/* the users pipeline: the owner fills one slot with COPY rows while
	 * the helper prepares the other; the owner applies them in order */
	struct slot slot[2];
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
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

static uint64_t be(const unsigned char *p, int n)
{
	uint64_t v = 0;

	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/* Decimal text of v into out[24]; its length. */
static size_t dec(char *out, int64_t v)
{
	char tmp[24];
	size_t n = 0, o = 0;
	uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;

	do
		tmp[n++] = (char)('0' + u % 10);
	while ((u /= 10) != 0);
	if (v < 0)
		out[o++] = '-';
	while (n)
		out[o++] = tmp[--n];
	return o;
}

/* One field of kind k, n bytes at p (n < 0: NULL), into v; numbers are
 * written to num.  A value of the wrong width becomes NULL, which every
 * codec rule refuses where NULL is not allowed. */
static void bin_field(int k, const unsigned char *p, int32_t n, char *num,
		      struct pg_val *v)
{
	int64_t x;

	*v = (struct pg_val){NULL, 0};
	if (n < 0) {
		if (k == COL_SIGNIN)
			*v = (struct pg_val){"-1", 2};
		return;
	}
	switch (k) {
	case COL_JSON:
		if (n >= 1 && p[0] == 1)
			*v =
			    (struct pg_val){(const char *)p + 1, (size_t)n - 1};
		return;
	case COL_TIME:
	case COL_SIGNIN:
		if (n != 8)
			return;
		x = (int64_t)be(p, 8);
		if (x == INT64_MAX || x == INT64_MIN) /* +-infinity */
			return;
		x = x / 1000 - (x % 1000 < 0); /* floor to ms */
		*v = (struct pg_val){num, dec(num, x + PG_EPOCH_MS)};
		return;
	case COL_INT8:
	case COL_INT4:
		if (n != (k == COL_INT8 ? 8 : 4))
			return;
		x = k == COL_INT8 ? (int64_t)be(p, 8) : (int32_t)be(p, 4);
		*v = (struct pg_val){num, dec(num, x)};
		return;
	default:
		*v = (struct pg_val){(const char *)p, (size_t)n};
	}
}

/* One binary COPY tuple (after the file header) into want fields.
 * 1: the trailer, 0: a row, -1: not a row of want fields. */
static int bin_split(const unsigned char *kinds, char (*num)[24],
		     const unsigned char *p, size_t n, struct pg_val *v,
		     int want)
{
	size_t off = 2;

	if (n < 2)
		return -1;
	if ((int16_t)be(p, 2) == -1)
		return 1;
	if ((int)be(p, 2) != want)
		return -1;
	for (int f = 0; f < want; f++) {
		int32_t len;
		if (n - off < 4)
			return -1;
		len = (int32_t)be(p + off, 4);
		off += 4;
		if (len > 0 && n - off < (size_t)len)
			return -1;
		bin_field(kinds[f], p + off, len, num[f], &v[f]);
		off += len > 0 ? (size_t)len : 0;
	}
	return off == n ? 0 : -1;
}

/* Skip the binary COPY file header in front of the first tuple: the
 * signature, flags, extension length and extension.  0 or -1. */
static int bin_header(const unsigned char **p, size_t *n)
{
	static const char sig[11] = "PGCOPY\n\377\r\n";
	uint32_t ext;

	if (*n < 19 || memcmp(*p, sig, 11))
		return -1;
	ext = (uint32_t)be(*p + 15, 4);
	if (*n - 19 < ext)
		return -1;
	*p += 19 + ext;
	*n -= 19 + ext;
	return 0;
}

static void skipped(struct loader *l, const char *what, const char *why)
{
	l->st->rows_skipped++;
	if (l->skip)
		l->skip(l->skip_ctx, what, why);
}

/* Prepare the rows of s (any thread: touches s alone). */
static void slot_prepare(struct slot *s)
{
	struct pg_val v[MAX_COLS];
	int nb = 0;

	for (size_t r = 0; r < s->nrows; r++) {
		struct ud_error *e = &s->err[r];
		s->at[r] = -1;
		s->rec.len = 0;
		if (bin_split(user_kinds, s->num, s->p[r], s->n[r], v,
			      PGU__COUNT)) {
			snprintf(s->ids[r], sizeof s->ids[r], "a row");
			ud_error_set(e, UD_EINVAL, NULL,
				     "not a row of the expected columns");
			continue;
		}
		snprintf(s->ids[r], sizeof s->ids[r], "user %.*s",
			 v[PGU_ID].s ? (int)v[PGU_ID].n : 4,
			 v[PGU_ID].s ? v[PGU_ID].s : "NULL");
		if (pg_row_put(v, s->seq0 + r, -1, 0, &s->rec, e) == 0 &&
		    ud_load_prepare(s->batch, (size_t)nb, s->rec.data,
				    s->rec.len, e) == 0)
			s->at[r] = nb++;
	}
}

/* Apply the prepared rows of s in order (the owner); each row the codec
 * or the store refused is skipped.  Frees its lines; s is free after. */
static void slot_apply(struct loader *l, struct slot *s)
{
	struct ud_error e = {0};
	int last = -1;

	for (size_t r = 0; r < s->nrows; r++)
		if (s->at[r] >= 0)
			last = s->at[r];
	for (size_t r = 0; r < s->nrows; r++) {
		int j = s->at[r];
		if (j >= 0 && j + LOAD_PREFETCH <= last)
			ud_load_prefetch(l->db, s->batch,
					 (size_t)j + LOAD_PREFETCH);
		if (j < 0)
			skipped(l, s->ids[r], s->err[r].message);
		else if (ud_load_apply(l->db, s->batch, (size_t)j, &e))
			skipped(l, s->ids[r], e.message);
		else
			l->st->users++;
		PQfreemem(s->line[r]);
	}
	s->nrows = 0;
}

static void *helper_main(void *arg)
{
	struct loader *l = arg;

	pthread_mutex_lock(&l->mu);
	for (;;) {
		struct slot *s = NULL;
		for (int i = 0; i < 2; i++)
			if (l->slot[i].state == SLOT_FULL)
				s = &l->slot[i];
		if (l->stop)
			break;
		if (!s) {
			pthread_cond_wait(&l->cv, &l->mu);
			continue;
		}
		pthread_mutex_unlock(&l->mu);
		slot_prepare(s);
		pthread_mutex_lock(&l->mu);
		s->state = SLOT_DONE;
		pthread_cond_broadcast(&l->cv);
	}
	pthread_mutex_unlock(&l->mu);
	return NULL;
}

/* Slot i is read: have it prepared (by the helper when there is one). */
static void slot_submit(struct loader *l, int i, bool helper)
{
	if (!helper) {
		slot_prepare(&l->slot[i]);
		l->slot[i].state = SLOT_DONE;
		return;
	}
	pthread_mutex_lock(&l->mu);
	l->slot[i].state = SLOT_FULL;
	pthread_cond_broadcast(&l->cv);
	pthread_mutex_unlock(&l->mu);
}

/* Wait until slot i (if submitted) is prepared, then apply it. */
static void slot_finish(struct loader *l, int i)
{
	struct slot *s = &l->slot[i];

	pthread_mutex_lock(&l->mu);
	while (s->state == SLOT_FULL)
		pthread_cond_wait(&l->cv, &l->mu);
	pthread_mutex_unlock(&l->mu);
	if (s->state == SLOT_DONE)
		slot_apply(l, s);
	s->state = SLOT_FREE;
}

/* Apply the gathered log of l->uid, if any. */
static void flush_log(struct loader *l)
{
	struct ud_error e = {0};
	bool live;
	char what[160];
	size_t from = l->nev > UD_LOG_KEEP ? l->nev - UD_LOG_KEEP : 0;

	if (!l->nev)
		return;
	live = ud_user_get(l->db, l->uid, l->uid_len) != NULL;
	l->rec.len = 0;
	snprintf(what, sizeof what, "events of %.*s", (int)l->uid_len, l->uid);
	if (pg_row_log(l->uid, l->uid_len, !live, l->ev + from, l->nev - from,
		       &l->details, &l->rec) ||
	    ud_db_apply(l->db, l->rec.data, l->rec.len, &e))
		skipped(l, what, e.message);
	else
		l->st->events += l->nev - from;
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

/* After the last PQgetCopyData (which returned n): the COPY's verdict.
 * 0 or UD_EUNAVAILABLE. */
static int copy_end(PGconn *c, int n, struct ud_error *err)
{
	PGresult *r = PQgetResult(c);
	bool ok = n == -1 && PQresultStatus(r) == PGRES_COMMAND_OK;

	PQclear(r);
	while ((r = PQgetResult(c)) != NULL)
		PQclear(r);
	return ok ? 0 : pg_fail(c, "COPY", err);
}

/* Run one COPY ... TO STDOUT (FORMAT binary) of columns kinds[0..ncols)
 * and hand each row to row. */
static int copy_rows(struct loader *l, const char *sql,
		     const unsigned char *kinds, int ncols,
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
	l->header = true;
	while ((n = PQgetCopyData(l->c, &line, 0)) > 0) {
		const unsigned char *p = (const unsigned char *)line;
		size_t len = (size_t)n;
		int k = l->header ? bin_header(&p, &len) : 0;
		l->header = false;
		if (k == 0 && len == 0) /* the header alone */
			k = 1;
		else if (k == 0)
			k = bin_split(kinds, l->num, p, len, v, ncols);
		if (k < 0)
			skipped(l, "a row",
				"not a row of the expected columns");
		else if (k == 0)
			row(l, v);
		PQfreemem(line);
	}
	return copy_end(l->c, n, err);
}

/* The users COPY: rows gathered into slots of LOAD_BATCH, each prepared
 * while the next one fills, applied in order. */
static int copy_users(struct loader *l, bool helper, struct ud_error *err)
{
	PGresult *r = PQexec(l->c, "COPY (SELECT " USERS_BIN
				   " FROM userdb.users ORDER BY created_at, id)"
				   " TO STDOUT (FORMAT binary)");
	bool first = true;
	int cur = 0, n;
	char *line;

	if (PQresultStatus(r) != PGRES_COPY_OUT) {
		PQclear(r);
		return pg_fail(l->c, "COPY", err);
	}
	PQclear(r);
	while ((n = PQgetCopyData(l->c, &line, 0)) > 0) {
		struct slot *s = &l->slot[cur];
		const unsigned char *p = (const unsigned char *)line;
		size_t len = (size_t)n;
		bool bad = first && bin_header(&p, &len);
		first = false;
		if (bad || len == 0 || /* the header alone, or the trailer: */
		    (len == 2 && be(p, 2) == 0xffff)) {
			if (bad)
				skipped(l, "a row", "no binary COPY header");
			PQfreemem(line);
			continue;
		}
		if (s->nrows == 0)
			s->seq0 = l->rows + 1;
		l->rows++;
		s->line[s->nrows] = line;
		s->p[s->nrows] = p;
		s->n[s->nrows++] = len;
		if (s->nrows == LOAD_BATCH) {
			slot_submit(l, cur, helper);
			cur ^= 1;
			slot_finish(l, cur); /* the batch before: in order */
		}
	}
	slot_finish(l, cur ^ 1);
	if (l->slot[cur].nrows)
		slot_submit(l, cur, helper);
	slot_finish(l, cur);
	return copy_end(l->c, n, err);
}

/* Start the helper with every signal blocked (they stay the owner's). */
static bool helper_start(pthread_t *t, struct loader *l)
{
	sigset_t all, old;
	bool ok;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ok = pthread_create(t, NULL, helper_main, l) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return ok;
}

static void helper_stop(struct loader *l, pthread_t t)
{
	pthread_mutex_lock(&l->mu);
	l->stop = true;
	pthread_cond_broadcast(&l->cv);
	pthread_mutex_unlock(&l->mu);
	pthread_join(t, NULL);
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
		  "  'epoch'::timestamptz)) * 1000)::bigint,"
		  " (SELECT greatest(reltuples, 0)::bigint FROM pg_class"
		  "  WHERE oid = 'userdb.users'::regclass)");
	struct ud_error e = {0};
	int64_t v[4];
	int rc = 0;

	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		PQclear(r);
		return pg_fail(l->c, "counters", err);
	}
	for (int i = 0; i < 4; i++)
		if (pg_row_int(PQgetvalue(r, 0, i), strlen(PQgetvalue(r, 0, i)),
			       &v[i]) ||
		    v[i] < 0)
			rc = UD_EINVAL;
	PQclear(r);
	l->rec.len = 0;
	if (rc == 0) /* the users to expect: a hint for the index sizes */
		ud_load_begin(l->db, (uint64_t)v[3]);
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
	bool helper = false;
	pthread_t t;
	int rc;

	memset(st, 0, sizeof(*st));
	snprintf(set, sizeof set, "SET TRANSACTION SNAPSHOT '%s'",
		 snapshot ? snapshot : "");
	if (snapshot &&
	    strspn(snapshot, "0123456789ABCDEF-") != strlen(snapshot))
		return ud_error_set(err, UD_EINVAL, NULL,
				    "postgres: bad snapshot name");
	pthread_mutex_init(&l.mu, NULL);
	pthread_cond_init(&l.cv, NULL);
	rc =
	    exec_cmd(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", err);
	if (rc == 0 && snapshot)
		rc = exec_cmd(c, set, err);
	if (rc == 0)
		rc = load_counters(&l, err);
	for (int i = 0; i < 2 && rc == 0; i++)
		if (!(l.slot[i].batch = ud_load_batch_new(LOAD_BATCH)) ||
		    !(l.slot[i].err =
			  calloc(LOAD_BATCH, sizeof(*l.slot[i].err))))
			rc =
			    ud_error_set(err, UD_ENOMEM, NULL, "out of memory");
	if (rc == 0)
		helper = helper_start(&t, &l); /* else: all on this thread */
	if (rc == 0)
		rc = copy_users(&l, helper, err);
	if (helper)
		helper_stop(&l, t);
	if (rc == 0)
		rc = copy_rows(&l,
			       "COPY (SELECT " EVENTS_BIN " FROM userdb.events"
			       " ORDER BY user_id COLLATE \"C\", id) TO STDOUT"
			       " (FORMAT binary)",
			       event_kinds, PGE__COUNT, load_event, err);
	if (rc == 0)
		flush_log(&l);
	if (rc == 0)
		rc = exec_cmd(c, "COMMIT", err);
	else
		PQclear(PQexec(c, "ROLLBACK"));
	for (int i = 0; i < 2; i++) {
		ud_load_batch_free(l.slot[i].batch);
		free(l.slot[i].err);
		ud_buf_free(&l.slot[i].rec);
	}
	pthread_cond_destroy(&l.cv);
	pthread_mutex_destroy(&l.mu);
	ud_buf_free(&l.rec);
	ud_buf_free(&l.details);
	free(l.ev);
	return rc;
}
