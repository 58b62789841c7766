/*
 * test_pg_load.c -- the start-up load from a real PostgreSQL 15: users and
 * their kept activity come back field for field; rows the engine cannot
 * accept are skipped, counted and named, never loaded.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "helper_pg.h"
#include "journal.h"
#include "pg.h"

static PGconn *migrated(char **ci)
{
	struct ud_error err;
	PGconn *c;

	*ci = tpg_new_db();
	c = tpg_connect(*ci);
	cr_assert_eq(pg_migrate(c, PG_SCHEMA_VERSION, &err), 0, "%s",
		     err.message);
	return c;
}

static ud_db *empty_db(void)
{
	struct ud_error err;
	ud_db *db = ud_db_new(&ud_options_default, &err);

	cr_assert(db, "%s", err.message);
	return db;
}

static char *user_json(ud_db *db, const char *id)
{
	const ud_user *u = ud_user_get(db, id, strlen(id));
	struct ud_user_view v;
	struct ud_buf b = {0};

	cr_assert(u, "user %s not loaded", id);
	ud_user_view(u, &v);
	cr_assert_eq(codec_user_json(&v, &b), 0);
	cr_assert_eq(ud_buf_append(&b, "", 1), 0);
	return b.data;
}

struct skips {
	int n;
	char what[8][160];
};

static void on_skip(void *ctx, const char *what, const char *reason)
{
	struct skips *s = ctx;

	cr_assert(reason && *reason, "no reason for %s", what);
	if (s->n < 8)
		snprintf(s->what[s->n], sizeof s->what[0], "%s", what);
	s->n++;
}

Test(pg_load, users_and_activity_come_back_field_for_field)
{
	char *ci, *j;
	PGconn *c = migrated(&ci);
	struct pg_load_stats st;
	struct ud_log_page page;
	struct ud_error err;
	ud_db *db = empty_db();

	free(tpg_exec(
	    c, "INSERT INTO userdb.users (id, name, email, email_folded, role,"
	       " status, avatar, custom_data, identities, last_sign_in_at,"
	       " created_at, updated_at, version) VALUES"
	       " ('usr_1', 'Ann Lee', 'Ann@Example.com', 'ann@example.com',"
	       "  'admin', 'suspended', 'https://x.io/a.png',"
	       "  '{\"plan\": \"pro\", \"n\": [1, 2.5, null, true]}',"
	       "  '{\"github\": {\"user_id\": \"42\", \"details\": {}}}',"
	       "  '2025-01-20T15:00:01.250Z', '2025-01-20T15:00:00Z',"
	       "  '2025-01-21T00:00:00Z', 7),"
	       " ('usr_2', '\xe7\x8e\x8b\xe5\xb0\x8f\xe6\x98\x8e', 'w@x.cn',"
	       "  'w@x.cn', 'viewer', 'active', NULL, '{}', '{}', NULL,"
	       "  '2025-01-20T16:00:00Z', '2025-01-20T16:00:00Z', 1)"));
	free(tpg_exec(
	    c,
	    "INSERT INTO userdb.events (user_id, event, created_at, details)"
	    " VALUES ('usr_1', 'user.created', '2025-01-20T15:00:00Z', '{}'),"
	    " ('usr_1', 'user.suspended', '2025-01-21T00:00:00Z', '{}'),"
	    " ('usr_gone', 'user.created', '2025-01-19T00:00:00Z', '{}'),"
	    " ('usr_gone', 'user.deleted', '2025-01-19T01:00:00Z', '{}')"));
	cr_assert_eq(pg_load(c, db, NULL, NULL, NULL, &st, &err), 0, "%s",
		     err.message);
	cr_assert_eq(st.users, 2);
	cr_assert_eq(st.events, 4);
	cr_assert_eq(st.rows_skipped, 0);
	j = user_json(db, "usr_1");
	cr_assert_str_eq(
	    j,
	    "{\"id\":\"usr_1\",\"name\":\"Ann Lee\",\"email\":"
	    "\"Ann@Example.com\",\"role\":\"admin\",\"status\":\"suspended\","
	    "\"avatar\":\"https://x.io/a.png\",\"custom_data\":{\"n\":[1,2.5,"
	    "null,true],\"plan\":\"pro\"},\"identities\":{\"github\":{"
	    "\"details\":{},\"user_id\":\"42\"}},\"has_password\":false,"
	    "\"last_sign_in_at\":\"2025-01-20T15:00:01.250Z\",\"created_at\":"
	    "\"2025-01-20T15:00:00.000Z\",\"updated_at\":\"2025-01-21T00:00:"
	    "00.000Z\"}");
	free(j);
	j = user_json(db, "usr_2");
	cr_assert(
	    strstr(j, "\"name\":\"\xe7\x8e\x8b\xe5\xb0\x8f\xe6\x98\x8e\""),
	    "%s", j);
	cr_assert(strstr(j, "\"last_sign_in_at\":null"), "%s", j);
	free(j);
	cr_assert(ud_user_get_by_email(db, "ANN@example.COM", 15));
	cr_assert_eq(ud_log_list(db, "usr_1", 5, 1, 10, &page, &err), 0);
	cr_assert_eq(page.total, 2);
	cr_assert_eq(ud_log_list(db, "usr_gone", 8, 1, 10, &page, &err), 0);
	cr_assert_eq(page.total, 2, "a deleted user's log stays readable");
	ud_db_free(db);
	free(ci);
	PQfinish(c);
}

Test(pg_load, hostile_rows_are_skipped_counted_and_named)
{
	char *ci;
	PGconn *c = migrated(&ci);
	struct pg_load_stats st;
	struct ud_error err;
	struct skips sk = {0};
	ud_db *db = empty_db();

	/* one good user, then one bad in each way the engine refuses */
	free(tpg_exec(
	    c,
	    "INSERT INTO userdb.users (id, name, email, email_folded, role,"
	    " custom_data, created_at) VALUES"
	    " ('usr_ok', 'Ok', 'ok@x.io', 'ok@x.io', 'user', '{}',"
	    "  now() - interval '1 hour'),"
	    " ('usr_bademail', 'B', 'not an email', 'x1', 'user', '{}', now()),"
	    " ('usr_dupfold', 'D', 'OK@X.IO', 'other', 'user', '{}', now()),"
	    " ('usr_role', 'R', 'r@x.io', 'r@x.io', 'root', '{}', now()),"
	    " ('usr_array', 'A', 'a@x.io', 'a@x.io', 'user', '[1, 2]', now()),"
	    " ('bad id!', 'I', 'i@x.io', 'i@x.io', 'user', '{}', now()),"
	    " ('usr_ctl', E'a\\tb', 'c@x.io', 'c@x.io', 'user', '{}', now())"));
	free(tpg_exec(c, "INSERT INTO userdb.events (user_id, event) VALUES"
			 " ('usr_ok', 'user.created'),"
			 " ('usr_ok', 'user.exploded')"));
	cr_assert_eq(pg_load(c, db, NULL, on_skip, &sk, &st, &err), 0, "%s",
		     err.message);
	cr_assert_eq(st.users, 1);
	cr_assert_eq(st.rows_skipped, 7, "skipped %llu",
		     (unsigned long long)st.rows_skipped);
	cr_assert_eq(sk.n, 7);
	cr_assert(ud_user_get(db, "usr_ok", 6));
	cr_assert_null(ud_user_get(db, "usr_dupfold", 11));
	cr_assert_eq(st.events, 1);
	ud_db_free(db);
	free(ci);
	PQfinish(c);
}

/* More users than one batch of the two-thread load (512): every batch
 * applied once, in creation order, and the refused rows named in row
 * order wherever they fall. */
Test(pg_load, many_batches_load_in_order_with_skips_named_in_order)
{
	char *ci;
	PGconn *c = migrated(&ci);
	struct pg_load_stats st;
	struct ud_error err;
	struct skips sk = {0};
	ud_db *db = empty_db();
	struct ud_page page;
	struct ud_query q;
	struct ud_user_view v;

	free(tpg_exec(
	    c, "INSERT INTO userdb.users (id, name, email, email_folded,"
	       " role, custom_data, created_at)"
	       " SELECT 'usr_' || i, 'U ' || i,"
	       "  CASE WHEN i = 700 THEN 'bad' WHEN i = 1500 THEN 'U3@x.io'"
	       "   ELSE 'u' || i || '@x.io' END,"
	       "  CASE WHEN i = 1500 THEN 'dup' ELSE 'u' || i || '@x.io' END,"
	       "  'user', '{}', timestamptz '2025-01-01' + i * interval '1 s'"
	       " FROM generate_series(0, 1999) i"));
	/* user 1500's email folds to user 3's: only the store finds that */
	cr_assert_eq(pg_load(c, db, NULL, on_skip, &sk, &st, &err), 0, "%s",
		     err.message);
	cr_assert_eq(st.users, 1998);
	cr_assert_eq(st.rows_skipped, 2);
	cr_assert_str_eq(sk.what[0], "user usr_700");
	cr_assert_str_eq(sk.what[1], "user usr_1500");
	cr_assert(ud_user_get(db, "usr_0", 5) &&
		  ud_user_get(db, "usr_1999", 8));
	cr_assert_null(ud_user_get(db, "usr_1500", 8));
	/* newest first: the last created comes back first */
	ud_query_init(&q);
	q.limit = 1;
	cr_assert_eq(ud_user_list(db, &q, &page, &err), 0, "%s", err.message);
	cr_assert_eq(page.total, 1998);
	ud_user_view(page.items[0], &v);
	cr_assert_eq(v.id_len, 8);
	cr_assert(memcmp(v.id, "usr_1999", 8) == 0);
	ud_db_free(db);
	free(ci);
	PQfinish(c);
}

Test(pg_load, an_empty_schema_loads_nothing)
{
	char *ci;
	PGconn *c = migrated(&ci);
	struct pg_load_stats st;
	struct ud_error err;
	ud_db *db = empty_db();

	cr_assert_eq(pg_load(c, db, NULL, NULL, NULL, &st, &err), 0, "%s",
		     err.message);
	cr_assert_eq(st.users + st.events + st.rows_skipped, 0);
	cr_assert_eq(pg_load(c, db, "bad'name", NULL, NULL, &st, &err),
		     UD_EINVAL);
	ud_db_free(db);
	free(ci);
	PQfinish(c);
}
