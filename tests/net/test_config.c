/*
 * test_config.c -- flags, USERDB_<FLAG> environment twins, precedence.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "config.h"

static FILE *devnull(void)
{
	return fopen("/dev/null", "w");
}

Test(config, defaults_match_the_spec)
{
	struct server_config c;
	char *argv[] = {"userdb-server", NULL};
	cr_assert_eq(config_parse(&c, 1, argv, NULL, stderr), 0);
	cr_assert_str_eq(c.bind, "127.0.0.1");
	cr_assert_eq(c.port, 7420);
	cr_assert_eq(c.http_port, 8080);
	cr_assert_str_eq(c.data_dir, "./data");
	cr_assert_eq(c.fsync, UD_FSYNC_EVERYSEC);
	cr_assert_eq(c.snapshot_interval, 300);
	cr_assert_eq(c.n_api_keys, 0);
	cr_assert_null(c.socket_path);
	cr_assert_not(c.no_persist);
	cr_assert_eq(c.max_body, 1 << 20);
	cr_assert_eq(c.max_frame, 1 << 20);
	config_free(&c);
}

Test(config, flags_in_both_forms)
{
	struct server_config c;
	char *argv[] = {
	    "s",	   "--port",	   "0",		"--http-port=9",
	    "--fsync",	   "always",	   "--api-key", "a",
	    "--api-key=b", "--no-persist", "--socket",	"/tmp/s",
	    "--max-frame", "4096",	   NULL};
	cr_assert_eq(config_parse(&c, 14, argv, NULL, stderr), 0);
	cr_assert_eq(c.port, 0);
	cr_assert_eq(c.http_port, 9);
	cr_assert_eq(c.fsync, UD_FSYNC_ALWAYS);
	cr_assert_eq(c.n_api_keys, 2);
	cr_assert_str_eq(c.api_keys[1], "b");
	cr_assert(c.no_persist);
	cr_assert_str_eq(c.socket_path, "/tmp/s");
	cr_assert_eq(c.max_frame, 4096);
	config_free(&c);
}

Test(config, environment_and_precedence)
{
	struct server_config c;
	char *env[] = {"USERDB_HTTP_PORT=8181",
		       "USERDB_NO_PERSIST=1",
		       "USERDB_API_KEY=k1,k2,k3",
		       "USERDB_FSYNC=no",
		       "USERDB_SNAPSHOT_INTERVAL=0",
		       "USERDB_FAULT=ignored",
		       "PATH=/bin",
		       NULL};
	char *argv[] = {"s", "--http-port", "8282", NULL};
	cr_assert_eq(config_parse(&c, 3, argv, env, stderr), 0);
	cr_assert_eq(c.http_port, 8282); /* flag beats env */
	cr_assert(c.no_persist);
	cr_assert_eq(c.n_api_keys, 3);
	cr_assert_str_eq(c.api_keys[2], "k3");
	cr_assert_eq(c.fsync, UD_FSYNC_NO);
	cr_assert_eq(c.snapshot_interval, 0);
	config_free(&c);
}

Test(config, flag_keys_replace_env_keys)
{
	struct server_config c;
	char *env[] = {"USERDB_API_KEY=k1,k2", NULL};
	char *argv[] = {"s", "--api-key", "mine", NULL};
	cr_assert_eq(config_parse(&c, 3, argv, env, stderr), 0);
	cr_assert_eq(c.n_api_keys, 1);
	cr_assert_str_eq(c.api_keys[0], "mine");
	config_free(&c);
}

Test(config, bad_values_are_refused)
{
	struct server_config c;
	FILE *err = devnull();
	char *a1[] = {"s", "--port", "70000", NULL};
	char *a2[] = {"s", "--fsync", "sometimes", NULL};
	char *a3[] = {"s", "--frobnicate", NULL};
	char *a4[] = {"s", "--port", NULL};
	char *a5[] = {"s", "--max-body", "0", NULL};
	char *env[] = {"USERDB_PORT=-1", NULL};
	char *a0[] = {"s", NULL};
	cr_assert_eq(config_parse(&c, 3, a1, NULL, err), -1);
	cr_assert_eq(config_parse(&c, 3, a2, NULL, err), -1);
	cr_assert_eq(config_parse(&c, 2, a3, NULL, err), -1);
	cr_assert_eq(config_parse(&c, 2, a4, NULL, err), -1);
	cr_assert_eq(config_parse(&c, 3, a5, NULL, err), -1);
	cr_assert_eq(config_parse(&c, 1, a0, env, err), -1);
	config_free(&c);
	fclose(err);
}

Test(config, usage_lists_every_flag)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	config_usage(f);
	fclose(f);
	const char *flags[] = {
	    "--bind",	      "--port",		 "--http-port",
	    "--data-dir",     "--fsync",	 "--snapshot-interval",
	    "--api-key",      "--socket",	 "--no-persist",
	    "--max-body",     "--max-header",	 "--max-request-line",
	    "--max-frame",    "--max-output",	 "--max-connections",
	    "--idle-timeout", "--write-timeout", "--workers"};
	for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
		cr_assert(strstr(text, flags[i]), "%s missing", flags[i]);
	free(text);
}
