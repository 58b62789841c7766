/*
 * pagecache.h -- the encoded replies of the latest user.list pages, reused
 * while the store has not changed.
 *
 * What and why.  A first page of 20 users costs the server ~3 us over RPC,
 * most of it spent finding the 20 users and encoding their maps (perf:
 * codec_user_mp, ud_user_list, order_select, time_format24 and the buffer
 * appends, ~28% of the server's CPU under `userdb-bench --op list_first
 * --pipeline 16`; the rest is the kernel sending 6 KB).  Consoles and
 * services poll the same few pages, so the server keeps the reply bodies
 * (the result map, not the msgid) of the last PAGECACHE_ENTRIES distinct
 * queries, keyed by the query's MessagePack bytes and the store's
 * generation (ud_generation(): it moves with every create, change, delete,
 * eviction or foreign change).  A hit copies the bytes; any change makes
 * every entry stale, so no user is ever shown older than the store.  No
 * memory per user: at most PAGECACHE_ENTRIES replies of at most
 * PAGECACHE_MAX bytes.
 *
 * Measured (issue 14): user-space instructions per list_first (callgrind,
 * --no-persist, 20k users, `--op list_first --pipeline 16 --conns 16`)
 * 24.3k -> 16.7k; server CPU per page on the shared busy VM (100k users,
 * 50 connections) 2.63 -> 2.03-2.55 us.  What is left on a hit is the
 * kernel's send of the 6 KB, the generic unpacking of the request and the
 * copies of the body (cache -> result -> output).  Under writes every
 * change misses, and a miss costs one extra copy of the body.
 *
 * Threads: the loop thread only.
 */
#ifndef UD_NET_PAGECACHE_H
#define UD_NET_PAGECACHE_H

#include <stddef.h>
#include <stdint.h>

#include "userdb.h"

#define PAGECACHE_ENTRIES 4
#define PAGECACHE_MAX	  (64u << 10) /* larger replies are not kept */

struct pagecache_entry {
	uint64_t gen;
	struct ud_buf key, val; /* key.len == 0: empty slot */
};

struct pagecache {
	struct pagecache_entry e[PAGECACHE_ENTRIES];
	unsigned next; /* the slot the next new key replaces */
	uint64_t hits, misses;
};

/* The reply kept for (key, gen), or NULL (counted as a miss).  Valid until
 * the next pagecache_put().  key must not be empty. */
const struct ud_buf *pagecache_get(struct pagecache *pc, uint64_t gen,
				   const void *key, size_t len);
/* Keep val (copied) for (key, gen).  Best effort: out of memory or a val
 * over PAGECACHE_MAX keeps nothing. */
void pagecache_put(struct pagecache *pc, uint64_t gen, const void *key,
		   size_t len, const void *val, size_t vlen);
/* Free what is kept (the struct itself is the caller's). */
void pagecache_destroy(struct pagecache *pc);

#endif
