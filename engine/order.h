/*
 * order.h -- the creation-order sequence with rank/select per cell.
 *
 * Users are listed in creation order.  This module keeps an append-only
 * array of item pointers (slot = position) and, per slot, a one-byte cell
 * code: role * 3 + status, or ORDER_DEAD for a deleted slot.  Filters on
 * role and status select a set of cells (a 9-bit mask), so:
 *
 *   - counting any filter combination is a sum of at most 9 counters;
 *   - the k-th match of a mask (a page deep in a list) is found by a
 *     Fenwick descent over 256-slot blocks, summing the masked cells' trees
 *     at each step (O(9 log(n/256))), then a scan of one block (<= 256
 *     bytes).  "Newest first" selects from the end: k' = count - 1 - k.
 *
 * Layout: items[] and cells[] (cap slots), per block a uint16 count per
 * cell, and one Fenwick tree per cell over the blocks, interleaved as
 * tree[block][cell] so that a descent step reads one cache line.  The trees
 * cover every allocated block (unused ones count zero); growing the arrays
 * rebuilds them in O(blocks).
 *
 * Deletion leaves a dead slot; order_compact() squeezes them out in O(n)
 * and reports each moved item's new slot.  The store calls it when dead
 * slots outnumber live ones, so its cost is amortised O(1) per delete.
 *
 * Search signatures (sigs.h) ride along: each slot has a 128-bit
 * signature (64 bits for the name, 64 for the email), kept by the store
 * (order_set_sig) and moved with the slot by compaction.  They are stored
 * bit-sliced, so that a search reads only the bits its needle sets:
 *
 *   slots are grouped by ORDER_SIG_GROUP (1024); a group holds 128 slices
 *   (one per signature bit, name bits 0..63 then email bits 0..63), and a
 *   slice is ORDER_SIG_WORDS (16) words whose bit j of word w is that
 *   signature bit of slot group * 1024 + w * 64 + j.
 *
 *   A needle setting k bits finds a group's candidates by AND-ing k name
 *   slices and k email slices (2k * 128 contiguous bytes of the group's
 *   16 KiB): a 6-byte needle (~5 bits) reads ~8% of the signatures, where
 *   a slot-by-slot layout would read them all.  order_scan_next() turns
 *   the candidate bits into slots, applies the role/status cells and hands
 *   them back in list order; records are never touched here.
 *
 *   Writing one slot's signature touches 128 words (~0.2 us; once per
 *   create or name/email change).  Compaction moves signatures 64 slots at
 *   a time through a 64x64 bit transpose, O(1) per slot.
 *
 * Cost: 16 bytes per allocated slot (~16.8 B/user at 1M users, the arrays
 * doubling), zero-filled: slots past len and dead slots have no bits.
 *
 * Invariants (order_check): cell_count[c] equals the number of slots with
 * cell c, and so do the block counts and tree prefix sums; items[s] is
 * NULL exactly when cells[s] is ORDER_DEAD; live == sum of cell_count; a
 * dead slot's signature is zero.  (That a live slot's signature is its
 * record's is the store's invariant: ud_db_check recomputes it.)
 */
#ifndef UD_ORDER_H
#define UD_ORDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sigs.h"

#define ORDER_BLOCK 256
#define ORDER_CELLS 9
#define ORDER_DEAD  0xFF
#define ORDER_ALL   0x1FFu /* mask of every cell */

#define ORDER_SIG_GROUP 1024		       /* slots per signature group */
#define ORDER_SIG_WORDS (ORDER_SIG_GROUP / 64) /* words per slice */
#define ORDER_SIG_BITS	128		       /* slices per group */

struct order {
	void **items;
	uint8_t *cells;
	uint64_t *slices; /* bit-sliced signatures, see above */
	size_t len;	  /* slots in use (live and dead) */
	size_t cap;	  /* slots allocated, a multiple of ORDER_BLOCK */
	size_t live;
	uint16_t (*bcount)[ORDER_CELLS]; /* per block */
	uint32_t *tree; /* Fenwick, 1-based: tree[i * ORDER_CELLS + c] */
	uint64_t cell_count[ORDER_CELLS];
	uint64_t gen; /* bumped by every change: what a cached answer checks */
};

/* Mask of the cells matching role and status, each -1 for "any". */
unsigned order_mask(int role, int status);

void order_init(struct order *o);
void order_destroy(struct order *o);

/* Append item with cell (0..8) and search signature sig (copied; NULL:
 * SIG_ALL, a candidate for every search); *slot gets its slot.  0 or
 * UD_ENOMEM. */
int order_append(struct order *o, void *item, unsigned cell,
		 const struct sig *sig, uint32_t *slot);
/* Make sure the next order_append() cannot fail.  0 or UD_ENOMEM. */
int order_reserve(struct order *o);
/* Change the cell of a live slot. */
void order_set_cell(struct order *o, uint32_t slot, unsigned cell);
/* Replace the pointer of a live slot. */
void order_set_item(struct order *o, uint32_t slot, void *item);
/* Set the search signature of a live slot (128 word writes). */
void order_set_sig(struct order *o, uint32_t slot, const struct sig *sig);
/* The search signature of a slot (< cap), gathered bit by bit: for tests. */
void order_sig(const struct order *o, uint32_t slot, struct sig *out);
/* The signatures of the 64 slots from first (a multiple of 64, < cap),
 * by one bit transpose per word: for checks over every slot. */
void order_sig_block(const struct order *o, size_t first, struct sig out[64]);
/* Mark a live slot dead (its signature becomes zero). */
void order_kill(struct order *o, uint32_t slot);

/* Number of live slots whose cell is in mask. */
uint64_t order_count(const struct order *o, unsigned mask);
/* The k-th (0-based, oldest first) live item whose cell is in mask, or NULL
 * when k >= order_count(mask).  *slot (if non-NULL) gets its slot. */
void *order_select(const struct order *o, unsigned mask, uint64_t k,
		   uint32_t *slot);

/* A search scan over the slots in list order (see order_scan_next). */
struct order_scan {
	uint64_t want; /* the needle's signature word (0: every slot) */
	unsigned mask; /* cells that pass role/status */
	bool asc;      /* oldest first */
	size_t next;   /* asc: next word's first slot; desc: one past it */
	size_t base;   /* first slot of the word being read */
	uint64_t bits; /* its candidates not handed out yet */
	size_t group;  /* the group whose candidates are below, or SIZE_MAX */
	uint64_t name[ORDER_SIG_WORDS], email[ORDER_SIG_WORDS];
};

void order_scan_init(const struct order *o, struct order_scan *it,
		     uint64_t want, unsigned mask, bool asc);
/* The next candidates, in list order: live slots whose cell is in mask and
 * whose name or email signature holds every bit of want.  Writes up to max
 * slots and, per slot, which fields may match (enum sig_field bits);
 * returns how many, 0 when the scan is over. */
size_t order_scan_next(const struct order *o, struct order_scan *it,
		       uint32_t *slots, uint8_t *fields, size_t max);

/* True when dead slots are worth squeezing out. */
bool order_should_compact(const struct order *o);
/* Squeeze out dead slots, keeping the order; moved(item, new_slot, ctx)
 * is called for every live item.  0 or UD_ENOMEM (then nothing changed). */
int order_compact(struct order *o,
		  void (*moved)(void *item, uint32_t slot, void *ctx),
		  void *ctx);

/* Check the invariants; 0 or UD_EINTERNAL.  O(n). */
int order_check(const struct order *o);
size_t order_bytes(const struct order *o);

#endif
