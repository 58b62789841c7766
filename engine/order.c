/*
 * order.c -- creation order with per-cell rank/select (see order.h).
 */
#include <stdlib.h>
#include <string.h>

#include "order.h"
#include "userdb.h"

static bool in_mask(unsigned mask, uint8_t cell)
{
	return cell < ORDER_CELLS && ((mask >> cell) & 1u);
}

unsigned order_mask(int role, int status)
{
	unsigned mask = 0;
	int r, s;

	for (r = 0; r < UD_ROLES; r++)
		for (s = 0; s < UD_STATUSES; s++)
			if ((role < 0 || role == r) &&
			    (status < 0 || status == s))
				mask |= 1u << (r * UD_STATUSES + s);
	return mask;
}

void order_init(struct order *o)
{
	memset(o, 0, sizeof(*o));
}

void order_destroy(struct order *o)
{
	free(o->items);
	free(o->cells);
	free(o->sigs);
	free(o->bcount);
	free(o->tree);
	order_init(o);
}

static size_t nblocks(const struct order *o)
{
	return o->cap / ORDER_BLOCK;
}

/* Build the Fenwick trees from the block counts in O(blocks). */
static int tree_build(struct order *o)
{
	size_t nb = nblocks(o), i, j;
	unsigned c;
	uint32_t *t = calloc((nb + 1) * ORDER_CELLS, sizeof(*t));

	if (!t)
		return UD_ENOMEM;
	for (i = 1; i <= nb; i++)
		for (c = 0; c < ORDER_CELLS; c++)
			t[i * ORDER_CELLS + c] += o->bcount[i - 1][c];
	for (i = 1; i <= nb; i++) {
		j = i + (i & -i);
		if (j <= nb)
			for (c = 0; c < ORDER_CELLS; c++)
				t[j * ORDER_CELLS + c] +=
				    t[i * ORDER_CELLS + c];
	}
	free(o->tree);
	o->tree = t;
	return 0;
}

static void tree_add(struct order *o, size_t block, unsigned cell, int delta)
{
	size_t nb = nblocks(o), i;

	o->bcount[block][cell] += delta;
	o->cell_count[cell] += delta;
	for (i = block + 1; i <= nb; i += i & -i)
		o->tree[i * ORDER_CELLS + cell] += delta;
}

static int grow(struct order *o)
{
	size_t cap = o->cap ? o->cap * 2 : ORDER_BLOCK;
	size_t oldnb = nblocks(o), nb = cap / ORDER_BLOCK;
	void **items = realloc(o->items, cap * sizeof(*items));
	uint8_t *cells;
	struct sig *sigs;
	uint16_t(*bc)[ORDER_CELLS];

	if (!items)
		return UD_ENOMEM;
	o->items = items;
	cells = realloc(o->cells, cap);
	if (!cells)
		return UD_ENOMEM;
	o->cells = cells;
	sigs = realloc(o->sigs, cap * sizeof(*sigs));
	if (!sigs)
		return UD_ENOMEM;
	o->sigs = sigs;
	bc = realloc(o->bcount, nb * sizeof(*bc));
	if (!bc)
		return UD_ENOMEM;
	memset(bc + oldnb, 0, (nb - oldnb) * sizeof(*bc));
	o->bcount = bc;
	o->cap = cap;
	if (tree_build(o)) {
		o->cap = oldnb * ORDER_BLOCK;
		return UD_ENOMEM;
	}
	return 0;
}

int order_reserve(struct order *o)
{
	if (o->len >= UINT32_MAX)
		return UD_ENOMEM;
	return o->len == o->cap ? grow(o) : 0;
}

int order_append(struct order *o, void *item, unsigned cell, uint32_t *slot)
{
	if (o->len == o->cap && grow(o))
		return UD_ENOMEM;
	if (o->len >= UINT32_MAX)
		return UD_ENOMEM;
	o->items[o->len] = item;
	o->cells[o->len] = (uint8_t)cell;
	o->sigs[o->len] = (struct sig){SIG_ALL, SIG_ALL};
	tree_add(o, o->len / ORDER_BLOCK, cell, 1);
	*slot = (uint32_t)o->len++;
	o->live++;
	return 0;
}

void order_set_cell(struct order *o, uint32_t slot, unsigned cell)
{
	uint8_t old = o->cells[slot];

	if (old == cell)
		return;
	tree_add(o, slot / ORDER_BLOCK, old, -1);
	tree_add(o, slot / ORDER_BLOCK, cell, 1);
	o->cells[slot] = (uint8_t)cell;
}

void order_set_item(struct order *o, uint32_t slot, void *item)
{
	o->items[slot] = item;
}

void order_set_sig(struct order *o, uint32_t slot, const struct sig *sig)
{
	o->sigs[slot] = *sig;
}

void order_kill(struct order *o, uint32_t slot)
{
	tree_add(o, slot / ORDER_BLOCK, o->cells[slot], -1);
	o->cells[slot] = ORDER_DEAD;
	o->sigs[slot] = (struct sig){0, 0};
	o->items[slot] = NULL;
	o->live--;
}

uint64_t order_count(const struct order *o, unsigned mask)
{
	uint64_t n = 0;
	unsigned c;

	for (c = 0; c < ORDER_CELLS; c++)
		if ((mask >> c) & 1u)
			n += o->cell_count[c];
	return n;
}

static uint64_t tree_sum(const struct order *o, size_t i, unsigned mask)
{
	const uint32_t *t = o->tree + i * ORDER_CELLS;
	uint64_t s = 0;
	unsigned c;

	for (c = 0; c < ORDER_CELLS; c++)
		if ((mask >> c) & 1u)
			s += t[c];
	return s;
}

void *order_select(const struct order *o, unsigned mask, uint64_t k,
		   uint32_t *slot)
{
	size_t nb = nblocks(o), pos = 0, step = 1, s, end;
	uint64_t sum;

	mask &= ORDER_ALL;
	if (k >= order_count(o, mask))
		return NULL;
	while (step * 2 <= nb)
		step *= 2;
	/* find the block: largest pos with prefix(pos) <= k */
	for (; step; step /= 2) {
		if (pos + step > nb)
			continue;
		sum = tree_sum(o, pos + step, mask);
		if (sum <= k) {
			pos += step;
			k -= sum;
		}
	}
	end = (pos + 1) * ORDER_BLOCK;
	for (s = pos * ORDER_BLOCK; s < end && s < o->len; s++) {
		if (!in_mask(mask, o->cells[s]))
			continue;
		if (k-- == 0) {
			if (slot)
				*slot = (uint32_t)s;
			return o->items[s];
		}
	}
	return NULL; /* unreachable while the invariants hold */
}

void order_scan_init(const struct order *o, struct order_scan *it,
		     uint64_t want, unsigned mask, bool asc)
{
	it->want = want;
	it->mask = mask & ORDER_ALL;
	it->asc = asc;
	it->next = asc ? 0 : o->len;
}

/* Which fields of slot s may hold the needle, 0 if none or filtered out. */
static inline unsigned scan_fields(const struct order *o,
				   const struct order_scan *it, size_t s)
{
	const struct sig *g = &o->sigs[s];
	unsigned f = (unsigned)sig_may(g->name, it->want) |
		     (unsigned)sig_may(g->email, it->want) << 1;

	return f && in_mask(it->mask, o->cells[s]) ? f : 0;
}

size_t order_scan_next(const struct order *o, struct order_scan *it,
		       uint32_t *slots, uint8_t *fields, size_t max)
{
	size_t n = 0, s;
	unsigned f;

	if (it->asc) {
		for (s = it->next; s < o->len && n < max; s++)
			if ((f = scan_fields(o, it, s)) != 0) {
				slots[n] = (uint32_t)s;
				fields[n++] = (uint8_t)f;
			}
	} else {
		for (s = it->next; s > 0 && n < max; s--)
			if ((f = scan_fields(o, it, s - 1)) != 0) {
				slots[n] = (uint32_t)(s - 1);
				fields[n++] = (uint8_t)f;
			}
	}
	it->next = s;
	return n;
}

bool order_should_compact(const struct order *o)
{
	size_t dead = o->len - o->live;

	return dead >= ORDER_BLOCK && dead > o->live;
}

int order_compact(struct order *o,
		  void (*moved)(void *item, uint32_t slot, void *ctx),
		  void *ctx)
{
	struct order n;
	size_t s;
	uint32_t slot;

	order_init(&n);
	while (n.cap < o->live + 1)
		if (grow(&n)) {
			order_destroy(&n);
			return UD_ENOMEM;
		}
	for (s = 0; s < o->len; s++) {
		if (o->cells[s] == ORDER_DEAD)
			continue;
		order_append(&n, o->items[s], o->cells[s], &slot);
		n.sigs[slot] = o->sigs[s];
		if (moved)
			moved(o->items[s], slot, ctx);
	}
	order_destroy(o);
	*o = n;
	return 0;
}

int order_check(const struct order *o)
{
	uint64_t cnt[ORDER_CELLS] = {0}, live = 0;
	size_t s, b;
	unsigned c;

	for (s = 0; s < o->len; s++) {
		if ((o->cells[s] == ORDER_DEAD) != (o->items[s] == NULL))
			return UD_EINTERNAL;
		if (o->cells[s] == ORDER_DEAD) {
			if (o->sigs[s].name || o->sigs[s].email)
				return UD_EINTERNAL;
			continue;
		}
		if (o->cells[s] >= ORDER_CELLS)
			return UD_EINTERNAL;
		cnt[o->cells[s]]++;
		live++;
	}
	if (live != o->live)
		return UD_EINTERNAL;
	for (c = 0; c < ORDER_CELLS; c++) {
		uint64_t bsum = 0;

		if (cnt[c] != o->cell_count[c])
			return UD_EINTERNAL;
		for (b = 0; b < nblocks(o); b++)
			bsum += o->bcount[b][c];
		if (bsum != cnt[c])
			return UD_EINTERNAL;
		if (order_count(o, 1u << c) &&
		    !order_select(o, 1u << c, cnt[c] - 1, NULL))
			return UD_EINTERNAL;
	}
	return 0;
}

size_t order_bytes(const struct order *o)
{
	size_t nb = nblocks(o);

	return o->cap * (sizeof(void *) + 1 + sizeof(struct sig)) +
	       nb * sizeof(*o->bcount) +
	       (nb + 1) * ORDER_CELLS * sizeof(uint32_t);
}
