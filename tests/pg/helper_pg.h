/*
 * helper_pg.h -- the PostgreSQL tests' access to the throwaway cluster that
 * the ctest fixture pg started (tests/pg/cluster.sh).
 */
#ifndef UD_TEST_HELPER_PG_H
#define UD_TEST_HELPER_PG_H

#include <libpq-fe.h>

/* The cluster's conninfo (dbname=postgres); aborts the test if the fixture
 * did not run.  Static storage. */
const char *tpg_cluster(void);
/* Create a fresh empty database and return its conninfo (malloc'd). */
char *tpg_new_db(void);
/* A blocking connection to conninfo; fails the test when it cannot. */
PGconn *tpg_connect(const char *conninfo);
/* Run sql; fails the test unless it succeeds.  Returns the first column of
 * the first row (malloc'd, "" when none). */
char *tpg_exec(PGconn *c, const char *sql);

#endif
