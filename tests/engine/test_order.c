/*
 * test_order.c -- creation order with per-cell rank/select (order.c),
 * checked against a plain array.
 */
#include <stdlib.h>

#include <criterion/criterion.h>

#include "order.h"

struct ref {
	uint8_t cell[40000];
	size_t len;
};

static uint64_t ref_count(const struct ref *r, unsigned mask)
{
	uint64_t n = 0;
	size_t s;

	for (s = 0; s < r->len; s++)
		n += r->cell[s] != ORDER_DEAD && ((mask >> r->cell[s]) & 1);
	return n;
}

static size_t ref_select(const struct ref *r, unsigned mask, uint64_t k)
{
	size_t s;

	for (s = 0; s < r->len; s++)
		if (r->cell[s] != ORDER_DEAD && ((mask >> r->cell[s]) & 1) &&
		    k-- == 0)
			return s;
	return SIZE_MAX;
}

Test(order, masks)
{
	cr_assert_eq(order_mask(-1, -1), ORDER_ALL);
	cr_assert_eq(order_mask(0, 0), 1u);
	cr_assert_eq(order_mask(1, -1), 0x38u);
	cr_assert_eq(order_mask(-1, 2), 0x124u);
}

Test(order, select_matches_a_scan)
{
	static struct ref ref;
	static uintptr_t tags[40000];
	struct order o;
	unsigned seed = 11, mask, i;
	uint32_t slot;
	uint64_t k, n;

	order_init(&o);
	for (i = 0; i < 30000; i++) {
		unsigned cell = rand_r(&seed) % 9;

		tags[i] = i + 1;
		cr_assert_eq(order_append(&o, (void *)tags[i], cell, &slot), 0);
		cr_assert_eq(slot, i);
		ref.cell[ref.len++] = (uint8_t)cell;
		if (rand_r(&seed) % 4 == 0) {
			slot = rand_r(&seed) % ref.len;
			if (ref.cell[slot] != ORDER_DEAD) {
				order_kill(&o, slot);
				ref.cell[slot] = ORDER_DEAD;
			}
		}
		if (rand_r(&seed) % 5 == 0) {
			slot = rand_r(&seed) % ref.len;
			if (ref.cell[slot] != ORDER_DEAD) {
				cell = rand_r(&seed) % 9;
				order_set_cell(&o, slot, cell);
				ref.cell[slot] = (uint8_t)cell;
			}
		}
	}
	cr_assert_eq(order_check(&o), 0);
	for (i = 0; i < 2000; i++) {
		mask = 1 + rand_r(&seed) % ORDER_ALL;
		n = ref_count(&ref, mask);
		cr_assert_eq(order_count(&o, mask), n);
		k = n ? rand_r(&seed) % (n + 2) : 0;
		if (k >= n) {
			cr_assert_null(order_select(&o, mask, k, NULL));
			continue;
		}
		cr_assert_eq(order_select(&o, mask, k, &slot),
			     (void *)tags[ref_select(&ref, mask, k)]);
		cr_assert_eq(slot, ref_select(&ref, mask, k));
	}
	order_destroy(&o);
}

static void moved_cb(void *item, uint32_t slot, void *ctx)
{
	uint32_t *pos = ctx;

	pos[(uintptr_t)item] = slot;
}

Test(order, compaction_keeps_order_and_reports_moves)
{
	static uint32_t pos[5001];
	struct order o;
	uintptr_t i;
	uint32_t slot;
	uint64_t k;

	order_init(&o);
	for (i = 1; i <= 5000; i++)
		order_append(&o, (void *)i, i % 9, &slot);
	for (i = 1; i <= 5000; i++)
		if (i % 3)
			order_kill(&o, (uint32_t)(i - 1));
	cr_assert(order_should_compact(&o));
	cr_assert_eq(order_compact(&o, moved_cb, pos), 0);
	cr_assert_eq(order_check(&o), 0);
	cr_assert_eq(o.len, o.live);
	cr_assert_eq(o.live, 1666);
	cr_assert_not(order_should_compact(&o));
	for (k = 0; k < o.live; k++) {
		uintptr_t it = (uintptr_t)order_select(&o, ORDER_ALL, k, &slot);

		cr_assert_eq(it, 3 * (k + 1));
		cr_assert_eq(pos[it], slot);
	}
	order_destroy(&o);
}

Test(order, deep_select_is_cheap)
{
	enum { N = 1000000 };
	struct order o;
	uint32_t slot;
	size_t i;

	order_init(&o);
	for (i = 0; i < N; i++)
		cr_assert_eq(order_append(&o, (void *)(i + 1), i % 9, &slot),
			     0);
	/* select is O(log n + 256): 100,000 deep selects are quick */
	for (i = 0; i < 100000; i++) {
		uint64_t k = (i * 7919) % (N / 9);

		cr_assert_eq((uintptr_t)order_select(&o, 1u << 4, k, NULL),
			     9 * k + 4 + 1);
	}
	order_destroy(&o);
}
