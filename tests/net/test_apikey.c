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
