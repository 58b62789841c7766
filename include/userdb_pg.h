/*
 * userdb_pg.h -- the embedded PostgreSQL connector (libuserdb_pgcache): a
 * userdb store in cache mode, inside the application's process, in front of
 * a PostgreSQL database that holds the `userdb` schema (SPEC §6, §7).
 *
 * What it does.  ud_pg_open() connects, creates or migrates the schema as a
 * userdb node does, and opens an empty bounded store (max_users /
 * max_bytes, least recently used users evicted).  A lookup by id or by
 * email (case-insensitive) that misses loads the row with a prepared
 * statement and keeps it; a lookup of an absent id or email is remembered
 * too (a negative entry), so repeated misses do not reach the database.
 * Creates, updates, deletes, passwords, verifications, suspension and
 * identities go to
 * PostgreSQL first, with the statements a userdb node uses, and return its
 * verdict (UD_EDUPEMAIL / UD_EDUPID for 409, UD_EPRECONDITION for 412,
 * UD_EUNAVAILABLE when it cannot be reached); only a committed change
 * reaches the cache.  A user's ETag is its row's `version`, as on a node.
 *
 * Coherence: the feed.  Each cache follows PostgreSQL's logical replication
 * stream (pgoutput, publication userdb_pub) on a TEMPORARY slot of its own,
 * "userdb_c<pid><clock><attempt>", which PostgreSQL drops when the
 * connection ends.
 * We chose the stream over LISTEN/NOTIFY from a trigger because it needs no
 * schema change, carries every commit of every writer (a node, a SQL client,
 * another cache) in commit order with the whole new row, so a cached user is
 * updated in place instead of reloaded, and a NOTIFY listener that
 * reconnects must empty its cache anyway.  Its costs: one walsender and one
 * slot (max_replication_slots, max_wal_senders) per process, wal_level =
 * logical, and the REPLICATION attribute for the role.  Rules:
 *
 *  1. A row change of a cached user whose version is newer than the cached
 *     ETag becomes the cached state (unchanged TOAST columns keep the
 *     cached values); an older or equal one (our own write's echo) is
 *     skipped; a delete evicts.  A change of a user not cached only drops
 *     the negative entries of its id and new email.
 *  2. Placeholders (the technique of Redis's client-side caching): a miss
 *     registers its key before the SELECT and drains the feed after it; a
 *     change of that id or email seen in between, or a feed restart, means
 *     the loaded row may be older than a change already dropped, so it is
 *     returned but not kept.  Rows read while the feed is not streaming are
 *     never kept either.
 *  3. Feed lost: the connector probes PostgreSQL on its query connection.
 *     If PostgreSQL answers (the feed's backend was killed, a slot
 *     conflict) the cache is emptied at once, before any further lookup,
 *     and the feed reconnects.  If it does not answer, PostgreSQL is down:
 *     cached users go on being served (no writer can commit while it is
 *     down; a network partition that lets others write is the one case
 *     where they may be stale), misses and writes fail with
 *     UD_EUNAVAILABLE, and the cache is emptied when the feed comes back.
 *  4. Staleness is bounded by how soon the application calls
 *     ud_pg_process() after the feed's socket becomes readable (or by the
 *     helper thread, which does that itself): typically a millisecond.
 *
 * Driving it.  Two ways, pick one:
 *  - No threads of ours (as libpq): poll ud_pg_fd() for reading and call
 *    ud_pg_process() when it is readable, and at least every
 *    UD_PG_TICK_MS (status messages, reconnects).  The fd changes after a
 *    reconnect: read it again after each ud_pg_process().
 *  - One helper thread: ud_pg_thread_start() runs that loop.  The handle
 *    is then shared, so every call, and every use of a pointer it returned,
 *    must be between ud_pg_lock() and ud_pg_unlock(); the thread takes the
 *    same lock to apply the feed.
 * Either way the handle is owned by one thread at a time, as the engine is.
 *
 * Blocking.  Misses and writes block on their statement (like PQexec), at
 * most connect_timeout (5 s unless the conninfo says otherwise) to
 * (re)connect; a reconnect of the feed blocks the same way.  Hits never
 * block and never touch the network.
 *
 * Lifetimes.  A returned `const ud_user *` is borrowed from the cache: it
 * stays valid until the next call on the handle (any call, including
 * ud_pg_process(), may evict, update or empty) or ud_pg_close().  Read it
 * with ud_user_view() and the encoders of userdb.h.
 */
#ifndef USERDB_PG_H
#define USERDB_PG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "userdb.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ud_pg ud_pg;

#define UD_PG_TICK_MS 100

struct ud_pg_options {
	const char *conninfo; /* libpq keyword string or URI; required */
	size_t max_users;     /* cache bound on users; 0 = none */
	size_t max_bytes;     /* bound on record bytes; 0 = none */
	size_t max_negative;  /* negative entries kept; 0 = 65536 */
	/* Argon2id cost of passwords set through the cache; 0 = libsodium's
	 * INTERACTIVE limits (as ud_options). */
	unsigned long long pw_opslimit;
	size_t pw_memlimit;
};
extern const struct ud_pg_options ud_pg_options_default;

/* Connect (query connection and feed), migrate the schema to the version
 * this library knows, open the empty cache.  0 and *out, UD_EINVAL (no
 * conninfo, a database newer than this library), UD_EUNAVAILABLE
 * (PostgreSQL refused or is unreachable; err has its message) or
 * UD_ENOMEM.  The caller owns *out: ud_pg_close() it. */
int ud_pg_open(const struct ud_pg_options *opt, ud_pg **out,
	       struct ud_error *err);
/* Stop the helper thread if started, close both connections (PostgreSQL
 * drops the slot), free everything. */
void ud_pg_close(ud_pg *c);

/* ---- reads -------------------------------------------------------------- */

/* The user with this id / this email (case-insensitive): from the cache,
 * else loaded.  NULL when there is none (err: UD_ENOTFOUND) or it cannot
 * be loaded (UD_EUNAVAILABLE, UD_EINVAL for a row the engine refuses).
 * err may be NULL. */
const ud_user *ud_pg_get(ud_pg *c, const char *id, size_t len,
			 struct ud_error *err);
const ud_user *ud_pg_get_by_email(ud_pg *c, const char *email, size_t len,
				  struct ud_error *err);
/* A user's activity, newest first, read from userdb.events (not cached):
 * the user's recent activity only when asked.  Fills out as ud_log_list();
 * its pointers stay valid until the next call on c.  0, UD_EINVAL or
 * UD_EUNAVAILABLE. */
int ud_pg_log_list(ud_pg *c, const char *user_id, size_t len, unsigned page,
		   unsigned limit, struct ud_log_page *out,
		   struct ud_error *err);

/* ---- writes: PostgreSQL first, then the cache --------------------------
 * Fields, if_match, out and codes as the same calls of userdb.h; in
 * addition UD_EUNAVAILABLE when PostgreSQL cannot be reached or did not
 * answer.  An unconditional update or delete whose cached copy turns out
 * stale (PostgreSQL's version moved) reloads the user and tries again; a
 * conditional one (if_match != 0) is checked against the reloaded user and
 * gives UD_EPRECONDITION only when PostgreSQL's version differs. */
int ud_pg_create(ud_pg *c, const struct ud_fields *f, const ud_user **out,
		 struct ud_error *err);
int ud_pg_update(ud_pg *c, const char *id, size_t len,
		 const struct ud_fields *f, uint64_t if_match,
		 const ud_user **out, struct ud_error *err);
int ud_pg_delete(ud_pg *c, const char *id, size_t len, uint64_t if_match,
		 struct ud_error *err);
/* Hashes on the calling thread (slow by design). */
int ud_pg_set_password(ud_pg *c, const char *id, size_t len, const char *pw,
		       size_t pw_len, const ud_user **out,
		       struct ud_error *err);
int ud_pg_verify_password(ud_pg *c, const char *id, size_t len, const char *pw,
			  size_t pw_len, bool *valid, struct ud_error *err);

int ud_pg_set_suspended(ud_pg *c, const char *id, size_t len, bool suspended,
			const ud_user **out, struct ud_error *err);
int ud_pg_link_identity(ud_pg *c, const char *id, size_t len,
			const char *target, size_t target_len,
			const char *ext_user_id, size_t ext_user_id_len,
			const void *details, size_t details_len,
			const ud_user **out, struct ud_error *err);
int ud_pg_unlink_identity(ud_pg *c, const char *id, size_t len,
			  const char *target, size_t target_len,
			  const ud_user **out, struct ud_error *err);

/* ---- driving the feed --------------------------------------------------- */

/* The feed's socket to poll for reading, or -1 while it is down (then
 * just call ud_pg_process() every UD_PG_TICK_MS). */
int ud_pg_fd(const ud_pg *c);
/* Apply what the feed brought, send its status, reconnect what was lost.
 * Returns 0, or UD_EUNAVAILABLE while the feed is down (the cache then
 * serves as rule 3 says).  Never blocks except to reconnect. */
int ud_pg_process(ud_pg *c);
/* The helper thread (see Driving it).  0, or UD_EINVAL when one runs. */
int ud_pg_thread_start(ud_pg *c);
void ud_pg_lock(ud_pg *c);
void ud_pg_unlock(ud_pg *c);

/* ---- state -------------------------------------------------------------- */

struct ud_pg_stats {
	uint64_t users, record_bytes; /* cached now */
	uint64_t hits, misses;	      /* lookups */
	uint64_t loads;		      /* rows loaded by a miss and kept */
	uint64_t loads_not_kept;      /* raced a change or a feed restart */
	uint64_t negative_hits;	      /* misses answered by a negative entry */
	uint64_t queries;	      /* statements sent on the query conn */
	uint64_t evictions;	      /* by the bound */
	uint64_t feed_changes;	      /* row changes the feed brought */
	uint64_t feed_applied;	      /* of them, applied to a cached user */
	uint64_t feed_refused;	      /* rows the engine refused (evicted) */
	uint64_t feed_restarts;	      /* feed connections after the first */
	uint64_t flushes;	      /* times the cache was emptied */
	bool feed_up;		      /* streaming now */
	bool pg_down;		      /* the last probe found PostgreSQL down */
};
void ud_pg_stats(ud_pg *c, struct ud_pg_stats *out);
/* The last feed or connection error ("" if none); valid until the next
 * call on c. */
const char *ud_pg_error(const ud_pg *c);
/* Check the cache's invariants (the engine's, and that every negative
 * entry names no cached user).  0 or UD_EINTERNAL with the broken one in
 * err.  O(n): for tests. */
int ud_pg_check(ud_pg *c, struct ud_error *err);

#ifdef __cplusplus
}
#endif
#endif /* USERDB_PG_H */
