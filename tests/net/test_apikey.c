/*
 * test_apikey.c -- key sets and the DATA_DIR/api-key file.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apikey.h"

Test(apikey, set_checks_exact_keys)
{
	struct keyset ks = {0};
	cr_assert_eq(keyset_add(&ks, "alpha", 5), 0);
	cr_assert_eq(keyset_add(&ks, "beta-key", 8), 0);
	cr_assert(keyset_check(&ks, "alpha", 5));
	cr_assert(keyset_check(&ks, "beta-key", 8));
	cr_assert_not(keyset_check(&ks, "alph", 4));
	cr_assert_not(keyset_check(&ks, "alphaa", 6));
	cr_assert_not(keyset_check(&ks, "", 0));
	for (int i = 2; i < KEYSET_MAX; i++)
		cr_assert_eq(keyset_add(&ks, "k", 1), 0);
	cr_assert_eq(keyset_add(&ks, "full", 4), -1);
}

Test(apikey, generated_keys_differ)
{
	char a[APIKEY_GEN_LEN + 1], b[APIKEY_GEN_LEN + 1];
	apikey_generate(a);
	apikey_generate(b);
	cr_assert_eq(strlen(a), APIKEY_GEN_LEN);
	cr_assert_str_neq(a, b);
	cr_assert_eq(strspn(a, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstu"
			       "vwxyz0123456789-_"),
		     APIKEY_GEN_LEN, "base64url");
}

Test(apikey, key_file_created_0600_then_reused)
{
	char dir[] = "/tmp/userdb-apikey-XXXXXX", path[128], out1[512] = "",
	     out2[512] = "";
	cr_assert_not_null(mkdtemp(dir));
	struct server_config cfg = config_default;
	cfg.data_dir = dir;
	struct keyset ks1, ks2;
	FILE *o = fmemopen(out1, sizeof out1, "w");
	cr_assert_eq(apikey_setup(&ks1, &cfg, o, stderr), 0);
	fclose(o);
	snprintf(path, sizeof path, "%s/api-key", dir);
	struct stat st;
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600);
	cr_assert(strstr(out1, "generated") && strstr(out1, path), "%s", out1);
	o = fmemopen(out2, sizeof out2, "w");
	cr_assert_eq(apikey_setup(&ks2, &cfg, o, stderr), 0);
	fclose(o);
	cr_assert(strstr(out2, "read from"), "%s", out2);
	cr_assert_eq(memcmp(ks1.e[0].hash, ks2.e[0].hash, 32), 0, "same key");
	char key[128];
	FILE *f = fopen(path, "r");
	cr_assert(fgets(key, sizeof key, f));
	fclose(f);
	key[strcspn(key, "\n")] = 0;
	cr_assert(keyset_check(&ks2, key, strlen(key)));
	unlink(path);
	rmdir(dir);
}

Test(apikey, given_keys_win_and_no_file_is_written)
{
	char dir[] = "/tmp/userdb-apikey-XXXXXX", path[128];
	cr_assert_not_null(mkdtemp(dir));
	struct server_config cfg = config_default;
	cfg.data_dir = dir;
	cfg.api_keys[0] = "given";
	cfg.n_api_keys = 1;
	struct keyset ks;
	cr_assert_eq(apikey_setup(&ks, &cfg, stdout, stderr), 0);
	cr_assert_eq(ks.n, 1);
	cr_assert(keyset_check(&ks, "given", 5));
	snprintf(path, sizeof path, "%s/api-key", dir);
	cr_assert_neq(access(path, F_OK), 0);
	rmdir(dir);
}

/* ---- scopes and the key file (apikey_file_load) ---------------------------
 */

Test(apikey, scopes_allow_what_spec_11_says)
{
	/* rows: the key's scope; columns: what the operation needs */
	static const bool allow[3][3] = {
	    [SCOPE_ADMIN] = {true, true, true},
	    [SCOPE_READ] = {[SCOPE_READ] = true},
	    [SCOPE_VERIFY] = {[SCOPE_READ] = true, [SCOPE_VERIFY] = true},
	};
	for (int have = 0; have < 3; have++)
		for (int need = 0; need < 3; need++)
			cr_assert_eq(scope_allows(have, need),
				     allow[have][need], "%s doing %s",
				     scope_name(have), scope_name(need));
	char msg[96];
	scope_denied_message(SCOPE_VERIFY, msg, sizeof msg);
	cr_assert(strstr(msg, "scope verify"), "%s", msg);
}

Test(apikey, flag_scope_suffix)
{
	enum key_scope s;
	cr_assert_eq(apikey_split_flag("abc", &s), 3);
	cr_assert_eq(s, SCOPE_ADMIN);
	cr_assert_eq(apikey_split_flag("abc:read", &s), 3);
	cr_assert_eq(s, SCOPE_READ);
	cr_assert_eq(apikey_split_flag("a:b:verify", &s), 3);
	cr_assert_eq(s, SCOPE_VERIFY);
	cr_assert_eq(apikey_split_flag("a:b:other", &s), 9, "not a scope");
	cr_assert_eq(s, SCOPE_ADMIN);
	cr_assert_eq(apikey_split_flag(":read", &s), 5, "a key of its own");
}

static char *write_file(const char *text, size_t n, mode_t mode)
{
	static char path[64];
	snprintf(path, sizeof path, "/tmp/userdb-keyfile-XXXXXX");
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, text, n), (ssize_t)n);
	fchmod(fd, mode);
	close(fd);
	return path;
}

static const char good[] = "# keys\n"
			   "k-one admin console\n"
			   "\n"
			   "  k-two\tread\n"
			   "k-three verify login.svc\n";

Test(apikey, key_file_names_scopes_and_key_n)
{
	struct keyset ks = {0};
	keyset_add(&ks, "flag", 4); /* a --api-key flag: key-1 */
	char *path = write_file(good, sizeof good - 1, 0600);
	cr_assert_eq(apikey_file_load(&ks, path, stderr), 0);
	unlink(path);
	cr_assert_eq(ks.n, 4);
	cr_assert_str_eq(ks.e[0].name, "key-1");
	cr_assert_str_eq(ks.e[1].name, "console");
	cr_assert_eq(ks.e[1].scope, SCOPE_ADMIN);
	cr_assert_str_eq(ks.e[2].name, "key-3", "Nth key: flags, then lines");
	cr_assert_eq(ks.e[2].scope, SCOPE_READ);
	cr_assert_str_eq(ks.e[3].name, "login.svc");
	cr_assert_eq(ks.e[3].scope, SCOPE_VERIFY);
	cr_assert_eq(keyset_find(&ks, "k-two", 5, NULL), 2);
	cr_assert_eq(keyset_find(&ks, "k-tw", 4, NULL), -1);
}

/* Every prefix of a good file either loads (cut at a line end) or fails
 * with a message naming a line; never a crash, never a key in the text. */
Test(apikey, key_file_cut_at_every_byte)
{
	for (size_t cut = 0; cut <= sizeof good - 1; cut++) {
		struct keyset ks = {0};
		char err[512] = "";
		FILE *e = fmemopen(err, sizeof err, "w");
		char *path = write_file(good, cut, 0600);
		int rc = apikey_file_load(&ks, path, e);
		fclose(e);
		unlink(path);
		if (rc)
			cr_assert(strstr(err, " line "), "cut %zu: %s", cut,
				  err);
		cr_assert_null(strstr(err, "k-one"), "cut %zu: %s", cut, err);
		cr_assert_null(strstr(err, "k-two"), "cut %zu: %s", cut, err);
	}
}

Test(apikey, key_file_refusals)
{
	static const struct {
		const char *text;
		mode_t mode;
		const char *want;
	} cases[] = {
	    {"k admin\n", 0640, "mode 0640"},
	    {"k admin\n", 0604, "group and others"},
	    {"k admin\n", 0660, "chmod 600"},
	    {"k root\n", 0600, "line 1: unknown scope"},
	    {"#\nk\n", 0600, "line 2: expected KEY SCOPE [NAME]"},
	    {"k read a b\n", 0600, "line 1: expected"},
	    {"k read n@me\n", 0600, "line 1: a name is"},
	    {"k read\nk admin\n", 0600, "line 2: the same key is given twice"},
	    {"k read\n\nx admin\0y\n", 0600, "line 3: contains a NUL byte"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct keyset ks = {0};
		char err[512] = "";
		FILE *e = fmemopen(err, sizeof err, "w");
		size_t n = strlen(cases[i].text);
		if (strstr(cases[i].want, "NUL"))
			n = 18; /* through the "y\n" after the NUL */
		char *path = write_file(cases[i].text, n, cases[i].mode);
		cr_assert_eq(apikey_file_load(&ks, path, e), -1, "case %zu", i);
		fclose(e);
		unlink(path);
		cr_assert(strstr(err, cases[i].want), "case %zu: %s", i, err);
	}
	/* 0400 is allowed */
	struct keyset ks = {0};
	char *path = write_file("k read\n", 7, 0400);
	cr_assert_eq(apikey_file_load(&ks, path, stderr), 0);
	unlink(path);
}
