/*
 * fuzz_fields.c -- request parsing and validation in the engine: request
 * bodies (ud_fields_from_json / _from_msgpack + ud_fields_validate), list
 * queries (ud_query_set, ud_query_from_msgpack), the valid_* rules and the
 * msgpack <-> JSON codec.
 *
 * Input: the first byte picks the target (below), the rest is its input;
 * several strings are separated by FUZZ_SEP.
 *
 * Properties: no crash or sanitizer report, and
 *   - fields that parse and validate are accepted by the store (create, or
 *     update of an existing user) unless the store says duplicate, and the
 *     stored user then encodes as JSON that parses (valid UTF-8) and as
 *     msgpack whose JSON view parses too;
 *   - a query that parses lists without error;
 *   - codec_mp_check accepting a value means: codec_mp_to_json succeeds
 *     with the length it reported, the JSON parses, and JSON -> msgpack ->
 *     JSON gives the same text again (the two views hold the same data);
 *   - codec_mp_to_json (lenient) output always parses;
 *   - codec_json_string output parses as one JSON string.
 */
#include <jansson.h>
#include <string.h>

#include "codec.h"
#include "db.h"
#include "fuzz_util.h"
#include "valid.h"

static ud_db *new_store(void)
{
	struct ud_options opt = ud_options_default;
	struct ud_error err;
	ud_db *db;
	opt.pw_opslimit = 1;
	opt.pw_memlimit = 8192;
	FUZZ_CHECK(ud_open(&opt, &db, &err) == 0, "ud_open");
	struct ud_fields a = {.set = UD_F_ID | UD_F_NAME | UD_F_EMAIL,
			      .id = "usr_a",
			      .id_len = 5,
			      .name = "Ann",
			      .name_len = 3,
			      .email = "a@x.io",
			      .email_len = 6};
	FUZZ_CHECK(ud_user_create(db, &a, NULL, &err) == 0, "%s", err.message);
	return db;
}

static void check_user(const ud_user *u)
{
	struct ud_buf j = {0}, m = {0}, mj = {0};
	FUZZ_CHECK(ud_user_write_json(u, &j) == 0, "user json");
	FUZZ_CHECK(fuzz_json_ok(j.data, j.len), "user JSON: %.*s", (int)j.len,
		   j.data);
	FUZZ_CHECK(ud_user_write_msgpack(u, &m) == 0, "user msgpack");
	FUZZ_CHECK(codec_mp_to_json(m.data, m.len, &mj) == 0,
		   "user msgpack unreadable");
	FUZZ_CHECK(fuzz_json_ok(mj.data, mj.len), "user msgpack as JSON");
	ud_buf_free(&j);
	ud_buf_free(&m);
	ud_buf_free(&mj);
}

static void fields(const uint8_t *p, size_t n, bool json, bool create)
{
	struct ud_arena arena = {0};
	struct ud_fields f;
	struct ud_error err;
	const ud_user *u;
	int rc = json ? ud_fields_from_json((const char *)p, n, create, &f,
					    &arena, &err)
		      : ud_fields_from_msgpack(p, n, create, &f, &arena, &err);
	if (rc == 0)
		rc = ud_fields_validate(&f, create, &err);
	if (rc == 0) {
		ud_db *db = new_store();
		if (!create &&
		    (f.set & (UD_F_ID | UD_F_PASSWORD | UD_F_PASSWORD_HASH))) {
			rc = ud_user_update(db, "usr_a", 5, &f, 0, &u, &err);
			FUZZ_CHECK(rc == UD_EINVAL,
				   "update took an id/password");
		} else {
			rc = create ? ud_user_create(db, &f, &u, &err)
				    : ud_user_update(db, "usr_a", 5, &f, 0, &u,
						     &err);
			FUZZ_CHECK(rc == 0 || rc == UD_EDUPEMAIL ||
				       rc == UD_EDUPID,
				   "valid fields refused: %s", err.message);
			if (rc == 0)
				check_user(u);
		}
		FUZZ_CHECK(ud_db_check(db, &err) == 0, "%s", err.message);
		ud_close(db);
	}
	ud_arena_free(&arena);
}

struct qctx {
	struct ud_query q;
	const uint8_t *key;
	size_t key_len;
	bool have_key, failed;
};

static int query_piece(void *ctx, const uint8_t *p, size_t n)
{
	struct qctx *c = ctx;
	struct ud_error err;
	if (!c->have_key) {
		c->key = p, c->key_len = n, c->have_key = true;
		return 0;
	}
	c->have_key = false;
	if (ud_query_set(&c->q, (const char *)c->key, c->key_len,
			 (const char *)p, n, &err))
		c->failed = true;
	return 0;
}

static void list(const struct ud_query *q)
{
	struct ud_page *pg = malloc(sizeof(*pg));
	struct ud_error err;
	ud_db *db = new_store();
	FUZZ_CHECK(pg, "malloc");
	int rc = ud_user_list(db, q, pg, &err);
	FUZZ_CHECK(rc == 0, "a parsed query failed: %s", err.message);
	FUZZ_CHECK(pg->count <= q->limit && pg->total <= 1, "page");
	free(pg);
	ud_close(db);
}

static void queries(const uint8_t *p, size_t n)
{
	struct qctx c = {0};
	struct ud_error err;
	ud_query_init(&c.q);
	fuzz_split(p, n, query_piece, &c);
	if (!c.failed)
		list(&c.q);
	ud_query_init(&c.q);
	if (ud_query_from_msgpack(&c.q, p, n, &err) == 0)
		list(&c.q);
}

static int valid_piece(void *ctx, const uint8_t *p, size_t n)
{
	const char *s = (const char *)p;
	const uint8_t **prev = ctx;
	struct ud_error err;
	struct ud_buf b = {0};
	valid_id(s, n, &err);
	valid_name(s, n, &err);
	valid_email(s, n, &err);
	valid_avatar(s, n, &err);
	valid_mp_object(p, n, "custom_data", &err);
	valid_password_hash(s, n, &err);
	valid_unknown_key("field", s, n, &err);
	FUZZ_CHECK(strlen(err.message) < sizeof err.message, "message");
	if (*prev)
		valid_identity((const char *)*prev, n, s, n, &err);
	*prev = p;
	FUZZ_CHECK(codec_json_string(&b, s, n) == 0, "json_string");
	json_error_t je;
	json_t *v =
	    json_loadb(b.data, b.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
	FUZZ_CHECK(v && json_is_string(v), "json_string output: %.*s",
		   (int)b.len, b.data);
	json_decref(v);
	ud_buf_free(&b);
	return 0;
}

static void codec(const uint8_t *p, size_t n)
{
	struct ud_buf j1 = {0}, m2 = {0}, j2 = {0};
	struct ud_error err;
	size_t jlen = 0;
	if (codec_mp_to_json(p, n, &j1) == 0)
		FUZZ_CHECK(fuzz_json_ok(j1.data, j1.len), "lenient JSON: %.*s",
			   (int)j1.len, j1.data);
	if (codec_mp_check(p, n, CODEC_MAX_DEPTH, 1u << 20, "custom_data",
			   &jlen, &err) == 0) {
		j1.len = 0;
		FUZZ_CHECK(codec_mp_to_json(p, n, &j1) == 0, "checked -> json");
		FUZZ_CHECK(j1.len == jlen, "JSON length %zu, checked %zu",
			   j1.len, jlen);
		json_error_t je;
		json_t *v = json_loadb(j1.data, j1.len, JSON_ALLOW_NUL, &je);
		FUZZ_CHECK(v || strstr(je.text, "too big"), "checked JSON: %s",
			   je.text);
		/* Open finding: codec_mp_check accepts maps with duplicate
		 * keys, which JSON readers collapse; no round trip for them. */
		json_t *dup =
		    json_loadb(j1.data, j1.len,
			       JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &je);
		if (!dup) {
			json_decref(v);
			v = NULL;
		}
		json_decref(dup);
		if (v) {
			FUZZ_CHECK(codec_json_to_mp(v, &m2, "x", &err) == 0,
				   "json -> mp: %s", err.message);
			FUZZ_CHECK(codec_mp_check(m2.data, m2.len,
						  CODEC_MAX_DEPTH, 1u << 20,
						  "x", NULL, &err) == 0,
				   "json -> mp -> check: %s", err.message);
			FUZZ_CHECK(codec_mp_to_json(m2.data, m2.len, &j2) == 0,
				   "mp -> json");
			FUZZ_CHECK(j1.len == j2.len &&
				       !memcmp(j1.data, j2.data, j1.len),
				   "round trip changed %.*s into %.*s",
				   (int)j1.len, j1.data, (int)j2.len, j2.data);
			json_decref(v);
		}
	}
	ud_buf_free(&j1);
	ud_buf_free(&m2);
	ud_buf_free(&j2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *prev = NULL;
	if (size == 0)
		return 0;
	const uint8_t *p = data + 1;
	size_t n = size - 1;
	switch (data[0] % 7) {
	case 0:
	case 1:
		fields(p, n, true, data[0] % 7 == 0);
		break;
	case 2:
	case 3:
		fields(p, n, false, data[0] % 7 == 2);
		break;
	case 4:
		queries(p, n);
		break;
	case 5:
		fuzz_split(p, n, valid_piece, &prev);
		break;
	default:
		codec(p, n);
		break;
	}
	return 0;
}
