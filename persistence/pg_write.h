/*
 * pg_write.h -- the write path of PostgreSQL mode: every change record the
 * engine journals becomes one PostgreSQL transaction, sent on one
 * non-blocking connection in pipeline mode, and a write's reply may leave
 * only once its transaction committed.
 *
 * Serials.  Each journaled record gets the next serial (1, 2, ...).  The
 * caller reads pg_writer_serial() after a handler journaled, holds the
 * reply, and releases it once pg_writer_durable() >= that serial.  A
 * transaction PostgreSQL refuses (a unique violation: an email or id
 * another node took; a version that moved: another writer got there first)
 * or whose outcome is unknown (the connection broke while it was in
 * flight) is reported through the fail callback with its serial and code
 * (UD_EDUPEMAIL, UD_EDUPID, UD_EPRECONDITION, UD_EUNAVAILABLE); its
 * success reply must never be sent, since memory applied it
 * optimistically: the caller answers PostgreSQL's verdict instead (409,
 * 412) or, for an unknown outcome, closes the connection.
 *
 * Rollback.  Memory applied the change before PostgreSQL judged it, so
 * after a refusal or a lost outcome the writer reads the user's row back
 * (statement ud_reread, sent in the pipeline after the verdict; after a
 * reconnect for lost ones) and hands it, or its absence, to the restore
 * callback, which puts memory back to what PostgreSQL holds
 * (pg_apply_restore).  The read comes after the verdict on the same
 * connection, so it sees every commit up to it; the replication stream
 * then brings later ones.  A later write of this node on the same user
 * that was already in flight was built on the refused state; its own
 * WHERE version = old refuses it as well (unless another writer happened
 * to commit that very version: see README, Not yet).
 *
 * Statements (prepared once per connection, parameters as text):
 *   create   INSERT INTO userdb.users ... (unique id and folded email)
 *   update   UPDATE userdb.users SET ... WHERE id = $1 AND version = $old
 *            (the version memory held before the change: PostgreSQL decides
 *            whether anyone else changed the row since)
 *   delete   DELETE ... WHERE id = $1 AND version = $old
 *   event    INSERT INTO userdb.events (user_id, event, created_at, details)
 *   failed verification: UPDATE failed_verifies + the event
 * A statement that matches no row fails its transaction (precondition).
 *
 * States (pg_writer_io / pg_writer_tick perform the transitions):
 *
 *   PG_DOWN ----(back-off elapsed: PQconnectStart)----> PG_CONNECTING
 *   PG_CONNECTING --(PQconnectPoll OK: prepare, pipeline on)--> PG_READY
 *   PG_CONNECTING --(failed)--> PG_DOWN (back-off doubles, 100 ms..5 s)
 *   PG_READY: sends queued transactions, reads results; a broken
 *     connection or a transaction in flight longer than PG_WRITE_TIMEOUT_MS
 *     -> PG_DOWN, failing everything in flight as UD_EUNAVAILABLE.
 *
 * While not PG_READY the journal callback refuses new writes with
 * UD_EUNAVAILABLE (reads go on from memory), so a write gets its 503 at
 * once and never waits more than PG_WRITE_TIMEOUT_MS for a verdict.
 *
 * Threads: the loop thread only.  The caller watches pg_writer_fd() for
 * pg_writer_want() and calls pg_writer_io(), and calls pg_writer_tick()
 * about every 100 ms.  No call blocks.
 */
#ifndef UD_PG_WRITE_H
#define UD_PG_WRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "userdb.h"

#define PG_WRITE_TIMEOUT_MS 4000

enum pg_state { PG_DOWN, PG_CONNECTING, PG_READY };
enum { PG_WANT_READ = 1, PG_WANT_WRITE = 2 };

struct pg_writer;
typedef void (*pg_fail_fn)(void *ctx, uint64_t serial, int code,
			   const char *message);
struct pg_val;
/* row: the user's columns in PG_USERS_COLS order (borrowed for the call),
 * or NULL when PostgreSQL has no row of that id. */
typedef void (*pg_restore_fn)(void *ctx, const char *id, size_t id_len,
			      const struct pg_val *row);

/* A writer for conninfo (copied), not connected yet (PG_DOWN, first try at
 * the next tick).  Its transactions carry the replication origin `origin`
 * (created if missing; needs superuser or a GRANT on the
 * pg_replication_origin_* functions), so the node's own stream can tell
 * its own writes from everyone else's.  NULL when out of memory. */
struct pg_writer *pg_writer_new(const char *conninfo, const char *origin,
				pg_fail_fn fail, pg_restore_fn restore,
				void *ctx);
void pg_writer_free(struct pg_writer *w);
/* Journal db's mutations through w from now on. */
void pg_writer_attach(struct pg_writer *w, ud_db *db);

enum pg_state pg_writer_state(const struct pg_writer *w);
uint64_t pg_writer_serial(const struct pg_writer *w);  /* last journaled */
uint64_t pg_writer_durable(const struct pg_writer *w); /* all <= committed */
/* The socket (-1 when none) and what to wait for on it. */
int pg_writer_fd(const struct pg_writer *w);
int pg_writer_want(const struct pg_writer *w);
/* Socket ready (or just "try"): advance.  now_ms: a monotonic clock. */
void pg_writer_io(struct pg_writer *w, int64_t now_ms);
void pg_writer_tick(struct pg_writer *w, int64_t now_ms);

struct pg_writer_stats {
	uint64_t committed, refused, lost, reconnects, inflight;
};
void pg_writer_stats(const struct pg_writer *w, struct pg_writer_stats *out);
/* True while a write of user id is in flight or its row is still to be
 * read back: memory's state of that user may be one PostgreSQL refuses. */
bool pg_writer_pending(const struct pg_writer *w, const char *id, size_t n);
/* Read user id's row back and restore it (as after a refusal). */
void pg_writer_reread(struct pg_writer *w, const char *id, size_t n);
/* For another connection that commits the same records one at a time (the
 * embedded connector): the SQL of statement kind (enum pg_stmt, pg_row.h)
 * and its prepared name in *name, or NULL for PGS_NONE; and PostgreSQL's
 * verdict on one such statement's result: 0, UD_EPRECONDITION (it matched
 * no row), UD_EDUPEMAIL, UD_EDUPID (a unique violation) or
 * UD_EUNAVAILABLE. */
struct pg_result;
const char *pg_write_stmt(int kind, const char **name);
int pg_write_verdict(const struct pg_result *r);
/* The version db holds of the user change record rec[0..len) changes (0:
 * a new user), and in *failed its failed-verification count after the
 * change: what pg_row_params() needs. */
uint64_t pg_write_old_version(ud_db *db, const void *rec, size_t len,
			      uint32_t *failed);

/* The last connection error ("" if none); valid until the next call. */
const char *pg_writer_error(const struct pg_writer *w);

#endif
