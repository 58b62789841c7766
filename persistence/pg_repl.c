/*
 * pg_repl.c -- the pgoutput stream reader; rules in pg_repl.h.
 */
#include "pg_repl.h"
#include "pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RELS	32
#define MAX_COLS	256
#define STATUS_EVERY_MS 1000
#define PG_EPOCH_US	946684800000000LL /* 2000-01-01 in Unix us */

struct rel {
	uint32_t id;
	enum pg_table table;
	int ncols;
	signed char col[MAX_COLS]; /* our column of each, -1 none */
};

struct pg_repl {
	PGconn *c;
	char slot[64];
	pg_change_fn fn;
	void *ctx;
	bool streaming, lost;
	struct rel rels[MAX_RELS];
	int nrels;
	uint64_t xact_lsn, applied, wal_end, undecodable;
	uint64_t start_lsn; /* the slot's consistent point */
	pg_commit_fn on_commit;
	bool own_xact; /* the transaction being read has our origin */
	int64_t last_status_ms;
	char error[256];
};

static const char *const event_cols[PGE__COUNT] = {
    [PGE_ID] = "id",	     [PGE_USER_ID] = "user_id", [PGE_EVENT] = "event",
    [PGE_MS] = "created_at", [PGE_DETAILS] = "details",
};
static const char *const user_cols[PGU__COUNT] = {
    [PGU_ID] = "id",
    [PGU_NAME] = "name",
    [PGU_EMAIL] = "email",
    [PGU_ROLE] = "role",
    [PGU_STATUS] = "status",
    [PGU_AVATAR] = "avatar",
    [PGU_CUSTOM] = "custom_data",
    [PGU_IDENT] = "identities",
    [PGU_PWHASH] = "password_hash",
    [PGU_SIGNIN_MS] = "last_sign_in_at",
    [PGU_CREATED_MS] = "created_at",
    [PGU_UPDATED_MS] = "updated_at",
    [PGU_VERSION] = "version",
    [PGU_FAILED] = "failed_verifies",
};

static void set_error(struct pg_repl *r, const char *what, const char *msg)
{
	snprintf(r->error, sizeof r->error, "%s: %s", what, msg);
	r->error[strcspn(r->error, "\n")] = 0;
}

static PGconn *repl_connect(const char *conninfo, struct ud_error *err)
{
	/* connect_timeout first: the conninfo's own wins */
	const char *k[] = {"connect_timeout", "dbname", "replication",
			   "options", NULL};
	const char *v[] = {"2", conninfo, "database",
			   "-c TimeZone=UTC -c DateStyle=ISO", NULL};
	PGconn *c = PQconnectdbParams(k, v, 1);

	if (c && PQstatus(c) == CONNECTION_OK)
		return c;
	ud_error_set(err, UD_EUNAVAILABLE, NULL, "postgres replication: %s",
		     c ? PQerrorMessage(c) : "out of memory");
	PQfinish(c);
	return NULL;
}

static int slot_name(char *out, size_t n, const char *node_id)
{
	if (strspn(node_id, "0123456789abcdefghijklmnopqrstuvwxyz") !=
		strlen(node_id) ||
	    !*node_id || strlen(node_id) > 40)
		return -1;
	snprintf(out, n, "userdb_%s", node_id);
	return 0;
}

int pg_repl_origin_name(char *out, size_t n, const char *node_id)
{
	return slot_name(out, n, node_id);
}

/* Connect and create slot "userdb_<node_id>": temporary (dropped by
 * PostgreSQL with the connection) or not, exporting a snapshot into
 * snapshot (64 bytes) when given. */
static struct pg_repl *create_slot(const char *conninfo, const char *node_id,
				   bool temporary, char *snapshot,
				   struct ud_error *err)
{
	struct pg_repl *r = calloc(1, sizeof(*r));
	char sql[192];
	PGresult *res;

	if (!r) {
		ud_error_set(err, UD_ENOMEM, NULL, "out of memory");
		return NULL;
	}
	if (slot_name(r->slot, sizeof r->slot, node_id)) {
		ud_error_set(err, UD_EINVAL, NULL, "bad node id");
		goto fail;
	}
	if (!(r->c = repl_connect(conninfo, err)))
		goto fail;
	/* A slot of an earlier run: memory is empty now, so it is of no use
	 * (and an active one means another process has our node id). */
	snprintf(sql, sizeof sql, "DROP_REPLICATION_SLOT %s", r->slot);
	if (!temporary)
		PQclear(PQexec(r->c, sql));
	snprintf(sql, sizeof sql,
		 "CREATE_REPLICATION_SLOT %s%s LOGICAL pgoutput "
		 "(SNAPSHOT '%s')",
		 r->slot, temporary ? " TEMPORARY" : "",
		 snapshot ? "export" : "nothing");
	res = PQexec(r->c, sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQnfields(res) < 3) {
		ud_error_set(err, UD_EUNAVAILABLE, NULL,
			     "postgres: creating slot %s: %s", r->slot,
			     PQerrorMessage(r->c));
		PQclear(res);
		goto fail;
	}
	if (snapshot)
		snprintf(snapshot, 64, "%s", PQgetvalue(res, 0, 2));
	{
		unsigned hi = 0, lo = 0;
		if (sscanf(PQgetvalue(res, 0, 1), "%X/%X", &hi, &lo) == 2)
			r->start_lsn = (uint64_t)hi << 32 | lo;
	}
	PQclear(res);
	return r;
fail:
	pg_repl_free(r);
	return NULL;
}

struct pg_repl *pg_repl_create_slot(const char *conninfo, const char *node_id,
				    char *snapshot, struct ud_error *err)
{
	return create_slot(conninfo, node_id, false, snapshot, err);
}

struct pg_repl *pg_repl_create_temp_slot(const char *conninfo, const char *name,
					 struct ud_error *err)
{
	return create_slot(conninfo, name, true, NULL, err);
}

int pg_repl_start(struct pg_repl *r, pg_change_fn fn, void *ctx,
		  struct ud_error *err)
{
	char sql[256];
	PGresult *res;

	r->fn = fn;
	r->ctx = ctx;
	snprintf(sql, sizeof sql,
		 "START_REPLICATION SLOT %s LOGICAL 0/0 (proto_version '1',"
		 " publication_names 'userdb_pub')",
		 r->slot);
	res = PQexec(r->c, sql);
	if (PQresultStatus(res) != PGRES_COPY_BOTH) {
		const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		/* no such slot, or one invalidated (max_slot_wal_keep_size) */
		if (st && (!strcmp(st, "42704") || !strcmp(st, "55000")))
			r->lost = true;
		ud_error_set(err, UD_EUNAVAILABLE, NULL,
			     "postgres: START_REPLICATION: %s",
			     PQerrorMessage(r->c));
		PQclear(res);
		return UD_EUNAVAILABLE;
	}
	PQclear(res);
	PQsetnonblocking(r->c, 1);
	r->streaming = true;
	return 0;
}

int pg_repl_restart(struct pg_repl *r, const char *conninfo,
		    struct ud_error *err)
{
	PQfinish(r->c);
	r->streaming = false;
	r->error[0] = 0;
	if (!(r->c = repl_connect(conninfo, err)))
		return UD_EUNAVAILABLE;
	return pg_repl_start(r, r->fn, r->ctx, err);
}

void pg_repl_free(struct pg_repl *r)
{
	if (!r)
		return;
	PQfinish(r->c);
	free(r);
}

int pg_repl_fd(const struct pg_repl *r)
{
	return r->c && r->streaming ? PQsocket(r->c) : -1;
}
bool pg_repl_streaming(const struct pg_repl *r)
{
	return r->streaming;
}
bool pg_repl_lost(const struct pg_repl *r)
{
	return r->lost;
}
const char *pg_repl_error(const struct pg_repl *r)
{
	return r->error;
}
uint64_t pg_repl_applied_lsn(const struct pg_repl *r)
{
	return r->applied;
}
uint64_t pg_repl_wal_end(const struct pg_repl *r)
{
	return r->wal_end;
}
uint64_t pg_repl_undecodable(const struct pg_repl *r)
{
	return r->undecodable;
}

/* ---- reading big-endian fields ----------------------------------------- */

struct rd {
	const unsigned char *p, *end;
	bool bad;
};

static uint64_t rd_be(struct rd *d, int n)
{
	uint64_t v = 0;

	if (d->bad || d->end - d->p < n) {
		d->bad = true;
		return 0;
	}
	for (int i = 0; i < n; i++)
		v = v << 8 | *d->p++;
	return v;
}

static const char *rd_str(struct rd *d)
{
	const unsigned char *z =
	    d->bad ? NULL : memchr(d->p, 0, (size_t)(d->end - d->p));
	const char *s = (const char *)d->p;

	if (!z) {
		d->bad = true;
		return "";
	}
	d->p = z + 1;
	return s;
}

/* ---- pgoutput messages --------------------------------------------------- */

static struct rel *rel_find(struct pg_repl *r, uint32_t id)
{
	for (int i = 0; i < r->nrels; i++)
		if (r->rels[i].id == id)
			return &r->rels[i];
	return NULL;
}

static void on_relation(struct pg_repl *r, struct rd *d)
{
	uint32_t id = (uint32_t)rd_be(d, 4);
	const char *ns = rd_str(d), *name = rd_str(d);
	struct rel *rel = rel_find(r, id);
	int n;

	rd_be(d, 1); /* replica identity */
	n = (int)rd_be(d, 2);
	if (!rel) {
		if (r->nrels == MAX_RELS) {
			d->bad = true;
			return;
		}
		rel = &r->rels[r->nrels++];
	}
	memset(rel, 0, sizeof(*rel));
	rel->id = id;
	rel->table = strcmp(ns, "userdb")      ? PGT_OTHER
		     : !strcmp(name, "users")  ? PGT_USERS
		     : !strcmp(name, "events") ? PGT_EVENTS
					       : PGT_OTHER;
	if (n > MAX_COLS) { /* ncols stays 0: no tuple indexes past col[] */
		d->bad = true;
		return;
	}
	rel->ncols = n;
	for (int i = 0; i < n; i++) {
		const char *col;
		rd_be(d, 1);
		col = rd_str(d);
		rd_be(d, 8); /* type oid, typmod */
		rel->col[i] = -1;
		for (int k = 0; k < PGU__COUNT; k++)
			if (rel->table == PGT_USERS &&
			    !strcmp(col, user_cols[k]))
				rel->col[i] = (signed char)k;
		for (int k = 0; k < PGE__COUNT; k++)
			if (rel->table == PGT_EVENTS &&
			    !strcmp(col, event_cols[k]))
				rel->col[i] = (signed char)k;
	}
}

static void rd_tuple(struct rd *d, const struct rel *rel,
		     struct pg_row_change *ch)
{
	int n = (int)rd_be(d, 2);

	for (int i = 0; i < n && !d->bad; i++) {
		int kind = (int)rd_be(d, 1),
		    col = i < rel->ncols ? rel->col[i] : -1;
		struct pg_val v = {NULL, 0};
		if (kind == 't') {
			uint32_t len = (uint32_t)rd_be(d, 4);
			if (d->bad || (size_t)(d->end - d->p) < len) {
				d->bad = true;
				return;
			}
			v = (struct pg_val){(const char *)d->p, len};
			d->p += len;
		} else if (kind != 'n' && kind != 'u') {
			d->bad = true;
			return;
		}
		if (col >= 0) {
			ch->v[col] = v;
			ch->unchanged[col] = kind == 'u';
		}
	}
}

static void on_change(struct pg_repl *r, struct rd *d, int type)
{
	struct pg_row_change ch = {.commit_lsn = r->xact_lsn,
				   .own = r->own_xact};
	const struct rel *rel = rel_find(r, (uint32_t)rd_be(d, 4));
	int kind;

	if (!rel) {
		d->bad = true;
		return;
	}
	ch.table = rel->table;
	ch.op = type == 'I'   ? PGO_INSERT
		: type == 'U' ? PGO_UPDATE
			      : PGO_DELETE;
	kind = (int)rd_be(d, 1);
	if (type == 'U' && (kind == 'K' || kind == 'O')) {
		struct pg_row_change old = ch;
		rd_tuple(d, rel, &old);
		kind = (int)rd_be(d, 1);
	}
	if ((type == 'D') ? (kind != 'K' && kind != 'O') : kind != 'N') {
		d->bad = true;
		return;
	}
	rd_tuple(d, rel, &ch);
	if (!d->bad && rel->table != PGT_OTHER)
		r->fn(r->ctx, &ch);
}

static void on_xlogdata(struct pg_repl *r, struct rd *d)
{
	int type;

	rd_be(d, 8 * 3); /* start, end, time: only the payload's LSNs count */
	type = (int)rd_be(d, 1);
	switch (type) {
	case 'B':
		r->xact_lsn = rd_be(d, 8);
		r->own_xact = false;
		break;
	case 'O':
		rd_be(d, 8);
		r->own_xact = strcmp(rd_str(d), r->slot) == 0;
		break;
	case 'C':
		rd_be(d, 1 + 8);
		r->applied = rd_be(d, 8); /* the end of the commit */
		if (r->on_commit && !d->bad)
			r->on_commit(r->ctx, r->xact_lsn, r->own_xact);
		break;
	case 'R':
		on_relation(r, d);
		break;
	case 'I':
	case 'U':
	case 'D':
		on_change(r, d, type);
		break;
	default: /* type, origin, truncate, message: nothing to apply */
		break;
	}
}

int pg_repl_decode(struct pg_repl *r, const unsigned char *msg, size_t n)
{
	struct rd d = {msg, msg + n, false};
	int kind = (int)rd_be(&d, 1), reply = 0;

	if (kind == 'w') {
		on_xlogdata(r, &d);
	} else if (kind == 'k') {
		r->wal_end = rd_be(&d, 8);
		rd_be(&d, 8);
		reply = rd_be(&d, 1) != 0;
	}
	return d.bad ? -1 : reply;
}

struct pg_repl *pg_repl_decoder_new(const char *node_id, pg_change_fn fn,
				    void *ctx)
{
	struct pg_repl *r = calloc(1, sizeof(*r));

	if (r && slot_name(r->slot, sizeof r->slot, node_id)) {
		free(r);
		return NULL;
	}
	if (r) {
		r->fn = fn;
		r->ctx = ctx;
	}
	return r;
}

static void send_status(struct pg_repl *r, int64_t now_ms)
{
	unsigned char b[1 + 8 * 4 + 1], *p = b;
	uint64_t lsn = r->applied, t = (uint64_t)(now_ms * 1000 - PG_EPOCH_US);

	*p++ = 'r';
	for (int k = 0; k < 3; k++)
		for (int i = 7; i >= 0; i--)
			*p++ = (unsigned char)(lsn >> (8 * i));
	for (int i = 7; i >= 0; i--)
		*p++ = (unsigned char)(t >> (8 * i));
	*p++ = 0;
	if (PQputCopyData(r->c, (const char *)b, sizeof b) != 1 ||
	    PQflush(r->c) < 0) {
		set_error(r, "status", PQerrorMessage(r->c));
		r->streaming = false;
	}
	r->last_status_ms = now_ms;
}

static void stream_end(struct pg_repl *r)
{
	PGresult *res;

	while ((res = PQgetResult(r->c)) != NULL) {
		const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		if (st && !strcmp(st, "42704")) /* undefined object */
			r->lost = true;
		if (PQresultStatus(res) == PGRES_FATAL_ERROR)
			set_error(r, "stream", PQresultErrorMessage(res));
		PQclear(res);
		if (PQstatus(r->c) == CONNECTION_BAD)
			break;
	}
	if (!r->error[0])
		set_error(r, "stream", "ended");
	r->streaming = false;
}

void pg_repl_io(struct pg_repl *r, int64_t now_ms)
{
	char *buf;
	int n;

	if (!r->streaming)
		return;
	if (!PQconsumeInput(r->c)) {
		set_error(r, "stream", PQerrorMessage(r->c));
		r->streaming = false;
		return;
	}
	while (r->streaming && (n = PQgetCopyData(r->c, &buf, 1)) > 0) {
		int rc = pg_repl_decode(r, (unsigned char *)buf, (size_t)n);
		PQfreemem(buf);
		if (rc == 1) {
			send_status(r, now_ms);
			/* sending may have read more into libpq's buffer */
			if (r->streaming)
				PQconsumeInput(r->c);
		} else if (rc < 0) {
			r->undecodable++;
			set_error(r, "stream",
				  "a message could not be decoded");
			r->streaming = false;
		}
	}
	if (r->streaming && n == -1)
		stream_end(r);
	else if (r->streaming && n == -2) {
		set_error(r, "stream", PQerrorMessage(r->c));
		r->streaming = false;
	}
}

void pg_repl_tick(struct pg_repl *r, int64_t now_ms)
{
	if (r->streaming && now_ms - r->last_status_ms >= STATUS_EVERY_MS)
		send_status(r, now_ms);
	/* what libpq read while writing is in its buffer, not the socket */
	pg_repl_io(r, now_ms);
}

/* The origin named slot too (its writer's, pg_write.h).  rc: the slot's
 * outcome so far (0 or UD_ENOTFOUND); returns 0 when either was dropped. */
static int drop_origin(const char *conninfo, const char *slot, int rc,
		       struct ud_error *err)
{
	const char *p[1] = {slot};
	PGconn *c = pg_connect(conninfo, err);
	PGresult *res;

	if (!c)
		return UD_EUNAVAILABLE;
	res = PQexecParams(c,
			   "SELECT count(pg_replication_origin_drop(roname))"
			   " FROM pg_replication_origin WHERE roname = $1",
			   1, NULL, p, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		rc = ud_error_set(err, UD_EUNAVAILABLE, NULL,
				  "postgres: dropping origin %s: %s", slot,
				  PQerrorMessage(c));
	} else if (strcmp(PQgetvalue(res, 0, 0), "1") == 0) {
		rc = 0;
	} else if (rc == UD_ENOTFOUND) {
		ud_error_set(err, rc, NULL,
			     "postgres: no slot or origin %s (no such node, "
			     "or dropped already)",
			     slot);
	}
	PQclear(res);
	PQfinish(c);
	return rc;
}

int pg_repl_drop_slot(const char *conninfo, const char *node_id,
		      struct ud_error *err)
{
	char slot[64], sql[128];
	PGconn *c;
	PGresult *res;
	int rc = 0;

	if (slot_name(slot, sizeof slot, node_id))
		return ud_error_set(err, UD_EINVAL, NULL, "bad node id");
	if (!(c = repl_connect(conninfo, err)))
		return UD_EUNAVAILABLE;
	snprintf(sql, sizeof sql, "DROP_REPLICATION_SLOT %s", slot);
	res = PQexec(c, sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		rc =
		    st && !strcmp(st, "42704") ? UD_ENOTFOUND : UD_EUNAVAILABLE;
		ud_error_set(err, rc, NULL, "postgres: dropping slot %s: %s",
			     slot, PQerrorMessage(c));
	}
	PQclear(res);
	PQfinish(c);
	if (rc == UD_EUNAVAILABLE)
		return rc;
	return drop_origin(conninfo, slot, rc, err);
}

void pg_repl_on_commit(struct pg_repl *r, pg_commit_fn fn)
{
	r->on_commit = fn;
}

uint64_t pg_repl_start_lsn(const struct pg_repl *r)
{
	return r->start_lsn;
}
