/*
 * test_backoff.c -- the per-user verification back-off: the table
 * (backoff.h) on its own, then the real server with --verify-backoff-ms
 * (and its USERDB_ twin): the 6th failure in a row and later ones wait,
 * doubling, while other users and other requests stay fast; a success or a
 * password change resets; deleted users leave nothing behind; without the
 * flag nothing waits.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backoff.h"
#include "config.h"
#include "helper_server.h"

/* ---- the table ------------------------------------------------------------
 */

Test(backoff, delays_double_from_the_sixth_failure_up_to_the_cap)
{
	struct backoff *b = backoff_new(100, 1000);
	cr_assert_eq(backoff_delay(b, "u1", 2, 0), 0, "unknown user");
	for (int i = 0; i < BACKOFF_FREE; i++) {
		cr_assert_eq(backoff_delay(b, "u1", 2, 0), 0, "failure %d", i);
		cr_assert_eq(backoff_failed(b, "u1", 2), 0);
	}
	uint64_t now = 10000;
	cr_assert_eq(backoff_delay(b, "u1", 2, now), 100);
	cr_assert_eq(backoff_delay(b, "u2", 2, now), 0, "another user");
	backoff_failed(b, "u1", 2);
	now += 1000;
	cr_assert_eq(backoff_delay(b, "u1", 2, now), 200);
	for (int i = 0; i < 10; i++)
		backoff_failed(b, "u1", 2);
	now += 5000;
	cr_assert_eq(backoff_delay(b, "u1", 2, now), 1000, "capped");
	cr_assert_eq(backoff_failures(b, "u1", 2), 16);
	backoff_forget(b, "u1", 2);
	cr_assert_eq(backoff_delay(b, "u1", 2, now), 0, "reset");
	cr_assert_eq(backoff_users(b), 0);
	backoff_free(b);
}

Test(backoff, parallel_attempts_queue_behind_each_other)
{
	struct backoff *b = backoff_new(100, 30000);
	for (int i = 0; i < BACKOFF_FREE; i++)
		backoff_failed(b, "x", 1);
	cr_assert_eq(backoff_delay(b, "x", 1, 500), 100);
	cr_assert_eq(backoff_delay(b, "x", 1, 500), 200);
	cr_assert_eq(backoff_delay(b, "x", 1, 550), 250);
	cr_assert_eq(backoff_delay(b, "x", 1, 5000), 100, "queue drained");
	backoff_free(b);
}

Test(backoff, table_grows_and_forgets)
{
	struct backoff *b = backoff_new(1, 1);
	char id[32];
	for (int i = 0; i < 5000; i++) {
		snprintf(id, sizeof id, "usr_%d", i);
		cr_assert_eq(backoff_failed(b, id, strlen(id)), 0);
	}
	cr_assert_eq(backoff_users(b), 5000);
	for (int i = 0; i < 5000; i += 2) {
		snprintf(id, sizeof id, "usr_%d", i);
		backoff_forget(b, id, strlen(id));
	}
	cr_assert_eq(backoff_users(b), 2500);
	for (int i = 0; i < 5000; i++) {
		snprintf(id, sizeof id, "usr_%d", i);
		cr_assert_eq(backoff_failures(b, id, strlen(id)), i % 2, "%s",
			     id);
	}
	backoff_free(b);
	backoff_free(NULL);
	cr_assert_eq(backoff_delay(NULL, "x", 1, 0), 0);
}

Test(backoff, flag_and_environment)
{
	struct server_config c;
	char *argv[] = {"s", "--verify-backoff-ms", "250", NULL};
	char *envp[] = {"USERDB_VERIFY_BACKOFF_MS=40",
			"USERDB_VERIFY_BACKOFF_MAX_MS=900", NULL};
	cr_assert_eq(config_parse(&c, 1, argv, NULL, stderr), 0);
	cr_assert_eq(c.verify_backoff_ms, 0, "off by default");
	cr_assert_eq(c.verify_backoff_max_ms, 30000);
	cr_assert_eq(config_parse(&c, 1, argv, envp, stderr), 0);
	cr_assert_eq(c.verify_backoff_ms, 40);
	cr_assert_eq(c.verify_backoff_max_ms, 900);
	cr_assert_eq(config_parse(&c, 3, argv, envp, stderr), 0);
	cr_assert_eq(c.verify_backoff_ms, 250, "the flag wins");
	config_free(&c);
}

/* ---- the server -----------------------------------------------------------
 */

#define N_MS 150 /* the back-off the server tests use */
/* libevent's timers read a coarse clock: a wait may end a few ms early */
#define SLACK_MS 10

static struct tsrv S;
static struct rpcc A, B;

static void fini(void)
{
	unsetenv("USERDB_VERIFY_BACKOFF_MS");
	if (A.unpacker)
		rpcc_close(&A);
	if (B.unpacker)
		rpcc_close(&B);
	cr_assert_eq(tsrv_cleanup(&S), 0, "server exit status");
}

TestSuite(backoff_server, .fini = fini, .timeout = 60);

static void start(bool backoff)
{
	const char *on[] = {"--verify-backoff-ms",
			    "150",
			    "--argon2-ops",
			    "1",
			    "--argon2-mem",
			    "8192",
			    NULL};
	const char *off[] = {"--argon2-ops", "1", "--argon2-mem", "8192", NULL};
	cr_assert_eq(tsrv_start(&S, false, true, backoff ? on : off), 0);
	cr_assert_eq(rpcc_open(&A, S.rpc_port), 0);
	cr_assert_eq(rpcc_auth(&A), 0);
	cr_assert_eq(rpcc_open(&B, S.rpc_port), 0);
	cr_assert_eq(rpcc_auth(&B), 0);
}

/* A user with password "right password"; its id into id[64]. */
static void make_user(const char *email, char *id)
{
	char p[200];
	snprintf(p, sizeof p,
		 "[{\"name\":\"B\",\"email\":\"%s\","
		 "\"password\":\"right password\"}]",
		 email);
	json_t *r = rpcc_call(&A, "user.create", p);
	cr_assert_str_eq(rpc_err(r), "");
	snprintf(id, 64, "%s",
		 json_string_value(json_object_get(rpc_res(r), "id")));
	json_decref(r);
}

/* user.verify_password on c; the answer (1 valid, 0 not) and *ms taken. */
static int verify(struct rpcc *c, const char *id, bool right, double *ms)
{
	char p[200];
	snprintf(p, sizeof p, "[\"%s\", \"%s\"]", id,
		 right ? "right password" : "wrong password");
	double t = mono_ms();
	json_t *r = rpcc_call(c, "user.verify_password", p);
	if (ms)
		*ms = mono_ms() - t;
	cr_assert_str_eq(rpc_err(r), "");
	int v = json_is_true(rpc_res(r));
	json_decref(r);
	return v;
}

/* n wrong verifications that must each be quick. */
static void fail_quickly(const char *id, int n)
{
	double ms;
	for (int i = 0; i < n; i++) {
		cr_assert_eq(verify(&A, id, false, &ms), 0);
		cr_assert_lt(ms, N_MS / 2.0, "failure %d of %s took %.0f ms",
			     i + 1, id, ms);
	}
}

Test(backoff_server, seventh_failure_waits_while_others_stay_fast)
{
	char x[64], y[64], p[200], path[200];
	double ms;
	start(true);
	make_user("x@b.com", x);
	make_user("y@b.com", y);
	fail_quickly(x, BACKOFF_FREE);
	cr_assert_eq(verify(&A, x, false, &ms), 0);
	cr_assert_geq(ms, N_MS - SLACK_MS, "6th failure: %.0f ms", ms);
	/* The 7th, over HTTP, on its own connection, while B goes on. */
	char req[512];
	const char *body = "{\"password\":\"wrong password\"}";
	snprintf(req, sizeof req,
		 "POST /v1/users/%s/password/verify HTTP/1.1\r\n"
		 "Authorization: Bearer " TSRV_KEY "\r\n"
		 "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
		 x, strlen(body), body);
	double t7 = mono_ms();
	int fd = tcp_connect(S.http_port);
	cr_assert_eq(send_all(fd, req, strlen(req)), 0);
	usleep(20000);
	cr_assert_eq(verify(&B, y, false, &ms), 0);
	cr_assert_lt(ms, N_MS / 2.0, "another user's verify: %.0f ms", ms);
	snprintf(p, sizeof p, "[\"%s\"]", x);
	double t = mono_ms();
	json_t *r = rpcc_call(&B, "user.get", p);
	cr_assert_str_eq(rpc_err(r), "");
	json_decref(r);
	struct hresp h;
	snprintf(path, sizeof path, "/v1/users/%s", x);
	cr_assert_eq(http_do(&S, "GET", path, NULL, true, NULL, &h), 0);
	cr_assert_eq(h.status, 200);
	hresp_free(&h);
	cr_assert_lt(mono_ms() - t, N_MS / 2.0, "reads during the back-off");
	char buf[2048];
	ssize_t n = read(fd, buf, sizeof buf - 1);
	double took7 = mono_ms() - t7;
	close(fd);
	cr_assert_gt(n, 0);
	buf[n] = 0;
	cr_assert(strstr(buf, "HTTP/1.1 200") && strstr(buf, "\"valid\":false"),
		  "%s", buf);
	cr_assert_geq(took7, 2 * N_MS - SLACK_MS,
		      "7th failure: %.0f ms (doubled)", took7);
	/* The right password waits too (4 N), and resets the count. */
	cr_assert_eq(verify(&A, x, true, &ms), 1);
	cr_assert_geq(ms, 4 * N_MS - SLACK_MS, "8th, right: %.0f ms", ms);
	fail_quickly(x, BACKOFF_FREE);
	/* A password change resets as well. */
	snprintf(p, sizeof p, "[\"%s\", \"another password\"]", x);
	r = rpcc_call(&A, "user.set_password", p);
	cr_assert_str_eq(rpc_err(r), "");
	json_decref(r);
	fail_quickly(x, BACKOFF_FREE);
	cr_assert_geq(tsrv_metric(&S, "userdb_verify_delayed_total"), 3);
}

Test(backoff_server, deleted_users_leave_no_counter)
{
	char id[3][64], p[200], path[200], email[32];
	setenv("USERDB_VERIFY_BACKOFF_MS", "150", 1); /* the env twin */
	const char *cheap[] = {"--argon2-ops", "1", "--argon2-mem", "8192",
			       NULL};
	cr_assert_eq(tsrv_start(&S, false, true, cheap), 0);
	unsetenv("USERDB_VERIFY_BACKOFF_MS");
	cr_assert_eq(rpcc_open(&A, S.rpc_port), 0);
	cr_assert_eq(rpcc_auth(&A), 0);
	for (int i = 0; i < 3; i++) {
		snprintf(email, sizeof email, "d%d@b.com", i);
		make_user(email, id[i]);
		fail_quickly(id[i], 2);
	}
	cr_assert_eq(tsrv_metric(&S, "userdb_verify_backoff_users"), 3);
	snprintf(p, sizeof p, "[\"%s\"]", id[0]);
	json_t *r = rpcc_call(&A, "user.delete", p);
	cr_assert_str_eq(rpc_err(r), "");
	json_decref(r);
	struct hresp h;
	snprintf(path, sizeof path, "/v1/users/%s", id[1]);
	cr_assert_eq(http_do(&S, "DELETE", path, NULL, true, NULL, &h), 0);
	cr_assert_eq(h.status, 200);
	hresp_free(&h);
	cr_assert_eq(tsrv_metric(&S, "userdb_verify_backoff_users"), 1);
	/* A deleted user's verify is not_found and counts nothing. */
	snprintf(p, sizeof p, "[\"%s\", \"wrong password\"]", id[0]);
	r = rpcc_call(&A, "user.verify_password", p);
	cr_assert_str_eq(rpc_err(r), "not_found");
	json_decref(r);
	cr_assert_eq(verify(&A, id[2], true, NULL), 1);
	cr_assert_eq(tsrv_metric(&S, "userdb_verify_backoff_users"), 0);
}

Test(backoff_server, off_by_default)
{
	char x[64];
	start(false);
	make_user("o@b.com", x);
	fail_quickly(x, 2 * BACKOFF_FREE);
	cr_assert_eq(tsrv_metric(&S, "userdb_verify_delayed_total"), 0);
	cr_assert_eq(tsrv_metric(&S, "userdb_verify_backoff_users"), 0);
}

Test(backoff_server, sigterm_with_a_verification_waiting)
{
	char x[64];
	start(true);
	make_user("t@b.com", x);
	fail_quickly(x, BACKOFF_FREE);
	char p[200];
	snprintf(p, sizeof p, "[\"%s\", \"wrong password\"]", x);
	unsigned id = rpcc_send(&A, "user.verify_password", p);
	usleep(20000);
	double t = mono_ms();
	cr_assert_eq(tsrv_stop(&S), 0, "exit status");
	cr_assert_lt(mono_ms() - t, 5000);
	json_t *r = rpcc_recv(&A);
	cr_assert_not_null(r, "the waiting verification is answered");
	cr_assert_eq(json_integer_value(json_array_get(r, 1)), id);
	json_decref(r);
}
