/*
 * test_server.c -- the server process (SPEC §4): ready line and ports,
 * SIGTERM/SIGINT exit 0 after in-flight work, the generated key file,
 * the data-dir lock, environment settings, restart with the data,
 * server.snapshot, 503 when the log cannot be written, connection limits,
 * an IPv6 listen address.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helper_server.h"

static struct tsrv S;

static void fini(void)
{
	unsetenv("USERDB_FAULT");
	cr_assert_eq(tsrv_cleanup(&S), 0, "server exit status");
}

TestSuite(server, .fini = fini, .timeout = 60);

Test(server, ready_line_ports_and_sigterm)
{
	cr_assert_eq(tsrv_start(&S, false, true, NULL), 0);
	cr_assert(strstr(S.out, "rpc listening on 127.0.0.1:"));
	cr_assert(strstr(S.out, "http listening on 127.0.0.1:"));
	cr_assert_neq(S.rpc_port, S.http_port);
	cr_assert_eq(tsrv_stop(&S), 0);
}

Test(server, sigint_exits_0)
{
	int st;
	cr_assert_eq(tsrv_start(&S, false, true, NULL), 0);
	kill(S.pid, SIGINT);
	cr_assert_eq(waitpid(S.pid, &st, 0), S.pid);
	S.pid = 0;
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

Test(server, in_flight_password_work_finishes_on_sigterm)
{
	struct rpcc c;
	cr_assert_eq(tsrv_start(&S, false, true, NULL), 0);
	cr_assert_eq(rpcc_open(&c, S.rpc_port), 0);
	cr_assert_eq(rpcc_auth(&c), 0);
	unsigned id = rpcc_send(&c, "user.create",
				"[{\"name\":\"T\",\"email\":\"t@x.com\","
				"\"password\":\"long password\"}]");
	usleep(5000);
	kill(S.pid, SIGTERM);
	json_t *r = rpcc_recv(&c);
	cr_assert_not_null(r, "the reply still arrives");
	cr_assert_eq(json_integer_value(json_array_get(r, 1)), id);
	cr_assert_str_eq(rpc_err(r), "");
	json_decref(r);
	int st;
	cr_assert_eq(waitpid(S.pid, &st, 0), S.pid);
	S.pid = 0;
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	rpcc_close(&c);
}

Test(server, generated_key_file)
{
	char path[400], key[128], line[500];
	struct stat st;
	cr_assert_eq(tsrv_start(&S, true, false, NULL), 0);
	snprintf(path, sizeof path, "%s/api-key", S.data);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600);
	snprintf(line, sizeof line, "api key generated in %s", path);
	cr_assert(strstr(S.out, line), "%s", S.out);
	FILE *f = fopen(path, "r");
	cr_assert(fgets(key, sizeof key, f));
	fclose(f);
	key[strcspn(key, "\n")] = 0;
	cr_assert_geq(strlen(key), 32);
	/* The key works over HTTP; the test key does not. */
	char hdr[200];
	struct hresp r;
	snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\n", key);
	http_do(&S, "GET", "/v1/users", NULL, false, hdr, &r);
	cr_assert_eq(r.status, 200);
	hresp_free(&r);
	http_do(&S, "GET", "/v1/users", NULL, true, NULL, &r);
	cr_assert_eq(r.status, 401);
	hresp_free(&r);
	/* A restart reads the same key. */
	cr_assert_eq(tsrv_stop(&S), 0);
	cr_assert_eq(tsrv_start(&S, true, false, NULL), 0);
	cr_assert(strstr(S.out, "api key read from"), "%s", S.out);
	http_do(&S, "GET", "/v1/users", NULL, false, hdr, &r);
	cr_assert_eq(r.status, 200);
	hresp_free(&r);
}

Test(server, no_persist_prints_a_generated_key)
{
	cr_assert_eq(tsrv_start(&S, false, false, NULL), 0);
	const char *k = strstr(S.out, "api key (generated, not stored): ");
	cr_assert_not_null(k);
	char key[128], hdr[200];
	sscanf(k + 33, "%127s", key);
	snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\n", key);
	struct hresp r;
	http_do(&S, "GET", "/v1/users", NULL, false, hdr, &r);
	cr_assert_eq(r.status, 200);
	hresp_free(&r);
}

Test(server, second_server_on_the_data_dir_refuses)
{
	char cmd[1024];
	cr_assert_eq(tsrv_start(&S, true, true, NULL), 0);
	snprintf(cmd, sizeof cmd,
		 "'%s' --port 0 --http-port 0 --data-dir '%s' 2>&1 | "
		 "grep -q 'in use by another server'",
		 getenv("USERDB_SERVER"), S.data);
	cr_assert_eq(system(cmd), 0, "clear message");
	snprintf(cmd, sizeof cmd,
		 "'%s' --port 0 --http-port 0 --data-dir '%s' >/dev/null 2>&1",
		 getenv("USERDB_SERVER"), S.data);
	int st = system(cmd);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1);
}

Test(server, environment_settings)
{
	setenv("USERDB_API_KEY", "env-one,env-two", 1);
	setenv("USERDB_MAX_BODY", "100", 1);
	cr_assert_eq(tsrv_start(&S, false, false, NULL), 0);
	unsetenv("USERDB_API_KEY");
	unsetenv("USERDB_MAX_BODY");
	struct hresp r;
	http_do(&S, "GET", "/v1/users", NULL, false,
		"Authorization: Bearer env-two\r\n", &r);
	cr_assert_eq(r.status, 200);
	hresp_free(&r);
	http_do(&S, "POST", "/v1/users",
		"{\"name\":\"a very long name to exceed the hundred byte "
		"limit set above, and then some more\",\"email\":"
		"\"big@example.com\"}",
		false, "Authorization: Bearer env-one\r\n", &r);
	cr_assert_eq(r.status, 413);
	hresp_free(&r);
}

Test(server, restart_keeps_users_and_snapshot_on_demand)
{
	struct rpcc c;
	cr_assert_eq(tsrv_start(&S, true, true, NULL), 0);
	cr_assert_eq(rpcc_open(&c, S.rpc_port), 0);
	cr_assert_eq(rpcc_auth(&c), 0);
	json_t *r = rpcc_call(&c, "user.create",
			      "[{\"name\":\"R\",\"email\":\"r@x.com\"}]");
	cr_assert_str_eq(rpc_err(r), "");
	json_decref(r);
	r = rpcc_call(&c, "server.snapshot", "[]");
	cr_assert_str_eq(rpc_err(r), "");
	cr_assert(json_is_true(rpc_res(r)));
	json_decref(r);
	r = rpcc_call(&c, "server.stats", "[]");
	cr_assert_geq(
	    json_integer_value(json_object_get(rpc_res(r), "snapshots")), 1);
	json_decref(r);
	r = rpcc_call(&c, "user.create",
		      "[{\"name\":\"S\",\"email\":\"s@x.com\"}]");
	json_decref(r);
	rpcc_close(&c);
	cr_assert_eq(tsrv_stop(&S), 0);
	cr_assert_eq(tsrv_start(&S, true, true, NULL), 0);
	cr_assert_eq(rpcc_open(&c, S.rpc_port), 0);
	cr_assert_eq(rpcc_auth(&c), 0);
	r = rpcc_call(&c, "user.get_by_email", "[\"R@x.com\"]");
	cr_assert_str_eq(rpc_err(r), "", "snapshotted user");
	json_decref(r);
	r = rpcc_call(&c, "user.get_by_email", "[\"S@x.com\"]");
	cr_assert_str_eq(rpc_err(r), "", "user from the log after it");
	json_decref(r);
	rpcc_close(&c);
}

Test(server, kill_9_loses_no_acknowledged_write)
{
	struct rpcc c;
	cr_assert_eq(tsrv_start(&S, true, true, NULL), 0);
	cr_assert_eq(rpcc_open(&c, S.rpc_port), 0);
	cr_assert_eq(rpcc_auth(&c), 0);
	for (int i = 0; i < 50; i++) {
		char p[128];
		snprintf(p, sizeof p,
			 "[{\"name\":\"K\",\"email\":\"k%d@x.com\"}]", i);
		json_t *r = rpcc_call(&c, "user.create", p);
		cr_assert_str_eq(rpc_err(r), "");
		json_decref(r);
	}
	kill(S.pid, SIGKILL);
	waitpid(S.pid, NULL, 0);
	S.pid = 0;
	rpcc_close(&c);
	cr_assert_eq(tsrv_start(&S, true, true, NULL), 0);
	cr_assert_eq(rpcc_open(&c, S.rpc_port), 0);
	cr_assert_eq(rpcc_auth(&c), 0);
	json_t *r = rpcc_call(&c, "server.stats", "[]");
	cr_assert_eq(json_integer_value(json_object_get(rpc_res(r), "users")),
		     50);
	json_decref(r);
	rpcc_close(&c);
}

Test(server, log_write_failure_is_503)
{
	char flag[400], cmd[500];
	snprintf(flag, sizeof flag, "/tmp/userdb-fault-%d", (int)getpid());
	char spec[500];
	snprintf(spec, sizeof spec, "write:EIO:file=%s", flag);
	setenv("USERDB_FAULT", spec, 1);
	cr_assert_eq(tsrv_start(&S, true, true, NULL), 0);
	unsetenv("USERDB_FAULT");
	struct hresp r;
	char code[64];
	http_do(&S, "POST", "/v1/users",
		"{\"name\":\"A\",\"email\":\"a@x.com\"}", true, NULL, &r);
	cr_assert_eq(r.status, 201);
	hresp_free(&r);
	snprintf(cmd, sizeof cmd, "touch %s", flag);
	cr_assert_eq(system(cmd), 0);
	/* The write that meets the failing disk is applied in memory but its
	 * reply is held until the log takes it; meanwhile later writes are
	 * refused with 503 and reads go on. */
	const char *body = "{\"name\":\"B\",\"email\":\"b@x.com\"}";
	char req[512], buf[4096];
	snprintf(req, sizeof req,
		 "POST /v1/users HTTP/1.1\r\nAuthorization: Bearer " TSRV_KEY
		 "\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
		 strlen(body), body);
	int fd = tcp_connect(S.http_port);
	send_all(fd, req, strlen(req));
	usleep(300000);
	http_do(&S, "POST", "/v1/users",
		"{\"name\":\"C\",\"email\":\"c@x.com\"}", true, NULL, &r);
	cr_assert_eq(r.status, 503, "%d %s", r.status, r.body);
	cr_assert_str_eq(hresp_error_code(&r, code, sizeof code),
			 "unavailable");
	hresp_free(&r);
	http_do(&S, "GET", "/v1/users?email=a@x.com", NULL, true, NULL, &r);
	cr_assert_eq(r.status, 200);
	hresp_free(&r);
	/* The disk comes back: the held reply leaves, writes work again. */
	unlink(flag);
	ssize_t n = read(fd, buf, sizeof buf - 1);
	cr_assert_gt(n, 0);
	buf[n] = 0;
	cr_assert(strstr(buf, "HTTP/1.1 201"), "%s", buf);
	close(fd);
	http_do(&S, "POST", "/v1/users",
		"{\"name\":\"C\",\"email\":\"c@x.com\"}", true, NULL, &r);
	cr_assert_eq(r.status, 201, "%d %s", r.status, r.body);
	hresp_free(&r);
}

Test(server, max_connections)
{
	const char *args[] = {"--max-connections", "2", NULL};
	struct rpcc a, b, c;
	cr_assert_eq(tsrv_start(&S, false, true, args), 0);
	cr_assert_eq(rpcc_open(&a, S.rpc_port), 0);
	cr_assert_eq(rpcc_open(&b, S.rpc_port), 0);
	cr_assert_eq(rpcc_auth(&a), 0);
	cr_assert_eq(rpcc_auth(&b), 0);
	cr_assert_eq(rpcc_open(&c, S.rpc_port), 0); /* accepted, then shut */
	cr_assert_null(rpcc_call(&c, "ping", "[]"));
	rpcc_close(&a);
	rpcc_close(&b);
	rpcc_close(&c);
}

Test(server, client_that_never_reads_is_dropped)
{
	const char *args[] = {"--max-output", "65536", "--write-timeout", "2",
			      NULL};
	struct rpcc c;
	cr_assert_eq(tsrv_start(&S, false, true, args), 0);
	cr_assert_eq(rpcc_open(&c, S.rpc_port), 0);
	cr_assert_eq(rpcc_auth(&c), 0);
	/* 100 users of 4 KiB each, then 400 lists of all of them (about
	 * 160 MB of replies), never read. */
	char *custom = malloc(5000), *body = malloc(6000);
	memset(custom, 'x', 4000);
	custom[4000] = 0;
	for (int i = 0; i < 100; i++) {
		snprintf(body, 6000,
			 "[{\"name\":\"D\",\"email\":\"d%d@x.com\","
			 "\"custom_data\":{\"pad\":\"%s\"}}]",
			 i, custom);
		json_t *r = rpcc_call(&c, "user.create", body);
		cr_assert_str_eq(rpc_err(r), "");
		json_decref(r);
	}
	free(custom);
	free(body);
	const char one[] = "\x94\x00\x01\xa9user.list\x91\x81\xa5limit\x64";
	size_t len = sizeof one - 1, count = 400;
	char *batch = malloc(count * len);
	for (size_t i = 0; i < count; i++)
		memcpy(batch + i * len, one, len);
	int rc = send_all(c.fd, batch, count * len);
	(void)rc; /* may fail once we are dropped */
	free(batch);
	sleep(4);
	struct rpcc d;
	cr_assert_eq(rpcc_open(&d, S.rpc_port), 0);
	cr_assert_eq(rpcc_auth(&d), 0);
	json_t *r = rpcc_call(&d, "server.stats", "[]");
	cr_assert_eq(
	    json_integer_value(json_object_get(rpc_res(r), "connections")), 1,
	    "the reader that never read is gone");
	json_decref(r);
	rpcc_close(&d);
	rpcc_close(&c);
}

/* Run userdb-cli with args; its stdout (first 4 KiB) and exit status. */
static int cli(const char *args, char *out, size_t cap)
{
	char cmd[2048];
	snprintf(cmd, sizeof cmd, "'%s/userdb-cli' --port %d %s 2>&1",
		 getenv("USERDB_BIN_DIR"), S.rpc_port, args);
	FILE *p = popen(cmd, "r");
	size_t n = fread(out, 1, cap - 1, p);
	out[n] = 0;
	int st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(server, cli_commands)
{
	char out[4096], args[1400];
	cr_assert_eq(tsrv_start(&S, true, false, NULL), 0);
	/* The key comes from --data-dir's api-key file. */
	snprintf(args, sizeof args,
		 "--data-dir '%s' create --name Cli --email cli@x.com "
		 "--role viewer",
		 S.data);
	cr_assert_eq(cli(args, out, sizeof out), 0, "%s", out);
	json_t *u = json_loads(out, 0, NULL);
	cr_assert_str_eq(json_string_value(json_object_get(u, "role")),
			 "viewer");
	char id[64];
	snprintf(id, sizeof id, "%s",
		 json_string_value(json_object_get(u, "id")));
	json_decref(u);
	snprintf(args, sizeof args, "--data-dir '%s' get-by-email CLI@x.com",
		 S.data);
	cr_assert_eq(cli(args, out, sizeof out), 0);
	cr_assert(strstr(out, id), "%s", out);
	snprintf(args, sizeof args,
		 "--data-dir '%s' list --role viewer --limit 5", S.data);
	cr_assert_eq(cli(args, out, sizeof out), 0);
	cr_assert(strstr(out, "\"total\":1"), "%s", out);
	snprintf(args, sizeof args,
		 "--data-dir '%s' update %s '{\"name\":\"Renamed\"}'", S.data,
		 id);
	cr_assert_eq(cli(args, out, sizeof out), 0);
	cr_assert(strstr(out, "Renamed"), "%s", out);
	snprintf(args, sizeof args,
		 "--socket '%s' --data-dir '%s' call "
		 "user.get '[\"usr_none\"]'",
		 S.sock, S.data);
	cr_assert_eq(cli(args, out, sizeof out), 1);
	cr_assert(strstr(out, "not_found"), "%s", out);
	snprintf(args, sizeof args, "--data-dir '%s' snapshot", S.data);
	cr_assert_eq(cli(args, out, sizeof out), 0);
	cr_assert_str_eq(out, "true\n");
	cr_assert_eq(cli("--api-key wrong stats", out, sizeof out), 1);
	cr_assert(strstr(out, "unauthorized"), "%s", out);
}

Test(server, idle_connections_are_closed)
{
	const char *args[] = {"--idle-timeout", "1", NULL};
	struct rpcc c;
	cr_assert_eq(tsrv_start(&S, false, true, args), 0);
	cr_assert_eq(rpcc_open(&c, S.rpc_port), 0);
	cr_assert_eq(rpcc_auth(&c), 0);
	/* A client that speaks every 0.4 s outlives the 1 s timeout: each
	 * read restarts it. */
	for (int i = 0; i < 5; i++) {
		usleep(400000);
		json_t *r = rpcc_call(&c, "ping", "[]");
		cr_assert_not_null(r, "ping %d after %d ms", i, (i + 1) * 400);
		json_decref(r);
	}
	usleep(1600000);
	char b;
	cr_assert_eq(recv(c.fd, &b, 1, 0), 0, "closed by the server");
	rpcc_close(&c);
}

/* A TCP connection to [::1]:port, or -1. */
static int tcp6_connect(int port)
{
	struct sockaddr_in6 a = {.sin6_family = AF_INET6,
				 .sin6_port = htons((uint16_t)port),
				 .sin6_addr = IN6ADDR_LOOPBACK_INIT};
	int fd = socket(AF_INET6, SOCK_STREAM, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* --bind ::1 serves both protocols on the IPv6 loopback, and only there.
 * Skipped on a machine without one (some containers). */
Test(server, ipv6_bind)
{
	struct sockaddr_in6 a = {.sin6_family = AF_INET6,
				 .sin6_addr = IN6ADDR_LOOPBACK_INIT};
	int probe = socket(AF_INET6, SOCK_STREAM, 0);
	bool have =
	    probe >= 0 && bind(probe, (struct sockaddr *)&a, sizeof a) == 0;
	if (probe >= 0)
		close(probe);
	if (!have)
		cr_skip_test("no IPv6 loopback here");
	const char *args[] = {"--bind", "::1", NULL};
	cr_assert_eq(tsrv_start(&S, false, true, args), 0);
	cr_assert(strstr(S.out, "ready rpc=[::1]:"), "%s", S.out);
	struct rpcc c;
	cr_assert_eq(rpcc_wrap_fd(&c, tcp6_connect(S.rpc_port)), 0);
	cr_assert_eq(rpcc_auth(&c), 0);
	json_t *r = rpcc_call(&c, "user.create",
			      "[{\"name\":\"V6\",\"email\":\"v6@x.com\"}]");
	cr_assert_str_eq(rpc_err(r), "");
	json_decref(r);
	rpcc_close(&c);
	int fd = tcp6_connect(S.http_port);
	cr_assert_geq(fd, 0);
	const char req[] = "GET /v1/users?email=V6@x.com HTTP/1.1\r\n"
			   "Authorization: Bearer " TSRV_KEY "\r\n"
			   "Connection: close\r\n\r\n";
	char buf[4096];
	size_t got = 0;
	ssize_t n;
	send_all(fd, req, sizeof req - 1);
	while (got < sizeof buf - 1 &&
	       (n = read(fd, buf + got, sizeof buf - 1 - got)) > 0)
		got += (size_t)n;
	buf[got] = 0;
	close(fd);
	cr_assert(strstr(buf, "HTTP/1.1 200"), "%s", buf);
	cr_assert(strstr(buf, "\"total\":1"), "%s", buf);
	/* not on the IPv4 loopback */
	fd = tcp_connect(S.rpc_port);
	cr_assert_lt(fd, 0);
}
