/*
 * test_http.c -- the HTTP/JSON API of the real server (SPEC §2): every
 * route, envelope and error code, headers (ETag/If-Match, Link,
 * Total-Number, Allow), limits, keep-alive pipelining, /metrics.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "helper_server.h"
#include "http.h"

static struct tsrv S;

static void start(void)
{
	const char *args[] = {
	    "--max-body", "65536", "--max-header", "4096", "--max-request-line",
	    "2048",	  NULL};
	memset(&S, 0, sizeof S);
	cr_assert_eq(tsrv_start(&S, false, true, args), 0, "server start");
}

static void stop(void)
{
	cr_assert_eq(tsrv_cleanup(&S), 0, "server exit status");
}

TestSuite(http, .init = start, .fini = stop, .timeout = 30);

/* POST a user; returns its id (static buffer). */
static const char *create(const char *name, const char *email, const char *more)
{
	static char id[80];
	char body[1024];
	struct hresp r;
	snprintf(body, sizeof body, "{\"name\":\"%s\",\"email\":\"%s\"%s%s}",
		 name, email, more ? "," : "", more ? more : "");
	cr_assert_eq(http_do(&S, "POST", "/v1/users", body, true, NULL, &r), 0);
	cr_assert_eq(r.status, 201, "create: %d %s", r.status, r.body);
	char loc[128];
	cr_assert_not_null(hresp_header(&r, "Location", loc, sizeof loc));
	json_t *j = hresp_json(&r);
	snprintf(id, sizeof id, "%s",
		 json_string_value(
		     json_object_get(json_object_get(j, "data"), "id")));
	json_decref(j);
	hresp_free(&r);
	return id;
}

/* Request and expect a status; returns the parsed body (decref). */
static json_t *expect(const char *method, const char *path, const char *body,
		      int status, const char *code)
{
	struct hresp r;
	char got[64];
	cr_assert_eq(http_do(&S, method, path, body, true, NULL, &r), 0);
	cr_assert_eq(r.status, status, "%s %s: %d %s", method, path, r.status,
		     r.body);
	if (code)
		cr_assert_str_eq(hresp_error_code(&r, got, sizeof got), code,
				 "%s %s: %s", method, path, r.body);
	json_t *j = hresp_json(&r);
	cr_assert_not_null(j, "body is JSON: %s", r.body);
	if (code)
		cr_assert(json_is_false(json_object_get(j, "success")));
	hresp_free(&r);
	return j;
}

Test(http, head_is_get_without_a_body)
{
	const char *req = "HEAD /healthz HTTP/1.1\r\nConnection: close\r\n\r\n";
	struct hresp r;
	char v[32];
	cr_assert_eq(http_raw(&S, req, strlen(req), &r), 0);
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(hresp_header(&r, "Content-Length", v, sizeof v), "15");
	cr_assert_eq(r.body_len, 0);
	hresp_free(&r);
}

/* Found by fuzz_http: a malformed method starting with H made http-parser
 * guess HEAD, and the 400 reply then announced a body it never sent. */
Test(http, malformed_method_reply_has_its_body)
{
	const char *req = "H(EAD /healthz HTTP/1.1\r\n\r\n";
	struct hresp r;
	char v[32], code[32];
	cr_assert_eq(http_raw(&S, req, strlen(req), &r), 0);
	cr_assert_eq(r.status, 400);
	hresp_header(&r, "Content-Length", v, sizeof v);
	cr_assert_eq(r.body_len, (size_t)atoi(v));
	cr_assert_str_eq(hresp_error_code(&r, code, sizeof code),
			 "invalid_request");
	hresp_free(&r);
}

Test(http, healthz_needs_no_auth)
{
	struct hresp r;
	cr_assert_eq(http_do(&S, "GET", "/healthz", NULL, false, NULL, &r), 0);
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.body, "{\"status\":\"ok\"}");
	hresp_free(&r);
}

Test(http, auth_is_required)
{
	struct hresp r;
	char v[64];
	cr_assert_eq(http_do(&S, "GET", "/v1/users", NULL, false, NULL, &r), 0);
	cr_assert_eq(r.status, 401);
	cr_assert_str_eq(hresp_error_code(&r, v, sizeof v), "unauthorized");
	cr_assert_not_null(hresp_header(&r, "WWW-Authenticate", v, sizeof v));
	hresp_free(&r);
	http_do(&S, "GET", "/v1/users", NULL, false,
		"Authorization: Bearer nope\r\n", &r);
	cr_assert_eq(r.status, 401);
	hresp_free(&r);
	http_do(&S, "GET", "/v1/nothing", NULL, false, NULL, &r);
	cr_assert_eq(r.status, 401, "auth before routing");
	hresp_free(&r);
	http_do(&S, "GET", "/v1/users", NULL, false,
		"Authorization: bearer " TSRV_KEY "\r\n", &r);
	cr_assert_eq(r.status, 200, "scheme is case-insensitive");
	hresp_free(&r);
}

Test(http, create_get_envelopes)
{
	const char *id = create("Zhāng 伟", "Wei@Example.com",
				"\"role\":\"admin\",\"custom_data\":{\"k\":[1,"
				"true,null]}");
	char path[128];
	snprintf(path, sizeof path, "/v1/users/%s", id);
	struct hresp r;
	char etag[64];
	http_do(&S, "GET", path, NULL, true, NULL, &r);
	cr_assert_eq(r.status, 200);
	cr_assert_not_null(hresp_header(&r, "ETag", etag, sizeof etag));
	cr_assert_eq(etag[0], '"');
	json_t *j = hresp_json(&r);
	cr_assert(json_is_true(json_object_get(j, "success")));
	cr_assert_null(json_object_get(j, "message"), "reads carry no message");
	json_t *d = json_object_get(j, "data");
	cr_assert_str_eq(json_string_value(json_object_get(d, "name")),
			 "Zhāng 伟");
	cr_assert_str_eq(json_string_value(json_object_get(d, "role")),
			 "admin");
	cr_assert(json_is_null(json_object_get(d, "avatar")));
	cr_assert_null(json_object_get(d, "password"));
	cr_assert_eq(json_array_size(json_object_get(
			 json_object_get(d, "custom_data"), "k")),
		     3);
	json_decref(j);
	hresp_free(&r);
}

Test(http, create_errors)
{
	create("A", "a@example.com", NULL);
	json_decref(expect("POST", "/v1/users",
			   "{\"name\":\"B\",\"email\":\"A@EXAMPLE.com\"}", 409,
			   "duplicate_email"));
	create("C", "c@example.com", "\"id\":\"usr_mine-1\"");
	json_decref(expect("POST", "/v1/users",
			   "{\"id\":\"usr_mine-1\",\"name\":\"D\",\"email\":"
			   "\"d@example.com\"}",
			   409, "duplicate_id"));
	json_t *j = expect("POST", "/v1/users",
			   "{\"name\":\"E\",\"email\":\"no-at-sign\"}", 400,
			   "invalid_request");
	cr_assert_str_eq(json_string_value(json_object_get(
			     json_object_get(j, "error"), "field")),
			 "email");
	json_decref(j);
	json_decref(
	    expect("POST", "/v1/users", "{\"name\":", 400, "invalid_request"));
	json_decref(expect("POST", "/v1/users",
			   "{\"name\":\"F\",\"email\":\"f@example.com\","
			   "\"color\":\"red\"}",
			   400, "invalid_request"));
	json_decref(expect("POST", "/v1/users",
			   "{\"name\":\"G\",\"email\":\"g@example.com\","
			   "\"password\":\"short\"}",
			   400, "invalid_request"));
}

Test(http, update_etag_if_match_delete)
{
	const char *id0 = create("U", "u@example.com", NULL);
	char id[80], path[128], etag[64], hdr[128];
	struct hresp r;
	snprintf(id, sizeof id, "%s", id0);
	snprintf(path, sizeof path, "/v1/users/%s", id);
	http_do(&S, "GET", path, NULL, true, NULL, &r);
	hresp_header(&r, "ETag", etag, sizeof etag);
	hresp_free(&r);
	http_do(&S, "PATCH", path, "{\"name\":\"U2\"}", true, NULL, &r);
	char etag2[64], etag3[64];
	cr_assert_not_null(hresp_header(&r, "ETag", etag2, sizeof etag2));
	cr_assert_str_neq(etag2, etag, "a write moves the ETag");
	hresp_free(&r);
	http_do(&S, "GET", path, NULL, true, NULL, &r);
	cr_assert_str_eq(hresp_header(&r, "ETag", etag3, sizeof etag3), etag2);
	hresp_free(&r);
	json_t *j = expect("PATCH", path, "{\"name\":\"U2\"}", 200, NULL);
	cr_assert_str_eq(json_string_value(json_object_get(j, "message")),
			 "User updated");
	cr_assert_str_eq(json_string_value(json_object_get(
			     json_object_get(j, "data"), "name")),
			 "U2");
	json_decref(j);
	/* The old ETag is stale now. */
	snprintf(hdr, sizeof hdr, "If-Match: %s\r\n", etag);
	http_do(&S, "PATCH", path, "{\"name\":\"U3\"}", true, hdr, &r);
	cr_assert_eq(r.status, 412, "%s", r.body);
	hresp_free(&r);
	http_do(&S, "DELETE", path, NULL, true, hdr, &r);
	cr_assert_eq(r.status, 412);
	hresp_free(&r);
	http_do(&S, "GET", path, NULL, true, NULL, &r);
	hresp_header(&r, "ETag", etag, sizeof etag);
	hresp_free(&r);
	snprintf(hdr, sizeof hdr, "If-Match: %s\r\n", etag);
	http_do(&S, "PATCH", path, "{\"role\":\"viewer\"}", true, hdr, &r);
	cr_assert_eq(r.status, 200, "current ETag matches: %s", r.body);
	hresp_free(&r);
	json_decref(expect("PATCH", path, "{\"role\":\"root\"}", 400,
			   "invalid_request"));
	json_decref(expect("PATCH", path, "{\"password\":\"abcdefghij\"}", 400,
			   "invalid_request"));
	j = expect("DELETE", path, NULL, 200, NULL);
	cr_assert(json_is_true(json_object_get(j, "success")));
	cr_assert_not_null(json_object_get(j, "message"));
	cr_assert_null(json_object_get(j, "data"));
	json_decref(j);
	json_decref(expect("GET", path, NULL, 404, "not_found"));
	json_decref(
	    expect("PATCH", path, "{\"name\":\"x\"}", 404, "not_found"));
	json_decref(expect("DELETE", path, NULL, 404, "not_found"));
}

Test(http, passwords)
{
	char id[80], path[160];
	snprintf(
	    id, sizeof id, "%s",
	    create("P", "p@example.com", "\"password\":\"correct horse\""));
	snprintf(path, sizeof path, "/v1/users/%s/password/verify", id);
	json_t *j =
	    expect("POST", path, "{\"password\":\"correct horse\"}", 200, NULL);
	cr_assert(
	    json_is_true(json_object_get(json_object_get(j, "data"), "valid")));
	json_decref(j);
	j = expect("POST", path, "{\"password\":\"wrong horse\"}", 200, NULL);
	cr_assert(json_is_false(
	    json_object_get(json_object_get(j, "data"), "valid")));
	json_decref(j);
	json_decref(
	    expect("POST", path, "{\"pass\":\"x\"}", 400, "invalid_request"));
	snprintf(path, sizeof path, "/v1/users/%s/password", id);
	j = expect("PATCH", path, "{\"password\":\"battery staple\"}", 200,
		   NULL);
	json_t *d = json_object_get(j, "data");
	cr_assert(json_is_true(json_object_get(d, "has_password")));
	cr_assert_not(json_is_null(json_object_get(d, "last_sign_in_at")));
	cr_assert_null(json_object_get(d, "password"));
	json_decref(j);
	json_decref(expect("PATCH", path, "{\"password\":\"short\"}", 400,
			   "invalid_request"));
	json_decref(expect("PATCH", "/v1/users/usr_none/password",
			   "{\"password\":\"long enough\"}", 404, "not_found"));
	json_decref(expect("POST", "/v1/users/usr_none/password/verify",
			   "{\"password\":\"long enough\"}", 404, "not_found"));
}

Test(http, suspension_and_identities)
{
	char id[80], path[200];
	snprintf(id, sizeof id, "%s", create("S", "s@example.com", NULL));
	snprintf(path, sizeof path, "/v1/users/%s/is-suspended", id);
	json_t *j = expect("PATCH", path, "{\"is_suspended\":true}", 200, NULL);
	cr_assert_str_eq(json_string_value(json_object_get(
			     json_object_get(j, "data"), "status")),
			 "suspended");
	json_decref(j);
	j = expect("PATCH", path, "{\"is_suspended\":false}", 200, NULL);
	cr_assert_str_eq(json_string_value(json_object_get(
			     json_object_get(j, "data"), "status")),
			 "active");
	json_decref(j);
	json_decref(expect("PATCH", path, "{\"is_suspended\":\"yes\"}", 400,
			   "invalid_request"));
	snprintf(path, sizeof path, "/v1/users/%s/identities/github", id);
	j = expect("PUT", path,
		   "{\"user_id\":\"gh-42\",\"details\":{\"login\":\"octo\"}}",
		   200, NULL);
	json_t *gh = json_object_get(
	    json_object_get(json_object_get(j, "data"), "identities"),
	    "github");
	cr_assert_str_eq(json_string_value(json_object_get(gh, "user_id")),
			 "gh-42");
	cr_assert_str_eq(json_string_value(json_object_get(
			     json_object_get(gh, "details"), "login")),
			 "octo");
	json_decref(j);
	json_decref(
	    expect("PUT", path, "{\"details\":{}}", 400, "invalid_request"));
	j = expect("DELETE", path, NULL, 200, NULL);
	cr_assert_eq(json_object_size(json_object_get(
			 json_object_get(j, "data"), "identities")),
		     0);
	json_decref(j);
	json_decref(expect("DELETE", path, NULL, 404, "not_found"));
}

Test(http, list_filters_pagination_headers)
{
	char email[64];
	for (int i = 0; i < 5; i++) {
		snprintf(email, sizeof email, "list%d@example.com", i);
		create(i % 2 ? "Odd Name" : "Even Name", email,
		       i % 2 ? "\"role\":\"viewer\"" : NULL);
	}
	struct hresp r;
	char v[1024];
	http_do(&S, "GET", "/v1/users?limit=2&page=2&search=name", NULL, true,
		NULL, &r);
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(hresp_header(&r, "Total-Number", v, sizeof v), "5");
	hresp_header(&r, "Link", v, sizeof v);
	cr_assert(strstr(v, "</v1/users?limit=2&search=name&page=1>; "
			    "rel=\"first\""),
		  "%s", v);
	cr_assert(strstr(v, "page=1>; rel=\"prev\""), "%s", v);
	cr_assert(strstr(v, "page=3>; rel=\"next\""), "%s", v);
	cr_assert(strstr(v, "page=3>; rel=\"last\""), "%s", v);
	json_t *j = hresp_json(&r);
	cr_assert_eq(json_array_size(json_object_get(j, "data")), 2);
	json_t *pg = json_object_get(j, "pagination");
	cr_assert_eq(json_integer_value(json_object_get(pg, "page")), 2);
	cr_assert_eq(json_integer_value(json_object_get(pg, "limit")), 2);
	cr_assert_eq(json_integer_value(json_object_get(pg, "total")), 5);
	cr_assert_eq(json_integer_value(json_object_get(pg, "pages")), 3);
	json_decref(j);
	hresp_free(&r);
	j = expect("GET", "/v1/users?role=viewer&search=odd+NAME", NULL, 200,
		   NULL);
	cr_assert_eq(json_array_size(json_object_get(j, "data")), 2);
	json_decref(j);
	j = expect("GET", "/v1/users?email=LIST3%40example.com", NULL, 200,
		   NULL);
	cr_assert_eq(json_array_size(json_object_get(j, "data")), 1);
	json_decref(j);
	j = expect("GET", "/v1/users?order=asc&limit=1", NULL, 200, NULL);
	cr_assert_str_eq(
	    json_string_value(json_object_get(
		json_array_get(json_object_get(j, "data"), 0), "email")),
	    "list0@example.com");
	json_decref(j);
	json_decref(
	    expect("GET", "/v1/users?limit=0", NULL, 400, "invalid_request"));
	json_decref(
	    expect("GET", "/v1/users?limit=101", NULL, 400, "invalid_request"));
	json_decref(
	    expect("GET", "/v1/users?page=0", NULL, 400, "invalid_request"));
	json_decref(
	    expect("GET", "/v1/users?role=god", NULL, 400, "invalid_request"));
	json_decref(expect("GET", "/v1/users?colour=red", NULL, 400,
			   "invalid_request"));
	json_decref(expect("GET", "/v1/users?search=%zz", NULL, 400,
			   "invalid_request"));
}

Test(http, activity_log)
{
	char id[80], path[200];
	snprintf(id, sizeof id, "%s", create("L", "l@example.com", NULL));
	snprintf(path, sizeof path, "/v1/users/%s", id);
	json_decref(expect("PATCH", path, "{\"name\":\"L2\"}", 200, NULL));
	json_decref(expect("DELETE", path, NULL, 200, NULL));
	snprintf(path, sizeof path, "/v1/logs?user_id=%s&limit=2", id);
	struct hresp r;
	char v[256];
	http_do(&S, "GET", path, NULL, true, NULL, &r);
	cr_assert_eq(r.status, 200, "%s", r.body);
	cr_assert_str_eq(hresp_header(&r, "Total-Number", v, sizeof v), "3");
	json_t *j = hresp_json(&r);
	json_t *data = json_object_get(j, "data");
	cr_assert_eq(json_array_size(data), 2);
	json_t *e0 = json_array_get(data, 0);
	cr_assert_str_eq(json_string_value(json_object_get(e0, "event")),
			 "user.deleted", "newest first, kept after delete");
	cr_assert_str_eq(json_string_value(json_object_get(e0, "user_id")), id);
	cr_assert_not_null(json_object_get(e0, "created_at"));
	cr_assert_not_null(json_object_get(e0, "details"));
	cr_assert_not_null(json_object_get(e0, "id"));
	json_decref(j);
	hresp_free(&r);
	json_decref(expect("GET", "/v1/logs", NULL, 400, "invalid_request"));
	json_decref(expect("GET", "/v1/logs?user_id=x&limit=500", NULL, 400,
			   "invalid_request"));
	json_decref(expect("GET", "/v1/logs?user_id=x&page=abc", NULL, 400,
			   "invalid_request"));
}

Test(http, routes_404_405)
{
	json_decref(expect("GET", "/v1/nothing", NULL, 404, "not_found"));
	json_decref(expect("GET", "/v1/users/x/y", NULL, 404, "not_found"));
	json_decref(expect("GET", "/", NULL, 404, "not_found"));
	struct hresp r;
	char v[64];
	http_do(&S, "PUT", "/v1/users", "{}", true, NULL, &r);
	cr_assert_eq(r.status, 405);
	cr_assert_str_eq(hresp_error_code(&r, v, sizeof v),
			 "method_not_allowed");
	cr_assert_str_eq(hresp_header(&r, "Allow", v, sizeof v), "GET, POST");
	hresp_free(&r);
	http_do(&S, "POST", "/v1/users/usr_x", "{}", true, NULL, &r);
	cr_assert_eq(r.status, 405);
	cr_assert_str_eq(hresp_header(&r, "Allow", v, sizeof v),
			 "GET, PATCH, DELETE");
	hresp_free(&r);
	json_decref(expect("GET", "/v1/users/usr_x/password", NULL, 405,
			   "method_not_allowed"));
}

Test(http, percent_encoded_ids)
{
	create("Pct", "pct@example.com", "\"id\":\"usr_abc\"");
	json_t *j = expect("GET", "/v1/users/usr_%61bc", NULL, 200, NULL);
	cr_assert_str_eq(json_string_value(
			     json_object_get(json_object_get(j, "data"), "id")),
			 "usr_abc");
	json_decref(j);
	json_decref(
	    expect("GET", "/v1/users/usr_%6", NULL, 400, "invalid_request"));
	json_decref(
	    expect("GET", "/v1/users/usr_%zz", NULL, 400, "invalid_request"));
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A client that sends its whole over-limit body before reading (as most
 * HTTP clients do) reads the 413: the server keeps reading and discarding
 * after the reply instead of closing with the body unread, which would
 * reset the connection and lose the reply.  A lingering connection that
 * goes quiet is closed after CONN_LINGER_S seconds. */
Test(http, oversized_body_sent_whole_still_reads_the_413)
{
	size_t n = 4u << 20;
	char *req = malloc(n + 512);
	int k =
	    sprintf(req,
		    "POST /v1/users HTTP/1.1\r\nAuthorization: Bearer " TSRV_KEY
		    "\r\nContent-Type: application/json\r\n"
		    "Content-Length: %zu\r\n\r\n",
		    n);
	char v[64], buf[4096];
	struct hresp r;

	memset(req + k, ' ', n);
	for (int i = 0; i < 5; i++) {
		http_raw(&S, req, (size_t)k + n, &r);
		cr_assert_eq(r.status, 413, "round %d: status %d (a reset?)", i,
			     r.status);
		cr_assert_str_eq(hresp_error_code(&r, v, sizeof v),
				 "payload_too_large");
		hresp_free(&r);
	}
	/* a client that sends part of the body, reads the reply and stays
	 * (first the rounds' connections finish lingering: they end at their
	 * clients' close; the metrics request itself is the one left) */
	double t0 = now_s(), open0;
	while ((open0 = tsrv_metric(&S, "userdb_connections_open")) > 1 &&
	       now_s() - t0 < 5)
		usleep(10000);
	cr_assert_eq(open0, 1, "the rounds' connections closed");
	int fd = tcp_connect(S.http_port);
	cr_assert_geq(fd, 0);
	send_all(fd, req, (size_t)k + 100000);
	size_t got = 0;
	ssize_t m;
	while ((m = recv(fd, buf + got, sizeof buf - 1 - got, 0)) > 0)
		got += (size_t)m; /* until the server's FIN */
	buf[got] = 0;
	cr_assert(strstr(buf, " 413 "), "%s", buf);
	cr_assert_gt(tsrv_metric(&S, "userdb_connections_open"), open0,
		     "still lingering right after the reply");
	t0 = now_s();
	while (tsrv_metric(&S, "userdb_connections_open") > open0 &&
	       now_s() - t0 < 6)
		usleep(50000);
	cr_assert_leq(tsrv_metric(&S, "userdb_connections_open"), open0,
		      "a quiet lingering connection is closed");
	cr_assert_geq(now_s() - t0, 1.0, "not before the linger time");
	close(fd);
	free(req);
}

Test(http, limits)
{
	struct hresp r;
	char v[64];
	/* Body over --max-body: refused from the Content-Length alone. */
	const char *big =
	    "POST /v1/users HTTP/1.1\r\nAuthorization: Bearer " TSRV_KEY
	    "\r\nContent-Length: 70000\r\n\r\n";
	http_raw(&S, big, strlen(big), &r);
	cr_assert_eq(r.status, 413);
	cr_assert_str_eq(hresp_error_code(&r, v, sizeof v),
			 "payload_too_large");
	hresp_free(&r);
	/* Chunked body over the limit. */
	size_t n = 80000;
	char *chunked = malloc(n + 512);
	int k =
	    sprintf(chunked,
		    "POST /v1/users HTTP/1.1\r\nAuthorization: Bearer " TSRV_KEY
		    "\r\nTransfer-Encoding: chunked\r\n\r\n%zx\r\n",
		    n);
	memset(chunked + k, 'a', n);
	memcpy(chunked + k + n, "\r\n0\r\n\r\n", 7);
	http_raw(&S, chunked, k + n + 7, &r);
	cr_assert_eq(r.status, 413);
	hresp_free(&r);
	free(chunked);
	/* Request target and headers over their limits. */
	char *line = malloc(5000);
	memset(line, 'a', 4999);
	line[4999] = 0;
	char *req = malloc(12000);
	sprintf(req, "GET /v1/users?search=%s HTTP/1.1\r\n\r\n", line);
	http_raw(&S, req, strlen(req), &r);
	cr_assert_eq(r.status, 414);
	hresp_free(&r);
	sprintf(req, "GET /healthz HTTP/1.1\r\nX-Big: %s\r\n\r\n", line);
	http_raw(&S, req, strlen(req), &r);
	cr_assert_eq(r.status, 431);
	hresp_free(&r);
	free(line);
	free(req);
	const char *junk = "BLAH / HTTP/9.9\r\n\r\n";
	http_raw(&S, junk, strlen(junk), &r);
	cr_assert_eq(r.status, 400);
	cr_assert_str_eq(hresp_error_code(&r, v, sizeof v), "invalid_request");
	hresp_free(&r);
}

Test(http, keep_alive_pipelining_in_order)
{
	const char *body = "{\"name\":\"K\",\"email\":\"keep@example.com\"}";
	char reqs[1024];
	snprintf(reqs, sizeof reqs,
		 "GET /healthz HTTP/1.1\r\n\r\n"
		 "GET /v1/users/usr_none HTTP/1.1\r\nAuthorization: "
		 "Bearer " TSRV_KEY "\r\n\r\n"
		 "POST /v1/users HTTP/1.1\r\nAuthorization: Bearer " TSRV_KEY
		 "\r\nContent-Length: %zu\r\n\r\n%s"
		 "GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n",
		 strlen(body), body);
	int fd = tcp_connect(S.http_port);
	cr_assert_geq(fd, 0);
	send_all(fd, reqs, strlen(reqs));
	char buf[8192];
	size_t len = 0;
	ssize_t got;
	while ((got = read(fd, buf + len, sizeof buf - 1 - len)) > 0)
		len += (size_t)got;
	buf[len] = 0;
	close(fd);
	char *a = strstr(buf, "HTTP/1.1 200");
	char *b = strstr(buf, "HTTP/1.1 404");
	char *c = strstr(buf, "HTTP/1.1 201");
	char *d = a ? strstr(a + 1, "HTTP/1.1 200") : NULL;
	cr_assert(a && b && c && d, "%s", buf);
	cr_assert(a < b && b < c && c < d, "replies in request order");
}

Test(http, expect_continue)
{
	const char *body = "{\"name\":\"E\",\"email\":\"exp@example.com\"}";
	char hdr[512];
	snprintf(hdr, sizeof hdr,
		 "POST /v1/users HTTP/1.1\r\nAuthorization: Bearer " TSRV_KEY
		 "\r\nExpect: 100-continue\r\nContent-Length: %zu\r\n\r\n",
		 strlen(body));
	int fd = tcp_connect(S.http_port);
	send_all(fd, hdr, strlen(hdr));
	char buf[4096];
	ssize_t n = read(fd, buf, sizeof buf - 1);
	cr_assert_gt(n, 0);
	buf[n] = 0;
	cr_assert(strstr(buf, "100 Continue"), "%s", buf);
	send_all(fd, body, strlen(body));
	n = read(fd, buf, sizeof buf - 1);
	buf[n > 0 ? n : 0] = 0;
	cr_assert(strstr(buf, "201 Created"), "%s", buf);
	close(fd);
}

Test(http, metrics_text)
{
	create("M", "m@example.com", NULL);
	json_decref(
	    expect("GET", "/v1/users/usr_none", NULL, 404, "not_found"));
	struct hresp r;
	char v[128];
	http_do(&S, "GET", "/metrics", NULL, true, NULL, &r);
	cr_assert_eq(r.status, 200);
	cr_assert(strstr(hresp_header(&r, "Content-Type", v, sizeof v),
			 "text/plain"));
	cr_assert(strstr(r.body,
			 "userdb_users{role=\"user\",status=\"active\"} 1\n"));
	cr_assert(strstr(r.body, "userdb_requests_total{proto=\"http\",route="
				 "\"POST /v1/users\"} 1\n"));
	cr_assert(strstr(r.body, "userdb_errors_total{proto=\"http\",route="
				 "\"GET /v1/users/{id}\"} 1\n"));
	cr_assert(strstr(r.body, "userdb_request_duration_seconds_bucket{"
				 "proto=\"http\",le=\"+Inf\"}"));
	cr_assert(strstr(r.body, "userdb_snapshots_total"));
	cr_assert(strstr(r.body, "userdb_log_bytes"));
	hresp_free(&r);
}

Test(http, pipelined_request_waits_for_password_work)
{
	char id[80], req[2048];
	snprintf(
	    id, sizeof id, "%s",
	    create("W", "w@example.com", "\"password\":\"long password\""));
	const char *body = "{\"password\":\"long password\"}";
	snprintf(req, sizeof req,
		 "POST /v1/users/%s/password/verify HTTP/1.1\r\n"
		 "Authorization: Bearer " TSRV_KEY "\r\n"
		 "Content-Length: %zu\r\n\r\n%s"
		 "GET /v1/users/%s HTTP/1.1\r\nConnection: close\r\n"
		 "Authorization: Bearer " TSRV_KEY "\r\n\r\n",
		 id, strlen(body), body, id);
	int fd = tcp_connect(S.http_port);
	send_all(fd, req, strlen(req));
	char buf[8192];
	size_t len = 0;
	ssize_t got;
	while ((got = read(fd, buf + len, sizeof buf - 1 - len)) > 0)
		len += (size_t)got;
	buf[len] = 0;
	close(fd);
	char *a = strstr(buf, "{\"valid\":true}"),
	     *b = strstr(buf, "\"name\":\"W\"");
	cr_assert(a && b && a < b, "in order: %s", buf);
}

Test(http, pct_decode_unit)
{
	char out[64];
	cr_assert_eq(http_pct_decode("a%20b+c", 7, out, true), 5);
	cr_assert_eq(memcmp(out, "a b c", 5), 0);
	cr_assert_eq(http_pct_decode("a+b", 3, out, false), 3);
	cr_assert_eq(memcmp(out, "a+b", 3), 0);
	cr_assert_eq(http_pct_decode("%E4%BC%9F", 9, out, true), 3);
	cr_assert_eq(memcmp(out, "\xe4\xbc\x9f", 3), 0);
	cr_assert_eq(http_pct_decode("%", 1, out, true), -1);
	cr_assert_eq(http_pct_decode("%4", 2, out, true), -1);
	cr_assert_eq(http_pct_decode("%4g", 3, out, true), -1);
	/* Every cut of a valid escape either decodes or is refused. */
	const char *s = "x%41y";
	for (size_t cut = 0; cut <= 5; cut++) {
		long n = http_pct_decode(s, cut, out, true);
		cr_assert(n == -1 || n >= 0);
		if (cut == 2 || cut == 3)
			cr_assert_eq(n, -1, "cut %zu", cut);
	}
}
