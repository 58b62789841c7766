/*
 * index.h -- a hash set of item pointers with incremental rehash.
 *
 * The set stores pointers (8 bytes a slot), each carrying a one-byte hash
 * tag in its unused top byte (a probe compares tags first, so a miss rarely
 * touches an item: before the tags, lookups and the duplicate checks of a
 * 1M-user load spent ~30% of their time in eq() on strangers).  The tag
 * sat in an array of its own until the pointer took it: a lookup then
 * loaded two cache lines before the item's, and 1M users paid 4 MB (two
 * sets of 2M slots) for the arrays.  The key lives in the item
 * and the caller supplies the hash of a key and an equality test, so one
 * implementation serves the id index, the email index (hash and compare the
 * case-folded address without storing a folded copy) and the activity-log
 * table.  The caller guarantees keys are unique; the set never compares two
 * items.
 *
 * Layout: open addressing, linear probing, power-of-two capacity, load kept
 * at most 3/4.  Growth never rehashes all at once: when the main table is
 * full enough, it becomes the "old" table and a twice-as-large main table
 * is allocated; every later insert or remove migrates INDEX_STEP slots of
 * the old table (lookups search both).  The old table is never inserted
 * into, so removals there leave a tombstone; removals in the main table
 * shift the rest of the cluster back (no tombstones).  With a doubling and
 * a load of 3/4, INDEX_STEP >= 2 finishes the migration before the main
 * table can fill; 16 leaves a wide margin.
 *
 * Invariants (index_check):
 *   1. every item is in exactly one table, reachable from its home slot by
 *      probing without crossing an empty slot;
 *   2. main.used <= 3/4 main.cap; old slots below `cursor` hold no item
 *      (migrated slots become tombstones so probes still cross them);
 *   3. count == main.used + old.used.
 *
 * Not thread-safe; no allocation except when growing.
 */
#ifndef UD_INDEX_H
#define UD_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define INDEX_STEP 16

/* Hash of the key of an item (must match the hash given to index_find). */
typedef uint64_t (*index_hash_fn)(const void *item);
/* Does item have this key? */
typedef bool (*index_eq_fn)(const void *item, const void *key, size_t len);

struct index_table {
	/* 0, a tombstone (old table only) or an item's address with the top
	 * byte of its slot hash (the tag) in the address's unused top byte */
	uintptr_t *slots;
	size_t cap;  /* power of two, or 0 */
	size_t used; /* items held */
};

struct index {
	struct index_table main;
	struct index_table old; /* being drained; cap 0 when not rehashing */
	size_t cursor;		/* next old slot to migrate */
	index_hash_fn hash;
	uint64_t seed; /* secret, mixed into every hash */
};

/* Initialise an empty set; allocates nothing.  seed should be secret and
 * random (it keeps chosen keys from piling into one probe cluster). */
void index_init(struct index *ix, index_hash_fn hash, uint64_t seed);
/* Free the tables (not the items). */
void index_destroy(struct index *ix);

size_t index_count(const struct index *ix);
/* The item whose key equals (key, len), or NULL.  h = hash of the key. */
void *index_find(const struct index *ix, uint64_t h, index_eq_fn eq,
		 const void *key, size_t len);
/* Add item (its key must not be present).  0 or UD_ENOMEM; UD_EINTERNAL
 * for an address with its top byte set (none on 64-bit Linux). */
int index_insert(struct index *ix, void *item);
/* index_insert() with h = the caller's hash of item's key, as ix->hash
 * would compute it (a caller that hashed the key for a lookup saves the
 * second hash).  0 or UD_ENOMEM. */
int index_insert_hashed(struct index *ix, void *item, uint64_t h);
/* Size an empty set for n items at once: the capacity that inserting n
 * items one by one would reach, without the rehashes on the way.  n is a
 * hint: a wrong one costs memory or later growth, never correctness.  Does
 * nothing when the set already has a table.  0 or UD_ENOMEM. */
int index_presize(struct index *ix, size_t n);
/* Start loading the home slot of hash h (a caller about to look it up). */
void index_prefetch(const struct index *ix, uint64_t h);
/* The first item on hash h's probe path (main table) whose tag matches,
 * without comparing keys, or NULL: a guess at index_find's answer that
 * touches no item, for prefetching it.  Usually right; never needed to be. */
void *index_peek(const struct index *ix, uint64_t h);
/* Make sure the next index_insert() cannot fail (may start a rehash).
 * 0 or UD_ENOMEM. */
int index_reserve(struct index *ix);
/* Remove this exact pointer; returns false when it was not held. */
bool index_remove(struct index *ix, void *item);
/* Put new_item where old_item is (same key).  False when not found (or,
 * as for index_insert, new_item's top byte is set). */
bool index_replace(struct index *ix, void *old_item, void *new_item);
/* Call fn for every item (any order).  A non-zero return stops the walk. */
int index_foreach(const struct index *ix, int (*fn)(void *item, void *ctx),
		  void *ctx);
/* Check the invariants above; 0 or UD_EINTERNAL.  O(capacity). */
int index_check(const struct index *ix);
/* Bytes of table memory held. */
size_t index_bytes(const struct index *ix);

#endif
