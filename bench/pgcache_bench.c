/*
 * pgcache_bench.c -- the embedded PostgreSQL connector (userdb_pg.h)
 * measured against libpq on the same machine (a benchmark, not a test):
 *
 *   pgcache-bench CONNINFO [USERS]      (bench/pgcache.sh starts a cluster)
 *
 *  1. a cached lookup by id (ud_pg_get, a hit) vs a prepared
 *     SELECT ... WHERE id = $1 through libpq (PQexecPrepared), per lookup;
 *  2. a miss (the cache loads the row: the same SELECT, then the engine
 *     keeps it) vs that plain SELECT;
 *  3. staleness: from a SQL UPDATE's commit (PQexec returned) to the cache
 *     serving the new name, p50 / p99 / max over 300 updates.
 * Goals (issue 15): 1. >= 100x, 2. <= 1.2x, 3. p99 <= 50 ms.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "pg_row.h"
#include "userdb_pg.h"

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void must(PGconn *q, const char *sql)
{
	PGresult *r = PQexec(q, sql);

	if (PQresultStatus(r) != PGRES_COMMAND_OK &&
	    PQresultStatus(r) != PGRES_TUPLES_OK) {
		fprintf(stderr, "pgcache-bench: %s: %s", sql,
			PQerrorMessage(q));
		exit(1);
	}
	PQclear(r);
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Best of 3 rounds: mean us per op of fn over n ops. */
static double rounds(double (*fn)(void *, int), void *ctx, int n)
{
	double best = 1e300;

	for (int r = 0; r < 3; r++) {
		double t = fn(ctx, n);
		if (t < best)
			best = t;
	}
	return best;
}

struct ctx {
	ud_pg *c;
	PGconn *q;
	int users, next_miss;
	const char *conninfo;
};

static void id_of(int i, char *out)
{
	snprintf(out, 32, "usr_b%d", i);
}

static double hits(void *p, int n)
{
	struct ctx *x = p;
	char id[32];
	double t0 = now_us();
	size_t sum = 0;

	for (int i = 0; i < n; i++) {
		id_of(i % 1000, id);
		sum += ud_pg_get(x->c, id, strlen(id), NULL) != NULL;
	}
	if (sum != (size_t)n)
		exit(1);
	return (now_us() - t0) / n;
}

static double selects(void *p, int n)
{
	struct ctx *x = p;
	char id[32];
	const char *v[1] = {id};
	double t0 = now_us();

	for (int i = 0; i < n; i++) {
		PGresult *r;
		id_of(i % x->users, id);
		r = PQexecPrepared(x->q, "get", 1, v, NULL, NULL, 0);
		if (PQntuples(r) != 1)
			exit(1);
		PQclear(r);
	}
	return (now_us() - t0) / n;
}

static double misses(void *p, int n)
{
	struct ctx *x = p;
	char id[32];
	double t0 = now_us();

	for (int i = 0; i < n; i++) {
		id_of(1000 + x->next_miss++ % (x->users - 1000), id);
		if (!ud_pg_get(x->c, id, strlen(id), NULL))
			exit(1);
	}
	return (now_us() - t0) / n;
}

static void pump_until(ud_pg *c, const char *id, const char *name)
{
	for (;;) {
		const ud_user *u = ud_pg_get(c, id, strlen(id), NULL);
		struct ud_user_view v;
		struct pollfd pf = {.fd = ud_pg_fd(c), .events = POLLIN};
		if (u) {
			ud_user_view(u, &v);
			if (v.name_len == strlen(name) &&
			    !memcmp(v.name, name, v.name_len))
				return;
		}
		poll(&pf, pf.fd >= 0 ? 1 : 0, 1);
		ud_pg_process(c);
	}
}

static void staleness(struct ctx *x, double *p50, double *p99, double *max)
{
	enum { N = 300 };
	double lag[N];
	char sql[160], name[32];

	for (int i = 0; i < N; i++) {
		double t0;
		snprintf(name, sizeof name, "S%d", i);
		snprintf(sql, sizeof sql,
			 "UPDATE userdb.users SET name = '%s' WHERE id = "
			 "'usr_b7'",
			 name);
		must(x->q, sql);
		t0 = now_us();
		pump_until(x->c, "usr_b7", name);
		lag[i] = (now_us() - t0) / 1e3;
	}
	qsort(lag, N, sizeof lag[0], cmp);
	*p50 = lag[N / 2];
	*p99 = lag[N * 99 / 100];
	*max = lag[N - 1];
}

int main(int argc, char **argv)
{
	struct ud_pg_options o = ud_pg_options_default;
	struct ud_error e = {0};
	struct ctx x = {.users = argc > 2 ? atoi(argv[2]) : 20000};
	double hit, sel, miss, p50, p99, max;
	char sql[512];
	PGresult *r;

	if (argc < 2 || x.users < 2000) {
		fprintf(stderr,
			"usage: pgcache-bench CONNINFO [USERS>=2000]\n");
		return 2;
	}
	o.conninfo = x.conninfo = argv[1];
	if (ud_pg_open(&o, &x.c, &e)) {
		fprintf(stderr, "pgcache-bench: %s\n", e.message);
		return 1;
	}
	x.q = PQconnectdb(argv[1]);
	must(x.q, "DELETE FROM userdb.users WHERE id LIKE 'usr_b%'");
	snprintf(sql, sizeof sql,
		 "INSERT INTO userdb.users (id, name, email, email_folded)"
		 " SELECT 'usr_b' || i, 'B' || i, 'b' || i || '@x.io',"
		 " 'b' || i || '@x.io' FROM generate_series(0, %d) i",
		 x.users - 1);
	must(x.q, sql);
	must(x.q, "VACUUM ANALYZE userdb.users");
	r = PQprepare(x.q, "get",
		      "SELECT " PG_USERS_COLS
		      " FROM userdb.users WHERE id = $1",
		      1, NULL);
	PQclear(r);
	/* let the feed bring the inserts first: misses must not pay for it */
	for (double end = now_us() + 60e6; now_us() < end;) {
		struct ud_pg_stats st;
		struct pollfd pf = {.fd = ud_pg_fd(x.c), .events = POLLIN};
		ud_pg_stats(x.c, &st);
		if (st.feed_changes >= (uint64_t)x.users)
			break;
		poll(&pf, pf.fd >= 0 ? 1 : 0, 10);
		ud_pg_process(x.c);
	}
	hits(&x, 1000); /* load the first 1000 */
	hit = rounds(hits, &x, 2000000);
	sel = rounds(selects, &x, 5000);
	miss = rounds(misses, &x, (x.users - 1000) / 3 - 1);
	staleness(&x, &p50, &p99, &max);
	printf("# pgcache-bench %s %d  (one process, loopback/Unix socket;"
	       " a shared, busy 2-core machine)\n",
	       "CONNINFO", x.users);
	printf("%-44s %12s %12s %8s %s\n", "what", "connector", "libpq",
	       "ratio", "goal");
	printf("%-44s %9.3f us %9.1f us %7.0fx %s\n",
	       "lookup by id: cached vs prepared SELECT", hit, sel, sel / hit,
	       ">= 100x");
	printf("%-44s %9.1f us %9.1f us %7.2fx %s\n",
	       "miss (load + keep) vs prepared SELECT", miss, sel, miss / sel,
	       "<= 1.2x");
	printf("%-44s p50 %.2f ms, p99 %.2f ms, max %.2f ms (goal p99 <= 50 ms)"
	       "\n",
	       "staleness: SQL UPDATE commit -> cache", p50, p99, max);
	struct ud_pg_stats st;
	ud_pg_stats(x.c, &st);
	printf("# connector: %llu hits, %llu loads kept, %llu not kept, %llu "
	       "queries, %llu feed changes\n",
	       (unsigned long long)st.hits, (unsigned long long)st.loads,
	       (unsigned long long)st.loads_not_kept,
	       (unsigned long long)st.queries,
	       (unsigned long long)st.feed_changes);
	PQfinish(x.q);
	ud_pg_close(x.c);
	return 0;
}
