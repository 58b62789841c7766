/*
 * pagecache.c -- encoded user.list replies; see pagecache.h.
 */
#include "pagecache.h"

#include <string.h>

static struct pagecache_entry *find(struct pagecache *pc, const void *key,
				    size_t len)
{
	for (unsigned i = 0; i < PAGECACHE_ENTRIES; i++) {
		struct pagecache_entry *e = &pc->e[i];
		if (e->key.len == len && memcmp(e->key.data, key, len) == 0)
			return e;
	}
	return NULL;
}

const struct ud_buf *pagecache_get(struct pagecache *pc, uint64_t gen,
				   const void *key, size_t len)
{
	struct pagecache_entry *e = len ? find(pc, key, len) : NULL;
	if (!e || e->gen != gen) {
		pc->misses++;
		return NULL;
	}
	pc->hits++;
	return &e->val;
}

void pagecache_put(struct pagecache *pc, uint64_t gen, const void *key,
		   size_t len, const void *val, size_t vlen)
{
	struct pagecache_entry *e = len ? find(pc, key, len) : NULL;
	if (!len || vlen > PAGECACHE_MAX)
		return;
	if (!e) {
		e = &pc->e[pc->next];
		pc->next = (pc->next + 1) % PAGECACHE_ENTRIES;
		e->key.len = 0;
		if (ud_buf_append(&e->key, key, len))
			return;
	}
	e->val.len = 0;
	if (ud_buf_append(&e->val, val, vlen)) {
		e->key.len = 0;
		return;
	}
	e->gen = gen;
}

void pagecache_destroy(struct pagecache *pc)
{
	for (unsigned i = 0; i < PAGECACHE_ENTRIES; i++) {
		ud_buf_free(&pc->e[i].key);
		ud_buf_free(&pc->e[i].val);
	}
}
