/*
 * buf.c -- struct ud_buf (growable output buffer) and struct ud_arena
 * (bump allocator owning what the request parsers produce).
 */
#include <stdlib.h>
#include <string.h>

#include "userdb.h"

int ud_buf_reserve(struct ud_buf *b, size_t more)
{
	size_t need, cap;
	char *p;

	if (more > SIZE_MAX / 2 - b->len)
		return UD_ENOMEM;
	need = b->len + more;
	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	p = realloc(b->data, cap);
	if (!p)
		return UD_ENOMEM;
	b->data = p;
	b->cap = cap;
	return 0;
}

int ud_buf_append(struct ud_buf *b, const void *p, size_t n)
{
	if (ud_buf_reserve(b, n))
		return UD_ENOMEM;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

void ud_buf_free(struct ud_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

/* Arena blocks are a singly linked list; each allocation is 16-aligned.  A
 * request allocates little, so a fresh block per large allocation is fine. */
struct ud_arena_block {
	struct ud_arena_block *next;
	size_t used, cap;
	_Alignas(16) unsigned char mem[];
};

#define ARENA_BLOCK 4096

void *ud_arena_alloc(struct ud_arena *a, size_t n)
{
	struct ud_arena_block *blk = a->head;
	size_t need = (n + 15) & ~(size_t)15;
	size_t cap;

	if (need < n)
		return NULL;
	if (!blk || blk->cap - blk->used < need) {
		cap = need > ARENA_BLOCK ? need : ARENA_BLOCK;
		blk = malloc(sizeof(*blk) + cap);
		if (!blk)
			return NULL;
		blk->used = 0;
		blk->cap = cap;
		blk->next = a->head;
		a->head = blk;
	}
	blk->used += need;
	return blk->mem + blk->used - need;
}

void ud_arena_free(struct ud_arena *a)
{
	struct ud_arena_block *blk = a->head, *next;

	for (; blk; blk = next) {
		next = blk->next;
		free(blk);
	}
	a->head = NULL;
}
