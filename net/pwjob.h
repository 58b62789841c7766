/*
 * pwjob.h -- password operations split between the worker pool and the
 * loop, shared by both protocols.
 *
 *   create:  loop: parse + ud_fields_validate  -> worker: ud_password_hash
 *            -> loop: re-parse the copied body, ud_user_create with
 *               UD_F_PASSWORD_HASH instead of UD_F_PASSWORD
 *   set:     loop: user exists?  -> worker: ud_password_hash
 *            -> loop: ud_user_set_password_hash
 *   verify:  loop: ud_user_password_hash_copy -> worker: ud_password_verify
 *            (against a decoy when no password is set) -> loop:
 *            ud_user_record_verify
 *
 * The job owns copies of everything it needs (the connection may be gone
 * when it returns: the store is still updated, the reply is dropped).
 * Passwords are wiped with sodium_memzero before the job is freed.  The
 * protocol's finish callback runs on the loop with the outcome and must not
 * keep the job.
 */
#ifndef UD_NET_PWJOB_H
#define UD_NET_PWJOB_H

#include "metrics.h"
#include "pool.h"
#include "server.h"

enum pwjob_kind { PWJOB_CREATE, PWJOB_SET, PWJOB_VERIFY };

struct pwjob {
	struct pool_job base;
	struct server *srv;
	struct conn *conn; /* referenced */
	enum pwjob_kind kind;
	char *id, *pw, *body; /* owned copies */
	size_t id_len, pw_len, body_len;
	bool body_json; /* create: body is JSON (else msgpack map) */
	char hash[UD_PWHASH_MAX];
	char actor[KEY_NAME_MAX + 1]; /* the store's actor when queued */
	size_t actor_len;
	bool has_actor;
	/* outcome, valid in finish */
	int rc;
	struct ud_error err;
	bool valid;	     /* verify */
	const ud_user *user; /* create/set: the user, borrowed */
	/* protocol data for the reply */
	uint64_t msgid;
	bool notify;
	enum metric_route route;
	uint64_t start_ns;
	void (*finish)(struct pwjob *j);
	/* a verification waiting out its user's back-off */
	struct event *delay_ev;
	struct pwjob *dprev, *dnext; /* srv->delayed */
};

/* A job with copies of id/pw/body (each may be NULL/0).  NULL when out of
 * memory. */
struct pwjob *pwjob_new(struct server *srv, struct conn *c,
			enum pwjob_kind kind, const char *id, size_t id_len,
			const char *pw, size_t pw_len, const void *body,
			size_t body_len);
/* Hand the job to the pool (takes ownership).  A verification of a user in
 * back-off (backoff.h) waits on a timer first. */
void pwjob_submit(struct pwjob *j);
/* Shutdown: hand every waiting verification to the pool now. */
void pwjob_release_delayed(struct server *srv);

#endif
