/*
 * backoff.c -- per-user verification back-off (see backoff.h): a chained
 * hash table keyed by user id, seeded at random so that ids chosen by an
 * importer cannot be made to collide on purpose.
 */
#include "backoff.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "userdb.h"

struct bentry {
	struct bentry *next;
	uint64_t last_start; /* monotonic ms the last delayed attempt starts */
	uint32_t fails;	     /* consecutive failures */
	uint32_t len;
	char id[];
};

struct backoff {
	struct bentry **slots;
	size_t nslots; /* power of two */
	size_t count;
	uint64_t seed;
	unsigned base_ms, max_ms;
};

struct backoff *backoff_new(unsigned base_ms, unsigned max_ms)
{
	struct backoff *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	b->nslots = 64;
	b->slots = calloc(b->nslots, sizeof(*b->slots));
	if (!b->slots) {
		free(b);
		return NULL;
	}
	randombytes_buf(&b->seed, sizeof b->seed);
	b->base_ms = base_ms;
	b->max_ms = max_ms < base_ms ? base_ms : max_ms;
	return b;
}

void backoff_free(struct backoff *b)
{
	if (!b)
		return;
	for (size_t i = 0; i < b->nslots; i++)
		for (struct bentry *e = b->slots[i], *next; e; e = next) {
			next = e->next;
			free(e);
		}
	free(b->slots);
	free(b);
}

/* FNV-1a over the seed and the id, then a final mix. */
static uint64_t id_hash(const struct backoff *b, const char *id, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull ^ b->seed;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)id[i]) * 0x100000001b3ull;
	h ^= h >> 29;
	return h * 0xbf58476d1ce4e5b9ull;
}

static struct bentry **slot_of(const struct backoff *b, const char *id,
			       size_t n)
{
	struct bentry **pp = &b->slots[id_hash(b, id, n) & (b->nslots - 1)];
	while (*pp && ((*pp)->len != n || memcmp((*pp)->id, id, n)))
		pp = &(*pp)->next;
	return pp;
}

/* Double the slots when the table is as full as it is long. */
static void grow(struct backoff *b)
{
	size_t n = b->nslots * 2;
	struct bentry **s = calloc(n, sizeof(*s));
	if (!s)
		return; /* longer chains, still correct */
	for (size_t i = 0; i < b->nslots; i++)
		for (struct bentry *e = b->slots[i], *next; e; e = next) {
			next = e->next;
			size_t k = id_hash(b, e->id, e->len) & (n - 1);
			e->next = s[k];
			s[k] = e;
		}
	free(b->slots);
	b->slots = s;
	b->nslots = n;
}

/* The delay after `fails` failures in a row. */
static uint64_t delay_of(const struct backoff *b, uint32_t fails)
{
	if (fails < BACKOFF_FREE)
		return 0;
	uint32_t shift = fails - BACKOFF_FREE;
	uint64_t d = (uint64_t)b->base_ms << (shift > 32 ? 32 : shift);
	return d > b->max_ms ? b->max_ms : d;
}

uint64_t backoff_delay(struct backoff *b, const char *id, size_t n,
		       uint64_t now_ms)
{
	if (!b)
		return 0;
	struct bentry *e = *slot_of(b, id, n);
	uint64_t d = e ? delay_of(b, e->fails) : 0;
	if (!d)
		return 0;
	uint64_t from = e->last_start > now_ms ? e->last_start : now_ms;
	e->last_start = from + d;
	return e->last_start - now_ms;
}

int backoff_failed(struct backoff *b, const char *id, size_t n)
{
	if (!b)
		return 0;
	struct bentry **pp = slot_of(b, id, n);
	if (*pp) {
		if ((*pp)->fails < UINT32_MAX)
			(*pp)->fails++;
		return 0;
	}
	struct bentry *e = calloc(1, sizeof(*e) + n);
	if (!e)
		return UD_ENOMEM;
	memcpy(e->id, id, n);
	e->len = (uint32_t)n;
	e->fails = 1;
	*pp = e;
	if (++b->count > b->nslots)
		grow(b);
	return 0;
}

void backoff_forget(struct backoff *b, const char *id, size_t n)
{
	if (!b)
		return;
	struct bentry **pp = slot_of(b, id, n), *e = *pp;
	if (!e)
		return;
	*pp = e->next;
	free(e);
	b->count--;
}

size_t backoff_users(const struct backoff *b)
{
	return b ? b->count : 0;
}

unsigned backoff_failures(const struct backoff *b, const char *id, size_t n)
{
	const struct bentry *e = b ? *slot_of(b, id, n) : NULL;
	return e ? e->fails : 0;
}
