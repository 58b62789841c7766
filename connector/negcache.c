/*
 * negcache.c -- negative entries; see negcache.h.
 */
#include "negcache.h"

#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "text.h"

#define EMPTY	  0
#define TOMB	  1
#define EMAIL_MIX 0x9e3779b97f4a7c15ull

int neg_init(struct neg *n, size_t max)
{
	size_t cap = 16;

	while (cap < 2 * max)
		cap *= 2;
	memset(n, 0, sizeof(*n));
	n->slot = calloc(cap, sizeof(*n->slot));
	if (!n->slot)
		return UD_ENOMEM;
	n->cap = cap;
	n->max = max;
	return 0;
}

void neg_destroy(struct neg *n)
{
	free(n->slot);
	n->slot = NULL;
}

uint64_t neg_key(enum ud_key_kind kind, const char *key, size_t len)
{
	uint64_t h = kind == UD_KEY_ID ? XXH3_64bits(key, len)
				       : text_fold_hash(key, len) ^ EMAIL_MIX;

	return h > TOMB ? h : h + 2; /* never a marker */
}

/* The slot holding h, or the first free one on its probe path. */
static size_t probe(const struct neg *n, uint64_t h, bool *found)
{
	size_t mask = n->cap - 1, i = (size_t)h & mask, free_at = SIZE_MAX;

	for (;; i = (i + 1) & mask) {
		if (n->slot[i] == h) {
			*found = true;
			return i;
		}
		if (n->slot[i] == TOMB && free_at == SIZE_MAX)
			free_at = i;
		if (n->slot[i] == EMPTY) {
			*found = false;
			return free_at != SIZE_MAX ? free_at : i;
		}
	}
}

bool neg_has(struct neg *n, uint64_t h)
{
	bool found;

	if (!n->live)
		return false;
	probe(n, h, &found);
	if (found)
		n->hits++;
	return found;
}

void neg_clear(struct neg *n)
{
	memset(n->slot, 0, n->cap * sizeof(*n->slot));
	n->live = n->used = 0;
}

void neg_add(struct neg *n, uint64_t h)
{
	bool found;
	size_t i;

	if (n->live >= n->max || n->used >= n->cap / 2)
		neg_clear(n); /* full, or too many tombstones */
	i = probe(n, h, &found);
	if (found)
		return;
	if (n->slot[i] == EMPTY)
		n->used++;
	n->slot[i] = h;
	n->live++;
}

void neg_drop(struct neg *n, uint64_t h)
{
	bool found;
	size_t i;

	if (!n->live)
		return;
	i = probe(n, h, &found);
	if (found) {
		n->slot[i] = TOMB;
		n->live--;
	}
}
