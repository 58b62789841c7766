/*
 * pg.h -- PostgreSQL as the system of record (SPEC §7): the schema and its
 * migrations, the start-up load, and (pg_write.c) the write path.
 *
 * This module is the only place that speaks SQL.  The engine never sees
 * libpq; the server (net/) calls the functions below and hooks the
 * connection's socket into its own loop.  Rows and engine users are
 * converted by the row codec (pg_row.h), which has no server code so that
 * the embedded connector can reuse it.  Everything here is a separate
 * library (userdb_pg): the embeddable libuserdb does not link libpq.
 *
 * Schema `userdb` (version PG_SCHEMA_VERSION):
 *
 *   userdb.migrations (version int primary key, applied_at timestamptz)
 *   userdb.users
 *     id text primary key, name text, email text (as given),
 *     email_folded text  -- userdb's own case folding (text_fold), unique
 *                           index users_email_folded_key
 *     role text, status text, avatar text null,
 *     custom_data jsonb, identities jsonb, password_hash text null,
 *     last_sign_in_at timestamptz null, created_at, updated_at timestamptz,
 *     version bigint     -- the ETag: moves on every change (below)
 *     failed_verifies int
 *   userdb.events
 *     id bigint identity primary key (commit order of the inserting
 *     transactions is not implied), user_id text, event text,
 *     created_at timestamptz, details jsonb; index (user_id, id).
 *   publication userdb_pub for both tables (the replication stream).
 *   trigger users_touch (migration 3): an UPDATE by a SQL client that
 *     changes email but not email_folded refolds it with lower(), and one
 *     that does not move version moves it, so the ETag moves and the
 *     unique index keeps guarding SQL writes.  lower() is not userdb's
 *     folding for every script; a duplicate only the real folding reveals
 *     is refused by the engine when the row is applied (counted, skipped).
 *   migration 4: the version moves only when a field a client sees
 *     changed (userdb's own failed-verification count update keeps it).
 *   migration 5: the publication covers both tables even when it outlived
 *     an earlier schema userdb (DROP SCHEMA leaves publications behind).
 *
 * Migrations.  Numbered 1..PG_SCHEMA_VERSION, each one transaction that
 * takes a transaction-scoped advisory lock (PG_MIGRATE_LOCK), re-reads the
 * applied versions, runs its statements (written to be idempotent too:
 * IF NOT EXISTS, guarded DO blocks) and records its number.  So nodes
 * starting together migrate once, a crash mid-migration leaves the previous
 * version, and a database at any earlier version reaches the latest.  A
 * database newer than this binary (a version it does not know) is refused.
 *
 * Start-up load (pg_load): one REPEATABLE READ transaction (or the
 * snapshot exported by the replication slot's creation, when given, so the
 * load and the stream meet exactly) runs two COPY ... TO STDOUT: the users
 * ordered by (created_at, id), then at most UD_LOG_KEEP newest events per
 * user.  The rows become the change records a snapshot holds (counters,
 * one put per user, one log per user), applied with the engine's own
 * checks, so a row the engine cannot accept (bad email, a duplicate only
 * folding reveals, broken JSON) is skipped and counted, never loaded.
 *
 * Threads: a PGconn and everything called with it belong to one thread.
 * pg_load blocks; it runs before the server serves.  No globals.
 */
#ifndef UD_PG_H
#define UD_PG_H

#include <stdint.h>

#include <libpq-fe.h>

#include "userdb.h"

#define PG_SCHEMA_VERSION 5
#define PG_MIGRATE_LOCK	  7420117 /* pg_advisory_xact_lock key */

/* Connect with conninfo (a libpq keyword string or URI), blocking.  NULL and
 * err (UD_EUNAVAILABLE with libpq's message) on failure; the caller
 * PQfinish()es a returned connection. */
PGconn *pg_connect(const char *conninfo, struct ud_error *err);

/* The highest applied migration of c's database (0: no schema yet).
 * 0 or UD_EUNAVAILABLE. */
int pg_schema_version(PGconn *c, int *version, struct ud_error *err);

/* Apply migrations up to target (PG_SCHEMA_VERSION for the latest).
 * Returns 0, UD_EINVAL for a target out of range or a database newer than
 * this binary, or UD_EUNAVAILABLE when a statement fails (err names the
 * migration and carries PostgreSQL's message). */
int pg_migrate(PGconn *c, int target, struct ud_error *err);

struct pg_load_stats {
	uint64_t users;	       /* loaded */
	uint64_t events;       /* activity entries loaded */
	uint64_t rows_skipped; /* rows the engine refused (logged by caller) */
};

/* Called for each skipped row with the engine's reason (may be NULL). */
typedef void (*pg_skip_fn)(void *ctx, const char *what, const char *reason);

/* Load every user and its kept activity from c into db, which must be
 * empty.  snapshot: a name from CREATE_REPLICATION_SLOT ... EXPORT_SNAPSHOT
 * to read at, or NULL for a fresh REPEATABLE READ snapshot.  Returns 0 or
 * UD_EUNAVAILABLE / UD_ENOMEM; skipped rows are not errors. */
int pg_load(PGconn *c, ud_db *db, const char *snapshot, pg_skip_fn skip,
	    void *skip_ctx, struct pg_load_stats *st, struct ud_error *err);

#endif
