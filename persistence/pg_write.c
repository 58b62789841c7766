/*
 * pg_write.c -- the non-blocking write connection of PostgreSQL mode; see
 * pg_write.h for the rules and the state diagram.
 */
#include "pg_write.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "db.h"
#include "journal.h"
#include "pg_row.h"
#include "record.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

#define USER_SET                                                               \
	"name = $2, email = $3, email_folded = $4, role = $5, status = $6,"    \
	" avatar = $7, custom_data = $8::jsonb, identities = $9::jsonb,"       \
	" password_hash = $10, last_sign_in_at = " TS(                         \
	    "$11") ","                                                         \
		   " updated_at = " TS(                                        \
		       "$13") ", version = $14, failed_verifies = $15"
#define TS(p)                                                                  \
	"CASE WHEN " p "::bigint < 0 THEN NULL ELSE to_timestamp(" p           \
	"::bigint / 1000.0) END"
#define EVENT(id, ev)                                                          \
	" INSERT INTO userdb.events (user_id, event, created_at, details)"     \
	" SELECT " id ", $" #ev ", to_timestamp($" #ev                         \
	"_ms::bigint / 1000.0),"

/* One statement per record kind: the row change and its event together,
 * so a change that matches no row (a moved version) writes nothing. */
static const char *const stmts[] = {
    [PGS_CREATE] =
	"WITH u AS (INSERT INTO userdb.users (id, name, email, email_folded,"
	" role, status, avatar, custom_data, identities, password_hash,"
	" last_sign_in_at, created_at, updated_at, version, failed_verifies)"
	" VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9::jsonb, $10, " TS(
	    "$11") ", " TS("$12") ", " TS("$13") ", $14, $15) RETURNING id)"
						 " INSERT INTO userdb.events "
						 "(user_id, event, created_at, "
						 "details)"
						 " SELECT id, $16, " TS(
						     "$17") ", $18::jsonb FROM "
							    "u",
    [PGS_UPDATE] =
	"WITH u AS (UPDATE userdb.users SET " USER_SET
	" WHERE id = $1 AND version = $19::bigint"
	" AND $12::bigint IS NOT NULL RETURNING id)"
	" INSERT INTO userdb.events (user_id, event, created_at, details)"
	" SELECT id, $16, " TS("$17") ", $18::jsonb FROM u",
    [PGS_DELETE] =
	"WITH u AS (DELETE FROM userdb.users WHERE id = $1 AND"
	" version = $2::bigint RETURNING id)"
	" INSERT INTO userdb.events (user_id, event, created_at, details)"
	" SELECT id, $3, " TS("$4") ", $5::jsonb FROM u",
    [PGS_EVENT] =
	"WITH u AS (UPDATE userdb.users SET failed_verifies = $2::integer"
	" WHERE id = $1 RETURNING id)"
	" INSERT INTO userdb.events (user_id, event, created_at, details)"
	" SELECT id, $3, " TS("$4") ", $5::jsonb FROM u",
};
#define REREAD_NAME "ud_reread"
#define REREAD_SQL  "SELECT " PG_USERS_COLS " FROM userdb.users WHERE id = $1"

static const char *const stmt_names[] = {[PGS_CREATE] = "ud_create",
					 [PGS_UPDATE] = "ud_update",
					 [PGS_DELETE] = "ud_delete",
					 [PGS_EVENT] = "ud_event"};
#define N_STMTS (sizeof(stmts) / sizeof(stmts[0]))

/* A transaction in flight: its results are read in this order. */
struct inflight {
	uint64_t serial; /* 0: the connection's own (prepare, re-read) */
	int64_t sent_ms;
	int code;    /* first error seen in its results */
	bool empty;  /* a sync alone: the record had nothing to write */
	bool reread; /* a re-read of user id (serial 0) */
	uint8_t id_len;
	char id[UD_ID_MAX + 1]; /* the user the record changes, or re-reads */
};

/* A user whose row must be read back (its write was refused or lost). */
struct reread {
	uint8_t id_len;
	char id[UD_ID_MAX + 1]; /* NUL-terminated: a text parameter */
};

struct pg_writer {
	char *conninfo;
	pg_fail_fn fail;
	pg_restore_fn restore;
	void *ctx;
	ud_db *db;
	PGconn *c;
	enum pg_state state;
	int64_t next_try_ms, backoff_ms, now_ms;
	bool want_write;
	uint64_t serial, durable;
	struct inflight *q; /* ring */
	size_t q_head, q_len, q_cap;
	struct reread *rr; /* users to re-read once READY */
	size_t rr_len, rr_cap;
	struct pg_writer_stats st;
	char error[256];
	char origin[64];
};

struct pg_writer *pg_writer_new(const char *conninfo, const char *origin,
				pg_fail_fn fail, pg_restore_fn restore,
				void *ctx)
{
	struct pg_writer *w = calloc(1, sizeof(*w));

	if (!w || !(w->conninfo = strdup(conninfo))) {
		free(w);
		return NULL;
	}
	snprintf(w->origin, sizeof w->origin, "%s", origin);
	w->fail = fail;
	w->restore = restore;
	w->ctx = ctx;
	w->backoff_ms = BACKOFF_MIN_MS;
	return w;
}

void pg_writer_free(struct pg_writer *w)
{
	if (!w)
		return;
	if (w->db)
		ud_db_set_journal(w->db, NULL, NULL);
	PQfinish(w->c);
	free(w->q);
	free(w->rr);
	free(w->conninfo);
	free(w);
}

enum pg_state pg_writer_state(const struct pg_writer *w)
{
	return w->state;
}
uint64_t pg_writer_serial(const struct pg_writer *w)
{
	return w->serial;
}
uint64_t pg_writer_durable(const struct pg_writer *w)
{
	return w->durable;
}
const char *pg_writer_error(const struct pg_writer *w)
{
	return w->error;
}

int pg_writer_fd(const struct pg_writer *w)
{
	return w->c ? PQsocket(w->c) : -1;
}

int pg_writer_want(const struct pg_writer *w)
{
	if (!w->c)
		return 0;
	return PG_WANT_READ | (w->want_write ? PG_WANT_WRITE : 0);
}

void pg_writer_stats(const struct pg_writer *w, struct pg_writer_stats *out)
{
	*out = w->st;
	out->inflight = w->q_len;
}

static struct inflight *q_at(struct pg_writer *w, size_t i)
{
	return &w->q[(w->q_head + i) % w->q_cap];
}

static int q_push(struct pg_writer *w, uint64_t serial, bool empty,
		  const struct reread *who, bool reread)
{
	if (w->q_len == w->q_cap) {
		size_t cap = w->q_cap ? 2 * w->q_cap : 64;
		struct inflight *q = malloc(cap * sizeof(*q));
		if (!q)
			return UD_ENOMEM;
		for (size_t i = 0; i < w->q_len; i++)
			q[i] = *q_at(w, i);
		free(w->q);
		w->q = q;
		w->q_head = 0;
		w->q_cap = cap;
	}
	struct inflight *f = q_at(w, w->q_len++);
	*f = (struct inflight){serial, w->now_ms, 0, empty, reread, 0, {0}};
	if (who) {
		f->id_len = who->id_len;
		memcpy(f->id, who->id, who->id_len);
	}
	return 0;
}

/* Remember that user who must be read back from PostgreSQL (at most once
 * in the list); out of memory drops it (the stream still corrects it). */
static void rr_push(struct pg_writer *w, const char *id, size_t n)
{
	if (n == 0 || n > UD_ID_MAX)
		return;
	for (size_t i = 0; i < w->rr_len; i++)
		if (w->rr[i].id_len == n && memcmp(w->rr[i].id, id, n) == 0)
			return;
	if (w->rr_len == w->rr_cap) {
		size_t cap = w->rr_cap ? 2 * w->rr_cap : 16;
		struct reread *rr = realloc(w->rr, cap * sizeof(*rr));
		if (!rr)
			return;
		w->rr = rr;
		w->rr_cap = cap;
	}
	w->rr[w->rr_len].id_len = (uint8_t)n;
	memcpy(w->rr[w->rr_len].id, id, n);
	w->rr[w->rr_len++].id[n] = 0;
}

static void go_down(struct pg_writer *w, const char *why);

/* Send the pending re-reads (PG_READY only). */
static void rr_send(struct pg_writer *w)
{
	while (w->rr_len && w->state == PG_READY) {
		struct reread *r = &w->rr[w->rr_len - 1];
		const char *p[1] = {r->id};
		int len[1] = {r->id_len};
		if (!PQsendQueryPrepared(w->c, REREAD_NAME, 1, p, len, NULL,
					 0) ||
		    !PQpipelineSync(w->c) || q_push(w, 0, false, r, true)) {
			go_down(w, PQerrorMessage(w->c));
			return;
		}
		w->rr_len--;
		w->want_write = true;
	}
}

/* The head transaction is over (its sync came back). */
static void q_pop_done(struct pg_writer *w, const char *msg)
{
	struct inflight f = *q_at(w, 0);

	w->q_head = (w->q_head + 1) % w->q_cap;
	w->q_len--;
	if (f.serial == 0) {
		if (f.reread && f.code)
			rr_push(w, f.id, f.id_len); /* try again */
		return;
	}
	if (f.code) {
		w->st.refused++;
		w->fail(w->ctx, f.serial, f.code, msg);
		rr_push(w, f.id, f.id_len);
	} else {
		w->st.committed++;
	}
	w->durable = f.serial;
}

/* -> PG_DOWN: everything in flight has an unknown outcome. */
static void go_down(struct pg_writer *w, const char *why)
{
	snprintf(w->error, sizeof w->error, "%s", why);
	w->error[strcspn(w->error, "\n")] = 0;
	PQfinish(w->c);
	w->c = NULL;
	w->state = PG_DOWN;
	w->want_write = false;
	while (w->q_len) {
		struct inflight f = *q_at(w, 0);
		w->q_head = (w->q_head + 1) % w->q_cap;
		w->q_len--;
		if (f.serial) {
			w->st.lost++;
			w->fail(w->ctx, f.serial, UD_EUNAVAILABLE,
				"postgres connection lost with the write in "
				"flight");
			w->durable = f.serial;
		}
		if ((f.serial && !f.empty) || f.reread)
			rr_push(w, f.id, f.id_len); /* outcome unknown */
	}
	w->durable = w->serial;
	w->next_try_ms = w->now_ms + w->backoff_ms;
	w->backoff_ms = w->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
							   : w->backoff_ms * 2;
}

static void try_flush(struct pg_writer *w)
{
	int rc = PQflush(w->c);

	if (rc < 0)
		go_down(w, PQerrorMessage(w->c));
	else
		w->want_write = rc == 1;
}

/* PG_CONNECTING -> PG_READY: pipeline on, statements prepared (their
 * results come back as serial 0 transactions). */
static void on_connected(struct pg_writer *w)
{
	const char *o[1] = {w->origin};
	bool ok = PQsetnonblocking(w->c, 1) == 0 && PQenterPipelineMode(w->c) &&
		  PQsendQueryParams(w->c,
				    "SELECT pg_replication_origin_create($1)"
				    " WHERE NOT EXISTS (SELECT 1 FROM"
				    " pg_replication_origin WHERE roname = $1)",
				    1, NULL, o, NULL, NULL, 0) &&
		  PQpipelineSync(w->c) &&
		  q_push(w, 0, false, NULL, false) == 0 &&
		  PQsendQueryParams(w->c,
				    "SELECT pg_replication_origin_session_setup"
				    "($1)",
				    1, NULL, o, NULL, NULL, 0) &&
		  PQpipelineSync(w->c) && q_push(w, 0, false, NULL, false) == 0;

	for (size_t i = 1; ok && i < N_STMTS; i++)
		ok = PQsendPrepare(w->c, stmt_names[i], stmts[i], 0, NULL) &&
		     PQpipelineSync(w->c) &&
		     q_push(w, 0, false, NULL, false) == 0;
	ok = ok && PQsendPrepare(w->c, REREAD_NAME, REREAD_SQL, 0, NULL) &&
	     PQpipelineSync(w->c) && q_push(w, 0, false, NULL, false) == 0;
	if (!ok) {
		go_down(w, PQerrorMessage(w->c));
		return;
	}
	w->state = PG_READY;
	w->backoff_ms = BACKOFF_MIN_MS;
	w->error[0] = 0;
	w->st.reconnects++;
	rr_send(w);
	if (w->state == PG_READY)
		try_flush(w);
}

static void connect_poll(struct pg_writer *w)
{
	switch (PQconnectPoll(w->c)) {
	case PGRES_POLLING_OK:
		on_connected(w);
		break;
	case PGRES_POLLING_FAILED:
		go_down(w, PQerrorMessage(w->c));
		break;
	case PGRES_POLLING_WRITING:
		w->want_write = true;
		break;
	default:
		w->want_write = false;
	}
}

const char *pg_write_stmt(int kind, const char **name)
{
	if (kind <= PGS_NONE || (size_t)kind >= N_STMTS)
		return NULL;
	*name = stmt_names[kind];
	return stmts[kind];
}

int pg_write_verdict(const struct pg_result *r)
{
	const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	const char *cons = PQresultErrorField(r, PG_DIAG_CONSTRAINT_NAME);

	switch (PQresultStatus(r)) {
	case PGRES_COMMAND_OK:
	case PGRES_TUPLES_OK:
		return strcmp(PQcmdTuples((PGresult *)r), "0") == 0
			   ? UD_EPRECONDITION
			   : 0;
	case PGRES_FATAL_ERROR:
		if (state && strcmp(state, "23505") == 0)
			return cons && strstr(cons, "email") ? UD_EDUPEMAIL
							     : UD_EDUPID;
		return UD_EUNAVAILABLE;
	default:
		return UD_EUNAVAILABLE;
	}
}

/* A re-read's rows: hand the row (or its absence) to the restore
 * callback.  A failed re-read is tried again. */
static void reread_result(struct pg_writer *w, struct inflight *f, PGresult *r)
{
	struct pg_val v[PGU__COUNT];

	if (PQresultStatus(r) != PGRES_TUPLES_OK ||
	    (PQntuples(r) == 1 && PQnfields(r) != PGU__COUNT)) {
		f->code = UD_EUNAVAILABLE;
		return;
	}
	if (PQntuples(r) == 0) {
		w->restore(w->ctx, f->id, f->id_len, NULL);
		return;
	}
	for (int i = 0; i < PGU__COUNT; i++)
		v[i] = PQgetisnull(r, 0, i)
			   ? (struct pg_val){NULL, 0}
			   : (struct pg_val){PQgetvalue(r, 0, i),
					     (size_t)PQgetlength(r, 0, i)};
	w->restore(w->ctx, f->id, f->id_len, v);
}

static void read_results(struct pg_writer *w)
{
	char msg[192] = "";

	if (!PQconsumeInput(w->c)) {
		go_down(w, PQerrorMessage(w->c));
		return;
	}
	while (w->q_len && !PQisBusy(w->c)) {
		PGresult *r = PQgetResult(w->c);
		struct inflight *f = q_at(w, 0);
		if (!r)
			continue; /* the end of one statement's results */
		if (PQresultStatus(r) == PGRES_PIPELINE_SYNC) {
			PQclear(r);
			q_pop_done(w, msg);
			msg[0] = 0;
			continue;
		}
		if (f->reread) {
			reread_result(w, f, r);
			PQclear(r);
			continue;
		}
		if (f->serial == 0 && PQresultStatus(r) != PGRES_COMMAND_OK &&
		    PQresultStatus(r) != PGRES_TUPLES_OK) {
			snprintf(msg, sizeof msg, "prepare: %s",
				 PQresultErrorMessage(r));
			PQclear(r);
			go_down(w, msg);
			return;
		}
		if (!f->code && f->serial && !f->empty) {
			f->code = pg_write_verdict(r);
			if (f->code && PQresultErrorMessage(r)[0])
				snprintf(msg, sizeof msg, "%s",
					 PQresultErrorMessage(r));
		}
		PQclear(r);
	}
	rr_send(w);
}

void pg_writer_io(struct pg_writer *w, int64_t now_ms)
{
	w->now_ms = now_ms;
	if (w->state == PG_CONNECTING) {
		connect_poll(w);
		return;
	}
	if (w->state != PG_READY)
		return;
	try_flush(w);
	if (w->state == PG_READY)
		read_results(w);
}

void pg_writer_tick(struct pg_writer *w, int64_t now_ms)
{
	w->now_ms = now_ms;
	if (w->state == PG_DOWN && now_ms >= w->next_try_ms) {
		w->c = PQconnectStart(w->conninfo);
		if (!w->c || PQstatus(w->c) == CONNECTION_BAD) {
			go_down(w,
				w->c ? PQerrorMessage(w->c) : "out of memory");
			return;
		}
		w->state = PG_CONNECTING;
		w->want_write = true;
		return;
	}
	if (w->state == PG_READY && w->q_len &&
	    now_ms - q_at(w, 0)->sent_ms > PG_WRITE_TIMEOUT_MS)
		go_down(w, "postgres did not answer within the write timeout");
}

uint64_t pg_write_old_version(ud_db *db, const void *rec, size_t len,
			      uint32_t *failed)
{
	struct change ch;
	const ud_user *u = NULL;
	struct ud_user_view v;
	uint64_t ver = 0;

	*failed = 0;
	if (change_decode(rec, len, &ch))
		return 0;
	if (ch.type == CH_PUT)
		u = ud_user_get(db, record_id(ch.rec), ch.rec->id_len);
	else if (ch.type == CH_DEL || ch.type == CH_EVENT)
		u = ud_user_get(db, ch.id, ch.id_len);
	if (u) {
		ud_user_view(u, &v);
		ver = v.etag;
		*failed = ((const struct record *)u)->failed_verifies + 1;
	}
	change_release(&ch);
	return ver;
}

/* The user a record changes, into who (id_len 0: none). */
static void record_who(const void *rec, size_t len, struct reread *who)
{
	struct change ch;

	who->id_len = 0;
	if (change_decode(rec, len, &ch))
		return;
	if (ch.type == CH_PUT && ch.rec->id_len <= UD_ID_MAX) {
		who->id_len = (uint8_t)ch.rec->id_len;
		memcpy(who->id, record_id(ch.rec), who->id_len);
	} else if ((ch.type == CH_DEL || ch.type == CH_EVENT) &&
		   ch.id_len <= UD_ID_MAX) {
		who->id_len = (uint8_t)ch.id_len;
		memcpy(who->id, ch.id, who->id_len);
	}
	change_release(&ch);
}

/* The journal callback: send the record's statement now (libpq buffers
 * it; the loop flushes), or refuse the write while PostgreSQL is down. */
static int journal_cb(void *ctx, const void *rec, size_t len)
{
	struct pg_writer *w = ctx;
	struct pg_row_params p;
	struct reread who;
	uint32_t failed;
	uint64_t ver;
	int rc;

	if (w->state != PG_READY)
		return UD_EUNAVAILABLE;
	ver = pg_write_old_version(w->db, rec, len, &failed);
	record_who(rec, len, &who);
	if ((rc = pg_row_params(rec, len, ver, failed, &p)))
		return rc == UD_EINVAL ? UD_EINTERNAL : rc;
	if ((p.kind != PGS_NONE &&
	     !PQsendQueryPrepared(w->c, stmt_names[p.kind], p.n, p.p, p.len,
				  NULL, 0)) ||
	    !PQpipelineSync(w->c) ||
	    q_push(w, w->serial + 1, p.kind == PGS_NONE, &who, false)) {
		ud_buf_free(&p.txt);
		go_down(w, PQerrorMessage(w->c));
		return UD_EUNAVAILABLE;
	}
	ud_buf_free(&p.txt);
	w->serial++;
	w->want_write = true;
	return 0;
}

bool pg_writer_pending(const struct pg_writer *w, const char *id, size_t n)
{
	for (size_t i = 0; i < w->q_len; i++) {
		const struct inflight *f = &w->q[(w->q_head + i) % w->q_cap];
		if (f->id_len == n && memcmp(f->id, id, n) == 0)
			return true;
	}
	for (size_t i = 0; i < w->rr_len; i++)
		if (w->rr[i].id_len == n && memcmp(w->rr[i].id, id, n) == 0)
			return true;
	return false;
}

void pg_writer_reread(struct pg_writer *w, const char *id, size_t n)
{
	rr_push(w, id, n);
	rr_send(w);
}

void pg_writer_attach(struct pg_writer *w, ud_db *db)
{
	w->db = db;
	ud_db_set_journal(db, journal_cb, w);
}
