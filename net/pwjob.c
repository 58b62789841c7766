/*
 * pwjob.c -- password work off the loop; see pwjob.h.
 */
#include "pwjob.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "backoff.h"

static char *dup_bytes(const void *p, size_t n, bool *fail)
{
	if (!p)
		return NULL;
	char *d = malloc(n + 1);
	if (!d) {
		*fail = true;
		return NULL;
	}
	memcpy(d, p, n);
	d[n] = 0;
	return d;
}

static void pwjob_free(struct pwjob *j)
{
	if (j->pw)
		sodium_memzero(j->pw, j->pw_len);
	if (j->body)
		sodium_memzero(j->body, j->body_len);
	sodium_memzero(j->hash, sizeof j->hash);
	free(j->id);
	free(j->pw);
	free(j->body);
	free(j);
}

/* Worker side: only the job and thread-safe functions. */
static void pwjob_work(struct pool_job *pj)
{
	struct pwjob *j = (struct pwjob *)pj;
	if (j->kind == PWJOB_VERIFY) {
		/* No password: the server's decoy, at the store's cost. */
		bool has = j->hash[0] != '\0';
		j->valid =
		    ud_password_verify(has ? j->hash : server_decoy(j->srv),
				       j->pw, j->pw_len) == 1 &&
		    has;
		return;
	}
	j->rc = ud_password_hash(&j->srv->dbopt, j->pw, j->pw_len, j->hash,
				 &j->err);
}

static int apply_create(struct pwjob *j)
{
	struct ud_arena arena = {0};
	struct ud_fields f;
	int rc = j->body_json
		     ? ud_fields_from_json(j->body, j->body_len, true, &f,
					   &arena, &j->err)
		     : ud_fields_from_msgpack(j->body, j->body_len, true, &f,
					      &arena, &j->err);
	if (rc == 0) {
		f.set = (f.set & ~(unsigned)UD_F_PASSWORD) | UD_F_PASSWORD_HASH;
		f.password = NULL;
		f.password_len = 0;
		f.password_hash = j->hash;
		f.password_hash_len = strlen(j->hash);
		rc = ud_user_create(j->srv->db, &f, &j->user, &j->err);
	}
	ud_arena_free(&arena);
	return rc;
}

/* A verification of an existing user ended: count a failure in a row, or
 * forget the user after a success.  (A failure to count is not an error
 * for the client: the verification itself succeeded.) */
static void backoff_count(struct pwjob *j)
{
	if (j->rc != 0)
		return;
	if (j->valid)
		backoff_forget(j->srv->backoff, j->id, j->id_len);
	else
		backoff_failed(j->srv->backoff, j->id, j->id_len);
}

/* Loop side: apply the outcome to the store, let the protocol reply. */
static void pwjob_done(struct pool_job *pj)
{
	struct pwjob *j = (struct pwjob *)pj;
	ud_db *db = j->srv->db;
	if (j->rc == 0) {
		/* the request's key, not whichever ran last, caused this */
		ud_set_actor(db, j->has_actor ? j->actor : NULL, j->actor_len);
		server_actor_forget(j->srv);
		switch (j->kind) {
		case PWJOB_CREATE:
			j->rc = apply_create(j);
			break;
		case PWJOB_SET:
			j->rc = ud_user_set_password_hash(
			    db, j->id, j->id_len, j->hash, strlen(j->hash),
			    &j->user, &j->err);
			if (j->rc == 0)
				backoff_forget(j->srv->backoff, j->id,
					       j->id_len);
			break;
		case PWJOB_VERIFY:
			j->rc = ud_user_record_verify(db, j->id, j->id_len,
						      j->valid, &j->err);
			backoff_count(j);
			break;
		}
	}
	j->finish(j);
	struct conn *c = j->conn;
	pwjob_free(j);
	conn_job_end(c);
	conn_resume(c); /* HTTP waits for this before the next request */
	conn_unref(c);
}

struct pwjob *pwjob_new(struct server *srv, struct conn *c,
			enum pwjob_kind kind, const char *id, size_t id_len,
			const char *pw, size_t pw_len, const void *body,
			size_t body_len)
{
	bool fail = false;
	struct pwjob *j = calloc(1, sizeof(*j));
	if (!j)
		return NULL;
	j->srv = srv;
	j->conn = c;
	j->kind = kind;
	j->id = dup_bytes(id, id_len, &fail);
	j->id_len = id_len;
	j->pw = dup_bytes(pw, pw_len, &fail);
	j->pw_len = pw_len;
	j->body = dup_bytes(body, body_len, &fail);
	j->body_len = body_len;
	j->base.work = pwjob_work;
	j->base.done = pwjob_done;
	const char *actor = ud_actor(srv->db, &j->actor_len);
	if (actor && j->actor_len < sizeof j->actor) {
		memcpy(j->actor, actor, j->actor_len);
		j->has_actor = true;
	}
	if (fail) {
		pwjob_free(j);
		return NULL;
	}
	conn_ref(c);
	conn_job_begin(c);
	return j;
}

static void delayed_unlink(struct pwjob *j)
{
	if (j->dprev)
		j->dprev->dnext = j->dnext;
	else
		j->srv->delayed = j->dnext;
	if (j->dnext)
		j->dnext->dprev = j->dprev;
	j->dprev = j->dnext = NULL;
	event_free(j->delay_ev);
	j->delay_ev = NULL;
}

static void delay_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pwjob *j = arg;
	delayed_unlink(j);
	pool_submit(j->srv->pool, &j->base);
}

/* Put a verification on a timer when its user is in back-off.  true when
 * it waits. */
static bool pwjob_delay(struct pwjob *j)
{
	struct server *srv = j->srv;
	if (j->kind != PWJOB_VERIFY || !srv->backoff || srv->stopping)
		return false;
	uint64_t now = metrics_now_ns() / 1000000;
	uint64_t ms = backoff_delay(srv->backoff, j->id, j->id_len, now);
	if (!ms || !(j->delay_ev = evtimer_new(srv->base, delay_cb, j)))
		return false;
	struct timeval tv = {.tv_sec = (time_t)(ms / 1000),
			     .tv_usec = (suseconds_t)(ms % 1000) * 1000};
	if (evtimer_add(j->delay_ev, &tv)) {
		event_free(j->delay_ev);
		j->delay_ev = NULL;
		return false;
	}
	j->dnext = srv->delayed;
	if (j->dnext)
		j->dnext->dprev = j;
	srv->delayed = j;
	srv->metrics.verify_delayed++;
	return true;
}

void pwjob_submit(struct pwjob *j)
{
	if (!pwjob_delay(j))
		pool_submit(j->srv->pool, &j->base);
}

void pwjob_release_delayed(struct server *srv)
{
	while (srv->delayed) {
		struct pwjob *j = srv->delayed;
		delayed_unlink(j);
		pool_submit(srv->pool, &j->base);
	}
}
