/*
 * journal.h -- the seam between the engine and persistence.
 *
 * The engine knows nothing of files.  Every mutation it accepts is described
 * by one self-contained "change record" (msgpack, engine-defined, opaque to
 * persistence) that carries the resolved result: generated ids, timestamps,
 * password hashes, the activity-log event.  Applying the records of a store,
 * in order, to an empty store rebuilds it exactly; that is how the log is
 * replayed and how a snapshot (a dump of records) is loaded.
 *
 * Order of a mutation: validate -> encode the change record -> journal it
 * (the callback may refuse: the mutation is then not applied and its code is
 * returned) -> apply in memory.  So memory never holds an accepted change
 * that the journal did not take.
 *
 * Threads: as the store (one owner thread).  ud_db_dump() only reads and may
 * run in a forked child.
 */
#ifndef UD_JOURNAL_H
#define UD_JOURNAL_H

#include "userdb.h"

/* Receives one change record.  Returns 0 or a negative ud_code (for instance
 * UD_EUNAVAILABLE when the log cannot be written). */
typedef int (*ud_journal_fn)(void *ctx, const void *rec, size_t len);

/* A store in memory only (what ud_open() does without a data dir).  Returns
 * NULL and fills err on bad options or out of memory. */
ud_db *ud_db_new(const struct ud_options *opt, struct ud_error *err);
void ud_db_free(ud_db *db);

/* Journal every later mutation through fn (NULL to stop). */
void ud_db_set_journal(ud_db *db, ud_journal_fn fn, void *ctx);

/* Apply one change record without journaling it (replay).  Returns 0, or
 * UD_ECORRUPT (reason in err->message) when the record cannot be decoded or
 * contradicts the store (rules at the top of change.c's checks); a refused
 * record changes nothing.  UD_ENOMEM while applying may leave it half done. */
int ud_db_apply(ud_db *db, const void *rec, size_t len, struct ud_error *err);

/* ud_db_apply() of a change another writer made (PostgreSQL mode: another
 * node or a SQL client, pg.h), whose etag and creation time come from that
 * writer's clock and counter: the rules that a put's etag is after the
 * store's last, a new user is not created before the newest, and a user's
 * etag and updated time only grow are waived (the other writer's state is
 * the truth; counters still only rise).  Same codes as ud_db_apply(). */
int ud_db_apply_foreign(ud_db *db, const void *rec, size_t len,
			struct ud_error *err);

/* ud_db_apply_foreign() of a put or a delete without an event, also on a
 * live user: PostgreSQL mode puts back the state PostgreSQL holds after it
 * refused a write memory had applied optimistically (pg.h), so the
 * rollback adds nothing to the activity log or the change stream.  Same
 * codes as ud_db_apply(). */
int ud_db_restore(ud_db *db, const void *rec, size_t len, struct ud_error *err);

/* Loading many records (a snapshot) faster, in two halves (load.c):
 * ud_load_prepare() on any thread, then ud_load_apply() on the owner thread
 * in record order.  Together they are ud_db_apply(): same checks, same
 * messages, same result.
 *
 * ud_load_weigh: 1 if rec looks like a user (a put), else 0, from its
 *   first two bytes: summed over a snapshot, the hint for ud_load_begin.
 * ud_load_begin: users = how many users follow (a hint); sizes an empty
 *   store's indexes for them when memory allows (a hint that lies costs
 *   memory or growth, nothing else).  Returns 0.
 * ud_load_batch_new: room for n prepared records; NULL when out of memory.
 *   ud_load_batch_free releases it with any records prepared but not
 *   applied.
 * ud_load_prepare: decode rec (borrowed for the call only) into entry i of
 *   b, check what needs no store, hash its keys.  Reads no store.  0 or
 *   UD_ECORRUPT with the reason.  Entry 0 starts a new round: entries of
 *   the previous one not applied yet are dropped.
 * ud_load_prefetch: start loading what applying entry i will touch.
 * ud_load_apply: check entry i against the store and apply it (the entry
 *   is consumed either way).  0, UD_ECORRUPT (nothing changed) or
 *   UD_ENOMEM. */
struct ud_load_batch;
uint64_t ud_load_weigh(const void *rec, size_t len);
int ud_load_begin(ud_db *db, uint64_t users);
struct ud_load_batch *ud_load_batch_new(size_t n);
void ud_load_batch_free(struct ud_load_batch *b);
int ud_load_prepare(struct ud_load_batch *b, size_t i, const void *rec,
		    size_t len, struct ud_error *err);
void ud_load_prefetch(const ud_db *db, const struct ud_load_batch *b, size_t i);
int ud_load_apply(ud_db *db, struct ud_load_batch *b, size_t i,
		  struct ud_error *err);

/* Emit the whole state as change records through emit: counters first, then
 * every user in creation order, then the kept activity logs.  Read-only;
 * safe in a forked child.  Returns 0 or the first non-zero emit result. */
int ud_db_dump(ud_db *db, ud_journal_fn emit, void *ctx);

/* Persistence hangs its state here so that ud_close()/ud_flush() find it;
 * ud_db_free() calls close_fn(ext) first. */
void ud_db_set_ext(ud_db *db, void *ext, void (*close_fn)(void *ext));
void *ud_db_ext(ud_db *db);

/* Engine part of ud_stats(); persistence fills the rest. */
void ud_db_stats(ud_db *db, struct ud_stats *out);

/* ---- the change stream (SPEC §8) -----------------------------------------
 *
 * A change is every committed mutation that carries an activity event:
 * create, update, delete, password, suspension, identity, verification.
 * Its seq IS the event id: one counter that already rises by one per
 * change, is never reused, and rides in every log record and snapshot
 * (CH_COUNTERS keeps it across snapshots that drop the records), so the
 * change stream needs no counter or record field of its own.  A user's
 * creation seq is its user.created event id.
 *
 * The seq is given, not counted, by whoever supplies a record:
 * ud_db_apply() takes the event id the record carries (checked to be above
 * every applied one) and reports the change like a live one.  A follower
 * that gets its changes from outside (PostgreSQL mode: a seq derived from
 * the commit LSN) builds records with that seq as event id and applies
 * them with ud_db_apply(); seqs then only need to increase, not be dense.
 */
struct ud_change {
	uint64_t seq; /* the event id */
	int event;    /* UD_EV_* */
	const char *user_id;
	size_t user_id_len;
	int64_t at_ms;	     /* the event's time */
	const void *details; /* the event's details, a msgpack map */
	size_t details_len;
	const ud_user *user; /* after the change; NULL after a delete */
};

/* Told of each change after it is applied in memory (both by the live
 * operations and ud_db_apply); not of dumps, loads or changes without an
 * event (a cache load).  Every pointer in *c is borrowed for the call.
 * The callback must not call back into the store. */
typedef void (*ud_change_fn)(void *ctx, const struct ud_change *c);
void ud_db_set_changes(ud_db *db, ud_change_fn fn, void *ctx);

/* The seq of the last change applied (0: none yet). */
uint64_t ud_db_last_seq(const ud_db *db);

/* The change a log record (as journaled) describes, for rebuilding a
 * window of changes from the log.  0 and *c (pointers into rec, or owned
 * by *own: free with ud_change_release), 1 when rec is not a change (no
 * event), UD_ECORRUPT when it does not decode.  A failed verification's
 * record carries no user: c->user is then db's current user of that id
 * (NULL when it is gone). */
int ud_change_decode(ud_db *db, const void *rec, size_t len,
		     struct ud_change *c, void **own);
void ud_change_release(void *own);

#endif
