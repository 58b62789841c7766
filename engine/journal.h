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

#endif
