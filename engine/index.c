/*
 * index.c -- pointer hash set with incremental rehash (see index.h).
 */
#include <stdlib.h>

#include "index.h"
#include "userdb.h"

#define INDEX_MIN_CAP 16

/* A slot is 0 (empty), TOMB, or an item's address with the item's tag in
 * the top byte.  User-space addresses on 64-bit Linux (x86-64, also with
 * 5-level paging; arm64) stay below 2^56, so the byte is free; an insert
 * checks it.  The tombstone is an address no item can have (tag 0). */
static const char tomb_mark;
#define TOMB	  ((uintptr_t)&tomb_mark)
#define TAG_SHIFT 56
#define PTR_MASK  (((uintptr_t)1 << TAG_SHIFT) - 1)

_Static_assert(sizeof(uintptr_t) == 8, "index slots need 64-bit addresses");

static bool is_item(uintptr_t v)
{
	return v && v != TOMB;
}

static void *slot_item(uintptr_t v)
{
	return (void *)(v & PTR_MASK);
}

static uint8_t slot_tag(uintptr_t v)
{
	return (uint8_t)(v >> TAG_SHIFT);
}

void index_init(struct index *ix, index_hash_fn hash, uint64_t seed)
{
	ix->main = (struct index_table){0};
	ix->old = (struct index_table){0};
	ix->cursor = 0;
	ix->hash = hash;
	ix->seed = seed;
}

/* The slot hash: the caller's hash mixed with the set's secret seed, so
 * that chosen keys cannot aim at one cluster (linear probing only looks at
 * the low bits, which an unseeded hash lets anyone collide). */
static uint64_t scramble(const struct index *ix, uint64_t h)
{
	h ^= ix->seed;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	return h ^ (h >> 33);
}

static uint64_t item_hash(const struct index *ix, const void *item)
{
	return scramble(ix, ix->hash(item));
}

void index_destroy(struct index *ix)
{
	free(ix->main.slots);
	free(ix->old.slots);
	index_init(ix, ix->hash, ix->seed);
}

size_t index_count(const struct index *ix)
{
	return ix->main.used + ix->old.used;
}

/* The slot tag: hash bits the slot position does not use. */
static uint8_t hash_tag(uint64_t h)
{
	return (uint8_t)(h >> 56);
}

static uintptr_t slot_make(void *item, uint64_t h)
{
	return (uintptr_t)item | (uintptr_t)hash_tag(h) << TAG_SHIFT;
}

static void *table_find(const struct index_table *t, uint64_t h, index_eq_fn eq,
			const void *key, size_t len)
{
	size_t mask = t->cap - 1, i, n;
	uint8_t tag = hash_tag(h);
	uintptr_t v;

	if (!t->cap)
		return NULL;
	/* n bounds the walk even in a table without an empty slot; the tag
	 * spares the item's cache miss and eq() on 255 of 256 strangers */
	for (i = h & mask, n = 0; n < t->cap && (v = t->slots[i]) != 0;
	     i = (i + 1) & mask, n++)
		if (v != TOMB && slot_tag(v) == tag &&
		    eq(slot_item(v), key, len))
			return slot_item(v);
	return NULL;
}

void *index_find(const struct index *ix, uint64_t h, index_eq_fn eq,
		 const void *key, size_t len)
{
	void *p;

	h = scramble(ix, h);
	p = table_find(&ix->main, h, eq, key, len);

	if (!p && ix->old.used)
		p = table_find(&ix->old, h, eq, key, len);
	return p;
}

/* Slot index holding exactly item, or cap when absent. */
static size_t table_slot(const struct index_table *t, uint64_t h, void *item)
{
	size_t mask = t->cap - 1, i, n;
	uintptr_t v;

	if (!t->cap)
		return 0;
	for (i = h & mask, n = 0; n < t->cap && (v = t->slots[i]) != 0;
	     i = (i + 1) & mask, n++)
		if (v != TOMB && slot_item(v) == item)
			return i;
	return t->cap;
}

static void table_put(struct index_table *t, uint64_t h, void *item)
{
	size_t mask = t->cap - 1, i = h & mask;

	while (t->slots[i])
		i = (i + 1) & mask;
	t->slots[i] = slot_make(item, h);
	t->used++;
}

/* Migrate up to n old slots into main; frees the old table when drained. */
static void rehash_step(struct index *ix, size_t n)
{
	uintptr_t v;

	while (n-- && ix->cursor < ix->old.cap) {
		v = ix->old.slots[ix->cursor++];
		if (!is_item(v))
			continue;
		/* a tombstone, not empty: later probes must cross this slot */
		ix->old.slots[ix->cursor - 1] = TOMB;
		ix->old.used--;
		table_put(&ix->main, item_hash(ix, slot_item(v)), slot_item(v));
	}
	if (ix->old.cap && (ix->cursor == ix->old.cap || !ix->old.used)) {
		free(ix->old.slots);
		ix->old = (struct index_table){0};
		ix->cursor = 0;
	}
}

static bool too_full(const struct index_table *t, size_t used)
{
	return used > t->cap / 4 * 3;
}

/* Make room for one more item in main, starting a rehash if needed. */
static int make_room(struct index *ix)
{
	size_t cap;
	uintptr_t *slots;

	if (!too_full(&ix->main, ix->main.used + 1))
		return 0;
	if (ix->old.cap) /* cannot happen with INDEX_STEP >= 2; be safe */
		rehash_step(ix, SIZE_MAX);
	cap = ix->main.cap ? ix->main.cap * 2 : INDEX_MIN_CAP;
	slots = calloc(cap, sizeof(*slots));
	if (!slots)
		return UD_ENOMEM;
	ix->old = ix->main;
	ix->cursor = 0;
	ix->main = (struct index_table){.slots = slots, .cap = cap};
	return 0;
}

int index_reserve(struct index *ix)
{
	return make_room(ix);
}

int index_insert(struct index *ix, void *item)
{
	return index_insert_hashed(ix, item, ix->hash(item));
}

int index_insert_hashed(struct index *ix, void *item, uint64_t h)
{
	if ((uintptr_t)item & ~PTR_MASK) /* no room for the tag */
		return UD_EINTERNAL;
	if (make_room(ix))
		return UD_ENOMEM;
	table_put(&ix->main, scramble(ix, h), item);
	rehash_step(ix, INDEX_STEP);
	return 0;
}

/* The capacity growth reaches for n items: the same power of two, so a
 * presized table is the table an item-by-item load would have built. */
static size_t cap_for(size_t n)
{
	size_t cap = INDEX_MIN_CAP;

	while (too_full(&(struct index_table){.cap = cap}, n) &&
	       cap < SIZE_MAX / 4)
		cap *= 2;
	return cap;
}

int index_presize(struct index *ix, size_t n)
{
	size_t cap = cap_for(n);
	uintptr_t *slots;

	if (ix->main.cap || ix->old.cap || cap <= INDEX_MIN_CAP)
		return 0;
	slots = calloc(cap, sizeof(*slots));
	if (!slots)
		return UD_ENOMEM;
	ix->main = (struct index_table){.slots = slots, .cap = cap};
	return 0;
}

void index_prefetch(const struct index *ix, uint64_t h)
{
	size_t i;

	if (!ix->main.cap)
		return;
	i = scramble(ix, h) & (ix->main.cap - 1);
	__builtin_prefetch(&ix->main.slots[i]);
}

void *index_peek(const struct index *ix, uint64_t h)
{
	const struct index_table *t = &ix->main;
	size_t mask = t->cap - 1, i, n;
	uint8_t tag;
	uintptr_t v;

	if (!t->cap)
		return NULL;
	h = scramble(ix, h);
	tag = hash_tag(h);
	for (i = h & mask, n = 0; n < 8 && (v = t->slots[i]) != 0;
	     i = (i + 1) & mask, n++)
		if (v != TOMB && slot_tag(v) == tag)
			return slot_item(v);
	return NULL;
}

/* Linear-probing deletion: pull later members of the cluster back so that
 * every item stays reachable from its home slot. */
static void main_delete_at(struct index *ix, size_t i)
{
	struct index_table *t = &ix->main;
	size_t mask = t->cap - 1, j = i, home;

	t->slots[i] = 0;
	t->used--;
	for (;;) {
		j = (j + 1) & mask;
		if (!t->slots[j])
			return;
		home = item_hash(ix, slot_item(t->slots[j])) & mask;
		/* leave it if its home lies cyclically in (i, j] */
		if (i <= j ? (i < home && home <= j) : (i < home || home <= j))
			continue;
		t->slots[i] = t->slots[j];
		t->slots[j] = 0;
		i = j;
	}
}

bool index_remove(struct index *ix, void *item)
{
	uint64_t h = item_hash(ix, item);
	size_t i = table_slot(&ix->main, h, item);

	if (ix->main.cap && i < ix->main.cap) {
		main_delete_at(ix, i);
	} else {
		i = table_slot(&ix->old, h, item);
		if (!ix->old.cap || i >= ix->old.cap)
			return false;
		ix->old.slots[i] = TOMB;
		ix->old.used--;
	}
	rehash_step(ix, INDEX_STEP);
	return true;
}

bool index_replace(struct index *ix, void *old_item, void *new_item)
{
	uint64_t h = item_hash(ix, old_item);
	struct index_table *t = &ix->main;
	size_t i = table_slot(t, h, old_item);

	if (!t->cap || i >= t->cap) {
		t = &ix->old;
		i = table_slot(t, h, old_item);
		if (!t->cap || i >= t->cap)
			return false;
	}
	if ((uintptr_t)new_item & ~PTR_MASK)
		return false;
	/* same key, same hash: the tag stays */
	t->slots[i] = (uintptr_t)new_item | (t->slots[i] & ~PTR_MASK);
	return true;
}

static int table_foreach(const struct index_table *t,
			 int (*fn)(void *item, void *ctx), void *ctx)
{
	size_t i;
	int rc;

	for (i = 0; i < t->cap; i++)
		if (is_item(t->slots[i]) &&
		    (rc = fn(slot_item(t->slots[i]), ctx)) != 0)
			return rc;
	return 0;
}

int index_foreach(const struct index *ix, int (*fn)(void *item, void *ctx),
		  void *ctx)
{
	int rc = table_foreach(&ix->main, fn, ctx);

	return rc ? rc : table_foreach(&ix->old, fn, ctx);
}

static int table_check(const struct index *ix, const struct index_table *t,
		       bool allow_tomb)
{
	size_t i, n = 0;
	uintptr_t v;
	void *p;

	for (i = 0; i < t->cap; i++) {
		v = t->slots[i];
		if (v == TOMB && !allow_tomb)
			return UD_EINTERNAL;
		if (!is_item(v))
			continue;
		p = slot_item(v);
		n++;
		if (table_slot(t, item_hash(ix, p), p) != i)
			return UD_EINTERNAL; /* unreachable from its home */
		if (slot_tag(v) != hash_tag(item_hash(ix, p)))
			return UD_EINTERNAL;
	}
	return n == t->used ? 0 : UD_EINTERNAL;
}

int index_check(const struct index *ix)
{
	size_t i;

	if (ix->main.cap && too_full(&ix->main, ix->main.used))
		return UD_EINTERNAL;
	for (i = 0; i < ix->cursor && i < ix->old.cap; i++)
		if (is_item(ix->old.slots[i]))
			return UD_EINTERNAL;
	if (table_check(ix, &ix->main, false) ||
	    table_check(ix, &ix->old, true))
		return UD_EINTERNAL;
	return 0;
}

size_t index_bytes(const struct index *ix)
{
	return (ix->main.cap + ix->old.cap) * sizeof(uintptr_t);
}
