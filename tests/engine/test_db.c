/*
 * test_db.c -- the store's operations (db.c, ops.c, list.c, change.c):
 * every operation, every error path, events, etags, the journal seam and
 * dump/apply.
 */
#define _GNU_SOURCE /* memmem */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <msgpack.h>

#include "helper_db.h"

#define EMPTY_MAP "\x80"

static struct ud_user_view view(const ud_user *u)
{
	struct ud_user_view v;

	ud_user_view(u, &v);
	return v;
}

static bool str_is(const char *s, size_t n, const char *want)
{
	return n == strlen(want) && memcmp(s, want, n) == 0;
}

/* The newest event of a user. */
static struct ud_log_view newest(ud_db *db, const char *id)
{
	static struct ud_log_page p;

	cr_assert_eq(ud_log_list(db, id, strlen(id), 1, 1, &p, NULL), 0);
	cr_assert_geq(p.count, 1);
	return p.items[0];
}

static uint64_t log_total(ud_db *db, const char *id)
{
	static struct ud_log_page p;

	cr_assert_eq(ud_log_list(db, id, strlen(id), 1, 1, &p, NULL), 0);
	return p.total;
}

Test(db, create_fills_defaults)
{
	ud_db *db = hdb_new(NULL);
	const ud_user *u = hdb_create(db, "Ann Lee", "Ann@Example.com");
	struct ud_user_view v = view(u);

	cr_assert_eq(v.id_len, UD_ID_GEN_LEN);
	cr_assert(memcmp(v.id, "usr_", 4) == 0);
	cr_assert(str_is(v.name, v.name_len, "Ann Lee"));
	cr_assert(str_is(v.email, v.email_len, "Ann@Example.com"));
	cr_assert_eq(v.role, UD_ROLE_USER);
	cr_assert_eq(v.status, UD_STATUS_ACTIVE);
	cr_assert_null(v.avatar);
	cr_assert(str_is(v.custom_data, v.custom_data_len, EMPTY_MAP));
	cr_assert(str_is(v.identities, v.identities_len, EMPTY_MAP));
	cr_assert_not(v.has_password);
	cr_assert_eq(v.last_sign_in_ms, -1);
	cr_assert_eq(v.created_ms, v.updated_ms);
	cr_assert_gt(v.created_ms, 1600000000000LL);
	cr_assert_gt(v.etag, 0);
	hdb_check(db);
	ud_db_free(db);
}

Test(db, create_with_every_field)
{
	ud_db *db = hdb_new(NULL);
	struct ud_fields f = hdb_fields("李小龍", "bruce@example.com");
	struct ud_error err = {0};
	const ud_user *u;
	struct ud_user_view v;

	hdb_set(&f, UD_F_ID, "usr_import-1");
	hdb_set(&f, UD_F_ROLE, "admin");
	hdb_set(&f, UD_F_STATUS, "inactive");
	hdb_set(&f, UD_F_AVATAR, "https://cdn.example.com/a.png");
	f.set |= UD_F_CUSTOM_DATA;
	f.custom_data = "\x81\xa4plan\xa3pro";
	f.custom_data_len = 10;
	hdb_set(&f, UD_F_PASSWORD, "correct horse");
	cr_assert_eq(ud_user_create(db, &f, &u, &err), 0, "%s", err.message);
	v = view(u);
	cr_assert(str_is(v.id, v.id_len, "usr_import-1"));
	cr_assert(str_is(v.name, v.name_len, "李小龍"));
	cr_assert_eq(v.role, UD_ROLE_ADMIN);
	cr_assert_eq(v.status, UD_STATUS_INACTIVE);
	cr_assert(
	    str_is(v.avatar, v.avatar_len, "https://cdn.example.com/a.png"));
	cr_assert_eq(v.custom_data_len, 10);
	cr_assert(v.has_password);
	cr_assert_eq(ud_user_get(db, "usr_import-1", 12), u);
	hdb_check(db);
	ud_db_free(db);
}

Test(db, create_errors)
{
	ud_db *db = hdb_new(NULL);
	struct ud_fields f = hdb_fields("Ann", NULL);
	struct ud_error err = {0};
	struct ud_stats st = {0};

	cr_assert_eq(ud_user_create(db, &f, NULL, &err), UD_EINVAL);
	f = hdb_fields("Ann", "not-an-email");
	cr_assert_eq(ud_user_create(db, &f, NULL, &err), UD_EINVAL);
	cr_assert_str_eq(err.field, "email");
	f = hdb_fields("Ann", "ann@example.com");
	hdb_set(&f, UD_F_ROLE, "root");
	cr_assert_eq(ud_user_create(db, &f, NULL, &err), UD_EINVAL);
	cr_assert_str_eq(err.field, "role");

	f = hdb_fields("Ann", "ann@example.com");
	hdb_set(&f, UD_F_ID, "usr_ann");
	cr_assert_eq(ud_user_create(db, &f, NULL, &err), 0);
	f = hdb_fields("Ann 2", "ANN@EXAMPLE.COM");
	cr_assert_eq(ud_user_create(db, &f, NULL, &err), UD_EDUPEMAIL);
	cr_assert_str_eq(err.field, "email");
	f = hdb_fields("Ann 3", "other@example.com");
	hdb_set(&f, UD_F_ID, "usr_ann");
	cr_assert_eq(ud_user_create(db, &f, NULL, &err), UD_EDUPID);
	cr_assert_str_eq(err.field, "id");
	f = hdb_fields("Ann 4", "x@example.com");
	hdb_set(&f, UD_F_PASSWORD, "short");
	cr_assert_eq(ud_user_create(db, &f, NULL, &err), UD_EINVAL);
	ud_db_stats(db, &st);
	cr_assert_eq(st.users, 1);
	hdb_check(db);
	ud_db_free(db);
}

Test(db, lookups_are_case_insensitive_on_email_only)
{
	ud_db *db = hdb_new(NULL);
	const ud_user *u =
	    hdb_create(db, "Straße", "Max.Mustermann@Example.DE");
	char id[UD_ID_MAX + 1];

	hdb_id(u, id);
	cr_assert_eq(ud_user_get_by_email(db, "max.mustermann@example.de", 25),
		     u);
	cr_assert_eq(ud_user_get_by_email(db, "MAX.MUSTERMANN@EXAMPLE.DE", 25),
		     u);
	cr_assert_null(ud_user_get_by_email(db, "max@example.de", 14));
	cr_assert_eq(ud_user_get(db, id, strlen(id)), u);
	id[4] ^= 0x20; /* ids are case-sensitive */
	cr_assert_null(ud_user_get(db, id, strlen(id)));
	ud_db_free(db);
}

Test(db, update_changes_fields_and_logs_them)
{
	ud_db *db = hdb_new(NULL);
	const ud_user *u = hdb_create(db, "Ann", "ann@example.com"), *u2;
	struct ud_fields f = {0};
	struct ud_error err = {0};
	struct ud_user_view before = view(u), v;
	struct ud_log_view e;
	char id[UD_ID_MAX + 1];

	hdb_id(u, id);
	hdb_set(&f, UD_F_NAME, "Ann B");
	hdb_set(&f, UD_F_ROLE, "viewer");
	hdb_set(&f, UD_F_AVATAR, "http://x.example.com/p.png");
	cr_assert_eq(
	    ud_user_update(db, id, strlen(id), &f, before.etag, &u2, &err), 0,
	    "%s", err.message);
	v = view(u2);
	cr_assert(str_is(v.name, v.name_len, "Ann B"));
	cr_assert_eq(v.role, UD_ROLE_VIEWER);
	cr_assert_neq(v.etag, before.etag);
	cr_assert_geq(v.updated_ms, before.updated_ms);
	cr_assert_eq(v.created_ms, before.created_ms);
	e = newest(db, id);
	cr_assert_eq(e.event, UD_EV_UPDATED);
	cr_assert(str_is(e.details, e.details_len,
			 "\x81\xa6"
			 "fields\x93\xa4name\xa4role\xa6"
			 "avatar"));
	cr_assert_eq(log_total(db, id), 2);
	/* avatar NULL clears it */
	f = (struct ud_fields){0};
	hdb_set(&f, UD_F_AVATAR, NULL);
	f.avatar = NULL;
	cr_assert_eq(ud_user_update(db, id, strlen(id), &f, 0, &u2, &err), 0,
		     "%s", err.message);
	cr_assert_null(view(u2).avatar);
	hdb_check(db);
	ud_db_free(db);
}

Test(db, empty_or_identical_update_is_a_noop)
{
	ud_db *db = hdb_new(NULL);
	const ud_user *u = hdb_create(db, "Ann", "ann@example.com"), *u2;
	struct ud_fields f = {0};
	uint64_t etag = view(u).etag;
	char id[UD_ID_MAX + 1];

	hdb_id(u, id);
	cr_assert_eq(ud_user_update(db, id, strlen(id), &f, 0, &u2, NULL), 0);
	cr_assert_eq(u2, u);
	hdb_set(&f, UD_F_NAME, "Ann");
	hdb_set(&f, UD_F_ROLE, "user");
	cr_assert_eq(ud_user_update(db, id, strlen(id), &f, etag, &u2, NULL),
		     0);
	cr_assert_eq(u2, u);
	cr_assert_eq(view(u2).etag, etag);
	cr_assert_eq(log_total(db, id), 1);
	ud_db_free(db);
}

Test(db, update_errors_leave_the_user_unchanged)
{
	ud_db *db = hdb_new(NULL);
	const ud_user *u = hdb_create(db, "Ann", "ann@example.com");
	struct ud_fields f = {0};
	struct ud_error err = {0};
	struct ud_user_view v = view(u);
	char id[UD_ID_MAX + 1];

	hdb_create(db, "Bob", "bob@example.com");
	hdb_id(u, id);
	cr_assert_eq(ud_user_update(db, "usr_nope", 8, &f, 0, NULL, &err),
		     UD_ENOTFOUND);
	hdb_set(&f, UD_F_EMAIL, "BOB@example.com");
	cr_assert_eq(ud_user_update(db, id, strlen(id), &f, 0, NULL, &err),
		     UD_EDUPEMAIL);
	cr_assert_str_eq(err.field, "email");
	cr_assert_eq(
	    ud_user_update(db, id, strlen(id), &f, v.etag + 99, NULL, &err),
	    UD_EPRECONDITION);
	f = (struct ud_fields){0};
	hdb_set(&f, UD_F_ID, "usr_other");
	cr_assert_eq(ud_user_update(db, id, strlen(id), &f, 0, NULL, &err),
		     UD_EINVAL);
	f = (struct ud_fields){0};
	hdb_set(&f, UD_F_PASSWORD, "longenough");
	cr_assert_eq(ud_user_update(db, id, strlen(id), &f, 0, NULL, &err),
		     UD_EINVAL);
	f = (struct ud_fields){0};
	hdb_set(&f, UD_F_NAME, "");
	cr_assert_eq(ud_user_update(db, id, strlen(id), &f, 0, NULL, &err),
		     UD_EINVAL);
	cr_assert_eq(ud_user_get(db, id, strlen(id)), u);
	cr_assert_eq(view(u).etag, v.etag);
	cr_assert_eq(log_total(db, id), 1);
	hdb_check(db);
	ud_db_free(db);
}

Test(db, email_change_moves_the_index)
{
	ud_db *db = hdb_new(NULL);
	const ud_user *u = hdb_create(db, "Ann", "ann@example.com"), *u2;
	struct ud_fields f = {0};
	char id[UD_ID_MAX + 1];

	hdb_id(u, id);
	hdb_set(&f, UD_F_EMAIL, "ann@new.example.com");
	cr_assert_eq(ud_user_update(db, id, strlen(id), &f, 0, &u2, NULL), 0);
	cr_assert_null(ud_user_get_by_email(db, "ann@example.com", 15));
	cr_assert_eq(ud_user_get_by_email(db, "ANN@new.example.com", 19), u2);
	/* the old address is free again */
	hdb_create(db, "Other", "Ann@Example.com");
	/* a change of case only is a change, and keeps the index */
	f = (struct ud_fields){0};
	hdb_set(&f, UD_F_EMAIL, "ANN@new.example.com");
	cr_assert_eq(ud_user_update(db, id, strlen(id), &f, 0, &u2, NULL), 0);
	cr_assert(
	    str_is(view(u2).email, view(u2).email_len, "ANN@new.example.com"));
	hdb_check(db);
	ud_db_free(db);
}

Test(db, delete_keeps_the_log)
{
	ud_db *db = hdb_new(NULL);
	const ud_user *u = hdb_create(db, "Ann", "ann@example.com");
	struct ud_error err = {0};
	struct ud_log_page p;
	uint64_t etag = view(u).etag;
	char id[UD_ID_MAX + 1];

	hdb_id(u, id);
	cr_assert_eq(ud_user_delete(db, "usr_x", 5, 0, &err), UD_ENOTFOUND);
	cr_assert_eq(ud_user_delete(db, id, strlen(id), etag + 1, &err),
		     UD_EPRECONDITION);
	cr_assert_eq(ud_user_delete(db, id, strlen(id), etag, &err), 0);
	cr_assert_null(ud_user_get(db, id, strlen(id)));
	cr_assert_null(ud_user_get_by_email(db, "ann@example.com", 15));
	cr_assert_eq(ud_log_list(db, id, strlen(id), 1, 20, &p, NULL), 0);
	cr_assert_eq(p.total, 2);
	cr_assert_eq(p.items[0].event, UD_EV_DELETED);
	cr_assert_eq(p.items[1].event, UD_EV_CREATED);
	cr_assert_gt(p.items[0].id, p.items[1].id);
	cr_assert(str_is(p.items[0].user_id, p.items[0].user_id_len, id));
	hdb_check(db);
	/* same email, same id again: a new etag, the log continues */
	{
		struct ud_fields f = hdb_fields("Ann", "ann@example.com");
		const ud_user *n;

		hdb_set(&f, UD_F_ID, id);
		cr_assert_eq(ud_user_create(db, &f, &n, &err), 0, "%s",
			     err.message);
		cr_assert_gt(view(n).etag, etag);
		cr_assert_eq(log_total(db, id), 3);
		cr_assert_eq(newest(db, id).event, UD_EV_CREATED);
	}
	hdb_check(db);
	ud_db_free(db);
}

Test(db, suspension)
{
	ud_db *db = hdb_new(NULL);
	const ud_user *u = hdb_create(db, "Ann", "ann@example.com");
	struct ud_error err = {0};
	char id[UD_ID_MAX + 1];
	struct ud_stats st = {0};

	hdb_id(u, id);
	cr_assert_eq(ud_user_set_suspended(db, "usr_x", 5, true, NULL, &err),
		     UD_ENOTFOUND);
	cr_assert_eq(ud_user_set_suspended(db, id, strlen(id), true, &u, &err),
		     0);
	cr_assert_eq(view(u).status, UD_STATUS_SUSPENDED);
	cr_assert_eq(newest(db, id).event, UD_EV_SUSPENDED);
	ud_db_stats(db, &st);
	cr_assert_eq(st.by_role_status[UD_ROLE_USER][UD_STATUS_SUSPENDED], 1);
	cr_assert_eq(st.by_role_status[UD_ROLE_USER][UD_STATUS_ACTIVE], 0);
	/* already suspended: nothing happens */
	cr_assert_eq(ud_user_set_suspended(db, id, strlen(id), true, &u, &err),
		     0);
	cr_assert_eq(log_total(db, id), 2);
	cr_assert_eq(ud_user_set_suspended(db, id, strlen(id), false, &u, &err),
		     0);
	cr_assert_eq(view(u).status, UD_STATUS_ACTIVE);
	cr_assert_eq(newest(db, id).event, UD_EV_UNSUSPENDED);
	hdb_check(db);
	ud_db_free(db);
}

Test(db, passwords)
{
	ud_db *db = hdb_new(NULL);
	const ud_user *u = hdb_create(db, "Ann", "ann@example.com");
	struct ud_error err = {0};
	char id[UD_ID_MAX + 1], hash[UD_PWHASH_MAX];
	struct ud_log_view e;
	struct ud_stats st = {0};
	bool ok = true;

	hdb_id(u, id);
	cr_assert_eq(ud_user_password_hash_copy(db, id, strlen(id), hash), 0);
	cr_assert_str_eq(hash, "");
	cr_assert_eq(ud_user_verify_password(db, id, strlen(id), "whatever1", 9,
					     &ok, &err),
		     0);
	cr_assert_not(ok);
	cr_assert_eq(
	    ud_user_set_password(db, id, strlen(id), "short", 5, NULL, &err),
	    UD_EINVAL);
	cr_assert_eq(
	    ud_user_set_password(db, "usr_x", 5, "longenough", 10, NULL, &err),
	    UD_ENOTFOUND);
	cr_assert_eq(ud_user_set_password(db, id, strlen(id), "longenough", 10,
					  &u, &err),
		     0, "%s", err.message);
	cr_assert(view(u).has_password);
	cr_assert_eq(newest(db, id).event, UD_EV_PASSWORD_CHANGED);
	cr_assert_eq(ud_user_verify_password(db, id, strlen(id), "wrongpass", 9,
					     &ok, &err),
		     0);
	cr_assert_not(ok);
	e = newest(db, id);
	cr_assert_eq(e.event, UD_EV_PASSWORD_VERIFIED);
	/* {"valid": false, "failed_count": 2}: the decoy verify above
	 * failed too. */
	cr_assert(str_is(e.details, e.details_len,
			 "\x82\xa5valid\xc2\xac"
			 "failed_count\x02"));
	u = ud_user_get(db, id, strlen(id));
	cr_assert_eq(view(u).last_sign_in_ms, -1);
	cr_assert_eq(ud_user_verify_password(db, id, strlen(id), "longenough",
					     10, &ok, &err),
		     0);
	cr_assert(ok);
	e = newest(db, id);
	cr_assert(str_is(e.details, e.details_len, "\x81\xa5valid\xc3"));
	u = ud_user_get(db, id, strlen(id));
	cr_assert_geq(view(u).last_sign_in_ms, view(u).created_ms);
	ud_db_stats(db, &st);
	cr_assert_eq(st.failed_verifies, 2);
	cr_assert_eq(ud_user_password_hash_copy(db, id, strlen(id), hash), 0);
	cr_assert(strncmp(hash, "$argon2id$", 10) == 0);
	cr_assert_eq(ud_user_set_password_hash(db, id, strlen(id), "nohash", 6,
					       NULL, &err),
		     UD_EINVAL);
	cr_assert_eq(ud_user_set_password_hash(db, "usr_x", 5, hash,
					       strlen(hash), NULL, &err),
		     UD_ENOTFOUND);
	cr_assert_eq(ud_user_record_verify(db, "usr_x", 5, true, &err),
		     UD_ENOTFOUND);
	cr_assert_eq(ud_user_password_hash_copy(db, "usr_x", 5, hash),
		     UD_ENOTFOUND);
	cr_assert_eq(ud_user_verify_password(db, "usr_x", 5, "longenough", 10,
					     &ok, &err),
		     UD_ENOTFOUND);
	hdb_check(db);
	ud_db_free(db);
}

Test(db, identities)
{
	ud_db *db = hdb_new(NULL);
	const ud_user *u = hdb_create(db, "Ann", "ann@example.com");
	struct ud_error err = {0};
	char id[UD_ID_MAX + 1];
	struct ud_user_view v;
	struct ud_log_view e;
	size_t n = 0;

	hdb_id(u, id);
	n = strlen(id);
	cr_assert_eq(ud_user_link_identity(db, id, n, "github", 6, "gh-1", 4,
					   NULL, 0, &u, &err),
		     0, "%s", err.message);
	v = view(u);
	cr_assert(str_is(v.identities, v.identities_len,
			 "\x81\xa6github\x82\xa7user_id\xa4gh-1\xa7"
			 "details\x80"));
	e = newest(db, id);
	cr_assert_eq(e.event, UD_EV_IDENTITY_LINKED);
	cr_assert(str_is(e.details, e.details_len, "\x81\xa6target\xa6github"));
	cr_assert_eq(ud_user_link_identity(db, id, n, "google", 6, "g-9", 3,
					   "\x81\xa1k\x01", 4, &u, &err),
		     0, "%s", err.message);
	/* replacing keeps its place */
	cr_assert_eq(ud_user_link_identity(db, id, n, "github", 6, "gh-2", 4,
					   NULL, 0, &u, &err),
		     0);
	v = view(u);
	cr_assert(str_is(v.identities, v.identities_len,
			 "\x82\xa6github\x82\xa7user_id\xa4gh-2\xa7"
			 "details\x80"
			 "\xa6google\x82\xa7user_id\xa3g-9\xa7"
			 "details\x81\xa1k\x01"));
	cr_assert_eq(ud_user_unlink_identity(db, id, n, "github", 6, &u, &err),
		     0);
	cr_assert_eq(newest(db, id).event, UD_EV_IDENTITY_REMOVED);
	cr_assert_eq(ud_user_unlink_identity(db, id, n, "github", 6, &u, &err),
		     UD_ENOTFOUND);
	cr_assert_str_eq(err.field, "target");
	cr_assert_eq(
	    ud_user_unlink_identity(db, "usr_x", 5, "google", 6, NULL, &err),
	    UD_ENOTFOUND);
	cr_assert_eq(ud_user_link_identity(db, id, n, "bad target", 10, "x", 1,
					   NULL, 0, NULL, &err),
		     UD_EINVAL);
	cr_assert_eq(ud_user_link_identity(db, id, n, "gitlab", 6, "", 0, NULL,
					   0, NULL, &err),
		     UD_EINVAL);
	cr_assert_eq(ud_user_link_identity(db, id, n, "gitlab", 6, "x", 1,
					   "\x92\x01\x02", 3, NULL, &err),
		     UD_EINVAL);
	cr_assert_eq(ud_user_link_identity(db, "usr_x", 5, "gitlab", 6, "x", 1,
					   NULL, 0, NULL, &err),
		     UD_ENOTFOUND);
	v = view(ud_user_get(db, id, n));
	cr_assert(str_is(v.identities, v.identities_len,
			 "\x81\xa6google\x82\xa7user_id\xa3g-9\xa7"
			 "details\x81\xa1k\x01"));
	hdb_check(db);
	ud_db_free(db);
}

/* A user's identities are bounded (UD_IDENTITIES_MAX, 1 MiB of msgpack):
 * the link that would pass the bound is refused with a clear error and
 * changes nothing, and unlinking makes room again. */
Test(db, identities_are_bounded)
{
	ud_db *db = hdb_new(NULL);
	const ud_user *u = hdb_create(db, "Ann", "ann@example.com");
	enum { X = 8000, DET = X + 6, ENTRY = DET + 30 };
	char *det = malloc(DET), id[UD_ID_MAX + 1], target[16];
	struct ud_error err = {0};
	struct ud_user_view v;
	size_t n, linked = 0;
	uint64_t etag = 0;
	int rc = 0, i;

	/* {"k": <8,000 bytes>}: near the 8 KiB bound on one identity */
	memcpy(det, "\x81\xa1k\xda", 4);
	det[4] = (char)(X >> 8), det[5] = (char)(X & 0xff);
	memset(det + 6, 'x', X);
	hdb_id(u, id);
	n = strlen(id);
	for (i = 0; i < 1000 && rc == 0; i++) {
		snprintf(target, sizeof target, "t%03d", i);
		etag = ((const struct record *)ud_user_get(db, id, n))->etag;
		rc = ud_user_link_identity(db, id, n, target, 4, "x", 1, det,
					   DET, NULL, &err);
		linked += rc == 0;
	}
	cr_assert_eq(rc, UD_EINVAL, "the link past the bound: %d", rc);
	cr_assert_str_eq(err.field, "identities");
	cr_assert(strstr(err.message, "at most"), "%s", err.message);
	v = view(ud_user_get(db, id, n));
	cr_assert_leq(v.identities_len, UD_IDENTITIES_MAX);
	cr_assert_gt(v.identities_len + ENTRY, UD_IDENTITIES_MAX,
		     "refused at %zu bytes, short of the bound",
		     v.identities_len);
	cr_assert_eq(((const struct record *)ud_user_get(db, id, n))->etag,
		     etag, "the refused link changed the user");
	cr_assert_eq(ud_user_unlink_identity(db, id, n, "t000", 4, NULL, &err),
		     0);
	cr_assert_eq(ud_user_link_identity(db, id, n, "t999", 4, "x", 1, det,
					   DET, NULL, &err),
		     0, "%s", err.message);
	cr_assert_geq(linked, 100);
	hdb_check(db);
	free(det);
	ud_db_free(db);
}

Test(db, etags_are_unique_across_the_store)
{
	ud_db *db = hdb_new(NULL);
	uint64_t seen[64];
	char email[64];
	int i, j;

	for (i = 0; i < 64; i++) {
		snprintf(email, sizeof(email), "u%d@example.com", i);
		seen[i] = view(hdb_create(db, "U", email)).etag;
		for (j = 0; j < i; j++)
			cr_assert_neq(seen[i], seen[j]);
	}
	ud_db_free(db);
}

Test(db, log_keeps_the_newest_and_pages)
{
	struct ud_options o = ud_options_default;
	ud_db *db;
	const ud_user *u;
	struct ud_log_page p;
	char id[UD_ID_MAX + 1];
	uint64_t prev = UINT64_MAX;
	unsigned page, i, k;

	o.log_keep = 100;
	db = hdb_new(&o);
	u = hdb_create(db, "Ann", "ann@example.com");
	hdb_id(u, id);
	for (k = 0; k < 130; k++)
		cr_assert_eq(ud_user_set_suspended(db, id, strlen(id),
						   k % 2 == 0, NULL, NULL),
			     0);
	for (page = 1; page <= 5; page++) {
		cr_assert_eq(
		    ud_log_list(db, id, strlen(id), page, 30, &p, NULL), 0);
		cr_assert_eq(p.total, 100);
		cr_assert_eq(p.pages, 4);
		cr_assert_eq(p.count, page < 4 ? 30 : page == 4 ? 10 : 0);
		for (i = 0; i < p.count; i++) {
			cr_assert_lt(p.items[i].id, prev);
			prev = p.items[i].id;
		}
	}
	cr_assert_eq(ud_log_list(db, id, strlen(id), 0, 30, &p, NULL),
		     UD_EINVAL);
	cr_assert_eq(ud_log_list(db, id, strlen(id), 1, 101, &p, NULL),
		     UD_EINVAL);
	cr_assert_eq(ud_log_list(db, "usr_none", 8, 1, 10, &p, NULL), 0);
	cr_assert_eq(p.total, 0);
	cr_assert_eq(p.count, 0);
	struct ud_error err;
	cr_assert_eq(ud_log_list(db, "notanid", 7, 1, 10, &p, &err), UD_EINVAL);
	cr_assert_str_eq(err.field, "user_id");
	cr_assert_eq(ud_log_list(db, "usr_a b", 7, 1, 10, &p, &err), UD_EINVAL);
	hdb_check(db);
	ud_db_free(db);
}

Test(db, created_event_is_implicit_until_needed)
{
	ud_db *db = hdb_new(NULL);
	struct ud_stats st = {0};
	char email[64], id[UD_ID_MAX + 1];
	const ud_user *u = NULL;
	struct ud_log_page p;
	int i;

	for (i = 0; i < 1000; i++) {
		snprintf(email, sizeof(email), "u%d@example.com", i);
		u = hdb_create(db, "U", email);
	}
	cr_assert_eq(db->log.events, 0); /* nothing allocated */
	ud_db_stats(db, &st);
	cr_assert_eq(st.log_events, 1000);
	hdb_id(u, id);
	cr_assert_eq(ud_log_list(db, id, strlen(id), 1, 10, &p, NULL), 0);
	cr_assert_eq(p.total, 1);
	cr_assert_eq(p.items[0].event, UD_EV_CREATED);
	cr_assert_eq(p.items[0].created_ms, view(u).created_ms);
	cr_assert(str_is(p.items[0].details, p.items[0].details_len, "\x80"));
	ud_user_set_suspended(db, id, strlen(id), true, NULL, NULL);
	cr_assert_eq(db->log.events, 2);
	ud_db_stats(db, &st);
	cr_assert_eq(st.log_events, 1001);
	cr_assert_eq(log_total(db, id), 2);
	hdb_check(db);
	ud_db_free(db);
}

Test(db, deleted_logs_are_bounded_fifo)
{
	struct ud_options o = ud_options_default;
	ud_db *db;
	char email[64], ids[5][UD_ID_MAX + 1];
	int i;

	o.log_deleted_max = 3;
	db = hdb_new(&o);
	for (i = 0; i < 5; i++) {
		snprintf(email, sizeof(email), "u%d@example.com", i);
		hdb_id(hdb_create(db, "U", email), ids[i]);
	}
	for (i = 0; i < 5; i++) {
		cr_assert_eq(
		    ud_user_delete(db, ids[i], strlen(ids[i]), 0, NULL), 0);
		hdb_check(db);
	}
	cr_assert_eq(log_total(db, ids[0]), 0);
	cr_assert_eq(log_total(db, ids[1]), 0);
	for (i = 2; i < 5; i++)
		cr_assert_eq(log_total(db, ids[i]), 2);
	ud_db_free(db);
}

/* ---- lists ----------------------------------------------------------------
 */

static ud_db *list_fixture(int n)
{
	static const char *roles[] = {"admin", "user", "viewer"};
	static const char *stats[] = {"active", "inactive", "suspended"};
	ud_db *db = hdb_new(NULL);
	char email[64], name[64];
	struct ud_fields f;
	int i;

	for (i = 0; i < n; i++) {
		snprintf(email, sizeof(email), "user%d@example.com", i);
		snprintf(name, sizeof(name), "User Name %d", i);
		f = hdb_fields(name, email);
		hdb_set(&f, UD_F_ROLE, roles[i % 3]);
		hdb_set(&f, UD_F_STATUS, stats[(i / 3) % 3]);
		cr_assert_eq(ud_user_create(db, &f, NULL, NULL), 0);
	}
	return db;
}

static int name_num(const ud_user *u)
{
	struct ud_user_view v = view(u);
	char buf[64];

	memcpy(buf, v.name, v.name_len);
	buf[v.name_len] = 0;
	return atoi(buf + 10);
}

Test(db, list_filters_pages_and_orders)
{
	ud_db *db = list_fixture(900);
	struct ud_query q;
	struct ud_page p;
	unsigned i;

	ud_query_init(&q);
	cr_assert_eq(ud_user_list(db, &q, &p, NULL), 0);
	cr_assert_eq(p.total, 900);
	cr_assert_eq(p.pages, 45);
	cr_assert_eq(p.count, 20);
	cr_assert_eq(name_num(p.items[0]), 899); /* newest first */
	q.asc = true;
	q.role = UD_ROLE_VIEWER;
	q.status = UD_STATUS_SUSPENDED;
	q.page = 3;
	q.limit = 7;
	cr_assert_eq(ud_user_list(db, &q, &p, NULL), 0);
	cr_assert_eq(p.total, 100);
	cr_assert_eq(p.pages, 15);
	for (i = 0; i < p.count; i++) {
		/* matches are i % 3 == 2 and (i / 3) % 3 == 2: 8, 17, 26... */
		int k = 14 + (int)i;

		cr_assert_eq(name_num(p.items[i]), 9 * k + 8);
	}
	q.page = 16;
	cr_assert_eq(ud_user_list(db, &q, &p, NULL), 0);
	cr_assert_eq(p.count, 0);
	cr_assert_eq(p.total, 100);
	ud_query_init(&q);
	q.search = "NAME 12";
	q.search_len = 7;
	cr_assert_eq(ud_user_list(db, &q, &p, NULL), 0);
	cr_assert_eq(p.total, 11); /* 12, 120..129 */
	cr_assert_eq(name_num(p.items[0]), 129);
	q.email = "USER12@example.com";
	q.email_len = 18;
	cr_assert_eq(ud_user_list(db, &q, &p, NULL), 0);
	cr_assert_eq(p.total, 1);
	cr_assert_eq(name_num(p.items[0]), 12);
	q.role = UD_ROLE_ADMIN; /* user12 is admin: 12 % 3 == 0 */
	cr_assert_eq(ud_user_list(db, &q, &p, NULL), 0);
	cr_assert_eq(p.total, 1);
	q.role = UD_ROLE_USER;
	cr_assert_eq(ud_user_list(db, &q, &p, NULL), 0);
	cr_assert_eq(p.total, 0);
	ud_db_free(db);
}

Test(db, list_rejects_bad_queries)
{
	ud_db *db = list_fixture(3);
	struct ud_error err = {0};
	struct ud_query q;
	struct ud_page p;

	ud_query_init(&q);
	q.page = 0;
	cr_assert_eq(ud_user_list(db, &q, &p, &err), UD_EINVAL);
	cr_assert_str_eq(err.field, "page");
	ud_query_init(&q);
	q.limit = 101;
	cr_assert_eq(ud_user_list(db, &q, &p, &err), UD_EINVAL);
	cr_assert_str_eq(err.field, "limit");
	ud_query_init(&q);
	q.role = 3;
	cr_assert_eq(ud_user_list(db, &q, &p, &err), UD_EINVAL);
	ud_query_init(&q);
	q.status = -2;
	cr_assert_eq(ud_user_list(db, &q, &p, &err), UD_EINVAL);
	ud_db_free(db);
}

Test(db, search_is_utf8_case_insensitive)
{
	ud_db *db = hdb_new(NULL);
	struct ud_query q;
	struct ud_page p;

	hdb_create(db, "Zoë Ångström", "zoe@example.com");
	hdb_create(db, "ЖЕНЯ Петров", "zhenya@example.com");
	hdb_create(db, "李小龍", "bruce@example.com");
	ud_query_init(&q);
	q.search = "ÅNGSTRÖM";
	q.search_len = strlen(q.search);
	cr_assert_eq(ud_user_list(db, &q, &p, NULL), 0);
	cr_assert_eq(p.total, 1);
	q.search = "женя";
	q.search_len = strlen(q.search);
	cr_assert_eq(ud_user_list(db, &q, &p, NULL), 0);
	cr_assert_eq(p.total, 1);
	q.search = "小";
	q.search_len = strlen(q.search);
	cr_assert_eq(ud_user_list(db, &q, &p, NULL), 0);
	cr_assert_eq(p.total, 1);
	q.search = "EXAMPLE.COM";
	q.search_len = strlen(q.search);
	cr_assert_eq(ud_user_list(db, &q, &p, NULL), 0);
	cr_assert_eq(p.total, 3);
	ud_db_free(db);
}

static int foreach_cb(const ud_user *u, void *ctx)
{
	int *k = ctx;

	cr_assert_eq(name_num(u), *k);
	return ++*k == 5 ? 42 : 0;
}

Test(db, foreach_walks_creation_order)
{
	ud_db *db = list_fixture(10);
	struct ud_query q;
	struct ud_page p;
	int n = 0;

	cr_assert_eq(ud_user_foreach(db, foreach_cb, &n), 42);
	cr_assert_eq(n, 5);
	ud_query_init(&q);
	q.asc = true;
	cr_assert_eq(ud_user_list(db, &q, &p, NULL), 0);
	cr_assert_eq(name_num(p.items[0]), 0);
	ud_db_free(db);
}

/* ---- the journal seam ------------------------------------------------------
 */

Test(db, refused_journal_applies_nothing)
{
	ud_db *db = hdb_new(NULL);
	struct hdb_mirror m = {0};
	const ud_user *u = hdb_create(db, "Ann", "ann@example.com");
	struct ud_fields f = hdb_fields("Bob", "bob@example.com");
	struct ud_error err = {0};
	struct ud_stats st = {0};
	char id[UD_ID_MAX + 1];
	uint64_t etag = view(u).etag, events = db->last_event;

	hdb_id(u, id);
	ud_db_set_journal(db, hdb_mirror_cb, &m);
	m.refuse = UD_EUNAVAILABLE;
	cr_assert_eq(ud_user_create(db, &f, NULL, &err), UD_EUNAVAILABLE);
	cr_assert_eq(ud_user_delete(db, id, strlen(id), 0, &err),
		     UD_EUNAVAILABLE);
	cr_assert_eq(
	    ud_user_set_suspended(db, id, strlen(id), true, NULL, &err),
	    UD_EUNAVAILABLE);
	cr_assert_eq(ud_user_record_verify(db, id, strlen(id), false, &err),
		     UD_EUNAVAILABLE);
	ud_db_stats(db, &st);
	cr_assert_eq(st.users, 1);
	cr_assert_eq(st.failed_verifies, 0);
	cr_assert_eq(view(ud_user_get(db, id, strlen(id))).etag, etag);
	cr_assert_eq(db->last_event, events);
	cr_assert_eq(log_total(db, id), 1);
	hdb_check(db);
	m.refuse = 0;
	cr_assert_eq(ud_user_create(db, &f, NULL, &err), 0);
	cr_assert_eq(m.records, 1);
	ud_buf_free(&m.last);
	ud_db_free(db);
}

Test(db, journal_mirror_and_dump_rebuild_the_same_store)
{
	ud_db *db = hdb_new(NULL), *copy;
	struct hdb_mirror m = {0};
	char email[64], id[UD_ID_MAX + 1], why[200];
	struct ud_fields f;
	const ud_user *u;
	bool ok;
	int i;

	m.db = hdb_new(NULL);
	ud_db_set_journal(db, hdb_mirror_cb, &m);
	for (i = 0; i < 300; i++) {
		snprintf(email, sizeof(email), "u%d@example.com", i);
		u = hdb_create(db, "U", email);
		hdb_id(u, id);
		if (i % 3 == 0)
			ud_user_set_suspended(db, id, strlen(id), true, NULL,
					      NULL);
		if (i % 5 == 0)
			ud_user_link_identity(db, id, strlen(id), "github", 6,
					      "x", 1, NULL, 0, NULL, NULL);
		if (i % 7 == 0)
			ud_user_record_verify(db, id, strlen(id), i % 2, NULL);
		if (i % 11 == 0) {
			f = (struct ud_fields){0};
			hdb_set(&f, UD_F_ROLE, "admin");
			hdb_set(&f, UD_F_NAME, "Renamed");
			ud_user_update(db, id, strlen(id), &f, 0, NULL, NULL);
		}
		if (i % 4 == 1)
			ud_user_delete(db, id, strlen(id), 0, NULL);
	}
	ud_user_verify_password(db, id, strlen(id), "nopassword", 10, &ok,
				NULL);
	hdb_check(db);
	hdb_check(m.db);
	cr_assert_eq(hdb_compare(db, m.db, why, sizeof(why)), 0, "mirror: %s",
		     why);
	copy = hdb_dump_copy(db);
	hdb_check(copy);
	cr_assert_eq(hdb_compare(db, copy, why, sizeof(why)), 0, "dump: %s",
		     why);
	ud_db_free(copy);
	ud_db_free(m.db);
	ud_buf_free(&m.last);
	ud_db_free(db);
}

Test(db, apply_rejects_damaged_records)
{
	ud_db *db = hdb_new(NULL), *other = hdb_new(NULL);
	struct hdb_mirror m = {0};
	struct ud_error err = {0};
	size_t cut;

	ud_db_set_journal(db, hdb_mirror_cb, &m);
	hdb_create(db, "Ann", "ann@example.com");
	cr_assert_gt(m.last.len, 10);
	for (cut = 0; cut < m.last.len; cut++)
		cr_assert_eq(ud_db_apply(other, m.last.data, cut, &err),
			     UD_ECORRUPT, "cut at %zu", cut);
	cr_assert_eq(ud_db_apply(other, "\x93\x07\x01\x02", 4, &err),
		     UD_ECORRUPT);
	cr_assert_eq(ud_db_apply(other, m.last.data, m.last.len, &err), 0);
	/* the same create again contradicts the state */
	cr_assert_neq(ud_db_apply(other, m.last.data, m.last.len, &err), 0);
	hdb_check(other);
	ud_buf_free(&m.last);
	ud_db_free(db);
	ud_db_free(other);
}

Test(db, options_are_checked)
{
	struct ud_options o = ud_options_default;
	struct ud_error err = {0};

	o.log_keep = 10;
	cr_assert_null(ud_db_new(&o, &err));
	cr_assert_eq(err.code, UD_EINVAL);
	cr_assert_str_eq(err.field, "log_keep");
}

/* ---- ud_db_apply refuses records that contradict the store ----------------
 * (fuzz findings, inputs in tests/fuzz/regressions/apply and recover) */

static int dump_buf_cb(void *ctx, const void *rec, size_t len)
{
	uint32_t n = (uint32_t)len;

	cr_assert_eq(ud_buf_append(ctx, &n, sizeof(n)), 0);
	cr_assert_eq(ud_buf_append(ctx, rec, len), 0);
	return 0;
}

static void dump_to(ud_db *db, struct ud_buf *b)
{
	b->len = 0;
	cr_assert_eq(ud_db_dump(db, dump_buf_cb, b), 0);
}

static int apply_change(ud_db *db, const struct change *ch,
			struct ud_error *err)
{
	struct ud_buf enc = {0};
	int rc;

	cr_assert_eq(change_encode(ch, &enc), 0);
	memset(err, 0, sizeof(*err));
	rc = ud_db_apply(db, enc.data, enc.len, err);
	ud_buf_free(&enc);
	return rc;
}

/* ch is refused as UD_ECORRUPT with `why` in the message and changes
 * nothing; the store stays sound. */
static void refused(ud_db *db, const struct change *ch, const char *why)
{
	struct ud_buf before = {0}, after = {0};
	struct ud_error err;

	dump_to(db, &before);
	cr_assert_eq(apply_change(db, ch, &err), UD_ECORRUPT,
		     "accepted a record that %s", why);
	cr_assert(strstr(err.message, why), "message \"%s\", want \"%s\"",
		  err.message, why);
	dump_to(db, &after);
	cr_assert(before.len == after.len &&
		      memcmp(before.data, after.data, before.len) == 0,
		  "a refused record (%s) changed the store", why);
	hdb_check(db);
	ud_buf_free(&before);
	ud_buf_free(&after);
}

static void accepted(ud_db *db, const struct change *ch)
{
	struct ud_error err;

	cr_assert_eq(apply_change(db, ch, &err), 0, "refused: %s", err.message);
	hdb_check(db);
}

/* A user record with name "X" and the given times and counters. */
static struct record *user_rec(const char *id, const char *email,
			       int64_t created, int64_t updated, uint64_t etag,
			       uint64_t seq)
{
	struct record_parts p = {.id = id,
				 .id_len = strlen(id),
				 .name = "X",
				 .name_len = 1,
				 .email = email,
				 .email_len = strlen(email)};
	struct record *r = record_new(&p);

	cr_assert(r);
	r->created_ms = created;
	r->updated_ms = updated;
	r->etag = etag;
	r->seq = seq;
	return r;
}

static struct change_event event_now(ud_db *db, int type)
{
	return (struct change_event){db->last_event + 1, db->last_ms + 1, type,
				     EMPTY_MAP, 1};
}

/* The same record with the next etag and a later update time. */
static struct record *next_state(ud_db *db, const char *id)
{
	struct record *r = record_dup(db_find(db, id, strlen(id)));

	cr_assert(r);
	r->etag = db->last_etag + 1;
	r->updated_ms = db->last_ms + 1;
	return r;
}

/* One user with a materialised log: created, then updated. */
static ud_db *apply_fixture(char *id)
{
	ud_db *db = hdb_new(NULL);
	struct ud_fields f = {0};

	hdb_id(hdb_create(db, "Ann", "ann@example.com"), id);
	hdb_set(&f, UD_F_NAME, "Ann B");
	cr_assert_eq(ud_user_update(db, id, strlen(id), &f, 0, NULL, NULL), 0);
	hdb_create(db, "Bob", "bob@example.com");
	return db;
}

/* ---- the put encoder writes what msgpack-c's packer writes ------------ */

static int ref_cb(void *data, const char *buf, size_t len)
{
	return ud_buf_append(data, buf, len);
}

static void ref_raw(msgpack_packer *pk, bool bin, const void *s, size_t n)
{
	if (!bin && !s) {
		msgpack_pack_nil(pk);
	} else if (bin) {
		msgpack_pack_bin(pk, n);
		msgpack_pack_bin_body(pk, s, n);
	} else {
		msgpack_pack_str(pk, n);
		msgpack_pack_str_body(pk, s, n);
	}
}

/* The put record of change.c's format comment, packed by msgpack-c. */
static void ref_put(const struct change *ch, struct ud_buf *b)
{
	const struct record *r = ch->rec;
	struct record_parts p;
	msgpack_packer pk;

	record_parts(r, &p);
	msgpack_packer_init(&pk, b, ref_cb);
	msgpack_pack_array(&pk, 3);
	msgpack_pack_int(&pk, CH_PUT);
	msgpack_pack_array(&pk, 16);
	ref_raw(&pk, false, p.id, p.id_len);
	ref_raw(&pk, false, p.name, p.name_len);
	ref_raw(&pk, false, p.email, p.email_len);
	ref_raw(&pk, false, p.avatar, p.avatar_len);
	ref_raw(&pk, true, p.custom, p.custom_len);
	ref_raw(&pk, true, p.ident, p.ident_len);
	ref_raw(&pk, false, p.pw, p.pw_len);
	msgpack_pack_uint8(&pk, r->role);
	msgpack_pack_uint8(&pk, r->status);
	msgpack_pack_int64(&pk, r->created_ms);
	msgpack_pack_int64(&pk, r->updated_ms);
	msgpack_pack_int64(&pk, r->last_sign_in_ms);
	msgpack_pack_uint64(&pk, r->etag);
	msgpack_pack_uint64(&pk, r->seq);
	msgpack_pack_uint32(&pk, r->failed_verifies);
	if (r->flags & REC_LOADED)
		msgpack_pack_true(&pk);
	else
		msgpack_pack_false(&pk);
	if (!ch->has_event) {
		msgpack_pack_nil(&pk);
		return;
	}
	msgpack_pack_array(&pk, 4);
	msgpack_pack_uint64(&pk, ch->ev.id);
	msgpack_pack_int(&pk, ch->ev.type);
	msgpack_pack_int64(&pk, ch->ev.ms);
	ref_raw(&pk, true, ch->ev.details_len ? ch->ev.details : "\x80",
		ch->ev.details_len ? ch->ev.details_len : 1);
}

Test(apply, put_encoding_is_msgpack_c_s_bytes)
{
	static const size_t lens[] = {1, 31, 32, 255, 256, 1023};
	static const int64_t times[] = {-1,
					0,
					127,
					128,
					255,
					256,
					65535,
					65536,
					-33,
					-128,
					-129,
					-32768,
					-32769,
					INT32_MIN,
					-2147483649LL,
					4294967295LL,
					4294967296LL,
					253402300799999LL};
	static const uint64_t counters[] = {
	    1,	   127,	  128,	       255,	    256,
	    65535, 65536, 4294967295u, 4294967296u, REC_COUNTER_MAX};
	char *big = malloc(70000), email[300];
	struct ud_buf got = {0}, want = {0};
	struct record *r;
	size_t k = 0;

	memset(big, 'x', 70000);
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++, k++) {
		size_t el = lens[i] < 250 ? lens[i] : 250;
		memset(email, 'e', sizeof email);
		memcpy(email + el - (el > 6 ? 6 : 0), "@x.com", el > 6 ? 6 : 0);
		struct record_parts p = {
		    .id = big,
		    .id_len = lens[i] < 100 ? lens[i] : 100,
		    .name = big,
		    .name_len = lens[i],
		    .email = email,
		    .email_len = el,
		    .avatar = k % 2 ? big : NULL,
		    .avatar_len = k % 2 ? lens[(i + 2) % 6] : 0,
		    .custom = k % 3 ? big : NULL,
		    .custom_len = k % 3 ? lens[(i + 3) % 6] : 0,
		    .ident = big,
		    .ident_len = 60000 + i * 1000, /* bin16 and bin32 */
		    .pw = k % 2 ? NULL : big,
		    .pw_len = k % 2 ? 0 : 97};
		for (size_t t = 0; t < sizeof(times) / sizeof(times[0]); t++) {
			struct change ch = {.type = CH_PUT};

			cr_assert_not_null(r = record_new(&p));
			r->role = t % 3;
			r->status = (t + i) % 3;
			r->created_ms = times[t];
			r->updated_ms = times[(t + 5) % 18];
			r->last_sign_in_ms = times[(t + 7) % 18];
			r->etag = counters[t % 10];
			r->seq = counters[(t + 3) % 10];
			r->failed_verifies = (uint32_t)counters[(t + 6) % 9];
			if (t % 4 == 1)
				r->flags |= REC_LOADED;
			ch.rec = r;
			ch.has_event = t % 2;
			ch.ev = (struct change_event){
			    counters[(t + 1) % 10], (int)(t % 9), times[t],
			    t % 3 ? big : NULL, t % 3 ? lens[t % 6] : 0};
			got.len = want.len = 0;
			cr_assert_eq(change_encode(&ch, &got), 0);
			ref_put(&ch, &want);
			cr_assert(got.len == want.len &&
				      memcmp(got.data, want.data, got.len) == 0,
				  "lens %zu, times %zu: %zu bytes, want %zu", i,
				  t, got.len, want.len);
			free(r);
		}
	}
	free(big);
	ud_buf_free(&got);
	ud_buf_free(&want);
}

Test(apply, refuses_event_not_newer_than_the_last)
{
	char id[UD_ID_MAX + 1], why[200];
	ud_db *db = apply_fixture(id), *copy;
	struct change ch = {.type = CH_EVENT, .id = id, .has_event = true};

	ch.id_len = strlen(id);
	ch.ev = event_now(db, UD_EV_PASSWORD_VERIFIED);
	ch.ev.id = 1; /* older than the user's newest event */
	refused(db, &ch, "event id 1 is not after");
	ch.ev.id = db->last_event;
	refused(db, &ch, "is not after");
	ch.type = CH_DEL;
	ch.ev.type = UD_EV_DELETED;
	refused(db, &ch, "is not after");
	ch = (struct change){.type = CH_PUT, .has_event = true};
	ch.rec = next_state(db, id);
	ch.ev = event_now(db, UD_EV_UPDATED);
	ch.ev.id = 2;
	refused(db, &ch, "is not after");
	ch.ev.id = db->last_event + 1;
	ch.rec->etag = db->last_etag; /* an etag already issued */
	refused(db, &ch, "etag");
	ch.rec->etag = db->last_etag + 1;
	accepted(db, &ch);
	free(ch.rec);
	ch = (struct change){.type = CH_EVENT, .id = id, .has_event = true};
	ch.id_len = strlen(id);
	ch.ev = event_now(db, UD_EV_PASSWORD_VERIFIED);
	accepted(db, &ch);
	copy = hdb_dump_copy(db);
	cr_assert_eq(hdb_compare(db, copy, why, sizeof(why)), 0, "%s", why);
	ud_db_free(copy);
	ud_db_free(db);
}

Test(apply, refuses_times_and_counters_out_of_range)
{
	char id[UD_ID_MAX + 1];
	ud_db *db = apply_fixture(id);
	int64_t t = db->last_ms + 10;
	uint64_t seq = db->last_event + 1;
	struct change ch = {.type = CH_PUT};

	ch.rec = user_rec("usr_new", "new@example.com", t, t - 1, 99, seq);
	refused(db, &ch, "times out of range"); /* updated before created */
	ch.rec->created_ms = ch.rec->updated_ms = 253402300800000LL; /* 10000 */
	refused(db, &ch, "times out of range");
	ch.rec->created_ms = ch.rec->updated_ms = t;
	ch.rec->last_sign_in_ms = INT64_MAX;
	refused(db, &ch, "times out of range");
	ch.rec->last_sign_in_ms = -1;
	ch.rec->etag = 0;
	refused(db, &ch, "etag or seq out of range");
	ch.rec->etag = 99;
	ch.rec->seq = 1; /* created before the newest user */
	refused(db, &ch, "not newer than the newest user");
	ch.rec->seq = seq;
	ch.rec->created_ms = ch.rec->updated_ms = 0;
	refused(db, &ch, "not newer than the newest user");
	ch.rec->created_ms = ch.rec->updated_ms = t;
	accepted(db, &ch); /* as in a dump: no event */
	cr_assert_eq(db->last_etag, 99);
	free(ch.rec);

	ch = (struct change){.type = CH_COUNTERS, .last_ms = INT64_MAX};
	refused(db, &ch, "counters out of range");
	ch.last_ms = 0;
	ch.last_event = UINT64_MAX;
	refused(db, &ch, "counters out of range");
	ch.last_event = 0;
	ch.last_etag = REC_COUNTER_MAX + 1;
	refused(db, &ch, "counters out of range");
	ch.last_etag = 1000;
	accepted(db, &ch);
	cr_assert_eq(db->last_etag, 1000);
	ud_db_free(db);
}

/* The encoded put of ch with the 5-byte msgpack uint 0x00abcdef replaced
 * by the 9-byte uint v: a counter the header's 48 bits cannot hold. */
static int apply_with_counter(ud_db *db, const struct change *ch, uint64_t v,
			      struct ud_error *err)
{
	static const char mark[5] = {(char)0xce, 0x00, (char)0xab, (char)0xcd,
				     (char)0xef};
	struct ud_buf enc = {0}, out = {0};
	char big[9] = {(char)0xcf};
	char *at;
	int rc;

	for (int i = 0; i < 8; i++)
		big[1 + i] = (char)(v >> (56 - 8 * i));
	cr_assert_eq(change_encode(ch, &enc), 0);
	at = memmem(enc.data, enc.len, mark, sizeof(mark));
	cr_assert(at, "the marker counter is in the encoding");
	ud_buf_append(&out, enc.data, (size_t)(at - enc.data));
	ud_buf_append(&out, big, sizeof(big));
	ud_buf_append(&out, at + sizeof(mark),
		      enc.len - (size_t)(at - enc.data) - sizeof(mark));
	memset(err, 0, sizeof(*err));
	rc = ud_db_apply(db, out.data, out.len, err);
	ud_buf_free(&enc);
	ud_buf_free(&out);
	return rc;
}

Test(apply, refuses_etag_or_seq_past_48_bits)
{
	char id[UD_ID_MAX + 1];
	ud_db *db = apply_fixture(id);
	int64_t t = db->last_ms + 10;
	struct ud_error err;
	struct change ch = {.type = CH_PUT};

	/* values past 48 bits whose low bits are sound counters: kept to 48
	 * bits they would pass every other check */
	uint64_t etag = db->last_etag + 100, seq = db->last_event + 1;

	const struct {
		uint64_t etag, seq,
		    file; /* 0xabcdef in the file becomes file */
	} bad[] = {{0xabcdef, seq, (REC_COUNTER_MAX + 1) + etag},
		   {etag, 0xabcdef, (REC_COUNTER_MAX + 1) + seq}};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ch.rec = user_rec("usr_new", "new@example.com", t, t,
				  bad[i].etag, bad[i].seq);
		cr_assert_eq(apply_with_counter(db, &ch, bad[i].file, &err),
			     UD_ECORRUPT, "case %zu", i);
		cr_assert_null(ud_user_get(db, "usr_new", 7));
		free(ch.rec);
	}
	/* the low bits alone are accepted (the check above is the range) */
	ch.rec = user_rec("usr_new", "new@example.com", t, t, etag, 0xabcdef);
	cr_assert_eq(apply_with_counter(db, &ch, seq, &err), 0, "%s",
		     err.message);
	cr_assert_eq(ud_user_delete(db, "usr_new", 7, 0, &err), 0);
	free(ch.rec);
	/* the largest etag the header holds is taken as it is */
	ch.rec = user_rec("usr_new", "new@example.com", t, t, 0xabcdef,
			  db->last_event + 1);
	cr_assert_eq(apply_with_counter(db, &ch, REC_COUNTER_MAX, &err), 0,
		     "%s", err.message);
	free(ch.rec);
	cr_assert_eq(
	    ((const struct record *)ud_user_get(db, "usr_new", 7))->etag,
	    REC_COUNTER_MAX);
	cr_assert_eq(db->last_etag, REC_COUNTER_MAX);
	hdb_check(db);
	ud_db_free(db);
}

Test(apply, used_up_counters_refuse_writes_not_reads)
{
	char id[UD_ID_MAX + 1];
	ud_db *db = apply_fixture(id);
	struct change ch = {.type = CH_COUNTERS};
	struct ud_fields f = {0};
	struct ud_error err;
	const ud_user *u;

	ch.last_ms = db->last_ms;
	ch.last_event = db->last_event;
	ch.last_etag = REC_COUNTER_MAX - 1;
	accepted(db, &ch);
	hdb_set(&f, UD_F_NAME, "Ann C"); /* takes the last etag */
	cr_assert_eq(ud_user_update(db, id, strlen(id), &f, 0, &u, &err), 0,
		     "%s", err.message);
	cr_assert_eq(((const struct record *)u)->etag, REC_COUNTER_MAX);
	hdb_set(&f, UD_F_NAME, "Ann D");
	cr_assert_eq(ud_user_update(db, id, strlen(id), &f, 0, &u, &err),
		     UD_EUNAVAILABLE);
	cr_assert(strstr(err.message, "used up"), "%s", err.message);
	cr_assert_not_null(ud_user_get(db, id, strlen(id)), "reads go on");
	hdb_check(db);
	ud_db_free(db);
}

Test(apply, refused_record_changes_nothing)
{
	char id[UD_ID_MAX + 1];
	ud_db *db = apply_fixture(id);
	uint64_t etag = db->last_etag, last = db->last_event;
	int64_t t = db->last_ms + 10;
	struct change ch = {.type = CH_PUT, .has_event = true};

	/* a create of a taken email, with counters far ahead: the counters
	 * were raised before the email was found taken */
	ch.rec = user_rec("usr_new", "ANN@example.com", t, t, 1000, 1000);
	ch.ev = (struct change_event){1000, t, UD_EV_CREATED, EMPTY_MAP, 1};
	refused(db, &ch, "second user with email");
	cr_assert_eq(db->last_etag, etag);
	cr_assert_eq(db->last_event, last);
	free(ch.rec);
	/* a create of a live id */
	ch.rec = user_rec(id, "new@example.com", t, t, 1000, 1000);
	refused(db, &ch, "creates existing user");
	free(ch.rec);
	/* the created event must be the record's own */
	ch.rec = user_rec("usr_new", "new@example.com", t, t, 1000, 1001);
	ch.ev.id = 1001;
	ch.ev.ms = t + 1;
	refused(db, &ch, "user.created event");
	/* an update of a missing user */
	ch.ev = event_now(db, UD_EV_UPDATED);
	ch.rec->seq = ch.ev.id;
	refused(db, &ch, "updates missing user");
	free(ch.rec);
	/* another user's email; a changed seq or creation time */
	ch.rec = next_state(db, id);
	ch.ev = event_now(db, UD_EV_UPDATED);
	ch.rec->email_len = 0; /* rebuilt below with Bob's email */
	free(ch.rec);
	ch.rec = user_rec(id, "bob@EXAMPLE.com", 0, 0, 0, 0);
	{
		const struct record *old = db_find(db, id, strlen(id));

		ch.rec->created_ms = old->created_ms;
		ch.rec->seq = old->seq;
		ch.rec->updated_ms = db->last_ms + 1;
		ch.rec->etag = db->last_etag + 1;
		refused(db, &ch, "email of another user");
		free(ch.rec);
		ch.rec = next_state(db, id);
		ch.rec->seq = old->seq + 1;
		refused(db, &ch, "inconsistent with the stored user");
		ch.rec->seq = old->seq;
		ch.rec->created_ms = old->created_ms - 1;
		refused(db, &ch, "inconsistent with the stored user");
		ch.rec->created_ms = old->created_ms;
		ch.has_event = false;
		refused(db, &ch, "without an event");
		free(ch.rec);
	}
	/* a delete or event of a missing user, a delete without its event */
	ch = (struct change){.type = CH_DEL, .id = "usr_gone", .id_len = 8};
	ch.has_event = true;
	ch.ev = event_now(db, UD_EV_DELETED);
	refused(db, &ch, "deletes missing user");
	ch.type = CH_EVENT;
	ch.ev.type = UD_EV_PASSWORD_VERIFIED;
	refused(db, &ch, "logs for missing user");
	ch = (struct change){.type = CH_DEL, .id = id, .id_len = strlen(id)};
	refused(db, &ch, "wrong or missing event");
	ch.has_event = true;
	ch.ev = event_now(db, UD_EV_UPDATED);
	refused(db, &ch, "wrong or missing event");
	ch.ev.type = UD_EV_DELETED;
	accepted(db, &ch);
	ud_db_free(db);
}

Test(apply, refuses_invalid_fields)
{
	char id[UD_ID_MAX + 1];
	ud_db *db = apply_fixture(id);
	int64_t t = db->last_ms + 10;
	uint64_t seq = db->last_event + 1;
	struct change ch = {.type = CH_PUT};
	struct record_parts p;

	ch.rec = user_rec("usr_new", "no-at-sign", t, t, 99, seq);
	refused(db, &ch, "email");
	free(ch.rec);
	ch.rec = user_rec("bad id", "new@example.com", t, t, 99, seq);
	refused(db, &ch, "id must be");
	free(ch.rec);
	p = (struct record_parts){.id = "usr_new",
				  .id_len = 7,
				  .name = "X",
				  .name_len = 1,
				  .email = "new@example.com",
				  .email_len = 15};
	p.custom = "\x82\xa1"
		   "a"
		   "\x01\xa1"
		   "a"
		   "\x02"; /* {"a":1,"a":2} */
	p.custom_len = 7;
	ch.rec = record_new(&p);
	ch.rec->created_ms = ch.rec->updated_ms = t;
	ch.rec->etag = 99;
	ch.rec->seq = seq;
	refused(db, &ch, "more than once");
	free(ch.rec);
	p.custom = NULL;
	p.pw = "plaintext";
	p.pw_len = 9;
	ch.rec = record_new(&p);
	ch.rec->created_ms = ch.rec->updated_ms = t;
	ch.rec->etag = 99;
	ch.rec->seq = seq;
	refused(db, &ch, "password_hash");
	free(ch.rec);
	ud_db_free(db);
}

Test(apply, refuses_logs_that_do_not_fit)
{
	char id[UD_ID_MAX + 1], why[200];
	ud_db *db = apply_fixture(id), *copy;
	struct change_event ev[3];
	struct change ch = {.type = CH_LOG, .id = "usr_gone", .id_len = 8};
	int i;

	for (i = 0; i < 3; i++)
		ev[i] = (struct change_event){(uint64_t)i + 1, 5, UD_EV_UPDATED,
					      EMPTY_MAP, 1};
	ch.events = ev;
	ch.nevents = 3;
	/* a live log of a missing user: a dump lost it, so the reloaded store
	 * differed */
	refused(db, &ch, "deleted flag disagrees");
	ch.id = id;
	ch.id_len = strlen(id);
	ch.deleted = true; /* a deleted log of a live user */
	refused(db, &ch, "deleted flag disagrees");
	ch.deleted = false; /* the user's log exists already */
	refused(db, &ch, "given twice");
	ch.id = "usr_gone";
	ch.id_len = 8;
	ch.deleted = true;
	ev[2].id = 2;
	refused(db, &ch, "not increasing");
	ev[2].id = 3;
	ev[1].ms = INT64_MIN;
	refused(db, &ch, "time out of range");
	ev[1].ms = 5;
	ev[0].details = "\x81\x01\x02"; /* {1: 2} */
	ev[0].details_len = 3;
	refused(db, &ch, "string keys");
	ev[0].details = EMPTY_MAP;
	ev[0].details_len = 1;
	ch.nevents = 0;
	refused(db, &ch, "empty");
	ch.nevents = 3;
	accepted(db, &ch);
	refused(db, &ch, "given twice");
	copy = hdb_dump_copy(db);
	cr_assert_eq(hdb_compare(db, copy, why, sizeof(why)), 0, "%s", why);
	ud_db_free(copy);
	ud_db_free(db);
}

/* Cache mode: evictions are not journaled, so replay may meet an update of
 * a user it evicted itself (or a reload of one it kept): accepted. */
Test(apply, cache_mode_accepts_what_evictions_explain)
{
	struct ud_options o = ud_options_default;
	char id[UD_ID_MAX + 1];
	ud_db *src = apply_fixture(id), *db;
	struct change ch = {.type = CH_PUT, .has_event = true};

	o.max_users = 10;
	db = hdb_new(&o);
	hdb_create(db, "Newer", "newer@example.com");
	db->last_event += 100;
	db->last_etag += 100;
	db->last_ms += 100;
	ch.rec = record_dup(db_find(src, id, strlen(id)));
	ch.rec->etag = db->last_etag + 1;
	ch.rec->updated_ms = db->last_ms + 1;
	ch.ev = event_now(db, UD_EV_UPDATED);
	accepted(db, &ch); /* an old seq, the user missing here */
	free(ch.rec);
	ch.rec = next_state(db, id);
	ch.rec->seq += 1000; /* a reload: new seq, no event */
	ch.rec->created_ms = ch.rec->updated_ms;
	ch.has_event = false;
	accepted(db, &ch);
	free(ch.rec);
	ud_db_free(db);
	ud_db_free(src);
}

/* Every kind of record the live path writes passes the checks: a mirror
 * built from them and a dump copy equal the store. */
Test(apply, live_records_pass_the_checks)
{
	static const char custom[] =
	    "\x82\xa1"
	    "a"
	    "\x81\xa1"
	    "b"
	    "\xcb\x3f\xf8\0\0\0\0\0\0"
	    "\xa1"
	    "c"
	    "\x92\xc3\xc0"; /* {"a":{"b":1.5},"c":[true,nil]} */
	static const char details[] =
	    "\x81\xa1k\x81\xa1x\x01"; /* {"k":{"x":1}} */
	ud_db *db = hdb_new(NULL), *copy;
	struct hdb_mirror m = {0};
	struct ud_fields f = hdb_fields("Ann", "ann@example.com");
	char id[UD_ID_MAX + 1], why[200];
	const ud_user *u;
	bool ok;

	m.db = hdb_new(NULL);
	ud_db_set_journal(db, hdb_mirror_cb, &m);
	f.set |= UD_F_CUSTOM_DATA | UD_F_ID;
	f.custom_data = custom;
	f.custom_data_len = sizeof(custom) - 1;
	f.id = "usr_ann";
	f.id_len = 7;
	hdb_set(&f, UD_F_AVATAR, "https://example.com/a.png");
	cr_assert_eq(ud_user_create(db, &f, &u, NULL), 0);
	hdb_id(u, id);
	cr_assert_eq(ud_user_link_identity(db, id, strlen(id), "github", 6,
					   "ext-1", 5, details,
					   sizeof(details) - 1, NULL, NULL),
		     0);
	cr_assert_eq(ud_user_set_password(db, id, strlen(id), "password-1", 10,
					  NULL, NULL),
		     0);
	ud_user_verify_password(db, id, strlen(id), "password-1", 10, &ok,
				NULL);
	ud_user_verify_password(db, id, strlen(id), "wrong-pass", 10, &ok,
				NULL);
	f = (struct ud_fields){0};
	hdb_set(&f, UD_F_EMAIL, "ann2@example.com");
	cr_assert_eq(ud_user_update(db, id, strlen(id), &f, 0, NULL, NULL), 0);
	cr_assert_eq(ud_user_unlink_identity(db, id, strlen(id), "github", 6,
					     NULL, NULL),
		     0);
	cr_assert_eq(ud_user_delete(db, id, strlen(id), 0, NULL), 0);
	f = hdb_fields("Ann again", "ann@example.com");
	f.set |= UD_F_ID;
	f.id = "usr_ann";
	f.id_len = 7;
	cr_assert_eq(ud_user_create(db, &f, NULL, NULL), 0);
	hdb_create(db, "Bob", "bob@example.com");
	hdb_check(m.db);
	cr_assert_eq(hdb_compare(db, m.db, why, sizeof(why)), 0, "mirror: %s",
		     why);
	copy = hdb_dump_copy(db);
	cr_assert_eq(hdb_compare(db, copy, why, sizeof(why)), 0, "dump: %s",
		     why);
	ud_db_free(copy);
	ud_db_free(m.db);
	ud_buf_free(&m.last);
	ud_db_free(db);
}
