/*
 * load.c -- loading a snapshot fast: ud_db_apply() split in two halves so
 * that a helper thread does the half that reads no store (journal.h).
 *
 * What a snapshot load costs, and why it is cut this way.  At 1M users of
 * the benchmark's shape (200 MB snapshot) ud_db_apply() record by record
 * took ~2.5 s; perf of a restart showed the time spread over: lookups in
 * the id and email sets (table_find 15%: every put looked each key up
 * twice, once to check and once to apply, and each miss is a cache miss),
 * hashing (the case-folded email hashed 4 times per user: check, apply,
 * insert, and again when the incremental rehash migrated it; email_hash +
 * fold_chunk 14%, id_hash + XXH3 7%), the rehash itself (~5%), the field
 * rules (scan_text, walk_value, utf8_decode: ~12%), msgpack decoding (~7%)
 * and the search signature (sig_text, sig_store ~7%).
 *
 * So:
 *   - ud_load_prepare() decodes a record, runs the field rules that need
 *     only the record (change_check_record), hashes the id and the email
 *     and computes the search signature, once.  It touches no store, so
 *     persistence runs it on a second thread (snapshot.c) while the owner
 *     thread applies earlier records.
 *   - ud_load_apply() runs on the owner thread in record order: the checks
 *     against the store (change_check_store: unique id, unique email,
 *     creation order, counters, ...) and the apply, with the hashes given
 *     (db_apply_change_keys).  Both halves together are exactly
 *     ud_db_apply(), which is itself written as change_prepare +
 *     change_commit, so the two paths cannot drift: same checks in the
 *     same order, same messages, same store.
 *   - ud_load_begin() sizes the id and email sets and the creation order
 *     for the records the snapshot holds (a hint: an upper bound on its
 *     users) before the first insert, so the load does no rehash and no
 *     array doubling.  The sizes are those one-by-one growth would reach,
 *     so memory per user does not change.  A wrong hint costs memory (at
 *     most what that many users would) or growth, never correctness.
 *   - ud_load_prefetch() starts loading the home slots of a record a few
 *     places ahead, so that its lookups do not each wait for memory.
 *
 * Thread assumptions: ud_load_prepare() may run on any thread, on
 * different batches at once; it reads nothing shared.  Everything else on
 * the store's owner thread.  Records prepared on the helper thread are
 * malloc'd there and freed later by the owner (glibc handles that).
 */
#include <stdlib.h>

#include "db.h"
#include "journal.h"

struct ud_load_ent {
	struct change ch;
	struct db_keys k;
	bool ready; /* ch holds a prepared record not yet applied */
};

struct ud_load_batch {
	size_t n;
	struct ud_load_ent e[];
};

/* Beyond this many users a hint is not believed (memory it would cost). */
#define LOAD_HINT_MAX (1u << 28)

int ud_load_begin(ud_db *db, uint64_t records)
{
	size_t n = records > LOAD_HINT_MAX ? LOAD_HINT_MAX : (size_t)records;

	/* Only an empty store, and not in cache mode (bounded on purpose). */
	if (db->cache || db->order.len || n == 0)
		return 0;
	if (index_presize(&db->by_id, n) || index_presize(&db->by_email, n) ||
	    order_presize(&db->order, n))
		return UD_ENOMEM;
	return 0;
}

struct ud_load_batch *ud_load_batch_new(size_t n)
{
	struct ud_load_batch *b =
	    calloc(1, sizeof(*b) + n * sizeof(struct ud_load_ent));

	if (b)
		b->n = n;
	return b;
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
	free(b);
}

int ud_load_prepare(struct ud_load_batch *b, size_t i, const void *rec,
		    size_t len, struct ud_error *err)
{
	struct ud_load_ent *e = &b->e[i];
	int rc;

	ent_clear(e);
	rc = change_prepare(rec, len, true, &e->ch, &e->k, err);
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
