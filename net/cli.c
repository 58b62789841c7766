/*
 * cli.c -- userdb-cli: a MessagePack-RPC client for userdb-server.
 *
 *   userdb-cli [--host H] [--port N | --socket PATH] [--api-key K |
 *              --data-dir DIR] [--tls] [--cacert FILE] COMMAND [ARGS]
 *
 * Commands map onto RPC methods (SPEC §3); results print as JSON on stdout,
 * errors as the error map on stderr with exit status 1 (2 for usage, 3 when
 * the server cannot be reached).  The key comes from --api-key, then
 * USERDB_API_KEY (the first of a comma-separated list), then DIR/api-key
 * (--data-dir, default ./data).  --tls (implied by --cacert) speaks TLS to
 * the RPC and HTTP ports alike and verifies the server's certificate
 * against FILE and the --host name (cli_tls.h).  Blocking sockets; one
 * request at a time.
 */
#include <errno.h>
#include <jansson.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli_bulk.h"
#include "cli_tls.h"
#include "codec.h"
#include "userdb.h"
#include "userdb_version.h"

struct cli {
	const char *host, *port, *http_port, *socket_path, *data_dir;
	char key[512];
	struct cli_tls tls;
	struct cli_conn conn;
	msgpack_unpacker unp;
	uint32_t msgid;
};

static void usage(FILE *out)
{
	fputs("usage: userdb-cli [--host H] [--port N | --socket PATH]\n"
	      "                  [--http-port N] [--api-key KEY | --data-dir "
	      "DIR]\n"
	      "                  [--tls] [--cacert FILE]\n"
	      "                  COMMAND ...\n"
	      "commands:\n"
	      "  ping | stats | snapshot\n"
	      "  get ID | get-by-email EMAIL | delete ID\n"
	      "  create (JSON | --name N --email E [--role R] [--status S]\n"
	      "          [--avatar URL] [--password P] [--id ID])\n"
	      "  update ID (JSON | --name N --email E --role R ...)\n"
	      "  list [--page N] [--limit N] [--role R] [--status S]\n"
	      "       [--email E] [--search TEXT] [--order asc|desc]\n"
	      "  set-password ID PASSWORD | verify-password ID PASSWORD\n"
	      "  suspend ID | unsuspend ID | logs USER_ID [--page N] "
	      "[--limit N]\n"
	      "  call METHOD JSON-PARAMS\n"
	      "  export [FILE] | import FILE [--on-conflict fail|skip|update]\n"
	      "       (over HTTP, --http-port; exit 0 good, 1 lines failed, "
	      "2 could not run)\n"
	      "  --tls: TLS to both ports; --cacert FILE: trust FILE's CAs "
	      "(implies --tls)\n"
	      "  --help | --version\n"
	      "environment: USERDB_API_KEY, USERDB_PORT, USERDB_HTTP_PORT, "
	      "USERDB_SOCKET\n",
	      out);
}

/* Send [0, id, method, params(JSON value)]; receive the reply into res.
 * Returns 0, or -1 when the connection fails. */
static int rpc(struct cli *c, const char *method, json_t *params,
	       msgpack_unpacked *res)
{
	struct ud_buf b = {0};
	msgpack_packer pk;
	msgpack_packer_init(&pk, &b, codec_buf_write_cb);
	msgpack_pack_array(&pk, 4);
	msgpack_pack_uint8(&pk, 0);
	msgpack_pack_uint32(&pk, ++c->msgid);
	msgpack_pack_str_with_body(&pk, method, strlen(method));
	if (codec_json_to_mp(params, &b, "params", NULL) ||
	    cli_conn_send(&c->conn, b.data, b.len)) {
		ud_buf_free(&b);
		return -1;
	}
	ud_buf_free(&b);
	for (;;) {
		if (msgpack_unpacker_next(&c->unp, res) ==
		    MSGPACK_UNPACK_SUCCESS)
			return 0;
		msgpack_unpacker_reserve_buffer(&c->unp, 1 << 16);
		ssize_t n =
		    cli_conn_recv(&c->conn, msgpack_unpacker_buffer(&c->unp),
				  msgpack_unpacker_buffer_capacity(&c->unp));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		msgpack_unpacker_buffer_consumed(&c->unp, (size_t)n);
	}
}

/* Print one msgpack object as JSON to f. */
static void print_object(FILE *f, const msgpack_object *o)
{
	struct ud_buf mp = {0}, js = {0};
	msgpack_packer pk;
	msgpack_packer_init(&pk, &mp, codec_buf_write_cb);
	msgpack_pack_object(&pk, *o);
	if (codec_mp_to_json(mp.data, mp.len, &js) == 0)
		fprintf(f, "%.*s\n", (int)js.len, js.data);
	ud_buf_free(&mp);
	ud_buf_free(&js);
}

/* Call and print; the exit status. */
static int call_print(struct cli *c, const char *method, json_t *params)
{
	msgpack_unpacked res;
	msgpack_unpacked_init(&res);
	int rc = rpc(c, method, params, &res);
	json_decref(params);
	if (rc) {
		fprintf(stderr, "userdb-cli: connection lost\n");
		msgpack_unpacked_destroy(&res);
		return 3;
	}
	const msgpack_object *a = res.data.via.array.ptr;
	if (res.data.type != MSGPACK_OBJECT_ARRAY ||
	    res.data.via.array.size != 4) {
		fprintf(stderr, "userdb-cli: bad reply\n");
		rc = 1;
	} else if (a[2].type != MSGPACK_OBJECT_NIL) {
		print_object(stderr, &a[2]);
		rc = 1;
	} else {
		print_object(stdout, &a[3]);
	}
	msgpack_unpacked_destroy(&res);
	return rc;
}

/* Collect --key value pairs of argv into a JSON object; numbers stay
 * strings except page/limit.  NULL on a stray argument. */
static json_t *flags_object(int argc, char **argv)
{
	json_t *o = json_object();
	for (int i = 0; i < argc; i += 2) {
		if (strncmp(argv[i], "--", 2) || i + 1 >= argc) {
			fprintf(stderr, "userdb-cli: bad argument %s\n",
				argv[i]);
			json_decref(o);
			return NULL;
		}
		const char *k = argv[i] + 2, *v = argv[i + 1];
		json_t *jv = (!strcmp(k, "page") || !strcmp(k, "limit"))
				 ? json_integer(atoll(v))
				 : json_string(v);
		json_object_set_new(o, k, jv);
	}
	return o;
}

/* A JSON argument or --flags: the fields object. */
static json_t *fields_arg(int argc, char **argv)
{
	if (argc == 1 && argv[0][0] == '{') {
		json_error_t e;
		json_t *o = json_loads(argv[0], JSON_REJECT_DUPLICATES, &e);
		if (!o)
			fprintf(stderr, "userdb-cli: bad JSON: %s\n", e.text);
		return o;
	}
	return flags_object(argc, argv);
}

static int need(int argc, int n, const char *cmd)
{
	if (argc == n)
		return 0;
	fprintf(stderr, "userdb-cli: %s takes %d argument(s)\n", cmd, n);
	return -1;
}

/* Table-free dispatch of the commands; long because it is a switch. */
static int command(struct cli *c, const char *cmd, int argc, char **argv)
{
	json_t *p = NULL;
	if (!strcmp(cmd, "ping") && !need(argc, 0, cmd))
		return call_print(c, "ping", json_array());
	if (!strcmp(cmd, "stats") && !need(argc, 0, cmd))
		return call_print(c, "server.stats", json_array());
	if (!strcmp(cmd, "snapshot") && !need(argc, 0, cmd))
		return call_print(c, "server.snapshot", json_array());
	if ((!strcmp(cmd, "get") || !strcmp(cmd, "delete") ||
	     !strcmp(cmd, "get-by-email")) &&
	    !need(argc, 1, cmd))
		return call_print(c,
				  !strcmp(cmd, "get") ? "user.get"
				  : !strcmp(cmd, "delete")
				      ? "user.delete"
				      : "user.get_by_email",
				  json_pack("[s]", argv[0]));
	if ((!strcmp(cmd, "suspend") || !strcmp(cmd, "unsuspend")) &&
	    !need(argc, 1, cmd))
		return call_print(
		    c, "user.set_suspended",
		    json_pack("[sb]", argv[0], !strcmp(cmd, "suspend")));
	if ((!strcmp(cmd, "set-password") || !strcmp(cmd, "verify-password")) &&
	    !need(argc, 2, cmd))
		return call_print(c,
				  cmd[0] == 's' ? "user.set_password"
						: "user.verify_password",
				  json_pack("[ss]", argv[0], argv[1]));
	if (!strcmp(cmd, "create") && (p = fields_arg(argc, argv)))
		return call_print(c, "user.create", json_pack("[o]", p));
	if (!strcmp(cmd, "update") && argc >= 1 &&
	    (p = fields_arg(argc - 1, argv + 1)))
		return call_print(c, "user.update",
				  json_pack("[so]", argv[0], p));
	if (!strcmp(cmd, "list") && (p = flags_object(argc, argv)))
		return call_print(c, "user.list", json_pack("[o]", p));
	if (!strcmp(cmd, "logs") && argc >= 1 &&
	    (p = flags_object(argc - 1, argv + 1))) {
		json_object_set_new(p, "user_id", json_string(argv[0]));
		return call_print(c, "log.list", json_pack("[o]", p));
	}
	if (!strcmp(cmd, "call") && !need(argc, 2, cmd)) {
		p = json_loads(argv[1], JSON_DECODE_ANY, NULL);
		if (p && json_is_array(p))
			return call_print(c, argv[0], p);
		fprintf(stderr, "userdb-cli: params must be a JSON array\n");
		json_decref(p);
		return 2;
	}
	usage(stderr);
	return 2;
}

/* The key: --api-key, USERDB_API_KEY, DATA_DIR/api-key. */
static void find_key(struct cli *c)
{
	const char *env = getenv("USERDB_API_KEY");
	if (c->key[0])
		return;
	if (env && *env) {
		snprintf(c->key, sizeof c->key, "%.*s", (int)strcspn(env, ","),
			 env);
		return;
	}
	char path[4096];
	snprintf(path, sizeof path, "%s/api-key", c->data_dir);
	FILE *f = fopen(path, "r");
	if (f) {
		if (fgets(c->key, sizeof c->key, f))
			c->key[strcspn(c->key, "\r\n")] = 0;
		fclose(f);
	}
}

static int parse_opts(struct cli *c, int argc, char **argv)
{
	int i = 1;
	while (i < argc && !strncmp(argv[i], "--", 2)) {
		const char *o = argv[i] + 2, *v = argv[i + 1];
		if (!strcmp(o, "tls")) { /* the one option without a value */
			c->tls.on = true;
			i++;
			continue;
		}
		if (i + 1 >= argc)
			break; /* --help, --version: a command */
		if (!strcmp(o, "cacert"))
			c->tls.on = true, c->tls.cacert = v;
		else if (!strcmp(o, "host"))
			c->host = v;
		else if (!strcmp(o, "port"))
			c->port = v;
		else if (!strcmp(o, "http-port"))
			c->http_port = v;
		else if (!strcmp(o, "socket"))
			c->socket_path = v;
		else if (!strcmp(o, "data-dir"))
			c->data_dir = v;
		else if (!strcmp(o, "api-key"))
			snprintf(c->key, sizeof c->key, "%s", v);
		else
			return -1;
		i += 2;
	}
	return i;
}

int main(int argc, char **argv)
{
	struct cli c = {
	    .host = "127.0.0.1", .port = "7420", .data_dir = "./data"};
	if (getenv("USERDB_PORT"))
		c.port = getenv("USERDB_PORT");
	c.socket_path = getenv("USERDB_SOCKET");
	c.http_port =
	    getenv("USERDB_HTTP_PORT") ? getenv("USERDB_HTTP_PORT") : "8080";
	if (argc == 2 && !strcmp(argv[1], "--version")) {
		printf("userdb-cli %s\n", UD_VERSION_TEXT);
		return 0;
	}
	int first = parse_opts(&c, argc, argv);
	if (first < 0 || first >= argc || !strcmp(argv[first], "--help")) {
		usage(first < 0 || first >= argc ? stderr : stdout);
		return first < 0 || first >= argc ? 2 : 0;
	}
	find_key(&c);
	if (!strcmp(argv[first], "export") || !strcmp(argv[first], "import")) {
		struct cli_bulk b = {c.host, c.http_port, c.key, &c.tls};
		return cli_bulk_run(&b, argv[first], argc - first - 1,
				    argv + first + 1);
	}
	if (c.socket_path && c.tls.on) {
		fputs("userdb-cli: --tls does not apply to --socket (the Unix "
		      "socket is plaintext)\n",
		      stderr);
		return 2;
	}
	if (c.socket_path && cli_conn_unix(&c.conn, c.socket_path)) {
		fprintf(stderr, "userdb-cli: cannot connect to %s: %s\n",
			c.socket_path, strerror(errno));
		return 3;
	}
	if (!c.socket_path && cli_conn_tcp(&c.conn, c.host, c.port, &c.tls))
		return 3;
	msgpack_unpacker_init(&c.unp, 1 << 16);
	int rc = 0;
	if (c.key[0]) {
		msgpack_unpacked res;
		msgpack_unpacked_init(&res);
		json_t *p = json_pack("[s]", c.key);
		rc = rpc(&c, "auth", p, &res) ? 3 : 0;
		json_decref(p);
		msgpack_unpacked_destroy(&res);
	}
	if (rc == 0)
		rc = command(&c, argv[first], argc - first - 1,
			     argv + first + 1);
	msgpack_unpacker_destroy(&c.unp);
	cli_conn_close(&c.conn);
	return rc;
}
