/*
 * config.c -- flag and environment parsing for userdb-server.  One table
 * describes every option; the same entry serves --flag, USERDB_FLAG and the
 * --help text, so they cannot drift apart.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

const struct server_config config_default = {
    .bind = "127.0.0.1",
    .port = 7420,
    .http_port = 8080,
    .data_dir = "./data",
    .fsync = UD_FSYNC_EVERYSEC,
    .snapshot_interval = 300,
    .max_body = 1 << 20,
    .max_header = 16 << 10,
    .max_request_line = 8 << 10,
    .max_frame = 1 << 20,
    .max_output = 16 << 20,
    .changes_keep = 1000000,
    .max_import = (size_t)4 << 30,
    .max_connections = 10000,
    .idle_timeout = 300,
    .write_timeout = 30,
    .workers = 2,
    .verify_backoff_max_ms = 30000,
};

enum opt_kind {
	OPT_STR,
	OPT_PORT,
	OPT_UINT,
	OPT_SIZE,
	OPT_COUNT, /* a size_t that may be 0 */
	OPT_BOOL,
	OPT_FSYNC,
	OPT_KEY
};

struct opt {
	const char *name; /* flag without "--" */
	enum opt_kind kind;
	size_t off;
	const char *arg, *help;
};

#define OFF(f) offsetof(struct server_config, f)
static const struct opt opts[] = {
    {"bind", OPT_STR, OFF(bind), "ADDR",
     "listen address for both protocols (127.0.0.1)"},
    {"port", OPT_PORT, OFF(port), "N",
     "MessagePack-RPC port, 0 = any free (7420)"},
    {"http-port", OPT_PORT, OFF(http_port), "N",
     "HTTP port, 0 = any free (8080)"},
    {"data-dir", OPT_STR, OFF(data_dir), "DIR",
     "snapshots, logs, api-key file (./data)"},
    {"fsync", OPT_FSYNC, OFF(fsync), "MODE", "always|everysec|no (everysec)"},
    {"snapshot-interval", OPT_UINT, OFF(snapshot_interval), "S",
     "seconds between snapshots, 0 = on demand (300)"},
    {"api-key", OPT_KEY, 0, "KEY[:SCOPE]",
     "accepted key (scope admin, read or verify; admin), repeatable; env: "
     "comma separated"},
    {"api-key-file", OPT_STR, OFF(api_key_file), "PATH",
     "keys, one `KEY SCOPE [NAME]` a line, mode 0600; re-read on SIGHUP"},
    {"tls-cert", OPT_STR, OFF(tls_cert), "FILE",
     "PEM certificate (chain): both ports speak TLS only"},
    {"tls-key", OPT_STR, OFF(tls_key), "FILE", "PEM private key of --tls-cert"},
    {"allow-plaintext", OPT_BOOL, OFF(allow_plaintext), NULL,
     "permit a non-loopback --bind without TLS"},
    {"socket", OPT_STR, OFF(socket_path), "PATH",
     "also serve RPC on this Unix socket"},
    {"no-persist", OPT_BOOL, OFF(no_persist), NULL,
     "memory only: no data dir, nothing written"},
    {"postgres", OPT_STR, OFF(postgres), "CONNINFO",
     "PostgreSQL is the system of record (libpq conninfo or URI)"},
    {"drop-node", OPT_STR, OFF(drop_node), "NODE_ID",
     "with --postgres: drop the replication slot and origin of a node gone "
     "for good (its data dir's node-id), then exit"},
    {"max-body", OPT_SIZE, OFF(max_body), "BYTES",
     "largest HTTP body (1048576)"},
    {"max-header", OPT_SIZE, OFF(max_header), "BYTES",
     "largest HTTP header block (16384)"},
    {"max-request-line", OPT_SIZE, OFF(max_request_line), "BYTES",
     "longest HTTP request target (8192)"},
    {"max-frame", OPT_SIZE, OFF(max_frame), "BYTES",
     "largest RPC frame (1048576)"},
    {"max-output", OPT_SIZE, OFF(max_output), "BYTES",
     "queued reply bytes per connection before it is dropped (16777216)"},
    {"changes-keep", OPT_COUNT, OFF(changes_keep), "N",
     "latest changes resumable in the change stream (1000000)"},
    {"max-import", OPT_SIZE, OFF(max_import), "BYTES",
     "largest body of POST /v1/users/import (4294967296)"},
    {"max-connections", OPT_UINT, OFF(max_connections), "N",
     "open client connections (10000)"},
    {"idle-timeout", OPT_UINT, OFF(idle_timeout), "S",
     "close a connection silent this long, 0 = never (300)"},
    {"write-timeout", OPT_UINT, OFF(write_timeout), "S",
     "close a client that reads no reply this long (30)"},
    {"workers", OPT_UINT, OFF(workers), "N", "password hashing threads (2)"},
    {"argon2-ops", OPT_UINT, OFF(argon2_ops), "N",
     "Argon2id passes for new hashes (libsodium INTERACTIVE: 2)"},
    {"argon2-mem", OPT_SIZE, OFF(argon2_mem), "BYTES",
     "Argon2id memory for new hashes (INTERACTIVE: 67108864)"},
    {"verify-backoff-ms", OPT_UINT, OFF(verify_backoff_ms), "N",
     "after 5 failed verifies of a user in a row, delay the next by N ms, "
     "doubling; 0 = off (0)"},
    {"verify-backoff-max-ms", OPT_UINT, OFF(verify_backoff_max_ms), "N",
     "longest such delay (30000)"},
    {"help", OPT_BOOL, OFF(help), NULL, "print this help"},
};
#define N_OPTS (sizeof(opts) / sizeof(opts[0]))

static int parse_ull(const char *s, unsigned long long max,
		     unsigned long long *out)
{
	char *end;
	if (!s || !*s || *s == '-')
		return -1;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		return -1;
	*out = v;
	return 0;
}

static int add_key(struct server_config *cfg, const char *key)
{
	if (!*key)
		return -1;
	if (cfg->n_api_keys == CONFIG_MAX_KEYS)
		return -1;
	cfg->api_keys[cfg->n_api_keys++] = key;
	return 0;
}

/* Split a comma-separated USERDB_API_KEY into cfg (owning copy). */
static int env_keys(struct server_config *cfg, const char *val)
{
	free(cfg->key_storage);
	cfg->key_storage = strdup(val);
	if (!cfg->key_storage)
		return -1;
	cfg->n_api_keys = 0;
	for (char *save, *k = strtok_r(cfg->key_storage, ",", &save); k;
	     k = strtok_r(NULL, ",", &save))
		if (add_key(cfg, k))
			return -1;
	return 0;
}

static int opt_set(struct server_config *cfg, const struct opt *o,
		   const char *val, bool from_env)
{
	char *p = (char *)cfg + o->off;
	unsigned long long v;

	switch (o->kind) {
	case OPT_STR:
		*(const char **)p = val;
		return 0;
	case OPT_PORT:
		if (parse_ull(val, 65535, &v))
			return -1;
		*(int *)p = (int)v;
		return 0;
	case OPT_UINT:
		if (parse_ull(val, 1000000000ull, &v))
			return -1;
		*(unsigned *)p = (unsigned)v;
		return 0;
	case OPT_SIZE:
	case OPT_COUNT:
		if (parse_ull(val, 1ull << 40, &v) ||
		    (v == 0 && o->kind == OPT_SIZE))
			return -1;
		*(size_t *)p = (size_t)v;
		return 0;
	case OPT_BOOL:
		*(bool *)p = !val || !strcmp(val, "1") ||
			     !strcasecmp(val, "true") ||
			     !strcasecmp(val, "yes");
		return 0;
	case OPT_FSYNC:
		if (!strcmp(val, "always"))
			cfg->fsync = UD_FSYNC_ALWAYS;
		else if (!strcmp(val, "everysec"))
			cfg->fsync = UD_FSYNC_EVERYSEC;
		else if (!strcmp(val, "no"))
			cfg->fsync = UD_FSYNC_NO;
		else
			return -1;
		return 0;
	case OPT_KEY:
		return from_env ? env_keys(cfg, val) : add_key(cfg, val);
	}
	return -1;
}

/* USERDB_HTTP_PORT -> the "http-port" entry, or NULL. */
static const struct opt *opt_by_env(const char *name, size_t n)
{
	for (size_t i = 0; i < N_OPTS; i++) {
		const char *f = opts[i].name;
		if (strlen(f) != n || opts[i].off == OFF(help))
			continue;
		size_t j = 0;
		for (; j < n; j++) {
			char c = f[j] == '-' ? '_' : (char)(f[j] - 'a' + 'A');
			if (f[j] >= '0' && f[j] <= '9')
				c = f[j];
			if (name[j] != c)
				break;
		}
		if (j == n)
			return &opts[i];
	}
	return NULL;
}

static int parse_env(struct server_config *cfg, char **envp, FILE *err)
{
	for (char **e = envp; e && *e; e++) {
		if (strncmp(*e, "USERDB_", 7))
			continue;
		const char *name = *e + 7, *eq = strchr(name, '=');
		if (!eq)
			continue;
		const struct opt *o = opt_by_env(name, (size_t)(eq - name));
		if (o && opt_set(cfg, o, eq + 1, true)) {
			fprintf(err, "userdb-server: bad value in %s\n", *e);
			return -1;
		}
	}
	return 0;
}

static const struct opt *opt_by_flag(const char *arg, const char **val)
{
	size_t n = strcspn(arg, "=");
	*val = arg[n] == '=' ? arg + n + 1 : NULL;
	for (size_t i = 0; i < N_OPTS; i++)
		if (strlen(opts[i].name) == n && !strncmp(arg, opts[i].name, n))
			return &opts[i];
	return NULL;
}

static int parse_args(struct server_config *cfg, int argc, char **argv,
		      FILE *err)
{
	bool cli_keys = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val;
		const struct opt *o =
		    strncmp(a, "--", 2) ? NULL : opt_by_flag(a + 2, &val);
		if (!strcmp(a, "-h"))
			o = opt_by_flag("help", &val);
		if (!o) {
			fprintf(err, "userdb-server: unknown option %s\n", a);
			return -1;
		}
		if (o->arg && !val) {
			if (i + 1 == argc) {
				fprintf(err, "userdb-server: %s needs %s\n", a,
					o->arg);
				return -1;
			}
			val = argv[++i];
		}
		if (o->kind == OPT_KEY && !cli_keys) {
			cfg->n_api_keys = 0; /* flags replace env keys */
			cli_keys = true;
		}
		if (opt_set(cfg, o, val, false)) {
			fprintf(err, "userdb-server: bad value for --%s: %s\n",
				o->name, val ? val : "");
			return -1;
		}
	}
	return 0;
}

int config_parse(struct server_config *cfg, int argc, char **argv, char **envp,
		 FILE *err)
{
	*cfg = config_default;
	if (parse_env(cfg, envp, err) || parse_args(cfg, argc, argv, err))
		return -1;
	return 0;
}

void config_free(struct server_config *cfg)
{
	free(cfg->key_storage);
	cfg->key_storage = NULL;
}

void config_usage(FILE *out)
{
	fprintf(out, "usage: userdb-server [options]\n\n"
		     "Every option can also be set in the environment as "
		     "USERDB_<OPTION>\n(e.g. USERDB_HTTP_PORT=8081, "
		     "USERDB_NO_PERSIST=1, USERDB_API_KEY=k1,k2).\n\n");
	for (size_t i = 0; i < N_OPTS; i++) {
		char left[48];
		snprintf(left, sizeof left, "--%s%s%s", opts[i].name,
			 opts[i].arg ? " " : "",
			 opts[i].arg ? opts[i].arg : "");
		fprintf(out, "  %-28s %s\n", left, opts[i].help);
	}
	fprintf(out, "  %-28s %s\n", "--version",
		"print the version and exit (no environment twin)");
}
