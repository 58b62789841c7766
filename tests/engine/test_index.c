/*
 * test_index.c -- the pointer hash set with incremental rehash (index.c).
 */
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "index.h"

struct item {
	uint64_t key;
};

static uint64_t mix(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdULL;
	k ^= k >> 33;
	return k;
}

static uint64_t good_hash(const void *p)
{
	return mix(((const struct item *)p)->key);
}

/* Collides heavily and wraps around the table end. */
static uint64_t bad_hash(const void *p)
{
	return ((const struct item *)p)->key % 5 + UINT64_MAX - 2;
}

static bool item_eq(const void *p, const void *key, size_t len)
{
	return ((const struct item *)p)->key == *(const uint64_t *)key;
}

static struct item *find(struct index *ix, uint64_t key)
{
	struct item probe = {key};

	return index_find(ix, ix->hash(&probe), item_eq, &key, sizeof(key));
}

Test(index, insert_find_remove)
{
	enum { N = 5000 };
	struct item *items = calloc(N, sizeof(*items));
	struct index ix;
	uint64_t i;

	index_init(&ix, good_hash, 0x5eed);
	cr_assert_null(find(&ix, 1));
	for (i = 0; i < N; i++) {
		items[i].key = i * 7919;
		cr_assert_eq(index_insert(&ix, &items[i]), 0);
	}
	cr_assert_eq(index_count(&ix), N);
	cr_assert_eq(index_check(&ix), 0);
	for (i = 0; i < N; i++)
		cr_assert_eq(find(&ix, i * 7919), &items[i]);
	cr_assert_null(find(&ix, 3));
	for (i = 0; i < N; i += 2)
		cr_assert(index_remove(&ix, &items[i]));
	cr_assert_not(index_remove(&ix, &items[0]));
	for (i = 0; i < N; i++)
		cr_assert_eq(find(&ix, i * 7919), i % 2 ? &items[i] : NULL);
	cr_assert_eq(index_check(&ix), 0);
	index_destroy(&ix);
	free(items);
}

Test(index, grows_incrementally)
{
	enum { N = 100000 };
	struct item *items = calloc(N, sizeof(*items));
	struct index ix;
	size_t i, rehashes = 0, cap;

	index_init(&ix, good_hash, 0x5eed);
	for (i = 0; i < N; i++) {
		items[i].key = i;
		cap = ix.main.cap;
		cr_assert_eq(index_insert(&ix, &items[i]), 0);
		if (ix.main.cap != cap) {
			rehashes++;
			/* a growth migrates a few slots, not the table */
			if (cap >= 1024) {
				cr_assert_gt(ix.old.cap, 0);
				cr_assert_leq(ix.cursor, INDEX_STEP);
				cr_assert_gt(ix.old.used, 0);
			}
		}
		cr_assert_leq(ix.main.used, ix.main.cap / 4 * 3);
		if (i % 4099 == 0)
			cr_assert_eq(index_check(&ix), 0);
	}
	cr_assert_geq(rehashes, 10);
	for (i = 0; i < N; i++)
		cr_assert_eq(find(&ix, i), &items[i]);
	index_destroy(&ix);
	free(items);
}

Test(index, removes_and_replaces_while_rehashing)
{
	enum { N = 3000 };
	struct item *items = calloc(N, sizeof(*items));
	struct item other = {0};
	struct index ix;
	size_t i;

	index_init(&ix, good_hash, 0x5eed);
	for (i = 0; i < 1536; i++) { /* up to the brink of a growth */
		items[i].key = i;
		index_insert(&ix, &items[i]);
	}
	items[1536].key = 1536;
	index_insert(&ix, &items[1536]);
	cr_assert_gt(ix.old.cap, 0, "a rehash is in progress");
	for (i = 0; i < 1537; i += 3) {
		cr_assert(index_remove(&ix, &items[i]));
		cr_assert_eq(index_check(&ix), 0);
	}
	other.key = 4;
	cr_assert(index_replace(&ix, &items[4], &other));
	cr_assert_not(index_replace(&ix, &items[0], &other));
	cr_assert_eq(find(&ix, 4), &other);
	for (i = 0; i < 1537; i++)
		if (i != 4)
			cr_assert_eq(find(&ix, i), i % 3 ? &items[i] : NULL);
	cr_assert_eq(index_count(&ix), 1537 - 513);
	index_destroy(&ix);
	free(items);
}

Test(index, random_ops_with_colliding_hashes)
{
	enum { N = 600 };
	struct item items[N];
	bool in[N] = {0};
	struct index ix;
	unsigned seed = 7, i, k;

	index_init(&ix, bad_hash, 0x5eed);
	for (i = 0; i < N; i++)
		items[i].key = i;
	for (i = 0; i < 20000; i++) {
		k = rand_r(&seed) % N;
		if (in[k])
			cr_assert(index_remove(&ix, &items[k]));
		else
			cr_assert_eq(index_insert(&ix, &items[k]), 0);
		in[k] = !in[k];
		if (i % 97 == 0) {
			cr_assert_eq(index_check(&ix), 0, "op %u", i);
			for (k = 0; k < N; k++)
				cr_assert_eq(find(&ix, k),
					     in[k] ? &items[k] : NULL);
		}
	}
	index_destroy(&ix);
}

static int count_cb(void *item, void *ctx)
{
	(*(size_t *)ctx)++;
	return ((struct item *)item)->key == 77 ? 5 : 0;
}

Test(index, foreach_visits_both_tables)
{
	struct item items[200];
	struct index ix;
	size_t i, n = 0;

	index_init(&ix, good_hash, 0x5eed);
	for (i = 0; i < 200; i++) {
		items[i].key = 1000 + i;
		index_insert(&ix, &items[i]);
	}
	cr_assert_eq(index_foreach(&ix, count_cb, &n), 0);
	cr_assert_eq(n, 200);
	items[10].key = 77; /* stop early (hash no longer matters here) */
	n = 0;
	cr_assert_eq(index_foreach(&ix, count_cb, &n), 5);
	cr_assert_leq(n, 200);
	cr_assert_gt(index_bytes(&ix), 200 * sizeof(void *));
	index_destroy(&ix);
}

/* Keys whose hashes agree in every low bit (what an attacker would pick
 * against an unseeded hash) still spread: the seed scrambles all bits. */
static uint64_t low_bits_equal_hash(const void *p)
{
	return ((const struct item *)p)->key << 40;
}

Test(index, seed_spreads_chosen_collisions)
{
	enum { N = 10000 };
	struct item *items = calloc(N, sizeof(*items));
	struct index ix;
	size_t i, run = 0, longest = 0;

	index_init(&ix, low_bits_equal_hash, 0x9e3779b97f4a7c15ULL);
	for (i = 0; i < N; i++) {
		items[i].key = i;
		cr_assert_eq(index_insert(&ix, &items[i]), 0);
	}
	while (ix.old.cap) /* finish any migration */
		index_remove(&ix, &items[0]), index_insert(&ix, &items[0]);
	for (i = 0; i < ix.main.cap; i++) {
		run = ix.main.slots[i] ? run + 1 : 0;
		longest = run > longest ? run : longest;
	}
	cr_assert_lt(longest, 200, "longest probe run %zu", longest);
	for (i = 0; i < N; i++)
		cr_assert_eq(find(&ix, i), &items[i]);
	index_destroy(&ix);
	free(items);
}

/* index_peek guesses index_find's answer from tags alone: right for
 * (nearly) every present key, NULL or some item for an absent one, never
 * an item of the old table during a rehash (it looks at main only). */
Test(index, peek_guesses_from_tags)
{
	enum { N = 4000 };
	struct item *items = calloc(N, sizeof(*items));
	struct index ix;
	uint64_t i, right = 0;

	index_init(&ix, good_hash, 0x5eed);
	cr_assert_null(index_peek(&ix, 12345));
	for (i = 0; i < N; i++) {
		items[i].key = i * 104729 + 1;
		cr_assert_eq(index_insert(&ix, &items[i]), 0);
	}
	while (ix.old.cap) { /* finish the last rehash */
		cr_assert(index_remove(&ix, &items[0]));
		cr_assert_eq(index_insert(&ix, &items[0]), 0);
	}
	for (i = 0; i < N; i++) {
		void *p = index_peek(&ix, good_hash(&items[i]));
		right += p == &items[i];
		cr_assert(p == NULL ||
			  (p >= (void *)items && p < (void *)(items + N)));
	}
	/* a wrong guess needs a tag collision on the way: ~1 in 256 per
	 * stranger passed, and probes are short at load <= 3/4 */
	cr_assert_geq(right, N - N / 20, "%lu of %d", (unsigned long)right, N);
	index_destroy(&ix);
	free(items);
}
