/*
 * helper_server.h -- integration-test helpers: start the real userdb-server
 * binary (USERDB_SERVER) on 127.0.0.1 with port 0 and a temporary data dir
 * (or --no-persist), read the chosen ports from its `ready` line, talk to it
 * with a tiny blocking HTTP/1.1 client and a MessagePack-RPC client, and
 * stop it with SIGTERM.  Loopback only.
 */
#ifndef UD_TEST_HELPER_SERVER_H
#define UD_TEST_HELPER_SERVER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define TSRV_KEY "test-key-0123456789abcdef"

struct tsrv {
	pid_t pid;
	int rpc_port, http_port;
	char dir[256];	/* temp dir (data dir lives in dir/data) */
	char data[300]; /* data dir */
	char sock[300]; /* unix socket path */
	char out[4096]; /* stdout up to the ready line */
};

/* Start with --port 0 --http-port 0 --socket DIR/rpc.sock plus args (NULL-
 * terminated, may be NULL).  persist: --data-dir DIR/data, else
 * --no-persist.  with_key: --api-key TSRV_KEY.  0 or -1 (no ready line in
 * 10 s).  An existing s->dir is reused (restart on the same data). */
int tsrv_start(struct tsrv *s, bool persist, bool with_key,
	       const char *const *args);
/* SIGTERM and wait: the exit status (or -1 when killed by a signal). */
int tsrv_stop(struct tsrv *s);
/* Stop the server if running, remove the temp dir; the exit status (0
 * when it was already stopped).  Sanitizer reports make it non-zero. */
int tsrv_cleanup(struct tsrv *s);

/* ---- HTTP --------------------------------------------------------------- */

struct hresp {
	int status;
	char headers[8192]; /* raw header block */
	char *body;	    /* NUL-terminated, malloc'd */
	size_t body_len;
};

int tcp_connect(int port);
/* One request on a fresh connection (Connection: close).  auth: send the
 * test key as Bearer.  extra: more header lines ("X: y\r\n") or NULL.  0 or
 * -1. */
int http_do(const struct tsrv *s, const char *method, const char *path,
	    const char *body, bool auth, const char *extra, struct hresp *r);
/* Send raw bytes on a fresh connection and read until close. */
int http_raw(const struct tsrv *s, const char *raw, size_t len,
	     struct hresp *r);
/* Header value (case-insensitive name) copied into out; NULL if absent. */
const char *hresp_header(const struct hresp *r, const char *name, char *out,
			 size_t cap);
/* Body parsed as JSON (caller decref) or NULL. */
json_t *hresp_json(const struct hresp *r);
void hresp_free(struct hresp *r);
/* Shorthand: JSON body's error.code, "" when none. */
const char *hresp_error_code(const struct hresp *r, char *out, size_t cap);

/* ---- MessagePack-RPC ------------------------------------------------------
 */

struct rpcc {
	int fd;
	void *unpacker; /* msgpack_unpacker */
	unsigned next_id;
};

int rpcc_open(struct rpcc *c, int port);
int rpcc_open_unix(struct rpcc *c, const char *path);
void rpcc_close(struct rpcc *c);
/* Send [0, msgid, method, params] with params given as JSON text. */
unsigned rpcc_send(struct rpcc *c, const char *method, const char *params);
/* Next message as JSON ([1, msgid, error, result]); NULL on EOF/timeout. */
json_t *rpcc_recv(struct rpcc *c);
/* send + recv; checks the msgid.  Returns the whole response. */
json_t *rpcc_call(struct rpcc *c, const char *method, const char *params);
/* The response's error code ("" when none) and result (borrowed). */
const char *rpc_err(json_t *resp);
json_t *rpc_res(json_t *resp);
/* Authenticate with TSRV_KEY; 0 or -1. */
int rpcc_auth(struct rpcc *c);
int send_all(int fd, const void *p, size_t n);

/* ---- abuse and crash tests ---------------------------------------------- */

/* tsrv_start, but the server's stdout and stderr both go to log_path (for
 * the whole run, not only up to the ready line).  0 or -1. */
int tsrv_start_logged(struct tsrv *s, bool persist, bool with_key,
		      const char *const *args, const char *log_path);
/* The server's resident set (VmRSS) in KiB, -1 when unknown. */
long tsrv_rss_kb(const struct tsrv *s);
/* An RPC client on an already connected socket (taken over). */
int rpcc_wrap_fd(struct rpcc *c, int fd);
/* Milliseconds on the monotonic clock. */
double mono_ms(void);
/* A value from GET /metrics: the first sample line of name (with or without
 * labels); -1 when absent, -2 when the request failed. */
double tsrv_metric(const struct tsrv *s, const char *name);

#endif
