/*
 * helper_pgcache.c -- see helper_pgcache.h.
 */
#include "helper_pgcache.h"

#include <criterion/criterion.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "helper_pg.h"

double tpc_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

ud_pg *tpc_open(const char *conninfo, size_t max_users)
{
	struct ud_pg_options o = ud_pg_options_default;
	struct ud_error e = {0};
	ud_pg *c = NULL;

	o.conninfo = conninfo;
	o.max_users = max_users;
	o.pw_opslimit = 1;
	o.pw_memlimit = 8192;
	cr_assert_eq(ud_pg_open(&o, &c, &e), 0, "ud_pg_open: %s", e.message);
	return c;
}

bool tpc_pump(ud_pg *c, int ms, bool (*done)(ud_pg *c, void *ctx), void *ctx)
{
	double end = tpc_now_ms() + ms;

	for (;;) {
		struct pollfd p = {.fd = ud_pg_fd(c), .events = POLLIN};
		if (done && done(c, ctx))
			return true;
		if (tpc_now_ms() >= end)
			return false;
		poll(&p, p.fd >= 0 ? 1 : 0, 5);
		ud_pg_process(c);
	}
}

char *tpc_sql(PGconn *q, const char *fmt, ...)
{
	char sql[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(sql, sizeof sql, fmt, ap);
	va_end(ap);
	return tpg_exec(q, sql);
}

void tpc_insert(PGconn *q, const char *id, const char *name, const char *email)
{
	free(tpc_sql(q,
		     "INSERT INTO userdb.users (id, name, email, email_folded)"
		     " VALUES ('%s', '%s', '%s', lower('%s'))",
		     id, name, email, email));
}

const char *tpc_name(ud_pg *c, const char *id)
{
	static char buf[600];
	const ud_user *u = ud_pg_get(c, id, strlen(id), NULL);
	struct ud_user_view v;

	buf[0] = 0;
	if (u) {
		ud_user_view(u, &v);
		snprintf(buf, sizeof buf, "%.*s", (int)v.name_len, v.name);
	}
	return buf;
}

struct tpc tpc_start(size_t max_users)
{
	struct tpc t = {.ci = tpg_new_db()};

	t.c = tpc_open(t.ci, max_users);
	t.q = tpg_connect(t.ci);
	return t;
}

void tpc_done(struct tpc *t)
{
	tpc_check(t->c);
	ud_pg_close(t->c);
	PQfinish(t->q);
	free(t->ci);
}

struct ud_pg_stats tpc_stats(ud_pg *c)
{
	struct ud_pg_stats s;

	ud_pg_stats(c, &s);
	return s;
}

void tpc_check(ud_pg *c)
{
	struct ud_error e = {0};

	cr_assert_eq(ud_pg_check(c, &e), 0, "%s", e.message);
}

bool tpc_has_name(ud_pg *c, void *want)
{
	const struct tpc_want *w = want;

	return strcmp(tpc_name(c, w->id), w->name) == 0;
}
