/*
 * test_actor.c -- ud_set_actor (actor.c): the actor in every event's
 * details, the implicit created event's actor runs, and both surviving the
 * journal (replay) and a dump (snapshot).
 */
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "helper_db.h"

/* The i-th newest event of id as JSON, in a static buffer. */
static const char *event_json(ud_db *db, const char *id, unsigned i)
{
	static struct ud_log_page p;
	static struct ud_buf b;

	cr_assert_eq(ud_log_list(db, id, strlen(id), 1, 100, &p, NULL), 0);
	cr_assert_gt(p.count, i, "%s has %zu events", id, (size_t)p.count);
	b.len = 0;
	cr_assert_eq(ud_log_write_json(&p.items[i], &b), 0);
	ud_buf_append(&b, "", 1);
	return b.data;
}

static void set_actor(ud_db *db, const char *name)
{
	cr_assert_eq(ud_set_actor(db, name, name ? strlen(name) : 0), 0);
}

static void assert_actor(ud_db *db, const char *id, unsigned i,
			 const char *name)
{
	const char *j = event_json(db, id, i);
	char want[64];

	snprintf(want, sizeof want, "\"actor\":\"%s\"", name ? name : "");
	if (name)
		cr_assert(strstr(j, want), "%s event %u: %s", id, i, j);
	else
		cr_assert_null(strstr(j, "\"actor\""), "%s event %u: %s", id, i,
			       j);
}

Test(actor, every_event_names_its_actor_and_survives_replay_and_dump)
{
	ud_db *db = hdb_new(NULL), *mirror = hdb_new(NULL), *copy;
	struct hdb_mirror m = {.db = mirror};
	char ids[4][UD_ID_MAX + 1], why[256];
	struct ud_fields f = {0};
	struct ud_error err = {0};
	const char *names[4] = {"svc", "svc", NULL, "console"};

	ud_db_set_journal(db, hdb_mirror_cb, &m);
	for (int i = 0; i < 4; i++) {
		char name[16], email[32];
		set_actor(db, names[i]);
		snprintf(name, sizeof name, "u%d", i);
		snprintf(email, sizeof email, "u%d@x.com", i);
		hdb_id(hdb_create(db, name, email), ids[i]);
	}
	for (int i = 0; i < 4; i++) /* implicit created events */
		assert_actor(db, ids[i], 0, names[i]);

	set_actor(db, "key-3");
	f = hdb_fields("renamed", "u0@x.com");
	f.set = UD_F_NAME;
	cr_assert_eq(
	    ud_user_update(db, ids[0], strlen(ids[0]), &f, 0, NULL, &err), 0,
	    "%s", err.message);
	cr_assert_eq(
	    ud_user_record_verify(db, ids[1], strlen(ids[1]), false, &err), 0);
	set_actor(db, NULL);
	cr_assert_eq(
	    ud_user_set_suspended(db, ids[3], strlen(ids[3]), true, NULL, &err),
	    0);
	set_actor(db, "ops");
	cr_assert_eq(ud_user_delete(db, ids[2], strlen(ids[2]), 0, &err), 0);

	/* materialised logs keep the created event's actor */
	assert_actor(db, ids[0], 0, "key-3");
	cr_assert(strstr(event_json(db, ids[0], 0), "\"fields\":[\"name\"]"));
	assert_actor(db, ids[0], 1, "svc");
	assert_actor(db, ids[1], 0, "key-3");
	cr_assert(strstr(event_json(db, ids[1], 0), "\"failed_count\":1"));
	assert_actor(db, ids[1], 1, "svc");
	assert_actor(db, ids[3], 0, NULL);
	assert_actor(db, ids[3], 1, "console");
	assert_actor(db, ids[2], 0, "ops");
	assert_actor(db, ids[2], 1, NULL);

	cr_assert_eq(hdb_compare(db, mirror, why, sizeof why), 0, "%s", why);
	copy = hdb_dump_copy(db);
	cr_assert_eq(hdb_compare(db, copy, why, sizeof why), 0, "%s", why);
	hdb_check(copy);
	/* the runs came back with the dump: a new create after them too */
	set_actor(copy, "late");
	char late[UD_ID_MAX + 1];
	hdb_id(hdb_create(copy, "late", "late@x.com"), late);
	assert_actor(copy, late, 0, "late");
	assert_actor(copy, ids[1], 1, "svc");
	hdb_check(db);
	ud_db_free(copy);
	ud_db_free(db);
	ud_db_free(mirror);
	ud_buf_free(&m.last);
}

Test(actor, one_run_per_change_of_actor)
{
	ud_db *db = hdb_new(NULL);
	char id[UD_ID_MAX + 1];

	set_actor(db, "bulk");
	for (int i = 0; i < 1000; i++) {
		char email[32];
		snprintf(email, sizeof email, "b%d@x.com", i);
		hdb_create(db, "b", email);
	}
	cr_assert_eq(db->actors.n_runs, 1);
	set_actor(db, NULL);
	hdb_id(hdb_create(db, "n", "n@x.com"), id);
	cr_assert_eq(db->actors.n_runs, 2);
	assert_actor(db, id, 0, NULL);
	cr_assert_eq(db->log.events, 0, "no log entries for plain creates");
	ud_db_free(db);
}

Test(actor, set_and_read_back)
{
	ud_db *db = hdb_new(NULL);
	char big[300];
	size_t n;

	cr_assert_null(ud_actor(db, &n));
	cr_assert_eq(n, 0);
	set_actor(db, "a-name-longer-than-thirty-one-bytes-for-str8");
	const char *a = ud_actor(db, &n);
	cr_assert(a && n == 44 && !memcmp(a, "a-name-longer", 13));
	memset(big, 'x', sizeof big);
	cr_assert_eq(ud_set_actor(db, big, sizeof big), UD_EINVAL);
	cr_assert_null(ud_actor(db, &n));
	set_actor(db, NULL);
	cr_assert_null(ud_actor(db, &n));
	ud_db_free(db);
}
