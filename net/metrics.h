/*
 * metrics.h -- request counters and latency histograms, and the Prometheus
 * text exposition served on GET /metrics.
 *
 * Every request of either protocol is counted once, when its reply is
 * queued, under a route label: the HTTP route pattern ("GET /v1/users/{id}")
 * or the RPC method name.  Errors are replies with an error code (HTTP
 * status >= 400, RPC error map).  Latency is measured from the moment the
 * request was fully read to the moment its reply was queued, so password
 * work on the worker pool is included.  Loop thread only; plain counters.
 */
#ifndef UD_NET_METRICS_H
#define UD_NET_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "userdb.h"

enum metric_route {
	MR_HTTP_USERS_LIST,
	MR_HTTP_USERS_CREATE,
	MR_HTTP_USER_GET,
	MR_HTTP_USER_UPDATE,
	MR_HTTP_USER_DELETE,
	MR_HTTP_PASSWORD_SET,
	MR_HTTP_PASSWORD_VERIFY,
	MR_HTTP_SUSPEND,
	MR_HTTP_IDENTITY_PUT,
	MR_HTTP_IDENTITY_DELETE,
	MR_HTTP_LOGS,
	MR_HTTP_HEALTHZ,
	MR_HTTP_METRICS,
	MR_HTTP_CONSOLE, /* the console's static files */
	MR_HTTP_EVENTS,
	MR_HTTP_EXPORT,
	MR_HTTP_IMPORT,
	MR_HTTP_OPENAPI,
	MR_HTTP_UNMATCHED, /* 404/405/401 before a route was chosen */
	MR_RPC_FIRST,
	MR_RPC_UNKNOWN = MR_RPC_FIRST, /* unknown method, bad frame */
	MR_RPC_AUTH,
	MR_RPC_PING,
	MR_RPC_USER_GET,
	MR_RPC_USER_GET_BY_EMAIL,
	MR_RPC_USER_GET_MANY,
	MR_RPC_USER_CREATE,
	MR_RPC_USER_UPDATE,
	MR_RPC_USER_DELETE,
	MR_RPC_USER_LIST,
	MR_RPC_USER_SET_PASSWORD,
	MR_RPC_USER_VERIFY_PASSWORD,
	MR_RPC_USER_SET_SUSPENDED,
	MR_RPC_USER_LINK_IDENTITY,
	MR_RPC_USER_UNLINK_IDENTITY,
	MR_RPC_LOG_LIST,
	MR_RPC_SERVER_STATS,
	MR_RPC_SERVER_SNAPSHOT,
	MR_RPC_CHANGES_WATCH,
	MR_RPC_CHANGES_UNWATCH,
	MR__COUNT
};

#define METRICS_BUCKETS 14
/* Distinct key names counted (apikey.h); names past this share the last
 * slot, labelled "other". */
#define METRICS_KEYS	 512
#define METRICS_KEY_NAME 64

struct metrics_key {
	char name[METRICS_KEY_NAME + 1];
	uint64_t requests;
};

struct metrics {
	uint64_t requests[MR__COUNT];
	uint64_t errors[MR__COUNT];
	uint64_t hist[2][METRICS_BUCKETS + 1]; /* [http, rpc], last = +Inf */
	double sum[2];
	uint64_t count[2];
	/* server gauges/counters maintained by server.c */
	uint64_t connections_open, connections_total, connections_refused;
	uint64_t connections_dropped; /* slow or over max_output */
	uint64_t flush_errors;
	uint64_t verify_delayed;       /* verifications held by the back-off */
	uint64_t backoff_users;	       /* users with failures counted (gauge) */
	uint64_t changes_watchers;     /* gauge, set before a scrape */
	uint64_t changes_window_bytes; /* gauge, set before a scrape */
	/* requests by key name (never by key), kept across key reloads */
	struct metrics_key keys[METRICS_KEYS];
	unsigned n_keys;
};

/* The counter slot of a key name (added when new). */
unsigned metrics_key_slot(struct metrics *m, const char *name);

/* The label of a route ("GET /v1/users/{id}", "user.get"). */
const char *metrics_route_name(enum metric_route r);
/* Monotonic clock in nanoseconds. */
uint64_t metrics_now_ns(void);
/* Count one reply. */
void metrics_observe(struct metrics *m, enum metric_route r, bool error,
		     uint64_t start_ns);
/* The same with the end time given (a caller that has just read the
 * clock, so one reading serves as this reply's end and the next one's
 * start). */
void metrics_observe_at(struct metrics *m, enum metric_route r, bool error,
			uint64_t start_ns, uint64_t end_ns);
/* Append the whole exposition (these counters plus the store's ud_stats).
 * Returns 0 or UD_ENOMEM. */
int metrics_write(const struct metrics *m, const struct ud_stats *st,
		  unsigned inflight_jobs, struct ud_buf *b);

#endif
