/*
 * pgcache.c -- the embedded PostgreSQL connector: opening, reads through
 * the cache, the feed and its states, the helper thread; contract in
 * userdb_pg.h, states and invariants in pgcache_int.h.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "db.h"
#include "journal.h"
#include "pg.h"
#include "pg_apply.h"
#include "pg_row.h"
#include "pg_write.h"
#include "pgcache_int.h"
#include "text.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000
#define FOLD_MAX       1024 /* a folded email: 254 bytes can grow 3x */

const struct ud_pg_options ud_pg_options_default = {0};

int pgc_journal_cb(void *ctx, const void *rec, size_t len); /* write.c */

int64_t pgc_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void pgc_set_error(ud_pg *c, const char *what, const char *msg)
{
	snprintf(c->error, sizeof c->error, "%s: %s", what, msg);
	c->error[strcspn(c->error, "\n")] = 0;
}

static int backoff(int64_t *ms)
{
	int64_t b = *ms ? *ms : BACKOFF_MIN_MS;

	*ms = b * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : b * 2;
	return (int)b;
}

/* ---- stores ------------------------------------------------------------- */

static ud_db *store_new(ud_pg *c, const struct ud_options *o)
{
	ud_db *db = ud_db_new(o, NULL);

	if (db)
		ud_db_set_journal(db, pgc_journal_cb, c);
	return db;
}

int pgc_scratch_reset(ud_pg *c)
{
	struct ud_options o = c->dbopt;
	ud_db *db;

	o.max_users = o.max_bytes = 0;
	if (!(db = store_new(c, &o)))
		return UD_ENOMEM;
	ud_db_free(c->scratch);
	c->scratch = db;
	return 0;
}

/* Empty the cache (rule 3): a new store, the old one's pointers gone. */
static void flush(ud_pg *c)
{
	struct ud_stats s;
	ud_db *db;

	if (c->db && c->db->order.live == 0 && c->neg.live == 0)
		return;
	if (!(db = store_new(c, &c->dbopt)))
		return; /* out of memory: the next process tries again, and
			   pgc_keeping() says no meanwhile */
	if (c->db) {
		ud_db_stats(c->db, &s);
		c->evictions_before += s.evictions;
		ud_db_free(c->db);
	}
	c->db = db;
	neg_clear(&c->neg);
	c->epoch++;
	c->st.flushes++;
}

void pgc_evict(ud_pg *c, const char *id, size_t len)
{
	struct record *r = db_find(c->db, id, len);
	struct ulog *l;

	if (!r)
		return;
	if ((r->flags & REC_HAS_LOG) &&
	    (l = actlog_find(&c->db->log, record_id(r), r->id_len)))
		actlog_drop(&c->db->log, l);
	db_unlink(c->db, r);
}

bool pgc_keeping(const ud_pg *c)
{
	return c->feed == FEED_STREAMING && c->db;
}

/* ---- the query connection ----------------------------------------------- */

static const char *const get_sql[2] = {
    "SELECT " PG_USERS_COLS " FROM userdb.users WHERE id = $1",
    "SELECT " PG_USERS_COLS " FROM userdb.users WHERE email_folded = $1",
};
static const char *const get_name[2] = {"ud_c_get_id", "ud_c_get_email"};
#define LOG_SQL                                                                \
	"SELECT " PG_EVENTS_COLS ", count(*) OVER () FROM userdb.events"       \
	" WHERE user_id = $1 ORDER BY id DESC LIMIT $2::int OFFSET $3::int"
#define LOG_COUNT_SQL "SELECT count(*) FROM userdb.events WHERE user_id = $1"

static bool prepare(PGconn *q, const char *name, const char *sql)
{
	PGresult *r = PQprepare(q, name, sql, 0, NULL);
	bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;

	PQclear(r);
	return ok;
}

static bool prepare_all(PGconn *q)
{
	const char *name, *sql;
	bool ok = prepare(q, get_name[0], get_sql[0]) &&
		  prepare(q, get_name[1], get_sql[1]) &&
		  prepare(q, "ud_c_log", LOG_SQL) &&
		  prepare(q, "ud_c_log_n", LOG_COUNT_SQL);

	for (int k = PGS_CREATE; ok && k <= PGS_EVENT; k++)
		ok = (sql = pg_write_stmt(k, &name)) && prepare(q, name, sql);
	return ok;
}

static PGconn *query_connect(ud_pg *c, struct ud_error *err)
{
	/* the conninfo comes last, so its own connect_timeout wins */
	const char *k[] = {"connect_timeout", "dbname", NULL};
	const char *v[] = {"5", c->conninfo, NULL};
	PGconn *q = PQconnectdbParams(k, v, 1);

	if (q && PQstatus(q) == CONNECTION_OK && prepare_all(q))
		return q;
	ud_error_set(err, UD_EUNAVAILABLE, NULL, "postgres: %s",
		     q ? PQerrorMessage(q) : "out of memory");
	pgc_set_error(c, "query connection", err ? err->message : "failed");
	PQfinish(q);
	return NULL;
}

int pgc_query_conn(ud_pg *c, struct ud_error *err)
{
	int64_t now = pgc_now_ms();

	if (c->q)
		return 0;
	if (now < c->q_next_try_ms)
		return ud_error_set(err, UD_EUNAVAILABLE, NULL,
				    "postgres unreachable: %s", c->error);
	if ((c->q = query_connect(c, err))) {
		c->q_backoff_ms = 0;
		return 0;
	}
	c->q_next_try_ms = now + backoff(&c->q_backoff_ms);
	return UD_EUNAVAILABLE;
}

void pgc_query_broken(ud_pg *c)
{
	if (c->q)
		pgc_set_error(c, "query connection", PQerrorMessage(c->q));
	PQfinish(c->q);
	c->q = NULL;
}

/* Does PostgreSQL answer?  On a fresh connection if need be. */
static bool probe(ud_pg *c)
{
	for (int i = 0; i < 2; i++) {
		PGresult *r;
		bool ok;
		if (!c->q) {
			c->q_next_try_ms = 0;
			if (pgc_query_conn(c, NULL))
				return false;
		}
		r = PQexec(c->q, "SELECT 1");
		ok = PQresultStatus(r) == PGRES_TUPLES_OK;
		PQclear(r);
		if (ok)
			return true;
		pgc_query_broken(c);
	}
	return false;
}

/* ---- the feed ----------------------------------------------------------- */

static void ph_touch(ud_pg *c, uint64_t h, uint64_t version)
{
	if (!c->ph.active)
		return;
	if (c->ph.n == PH_KEYS) {
		c->ph.raced = true;
		return;
	}
	c->ph.touched[c->ph.n] = h;
	c->ph.version[c->ph.n++] = version;
}

/* Did a change newer than version (0: the key was absent) touch h? */
static bool ph_touched(const ud_pg *c, uint64_t h, uint64_t version)
{
	for (unsigned i = 0; i < c->ph.n; i++)
		if (c->ph.touched[i] == h &&
		    (c->ph.version[i] > version || !version))
			return true;
	return false;
}

/* The version of a row change (UINT64_MAX for a delete or none). */
static uint64_t change_version(const struct pg_row_change *ch)
{
	const struct pg_val *v = &ch->v[PGU_VERSION];
	int64_t n;

	if (ch->op == PGO_DELETE || !v->s || pg_row_int(v->s, v->n, &n) ||
	    n < 1)
		return UINT64_MAX;
	return (uint64_t)n;
}

/* A cached user's row came: apply when newer (rule 1). */
static void feed_put(ud_pg *c, const struct pg_row_change *ch,
		     const struct record *r)
{
	const struct pg_val *ver = &ch->v[PGU_VERSION];
	const struct pg_val *em = &ch->v[PGU_EMAIL];
	struct ud_error e = {0};
	const struct record *other;
	int64_t v;

	if (!ver->s || pg_row_int(ver->s, ver->n, &v) || v < 1 ||
	    (uint64_t)v < r->etag) {
		pgc_evict(c, ch->v[PGU_ID].s, ch->v[PGU_ID].n);
		return;
	}
	if ((uint64_t)v == r->etag)
		return; /* our own write's echo, or seen already */
	if (pg_apply_change(c->db, ch, time_now_ms(), &e) >= 0) {
		c->st.feed_applied++;
		return;
	}
	/* refused (say an email another cached user still holds): both go */
	c->st.feed_refused++;
	if (em->s && (other = db_find_email(c->db, em->s, em->n)))
		pgc_evict(c, record_id(other), other->id_len);
	pgc_evict(c, ch->v[PGU_ID].s, ch->v[PGU_ID].n);
}

static int feed_change_cb(void *ctx, const struct pg_row_change *ch)
{
	ud_pg *c = ctx;
	const struct pg_val *id = &ch->v[PGU_ID], *em = &ch->v[PGU_EMAIL];
	struct record *r;

	if (ch->table != PGT_USERS || !id->s || !c->db)
		return 0;
	c->st.feed_changes++;
	neg_drop(&c->neg, neg_key(UD_KEY_ID, id->s, id->n));
	ph_touch(c, neg_key(UD_KEY_ID, id->s, id->n), change_version(ch));
	if (em->s && !ch->unchanged[PGU_EMAIL]) {
		neg_drop(&c->neg, neg_key(UD_KEY_EMAIL, em->s, em->n));
		ph_touch(c, neg_key(UD_KEY_EMAIL, em->s, em->n),
			 change_version(ch));
	}
	if (!(r = db_find(c->db, id->s, id->n)))
		return 0;
	if (ch->op == PGO_DELETE)
		pgc_evict(c, id->s, id->n);
	else
		feed_put(c, ch, r);
	return 0;
}

/* FEED_STREAMING -> FEED_DOWN (rule 3). */
static void feed_lost(ud_pg *c)
{
	pgc_set_error(c, "feed", pg_repl_error(c->repl));
	pg_repl_free(c->repl);
	c->repl = NULL;
	c->feed = FEED_DOWN;
	c->epoch++;
	c->st.pg_down = !probe(c);
	if (!c->st.pg_down)
		flush(c);
	c->feed_next_try_ms = pgc_now_ms();
}

/* FEED_DOWN -> FEED_STREAMING on a new temporary slot, or back off. */
static int feed_start(ud_pg *c, struct ud_error *err)
{
	struct ud_error e = {0};
	struct pg_repl *r;
	char name[48];

	/* unique among this process's slots: pid, clock, attempt */
	snprintf(name, sizeof name, "c%x%x%x", (unsigned)getpid(),
		 (unsigned)(pgc_now_ms() & 0xffffff),
		 (unsigned)(++c->slot_serial & 0xfff));
	r = pg_repl_create_temp_slot(c->conninfo, name, &e);
	if (!r || pg_repl_start(r, feed_change_cb, c, &e)) {
		pg_repl_free(r);
		pgc_set_error(c, "feed", e.message);
		c->feed_next_try_ms =
		    pgc_now_ms() + backoff(&c->feed_backoff_ms);
		c->st.pg_down = !probe(c);
		return ud_error_set(err, e.code ? e.code : UD_EUNAVAILABLE,
				    NULL, "%s", e.message);
	}
	/* the slot exists: what is read from now on is followed (inv. 1) */
	flush(c);
	c->repl = r;
	c->feed = FEED_STREAMING;
	c->epoch++;
	c->feed_backoff_ms = 0;
	c->q_next_try_ms = 0; /* PostgreSQL is back: no waiting for misses */
	c->st.pg_down = false;
	if (c->ever_streamed)
		c->st.feed_restarts++;
	c->ever_streamed = true;
	return 0;
}

/* Decode what already arrived (never waits). */
static void feed_drain(ud_pg *c)
{
	if (c->feed != FEED_STREAMING)
		return;
	pg_repl_io(c->repl, pgc_now_ms());
	if (!pg_repl_streaming(c->repl))
		feed_lost(c);
}

int ud_pg_fd(const ud_pg *c)
{
	return c->feed == FEED_STREAMING ? pg_repl_fd(c->repl) : -1;
}

int ud_pg_process(ud_pg *c)
{
	int64_t now = pgc_now_ms();

	if (!c->db)
		flush(c);
	if (c->feed == FEED_STREAMING) {
		pg_repl_tick(c->repl, now);
		if (pg_repl_streaming(c->repl))
			return 0;
		feed_lost(c);
	}
	if (now >= c->feed_next_try_ms && feed_start(c, NULL) == 0)
		return 0;
	return UD_EUNAVAILABLE;
}

/* ---- reads -------------------------------------------------------------- */

/* The key as the statement takes it: the id, or the folded email. */
static size_t key_param(enum ud_key_kind kind, const char *key, size_t len,
			char *out)
{
	size_t n;

	if (kind == UD_KEY_ID) {
		memcpy(out, key, len);
		n = len;
	} else if ((n = text_fold(key, len, out, FOLD_MAX - 1)) >=
		   FOLD_MAX - 1) {
		return 0;
	}
	out[n] = 0;
	return n;
}

/* Keep the loaded row in the cache, or only in scratch (rule 2). */
static const ud_user *load_apply(ud_pg *c, PGresult *res, bool keep,
				 struct ud_error *err)
{
	struct pg_val v[PGU__COUNT];
	struct ud_buf rec = {0};
	ud_db *db;
	int rc;

	for (int i = 0; i < PGU__COUNT; i++)
		v[i] = PQgetisnull(res, 0, i)
			   ? (struct pg_val){NULL, 0}
			   : (struct pg_val){PQgetvalue(res, 0, i),
					     (size_t)PQgetlength(res, 0, i)};
	if (!keep && pgc_scratch_reset(c))
		return ud_error_set(err, UD_ENOMEM, NULL, "out of memory"),
		       NULL;
	db = keep ? c->db : c->scratch;
	/* a cached user still holding that email is stale: it goes */
	if (keep && v[PGU_EMAIL].s) {
		const struct record *o =
		    db_find_email(db, v[PGU_EMAIL].s, v[PGU_EMAIL].n);
		if (o)
			pgc_evict(c, record_id(o), o->id_len);
	}
	rc = pg_row_put(v, db->last_event + 1, -1, 0, &rec, err);
	if (rc == 0)
		rc = ud_db_apply_foreign(db, rec.data, rec.len, err);
	ud_buf_free(&rec);
	if (rc) {
		ud_error_set(err, UD_EINVAL, NULL,
			     "postgres: row %.*s refused: %s", (int)v[PGU_ID].n,
			     v[PGU_ID].s ? v[PGU_ID].s : "",
			     err ? err->message : "");
		return NULL;
	}
	if (keep)
		c->st.loads++;
	else
		c->st.loads_not_kept++;
	return ud_user_get(db, v[PGU_ID].s, v[PGU_ID].n);
}

/* Is the loaded row older than a change seen while it was read? */
static bool row_raced(const ud_pg *c, PGresult *res, uint64_t h)
{
	int64_t ver;

	if (PQgetisnull(res, 0, PGU_ID) || PQgetisnull(res, 0, PGU_EMAIL) ||
	    pg_row_int(PQgetvalue(res, 0, PGU_VERSION),
		       (size_t)PQgetlength(res, 0, PGU_VERSION), &ver) ||
	    ver < 1)
		return true;
	return ph_touched(c, h, (uint64_t)ver) ||
	       ph_touched(c,
			  neg_key(UD_KEY_ID, PQgetvalue(res, 0, PGU_ID),
				  (size_t)PQgetlength(res, 0, PGU_ID)),
			  (uint64_t)ver) ||
	       ph_touched(c,
			  neg_key(UD_KEY_EMAIL, PQgetvalue(res, 0, PGU_EMAIL),
				  (size_t)PQgetlength(res, 0, PGU_EMAIL)),
			  (uint64_t)ver);
}

static const ud_user *load(ud_pg *c, enum ud_key_kind kind, const char *key,
			   size_t len, uint64_t h, struct ud_error *err)
{
	char param[FOLD_MAX];
	const char *p[1] = {param};
	const ud_user *u = NULL;
	PGresult *res;
	bool keep;

	if (!key_param(kind, key, len, param))
		return ud_error_set(err, UD_ENOTFOUND, NULL, "no such user"),
		       NULL;
	if (pgc_query_conn(c, err))
		return NULL;
	c->ph = (struct placeholder){.active = true, .epoch = c->epoch};
	res = PQexecPrepared(c->q, get_name[kind], 1, p, NULL, NULL, 0);
	c->st.queries++;
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		ud_error_set(err, UD_EUNAVAILABLE, NULL, "postgres: %s",
			     PQerrorMessage(c->q));
		if (PQstatus(c->q) == CONNECTION_BAD)
			pgc_query_broken(c);
		goto done;
	}
	feed_drain(c); /* changes that came while we waited: placeholders */
	keep = pgc_keeping(c) && !c->ph.raced && c->ph.epoch == c->epoch;
	if (PQntuples(res) == 0) {
		if (keep && !ph_touched(c, h, 0))
			neg_add(&c->neg, h);
		ud_error_set(err, UD_ENOTFOUND, NULL, "no such user");
		goto done;
	}
	u = load_apply(c, res, keep && !row_raced(c, res, h), err);
done:
	c->ph.active = false;
	PQclear(res);
	return u;
}

const ud_user *pgc_lookup(ud_pg *c, enum ud_key_kind kind, const char *key,
			  size_t len, struct ud_error *err)
{
	const ud_user *u = NULL;
	uint64_t h;

	if (c->db)
		u = kind == UD_KEY_ID ? ud_user_get(c->db, key, len)
				      : ud_user_get_by_email(c->db, key, len);
	if (u) {
		c->st.hits++;
		return u;
	}
	c->st.misses++;
	if (!key || !len ||
	    len > (kind == UD_KEY_ID ? UD_ID_MAX : UD_EMAIL_MAX))
		return ud_error_set(err, UD_ENOTFOUND, NULL, "no such user"),
		       NULL;
	h = neg_key(kind, key, len);
	if (pgc_keeping(c) && neg_has(&c->neg, h)) {
		c->st.negative_hits++;
		return ud_error_set(err, UD_ENOTFOUND, NULL, "no such user"),
		       NULL;
	}
	return load(c, kind, key, len, h, err);
}

const ud_user *ud_pg_get(ud_pg *c, const char *id, size_t len,
			 struct ud_error *err)
{
	return pgc_lookup(c, UD_KEY_ID, id, len, err);
}

const ud_user *ud_pg_get_by_email(ud_pg *c, const char *email, size_t len,
				  struct ud_error *err)
{
	return pgc_lookup(c, UD_KEY_EMAIL, email, len, err);
}

/* ---- activity, read from PostgreSQL -------------------------------------- */

static int log_rows(ud_pg *c, PGresult *res, struct ud_log_page *out,
		    struct ud_error *err)
{
	struct pg_event ev[UD_LIMIT_MAX];
	struct pg_val v[PGE__COUNT];
	int n = PQntuples(res), rc;

	c->log_buf.len = 0;
	for (int i = 0; i < n && i < UD_LIMIT_MAX; i++) {
		for (int k = 0; k < PGE__COUNT; k++)
			v[k] = PQgetisnull(res, i, k)
				   ? (struct pg_val){NULL, 0}
				   : (struct pg_val){
					 PQgetvalue(res, i, k),
					 (size_t)PQgetlength(res, i, k)};
		if ((rc = pg_row_event(v, &ev[i], &c->log_buf, err)))
			return rc;
	}
	for (int i = 0; i < n && i < UD_LIMIT_MAX; i++)
		out->items[i] = (struct ud_log_view){
		    .id = ev[i].id,
		    .user_id = c->log_uid,
		    .user_id_len = strlen(c->log_uid),
		    .event = ev[i].type,
		    .created_ms = ev[i].ms,
		    .details = c->log_buf.data + ev[i].details_off,
		    .details_len = ev[i].details_len};
	out->count = (unsigned)n;
	return 0;
}

static int log_total(ud_pg *c, PGresult *page, uint64_t *total,
		     struct ud_error *err)
{
	const char *p[1] = {c->log_uid};
	PGresult *res;
	int64_t t;
	int rc = 0;

	if (PQntuples(page) > 0) /* count(*) OVER () rides on every row */
		return pg_row_int(PQgetvalue(page, 0, PGE__COUNT),
				  (size_t)PQgetlength(page, 0, PGE__COUNT),
				  (int64_t *)total);
	res = PQexecPrepared(c->q, "ud_c_log_n", 1, p, NULL, NULL, 0);
	c->st.queries++;
	if (PQresultStatus(res) != PGRES_TUPLES_OK ||
	    pg_row_int(PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0),
		       &t))
		rc = ud_error_set(err, UD_EUNAVAILABLE, NULL, "postgres: %s",
				  PQerrorMessage(c->q));
	else
		*total = (uint64_t)t;
	PQclear(res);
	return rc;
}

int ud_pg_log_list(ud_pg *c, const char *user_id, size_t len, unsigned page,
		   unsigned limit, struct ud_log_page *out,
		   struct ud_error *err)
{
	char lim[16], off[24];
	const char *p[3] = {c->log_uid, lim, off};
	PGresult *res;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!user_id || !len || len >= UD_ID_MAX)
		return ud_error_set(err, UD_EINVAL, "user_id", "bad user_id");
	if (page < 1 || limit < 1 || limit > UD_LIMIT_MAX)
		return ud_error_set(err, UD_EINVAL, page < 1 ? "page" : "limit",
				    "page >= 1, limit 1..%d", UD_LIMIT_MAX);
	if ((rc = pgc_query_conn(c, err)))
		return rc;
	memcpy(c->log_uid, user_id, len);
	c->log_uid[len] = 0;
	snprintf(lim, sizeof lim, "%u", limit);
	snprintf(off, sizeof off, "%llu",
		 (unsigned long long)(page - 1) * limit);
	res = PQexecPrepared(c->q, "ud_c_log", 3, p, NULL, NULL, 0);
	c->st.queries++;
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		rc = ud_error_set(err, UD_EUNAVAILABLE, NULL, "postgres: %s",
				  PQerrorMessage(c->q));
		if (PQstatus(c->q) == CONNECTION_BAD)
			pgc_query_broken(c);
	} else if ((rc = log_rows(c, res, out, err)) == 0 &&
		   (rc = log_total(c, res, &out->total, err)) == 0) {
		out->page = page;
		out->limit = limit;
		out->pages = (out->total + limit - 1) / limit;
	}
	PQclear(res);
	return rc;
}

/* ---- open, close, the helper thread -------------------------------------- */

static int open_store(ud_pg *c, const struct ud_pg_options *opt,
		      struct ud_error *err)
{
	c->opt = *opt;
	c->dbopt = ud_options_default;
	c->dbopt.max_users = opt->max_users;
	c->dbopt.max_bytes = opt->max_bytes;
	c->dbopt.pw_opslimit = opt->pw_opslimit;
	c->dbopt.pw_memlimit = opt->pw_memlimit;
	if (!(c->conninfo = strdup(opt->conninfo)) ||
	    neg_init(&c->neg, opt->max_negative ? opt->max_negative : 65536) ||
	    !(c->db = store_new(c, &c->dbopt)) || pgc_scratch_reset(c))
		return ud_error_set(err, UD_ENOMEM, NULL, "out of memory");
	pthread_mutex_init(&c->mu, NULL);
	return 0;
}

/* The schema as this library knows it, before anything is prepared. */
static int migrate(ud_pg *c, struct ud_error *err)
{
	PGconn *q = pg_connect(c->conninfo, err);
	int rc;

	if (!q)
		return UD_EUNAVAILABLE;
	rc = pg_migrate(q, PG_SCHEMA_VERSION, err);
	PQfinish(q);
	return rc;
}

int ud_pg_open(const struct ud_pg_options *opt, ud_pg **out,
	       struct ud_error *err)
{
	ud_pg *c;
	int rc;

	*out = NULL;
	if (!opt || !opt->conninfo || !*opt->conninfo)
		return ud_error_set(err, UD_EINVAL, "conninfo",
				    "a conninfo is required");
	if (!(c = calloc(1, sizeof(*c))))
		return ud_error_set(err, UD_ENOMEM, NULL, "out of memory");
	if ((rc = open_store(c, opt, err)) || (rc = migrate(c, err)) ||
	    (rc = pgc_query_conn(c, err)) || (rc = feed_start(c, err))) {
		ud_pg_close(c);
		return rc;
	}
	*out = c;
	return 0;
}

void ud_pg_close(ud_pg *c)
{
	if (!c)
		return;
	if (c->thread_on) {
		atomic_store(&c->stop, true);
		pthread_join(c->thread, NULL);
	}
	pg_repl_free(c->repl);
	PQfinish(c->q);
	ud_db_free(c->db);
	ud_db_free(c->scratch);
	neg_destroy(&c->neg);
	ud_buf_free(&c->log_buf);
	if (c->conninfo)
		pthread_mutex_destroy(&c->mu);
	free(c->conninfo);
	free(c);
}

static void *thread_main(void *arg)
{
	ud_pg *c = arg;

	while (!atomic_load(&c->stop)) {
		struct pollfd p = {.events = POLLIN};
		pthread_mutex_lock(&c->mu);
		p.fd = ud_pg_fd(c);
		pthread_mutex_unlock(&c->mu);
		/* a stale fd (closed meanwhile) only wakes us early */
		poll(&p, p.fd >= 0 ? 1 : 0, UD_PG_TICK_MS);
		pthread_mutex_lock(&c->mu);
		ud_pg_process(c);
		pthread_mutex_unlock(&c->mu);
	}
	return NULL;
}

int ud_pg_thread_start(ud_pg *c)
{
	if (c->thread_on)
		return UD_EINVAL;
	atomic_store(&c->stop, false);
	if (pthread_create(&c->thread, NULL, thread_main, c))
		return UD_ENOMEM;
	c->thread_on = true;
	return 0;
}

void ud_pg_lock(ud_pg *c)
{
	pthread_mutex_lock(&c->mu);
}

void ud_pg_unlock(ud_pg *c)
{
	pthread_mutex_unlock(&c->mu);
}

/* ---- state --------------------------------------------------------------- */

void ud_pg_stats(ud_pg *c, struct ud_pg_stats *out)
{
	struct ud_stats s = {0};

	*out = c->st;
	if (c->db)
		ud_db_stats(c->db, &s);
	out->users = s.users;
	out->record_bytes = s.record_bytes;
	out->evictions = c->evictions_before + s.evictions;
	out->negative_hits = c->st.negative_hits;
	out->feed_up = c->feed == FEED_STREAMING;
}

const char *ud_pg_error(const ud_pg *c)
{
	return c->error;
}

static int check_user(const ud_user *u, void *ctx)
{
	ud_pg *c = ctx;
	struct ud_user_view v;

	ud_user_view(u, &v);
	return neg_has(&c->neg, neg_key(UD_KEY_ID, v.id, v.id_len)) ||
	       neg_has(&c->neg, neg_key(UD_KEY_EMAIL, v.email, v.email_len));
}

int ud_pg_check(ud_pg *c, struct ud_error *err)
{
	uint64_t hits = c->neg.hits;
	int rc;

	if (!c->db)
		return 0;
	if ((rc = ud_db_check(c->db, err)))
		return rc;
	rc = ud_user_foreach(c->db, check_user, c);
	c->neg.hits = hits;
	return rc ? ud_error_set(err, UD_EINTERNAL, NULL,
				 "a negative entry names a cached user")
		  : 0;
}
