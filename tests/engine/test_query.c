/*
 * test_query.c -- list query parameters: defaults, strict integers, enums,
 * unknown keys, and the RPC msgpack form.
 */
#include <string.h>

#include <criterion/criterion.h>
#include <msgpack.h>

#include "codec.h"
#include "valid.h"
#include "helper_mp.h"

#define S(lit) lit, sizeof(lit) - 1

static int set(struct ud_query *q, const char *k, const char *v,
	       struct ud_error *err)
{
	return ud_query_set(q, k, strlen(k), v, strlen(v), err);
}

Test(query, defaults)
{
	struct ud_query q;

	memset(&q, 0x55, sizeof(q));
	ud_query_init(&q);
	cr_assert_eq(q.page, 1);
	cr_assert_eq(q.limit, 20);
	cr_assert_eq(q.role, -1);
	cr_assert_eq(q.status, -1);
	cr_assert_null(q.email);
	cr_assert_null(q.search);
	cr_assert(!q.asc);
}

Test(query, page_and_limit_strict)
{
	static const char *bad[] = {
	    "",	  "0",	"+1",  "-1",   "1abc",
	    " 1", "1 ", "1.0", "0x10", "99999999999999999999999"};
	struct ud_error err = {0};
	struct ud_query q;
	size_t i;

	ud_query_init(&q);
	cr_assert_eq(set(&q, "page", "1", &err), 0);
	cr_assert_eq(set(&q, "page", "007", &err), 0);
	cr_assert_eq(q.page, 7);
	cr_assert_eq(set(&q, "page", "1000000000", &err), 0);
	cr_assert_eq(set(&q, "page", "1000000001", &err), UD_EINVAL);
	cr_assert_eq(set(&q, "limit", "1", &err), 0);
	cr_assert_eq(set(&q, "limit", "100", &err), 0);
	cr_assert_eq(q.limit, 100);
	cr_assert_eq(set(&q, "limit", "101", &err), UD_EINVAL);
	cr_assert_str_eq(err.field, "limit");
	cr_assert_eq(q.limit, 100, "a refused value leaves the query alone");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(set(&q, "page", bad[i], &err), UD_EINVAL, "%s",
			     bad[i]);
		cr_assert_str_eq(err.field, "page");
		cr_assert_eq(set(&q, "limit", bad[i], &err), UD_EINVAL, "%s",
			     bad[i]);
	}
}

Test(query, enums_and_order)
{
	struct ud_error err = {0};
	struct ud_query q;

	ud_query_init(&q);
	cr_assert_eq(set(&q, "role", "viewer", &err), 0);
	cr_assert_eq(q.role, UD_ROLE_VIEWER);
	cr_assert_eq(set(&q, "role", "Viewer", &err), UD_EINVAL);
	cr_assert_str_eq(err.field, "role");
	cr_assert_eq(set(&q, "role", "", &err), UD_EINVAL);
	cr_assert_eq(set(&q, "status", "suspended", &err), 0);
	cr_assert_eq(q.status, UD_STATUS_SUSPENDED);
	cr_assert_eq(set(&q, "status", "gone", &err), UD_EINVAL);
	cr_assert_str_eq(err.field, "status");
	cr_assert_eq(set(&q, "order", "asc", &err), 0);
	cr_assert(q.asc);
	cr_assert_eq(set(&q, "order", "desc", &err), 0);
	cr_assert(!q.asc);
	cr_assert_eq(set(&q, "order", "ASC", &err), UD_EINVAL);
	cr_assert_str_eq(err.field, "order");
}

Test(query, email_and_search)
{
	struct ud_error err = {0};
	struct ud_query q;

	ud_query_init(&q);
	cr_assert_eq(set(&q, "email", "A@X.com", &err), 0);
	cr_assert_eq(q.email_len, 7);
	cr_assert_eq(memcmp(q.email, "A@X.com", 7), 0);
	cr_assert_eq(set(&q, "search",
			 "\xc3\xa9"
			 "co",
			 &err),
		     0);
	cr_assert_eq(q.search_len, 4);
	cr_assert_eq(set(&q, "search", "", &err), 0);
	cr_assert_null(q.search, "empty search = no filter");
	cr_assert_eq(set(&q, "email", "", &err), 0);
	cr_assert_null(q.email);
	cr_assert_eq(set(&q, "search", "\xff", &err), UD_EINVAL);
	cr_assert_str_eq(err.field, "search");
}

Test(query, unknown_key_is_named)
{
	struct ud_error err = {0};
	struct ud_query q;

	ud_query_init(&q);
	cr_assert_eq(set(&q, "pgae", "1", &err), UD_EINVAL);
	cr_assert_str_eq(err.field, "pgae");
	cr_assert_eq(ud_query_set(&q, S("Page"), S("1"), &err), UD_EINVAL);
	cr_assert_str_eq(err.field, "Page");
	cr_assert_eq(ud_query_set(&q, S("pag"), S("1"), &err), UD_EINVAL);
}

/* --- msgpack form --------------------------------------------------------- */

Test(query, msgpack_map)
{
	struct ud_error err = {0};
	struct ud_query q;
	struct mp m;
	size_t i;

	mp_init(&m);
	msgpack_pack_map(&m.pk, 6);
	mp_str(&m, "page");
	msgpack_pack_int(&m.pk, 3);
	mp_str(&m, "limit");
	mp_str(&m, "50");
	mp_str(&m, "role");
	mp_str(&m, "admin");
	mp_str(&m, "search");
	mp_str(&m, "bob");
	mp_str(&m, "status");
	msgpack_pack_nil(&m.pk);
	mp_str(&m, "order");
	mp_str(&m, "asc");
	ud_query_init(&q);
	cr_assert_eq(ud_query_from_msgpack(&q, m.b.data, m.b.len, &err), 0,
		     "%s", err.message);
	cr_assert_eq(q.page, 3);
	cr_assert_eq(q.limit, 50);
	cr_assert_eq(q.role, UD_ROLE_ADMIN);
	cr_assert_eq(q.status, -1);
	cr_assert_eq(q.search_len, 3);
	cr_assert(q.asc);
	/* Every proper prefix is refused, never read past. */
	for (i = 0; i < m.b.len; i++) {
		ud_query_init(&q);
		cr_assert_eq(ud_query_from_msgpack(&q, m.b.data, i, &err),
			     UD_EINVAL, "prefix %zu", i);
	}
	ud_buf_free(&m.b);
}

Test(query, msgpack_nil_is_defaults)
{
	struct ud_query q;
	struct mp m;

	mp_init(&m);
	msgpack_pack_nil(&m.pk);
	ud_query_init(&q);
	cr_assert_eq(ud_query_from_msgpack(&q, m.b.data, m.b.len, NULL), 0);
	cr_assert_eq(q.limit, 20);
	ud_buf_free(&m.b);
}

static int one(const char *key, int kind, struct ud_error *err)
{
	struct ud_query q;
	struct mp m;
	int rc;

	mp_init(&m);
	msgpack_pack_map(&m.pk, 1);
	mp_str(&m, key);
	if (kind == 0)
		msgpack_pack_int(&m.pk, -1);
	else if (kind == 1)
		msgpack_pack_uint64(&m.pk, UINT64_MAX);
	else if (kind == 2)
		msgpack_pack_double(&m.pk, 2.0);
	else if (kind == 3)
		msgpack_pack_true(&m.pk);
	else if (kind == 4)
		msgpack_pack_array(&m.pk, 0);
	else
		msgpack_pack_int(&m.pk, 100);
	ud_query_init(&q);
	rc = ud_query_from_msgpack(&q, m.b.data, m.b.len, err);
	ud_buf_free(&m.b);
	return rc;
}

Test(query, msgpack_bad_values)
{
	struct ud_error err = {0};
	int kind;

	for (kind = 0; kind < 5; kind++) {
		cr_assert_eq(one("limit", kind, &err), UD_EINVAL, "%d", kind);
		cr_assert_str_eq(err.field, "limit");
		cr_assert_eq(one("role", kind, &err), UD_EINVAL, "%d", kind);
		cr_assert_str_eq(err.field, "role");
	}
	cr_assert_eq(one("limit", 5, &err), 0);
	cr_assert_eq(one("role", 5, &err), UD_EINVAL);
	cr_assert_eq(one("nope", 5, &err), UD_EINVAL);
	cr_assert_str_eq(err.field, "nope");
}

/* A key twice in the RPC map is refused naming it, nil or not, whatever the
 * values (a JSON reader would keep only one). */
Test(query, msgpack_key_twice_is_refused)
{
	static const char *const keys[] = {"page",  "limit",  "role", "status",
					   "email", "search", "order"};
	struct ud_error err = {0};
	struct ud_query q;
	struct mp m;
	size_t i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		mp_init(&m);
		msgpack_pack_map(&m.pk, 3);
		mp_str(&m, keys[i]);
		msgpack_pack_nil(&m.pk);
		mp_str(&m, i ? "page" : "limit");
		msgpack_pack_int(&m.pk, 2);
		mp_str(&m, keys[i]);
		msgpack_pack_nil(&m.pk);
		ud_query_init(&q);
		cr_assert_eq(ud_query_from_msgpack(&q, m.b.data, m.b.len, &err),
			     UD_EINVAL, "%s", keys[i]);
		cr_assert_str_eq(err.field, keys[i]);
		cr_assert(strstr(err.message, "twice"), "%s", err.message);
		ud_buf_free(&m.b);
	}
}
