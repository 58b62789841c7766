/*
 * test_pgcache_feed.c -- the connector's coherence on a real PostgreSQL:
 * changes by a second process's cache and by a userdb-server node reach
 * the cache (staleness printed), a killed feed empties and refills it, a
 * PostgreSQL that is down keeps cached lookups going while misses and
 * writes fail with unavailable, and the bound holds under concurrent
 * invalidations.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helper_pg.h"
#include "helper_pgcache.h"

static bool feed_restarted(ud_pg *c, void *ctx)
{
	return tpc_stats(c).feed_restarts >= *(uint64_t *)ctx &&
	       tpc_stats(c).feed_up;
}

static bool feed_down(ud_pg *c, void *ctx)
{
	return !tpc_stats(c).feed_up;
}

Test(pgcache_feed, a_second_process_cache_change_reaches_the_cache)
{
	struct tpc t = tpc_start(100);
	ud_pg *c = t.c;
	PGconn *q = t.q;
	struct tpc_want w = {"usr_two", "From The Other Process"};
	double t0;
	int status;
	pid_t pid;

	tpc_insert(q, "usr_two", "Two", "two@x.io");
	cr_assert_str_eq(tpc_name(c, "usr_two"), "Two");
	pid = fork();
	if (pid == 0) {
		struct ud_pg_options o = ud_pg_options_default;
		struct ud_fields f = {.set = UD_F_NAME,
				      .name = w.name,
				      .name_len = strlen(w.name)};
		ud_pg *other;
		int rc;
		o.conninfo = t.ci;
		if (ud_pg_open(&o, &other, NULL))
			_exit(2);
		rc = ud_pg_update(other, "usr_two", 7, &f, 0, NULL, NULL);
		ud_pg_close(other);
		_exit(rc ? 1 : 0);
	}
	cr_assert(pid > 0);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	t0 = tpc_now_ms();
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "the other process's write failed (%d)", status);
	cr_assert(tpc_pump(c, 5000, tpc_has_name, &w));
	printf("pgcache: another process's cache write -> this cache: %.1f ms "
	       "after that process exited\n",
	       tpc_now_ms() - t0);
	tpc_done(&t);
}

/* ---- a userdb-server node on the same database ---------------------------
 */

struct node {
	pid_t pid;
	int http_port;
	char dir[64];
	FILE *out; /* its stdout, open until it stops */
};

static void node_start(struct node *n, const char *ci)
{
	int out[2];
	char line[512], *p;

	snprintf(n->dir, sizeof n->dir, "/tmp/pgcache-node-%d", (int)getpid());
	cr_assert_eq(pipe(out), 0);
	n->pid = fork();
	if (n->pid == 0) {
		dup2(out[1], 1);
		close(out[0]);
		execl(getenv("USERDB_SERVER"), "userdb-server", "--postgres",
		      ci, "--data-dir", n->dir, "--port", "0", "--http-port",
		      "0", "--api-key", "pgcache-test-key", "--argon2-ops", "1",
		      "--argon2-mem", "8192", (char *)NULL);
		_exit(127);
	}
	close(out[1]);
	n->out = fdopen(out[0], "r");
	n->http_port = 0;
	while (fgets(line, sizeof line, n->out))
		if (strstr(line, "ready") && (p = strstr(line, "http="))) {
			n->http_port = atoi(strrchr(p, ':') + 1);
			break;
		}
	cr_assert(n->http_port > 0, "userdb-server did not print ready");
}

static void node_stop(struct node *n)
{
	char cmd[128];

	kill(n->pid, SIGTERM);
	waitpid(n->pid, NULL, 0);
	fclose(n->out);
	snprintf(cmd, sizeof cmd, "rm -rf %s", n->dir);
	cr_assert_eq(system(cmd), 0);
}

/* One HTTP request to the node; the status. */
static int node_http(const struct node *n, const char *method, const char *path,
		     const char *body)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)n->http_port)};
	char req[1024], resp[4096];
	int fd = socket(AF_INET, SOCK_STREAM, 0), len, got = 0, r;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
	len = snprintf(req, sizeof req,
		       "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
		       "Authorization: Bearer pgcache-test-key\r\n"
		       "Content-Type: application/json\r\n"
		       "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
		       method, path, strlen(body), body);
	cr_assert_eq(write(fd, req, (size_t)len), len);
	while ((r = (int)read(fd, resp + got, sizeof resp - 1 - (size_t)got)) >
	       0)
		got += r;
	resp[got] = 0;
	close(fd);
	cr_assert(got > 12, "no answer");
	return atoi(resp + 9);
}

Test(pgcache_feed, a_userdb_node_change_reaches_the_cache)
{
	struct tpc t = tpc_start(100);
	ud_pg *c = t.c;
	PGconn *q = t.q;
	struct tpc_want w = {"usr_node", "Via The Node"};
	struct node n;
	double t0;

	signal(SIGPIPE, SIG_IGN);
	tpc_insert(q, "usr_node", "Node", "node@x.io");
	cr_assert_str_eq(tpc_name(c, "usr_node"), "Node");
	node_start(&n, t.ci);
	cr_assert_eq(node_http(&n, "PATCH", "/v1/users/usr_node",
			       "{\"name\": \"Via The Node\"}"),
		     200);
	t0 = tpc_now_ms();
	cr_assert(tpc_pump(c, 5000, tpc_has_name, &w));
	printf("pgcache: a userdb node's PATCH (after its 200) -> this cache: "
	       "%.1f ms\n",
	       tpc_now_ms() - t0);
	/* and the node's delete evicts */
	cr_assert_eq(node_http(&n, "DELETE", "/v1/users/usr_node", ""), 200);
	w.name = "";
	cr_assert(tpc_pump(c, 5000, tpc_has_name, &w));
	node_stop(&n);
	tpc_done(&t);
}

Test(pgcache_feed, a_killed_feed_empties_the_cache_and_it_refills)
{
	struct tpc t = tpc_start(100);
	ud_pg *c = t.c;
	PGconn *q = t.q;
	uint64_t one = 1;
	char *s;

	tpc_insert(q, "usr_k", "Kept", "k@x.io");
	tpc_insert(q, "usr_l", "Other", "l@x.io");
	cr_assert_str_eq(tpc_name(c, "usr_k"), "Kept");
	cr_assert_str_eq(tpc_name(c, "usr_l"), "Other");
	cr_assert_eq(tpc_stats(c).users, 2);
	s = tpc_sql(q, "SELECT count(pg_terminate_backend(active_pid)) FROM"
		       " pg_replication_slots WHERE slot_name LIKE 'userdb_c%%'"
		       " AND database = current_database()");
	cr_assert_str_eq(s, "1", "one feed to kill");
	free(s);
	/* a change the dead feed will never bring */
	free(tpc_sql(q, "UPDATE userdb.users SET name = 'Fresh' WHERE id ="
			" 'usr_k'"));
	cr_assert(tpc_pump(c, 10000, feed_restarted, &one),
		  "the feed did not come back: %s", ud_pg_error(c));
	cr_assert_eq(tpc_stats(c).users, 0, "the cache was not emptied");
	cr_assert(tpc_stats(c).flushes >= 1);
	cr_assert(!tpc_stats(c).pg_down);
	cr_assert_str_eq(tpc_name(c, "usr_k"), "Fresh", "a stale read");
	cr_assert_eq(tpc_stats(c).users, 1, "refilled on demand");
	/* the new feed works */
	free(tpc_sql(q, "UPDATE userdb.users SET name = 'Fresher' WHERE id ="
			" 'usr_k'"));
	struct tpc_want w = {"usr_k", "Fresher"};
	cr_assert(tpc_pump(c, 5000, tpc_has_name, &w));
	tpc_done(&t);
}

/* ---- PostgreSQL down ------------------------------------------------------
 */

/* pg_ctl stop|start, with c's feed driven meanwhile (a clean stop waits
 * for every walsender's client to confirm what it was sent). */
static void pg_ctl(ud_pg *c, const char *dir, const char *what)
{
	char cmd[512];
	int status;
	pid_t pid;

	snprintf(cmd, sizeof cmd,
		 "%s /usr/lib/postgresql/15/bin/pg_ctl -D %s/data -l "
		 "%s/server.log -m fast -w %s >/dev/null",
		 getuid() == 0 ? "runuser -u postgres --" : "", dir, dir, what);
	pid = fork();
	if (pid == 0)
		_exit(system(cmd) == 0 ? 0 : 1);
	while (waitpid(pid, &status, WNOHANG) == 0)
		tpc_pump(c, 5, NULL, NULL);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s", cmd);
}

static char *private_cluster(const char *dir)
{
	char cmd[512], buf[512];
	FILE *f;

	snprintf(cmd, sizeof cmd, "bash %s/tests/pg/cluster.sh start %s",
		 getenv("USERDB_SOURCE_DIR"), dir);
	f = popen(cmd, "r");
	cr_assert(f && fgets(buf, sizeof buf, f), "cluster.sh start");
	pclose(f);
	buf[strcspn(buf, "\n")] = 0;
	return strdup(buf);
}

Test(pgcache_feed, postgres_down_cached_reads_go_on_misses_and_writes_fail)
{
	char dir[64], cmd[128];
	struct ud_error e = {0};
	struct ud_fields f = {.set = UD_F_NAME | UD_F_EMAIL,
			      .name = "Late",
			      .name_len = 4,
			      .email = "late@x.io",
			      .email_len = 9};
	uint64_t one = 1;
	char *ci;
	ud_pg *c;
	PGconn *q;

	snprintf(dir, sizeof dir, "/tmp/pgcache-down-%d", (int)getpid());
	ci = private_cluster(dir);
	c = tpc_open(ci, 100);
	q = tpg_connect(ci);
	tpc_insert(q, "usr_d", "Durable", "d@x.io");
	PQfinish(q);
	cr_assert_str_eq(tpc_name(c, "usr_d"), "Durable");
	pg_ctl(c, dir, "stop");
	cr_assert(tpc_pump(c, 10000, feed_down, NULL));
	tpc_pump(c, 300, NULL, NULL);
	cr_assert(tpc_stats(c).pg_down);
	cr_assert_str_eq(tpc_name(c, "usr_d"), "Durable",
			 "a cached lookup while PostgreSQL is down");
	cr_assert_null(ud_pg_get(c, "usr_absent", 10, &e));
	cr_assert_eq(e.code, UD_EUNAVAILABLE, "a miss: %s", e.message);
	cr_assert_eq(ud_pg_create(c, &f, NULL, &e), UD_EUNAVAILABLE);
	cr_assert_eq(ud_pg_update(c, "usr_d", 5, &f, 0, NULL, &e),
		     UD_EUNAVAILABLE);
	pg_ctl(c, dir, "start");
	cr_assert(tpc_pump(c, 15000, feed_restarted, &one),
		  "the feed did not recover: %s", ud_pg_error(c));
	cr_assert(!tpc_stats(c).pg_down);
	cr_assert_str_eq(tpc_name(c, "usr_d"), "Durable");
	cr_assert_eq(ud_pg_create(c, &f, NULL, &e), 0, "writes recover: %s",
		     e.message);
	cr_assert_null(ud_pg_get(c, "usr_absent", 10, &e));
	cr_assert_eq(e.code, UD_ENOTFOUND);
	tpc_check(c);
	ud_pg_close(c);
	snprintf(cmd, sizeof cmd, "bash %s/tests/pg/cluster.sh stop %s",
		 getenv("USERDB_SOURCE_DIR"), dir);
	cr_assert_eq(system(cmd), 0);
	free(ci);
}

/* ---- the bound under concurrent invalidations ------------------------------
 */

#define N_USERS 300
#define BOUND	50

Test(pgcache_feed, eviction_under_the_bound_with_concurrent_invalidations)
{
	struct tpc t = tpc_start(BOUND);
	ud_pg *c = t.c;
	PGconn *q = t.q;
	char id[32], *s;
	int status;
	pid_t pid;

	free(tpc_sql(q,
		     "INSERT INTO userdb.users (id, name, email,"
		     " email_folded) SELECT 'usr_e' || i, 'E' || i, 'e' || i"
		     " || '@x.io', 'e' || i || '@x.io' FROM"
		     " generate_series(1, %d) i",
		     N_USERS));
	pid = fork();
	if (pid == 0) { /* a SQL client updating random users meanwhile */
		PGconn *w = PQconnectdb(t.ci);
		char sql[160];
		srand(7);
		for (int i = 0; i < 600 && PQstatus(w) == CONNECTION_OK; i++) {
			snprintf(sql, sizeof sql,
				 "UPDATE userdb.users SET name = 'W%d' WHERE "
				 "id = 'usr_e%d'",
				 i, 1 + rand() % N_USERS);
			PQclear(PQexec(w, sql));
		}
		PQfinish(w);
		_exit(0);
	}
	srand(11);
	while (waitpid(pid, &status, WNOHANG) == 0) {
		for (int i = 0; i < 50; i++) {
			snprintf(id, sizeof id, "usr_e%d",
				 1 + rand() % N_USERS);
			cr_assert(ud_pg_get(c, id, strlen(id), NULL), "%s", id);
			cr_assert(tpc_stats(c).users <= BOUND);
		}
		tpc_pump(c, 2, NULL, NULL);
		tpc_check(c);
	}
	tpc_pump(c, 500, NULL, NULL);
	cr_assert(tpc_stats(c).evictions > 0);
	cr_assert(tpc_stats(c).feed_applied > 0, "no invalidation met a cached "
						 "user");
	/* every cached user is PostgreSQL's current row */
	for (int i = 1; i <= N_USERS; i++) {
		const ud_user *u;
		struct ud_user_view v;
		snprintf(id, sizeof id, "usr_e%d", i);
		u = ud_pg_get(c, id, strlen(id), NULL);
		cr_assert(u);
		ud_user_view(u, &v);
		s = tpc_sql(q,
			    "SELECT name || '/' || version FROM userdb.users"
			    " WHERE id = '%s'",
			    id);
		cr_assert(strncmp(s, v.name, v.name_len) == 0 &&
			      s[v.name_len] == '/' &&
			      strtoull(s + v.name_len + 1, NULL, 10) == v.etag,
			  "%s: cache %.*s/%llu, postgres %s", id,
			  (int)v.name_len, v.name, (unsigned long long)v.etag,
			  s);
		free(s);
	}
	tpc_done(&t);
}

static bool locked_has_name(ud_pg *c, const char *id, const char *name)
{
	bool same;

	ud_pg_lock(c);
	same = strcmp(tpc_name(c, id), name) == 0;
	ud_pg_unlock(c);
	return same;
}

Test(pgcache_feed, the_helper_thread_drives_the_feed)
{
	struct tpc t = tpc_start(100);
	double end;

	tpc_insert(t.q, "usr_th", "Threaded", "th@x.io");
	cr_assert(locked_has_name(t.c, "usr_th", "Threaded"));
	cr_assert_eq(ud_pg_thread_start(t.c), 0);
	cr_assert_eq(ud_pg_thread_start(t.c), UD_EINVAL, "one thread only");
	free(tpc_sql(t.q, "UPDATE userdb.users SET name = 'By SQL' WHERE id ="
			  " 'usr_th'"));
	/* nobody here calls ud_pg_process: the thread applies the change */
	for (end = tpc_now_ms() + 5000; tpc_now_ms() < end;)
		if (locked_has_name(t.c, "usr_th", "By SQL"))
			break;
	cr_assert(locked_has_name(t.c, "usr_th", "By SQL"));
	ud_pg_lock(t.c);
	tpc_check(t.c);
	ud_pg_unlock(t.c);
	ud_pg_close(t.c); /* stops and joins the thread */
	PQfinish(t.q);
	free(t.ci);
}

Test(pgcache_feed, two_caches_racing_for_one_email_one_gets_409)
{
	struct tpc t = tpc_start(100);
	struct ud_fields f = {.set = UD_F_NAME | UD_F_EMAIL,
			      .name = "Racer",
			      .name_len = 5,
			      .email = "race@x.io",
			      .email_len = 9};
	struct ud_error e = {0};
	int ok = 0, dup = 0, status[4];
	pid_t pid[4];
	char *s;

	for (int i = 0; i < 4; i++) {
		pid[i] = fork();
		if (pid[i] == 0) { /* each its own process and cache */
			struct ud_pg_options o = ud_pg_options_default;
			ud_pg *other;
			int rc;
			o.conninfo = t.ci;
			if (ud_pg_open(&o, &other, NULL))
				_exit(3);
			rc = ud_pg_create(other, &f, NULL, &e);
			ud_pg_close(other);
			_exit(rc == 0 ? 0 : rc == UD_EDUPEMAIL ? 1 : 2);
		}
	}
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(waitpid(pid[i], &status[i], 0), pid[i]);
		cr_assert(WIFEXITED(status[i]));
		ok += WEXITSTATUS(status[i]) == 0;
		dup += WEXITSTATUS(status[i]) == 1;
	}
	cr_assert(ok == 1 && dup == 3, "%d created, %d got 409", ok, dup);
	s = tpc_sql(t.q, "SELECT count(*) FROM userdb.users");
	cr_assert_str_eq(s, "1");
	free(s);
	/* and this cache, which never saw it, gets 409 from PostgreSQL */
	cr_assert_eq(ud_pg_create(t.c, &f, NULL, &e), UD_EDUPEMAIL);
	tpc_done(&t);
}
