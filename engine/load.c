/*
 * load.c -- loading a snapshot fast: ud_db_apply() split in two halves so
 * that a helper thread does the half that reads no store (journal.h).
 *
 * Where the time went.  At 1M users of the benchmark's shape (a 200 MB
 * snapshot) a restart took 2.9-3.3 s from exec to "ready" (ud_open alone
 * ~2.5 s), all on one thread.  perf of a restart: lookups in the id and
 * email sets 15% (table_find: every put looked each key up twice, to check
 * and to apply, and each probe of a 2M-slot table is a cache miss), hashing
 * 21% (the case-folded email hashed 4 times per user -- check, apply,
 * insert, and again when the incremental rehash migrated it -- and the id 4
 * times), the incremental rehash itself ~5%, the field rules ~12%
 * (scan_text, the custom_data JSON walk), msgpack decoding ~7%, the search
 * signature ~7% (sig_store: 128 read-modify-writes per append), and the
 * checksum pass done twice (once to pick the snapshot, once to load it).
 *
 * What was done, and what each step bought (ud_open of that snapshot,
 * quiet machine, 2 cores):
 *   - ud_load_prepare() decodes a record, runs the rules that need only the
 *     record (change_check_record: every field rule, exactly as before),
 *     hashes the id and the email and computes the search signature, once
 *     per user.  It reads no store, so persistence runs it on a helper
 *     thread and on the owner thread alike (snapshot.c: batches of 512
 *     records, the owner applying in file order).
 *   - ud_load_apply() runs on the owner thread in record order: the checks
 *     against the store (change_check_store: unique id, unique email,
 *     creation order, counters, ...) and the apply, with the hashes given
 *     (db_apply_change_keys).  The two halves are exactly ud_db_apply(),
 *     which is itself written as change_prepare + change_commit, so the
 *     paths cannot drift: same checks in the same order, same messages,
 *     same store.  A crafted snapshot repeating an id or an email is
 *     refused as before (tests/engine/test_load.c, persistence/test_db.c).
 *   - ud_load_begin() sizes the id and email sets for the snapshot's puts
 *     (counted by ud_load_weigh while the file's checksums are checked: a
 *     snapshot's kept logs must not inflate the hint) before the first
 *     insert: no incremental rehash.  The capacity is the one one-by-one
 *     growth reaches, so memory per user does not change.  A wrong hint
 *     costs address space (capped) or later growth, never correctness.
 *   - ud_load_prefetch() starts loading the home slots of the record a few
 *     places ahead, so its lookups do not each wait for memory.
 *   Together: ud_open 2.5 s -> ~1.0 s (measured while other test runs
 *   shared the machine).
 *   - Then the CPU itself: a signature append sets only its set bits
 *     (order.c; a slot past len is zero), scan_text tests 8 ASCII bytes at
 *     a time, JSON sizing formats integers without snprintf, and small
 *     maps look for a repeated key without qsort.
 * Result, old and new server run alternately on a quiet machine: exec to
 * "ready", median of 5, 2.5-2.7 s -> 0.67-0.69 s; ud_open ~0.6 s, with
 * ~1.1 s of CPU (~0.2 s of it page faults) over the two threads.  With the
 * second core busy elsewhere the owner prepares every batch itself and a
 * start takes ~1.1 s (the old code, single-threaded, ~2.5 s either way).
 * RSS after the load 272.2 -> 273.3 B/user; a store built by creates
 * (mem_engine) is unchanged at 272.4 B/user.
 *
 * What is left (callgrind, 100k users, ~8.9k instructions per user): the
 * first half ~81% -- field rules 42% (the custom_data JSON walk alone 24%,
 * which sizes the map as JSON exactly as an import does), decoding 22%,
 * signature 10% -- and the second half ~14%; the checksum pass (~55 ms at
 * 1M) still runs on one thread before anything is applied.  Log segments
 * are replayed through the same two stages (persistence/recover.c,
 * replay_staged): 1M creates in the log alone, no snapshot, exec to
 * "ready", old and new alternately, 2.0-2.8 s -> 0.72-0.92 s.
 *
 * Thread assumptions: ud_load_prepare() may run on any thread, on
 * different batches at once; it reads nothing shared.  Everything else on
 * the store's owner thread, which also allocates every record the store
 * keeps (see LOAD_ARENA below).
 */
#include <stdlib.h>

#include "db.h"
#include "journal.h"

struct ud_load_ent {
	struct change ch;
	struct db_keys k;
	bool ready; /* ch holds a prepared record not yet applied */
};

/* Records are prepared into the batch's own space (a bump arena reset
 * with each round) and copied into malloc'd memory by the owner thread when
 * applied (change_commit): malloc'd on the helper thread, they would live
 * in its glibc arena, and every later update or delete, freeing them from
 * the owner thread, would return their memory to that arena, where the
 * owner's allocations never look -- the process would keep both. */
#define LOAD_ARENA (256u << 10) /* ~512 records of ~250 bytes; more: malloc */

struct ud_load_batch {
	size_t n;
	char *arena; /* LOAD_ARENA bytes, or NULL */
	size_t used;
	struct ud_load_ent e[];
};

/* A hint is believed up to this many users: 2^25-slot sets, 288 MB of
 * address space each, only touched where users land.  Beyond, the sets
 * grow as usual. */
#define LOAD_HINT_MAX (1u << 24)

uint64_t ud_load_weigh(const void *rec, size_t len)
{
	const unsigned char *p = rec;

	/* a put is the array [1, user, event | nil] (change.c) */
	return len >= 2 && p[0] == 0x93 && p[1] == CH_PUT;
}

int ud_load_begin(ud_db *db, uint64_t users)
{
	size_t n = users > LOAD_HINT_MAX ? LOAD_HINT_MAX : (size_t)users;

	/* Only an empty store, and not in cache mode (bounded on purpose).
	 * Best effort: without the memory the sets grow as usual.  (The
	 * creation order is not presized: its doublings cost ~1% of a load,
	 * by realloc and a tree rebuild, where the sets' rehash cost ~5%.) */
	if (db->cache || db->order.len || n == 0)
		return 0;
	if (index_presize(&db->by_id, n) == 0 &&
	    index_presize(&db->by_email, n) != 0)
		index_destroy(&db->by_id); /* back to empty, as it was */
	return 0;
}

struct ud_load_batch *ud_load_batch_new(size_t n)
{
	struct ud_load_batch *b =
	    calloc(1, sizeof(*b) + n * sizeof(struct ud_load_ent));

	if (b) {
		b->n = n;
		b->arena = malloc(LOAD_ARENA); /* NULL: records malloc'd */
	}
	return b;
}

static void *arena_alloc_cb(void *ctx, size_t n)
{
	struct ud_load_batch *b = ctx;
	size_t at = (b->used + 15) & ~(size_t)15; /* max_align_t */

	if (!b->arena || n > LOAD_ARENA - at || at > LOAD_ARENA)
		return NULL;
	b->used = at + n;
	return b->arena + at;
}

static void ent_clear(struct ud_load_ent *e)
{
	if (e->ready)
		change_release(&e->ch);
	e->ready = false;
}

void ud_load_batch_free(struct ud_load_batch *b)
{
	if (!b)
		return;
	for (size_t i = 0; i < b->n; i++)
		ent_clear(&b->e[i]);
	free(b->arena);
	free(b);
}

int ud_load_prepare(struct ud_load_batch *b, size_t i, const void *rec,
		    size_t len, struct ud_error *err)
{
	struct change_alloc alloc = {arena_alloc_cb, b};
	struct ud_load_ent *e = &b->e[i];
	int rc;

	if (i == 0) { /* a new round: what was not applied is dropped */
		for (size_t j = 0; j < b->n; j++)
			ent_clear(&b->e[j]);
		b->used = 0;
	}
	ent_clear(e);
	rc = change_prepare(rec, len, true, &alloc, &e->ch, &e->k, err);
	e->ready = rc == 0;
	return rc;
}

void ud_load_prefetch(const ud_db *db, const struct ud_load_batch *b, size_t i)
{
	const struct ud_load_ent *e = &b->e[i];

	if (!e->ready || e->ch.type != CH_PUT)
		return;
	index_prefetch(&db->by_id, e->k.id);
	index_prefetch(&db->by_email, e->k.email);
	__builtin_prefetch(e->ch.rec);
}

int ud_load_apply(ud_db *db, struct ud_load_batch *b, size_t i,
		  struct ud_error *err)
{
	struct ud_load_ent *e = &b->e[i];

	if (!e->ready)
		return ud_error_set(err, UD_EINTERNAL, NULL,
				    "load: record %zu was not prepared", i);
	e->ready = false;
	return change_commit(db, &e->ch, &e->k, err);
}
