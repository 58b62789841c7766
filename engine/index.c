/*
 * index.c -- pointer hash set with incremental rehash (see index.h).
 */
#include <stdlib.h>

#include "index.h"
#include "userdb.h"

#define INDEX_MIN_CAP 16

/* The tombstone: an address no item can have. */
static const char tomb_mark;
#define TOMB ((void *)&tomb_mark)

static bool is_item(void *p)
{
	return p && p != TOMB;
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
	free(ix->main.tags);
	free(ix->old.slots);
	free(ix->old.tags);
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

static void *table_find(const struct index_table *t, uint64_t h, index_eq_fn eq,
			const void *key, size_t len)
{
	size_t mask = t->cap - 1, i, n;
	uint8_t tag = hash_tag(h);
	void *p;

	if (!t->cap)
		return NULL;
	/* n bounds the walk even in a table without a NULL slot; the tag
	 * spares the item's cache miss and eq() on 255 of 256 strangers */
	for (i = h & mask, n = 0; n < t->cap && (p = t->slots[i]) != NULL;
	     i = (i + 1) & mask, n++)
		if (p != TOMB && t->tags[i] == tag && eq(p, key, len))
			return p;
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
	void *p;

	if (!t->cap)
		return 0;
	for (i = h & mask, n = 0; n < t->cap && (p = t->slots[i]) != NULL;
	     i = (i + 1) & mask, n++)
		if (p == item)
			return i;
	return t->cap;
}

static void table_put(struct index_table *t, uint64_t h, void *item)
{
	size_t mask = t->cap - 1, i = h & mask;

	while (t->slots[i])
		i = (i + 1) & mask;
	t->slots[i] = item;
	t->tags[i] = hash_tag(h);
	t->used++;
}

/* Migrate up to n old slots into main; frees the old table when drained. */
static void rehash_step(struct index *ix, size_t n)
{
	void *p;

	while (n-- && ix->cursor < ix->old.cap) {
		p = ix->old.slots[ix->cursor++];
		if (!is_item(p))
			continue;
		/* a tombstone, not NULL: later probes must cross this slot */
		ix->old.slots[ix->cursor - 1] = TOMB;
		ix->old.used--;
		table_put(&ix->main, item_hash(ix, p), p);
	}
	if (ix->old.cap && (ix->cursor == ix->old.cap || !ix->old.used)) {
		free(ix->old.slots);
		free(ix->old.tags);
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
	void **slots;
	uint8_t *tags;

	if (!too_full(&ix->main, ix->main.used + 1))
		return 0;
	if (ix->old.cap) /* cannot happen with INDEX_STEP >= 2; be safe */
		rehash_step(ix, SIZE_MAX);
	cap = ix->main.cap ? ix->main.cap * 2 : INDEX_MIN_CAP;
	slots = calloc(cap, sizeof(*slots));
	tags = malloc(cap);
	if (!slots || !tags) {
		free(slots);
		free(tags);
		return UD_ENOMEM;
	}
	ix->old = ix->main;
	ix->cursor = 0;
	ix->main =
	    (struct index_table){.slots = slots, .tags = tags, .cap = cap};
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
	void **slots;
	uint8_t *tags;

	if (ix->main.cap || ix->old.cap || cap <= INDEX_MIN_CAP)
		return 0;
	slots = calloc(cap, sizeof(*slots));
	tags = malloc(cap);
	if (!slots || !tags) {
		free(slots);
		free(tags);
		return UD_ENOMEM;
	}
	ix->main =
	    (struct index_table){.slots = slots, .tags = tags, .cap = cap};
	return 0;
}

void index_prefetch(const struct index *ix, uint64_t h)
{
	size_t i;

	if (!ix->main.cap)
		return;
	i = scramble(ix, h) & (ix->main.cap - 1);
	__builtin_prefetch(&ix->main.slots[i]);
	__builtin_prefetch(&ix->main.tags[i]);
}

void *index_peek(const struct index *ix, uint64_t h)
{
	const struct index_table *t = &ix->main;
	size_t mask = t->cap - 1, i, n;
	uint8_t tag;
	void *p;

	if (!t->cap)
		return NULL;
	h = scramble(ix, h);
	tag = hash_tag(h);
	for (i = h & mask, n = 0; n < 8 && (p = t->slots[i]) != NULL;
	     i = (i + 1) & mask, n++)
		if (p != TOMB && t->tags[i] == tag)
			return p;
	return NULL;
}

/* Linear-probing deletion: pull later members of the cluster back so that
 * every item stays reachable from its home slot. */
static void main_delete_at(struct index *ix, size_t i)
{
	struct index_table *t = &ix->main;
	size_t mask = t->cap - 1, j = i, home;

	t->slots[i] = NULL;
	t->used--;
	for (;;) {
		j = (j + 1) & mask;
		if (!t->slots[j])
			return;
		home = item_hash(ix, t->slots[j]) & mask;
		/* leave it if its home lies cyclically in (i, j] */
		if (i <= j ? (i < home && home <= j) : (i < home || home <= j))
			continue;
		t->slots[i] = t->slots[j];
		t->tags[i] = t->tags[j];
		t->slots[j] = NULL;
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
	t->slots[i] = new_item;
	return true;
}

static int table_foreach(const struct index_table *t,
			 int (*fn)(void *item, void *ctx), void *ctx)
{
	size_t i;
	int rc;

	for (i = 0; i < t->cap; i++)
		if (is_item(t->slots[i]) && (rc = fn(t->slots[i], ctx)) != 0)
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
	void *p;

	for (i = 0; i < t->cap; i++) {
		p = t->slots[i];
		if (p == TOMB && !allow_tomb)
			return UD_EINTERNAL;
		if (!is_item(p))
			continue;
		n++;
		if (table_slot(t, item_hash(ix, p), p) != i)
			return UD_EINTERNAL; /* unreachable from its home */
		if (t->tags[i] != hash_tag(item_hash(ix, p)))
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
	return (ix->main.cap + ix->old.cap) * (sizeof(void *) + 1);
}
