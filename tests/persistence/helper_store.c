/*
 * helper_store.c -- a real store on a data dir for the persistence tests
 * that need the engine's records (helper.h).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "helper.h"

ud_db *store_open(const char *dir, enum ud_fsync mode, uint64_t keep)
{
	struct ud_options opt = ud_options_default;
	struct ud_error err = {0};
	ud_db *db = NULL;

	opt.data_dir = dir;
	opt.fsync = mode;
	opt.snapshot_interval = 0;
	if (keep)
		opt.changes_keep = keep;
	cr_assert_eq(ud_open(&opt, &db, &err), 0, "ud_open: %s", err.message);
	return db;
}

int store_create(ud_db *db, int i)
{
	char name[32], email[64];
	struct ud_fields f = {.set = UD_F_NAME | UD_F_EMAIL};
	struct ud_error err = {0};

	snprintf(name, sizeof(name), "User %d", i);
	snprintf(email, sizeof(email), "user%d@example.com", i);
	f.name = name;
	f.name_len = strlen(name);
	f.email = email;
	f.email_len = strlen(email);
	return ud_user_create(db, &f, NULL, &err);
}
