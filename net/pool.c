/*
 * pool.c -- worker threads for slow password work; see pool.h.
 */
#include "pool.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct pool {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct pool_job *todo_head, **todo_tail; /* FIFO, guarded by lock */
	struct pool_job *done_head, **done_tail; /* FIFO, guarded by lock */
	bool stopping;
	int efd;
	struct event *ev;
	unsigned inflight; /* loop thread only */
	unsigned n_threads;
	pthread_t threads[];
};

static void queue_push(struct pool_job ***tail, struct pool_job *job)
{
	job->next = NULL;
	**tail = job;
	*tail = &job->next;
}

static void *worker_main(void *arg)
{
	struct pool *p = arg;
	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (!p->todo_head && !p->stopping)
			pthread_cond_wait(&p->cond, &p->lock);
		struct pool_job *job = p->todo_head;
		if (!job)
			break; /* stopping and nothing left */
		p->todo_head = job->next;
		if (!p->todo_head)
			p->todo_tail = &p->todo_head;
		pthread_mutex_unlock(&p->lock);
		job->work(job);
		pthread_mutex_lock(&p->lock);
		queue_push(&p->done_tail, job);
		uint64_t one = 1;
		ssize_t w = write(p->efd, &one, sizeof one);
		(void)w; /* counter saturation still wakes the loop */
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* Run the done callbacks of finished jobs on the loop thread. */
static void pool_drain(struct pool *p)
{
	uint64_t n;
	ssize_t r = read(p->efd, &n, sizeof n);
	(void)r;
	pthread_mutex_lock(&p->lock);
	struct pool_job *job = p->done_head;
	p->done_head = NULL;
	p->done_tail = &p->done_head;
	pthread_mutex_unlock(&p->lock);
	while (job) {
		struct pool_job *next = job->next;
		p->inflight--;
		job->done(job);
		job = next;
	}
}

static void pool_ready_cb(evutil_socket_t fd, short what, void *arg)
{
	pool_drain(arg);
}

struct pool *pool_new(struct event_base *base, unsigned workers)
{
	if (workers == 0)
		workers = 1;
	struct pool *p = calloc(1, sizeof(*p) + workers * sizeof(pthread_t));
	if (!p)
		return NULL;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	p->todo_tail = &p->todo_head;
	p->done_tail = &p->done_head;
	p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (p->efd < 0)
		goto fail;
	p->ev = event_new(base, p->efd, EV_READ | EV_PERSIST, pool_ready_cb, p);
	if (!p->ev || event_add(p->ev, NULL))
		goto fail;
	for (; p->n_threads < workers; p->n_threads++)
		if (pthread_create(&p->threads[p->n_threads], NULL, worker_main,
				   p))
			goto fail;
	return p;
fail:
	pool_free(p);
	return NULL;
}

void pool_submit(struct pool *p, struct pool_job *job)
{
	p->inflight++;
	pthread_mutex_lock(&p->lock);
	queue_push(&p->todo_tail, job);
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

unsigned pool_inflight(const struct pool *p)
{
	return p->inflight;
}

void pool_free(struct pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stopping = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 0; i < p->n_threads; i++)
		pthread_join(p->threads[i], NULL);
	if (p->efd >= 0)
		pool_drain(p);
	if (p->ev)
		event_free(p->ev);
	if (p->efd >= 0)
		close(p->efd);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p);
}
