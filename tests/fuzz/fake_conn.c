/*
 * fake_conn.c -- see fake_conn.h.
 */
#include "fake_conn.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "fuzz_util.h"

static struct server srv;
static bool inited;

static void fake_server_init(void)
{
	if (inited)
		return;
	inited = true;
	FUZZ_CHECK(sodium_init() >= 0, "sodium_init");
	srv.cfg = config_default;
	srv.cfg.no_persist = true;
	srv.cfg.max_frame = 4096; /* small, so that inputs reach the limits */
	srv.cfg.max_body = 2048;
	srv.cfg.max_header = 1024;
	srv.cfg.max_request_line = 512;
	srv.cfg.max_output = 1u << 20;
	srv.dbopt = ud_options_default;
	srv.dbopt.pw_opslimit = crypto_pwhash_OPSLIMIT_MIN;
	srv.dbopt.pw_memlimit = crypto_pwhash_MEMLIMIT_MIN;
	FUZZ_CHECK(keyset_add(&srv.keys, FAKE_KEY, strlen(FAKE_KEY)) == 0,
		   "keyset_add");
	srv.base = event_base_new();
	FUZZ_CHECK(srv.base != NULL, "event_base_new");
	srv.pool = pool_new(srv.base, 1);
	FUZZ_CHECK(srv.pool != NULL, "pool_new");
}

static void seed_store(void)
{
	struct ud_error err;
	struct ud_fields a = {.set = UD_F_ID | UD_F_NAME | UD_F_EMAIL,
			      .id = "usr_a",
			      .id_len = 5,
			      .name = "Ann",
			      .name_len = 3,
			      .email = "a@x.io",
			      .email_len = 6};
	struct ud_fields b = {.set = UD_F_ID | UD_F_NAME | UD_F_EMAIL,
			      .id = "usr_b",
			      .id_len = 5,
			      .name = "Bo",
			      .name_len = 2,
			      .email = "b@x.io",
			      .email_len = 6};
	FUZZ_CHECK(ud_open(&srv.dbopt, &srv.db, &err) == 0, "ud_open");
	FUZZ_CHECK(ud_user_create(srv.db, &a, NULL, &err) == 0, "%s",
		   err.message);
	FUZZ_CHECK(ud_user_create(srv.db, &b, NULL, &err) == 0, "%s",
		   err.message);
	FUZZ_CHECK(ud_user_set_password(srv.db, "usr_b", 5, "password1", 9,
					NULL, &err) == 0,
		   "%s", err.message);
}

static void drain(struct evbuffer *b, fake_out_fn out, void *ctx)
{
	size_t n = evbuffer_get_length(b);
	if (n == 0)
		return;
	const uint8_t *p = evbuffer_pullup(b, -1);
	if (getenv("FUZZ_DEBUG")) /* see what the server answered */
		fwrite(p, 1, n, stderr);
	out(ctx, p, n);
	evbuffer_drain(b, n);
}

/* What server_release_held does after a successful ud_flush, with a
 * reader that takes every byte at once (conn_write_cb's part). */
static void release_held(fake_out_fn out, void *ctx)
{
	struct conn *c = srv.held_head;
	srv.held_head = NULL;
	FUZZ_CHECK(ud_flush(srv.db) == 0, "ud_flush in memory");
	while (c) {
		struct conn *next = c->held_next;
		c->on_held = false;
		c->held_write = false;
		if (!c->closed) {
			drain(bufferevent_get_output(c->bev), out, ctx);
			drain(c->held, out, ctx);
			if (c->close_when_done && c->jobs == 0)
				conn_close(c);
			else if (c->paused) {
				c->paused = false;
				conn_resume(c);
			}
		}
		conn_unref(c);
		c = next;
	}
}

struct server *fake_server_open(void)
{
	fake_server_init();
	seed_store();
	return &srv;
}

void fake_server_close(void)
{
	struct ud_error err;
	FUZZ_CHECK(ud_db_check(srv.db, &err) == 0, "store invariants: %s",
		   err.message);
	ud_close(srv.db);
	srv.db = NULL;
}

void fake_conn_run(const struct conn_proto *proto, bool authed,
		   const uint8_t *data, size_t size, fake_out_fn out, void *ctx)
{
	struct bufferevent *pair[2];
	fake_server_open();

	struct conn *c = calloc(1, sizeof(*c));
	FUZZ_CHECK(c != NULL, "calloc");
	c->srv = &srv;
	c->proto = proto;
	c->refs = 1;
	c->max_jobs = proto == &http_proto ? 1 : CONN_RPC_JOBS;
	c->authed = authed;
	c->held = evbuffer_new();
	FUZZ_CHECK(bufferevent_pair_new(srv.base, 0, pair) == 0, "pair");
	c->bev = pair[0];
	FUZZ_CHECK(c->held && proto->init(c) == 0, "conn init");
	srv.conns = c;
	srv.metrics.connections_open++;
	conn_ref(c); /* ours, so that c stays readable after a close */

	/* A bufferevent's input only takes bytes from its transport: lift
	 * that for the time of the copy. */
	struct evbuffer *in = bufferevent_get_input(c->bev);
	evbuffer_unfreeze(in, 0);
	FUZZ_CHECK(evbuffer_add(in, data, size) == 0, "evbuffer_add");
	evbuffer_freeze(in, 0);
	conn_resume(c);
	for (unsigned spins = 0;; spins++) {
		release_held(out, ctx);
		if (!pool_inflight(srv.pool) && !srv.held_head)
			break;
		FUZZ_CHECK(spins < 1000000, "password jobs never finish");
		if (pool_inflight(srv.pool))
			event_base_loop(srv.base, EVLOOP_ONCE);
	}
	if (!c->closed) {
		drain(bufferevent_get_output(c->bev), out, ctx);
		conn_close(c);
	}
	release_held(out, ctx);
	FUZZ_CHECK(srv.conns == NULL, "connection list not empty");
	conn_unref(c);
	bufferevent_free(pair[1]);
	fake_server_close();
}
