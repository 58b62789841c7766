/*
 * actlog.h -- the per-user activity log (SPEC §2 events).
 *
 * Memory is the design constraint: a million users that were only created
 * must not cost a million log entries.  So a live user with no event other
 * than its creation has NO log here: its user.created event is implicit,
 * derived from the record (id = record.seq, time = created_ms, details {}).
 * The store materialises it (actlog_append of the created event) just
 * before the user's first other event, so from then on the log here is
 * complete.
 *
 * A log (struct ulog) is keyed by user id in a hash set (index.h) and holds
 * a ring of the newest `keep` events, each one allocation (header + msgpack
 * details).  When its user is deleted the log stays, queued on a FIFO of
 * deleted users' logs; beyond `deleted_max` the oldest is dropped.  If the
 * id is created again, the log leaves the FIFO and continues: a log is
 * "the events of this user id".
 *
 * Event ids are allocated by the store (one global increasing counter).
 * Not thread-safe; read-only functions are safe in a forked child.
 */
#ifndef UD_ACTLOG_H
#define UD_ACTLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "index.h"

struct event {
	uint64_t id;
	int64_t ms;
	uint16_t details_len;
	uint8_t type; /* enum ud_event */
	char details[];
};

struct ulog {
	struct ulog *prev, *next; /* deleted FIFO, when deleted */
	struct event **ring;	  /* oldest at ring[head] */
	uint32_t head, count, cap;
	bool deleted;
	uint8_t id_len;
	char id[];
};

struct actlog {
	struct index by_id;
	struct ulog *fifo_head, *fifo_tail; /* deleted logs, oldest first */
	size_t deleted_count, deleted_max;
	unsigned keep;
	uint64_t events; /* events held in all logs */
};

/* seed: secret hash seed of the id table (see index_init). */
void actlog_init(struct actlog *al, unsigned keep, size_t deleted_max,
		 uint64_t seed);
void actlog_destroy(struct actlog *al);

/* The log of this user id, or NULL. */
struct ulog *actlog_find(const struct actlog *al, const char *id, size_t len);
/* actlog_find() with h = XXH3-64 of the id, computed by the caller. */
struct ulog *actlog_find_hashed(const struct actlog *al, const char *id,
				size_t len, uint64_t h);
/* The log of this user id, created empty if absent; NULL when out of
 * memory. */
struct ulog *actlog_open(struct actlog *al, const char *id, size_t len);
/* Append an event (copies details; NULL/0 = {}), dropping the oldest beyond
 * keep.  0 or UD_ENOMEM. */
int actlog_append(struct actlog *al, struct ulog *l, uint64_t id, int type,
		  int64_t ms, const void *details, size_t details_len);
/* The i-th newest event (0 = newest); i < l->count. */
const struct event *actlog_event(const struct ulog *l, uint32_t i);

/* The user was deleted: queue the log, dropping the oldest deleted logs
 * beyond deleted_max (possibly this one when deleted_max is 0). */
void actlog_mark_deleted(struct actlog *al, struct ulog *l);
/* The id lives again: take the log off the deleted FIFO. */
void actlog_revive(struct actlog *al, struct ulog *l);
/* Forget a log entirely (cache eviction). */
void actlog_drop(struct actlog *al, struct ulog *l);

/* Check counts and the FIFO; 0 or UD_EINTERNAL. */
int actlog_check(const struct actlog *al);

#endif
