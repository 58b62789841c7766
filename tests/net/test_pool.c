/*
 * test_pool.c -- the worker pool: work runs off the loop thread, done runs
 * on it, in-flight accounting, and pool_free draining what is queued.
 */
#include <criterion/criterion.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdlib.h>

#include "pool.h"

struct tjob {
	struct pool_job base;
	pthread_t loop, worker;
	int *done_count;
	bool done_on_loop;
};

static void work(struct pool_job *j)
{
	((struct tjob *)j)->worker = pthread_self();
}

static void done(struct pool_job *j)
{
	struct tjob *t = (struct tjob *)j;
	(*t->done_count)++;
	cr_assert(pthread_equal(t->loop, pthread_self()), "done on the loop");
	cr_assert_not(pthread_equal(t->worker, pthread_self()),
		      "work on a worker");
	free(t);
}

static struct tjob *job_new(int *count)
{
	struct tjob *t = calloc(1, sizeof(*t));
	t->base.work = work;
	t->base.done = done;
	t->loop = pthread_self();
	t->done_count = count;
	return t;
}

Test(pool, jobs_come_back_to_the_loop)
{
	struct event_base *base = event_base_new();
	struct pool *p = pool_new(base, 3);
	int count = 0;
	cr_assert_not_null(p);
	for (int i = 0; i < 100; i++)
		pool_submit(p, &job_new(&count)->base);
	cr_assert_eq(pool_inflight(p), 100);
	while (count < 100)
		event_base_loop(base, EVLOOP_ONCE);
	cr_assert_eq(pool_inflight(p), 0);
	pool_free(p);
	event_base_free(base);
}

Test(pool, free_runs_the_queued_jobs)
{
	struct event_base *base = event_base_new();
	struct pool *p = pool_new(base, 1);
	int count = 0;
	for (int i = 0; i < 20; i++)
		pool_submit(p, &job_new(&count)->base);
	pool_free(p); /* no loop iteration: pool_free finishes them */
	cr_assert_eq(count, 20);
	event_base_free(base);
}
