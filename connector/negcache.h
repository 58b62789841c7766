/*
 * negcache.h -- the connector's negative entries: keys (an id, or an email
 * as userdb folds it) that PostgreSQL was asked for and did not have.
 *
 * A set of 64-bit key hashes (XXH3 of the id, the folded-email hash mixed
 * with a constant so an id and an email never meet), open addressing with
 * linear probing and tombstones, at most `max` live entries at a load of
 * at most one half.  Full: it is emptied and starts over (a miss then costs
 * one more query, never a wrong answer).  Two different keys with one hash
 * (odds about 2^-64 per pair) would make the second look absent until the
 * first is dropped; nothing else is ever wrong.
 *
 * Owned by its connector's thread.  No allocation after neg_init().
 */
#ifndef UD_NEGCACHE_H
#define UD_NEGCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "userdb.h"

struct neg {
	uint64_t *slot; /* 0 empty, 1 tombstone, else a key hash */
	size_t cap;	/* a power of two, >= 2 * max */
	size_t live, used, max;
	uint64_t hits;
};

/* Room for max entries.  0 or UD_ENOMEM. */
int neg_init(struct neg *n, size_t max);
void neg_destroy(struct neg *n);
/* The hash of a key. */
uint64_t neg_key(enum ud_key_kind kind, const char *key, size_t len);
bool neg_has(struct neg *n, uint64_t h);
void neg_add(struct neg *n, uint64_t h);
void neg_drop(struct neg *n, uint64_t h);
void neg_clear(struct neg *n);

#endif
