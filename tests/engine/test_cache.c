/*
 * test_cache.c -- cache mode: LRU bound by users or bytes, the loader,
 * cache statistics (cache.c).
 */
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "helper_db.h"

static ud_db *cache_db(size_t max_users, size_t max_bytes, ud_loader_fn fn,
		       void *ctx)
{
	struct ud_options o = ud_options_default;

	o.max_users = max_users;
	o.max_bytes = max_bytes;
	o.loader = fn;
	o.loader_ctx = ctx;
	return hdb_new(&o);
}

static const ud_user *mk(ud_db *db, int i, char *id)
{
	char email[64], name[32];
	const ud_user *u;

	snprintf(email, sizeof(email), "u%d@example.com", i);
	snprintf(name, sizeof(name), "User %d", i);
	u = hdb_create(db, name, email);
	if (id)
		hdb_id(u, id);
	return u;
}

Test(cache, evicts_least_recently_used)
{
	ud_db *db = cache_db(3, 0, NULL, NULL);
	char id[5][UD_ID_MAX + 1];
	struct ud_stats st = {0};
	int i;

	for (i = 0; i < 3; i++)
		mk(db, i, id[i]);
	/* touch 0: 1 is now the least recently used */
	cr_assert_not_null(ud_user_get(db, id[0], strlen(id[0])));
	mk(db, 3, id[3]);
	hdb_check(db);
	cr_assert_not_null(ud_user_get(db, id[0], strlen(id[0])));
	cr_assert_null(ud_user_get(db, id[1], strlen(id[1])));
	cr_assert_not_null(ud_user_get(db, id[2], strlen(id[2])));
	/* by email too counts as a use: 3 is now the oldest */
	cr_assert_not_null(ud_user_get_by_email(db, "U0@example.com", 14));
	mk(db, 4, id[4]);
	cr_assert_null(ud_user_get(db, id[3], strlen(id[3])));
	ud_db_stats(db, &st);
	cr_assert_eq(st.users, 3);
	cr_assert_eq(st.evictions, 2);
	cr_assert_eq(st.cache_misses, 2);
	cr_assert_eq(st.cache_hits, 4);
	hdb_check(db);
	ud_db_free(db);
}

Test(cache, byte_bound)
{
	ud_db *db = cache_db(0, 2000, NULL, NULL);
	struct ud_stats st = {0};
	int i;

	for (i = 0; i < 100; i++) {
		mk(db, i, NULL);
		ud_db_stats(db, &st);
		cr_assert_leq(st.record_bytes, 2000);
	}
	cr_assert_gt(st.users, 5);
	cr_assert_lt(st.users, 30);
	cr_assert_eq(st.evictions, 100 - st.users);
	hdb_check(db);
	ud_db_free(db);
}

/* A write is a use: the user just updated is not the next one out.  And
 * an update that grows a record past max_bytes evicts others. */
Test(cache, writes_count_as_use_and_keep_the_byte_bound)
{
	ud_db *db = cache_db(3, 0, NULL, NULL);
	char id[5][UD_ID_MAX + 1];
	struct ud_fields f = {0};
	struct ud_stats st = {0};
	char avatar[1200];
	int i;

	for (i = 0; i < 3; i++)
		mk(db, i, id[i]);
	/* 0 is the least recently used; updating it makes 1 the oldest */
	hdb_set(&f, UD_F_NAME, "Renamed");
	cr_assert_eq(
	    ud_user_update(db, id[0], strlen(id[0]), &f, 0, NULL, NULL), 0);
	mk(db, 3, id[3]);
	cr_assert_null(ud_user_get(db, id[1], strlen(id[1])), "1 evicted");
	cr_assert_not_null(ud_user_get(db, id[0], strlen(id[0])),
			   "the updated user stays");
	hdb_check(db);
	ud_db_free(db);

	db = cache_db(0, 1500, NULL, NULL);
	for (i = 0; i < 4; i++)
		mk(db, i, id[i]);
	ud_db_stats(db, &st);
	cr_assert_eq(st.users, 4);
	memcpy(avatar, "https://e.x/", 12);
	memset(avatar + 12, 'a', sizeof avatar - 12);
	memset(&f, 0, sizeof f);
	f.set = UD_F_AVATAR;
	f.avatar = avatar;
	f.avatar_len = sizeof avatar;
	cr_assert_eq(
	    ud_user_update(db, id[2], strlen(id[2]), &f, 0, NULL, NULL), 0);
	ud_db_stats(db, &st);
	cr_assert_leq(st.record_bytes, 1500, "%llu bytes",
		      (unsigned long long)st.record_bytes);
	cr_assert_gt(st.evictions, 0);
	cr_assert_not_null(ud_user_get(db, id[2], strlen(id[2])),
			   "the grown user itself stays");
	hdb_check(db);
	ud_db_free(db);
}

Test(cache, no_lru_memory_without_a_bound)
{
	ud_db *db = hdb_new(NULL);

	mk(db, 1, NULL);
	cr_assert_null(db->lru_prev);
	cr_assert_null(db->lru_next);
	ud_db_free(db);
}

struct backing {
	int calls;
	enum ud_key_kind kind;
	const char *wrong_id; /* answer with this id instead */
	bool bad_email;
	char id[80], email[80], name[80];
};

static int loader(void *ctx, enum ud_key_kind kind, const char *key, size_t len,
		  struct ud_fields *out)
{
	struct backing *b = ctx;

	b->calls++;
	b->kind = kind;
	if (len > 60 || memcmp(key, kind == UD_KEY_ID ? "usr_" : "ext",
			       3 + (kind == UD_KEY_ID)) != 0)
		return UD_ENOTFOUND;
	if (kind == UD_KEY_ID) {
		snprintf(b->id, sizeof(b->id), "%.*s", (int)len, key);
		snprintf(b->email, sizeof(b->email), "%.*s@example.com",
			 (int)len - 4, key + 4);
	} else {
		snprintf(b->email, sizeof(b->email), "%.*s", (int)len, key);
		snprintf(b->id, sizeof(b->id), "usr_from_email");
	}
	if (b->wrong_id)
		snprintf(b->id, sizeof(b->id), "%s", b->wrong_id);
	if (b->bad_email)
		snprintf(b->email, sizeof(b->email), "not an email");
	snprintf(b->name, sizeof(b->name), "Loaded");
	*out = hdb_fields(b->name, b->email);
	hdb_set(out, UD_F_ID, b->id);
	hdb_set(out, UD_F_ROLE, "viewer");
	return 0;
}

Test(cache, loader_fills_misses)
{
	struct backing b = {0};
	ud_db *db = cache_db(2, 0, loader, &b);
	const ud_user *u;
	struct ud_user_view v;
	struct ud_stats st = {0};
	struct ud_log_page p;

	u = ud_user_get(db, "usr_alice", 9);
	cr_assert_not_null(u);
	cr_assert_eq(b.calls, 1);
	cr_assert_eq(b.kind, UD_KEY_ID);
	ud_user_view(u, &v);
	cr_assert_eq(v.email_len, strlen("alice@example.com"));
	cr_assert_eq(v.role, UD_ROLE_VIEWER);
	/* now a hit */
	cr_assert_eq(ud_user_get(db, "usr_alice", 9), u);
	cr_assert_eq(b.calls, 1);
	/* by email */
	u = ud_user_get_by_email(db, "ext@example.com", 15);
	cr_assert_not_null(u);
	cr_assert_eq(b.kind, UD_KEY_EMAIL);
	/* the loader says no */
	cr_assert_null(ud_user_get(db, "nobody", 6));
	/* a load over the bound evicts the least recently used */
	cr_assert_not_null(ud_user_get(db, "usr_bob", 7));
	ud_db_stats(db, &st);
	cr_assert_eq(st.loads, 3);
	cr_assert_eq(st.users, 2);
	cr_assert_eq(st.evictions, 1);
	cr_assert_eq(st.cache_hits, 1);
	cr_assert_eq(st.cache_misses, 4);
	cr_assert_eq(st.load_failures, 0, "not found is no failure");
	/* loaded users carry no creation event */
	cr_assert_eq(ud_log_list(db, "usr_bob", 7, 1, 10, &p, NULL), 0);
	cr_assert_eq(p.total, 0);
	cr_assert_eq(ud_user_set_suspended(db, "usr_bob", 7, true, NULL, NULL),
		     0);
	cr_assert_eq(ud_log_list(db, "usr_bob", 7, 1, 10, &p, NULL), 0);
	cr_assert_eq(p.total, 1);
	hdb_check(db);
	ud_db_free(db);
}

Test(cache, loader_answers_are_checked)
{
	struct backing b = {0};
	ud_db *db = cache_db(10, 0, loader, &b);
	struct ud_stats st = {0};

	b.wrong_id = "usr_somebody_else";
	cr_assert_null(ud_user_get(db, "usr_alice", 9));
	b.wrong_id = NULL;
	b.bad_email = true;
	cr_assert_null(ud_user_get(db, "usr_alice", 9));
	b.bad_email = false;
	/* the loaded email belongs to a live user: refused */
	hdb_create(db, "Alice", "ALICE@example.com");
	cr_assert_null(ud_user_get(db, "usr_alice", 9));
	ud_db_stats(db, &st);
	cr_assert_eq(st.loads, 0);
	cr_assert_eq(st.load_failures, 3, "each refused answer counts");
	cr_assert_eq(st.users, 1);
	hdb_check(db);
	ud_db_free(db);
}

Test(cache, lru_survives_compaction)
{
	ud_db *db = cache_db(400, 0, NULL, NULL);
	char id[UD_ID_MAX + 1];
	char keep[UD_ID_MAX + 1];
	int i;

	mk(db, 100000, keep);
	for (i = 0; i < 3000; i++) {
		mk(db, i, id);
		if (i % 2)
			cr_assert_eq(
			    ud_user_delete(db, id, strlen(id), 0, NULL), 0);
		cr_assert_not_null(ud_user_get(db, keep, strlen(keep)));
		if (i % 50 == 0)
			hdb_check(db);
	}
	hdb_check(db);
	cr_assert_lt(db->order.len, 2000, "dead slots were compacted");
	ud_db_free(db);
}

Test(cache, loaded_users_replay_and_dump_alike)
{
	struct backing b = {0};
	ud_db *db = cache_db(3, 0, loader, &b), *copy;
	struct hdb_mirror m = {0};
	char why[200];

	m.db = cache_db(3, 0, NULL, NULL);
	ud_db_set_journal(db, hdb_mirror_cb, &m);
	cr_assert_not_null(ud_user_get(db, "usr_alice", 9));
	cr_assert_not_null(ud_user_get(db, "usr_bob", 7));
	mk(db, 1, NULL);
	cr_assert_eq(ud_user_set_suspended(db, "usr_bob", 7, true, NULL, NULL),
		     0);
	cr_assert_eq(ud_user_record_verify(db, "usr_alice", 9, false, NULL), 0);
	hdb_check(m.db);
	cr_assert_eq(hdb_compare(db, m.db, why, sizeof(why)), 0, "%s", why);
	copy = hdb_dump_copy(db);
	cr_assert_eq(hdb_compare(db, copy, why, sizeof(why)), 0, "%s", why);
	hdb_check(copy);
	ud_db_free(copy);
	ud_db_free(m.db);
	ud_buf_free(&m.last);
	ud_db_free(db);
}

Test(cache, a_loaded_id_continues_its_kept_log)
{
	struct backing b = {0};
	ud_db *db = cache_db(10, 0, loader, &b);
	struct ud_fields f = hdb_fields("Alice", "alice@example.com");
	struct ud_log_page p;

	hdb_set(&f, UD_F_ID, "usr_alice");
	cr_assert_eq(ud_user_create(db, &f, NULL, NULL), 0);
	cr_assert_eq(ud_user_delete(db, "usr_alice", 9, 0, NULL), 0);
	cr_assert_not_null(ud_user_get(db, "usr_alice", 9)); /* loaded */
	hdb_check(db);
	cr_assert_eq(ud_log_list(db, "usr_alice", 9, 1, 10, &p, NULL), 0);
	cr_assert_eq(p.total, 2);
	cr_assert_eq(
	    ud_user_set_suspended(db, "usr_alice", 9, true, NULL, NULL), 0);
	cr_assert_eq(ud_log_list(db, "usr_alice", 9, 1, 10, &p, NULL), 0);
	cr_assert_eq(p.total, 3);
	cr_assert_eq(p.items[0].event, UD_EV_SUSPENDED);
	hdb_check(db);
	ud_db_free(db);
}
