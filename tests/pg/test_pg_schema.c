/*
 * test_pg_schema.c -- migrations of schema userdb against a real
 * PostgreSQL 15: from an empty database, from every earlier version,
 * twice, concurrently, and a newer database refused.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "helper_pg.h"
#include "pg.h"

/* Everything the migrations make, as text, to compare two databases. */
static char *schema_dump(PGconn *c)
{
	return tpg_exec(
	    c,
	    "SELECT string_agg(x, E'\\n' ORDER BY x) FROM ("
	    " SELECT table_name || '.' || column_name || ' ' || data_type ||"
	    "  ' ' || is_nullable || ' ' || coalesce(column_default, '') x"
	    " FROM information_schema.columns WHERE table_schema = 'userdb'"
	    " UNION ALL SELECT indexdef FROM pg_indexes"
	    "  WHERE schemaname = 'userdb'"
	    " UNION ALL SELECT 'trigger ' || tgname FROM pg_trigger t"
	    "  JOIN pg_class r ON r.oid = t.tgrelid"
	    "  JOIN pg_namespace n ON n.oid = r.relnamespace"
	    "  WHERE n.nspname = 'userdb' AND NOT tgisinternal"
	    " UNION ALL SELECT 'pub ' || pubname || ' ' || schemaname || '.' ||"
	    "  tablename FROM pg_publication_tables"
	    " UNION ALL SELECT 'migration ' || version FROM userdb.migrations"
	    ") s");
}

static int version_of(PGconn *c)
{
	struct ud_error err;
	int v = -1;

	cr_assert_eq(pg_schema_version(c, &v, &err), 0, "%s", err.message);
	return v;
}

Test(pg_schema, from_empty_to_latest_and_again)
{
	char *ci = tpg_new_db();
	PGconn *c = tpg_connect(ci);
	struct ud_error err;
	char *a, *b;

	cr_assert_eq(version_of(c), 0);
	cr_assert_eq(pg_migrate(c, PG_SCHEMA_VERSION, &err), 0, "%s",
		     err.message);
	cr_assert_eq(version_of(c), PG_SCHEMA_VERSION);
	a = schema_dump(c);
	cr_assert(strstr(a, "users_email_folded_key"), "%s", a);
	cr_assert(strstr(a, "pub userdb_pub userdb.users"), "%s", a);
	cr_assert(strstr(a, "pub userdb_pub userdb.events"), "%s", a);
	cr_assert_eq(pg_migrate(c, PG_SCHEMA_VERSION, &err), 0, "%s",
		     err.message);
	b = schema_dump(c);
	cr_assert_str_eq(a, b);
	free(a), free(b), free(ci);
	PQfinish(c);
}

Test(pg_schema, every_earlier_version_reaches_the_same_schema)
{
	char *ref_ci = tpg_new_db();
	PGconn *ref = tpg_connect(ref_ci);
	struct ud_error err;
	char *want;

	cr_assert_eq(pg_migrate(ref, PG_SCHEMA_VERSION, &err), 0);
	want = schema_dump(ref);
	for (int k = 1; k < PG_SCHEMA_VERSION; k++) {
		char *ci = tpg_new_db(), *got;
		PGconn *c = tpg_connect(ci);

		cr_assert_eq(pg_migrate(c, k, &err), 0, "%s", err.message);
		cr_assert_eq(version_of(c), k);
		cr_assert_eq(pg_migrate(c, PG_SCHEMA_VERSION, &err), 0,
			     "from %d: %s", k, err.message);
		got = schema_dump(c);
		cr_assert_str_eq(got, want, "from version %d", k);
		free(got), free(ci);
		PQfinish(c);
	}
	free(want), free(ref_ci);
	PQfinish(ref);
}

Test(pg_schema, a_newer_database_is_refused)
{
	char *ci = tpg_new_db();
	PGconn *c = tpg_connect(ci);
	struct ud_error err;

	cr_assert_eq(pg_migrate(c, PG_SCHEMA_VERSION, &err), 0);
	free(tpg_exec(c, "INSERT INTO userdb.migrations VALUES (99)"));
	cr_assert_eq(pg_migrate(c, PG_SCHEMA_VERSION, &err), UD_EINVAL);
	cr_assert(strstr(err.message, "version 99"), "%s", err.message);
	cr_assert_eq(pg_migrate(c, 0, &err), UD_EINVAL);
	free(ci);
	PQfinish(c);
}

static void *migrate_thread(void *ci)
{
	struct ud_error err;
	PGconn *c = pg_connect(ci, &err);
	intptr_t rc = c ? pg_migrate(c, PG_SCHEMA_VERSION, &err) : -100;

	PQfinish(c);
	return (void *)rc;
}

Test(pg_schema, nodes_migrating_at_once_both_succeed)
{
	char *ci = tpg_new_db();
	pthread_t t[4];
	void *rc;

	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, migrate_thread, ci);
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], &rc);
		cr_assert_eq((intptr_t)rc, 0, "thread %d", i);
	}
	PGconn *c = tpg_connect(ci);
	cr_assert_eq(version_of(c), PG_SCHEMA_VERSION);
	char *n = tpg_exec(c, "SELECT count(*) FROM userdb.migrations");
	cr_assert_eq(atoi(n), PG_SCHEMA_VERSION);
	free(n), free(ci);
	PQfinish(c);
}

Test(pg_schema, sql_updates_refold_email_and_move_the_version)
{
	char *ci = tpg_new_db();
	PGconn *c = tpg_connect(ci);
	struct ud_error err;
	PGresult *r;
	char *v;

	cr_assert_eq(pg_migrate(c, PG_SCHEMA_VERSION, &err), 0);
	free(tpg_exec(c, "INSERT INTO userdb.users (id, name, email,"
			 " email_folded) VALUES ('usr_a', 'A', 'a@x.io',"
			 " 'a@x.io'), ('usr_b', 'B', 'b@x.io', 'b@x.io')"));
	free(tpg_exec(c, "UPDATE userdb.users SET name = 'AA'"
			 " WHERE id = 'usr_a'"));
	v = tpg_exec(c, "SELECT version FROM userdb.users WHERE id = 'usr_a'");
	cr_assert_str_eq(v, "2");
	free(v);
	/* another user's email, in other case: the unique index refuses */
	r = PQexec(c, "UPDATE userdb.users SET email = 'A@X.IO'"
		      " WHERE id = 'usr_b'");
	cr_assert_eq(PQresultStatus(r), PGRES_FATAL_ERROR);
	cr_assert_str_eq(PQresultErrorField(r, PG_DIAG_SQLSTATE), "23505");
	PQclear(r);
	free(ci);
	PQfinish(c);
}

Test(pg_schema, a_change_no_client_sees_keeps_the_version)
{
	char *ci = tpg_new_db();
	PGconn *c = tpg_connect(ci);
	struct ud_error err;
	char *v;

	cr_assert_eq(pg_migrate(c, PG_SCHEMA_VERSION, &err), 0);
	free(tpg_exec(c, "INSERT INTO userdb.users (id, name, email,"
			 " email_folded) VALUES ('usr_a', 'A', 'a@x.io',"
			 " 'a@x.io')"));
	free(tpg_exec(c, "UPDATE userdb.users SET failed_verifies = 3"));
	v = tpg_exec(c, "SELECT version FROM userdb.users");
	cr_assert_str_eq(v, "1");
	free(v);
	free(tpg_exec(c, "UPDATE userdb.users SET status = 'inactive'"));
	v = tpg_exec(c, "SELECT version FROM userdb.users");
	cr_assert_str_eq(v, "2");
	free(v), free(ci);
	PQfinish(c);
}

Test(pg_schema, a_dropped_schema_comes_back_with_its_publication)
{
	char *ci = tpg_new_db();
	PGconn *c = tpg_connect(ci);
	struct ud_error err;
	char *n;

	cr_assert_eq(pg_migrate(c, PG_SCHEMA_VERSION, &err), 0);
	free(tpg_exec(c, "DROP SCHEMA userdb CASCADE"));
	cr_assert_eq(pg_migrate(c, PG_SCHEMA_VERSION, &err), 0, "%s",
		     err.message);
	n = tpg_exec(c, "SELECT count(*) FROM pg_publication_tables"
			" WHERE pubname = 'userdb_pub'");
	cr_assert_str_eq(n, "2");
	free(n), free(ci);
	PQfinish(c);
}
