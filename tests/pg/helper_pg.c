/*
 * helper_pg.c -- see helper_pg.h.
 */
#include "helper_pg.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *tpg_cluster(void)
{
	static char buf[512];
	const char *path = getenv("USERDB_PG_CONNINFO_FILE");
	FILE *f;

	if (buf[0])
		return buf;
	cr_assert(path, "USERDB_PG_CONNINFO_FILE unset: run through ctest");
	f = fopen(path, "r");
	cr_assert(f, "no cluster at %s (fixture pg_cluster_start)", path);
	cr_assert(fgets(buf, sizeof buf, f));
	fclose(f);
	buf[strcspn(buf, "\n")] = 0;
	return buf;
}

PGconn *tpg_connect(const char *conninfo)
{
	PGconn *c = PQconnectdb(conninfo);

	cr_assert(PQstatus(c) == CONNECTION_OK, "connect %s: %s", conninfo,
		  PQerrorMessage(c));
	PQclear(PQexec(c, "SET client_min_messages = warning"));
	return c;
}

char *tpg_exec(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(r);
	char *out;

	cr_assert(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK, "%s: %s",
		  sql, PQerrorMessage(c));
	out =
	    strdup(st == PGRES_TUPLES_OK && PQntuples(r) > 0 && PQnfields(r) > 0
		       ? PQgetvalue(r, 0, 0)
		       : "");
	PQclear(r);
	return out;
}

char *tpg_new_db(void)
{
	static unsigned n;
	char name[64], sql[128], *out;
	PGconn *c = tpg_connect(tpg_cluster());

	snprintf(name, sizeof name, "t_%ld_%u_%u", (long)getpid(), n++,
		 (unsigned)rand());
	snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
	free(tpg_exec(c, sql));
	PQfinish(c);
	out = malloc(strlen(tpg_cluster()) + 64);
	cr_assert(out);
	/* a later dbname= overrides the first */
	sprintf(out, "%s dbname=%s", tpg_cluster(), name);
	return out;
}
