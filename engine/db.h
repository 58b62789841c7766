/*
 * db.h -- the in-memory store behind userdb.h and journal.h (internal).
 *
 * Structure.  A user is one struct record (record.h).  The store indexes
 * records four ways, all pointing at the same allocation:
 *   by_id     hash set on the id (XXH3)                         index.h
 *   by_email  hash set on the case-folded email; the key is hashed and
 *             compared by folding on the fly (text_fold_hash/_equal), so
 *             no folded copy is stored                          index.h
 *   order     creation order + role x status cells: O(1) counts for any
 *             filter, O(log n) deep pages                        order.h
 *   lru       (cache mode only) a doubly linked list threaded through two
 *             uint32 arrays indexed by order slot                cache.c
 * The activity log (actlog.h) is keyed by user id, separately.
 *
 * Mutations.  Every operation (ops.c) validates, then describes its
 * resolved result as a struct change (the whole new record, or a delete,
 * or an event alone), encodes it (change.c) and hands it to the journal
 * when one is set; only if the journal accepts is it applied
 * (db_apply_change).  ud_db_apply() decodes a record into a struct change
 * and goes through the same db_apply_change, so replay cannot drift from
 * the live path.  Applying never allocates ids or reads the clock.
 *
 * Counters.  etag and event ids come from two global counters (the last
 * value issued); a change carries the values it uses and applying raises
 * the counters to them.  Times are made monotone: a change's time is
 * max(clock, last time applied), so created <= updated and creation order
 * is also created_at order.
 *
 * Invariants (ud_db_check):
 *   1. by_id, by_email and order hold the same set of live records;
 *      order.items[r->slot] == r; r's cell is role * 3 + status; its
 *      search signature is sig_user() of its name and email (sigs.h).
 *   2. by_email finds each record under its own email.
 *   3. record_bytes == sum of record_size(); implicit == live records with
 *      neither REC_HAS_LOG nor REC_LOADED.
 *   4. REC_HAS_LOG <=> a log exists for the id that is not deleted.
 *   5. cache mode: the LRU list holds exactly the live slots.
 */
#ifndef UD_DB_H
#define UD_DB_H

#include <stdbool.h>
#include <stdint.h>

#include "actlog.h"
#include "actor.h"
#include "index.h"
#include "journal.h"
#include "order.h"
#include "record.h"
#include "userdb.h"

#define LRU_NONE UINT32_MAX

/* A search's total, remembered (list.c) while order.gen stays the same, so
 * that the next pages of the same search stop scanning once filled. */
#define SEARCH_MEMOS	4
#define SEARCH_MEMO_MAX 64
struct search_memo {
	bool used;
	uint8_t len;
	unsigned mask;
	uint64_t gen; /* order.gen when counted */
	uint64_t total;
	char needle[SEARCH_MEMO_MAX]; /* folded */
};

struct ud_db {
	struct ud_options opts;
	struct index by_id;
	struct index by_email;
	struct order order;
	struct actlog log;
	struct actors actors; /* ud_set_actor, created-event runs */

	uint64_t last_etag;  /* last etag issued */
	uint64_t last_event; /* last event id (and creation seq) issued */
	int64_t last_ms;     /* latest time applied */
	uint64_t record_bytes;
	uint64_t implicit; /* live users whose created event is implicit */
	uint64_t failed_verifies, evictions, cache_hits, cache_misses, loads,
	    load_failures;

	bool cache;   /* max_users or max_bytes set */
	bool foreign; /* applying another writer's change (ud_db_apply_foreign)
		       */
	bool restore; /* ud_db_restore: a put or delete without an event */
	uint32_t *lru_prev, *lru_next; /* by slot; allocated in cache mode */
	size_t lru_cap;
	uint32_t lru_head, lru_tail; /* most / least recently used */

	ud_journal_fn journal;
	void *journal_ctx;
	ud_change_fn changes; /* the change stream's listener, or NULL */
	void *changes_ctx;
	void *ext;
	void (*ext_close)(void *ext);
	struct ud_buf enc; /* scratch for encoding change records */
	struct search_memo memo[SEARCH_MEMOS];
	unsigned memo_next;    /* the entry to replace next */
	const uint16_t *fold2; /* two-byte case folding (sigs.h), shared */
};

/* ---- change records (change.c) ----------------------------------------- */

enum change_type {
	CH_COUNTERS = 0, /* the counters, first in a dump */
	CH_PUT = 1,	 /* a user's whole new state (+ an event) */
	CH_DEL = 2,	 /* a delete (+ the deleted event) */
	CH_EVENT = 3,	 /* an event alone: a failed password verification */
	CH_LOG = 4,	 /* a user's kept log, in a dump */
	CH_ACTORS = 5,	 /* the created-event actor runs (actor.h), in a dump */
};

struct change_event {
	uint64_t id;
	int64_t ms;
	int type;	     /* enum ud_event */
	const void *details; /* msgpack map */
	size_t details_len;
};

struct change {
	int type;
	struct record *rec; /* CH_PUT: owned until applied, unless: */
	bool rec_borrowed;  /* rec lives in a change_alloc's space */
	const char *id;	    /* CH_DEL, CH_EVENT, CH_LOG */
	size_t id_len;
	bool has_event;
	struct change_event ev;
	/* CH_COUNTERS */
	uint64_t last_etag, last_event, failed_verifies;
	int64_t last_ms;
	/* CH_LOG: events oldest first; CH_ACTORS: one per run (id = its
	 * first seq, details = the actor's details, type user.created) */
	bool deleted;
	size_t nevents;
	struct change_event *events;
};

/* What the indexes hash of a record, computed once per put (a snapshot load
 * computes it on its helper thread, load.c) instead of once per lookup and
 * insert. */
struct db_keys {
	uint64_t id;	/* XXH3-64 of the id (by_id, the activity logs) */
	uint64_t email; /* text_fold_hash of the email (by_email) */
	bool has_sig;	/* sig below is filled */
	struct sig sig; /* search signature of name and email */
};

/* Append the encoding of ch to b.  0 or UD_ENOMEM. */
int change_encode(const struct change *ch, struct ud_buf *b);
/* Decode one record; ch->rec and ch->events are allocated (free with
 * change_release); other pointers borrow rec.  0 or UD_ECORRUPT. */
int change_decode(const void *rec, size_t len, struct change *ch);
/* Space for a decoded put's record, from its owner: alloc returns n bytes
 * aligned for a struct record, or NULL (then the record is malloc'd). */
struct change_alloc {
	void *(*alloc)(void *ctx, size_t n);
	void *ctx;
};
/* change_decode() building a put's record in alloc's space when it has
 * room (ch->rec_borrowed; alloc NULL: malloc). */
int change_decode_with(const void *rec, size_t len,
		       const struct change_alloc *alloc, struct change *ch);
void change_release(struct change *ch);

/* ud_db_apply() in two halves (load.c runs the first on a helper thread).
 *
 * change_prepare: decode rec into ch (a put's record in alloc's space when
 * given), check what the record must obey on its own (a put's fields and
 * event: the first rules of the list in change.c) and, for a put, hash its
 * keys into k (and its search signature when sig).  Reads no store:
 * thread-safe.  0, or UD_ECORRUPT with the reason (ch then holds nothing).
 *
 * change_commit: on the owner thread, check ch against the store and apply
 * it (a borrowed record is copied first: the store's records are malloc'd
 * by its owner thread); releases ch either way.  0, UD_ECORRUPT (nothing
 * changed) or UD_ENOMEM. */
int change_prepare(const void *rec, size_t len, bool sig,
		   const struct change_alloc *alloc, struct change *ch,
		   struct db_keys *k, struct ud_error *err);
int change_commit(ud_db *db, struct change *ch, const struct db_keys *k,
		  struct ud_error *err);
/* The two halves of the checks: change_check_record reads only ch;
 * change_check_store reads the store (k: the keys of a put, or NULL). */
int change_check_record(const struct change *ch, struct ud_error *err);
int change_check_store(const ud_db *db, const struct change *ch,
		       const struct db_keys *k, struct ud_error *err);

/* ---- the store (db.c) --------------------------------------------------- */

/* The hashes of r's id and email (not the signature). */
void db_keys_hash(const struct record *r, struct db_keys *k);
struct record *db_find(const ud_db *db, const char *id, size_t len);
struct record *db_find_email(const ud_db *db, const char *email, size_t len);
/* The same lookups with the key's hash given (h as in struct db_keys). */
struct record *db_find_hashed(const ud_db *db, const char *id, size_t len,
			      uint64_t h);
struct record *db_find_email_hashed(const ud_db *db, const char *email,
				    size_t len, uint64_t h);
/* Apply ch to memory (takes ch->rec).  0, UD_ECORRUPT when it contradicts
 * the state, UD_ENOMEM. */
int db_apply_change(ud_db *db, struct change *ch);
/* db_apply_change() with the keys of a put's record already computed
 * (NULL: compute them). */
int db_apply_change_keys(ud_db *db, struct change *ch, const struct db_keys *k);
/* Journal ch (when a journal is set) then apply it; frees ch->rec on
 * failure.  0 or the journal's / apply's code. */
int db_commit(ud_db *db, struct change *ch, struct ud_error *err);
/* What the change listener needs of ch that applying it may free: the
 * record a put stores, a delete's id (it may point into the record). */
struct db_note {
	const struct record *put;
	char id[UD_ID_MAX];
	size_t id_len;
};
/* Fill n from ch before applying it; then, once applied, tell the change
 * listener (if any). */
void db_note_prepare(const struct change *ch, struct db_note *n);
void db_note_change(ud_db *db, const struct change *ch,
		    const struct db_note *n);
/* max(clock, last time applied). */
int64_t db_now(const ud_db *db);
/* Take r out of every index, free it (not journaled, no event). */
void db_unlink(ud_db *db, struct record *r);

/* ---- cache mode (cache.c) ----------------------------------------------- */

int cache_init(ud_db *db);
/* Room for one more user in the LRU arrays.  0 or UD_ENOMEM. */
int cache_reserve(ud_db *db);
void cache_destroy(ud_db *db);
/* r was appended at r->slot: make it most recently used.  0 or ENOMEM. */
int cache_insert(ud_db *db, struct record *r);
void cache_remove(ud_db *db, const struct record *r);
void cache_touch(ud_db *db, const struct record *r);
/* Evict least recently used users (never keep) until within bounds. */
void cache_enforce(ud_db *db, const struct record *keep);
/* Around order_compact: remember the LRU order / relink it by new slots. */
struct record **cache_save(ud_db *db);
void cache_restore(ud_db *db, struct record **saved);
/* Ask the loader for a missing user; the inserted record or NULL. */
struct record *cache_load(ud_db *db, enum ud_key_kind kind, const char *key,
			  size_t len);
int cache_check(const ud_db *db);

/* ---- invariants ---------------------------------------------------------- */

/* Check every invariant above; 0 or UD_EINTERNAL with the broken one in
 * err->message.  O(n). */
int ud_db_check(ud_db *db, struct ud_error *err);

#endif
