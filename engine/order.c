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
	free(o->slices);
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

/* ---- bit-sliced signatures (layout in order.h) ---------------------------
 */

#define SLICE_WORDS ((size_t)ORDER_SIG_BITS * ORDER_SIG_WORDS) /* a group */

static size_t sig_groups(size_t cap)
{
	return (cap + ORDER_SIG_GROUP - 1) / ORDER_SIG_GROUP;
}

/* The slice of signature bit b (0..127) in group g. */
static inline uint64_t *slice(const struct order *o, size_t g, unsigned b)
{
	return o->slices + g * SLICE_WORDS + (size_t)b * ORDER_SIG_WORDS;
}

/* Room for the groups of cap slots, new ones zero.  0 or UD_ENOMEM. */
static int slices_grow(struct order *o, size_t cap)
{
	size_t old = sig_groups(o->cap), n = sig_groups(cap);
	uint64_t *p;

	if (n == old)
		return 0;
	p = realloc(o->slices, n * SLICE_WORDS * sizeof(*p));
	if (!p)
		return UD_ENOMEM;
	memset(p + old * SLICE_WORDS, 0, (n - old) * SLICE_WORDS * sizeof(*p));
	o->slices = p;
	return 0;
}

/* Transpose a 64x64 bit matrix in place: afterwards bit j of a[i] is what
 * bit i of a[j] was.  Swaps ever smaller off-diagonal blocks (32, 16, ...,
 * 1): 6 rounds of 32 word pairs. */
static void transpose64(uint64_t a[64])
{
	uint64_t m = 0x00000000FFFFFFFFull, t;
	unsigned j, k;

	for (j = 32; j; j >>= 1, m ^= m << j)
		for (k = 0; k < 64; k = ((k | j) + 1) & ~j) {
			t = ((a[k] >> j) ^ a[k | j]) & m;
			a[k] ^= t << j;
			a[k | j] ^= t;
		}
}

void order_sig_block(const struct order *o, size_t first, struct sig out[64])
{
	size_t g = first / ORDER_SIG_GROUP;
	size_t w = first / 64 % ORDER_SIG_WORDS;
	uint64_t m[64];
	unsigned b, half;

	for (half = 0; half < 2; half++) {
		for (b = 0; b < 64; b++)
			m[b] = slice(o, g, half * 64 + b)[w];
		transpose64(m);
		for (b = 0; b < 64; b++)
			*(half ? &out[b].email : &out[b].name) = m[b];
	}
}

/* Store the signatures of the 64 slots from first (a multiple of 64). */
static void sig_block_store(struct order *o, size_t first,
			    const struct sig in[64])
{
	size_t g = first / ORDER_SIG_GROUP;
	size_t w = first / 64 % ORDER_SIG_WORDS;
	uint64_t m[64];
	unsigned b, half;

	for (half = 0; half < 2; half++) {
		for (b = 0; b < 64; b++)
			m[b] = half ? in[b].email : in[b].name;
		transpose64(m);
		for (b = 0; b < 64; b++)
			slice(o, g, half * 64 + b)[w] = m[b];
	}
}

void order_sig(const struct order *o, uint32_t slot, struct sig *out)
{
	size_t g = slot / ORDER_SIG_GROUP, w = slot / 64 % ORDER_SIG_WORDS;
	unsigned b, j = slot % 64;

	out->name = out->email = 0;
	for (b = 0; b < 64; b++) {
		out->name |= (slice(o, g, b)[w] >> j & 1) << b;
		out->email |= (slice(o, g, 64 + b)[w] >> j & 1) << b;
	}
}

static void sig_store(struct order *o, size_t slot, uint64_t name,
		      uint64_t email)
{
	size_t g = slot / ORDER_SIG_GROUP, w = slot / 64 % ORDER_SIG_WORDS;
	unsigned b, j = slot % 64;
	uint64_t *x;

	for (b = 0; b < 64; b++) {
		x = &slice(o, g, b)[w];
		*x = (*x & ~(1ull << j)) | (name >> b & 1) << j;
		x = &slice(o, g, 64 + b)[w];
		*x = (*x & ~(1ull << j)) | (email >> b & 1) << j;
	}
}

/* Set the bits of a slot whose signature is zero (a slot past len: see
 * order.h), touching only the slices of its set bits: a user's signature
 * sets ~a fifth of its 128 bits, and a snapshot load spent ~7% of its time
 * in sig_store's 128 read-modify-writes per append. */
static void sig_store_fresh(struct order *o, size_t slot, uint64_t name,
			    uint64_t email)
{
	size_t g = slot / ORDER_SIG_GROUP, w = slot / 64 % ORDER_SIG_WORDS;
	uint64_t bit = 1ull << (slot % 64);

	for (; name; name &= name - 1)
		slice(o, g, (unsigned)__builtin_ctzll(name))[w] |= bit;
	for (; email; email &= email - 1)
		slice(o, g, 64 + (unsigned)__builtin_ctzll(email))[w] |= bit;
}

/* ---- the order array ------------------------------------------------------
 */

static int grow(struct order *o)
{
	size_t cap = o->cap ? o->cap * 2 : ORDER_BLOCK;
	size_t oldnb = nblocks(o), nb = cap / ORDER_BLOCK;
	void **items = realloc(o->items, cap * sizeof(*items));
	uint8_t *cells;
	uint16_t(*bc)[ORDER_CELLS];

	if (!items)
		return UD_ENOMEM;
	o->items = items;
	cells = realloc(o->cells, cap);
	if (!cells)
		return UD_ENOMEM;
	o->cells = cells;
	if (slices_grow(o, cap))
		return UD_ENOMEM;
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

/* Append to a slot with room, leaving its signature as it is. */
static void append_cell(struct order *o, void *item, unsigned cell,
			uint32_t *slot)
{
	o->items[o->len] = item;
	o->cells[o->len] = (uint8_t)cell;
	tree_add(o, o->len / ORDER_BLOCK, cell, 1);
	*slot = (uint32_t)o->len++;
	o->live++;
}

int order_append(struct order *o, void *item, unsigned cell,
		 const struct sig *sig, uint32_t *slot)
{
	if (o->len == o->cap && grow(o))
		return UD_ENOMEM;
	if (o->len >= UINT32_MAX)
		return UD_ENOMEM;
	append_cell(o, item, cell, slot);
	sig_store_fresh(o, *slot, sig ? sig->name : SIG_ALL,
			sig ? sig->email : SIG_ALL);
	o->gen++;
	return 0;
}

void order_set_cell(struct order *o, uint32_t slot, unsigned cell)
{
	uint8_t old = o->cells[slot];

	o->gen++;
	if (old == cell)
		return;
	tree_add(o, slot / ORDER_BLOCK, old, -1);
	tree_add(o, slot / ORDER_BLOCK, cell, 1);
	o->cells[slot] = (uint8_t)cell;
}

void order_set_item(struct order *o, uint32_t slot, void *item)
{
	o->items[slot] = item;
	o->gen++;
}

void order_set_sig(struct order *o, uint32_t slot, const struct sig *sig)
{
	sig_store(o, slot, sig->name, sig->email);
	o->gen++;
}

void order_kill(struct order *o, uint32_t slot)
{
	tree_add(o, slot / ORDER_BLOCK, o->cells[slot], -1);
	o->cells[slot] = ORDER_DEAD;
	sig_store(o, slot, 0, 0);
	o->gen++;
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
	it->group = SIZE_MAX;
	it->bits = 0;
	it->base = 0;
}

/* AND the slices of want's bits over group g into it->name / it->email. */
static void scan_load(const struct order *o, struct order_scan *it, size_t g)
{
	uint64_t bits = it->want;
	const uint64_t *sn, *se;
	unsigned b, w;

	for (w = 0; w < ORDER_SIG_WORDS; w++)
		it->name[w] = it->email[w] = UINT64_MAX;
	while (bits) {
		b = (unsigned)__builtin_ctzll(bits);
		bits &= bits - 1;
		sn = slice(o, g, b);
		se = slice(o, g, 64 + b);
		for (w = 0; w < ORDER_SIG_WORDS; w++) {
			it->name[w] &= sn[w];
			it->email[w] &= se[w];
		}
	}
	it->group = g;
}

/* Candidate bits of the 64 slots from base (a multiple of 64), below len. */
static uint64_t scan_word(const struct order *o, struct order_scan *it,
			  size_t base)
{
	size_t g = base / ORDER_SIG_GROUP, w = base / 64 % ORDER_SIG_WORDS;
	uint64_t c;

	if (it->group != g)
		scan_load(o, it, g);
	c = it->name[w] | it->email[w];
	if (o->len - base < 64)
		c &= (1ull << (o->len - base)) - 1;
	return c;
}

/* Load it->bits with the candidates of the next word in list order that
 * has any; false when the scan is over. */
static bool scan_advance(const struct order *o, struct order_scan *it)
{
	size_t top;

	while (!it->bits) {
		if (it->asc) {
			if (it->next >= o->len)
				return false;
			it->base = it->next & ~(size_t)63;
			it->bits = scan_word(o, it, it->base) &
				   (~0ull << (it->next - it->base));
			it->next = it->base + 64;
		} else {
			if (it->next == 0)
				return false;
			it->base = (it->next - 1) & ~(size_t)63;
			top = it->next - it->base; /* 1..64 bits to read */
			it->bits = scan_word(o, it, it->base) &
				   (top == 64 ? ~0ull : (1ull << top) - 1);
			it->next = it->base;
		}
	}
	return true;
}

size_t order_scan_next(const struct order *o, struct order_scan *it,
		       uint32_t *slots, uint8_t *fields, size_t max)
{
	size_t n = 0, base;
	uint64_t bits, name, email;
	unsigned j;

	/* locals: stores to fields (a char type) could alias *it */
	while (n < max && scan_advance(o, it)) {
		base = it->base;
		bits = it->bits;
		name = it->name[base / 64 % ORDER_SIG_WORDS];
		email = it->email[base / 64 % ORDER_SIG_WORDS];
		while (bits && n < max) {
			j = it->asc ? (unsigned)__builtin_ctzll(bits)
				    : 63u - (unsigned)__builtin_clzll(bits);
			bits &= ~(1ull << j);
			if (!in_mask(it->mask, o->cells[base + j]))
				continue;
			slots[n] = (uint32_t)(base + j);
			fields[n++] =
			    (uint8_t)((name >> j & 1) | (email >> j & 1) << 1);
		}
		it->bits = bits;
	}
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
	struct sig in[64], out[64];
	size_t s;
	uint32_t slot;

	order_init(&n);
	while (n.cap < o->live + 1)
		if (grow(&n)) {
			order_destroy(&n);
			return UD_ENOMEM;
		}
	/* signatures move 64 at a time: transpose out of the old slices,
	 * gather the live ones, transpose into the new (zeroed) slices */
	for (s = 0; s < o->len; s++) {
		if (s % 64 == 0)
			order_sig_block(o, s, in);
		if (o->cells[s] == ORDER_DEAD)
			continue;
		append_cell(&n, o->items[s], o->cells[s], &slot);
		out[slot % 64] = in[s % 64];
		if (slot % 64 == 63)
			sig_block_store(&n, slot - 63, out);
		if (moved)
			moved(o->items[s], slot, ctx);
	}
	if (n.len % 64) {
		memset(out + n.len % 64, 0, (64 - n.len % 64) * sizeof(*out));
		sig_block_store(&n, n.len - n.len % 64, out);
	}
	n.gen = o->gen + 1;
	order_destroy(o);
	*o = n;
	return 0;
}

/* Dead slots and slots past len have no signature bits. */
static int sigs_check(const struct order *o)
{
	struct sig b[64];
	size_t s;

	for (s = 0; s < o->cap; s++) {
		if (s % 64 == 0)
			order_sig_block(o, s, b);
		if ((s >= o->len || o->cells[s] == ORDER_DEAD) &&
		    (b[s % 64].name || b[s % 64].email))
			return UD_EINTERNAL;
	}
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
		if (o->cells[s] == ORDER_DEAD)
			continue;
		if (o->cells[s] >= ORDER_CELLS)
			return UD_EINTERNAL;
		cnt[o->cells[s]]++;
		live++;
	}
	if (live != o->live || sigs_check(o))
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

	return o->cap * (sizeof(void *) + 1) +
	       sig_groups(o->cap) * SLICE_WORDS * sizeof(uint64_t) +
	       nb * sizeof(*o->bcount) +
	       (nb + 1) * ORDER_CELLS * sizeof(uint32_t);
}
