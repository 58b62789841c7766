/*
 * test_metrics.c -- counters, histogram buckets and the exposition text.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "metrics.h"

Test(metrics, observe_and_expose)
{
	struct metrics m = {0};
	struct ud_stats st = {0};
	struct ud_buf b = {0};
	st.users = 3;
	st.by_role_status[UD_ROLE_ADMIN][UD_STATUS_SUSPENDED] = 2;
	st.last_snapshot_ms = -1;
	uint64_t now = metrics_now_ns();
	metrics_observe(&m, MR_HTTP_USER_GET, false, now);
	metrics_observe(&m, MR_HTTP_USER_GET, true, now);
	metrics_observe(&m, MR_RPC_USER_GET, false, now - 2000000000ull);
	cr_assert_eq(m.requests[MR_HTTP_USER_GET], 2);
	cr_assert_eq(m.errors[MR_HTTP_USER_GET], 1);
	cr_assert_eq(m.count[1], 1);
	cr_assert_eq(metrics_write(&m, &st, 4, &b), 0);
	ud_buf_append(&b, "", 1);
	const char *t = b.data;
	cr_assert(
	    strstr(t, "userdb_users{role=\"admin\",status=\"suspended\"} 2\n"));
	cr_assert(strstr(t, "userdb_requests_total{proto=\"http\",route=\"GET "
			    "/v1/users/{id}\"} 2\n"));
	cr_assert(strstr(t, "userdb_errors_total{proto=\"http\",route=\"GET "
			    "/v1/users/{id}\"} 1\n"));
	cr_assert(strstr(t, "userdb_requests_total{proto=\"rpc\",route=\"user."
			    "get\"} 1\n"));
	/* The 2 s RPC request is above the 1 s bucket, inside 2.5 s. */
	cr_assert(strstr(t, "userdb_request_duration_seconds_bucket{proto=\"rpc"
			    "\",le=\"1\"} 0\n"));
	cr_assert(strstr(t, "userdb_request_duration_seconds_bucket{proto=\"rpc"
			    "\",le=\"2.5\"} 1\n"));
	cr_assert(strstr(t, "userdb_request_duration_seconds_count{proto=\"http"
			    "\"} 2\n"));
	cr_assert(strstr(t, "userdb_last_snapshot_timestamp_seconds -1\n"));
	cr_assert(strstr(t, "userdb_password_jobs 4\n"));
	cr_assert(
	    strstr(t, "# TYPE userdb_request_duration_seconds histogram"));
	ud_buf_free(&b);
}
