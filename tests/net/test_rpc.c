/*
 * test_rpc.c -- MessagePack-RPC of the real server (SPEC §3): every method,
 * every error code, auth, pipelining, frames cut at every byte, oversized
 * and malformed frames, notifications, the Unix socket.
 */
#include <criterion/criterion.h>
#include <msgpack.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "helper_server.h"

static struct tsrv S;
static struct rpcc C;

static void start(void)
{
	/* Cheapest Argon2id: the password tests are about the protocol. */
	const char *args[] = {"--max-frame", "65536",	     "--argon2-ops",
			      "1",	     "--argon2-mem", "8192",
			      NULL};
	memset(&S, 0, sizeof S);
	cr_assert_eq(tsrv_start(&S, false, true, args), 0, "server start");
	cr_assert_eq(rpcc_open(&C, S.rpc_port), 0);
	cr_assert_eq(rpcc_auth(&C), 0);
}

static void stop(void)
{
	rpcc_close(&C);
	cr_assert_eq(tsrv_cleanup(&S), 0, "server exit status");
}

TestSuite(rpc, .init = start, .fini = stop, .timeout = 60);

/* Call; assert the error code ("" = success); return the result (owned
 * copy). */
static json_t *call(const char *method, const char *params, const char *code)
{
	json_t *r = rpcc_call(&C, method, params);
	cr_assert_not_null(r, "%s: no reply", method);
	cr_assert_eq(json_integer_value(json_array_get(r, 0)), 1);
	cr_assert_str_eq(rpc_err(r), code, "%s %s: got '%s'", method, params,
			 rpc_err(r));
	json_t *res = json_incref(rpc_res(r));
	json_decref(r);
	return res;
}

static const char *str(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static char *new_user(const char *email)
{
	char p[256];
	snprintf(p, sizeof p, "[{\"name\":\"N\",\"email\":\"%s\"}]", email);
	json_t *u = call("user.create", p, "");
	char *id = strdup(str(u, "id"));
	json_decref(u);
	return id;
}

Test(rpc, auth_ping_and_unauthorized)
{
	struct rpcc c2;
	cr_assert_eq(rpcc_open(&c2, S.rpc_port), 0);
	json_t *r = rpcc_call(&c2, "ping", "[]");
	cr_assert_str_eq(json_string_value(rpc_res(r)), "pong");
	json_decref(r);
	r = rpcc_call(&c2, "user.get", "[\"usr_x\"]");
	cr_assert_str_eq(rpc_err(r), "unauthorized");
	cr_assert(json_is_null(rpc_res(r)));
	json_decref(r);
	r = rpcc_call(&c2, "auth", "[\"wrong\"]");
	cr_assert_str_eq(rpc_err(r), "unauthorized");
	json_decref(r);
	r = rpcc_call(&c2, "auth", "[]");
	cr_assert_str_eq(rpc_err(r), "invalid_request");
	json_decref(r);
	cr_assert_eq(rpcc_auth(&c2), 0);
	r = rpcc_call(&c2, "user.get", "[\"usr_x\"]");
	cr_assert_str_eq(rpc_err(r), "not_found");
	json_decref(r);
	rpcc_close(&c2);
}

Test(rpc, user_crud)
{
	json_t *u = call("user.create",
			 "[{\"name\":\"Ann\",\"email\":\"Ann@X.com\","
			 "\"role\":\"viewer\",\"custom_data\":{\"a\":1}}]",
			 "");
	char id[80], p[256];
	snprintf(id, sizeof id, "%s", str(u, "id"));
	cr_assert_str_eq(str(u, "role"), "viewer");
	json_decref(u);
	snprintf(p, sizeof p, "[\"%s\"]", id);
	u = call("user.get", p, "");
	cr_assert_str_eq(str(u, "email"), "Ann@X.com");
	json_decref(u);
	u = call("user.get_by_email", "[\"ann@x.COM\"]", "");
	cr_assert_str_eq(str(u, "id"), id);
	json_decref(u);
	json_decref(
	    call("user.get_by_email", "[\"nobody@x.com\"]", "not_found"));
	snprintf(p, sizeof p, "[\"%s\", {\"name\":\"Anna\"}]", id);
	u = call("user.update", p, "");
	cr_assert_str_eq(str(u, "name"), "Anna");
	json_decref(u);
	snprintf(p, sizeof p,
		 "[\"%s\", {\"name\":\"A\"}, {\"if_match\":"
		 "\"\\\"0000000000000001\\\"\"}]",
		 id);
	json_decref(call("user.update", p, "precondition_failed"));
	snprintf(p, sizeof p, "[\"%s\", {\"email\":\"bad\"}]", id);
	json_decref(call("user.update", p, "invalid_request"));
	snprintf(p, sizeof p, "[\"%s\"]", id);
	u = call("user.delete", p, "");
	cr_assert(json_is_true(u));
	json_decref(u);
	json_decref(call("user.delete", p, "not_found"));
	json_decref(call("user.get", p, "not_found"));
}

Test(rpc, create_conflicts_and_validation)
{
	free(new_user("dup@x.com"));
	json_decref(call("user.create",
			 "[{\"name\":\"B\",\"email\":\"DUP@x.com\"}]",
			 "duplicate_email"));
	json_decref(call("user.create",
			 "[{\"id\":\"usr_given\",\"name\":\"C\",\"email\":"
			 "\"c@x.com\"}]",
			 ""));
	json_decref(call("user.create",
			 "[{\"id\":\"usr_given\",\"name\":\"D\",\"email\":"
			 "\"d@x.com\"}]",
			 "duplicate_id"));
	json_t *r = rpcc_call(&C, "user.create", "[{\"name\":\"E\"}]");
	cr_assert_str_eq(rpc_err(r), "invalid_request");
	cr_assert_str_eq(str(json_array_get(r, 2), "field"), "email");
	cr_assert_not_null(str(json_array_get(r, 2), "message"));
	json_decref(r);
	json_decref(call("user.create", "[\"not a map\"]", "invalid_request"));
	json_decref(call("user.create", "[]", "invalid_request"));
	json_decref(call("user.get", "[42]", "invalid_request"));
	json_decref(call("no.such", "[]", "invalid_request"));
}

Test(rpc, get_many_and_list)
{
	char *a = new_user("m1@x.com"), *b = new_user("m2@x.com"), p[256];
	snprintf(p, sizeof p, "[[\"%s\", \"usr_missing\", \"%s\"]]", a, b);
	json_t *r = call("user.get_many", p, "");
	cr_assert_eq(json_array_size(r), 3);
	cr_assert_str_eq(str(json_array_get(r, 0), "id"), a);
	cr_assert(json_is_null(json_array_get(r, 1)));
	cr_assert_str_eq(str(json_array_get(r, 2), "id"), b);
	json_decref(r);
	/* 1001 ids is over the limit. */
	char *big = malloc(1001 * 4 + 8);
	strcpy(big, "[[");
	for (int i = 0; i < 1001; i++)
		strcat(big, i ? ",\"x\"" : "\"x\"");
	strcat(big, "]]");
	json_decref(call("user.get_many", big, "invalid_request"));
	free(big);
	r = call("user.list", "[{\"limit\": 1, \"order\": \"asc\"}]", "");
	json_t *pg = json_object_get(r, "pagination");
	cr_assert_eq(json_integer_value(json_object_get(pg, "total")), 2);
	cr_assert_eq(json_integer_value(json_object_get(pg, "pages")), 2);
	cr_assert_eq(json_integer_value(json_object_get(pg, "limit")), 1);
	cr_assert_str_eq(
	    str(json_array_get(json_object_get(r, "data"), 0), "id"), a);
	json_decref(r);
	r = call("user.list", "[{\"email\": \"M2@X.com\"}]", "");
	cr_assert_eq(json_array_size(json_object_get(r, "data")), 1);
	json_decref(r);
	json_decref(call("user.list", "[{\"limit\": 0}]", "invalid_request"));
	json_decref(call("user.list", "[{\"bogus\": 1}]", "invalid_request"));
	free(a);
	free(b);
}

/* The first user of `q`'s page (count it in *total); "" when empty. */
static char *first_of(const char *q, const char *field, long *total)
{
	json_t *r = call("user.list", q, "");
	json_t *d = json_object_get(r, "data");
	*total = (long)json_integer_value(
	    json_object_get(json_object_get(r, "pagination"), "total"));
	const char *v =
	    json_array_size(d) ? str(json_array_get(d, 0), field) : NULL;
	char *out = strdup(v ? v : "");
	json_decref(r);
	return out;
}

/* The same page asked again and again is answered from the server's
 * page cache (pagecache.h) while nothing changes; every kind of write in
 * between shows in the next answer. */
Test(rpc, repeated_pages_follow_every_write)
{
	const char *q = "[{\"limit\": 1, \"role\": \"user\"}]";
	char *a = new_user("c1@x.com"), p[256], *v;
	long total;
	for (int i = 0; i < 3; i++) { /* the same, from the cache */
		v = first_of(q, "name", &total);
		cr_assert_str_eq(v, "N");
		cr_assert_eq(total, 1);
		free(v);
	}
	snprintf(p, sizeof p, "[\"%s\", {\"name\": \"Renamed\"}]", a);
	json_decref(call("user.update", p, ""));
	v = first_of(q, "name", &total);
	cr_assert_str_eq(v, "Renamed", "a cached page outlived an update");
	free(v);
	snprintf(p, sizeof p, "[\"%s\", true]", a);
	json_decref(call("user.set_suspended", p, ""));
	v = first_of(q, "status", &total);
	cr_assert_str_eq(v, "suspended");
	free(v);
	char *b = new_user("c2@x.com");
	v = first_of(q, "id", &total);
	cr_assert_str_eq(v, b, "the newest first, after a create");
	cr_assert_eq(total, 2);
	free(v);
	snprintf(p, sizeof p, "[\"%s\"]", b);
	json_decref(call("user.delete", p, ""));
	v = first_of(q, "id", &total);
	cr_assert_str_eq(v, a, "a deleted user stayed on a cached page");
	cr_assert_eq(total, 1);
	free(v);
	v = first_of("[]", "id", &total); /* no query: its own entry */
	cr_assert_str_eq(v, a);
	free(v);
	free(a);
	free(b);
}

Test(rpc, passwords_suspension_identities_logs)
{
	char *id = new_user("pw@x.com"), p[512];
	snprintf(p, sizeof p, "[\"%s\", \"long password\"]", id);
	json_t *r = call("user.set_password", p, "");
	cr_assert(json_is_true(r));
	json_decref(r);
	r = call("user.verify_password", p, "");
	cr_assert(json_is_true(r));
	json_decref(r);
	snprintf(p, sizeof p, "[\"%s\", \"wrong password\"]", id);
	r = call("user.verify_password", p, "");
	cr_assert(json_is_false(r));
	json_decref(r);
	snprintf(p, sizeof p, "[\"%s\", \"short\"]", id);
	json_decref(call("user.set_password", p, "invalid_request"));
	json_decref(call("user.set_password", "[\"usr_none\", \"long enough\"]",
			 "not_found"));
	json_decref(call("user.verify_password",
			 "[\"usr_none\", \"long enough\"]", "not_found"));
	snprintf(p, sizeof p, "[\"%s\", true]", id);
	r = call("user.set_suspended", p, "");
	cr_assert_str_eq(str(r, "status"), "suspended");
	json_decref(r);
	snprintf(p, sizeof p, "[\"%s\", \"yes\"]", id);
	json_decref(call("user.set_suspended", p, "invalid_request"));
	snprintf(p, sizeof p,
		 "[\"%s\", \"github\", {\"user_id\": \"gh1\", \"details\": "
		 "{\"x\": [1]}}]",
		 id);
	r = call("user.link_identity", p, "");
	cr_assert_str_eq(
	    str(json_object_get(json_object_get(r, "identities"), "github"),
		"user_id"),
	    "gh1");
	json_decref(r);
	snprintf(p, sizeof p, "[\"%s\", \"github\", {\"details\": {}}]", id);
	json_decref(call("user.link_identity", p, "invalid_request"));
	snprintf(p, sizeof p, "[\"%s\", \"github\"]", id);
	json_decref(call("user.unlink_identity", p, ""));
	json_decref(call("user.unlink_identity", p, "not_found"));
	snprintf(p, sizeof p, "[{\"user_id\": \"%s\", \"limit\": 3}]", id);
	r = call("log.list", p, "");
	json_t *d = json_object_get(r, "data");
	cr_assert_eq(json_array_size(d), 3);
	cr_assert_str_eq(str(json_array_get(d, 0), "event"),
			 "user.identity_removed");
	cr_assert_eq(json_integer_value(json_object_get(
			 json_object_get(r, "pagination"), "total")),
		     7);
	json_decref(r);
	json_decref(call("log.list", "[{}]", "invalid_request"));
	json_decref(call("log.list", "[{\"user_id\":\"x\",\"limit\":1000}]",
			 "invalid_request"));
	free(id);
}

Test(rpc, stats_and_snapshot_without_persistence)
{
	free(new_user("st@x.com"));
	json_t *r = call("server.stats", "[]", "");
	cr_assert_eq(json_integer_value(json_object_get(r, "users")), 1);
	cr_assert(json_is_false(json_object_get(r, "persist")));
	json_decref(r);
	json_decref(call("server.snapshot", "[]", "unavailable"));
}

Test(rpc, notifications_get_no_reply)
{
	/* [2, "user.create", [{"name": "N", "email": "n@x.com"}]], then a
	 * ping: the only reply is the pong, and the user exists. */
	const char n[] = "\x93\x02\xabuser.create\x91\x82\xa4name\xa1N"
			 "\xa5"
			 "email\xa7n@x.com";
	send_all(C.fd, n, sizeof n - 1);
	json_t *r = rpcc_call(&C, "ping", "[]");
	cr_assert_not_null(r);
	cr_assert_str_eq(json_string_value(rpc_res(r)), "pong");
	json_decref(r);
	json_decref(call("user.get_by_email", "[\"n@x.com\"]", ""));
}

Test(rpc, pipelined_thousands_matched_by_msgid)
{
	char *id = new_user("pipe@x.com"), p[128];
	snprintf(p, sizeof p, "[\"%s\"]", id);
	enum { N = 3000 };
	static bool seen[N + 100];
	unsigned first = C.next_id;
	for (int i = 0; i < N; i++)
		rpcc_send(&C, i % 10 == 9 ? "user.get_many" : "user.get",
			  i % 10 == 9 ? "[[]]" : p);
	for (int i = 0; i < N; i++) {
		json_t *r = rpcc_recv(&C);
		cr_assert_not_null(r, "reply %d", i);
		unsigned id2 =
		    (unsigned)json_integer_value(json_array_get(r, 1));
		cr_assert(id2 >= first && id2 < first + N);
		cr_assert_not(seen[id2 - first]);
		seen[id2 - first] = true;
		cr_assert_str_eq(rpc_err(r), "");
		json_decref(r);
	}
	free(id);
}

/* The raw bytes of a request. */
static size_t pack_req(char *out, unsigned msgid, const char *method,
		       const char *arg)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 4);
	msgpack_pack_uint8(&pk, 0);
	msgpack_pack_uint32(&pk, msgid);
	msgpack_pack_str_with_body(&pk, method, strlen(method));
	msgpack_pack_array(&pk, arg ? 1 : 0);
	if (arg)
		msgpack_pack_str_with_body(&pk, arg, strlen(arg));
	memcpy(out, sb.data, sb.size);
	size_t n = sb.size;
	msgpack_sbuffer_destroy(&sb);
	return n;
}

/* One write holding a run of user.get and user.get_by_email requests in
 * every msgid width (fixint, uint8/16/32/64) and argument form (fixstr,
 * str8, missing, not a string, two params, an email in other case): the
 * server looks ahead at such runs to prefetch (rpc.c); every reply must
 * still match its request. */
Test(rpc, pipelined_gets_of_every_shape)
{
	enum { N = 64 };
	static const uint64_t widths[] = {5, 200, 60000, 70000, 1ULL << 40};
	char *ids[8], email[64];
	for (int u = 0; u < 8; u++) {
		snprintf(email, sizeof email, "shape%d@x.com", u);
		ids[u] = new_user(email);
	}
	char long_id[48];
	memset(long_id, 'z', 40);
	long_id[40] = 0;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	for (int i = 0; i < N; i++) {
		uint64_t msgid = widths[i % 5] + (uint64_t)i;
		msgpack_pack_array(&pk, 4);
		msgpack_pack_uint8(&pk, 0);
		msgpack_pack_uint64(&pk, msgid);
		int kind = i % 8;
		if (kind == 4)
			msgpack_pack_str_with_body(&pk, "user.get_by_email",
						   17);
		else
			msgpack_pack_str_with_body(&pk, "user.get", 8);
		msgpack_pack_array(&pk, kind == 7 ? 2 : 1);
		if (kind == 4) {
			snprintf(email, sizeof email, "SHAPE%d@X.com",
				 (i / 8) % 8);
			msgpack_pack_str_with_body(&pk, email, strlen(email));
		} else if (kind < 5) {
			const char *id = ids[(i / 8) % 8];
			msgpack_pack_str_with_body(&pk, id, strlen(id));
		} else if (kind == 5) {
			msgpack_pack_str_with_body(&pk, long_id, 40);
		} else if (kind == 6) {
			msgpack_pack_int(&pk, 42);
		} else {
			msgpack_pack_str_with_body(&pk, ids[0], strlen(ids[0]));
			msgpack_pack_str_with_body(&pk, "extra", 5);
		}
	}
	cr_assert_eq(send_all(C.fd, sb.data, sb.size), 0);
	msgpack_sbuffer_destroy(&sb);
	for (int i = 0; i < N; i++) {
		json_t *r = rpcc_recv(&C);
		cr_assert_not_null(r, "reply %d", i);
		uint64_t msgid = widths[i % 5] + (uint64_t)i;
		cr_assert_eq((uint64_t)json_integer_value(json_array_get(r, 1)),
			     msgid, "reply %d", i);
		int kind = i % 8;
		if (kind < 5) {
			cr_assert_str_eq(rpc_err(r), "", "reply %d", i);
			snprintf(email, sizeof email, "shape%d@x.com",
				 (i / 8) % 8);
			cr_assert_str_eq(json_string_value(json_object_get(
					     rpc_res(r), "email")),
					 email);
			cr_assert_str_eq(json_string_value(
					     json_object_get(rpc_res(r), "id")),
					 ids[(i / 8) % 8]);
		} else if (kind == 5) {
			cr_assert_str_eq(rpc_err(r), "not_found", "reply %d",
					 i);
		} else {
			cr_assert_str_eq(rpc_err(r), "invalid_request",
					 "reply %d", i);
		}
		json_decref(r);
	}
	for (int u = 0; u < 8; u++)
		free(ids[u]);
}

/* One write holding a run of writes that name a user by id (user.update,
 * user.set_suspended, user.delete), gets between them, in several msgid
 * widths and argument forms: the server looks ahead at them too, to
 * prefetch (rpc.c, peek_write); every reply must match its request and the
 * store must end as the writes say, in order. */
Test(rpc, pipelined_writes_of_every_shape)
{
	enum { U = 6 };
	static const uint64_t widths[] = {5, 200, 60000, 70000, 1ULL << 40};
	char *ids[U], email[64];
	for (int u = 0; u < U; u++) {
		snprintf(email, sizeof email, "wshape%d@x.com", u);
		ids[u] = new_user(email);
	}
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	/* per user u: update name, suspend, get, then (odd u) delete; then
	 * two malformed writes: a number for an id, an unknown id */
	int n = 0;
	for (int u = 0; u < U; u++) {
		for (int step = 0; step < 4; step++) {
			static const char *const m[] = {
			    "user.update", "user.set_suspended", "user.get",
			    "user.delete"};
			if (step == 3 && u % 2 == 0)
				continue;
			msgpack_pack_array(&pk, 4);
			msgpack_pack_uint8(&pk, 0);
			msgpack_pack_uint64(&pk, widths[n % 5] + (uint64_t)n);
			msgpack_pack_str_with_body(&pk, m[step],
						   strlen(m[step]));
			msgpack_pack_array(&pk, step == 0 || step == 1 ? 2 : 1);
			msgpack_pack_str_with_body(&pk, ids[u], strlen(ids[u]));
			if (step == 0) {
				char name[32];
				int k = snprintf(name, sizeof name,
						 "Renamed %d", u);
				msgpack_pack_map(&pk, 1);
				msgpack_pack_str_with_body(&pk, "name", 4);
				msgpack_pack_str_with_body(&pk, name,
							   (size_t)k);
			} else if (step == 1) {
				msgpack_pack_true(&pk);
			}
			n++;
		}
	}
	int total = n + 2;
	msgpack_pack_array(&pk, 4);
	msgpack_pack_uint8(&pk, 0);
	msgpack_pack_uint64(&pk, widths[n % 5] + (uint64_t)n);
	msgpack_pack_str_with_body(&pk, "user.delete", 11);
	msgpack_pack_array(&pk, 1);
	msgpack_pack_int(&pk, 42);
	n++;
	msgpack_pack_array(&pk, 4);
	msgpack_pack_uint8(&pk, 0);
	msgpack_pack_uint64(&pk, widths[n % 5] + (uint64_t)n);
	msgpack_pack_str_with_body(&pk, "user.update", 11);
	msgpack_pack_array(&pk, 2);
	msgpack_pack_str_with_body(&pk, "usr_nobody", 10);
	msgpack_pack_map(&pk, 0);
	cr_assert_eq(send_all(C.fd, sb.data, sb.size), 0);
	msgpack_sbuffer_destroy(&sb);
	for (int i = 0; i < total; i++) {
		json_t *r = rpcc_recv(&C);
		cr_assert_not_null(r, "reply %d", i);
		cr_assert_eq((uint64_t)json_integer_value(json_array_get(r, 1)),
			     widths[i % 5] + (uint64_t)i, "reply %d", i);
		const char *want = i == total - 2   ? "invalid_request"
				   : i == total - 1 ? "not_found"
						    : "";
		cr_assert_str_eq(rpc_err(r), want, "reply %d", i);
		json_decref(r);
	}
	for (int u = 0; u < U; u++) {
		char p[96], name[32];
		snprintf(p, sizeof p, "[\"%s\"]", ids[u]);
		json_t *r = rpcc_call(&C, "user.get", p);
		if (u % 2) {
			cr_assert_str_eq(rpc_err(r), "not_found", "user %d", u);
		} else {
			snprintf(name, sizeof name, "Renamed %d", u);
			cr_assert_str_eq(json_string_value(json_object_get(
					     rpc_res(r), "name")),
					 name);
			cr_assert_str_eq(json_string_value(json_object_get(
					     rpc_res(r), "status")),
					 "suspended");
		}
		json_decref(r);
		free(ids[u]);
	}
}

Test(rpc, frames_split_at_every_byte)
{
	char *id = new_user("split@x.com"), buf[512];
	size_t n = pack_req(buf, 500, "user.get", id);
	n += pack_req(buf + n, 501, "ping", NULL);
	for (size_t cut = 1; cut < n; cut++) {
		struct rpcc c;
		cr_assert_eq(rpcc_open(&c, S.rpc_port), 0);
		cr_assert_eq(rpcc_auth(&c), 0);
		send_all(c.fd, buf, cut);
		usleep(2000);
		send_all(c.fd, buf + cut, n - cut);
		json_t *a = rpcc_recv(&c), *b = rpcc_recv(&c);
		cr_assert(a && b, "cut %zu", cut);
		cr_assert_eq(json_integer_value(json_array_get(a, 1)), 500);
		cr_assert_str_eq(str(rpc_res(a), "id"), id);
		cr_assert_eq(json_integer_value(json_array_get(b, 1)), 501);
		json_decref(a);
		json_decref(b);
		rpcc_close(&c);
	}
	/* And one byte per write on a single connection. */
	for (size_t i = 0; i < n; i++) {
		send_all(C.fd, buf + i, 1);
		usleep(200);
	}
	json_t *a = rpcc_recv(&C), *b = rpcc_recv(&C);
	cr_assert(a && b);
	cr_assert_eq(json_integer_value(json_array_get(b, 1)), 501);
	json_decref(a);
	json_decref(b);
	free(id);
}

/* Expect an invalid_request for msgid, then the connection closed. */
static void expect_error_then_close(struct rpcc *c, unsigned msgid)
{
	json_t *r = rpcc_recv(c);
	cr_assert_not_null(r);
	cr_assert_eq(json_integer_value(json_array_get(r, 1)), msgid);
	cr_assert_str_eq(rpc_err(r), "invalid_request");
	json_decref(r);
	cr_assert_null(rpcc_recv(c), "connection closed");
}

Test(rpc, oversized_frame)
{
	/* [0, 7, "user.get", [str32 of 100000]] with the 64 KiB limit. */
	char head[] = "\x94\x00\x07\xa8user.get\x91\xdb\x00\x01\x86\xa0";
	send_all(C.fd, head, sizeof head - 1);
	expect_error_then_close(&C, 7);
}

Test(rpc, malformed_frame)
{
	char bad[] = "\x94\x00\x08\xa4ping\x91\xc1";
	send_all(C.fd, bad, sizeof bad - 1);
	expect_error_then_close(&C, 8);
}

Test(rpc, hostile_counts_do_not_allocate)
{
	char bad[] = "\x94\x00\x09\xa4ping\xdd\xff\xff\xff\xff";
	send_all(C.fd, bad, sizeof bad - 1);
	expect_error_then_close(&C, 9);
}

Test(rpc, wrong_shapes_keep_the_connection)
{
	/* A bare integer and a response-typed message: ignored. */
	send_all(C.fd, "\x2a\x94\x01\x01\xc0\xc0", 6);
	/* [0, 11, "ping"]: three elements, msgid readable. */
	send_all(C.fd, "\x93\x00\x0b\xa4ping", 8);
	json_t *r = rpcc_recv(&C);
	cr_assert_eq(json_integer_value(json_array_get(r, 1)), 11);
	cr_assert_str_eq(rpc_err(r), "invalid_request");
	json_decref(r);
	/* params not an array */
	send_all(C.fd, "\x94\x00\x0c\xa4ping\xc0", 9);
	r = rpcc_recv(&C);
	cr_assert_eq(json_integer_value(json_array_get(r, 1)), 12);
	cr_assert_str_eq(rpc_err(r), "invalid_request");
	json_decref(r);
	r = rpcc_call(&C, "ping", "[]");
	cr_assert_str_eq(json_string_value(rpc_res(r)), "pong");
	json_decref(r);
}

Test(rpc, unix_socket)
{
	struct rpcc c;
	cr_assert_eq(rpcc_open_unix(&c, S.sock), 0);
	json_t *r = rpcc_call(&c, "user.get", "[\"x\"]");
	cr_assert_str_eq(rpc_err(r), "unauthorized");
	json_decref(r);
	cr_assert_eq(rpcc_auth(&c), 0);
	r = rpcc_call(&c, "ping", "[]");
	cr_assert_str_eq(json_string_value(rpc_res(r)), "pong");
	json_decref(r);
	rpcc_close(&c);
}

Test(rpc, password_work_over_the_per_connection_cap)
{
	/* More verifications than a connection may have in flight (64):
	 * reading pauses and resumes; every request is answered, and the
	 * ping sent after them too. */
	char *id = new_user("cap@x.com"), p[256];
	snprintf(p, sizeof p, "[\"%s\", \"long password\"]", id);
	json_decref(call("user.set_password", p, ""));
	enum { N = 100 };
	for (int i = 0; i < N; i++)
		rpcc_send(&C, "user.verify_password", p);
	unsigned ping = rpcc_send(&C, "ping", "[]");
	int valid = 0, pongs = 0;
	for (int i = 0; i < N + 1; i++) {
		json_t *r = rpcc_recv(&C);
		cr_assert_not_null(r, "reply %d", i);
		if (json_integer_value(json_array_get(r, 1)) == ping)
			pongs++;
		else
			valid += json_is_true(rpc_res(r));
		json_decref(r);
	}
	cr_assert_eq(valid, N);
	cr_assert_eq(pongs, 1);
	free(id);
}

Test(rpc, client_gone_before_password_work_returns)
{
	/* The create is applied even though nobody is left to answer. */
	for (int i = 0; i < 20; i++) {
		struct rpcc c;
		char p[160];
		cr_assert_eq(rpcc_open(&c, S.rpc_port), 0);
		cr_assert_eq(rpcc_auth(&c), 0);
		snprintf(p, sizeof p,
			 "[{\"name\":\"G\",\"email\":\"gone%d@x.com\","
			 "\"password\":\"long password\"}]",
			 i);
		rpcc_send(&c, "user.create", p);
		rpcc_close(&c);
	}
	usleep(300000);
	json_t *r = call("user.list", "[{\"search\": \"gone\"}]", "");
	cr_assert_eq(json_integer_value(json_object_get(
			 json_object_get(r, "pagination"), "total")),
		     20);
	json_decref(r);
}
