/*
 * actlog.c -- per-user activity logs and the deleted-users FIFO (actlog.h).
 */
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "actlog.h"
#include "userdb.h"

static uint64_t ulog_hash(const void *item)
{
	const struct ulog *l = item;

	return XXH3_64bits(l->id, l->id_len);
}

static bool ulog_eq(const void *item, const void *key, size_t len)
{
	const struct ulog *l = item;

	return l->id_len == len && memcmp(l->id, key, len) == 0;
}

void actlog_init(struct actlog *al, unsigned keep, size_t deleted_max,
		 uint64_t seed)
{
	memset(al, 0, sizeof(*al));
	index_init(&al->by_id, ulog_hash, seed);
	al->keep = keep;
	al->deleted_max = deleted_max;
}

static void ulog_free(struct actlog *al, struct ulog *l)
{
	uint32_t i;

	for (i = 0; i < l->count; i++)
		free(l->ring[(l->head + i) % l->cap]);
	al->events -= l->count;
	free(l->ring);
	free(l);
}

static int free_cb(void *item, void *ctx)
{
	ulog_free(ctx, item);
	return 0;
}

void actlog_destroy(struct actlog *al)
{
	index_foreach(&al->by_id, free_cb, al);
	index_destroy(&al->by_id);
	memset(al, 0, sizeof(*al));
}

struct ulog *actlog_find(const struct actlog *al, const char *id, size_t len)
{
	return actlog_find_hashed(al, id, len, XXH3_64bits(id, len));
}

struct ulog *actlog_find_hashed(const struct actlog *al, const char *id,
				size_t len, uint64_t h)
{
	if (!index_count(&al->by_id))
		return NULL;
	return index_find(&al->by_id, h, ulog_eq, id, len);
}

struct ulog *actlog_open(struct actlog *al, const char *id, size_t len)
{
	struct ulog *l = actlog_find(al, id, len);

	if (l)
		return l;
	if (len > UINT8_MAX)
		return NULL;
	l = calloc(1, sizeof(*l) + len);
	if (!l)
		return NULL;
	l->id_len = (uint8_t)len;
	memcpy(l->id, id, len);
	if (index_insert(&al->by_id, l)) {
		free(l);
		return NULL;
	}
	return l;
}

/* Room for one more event in the ring (grows up to keep). */
static int ring_room(struct ulog *l, unsigned keep)
{
	uint32_t cap, i;
	struct event **ring;

	if (l->count < l->cap || l->cap >= keep)
		return 0;
	cap = l->cap ? l->cap * 2 : 4;
	if (cap > keep)
		cap = keep;
	ring = malloc(cap * sizeof(*ring));
	if (!ring)
		return UD_ENOMEM;
	for (i = 0; i < l->count; i++)
		ring[i] = l->ring[(l->head + i) % l->cap];
	free(l->ring);
	l->ring = ring;
	l->cap = cap;
	l->head = 0;
	return 0;
}

int actlog_append(struct actlog *al, struct ulog *l, uint64_t id, int type,
		  int64_t ms, const void *details, size_t details_len)
{
	struct event *e;

	if (!details || !details_len) {
		details = "\x80";
		details_len = 1;
	}
	if (details_len > UINT16_MAX)
		return UD_EINVAL;
	if (ring_room(l, al->keep))
		return UD_ENOMEM;
	e = malloc(sizeof(*e) + details_len);
	if (!e)
		return UD_ENOMEM;
	e->id = id;
	e->ms = ms;
	e->type = (uint8_t)type;
	e->details_len = (uint16_t)details_len;
	memcpy(e->details, details, details_len);
	if (l->count == l->cap) { /* full at keep: drop the oldest */
		free(l->ring[l->head]);
		l->ring[l->head] = e;
		l->head = (l->head + 1) % l->cap;
		return 0;
	}
	l->ring[(l->head + l->count) % l->cap] = e;
	l->count++;
	al->events++;
	return 0;
}

const struct event *actlog_event(const struct ulog *l, uint32_t i)
{
	return l->ring[(l->head + l->count - 1 - i) % l->cap];
}

static void fifo_unlink(struct actlog *al, struct ulog *l)
{
	if (l->prev)
		l->prev->next = l->next;
	else
		al->fifo_head = l->next;
	if (l->next)
		l->next->prev = l->prev;
	else
		al->fifo_tail = l->prev;
	l->prev = l->next = NULL;
	l->deleted = false;
	al->deleted_count--;
}

void actlog_drop(struct actlog *al, struct ulog *l)
{
	if (l->deleted)
		fifo_unlink(al, l);
	index_remove(&al->by_id, l);
	ulog_free(al, l);
}

void actlog_mark_deleted(struct actlog *al, struct ulog *l)
{
	if (l->deleted)
		return;
	l->deleted = true;
	l->prev = al->fifo_tail;
	l->next = NULL;
	if (al->fifo_tail)
		al->fifo_tail->next = l;
	else
		al->fifo_head = l;
	al->fifo_tail = l;
	al->deleted_count++;
	while (al->deleted_count > al->deleted_max)
		actlog_drop(al, al->fifo_head);
}

void actlog_revive(struct actlog *al, struct ulog *l)
{
	if (l->deleted)
		fifo_unlink(al, l);
}

struct check_ctx {
	uint64_t events, deleted;
};

static int check_cb(void *item, void *ctx)
{
	struct ulog *l = item;
	struct check_ctx *c = ctx;
	uint32_t i;

	if (l->count > l->cap)
		return UD_EINTERNAL;
	for (i = 1; i < l->count; i++)
		if (actlog_event(l, i)->id >= actlog_event(l, i - 1)->id)
			return UD_EINTERNAL;
	c->events += l->count;
	c->deleted += l->deleted;
	return 0;
}

int actlog_check(const struct actlog *al)
{
	struct check_ctx c = {0};
	const struct ulog *l;
	size_t n = 0;

	if (index_check(&al->by_id) || index_foreach(&al->by_id, check_cb, &c))
		return UD_EINTERNAL;
	for (l = al->fifo_head; l; l = l->next, n++)
		if (!l->deleted || (l->next && l->next->prev != l))
			return UD_EINTERNAL;
	if (c.events != al->events || c.deleted != al->deleted_count ||
	    n != al->deleted_count || n > al->deleted_max)
		return UD_EINTERNAL;
	return 0;
}
