/*
 * metrics.c -- counters and the Prometheus text format; see metrics.h.
 */
#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const char *const route_names[MR__COUNT] = {
    [MR_HTTP_USERS_LIST] = "GET /v1/users",
    [MR_HTTP_USERS_CREATE] = "POST /v1/users",
    [MR_HTTP_USER_GET] = "GET /v1/users/{id}",
    [MR_HTTP_USER_UPDATE] = "PATCH /v1/users/{id}",
    [MR_HTTP_USER_DELETE] = "DELETE /v1/users/{id}",
    [MR_HTTP_PASSWORD_SET] = "PATCH /v1/users/{id}/password",
    [MR_HTTP_PASSWORD_VERIFY] = "POST /v1/users/{id}/password/verify",
    [MR_HTTP_SUSPEND] = "PATCH /v1/users/{id}/is-suspended",
    [MR_HTTP_IDENTITY_PUT] = "PUT /v1/users/{id}/identities/{target}",
    [MR_HTTP_IDENTITY_DELETE] = "DELETE /v1/users/{id}/identities/{target}",
    [MR_HTTP_LOGS] = "GET /v1/logs",
    [MR_HTTP_HEALTHZ] = "GET /healthz",
    [MR_HTTP_METRICS] = "GET /metrics",
    [MR_HTTP_CONSOLE] = "GET /console/",
    [MR_HTTP_EVENTS] = "GET /v1/events",
    [MR_HTTP_EXPORT] = "GET /v1/users/export",
    [MR_HTTP_IMPORT] = "POST /v1/users/import",
    [MR_HTTP_OPENAPI] = "GET /openapi.json",
    [MR_HTTP_UNMATCHED] = "unmatched",
    [MR_RPC_UNKNOWN] = "unknown",
    [MR_RPC_AUTH] = "auth",
    [MR_RPC_PING] = "ping",
    [MR_RPC_USER_GET] = "user.get",
    [MR_RPC_USER_GET_BY_EMAIL] = "user.get_by_email",
    [MR_RPC_USER_GET_MANY] = "user.get_many",
    [MR_RPC_USER_CREATE] = "user.create",
    [MR_RPC_USER_UPDATE] = "user.update",
    [MR_RPC_USER_DELETE] = "user.delete",
    [MR_RPC_USER_LIST] = "user.list",
    [MR_RPC_USER_SET_PASSWORD] = "user.set_password",
    [MR_RPC_USER_VERIFY_PASSWORD] = "user.verify_password",
    [MR_RPC_USER_SET_SUSPENDED] = "user.set_suspended",
    [MR_RPC_USER_LINK_IDENTITY] = "user.link_identity",
    [MR_RPC_USER_UNLINK_IDENTITY] = "user.unlink_identity",
    [MR_RPC_LOG_LIST] = "log.list",
    [MR_RPC_SERVER_STATS] = "server.stats",
    [MR_RPC_SERVER_SNAPSHOT] = "server.snapshot",
    [MR_RPC_CHANGES_WATCH] = "changes.watch",
    [MR_RPC_CHANGES_UNWATCH] = "changes.unwatch",
};

/* Upper bounds of the latency buckets, seconds. */
static const double bucket_le[METRICS_BUCKETS] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
    0.025,  0.05,    0.1,    0.25,  0.5,    1,	   2.5};

const char *metrics_route_name(enum metric_route r)
{
	return r < MR__COUNT ? route_names[r] : "unknown";
}

uint64_t metrics_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void metrics_observe(struct metrics *m, enum metric_route r, bool error,
		     uint64_t start_ns)
{
	metrics_observe_at(m, r, error, start_ns, metrics_now_ns());
}

void metrics_observe_at(struct metrics *m, enum metric_route r, bool error,
			uint64_t start_ns, uint64_t end_ns)
{
	int proto = r >= MR_RPC_FIRST;
	double s = (double)(end_ns - start_ns) / 1e9;
	unsigned i = 0;

	m->requests[r]++;
	m->errors[r] += error;
	while (i < METRICS_BUCKETS && s > bucket_le[i])
		i++;
	m->hist[proto][i]++;
	m->sum[proto] += s;
	m->count[proto]++;
}

static int put(struct ud_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int put(struct ud_buf *b, const char *fmt, ...)
{
	va_list ap;
	for (;;) {
		size_t room = b->cap - b->len;
		va_start(ap, fmt);
		int n =
		    vsnprintf(b->data ? b->data + b->len : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0)
			return UD_EINTERNAL;
		if ((size_t)n < room) {
			b->len += (size_t)n;
			return 0;
		}
		if (ud_buf_reserve(b, (size_t)n + 1))
			return UD_ENOMEM;
	}
}

static int write_routes(const struct metrics *m, struct ud_buf *b)
{
	int rc = put(b, "# HELP userdb_requests_total Requests answered, by "
			"protocol and route.\n"
			"# TYPE userdb_requests_total counter\n");
	for (int r = 0; r < MR__COUNT && !rc; r++)
		rc = put(b,
			 "userdb_requests_total{proto=\"%s\",route=\"%s\"} "
			 "%llu\n",
			 r >= MR_RPC_FIRST ? "rpc" : "http", route_names[r],
			 (unsigned long long)m->requests[r]);
	rc = rc ? rc
		: put(b, "# HELP userdb_errors_total Requests answered with "
			 "an error, by protocol and route.\n"
			 "# TYPE userdb_errors_total counter\n");
	for (int r = 0; r < MR__COUNT && !rc; r++)
		rc = put(b,
			 "userdb_errors_total{proto=\"%s\",route=\"%s\"} "
			 "%llu\n",
			 r >= MR_RPC_FIRST ? "rpc" : "http", route_names[r],
			 (unsigned long long)m->errors[r]);
	return rc;
}

unsigned metrics_key_slot(struct metrics *m, const char *name)
{
	for (unsigned i = 0; i < m->n_keys; i++)
		if (!strcmp(m->keys[i].name, name))
			return i;
	if (m->n_keys == METRICS_KEYS - 1) {
		snprintf(m->keys[m->n_keys].name, METRICS_KEY_NAME + 1,
			 "other");
		m->n_keys++;
	}
	if (m->n_keys == METRICS_KEYS)
		return METRICS_KEYS - 1;
	snprintf(m->keys[m->n_keys].name, METRICS_KEY_NAME + 1, "%s", name);
	return m->n_keys++;
}

static int write_keys(const struct metrics *m, struct ud_buf *b)
{
	int rc = put(b, "# HELP userdb_key_requests_total Authenticated "
			"requests, by the name of the key (never the key).\n"
			"# TYPE userdb_key_requests_total counter\n");
	for (unsigned i = 0; i < m->n_keys && !rc; i++)
		rc = put(b, "userdb_key_requests_total{key=\"%s\"} %llu\n",
			 m->keys[i].name,
			 (unsigned long long)m->keys[i].requests);
	return rc;
}

static int write_histograms(const struct metrics *m, struct ud_buf *b)
{
	int rc = put(b, "# HELP userdb_request_duration_seconds Time from "
			"request read to reply queued.\n"
			"# TYPE userdb_request_duration_seconds histogram\n");
	for (int p = 0; p < 2 && !rc; p++) {
		const char *proto = p ? "rpc" : "http";
		uint64_t cum = 0;
		for (int i = 0; i <= METRICS_BUCKETS && !rc; i++) {
			char le[32];
			cum += m->hist[p][i];
			if (i < METRICS_BUCKETS)
				snprintf(le, sizeof le, "%g", bucket_le[i]);
			else
				snprintf(le, sizeof le, "+Inf");
			rc = put(b,
				 "userdb_request_duration_seconds_bucket{"
				 "proto=\"%s\",le=\"%s\"} %llu\n",
				 proto, le, (unsigned long long)cum);
		}
		rc = rc ? rc
			: put(b,
			      "userdb_request_duration_seconds_sum{proto="
			      "\"%s\"} %.9f\n"
			      "userdb_request_duration_seconds_count{proto="
			      "\"%s\"} %llu\n",
			      proto, m->sum[p], proto,
			      (unsigned long long)m->count[p]);
	}
	return rc;
}

static int write_users(const struct ud_stats *st, struct ud_buf *b)
{
	int rc = put(b, "# HELP userdb_users Users held, by role and "
			"status.\n# TYPE userdb_users gauge\n");
	for (int r = 0; r < UD_ROLES; r++)
		for (int s = 0; s < UD_STATUSES && !rc; s++)
			rc = put(b,
				 "userdb_users{role=\"%s\",status=\"%s\"} "
				 "%llu\n",
				 ud_role_name(r), ud_status_name(s),
				 (unsigned long long)st->by_role_status[r][s]);
	return rc;
}

/* One "# TYPE name kind\nname value\n" pair. */
static int metric1(struct ud_buf *b, const char *name, const char *kind,
		   const char *help, double v)
{
	return put(b, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help,
		   name, kind, name, v);
}

static int write_state(const struct metrics *m, const struct ud_stats *st,
		       unsigned jobs, struct ud_buf *b)
{
	struct {
		const char *name, *kind, *help;
		double v;
	} rows[] = {
	    {"userdb_users_total", "gauge", "Users held.", (double)st->users},
	    {"userdb_record_bytes", "gauge", "Bytes of user records.",
	     (double)st->record_bytes},
	    {"userdb_activity_events", "gauge", "Activity log entries held.",
	     (double)st->log_events},
	    {"userdb_failed_verifies_total", "counter",
	     "Password verifications that failed.",
	     (double)st->failed_verifies},
	    {"userdb_password_failures_total", "counter",
	     "Failed password verifications, all users (per user: "
	     "failed_count in user.password_verified events).",
	     (double)st->failed_verifies},
	    {"userdb_log_bytes", "gauge", "Bytes in the live log segments.",
	     (double)st->log_bytes},
	    {"userdb_log_records_total", "counter",
	     "Log records written since start.", (double)st->log_records},
	    {"userdb_log_seq", "gauge", "Last log sequence number.",
	     (double)st->log_seq},
	    {"userdb_snapshots_total", "counter",
	     "Snapshots completed since start.", (double)st->snapshots},
	    {"userdb_snapshot_failures_total", "counter",
	     "Snapshots that failed to start or to reach the disk.",
	     (double)st->snapshot_failures},
	    {"userdb_last_snapshot_timestamp_seconds", "gauge",
	     "Unix time of the last snapshot, -1 never.",
	     st->last_snapshot_ms < 0 ? -1.0
				      : (double)st->last_snapshot_ms / 1000.0},
	    {"userdb_last_snapshot_bytes", "gauge",
	     "Size of the last snapshot.", (double)st->last_snapshot_bytes},
	    {"userdb_snapshot_running", "gauge",
	     "1 while a snapshot is written.",
	     st->snapshot_running ? 1.0 : 0.0},
	    {"userdb_unavailable", "gauge",
	     "1 while writes are refused (disk failure).",
	     st->unavailable ? 1.0 : 0.0},
	    {"userdb_connections_open", "gauge", "Client connections open.",
	     (double)m->connections_open},
	    {"userdb_connections_total", "counter",
	     "Client connections accepted.", (double)m->connections_total},
	    {"userdb_connections_refused_total", "counter",
	     "Connections refused over max-connections.",
	     (double)m->connections_refused},
	    {"userdb_connections_dropped_total", "counter",
	     "Connections closed for not reading replies.",
	     (double)m->connections_dropped},
	    {"userdb_flush_errors_total", "counter", "Failed log flushes.",
	     (double)m->flush_errors},
	    {"userdb_verify_delayed_total", "counter",
	     "Password verifications delayed by --verify-backoff-ms.",
	     (double)m->verify_delayed},
	    {"userdb_verify_backoff_users", "gauge",
	     "Users with failed verifications in a row counted.",
	     (double)m->backoff_users},
	    {"userdb_password_jobs", "gauge",
	     "Password hash/verify jobs in flight.", (double)jobs},
	    {"userdb_changes_watchers", "gauge",
	     "Change stream watchers (SSE and RPC).",
	     (double)m->changes_watchers},
	    {"userdb_changes_window_bytes", "gauge",
	     "Memory held by the change stream's window (index, tail, "
	     "compressed blocks).",
	     (double)m->changes_window_bytes},
	};
	int rc = 0;
	for (size_t i = 0; i < sizeof rows / sizeof rows[0] && !rc; i++)
		rc = metric1(b, rows[i].name, rows[i].kind, rows[i].help,
			     rows[i].v);
	return rc;
}

int metrics_write(const struct metrics *m, const struct ud_stats *st,
		  unsigned inflight_jobs, struct ud_buf *b)
{
	int rc = write_users(st, b);
	rc = rc ? rc : write_state(m, st, inflight_jobs, b);
	rc = rc ? rc : write_routes(m, b);
	rc = rc ? rc : write_keys(m, b);
	return rc ? rc : write_histograms(m, b);
}
