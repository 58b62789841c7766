/*
 * test_pgcache.c -- the connector (connector/pgcache.c, userdb_pg.h) on a
 * real PostgreSQL: read-through, negative entries, changes made by SQL
 * reaching the cache, writes going through with PostgreSQL's verdict.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helper_pg.h"
#include "helper_pgcache.h"

static uint64_t etag(const ud_user *u)
{
	struct ud_user_view v;

	ud_user_view(u, &v);
	return v.etag;
}

Test(pgcache, read_through_by_id_and_email_case_insensitive)
{
	struct tpc t = tpc_start(100);
	ud_pg *c = t.c;
	PGconn *q = t.q;
	struct ud_error e = {0};
	const ud_user *u;
	struct ud_user_view v;
	uint64_t queries;

	tpc_insert(q, "usr_ann", "Ann", "Ann@Example.com");
	u = ud_pg_get(c, "usr_ann", 7, &e);
	cr_assert(u, "%s", e.message);
	ud_user_view(u, &v);
	cr_assert_eq(v.name_len, 3);
	cr_assert_eq(memcmp(v.email, "Ann@Example.com", 15), 0);
	cr_assert_eq(v.etag, 1, "the ETag is the row's version");
	cr_assert_eq(tpc_stats(c).loads, 1);
	queries = tpc_stats(c).queries;
	/* hits, by id and by the email in any case, ask nothing */
	cr_assert_eq(ud_pg_get(c, "usr_ann", 7, NULL), u);
	cr_assert_eq(ud_pg_get_by_email(c, "aNN@example.COM", 15, NULL), u);
	cr_assert_eq(tpc_stats(c).queries, queries);
	cr_assert_eq(tpc_stats(c).hits, 2);
	/* a miss by email loads */
	tpc_insert(q, "usr_bob", "Bob", "bob@example.com");
	u = ud_pg_get_by_email(c, "BOB@EXAMPLE.COM", 15, &e);
	cr_assert(u, "%s", e.message);
	ud_user_view(u, &v);
	cr_assert_eq(memcmp(v.id, "usr_bob", 7), 0);
	cr_assert_eq(tpc_stats(c).loads, 2);
	tpc_done(&t);
}

Test(pgcache, absent_users_are_negative_entries_until_created)
{
	struct tpc t = tpc_start(100);
	ud_pg *c = t.c;
	PGconn *q = t.q;
	struct ud_error e = {0};
	uint64_t queries;
	const ud_user *u;

	cr_assert_null(ud_pg_get(c, "usr_nobody", 10, &e));
	cr_assert_eq(e.code, UD_ENOTFOUND);
	cr_assert_null(ud_pg_get_by_email(c, "No@Where.io", 11, NULL));
	queries = tpc_stats(c).queries;
	for (int i = 0; i < 100; i++) {
		cr_assert_null(ud_pg_get(c, "usr_nobody", 10, &e));
		cr_assert_eq(e.code, UD_ENOTFOUND);
		cr_assert_null(ud_pg_get_by_email(c, "no@WHERE.io", 11, NULL));
	}
	cr_assert_eq(tpc_stats(c).queries, queries,
		     "misses hammer the database");
	cr_assert_eq(tpc_stats(c).negative_hits, 200);
	tpc_check(c);
	/* created by SQL: the feed drops the negative entries */
	tpc_insert(q, "usr_nobody", "Now Somebody", "no@where.io");
	cr_assert(tpc_pump(c, 5000, NULL, NULL) == false);
	u = ud_pg_get(c, "usr_nobody", 10, &e);
	cr_assert(u, "the create did not reach the cache: %s", e.message);
	cr_assert_eq(ud_pg_get_by_email(c, "NO@where.io", 11, NULL), u);
	/* created through the cache: its own negative entries go at once */
	cr_assert_null(ud_pg_get_by_email(c, "new@x.io", 8, NULL));
	struct ud_fields f = {.set = UD_F_NAME | UD_F_EMAIL,
			      .name = "New",
			      .name_len = 3,
			      .email = "New@X.io",
			      .email_len = 8};
	cr_assert_eq(ud_pg_create(c, &f, &u, &e), 0, "%s", e.message);
	cr_assert_eq(ud_pg_get_by_email(c, "new@x.io", 8, NULL), u);
	tpc_done(&t);
}

Test(pgcache, sql_update_and_delete_reach_the_cache)
{
	struct tpc t = tpc_start(100);
	ud_pg *c = t.c;
	PGconn *q = t.q;
	struct tpc_want w = {"usr_sql", "Changed"};
	double t0, worst = 0;
	uint64_t before;

	tpc_insert(q, "usr_sql", "Before", "sql@x.io");
	cr_assert_str_eq(tpc_name(c, "usr_sql"), "Before");
	before = tpc_stats(c).loads;
	for (int i = 0; i < 20; i++) {
		char name[32];
		snprintf(name, sizeof name, "Changed %d", i);
		w.name = name;
		free(tpc_sql(q,
			     "UPDATE userdb.users SET name = '%s'"
			     " WHERE id = 'usr_sql'",
			     name));
		t0 = tpc_now_ms();
		cr_assert(tpc_pump(c, 5000, tpc_has_name, &w), "update %d", i);
		if (tpc_now_ms() - t0 > worst)
			worst = tpc_now_ms() - t0;
	}
	cr_assert_eq(tpc_stats(c).loads, before,
		     "updated in place, not reloaded");
	cr_assert_eq(tpc_stats(c).feed_applied, 20);
	printf("pgcache: SQL UPDATE commit -> cache, 20 updates: worst %.1f "
	       "ms\n",
	       worst);
	free(tpc_sql(q, "DELETE FROM userdb.users WHERE id = 'usr_sql'"));
	w.name = "";
	cr_assert(tpc_pump(c, 5000, tpc_has_name, &w), "the delete evicts");
	tpc_done(&t);
}

Test(pgcache, writes_go_to_postgres_first_with_its_verdict)
{
	struct tpc t = tpc_start(100);
	ud_pg *c = t.c;
	PGconn *q = t.q;
	struct ud_error e = {0};
	struct ud_fields f = {.set = UD_F_NAME | UD_F_EMAIL,
			      .name = "Wes",
			      .name_len = 3,
			      .email = "wes@x.io",
			      .email_len = 8};
	const ud_user *u;
	struct ud_user_view v;
	char id[UD_ID_MAX + 1], *s;
	uint64_t tag;
	bool valid;

	cr_assert_eq(ud_pg_create(c, &f, &u, &e), 0, "%s", e.message);
	ud_user_view(u, &v);
	snprintf(id, sizeof id, "%.*s", (int)v.id_len, v.id);
	s = tpc_sql(q,
		    "SELECT name || ' ' || version FROM userdb.users"
		    " WHERE id = '%s'",
		    id);
	cr_assert_eq(strtoull(strchr(s, ' ') + 1, NULL, 10), v.etag);
	free(s);
	/* an email only PostgreSQL knows: its unique index says 409 */
	tpc_insert(q, "usr_other", "Other", "taken@x.io");
	f.email = "TAKEN@x.io";
	f.email_len = 10;
	cr_assert_eq(ud_pg_create(c, &f, NULL, &e), UD_EDUPEMAIL);
	cr_assert_str_eq(e.field, "email");
	/* If-Match */
	tag = v.etag;
	f.set = UD_F_NAME;
	f.name = "Wes 2";
	f.name_len = 5;
	cr_assert_eq(ud_pg_update(c, id, strlen(id), &f, tag + 7, NULL, &e),
		     UD_EPRECONDITION);
	cr_assert_eq(ud_pg_update(c, id, strlen(id), &f, tag, &u, &e), 0, "%s",
		     e.message);
	tag = etag(u);
	/* a SQL client changes it and the feed has not been read yet: the
	 * stale copy is reloaded; the old ETag is refused */
	free(tpc_sql(q,
		     "UPDATE userdb.users SET role = 'admin' WHERE id = "
		     "'%s'",
		     id));
	f.name = "Wes 3";
	cr_assert_eq(ud_pg_update(c, id, strlen(id), &f, tag, NULL, &e),
		     UD_EPRECONDITION);
	cr_assert_eq(ud_pg_update(c, id, strlen(id), &f, 0, &u, &e), 0, "%s",
		     e.message);
	ud_user_view(u, &v);
	cr_assert_eq(v.role, UD_ROLE_ADMIN, "the SQL change is kept");
	s = tpc_sql(q, "SELECT name FROM userdb.users WHERE id = '%s'", id);
	cr_assert_str_eq(s, "Wes 3");
	free(s);
	/* passwords */
	cr_assert_eq(
	    ud_pg_set_password(c, id, strlen(id), "correct horse", 13, &u, &e),
	    0, "%s", e.message);
	s = tpc_sql(q,
		    "SELECT password_hash LIKE '$argon2id$%%' FROM"
		    " userdb.users WHERE id = '%s'",
		    id);
	cr_assert_str_eq(s, "t");
	free(s);
	cr_assert_eq(ud_pg_verify_password(c, id, strlen(id), "correct horse",
					   13, &valid, &e),
		     0, "%s", e.message);
	cr_assert(valid);
	cr_assert_eq(ud_pg_verify_password(c, id, strlen(id), "wrong horse", 11,
					   &valid, &e),
		     0, "%s", e.message);
	cr_assert(!valid);
	s = tpc_sql(q,
		    "SELECT failed_verifies FROM userdb.users WHERE id = "
		    "'%s'",
		    id);
	cr_assert_str_eq(s, "1");
	free(s);
	/* suspension and identities */
	cr_assert_eq(ud_pg_set_suspended(c, id, strlen(id), true, &u, &e), 0,
		     "%s", e.message);
	cr_assert_eq(ud_pg_link_identity(c, id, strlen(id), "github", 6, "gh1",
					 3, NULL, 0, &u, &e),
		     0, "%s", e.message);
	s = tpc_sql(q,
		    "SELECT status || ' ' || (identities->'github'->>"
		    "'user_id') FROM userdb.users WHERE id = '%s'",
		    id);
	cr_assert_str_eq(s, "suspended gh1");
	free(s);
	cr_assert_eq(
	    ud_pg_unlink_identity(c, id, strlen(id), "github", 6, &u, &e), 0,
	    "%s", e.message);
	cr_assert_eq(
	    ud_pg_unlink_identity(c, id, strlen(id), "github", 6, &u, &e),
	    UD_ENOTFOUND);
	cr_assert_eq(ud_pg_set_suspended(c, id, strlen(id), false, &u, &e), 0,
		     "%s", e.message);
	/* delete */
	cr_assert_eq(ud_pg_delete(c, id, strlen(id), 0, &e), 0, "%s",
		     e.message);
	s = tpc_sql(q, "SELECT count(*) FROM userdb.users WHERE id = '%s'", id);
	cr_assert_str_eq(s, "0");
	free(s);
	cr_assert_null(ud_pg_get(c, id, strlen(id), &e));
	cr_assert_eq(ud_pg_delete(c, id, strlen(id), 0, &e), UD_ENOTFOUND);
	s = tpc_sql(q,
		    "SELECT string_agg(event, ',' ORDER BY id) FROM"
		    " userdb.events WHERE user_id = '%s'",
		    id);
	cr_assert_str_eq(s, "user.created,user.updated,user.updated,"
			    "user.password_changed,user.password_verified,"
			    "user.password_verified,user.suspended,"
			    "user.identity_linked,user.identity_removed,"
			    "user.unsuspended,user.deleted");
	free(s);
	tpc_done(&t);
}

Test(pgcache, activity_is_read_from_postgres_when_asked)
{
	char *ci = tpg_new_db();
	ud_pg *c = tpc_open(ci, 100);
	struct ud_error e = {0};
	struct ud_fields f = {.set = UD_F_NAME | UD_F_EMAIL,
			      .name = "Al",
			      .name_len = 2,
			      .email = "al@x.io",
			      .email_len = 7};
	struct ud_log_page p;
	const ud_user *u;
	struct ud_user_view v;
	char id[UD_ID_MAX + 1];

	cr_assert_eq(ud_pg_create(c, &f, &u, &e), 0, "%s", e.message);
	ud_user_view(u, &v);
	snprintf(id, sizeof id, "%.*s", (int)v.id_len, v.id);
	f.set = UD_F_NAME;
	f.name = "Al 2";
	f.name_len = 4;
	cr_assert_eq(ud_pg_update(c, id, strlen(id), &f, 0, NULL, &e), 0);
	cr_assert_eq(ud_pg_log_list(c, id, strlen(id), 1, 10, &p, &e), 0, "%s",
		     e.message);
	cr_assert_eq(p.total, 2);
	cr_assert_eq(p.count, 2);
	cr_assert_eq(p.items[0].event, UD_EV_UPDATED, "newest first");
	cr_assert_eq(p.items[1].event, UD_EV_CREATED);
	cr_assert_eq(ud_pg_log_list(c, id, strlen(id), 3, 1, &p, &e), 0);
	cr_assert_eq(p.count, 0);
	cr_assert_eq(p.total, 2);
	cr_assert_eq(ud_pg_log_list(c, id, strlen(id), 0, 1, &p, &e),
		     UD_EINVAL);
	ud_pg_close(c);
	free(ci);
}
