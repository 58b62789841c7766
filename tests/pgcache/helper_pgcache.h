/*
 * helper_pgcache.h -- what the connector's tests share: opening a cache on
 * a fresh database of the fixture's cluster, driving its feed, SQL.
 */
#ifndef UD_TEST_HELPER_PGCACHE_H
#define UD_TEST_HELPER_PGCACHE_H

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "userdb_pg.h"

/* A cache on conninfo (bound max_users, 0 none); fails the test if it does
 * not open.  Cheap Argon2 costs. */
ud_pg *tpc_open(const char *conninfo, size_t max_users);
/* Drive the feed (poll its fd, ud_pg_process) for ms milliseconds, or
 * until done(ctx) (NULL: the whole time).  True when done said so. */
bool tpc_pump(ud_pg *c, int ms, bool (*done)(ud_pg *c, void *ctx), void *ctx);
/* Run printf-formatted SQL; fails the test unless it succeeds.  Returns
 * the first column of the first row, malloc'd. */
char *tpc_sql(PGconn *q, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Insert a user by SQL as a SQL client would (version 1). */
void tpc_insert(PGconn *q, const char *id, const char *name, const char *email);
/* The name of a user the cache returns (static buffer; "" when none). */
const char *tpc_name(ud_pg *c, const char *id);
/* One test's database, cache and SQL connection. */
struct tpc {
	char *ci;
	ud_pg *c;
	PGconn *q;
};
/* A fresh database with a cache of bound max_users on it, and a SQL
 * connection (tpc_start); tpc_done checks the cache's invariants and frees it
 * all. */
struct tpc tpc_start(size_t max_users);
void tpc_done(struct tpc *t);
struct ud_pg_stats tpc_stats(ud_pg *c);
/* ud_pg_check, failing the test when an invariant is broken. */
void tpc_check(ud_pg *c);
/* For tpc_pump: does user want->id have the name want->name ("" gone)? */
struct tpc_want {
	const char *id, *name;
};
bool tpc_has_name(ud_pg *c, void *want);
/* Monotonic milliseconds (fractional). */
double tpc_now_ms(void);

#endif
