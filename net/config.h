/*
 * config.h -- userdb-server settings: defaults, command-line flags and their
 * USERDB_<FLAG> environment twins.
 *
 * Precedence: built-in default < environment < command line.  Every flag
 * --some-flag has the variable USERDB_SOME_FLAG.  Boolean flags take 1, true
 * or yes in the environment.  USERDB_API_KEY may hold several keys separated
 * by commas; --api-key is repeatable and, when given, replaces the
 * environment's keys.  A key may end in :admin, :read or :verify (its
 * scope, apikey.h).  config_parse never exits; main decides.
 */
#ifndef UD_NET_CONFIG_H
#define UD_NET_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "userdb.h"

#define CONFIG_MAX_KEYS 16

struct server_config {
	const char *bind;     /* "127.0.0.1" */
	int port;	      /* RPC, 7420; 0 = pick one */
	int http_port;	      /* 8080; 0 = pick one */
	const char *data_dir; /* "./data" */
	enum ud_fsync fsync;
	unsigned snapshot_interval; /* seconds, 0 = on demand only */
	const char *api_keys[CONFIG_MAX_KEYS];
	unsigned n_api_keys;
	const char *api_key_file;	/* NULL = none; see apikey.h */
	const char *tls_cert, *tls_key; /* PEM files; NULL = plaintext */
	bool allow_plaintext;		/* a non-loopback bind without TLS */
	const char *socket_path;	/* NULL = no Unix socket */
	bool no_persist;
	const char *postgres;  /* --postgres CONNINFO, NULL = off (SPEC §7) */
	const char *drop_node; /* --drop-node NODE_ID: drop its slot, exit */
	/* limits */
	size_t max_body;	 /* HTTP body bytes, 1 MiB */
	size_t max_header;	 /* HTTP header block bytes, 16 KiB */
	size_t max_request_line; /* HTTP method + target bytes, 8 KiB */
	size_t max_frame;	 /* RPC frame bytes, 1 MiB */
	size_t max_output;	 /* queued reply bytes per connection, 16 MiB */
	size_t changes_keep;	 /* changes resumable in the stream, 1000000 */
	size_t max_import;	 /* POST /v1/users/import body bytes, 4 GiB */
	unsigned max_connections;
	unsigned idle_timeout;	/* seconds without a request, 300 */
	unsigned write_timeout; /* seconds a reader may stall us, 30 */
	unsigned workers;	/* password hashing threads, 2 */
	unsigned argon2_ops;	/* Argon2id opslimit, 0 = INTERACTIVE */
	size_t argon2_mem;	/* Argon2id memlimit bytes, 0 = INTERACTIVE */
	unsigned verify_backoff_ms;	/* 0 = off; see backoff.h */
	unsigned verify_backoff_max_ms; /* the longest delay, 30000 */
	bool help;
	char *key_storage; /* owns the strings split from USERDB_API_KEY */
};

extern const struct server_config config_default;

/* Fill cfg from defaults, then env (envp as in main), then argv.  Returns 0
 * or -1 after writing a message to err.  Strings are borrowed from argv and
 * envp except those split from USERDB_API_KEY (free with config_free). */
int config_parse(struct server_config *cfg, int argc, char **argv, char **envp,
		 FILE *err);
void config_free(struct server_config *cfg);
void config_usage(FILE *out);

#endif
