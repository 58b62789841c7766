/*
 * pool.h -- a small pthread worker pool whose results come back to the
 * libevent loop.
 *
 * Argon2id hashing and verification take tens of milliseconds and a lot of
 * memory by design; running them on the loop would stall every other client.
 * The loop submits a job; a worker runs job->work (which must touch nothing
 * but the job and thread-safe functions); the finished job is queued and an
 * eventfd wakes the loop, which runs job->done on the loop thread, where the
 * store may be used.  done owns the job afterwards (usually frees it).
 *
 * Threads: pool_submit and pool_free are called on the loop thread only.
 * Invariant: pool->inflight counts jobs submitted and not yet done.
 */
#ifndef UD_NET_POOL_H
#define UD_NET_POOL_H

#include <event2/event.h>

struct pool_job {
	void (*work)(struct pool_job *job); /* on a worker */
	void (*done)(struct pool_job *job); /* on the loop; owns job */
	struct pool_job *next;
};

struct pool;

/* Start `workers` threads (at least 1).  NULL on failure. */
struct pool *pool_new(struct event_base *base, unsigned workers);
/* Queue a job; never fails (the queue is a list). */
void pool_submit(struct pool *p, struct pool_job *job);
/* Jobs submitted and not yet done. */
unsigned pool_inflight(const struct pool *p);
/* Stop the threads after the jobs already queued; pending done callbacks
 * are run first.  NULL is a no-op. */
void pool_free(struct pool *p);

#endif
