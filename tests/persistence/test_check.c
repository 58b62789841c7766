/*
 * test_check.c -- the userdb-check tool: exit codes, messages naming file
 * and offset, --repair cutting the log and saying what was dropped.
 */
#include <criterion/criterion.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helper.h"
#include "userdb.h"

#define SEG1 "log-0000000000000001.ulog"

static char *dir;

static void setup(void)
{
	dir = tmpdir_make();
}

static void teardown(void)
{
	tmpdir_remove(dir);
}

TestSuite(check, .init = setup, .fini = teardown);

/* Run userdb-check with args; returns the exit status, output in out. */
static int run(const char *args, char *out, size_t n)
{
	char bin[4096], cmd[8400], exe[4096];
	const char *bd = getenv("USERDB_BIN_DIR");
	FILE *f;
	size_t got;
	int st;

	if (!bd) { /* run by hand: build/tests/<this> -> build/ */
		ssize_t l = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

		cr_assert_gt(l, 0);
		exe[l] = 0;
		snprintf(bin, sizeof(bin), "%s/..", dirname(exe));
		bd = bin;
	}
	snprintf(cmd, sizeof(cmd), "'%s/userdb-check' %s 2>&1", bd, args);
	f = popen(cmd, "r");
	cr_assert(f);
	got = fread(out, 1, n - 1, f);
	out[got] = 0;
	st = pclose(f);
	cr_assert(WIFEXITED(st), "%s", cmd);
	return WEXITSTATUS(st);
}

static void make_store(int users)
{
	struct ud_options opt = ud_options_default;
	struct ud_error err = {0};
	ud_db *db;

	opt.data_dir = dir;
	cr_assert_eq(ud_open(&opt, &db, &err), 0, "%s", err.message);
	for (int i = 0; i < users; i++) {
		char name[32], email[64];
		struct ud_fields f = {.set = UD_F_NAME | UD_F_EMAIL};

		snprintf(name, sizeof(name), "User %d", i);
		snprintf(email, sizeof(email), "u%d@example.com", i);
		f.name = name;
		f.name_len = strlen(name);
		f.email = email;
		f.email_len = strlen(email);
		cr_assert_eq(ud_user_create(db, &f, NULL, &err), 0, "%s",
			     err.message);
		cr_assert_eq(ud_flush(db), 0);
	}
	ud_close(db);
}

static int reopen_users(void)
{
	struct ud_options opt = ud_options_default;
	struct ud_error err = {0};
	struct ud_stats st;
	ud_db *db;

	opt.data_dir = dir;
	cr_assert_eq(ud_open(&opt, &db, &err), 0, "%s", err.message);
	ud_stats(db, &st);
	ud_close(db);
	return (int)st.users;
}

Test(check, usage_and_missing_dir)
{
	char out[8192];

	cr_assert_eq(run("", out, sizeof(out)), 2);
	cr_assert(strstr(out, "usage"));
	cr_assert_eq(run("--bogus x", out, sizeof(out)), 2);
	cr_assert_eq(run("/nonexistent/dir", out, sizeof(out)), 2);
}

Test(check, sound_store)
{
	char out[8192], args[4200];

	make_store(3);
	snprintf(args, sizeof(args), "'%s'", dir);
	cr_assert_eq(run(args, out, sizeof(out)), 0, "%s", out);
	cr_assert(strstr(out, "-> 3 users"), "%s", out);
	cr_assert(strstr(out, "sound"), "%s", out);
}

Test(check, torn_tail_reported_and_repaired)
{
	char out[8192], args[4200];
	size_t len;
	char *p;

	make_store(3);
	p = file_read(dir, SEG1, &len);
	file_write(dir, SEG1, p, len - 5);
	snprintf(args, sizeof(args), "'%s'", dir);
	cr_assert_eq(run(args, out, sizeof(out)), 1, "%s", out);
	cr_assert(strstr(out, SEG1 ": "), "%s", out);
	cr_assert(strstr(out, "DAMAGED at offset"), "%s", out);
	cr_assert(strstr(out, "torn tail"), "%s", out);
	snprintf(args, sizeof(args), "--repair '%s'", dir);
	cr_assert_eq(run(args, out, sizeof(out)), 0, "%s", out);
	cr_assert(strstr(out, "dropped 0 intact record(s)"), "%s", out);
	cr_assert_eq(reopen_users(), 2);
	free(p);
}

Test(check, mid_log_damage_reported_and_repaired)
{
	char out[8192], args[4200], want[64];
	size_t len;
	char *p;

	make_store(4);
	p = file_read(dir, SEG1, &len);
	p[40] ^= 0x40; /* inside the first record */
	file_write(dir, SEG1, p, len);
	snprintf(args, sizeof(args), "'%s'", dir);
	cr_assert_eq(run(args, out, sizeof(out)), 1, "%s", out);
	cr_assert(strstr(out, "DAMAGED at offset 32"), "%s", out);
	cr_assert(strstr(out, "replay: FAILED"), "%s", out);
	snprintf(args, sizeof(args), "--repair '%s'", dir);
	cr_assert_eq(run(args, out, sizeof(out)), 0, "%s", out);
	snprintf(want, sizeof(want), "cut at %s offset 32", SEG1);
	cr_assert(strstr(out, want), "%s", out);
	/* 4 creates journal at least one record each after the first. */
	cr_assert(strstr(out, "dropped ") && !strstr(out, "dropped 0 "), "%s",
		  out);
	cr_assert_eq(file_count(dir, ".dropped"), 1);
	cr_assert_eq(reopen_users(), 0);
	free(p);
}

Test(check, repair_needs_the_lock)
{
	struct ud_options opt = ud_options_default;
	struct ud_error err = {0};
	char out[8192], args[4200];
	ud_db *db;

	opt.data_dir = dir;
	cr_assert_eq(ud_open(&opt, &db, &err), 0);
	snprintf(args, sizeof(args), "--repair '%s'", dir);
	cr_assert_eq(run(args, out, sizeof(out)), 2, "%s", out);
	cr_assert(strstr(out, "in use"), "%s", out);
	ud_close(db);
}

Test(check, damaged_snapshot_is_reported)
{
	struct ud_options opt = ud_options_default;
	struct ud_error err = {0};
	char out[8192], args[4200];
	ud_db *db;
	size_t len;
	char *p;

	make_store(2);
	opt.data_dir = dir;
	cr_assert_eq(ud_open(&opt, &db, &err), 0);
	cr_assert_eq(ud_snapshot_sync(db, &err), 0, "%s", err.message);
	ud_close(db);
	cr_assert_eq(file_count(dir, ".usnap"), 1);
	{
		char cmd[4300];
		FILE *f;
		char name[64] = {0};

		snprintf(cmd, sizeof(cmd), "ls '%s' | grep usnap", dir);
		f = popen(cmd, "r");
		cr_assert(fgets(name, sizeof(name), f));
		pclose(f);
		name[strcspn(name, "\n")] = 0;
		p = file_read(dir, name, &len);
		p[len / 2] ^= 1;
		file_write(dir, name, p, len);
	}
	snprintf(args, sizeof(args), "'%s'", dir);
	cr_assert_eq(run(args, out, sizeof(out)), 1, "%s", out);
	cr_assert(strstr(out, ".usnap: DAMAGED"), "%s", out);
	cr_assert(strstr(out, "offset"), "%s", out);
	free(p);
}
