/*
 * pg_repl.h -- following PostgreSQL's logical replication stream (pgoutput,
 * protocol 1, publication userdb_pub) on one slot per node.
 *
 * Free of server code (no event loop, no engine writes): it decodes the
 * stream into row changes for a callback, so the server's apply
 * (pg_apply.h) and the embedded connector share it.
 *
 * Slot.  Named "userdb_" + the node id.  pg_repl_create_slot (blocking,
 * start-up only) drops a slot of that name left by an earlier run and
 * creates it with an exported snapshot: the caller loads at that snapshot
 * (pg_load) before issuing anything else on this connection, so the load
 * and the stream meet exactly: every commit after the snapshot comes
 * through the stream, none before it.  Memory is empty at every start, so
 * a restarted node always reloads; a slot lost while running ends the
 * stream (pg_repl_state PG_DOWN with pg_repl_lost() true) and the caller
 * must reload before trusting memory again.
 *
 * Stream rules.
 *  1. Messages are decoded as they arrive; a row change is handed to the
 *     callback at once (pgoutput sends a transaction only after it
 *     committed, so nothing seen is ever rolled back).
 *  2. The position acknowledged to PostgreSQL (standby status update,
 *     flush = apply = write) is the end LSN of the last commit whose
 *     changes the callback returned from, sent on a keepalive that asks
 *     for it and at least every second.  So a restart of the stream resends
 *     at most what was not acknowledged; the callback dedupes by version.
 *  3. Columns are mapped by name from each Relation message: a column a
 *     DBA adds is ignored, a dropped one reads as NULL, and a value that
 *     arrives as "unchanged TOAST" is flagged so the callback keeps its
 *     own copy.
 *  4. A message that cannot be decoded ends the stream (PG_DOWN) rather
 *     than guess.
 *
 * States: PG_STREAMING after pg_repl_start; PG_DOWN when the connection or
 * the slot is gone (see pg_repl_error).  Threads: the loop thread only;
 * after start nothing blocks.
 */
#ifndef UD_PG_REPL_H
#define UD_PG_REPL_H

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "pg_row.h"

enum pg_table { PGT_OTHER, PGT_USERS, PGT_EVENTS };
enum pg_op { PGO_INSERT, PGO_UPDATE, PGO_DELETE };

struct pg_row_change {
	enum pg_table table;
	enum pg_op op;
	/* users: by enum pg_user_col, events: by enum pg_event_col; times
	 * as timestamptz text (UTC) */
	struct pg_val v[PGU__COUNT];
	bool unchanged[PGU__COUNT]; /* unchanged TOAST: keep your own */
	uint64_t commit_lsn;	    /* of the transaction (its final LSN) */
	bool own; /* committed by this node's writer (replication origin) */
};
/* Return 0 when the change is taken care of (applied or skipped). */
typedef int (*pg_change_fn)(void *ctx, const struct pg_row_change *c);

struct pg_repl;
/* After a transaction's last change: its commit LSN (the Begin message's
 * final LSN, as in struct pg_row_change) and whether this node wrote it. */
typedef void (*pg_commit_fn)(void *ctx, uint64_t commit_lsn, bool own);

/* Connect a replication connection for conninfo (blocking), drop the
 * slot of a previous run and create "userdb_<node_id>" exporting a
 * snapshot, whose name is copied to snapshot (64 bytes).  NULL and err
 * on failure. */
struct pg_repl *pg_repl_create_slot(const char *conninfo, const char *node_id,
				    char *snapshot, struct ud_error *err);
/* The same for a process that keeps no state across connections (the
 * embedded connector, userdb_pg.h): a TEMPORARY slot "userdb_<name>"
 * (name as a node id), dropped by PostgreSQL when the connection ends,
 * and no snapshot: whatever the caller reads after this returns is at or
 * after the slot's consistent point, so every later commit is streamed. */
struct pg_repl *pg_repl_create_temp_slot(const char *conninfo, const char *name,
					 struct ud_error *err);
/* The replication origin name of node_id's writer ("userdb_<node_id>"). */
int pg_repl_origin_name(char *out, size_t n, const char *node_id);
/* Start streaming (the snapshot is no longer needed).  0 or
 * UD_EUNAVAILABLE. */
int pg_repl_start(struct pg_repl *r, pg_change_fn fn, void *ctx,
		  struct ud_error *err);
void pg_repl_free(struct pg_repl *r);
/* After the stream ended (not lost): connect again (blocking, at most
 * about 2 s unless conninfo says otherwise) and stream from the slot's
 * confirmed position, so what was not acknowledged comes again (deduped
 * by the callback).  0, or UD_EUNAVAILABLE with pg_repl_lost() true when
 * the slot is gone or invalidated. */
int pg_repl_restart(struct pg_repl *r, const char *conninfo,
		    struct ud_error *err);
/* Also call fn (with pg_repl_start's ctx) at each commit.  NULL: none. */
void pg_repl_on_commit(struct pg_repl *r, pg_commit_fn fn);
/* The slot's consistent point: every commit at or after it comes through
 * the stream, every one before it is in the snapshot. */
uint64_t pg_repl_start_lsn(const struct pg_repl *r);

int pg_repl_fd(const struct pg_repl *r);
bool pg_repl_streaming(const struct pg_repl *r);
bool pg_repl_lost(const struct pg_repl *r); /* the slot is gone */
/* Readable (or just "try"): decode what arrived.  now_ms: monotonic. */
void pg_repl_io(struct pg_repl *r, int64_t now_ms);
void pg_repl_tick(struct pg_repl *r, int64_t now_ms);
const char *pg_repl_error(const struct pg_repl *r);
/* Positions: the last commit applied, and the server's WAL end seen. */
uint64_t pg_repl_applied_lsn(const struct pg_repl *r);
uint64_t pg_repl_wal_end(const struct pg_repl *r);
uint64_t pg_repl_undecodable(const struct pg_repl *r);

/* Decode one CopyData message of the stream: XLogData ('w', whose row
 * changes go to the callback) or a keepalive ('k'); other kinds are
 * ignored.  Returns 0, 1 when a keepalive asks for a status reply, or -1
 * when the message cannot be decoded (rule 4).  msg is borrowed for the
 * call (a change's values point into it). */
int pg_repl_decode(struct pg_repl *r, const unsigned char *msg, size_t n);
/* A reader with no connection that only decodes (pg_repl_decode): for
 * the tests and the fuzzer.  NULL when out of memory or node_id is bad;
 * pg_repl_free frees it. */
struct pg_repl *pg_repl_decoder_new(const char *node_id, pg_change_fn fn,
				    void *ctx);

/* Drop slot "userdb_<node_id>" of a node gone for good and its writer's
 * replication origin of the same name (blocking).  0 when either was
 * dropped, UD_ENOTFOUND when neither exists, UD_EINVAL for a malformed
 * node id, UD_EUNAVAILABLE when PostgreSQL refuses (a slot still in use
 * by a running node) or cannot be reached. */
int pg_repl_drop_slot(const char *conninfo, const char *node_id,
		      struct ud_error *err);

#endif
