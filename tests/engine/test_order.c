/*
 * test_order.c -- creation order with per-cell rank/select (order.c),
 * checked against a plain array.
 */
#include <stdlib.h>

#include <criterion/criterion.h>

#include "order.h"
#include "userdb.h"

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
		cr_assert_eq(
		    order_append(&o, (void *)tags[i], cell, NULL, &slot), 0);
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
		order_append(&o, (void *)i, i % 9, NULL, &slot);
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
		cr_assert_eq(
		    order_append(&o, (void *)(i + 1), i % 9, NULL, &slot), 0);
	/* select is O(log n + 256): 100,000 deep selects are quick */
	for (i = 0; i < 100000; i++) {
		uint64_t k = (i * 7919) % (N / 9);

		cr_assert_eq((uintptr_t)order_select(&o, 1u << 4, k, NULL),
			     9 * k + 4 + 1);
	}
	order_destroy(&o);
}

/* Signature words over 6 bits, so that scans find plenty of candidates. */
static uint64_t small_word(unsigned *seed)
{
	return (uint64_t)(rand_r(seed) & 0x3f);
}

/* Random scans against a filter of every slot: order_scan_next() returns
 * exactly the live slots in mask whose name or email word holds want, in
 * list order, with the right fields, whatever the batch size. */
static void check_scans(const struct order *o, unsigned *seed)
{
	enum { N = 4000 };
	static uint8_t fields[N];
	static uint32_t slots[N];
	struct order_scan it;
	size_t i, s, n, got, max;
	unsigned round, f, mask;
	struct sig g;
	uint64_t want;
	bool asc;

	for (round = 0; round < 300; round++) {
		asc = rand_r(seed) % 2;
		want = round % 10 ? small_word(seed) & small_word(seed) : 0;
		mask = round % 3 ? ORDER_ALL : 1 + rand_r(seed) % ORDER_ALL;
		max = 1 + rand_r(seed) % 70;
		order_scan_init(o, &it, want, mask, asc);
		got = 0;
		while ((n = order_scan_next(o, &it, slots + got, fields + got,
					    max)) != 0) {
			cr_assert_leq(n, max);
			got += n;
		}
		for (i = 0, n = 0; i < o->len; i++) {
			s = asc ? i : o->len - 1 - i;
			if (o->cells[s] == ORDER_DEAD ||
			    !((mask >> o->cells[s]) & 1))
				continue;
			order_sig(o, (uint32_t)s, &g);
			f = sig_may(g.name, want) | sig_may(g.email, want) << 1;
			if (!f)
				continue;
			cr_assert_lt(n, got);
			cr_assert_eq(slots[n], s);
			cr_assert_eq(fields[n], f);
			n++;
		}
		cr_assert_eq(n, got);
	}
}

/* Signatures: SIG_ALL on append, set by order_set_sig, zero when dead,
 * carried by compaction; scans filter on them. */
Test(order, signatures_and_scans)
{
	static uint64_t before[2 * 3000];
	struct order o;
	struct sig g;
	unsigned seed = 5;
	uint32_t slot, s;
	size_t i, live = 0;

	order_init(&o);
	for (i = 0; i < 3000; i++) {
		order_append(&o, (void *)(i + 1), rand_r(&seed) % 9, NULL,
			     &slot);
		order_sig(&o, slot, &g);
		cr_assert_eq(g.name, SIG_ALL);
		cr_assert_eq(g.email, SIG_ALL);
		g.name = small_word(&seed);
		g.email = small_word(&seed);
		order_set_sig(&o, slot, &g);
		s = rand_r(&seed) % (slot + 1);
		if (rand_r(&seed) % 3 == 0 && o.cells[s] != ORDER_DEAD)
			order_kill(&o, s);
	}
	for (i = 0; i < o.cap; i++) {
		order_sig(&o, (uint32_t)i, &g);
		if (i >= o.len || o.cells[i] == ORDER_DEAD)
			cr_assert(!g.name && !g.email);
	}
	cr_assert_eq(order_check(&o), 0);
	check_scans(&o, &seed);
	for (i = 0; i < o.len; i++)
		if (o.cells[i] != ORDER_DEAD && i % 2)
			order_kill(&o, (uint32_t)i);
	for (i = 0; i < o.len; i++)
		if (o.cells[i] != ORDER_DEAD) {
			order_sig(&o, (uint32_t)i, &g);
			before[2 * live] = g.name;
			before[2 * live++ + 1] = g.email;
		}
	cr_assert(order_should_compact(&o));
	cr_assert_eq(order_compact(&o, NULL, NULL), 0);
	cr_assert_eq(o.len, live);
	for (i = 0; i < live; i++) {
		order_sig(&o, (uint32_t)i, &g);
		cr_assert_eq(g.name, before[2 * i]);
		cr_assert_eq(g.email, before[2 * i + 1]);
	}
	cr_assert_eq(order_check(&o), 0);
	check_scans(&o, &seed);
	/* a dead slot with a signature left behind is caught */
	order_kill(&o, 0);
	cr_assert_eq(order_check(&o), 0);
	g.name = 1, g.email = 0;
	order_set_sig(&o, 0, &g);
	cr_assert_eq(order_check(&o), UD_EINTERNAL);
	order_destroy(&o);
}

/* Blocks of 64 signatures (one bit transpose each way) agree with the
 * slot-by-slot accessors, at every alignment of the groups. */
Test(order, signature_blocks_agree_with_slots)
{
	struct order o;
	struct sig g, blk[64];
	unsigned seed = 3;
	uint32_t slot;
	size_t i;

	order_init(&o);
	for (i = 0; i < 2500; i++) {
		g.name =
		    (uint64_t)rand_r(&seed) << 33 ^ (uint64_t)rand_r(&seed);
		g.email = (uint64_t)rand_r(&seed) << 31 ^ rand_r(&seed);
		order_append(&o, (void *)(i + 1), 0, &g, &slot);
	}
	for (i = 0; i < o.cap; i++) {
		if (i % 64 == 0)
			order_sig_block(&o, i, blk);
		order_sig(&o, (uint32_t)i, &g);
		cr_assert_eq(blk[i % 64].name, g.name, "slot %zu", i);
		cr_assert_eq(blk[i % 64].email, g.email, "slot %zu", i);
	}
	order_destroy(&o);
}
