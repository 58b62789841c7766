/*
 * test_codec.c -- user and log-entry encoders (exact JSON, msgpack equal to
 * it), times, string escaping, msgpack <-> JSON conversion and its bounds.
 */
#define _GNU_SOURCE /* memmem */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>
#include <jansson.h>
#include <msgpack.h>

#include "codec.h"

#define S(lit) lit, sizeof(lit) - 1

static void assert_buf(const struct ud_buf *b, const char *want)
{
	cr_assert_eq(b->len, strlen(want), "got %.*s", (int)b->len, b->data);
	cr_assert_eq(memcmp(b->data, want, b->len), 0, "got %.*s", (int)b->len,
		     b->data);
}

/* JSON text -> jansson -> msgpack (the custom_data path). */
static void json_to_mp(const char *text, struct ud_buf *out)
{
	json_error_t je;
	json_t *v = json_loads(text, JSON_REJECT_DUPLICATES, &je);
	struct ud_error err = {0};

	cr_assert_not_null(v, "%s", je.text);
	cr_assert_eq(codec_json_to_mp(v, out, "custom_data", &err), 0, "%s",
		     err.message);
	json_decref(v);
}

Test(codec, time_format)
{
	char t[32];

	cr_assert_eq(ud_time_format(0, t), 24);
	cr_assert_str_eq(t, "1970-01-01T00:00:00.000Z");
	ud_time_format(1737385200123LL, t);
	cr_assert_str_eq(t, "2025-01-20T15:00:00.123Z");
	ud_time_format(-1, t);
	cr_assert_str_eq(t, "1969-12-31T23:59:59.999Z");
	ud_time_format(951782400000LL, t);
	cr_assert_str_eq(t, "2000-02-29T00:00:00.000Z");
	ud_time_format(INT64_MAX, t);
	cr_assert_str_eq(t, "9999-12-31T23:59:59.999Z");
	ud_time_format(INT64_MIN, t);
	cr_assert_str_eq(t, "0000-01-01T00:00:00.000Z");
}

Test(codec, time_format_matches_gmtime)
{
	int64_t ms = -2208988800000LL; /* 1900 */
	char t[32], want[100];
	struct tm tm;
	time_t s;

	for (; ms < 4102444800000LL; ms += 86399999LL * 7 + 12345) {
		ud_time_format(ms, t);
		s = (time_t)((ms - (ms < 0 ? 999 : 0)) / 1000);
		gmtime_r(&s, &tm);
		snprintf(
		    want, sizeof(want), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
		    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		    tm.tm_min, tm.tm_sec, (int)(ms - (int64_t)s * 1000));
		cr_assert_str_eq(t, want, "ms=%lld", (long long)ms);
	}
}

/* Times within a day and across neighbouring days, in and out of order
 * (the formatter keeps the last day's date). */
Test(codec, time_format_same_and_next_days)
{
	static const int64_t base[] = {1737385200123LL, -86400000LL * 3 + 5,
				       951782400000LL - 1};
	char t[32], want[100];
	struct tm tm;
	time_t s;

	for (unsigned b = 0; b < sizeof(base) / sizeof(base[0]); b++)
		for (int i = 0; i < 500; i++) {
			/* steps of ~1 h, every third one back a day */
			int64_t ms = base[b] + i * 3661001LL -
				     (i % 3 == 0 ? 86400000LL : 0);

			ud_time_format(ms, t);
			s = (time_t)((ms - (ms < 0 ? 999 : 0)) / 1000);
			gmtime_r(&s, &tm);
			snprintf(want, sizeof(want),
				 "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
				 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
				 tm.tm_hour, tm.tm_min, tm.tm_sec,
				 (int)(ms - (int64_t)s * 1000));
			cr_assert_str_eq(t, want, "ms=%lld", (long long)ms);
		}
}

Test(codec, json_string_escapes)
{
	struct ud_buf b = {0};
	json_t *v;

	cr_assert_eq(codec_json_string(&b, S("a\"b\\c\n\t\x01\x7f/\xc3\xa9"
					     "\xe4\xb8\xad")),
		     0);
	assert_buf(&b, "\"a\\\"b\\\\c\\n\\t\\u0001\\u007f/\xc3\xa9"
		       "\xe4\xb8\xad\"");
	b.len = 0;
	cr_assert_eq(codec_json_string(&b, "x\0y", 3), 0);
	assert_buf(&b, "\"x\\u0000y\"");
	b.len = 0;
	/* Invalid UTF-8 never reaches the output. */
	cr_assert_eq(codec_json_string(&b, S("a\xff\xc3(\xed\xa0\x80")), 0);
	cr_assert_not_null(
	    v = json_loadb(b.data, b.len, JSON_DECODE_ANY, NULL));
	json_decref(v);
	ud_buf_free(&b);
}

static void sample_view(struct ud_user_view *v, struct ud_buf *cd,
			struct ud_buf *ids)
{
	json_to_mp("{\"plan\":\"pro\",\"tags\":[\"a\",1,2.5,true,null]}", cd);
	json_to_mp("{\"github\":{\"user_id\":\"42\",\"details\":{\"login\":"
		   "\"zoe\"}}}",
		   ids);
	memset(v, 0, sizeof(*v));
	v->id = "usr_0123456789abcdef";
	v->id_len = 20;
	v->name = "Zo\xc3\xab \"Z\"";
	v->name_len = strlen(v->name);
	v->email = "Zoe@Example.com";
	v->email_len = strlen(v->email);
	v->role = UD_ROLE_ADMIN;
	v->status = UD_STATUS_SUSPENDED;
	v->custom_data = cd->data;
	v->custom_data_len = cd->len;
	v->identities = ids->data;
	v->identities_len = ids->len;
	v->has_password = true;
	v->created_ms = 1737385200123LL;
	v->updated_ms = 1737385260000LL;
	v->last_sign_in_ms = -1;
}

#define USER_JSON                                                              \
	"{\"id\":\"usr_0123456789abcdef\",\"name\":\"Zo\xc3\xab \\\"Z\\\"\","  \
	"\"email\":\"Zoe@Example.com\",\"role\":\"admin\","                    \
	"\"status\":\"suspended\",\"avatar\":null,"                            \
	"\"custom_data\":{\"plan\":\"pro\",\"tags\":[\"a\",1,2.5,true,null]}," \
	"\"identities\":{\"github\":{\"user_id\":\"42\",\"details\":"          \
	"{\"login\":\"zoe\"}}},\"has_password\":true,"                         \
	"\"last_sign_in_at\":null,\"created_at\":\"2025-01-20T15:00:00."       \
	"123Z\","                                                              \
	"\"updated_at\":\"2025-01-20T15:01:00.000Z\"}"

Test(codec, user_json_exact)
{
	struct ud_buf cd = {0}, ids = {0}, b = {0};
	struct ud_user_view v;

	sample_view(&v, &cd, &ids);
	cr_assert_eq(codec_user_json(&v, &b), 0);
	assert_buf(&b, USER_JSON);
	/* avatar and last sign-in set */
	v.avatar = "https://x.io/a.png";
	v.avatar_len = strlen(v.avatar);
	v.last_sign_in_ms = 0;
	b.len = 0;
	cr_assert_eq(codec_user_json(&v, &b), 0);
	cr_assert_not_null(
	    memmem(b.data, b.len, S("\"avatar\":\"https://x.io/a.png\"")));
	cr_assert_not_null(
	    memmem(b.data, b.len,
		   S("\"last_sign_in_at\":\"1970-01-01T00:00:00.000Z\"")));
	ud_buf_free(&b);
	ud_buf_free(&cd);
	ud_buf_free(&ids);
}

Test(codec, user_msgpack_equals_json)
{
	struct ud_buf cd = {0}, ids = {0}, mp = {0}, js = {0};
	struct ud_user_view v;
	msgpack_unpacked u;
	size_t off = 0;

	sample_view(&v, &cd, &ids);
	cr_assert_eq(codec_user_mp(&v, &mp), 0);
	cr_assert_eq(codec_mp_to_json(mp.data, mp.len, &js), 0);
	assert_buf(&js, USER_JSON);
	/* A standard decoder reads it as one map of 12. */
	msgpack_unpacked_init(&u);
	cr_assert_eq(msgpack_unpack_next(&u, mp.data, mp.len, &off),
		     MSGPACK_UNPACK_SUCCESS);
	cr_assert_eq(off, mp.len);
	cr_assert_eq(u.data.type, MSGPACK_OBJECT_MAP);
	cr_assert_eq(u.data.via.map.size, 12);
	cr_assert_eq(u.data.via.map.ptr[5].val.type, MSGPACK_OBJECT_NIL);
	cr_assert_eq(u.data.via.map.ptr[8].val.type, MSGPACK_OBJECT_BOOLEAN);
	msgpack_unpacked_destroy(&u);
	ud_buf_free(&mp);
	ud_buf_free(&js);
	ud_buf_free(&cd);
	ud_buf_free(&ids);
}

/* The same user through msgpack-c's packer, for the byte-exact check. */
static int ref_str(msgpack_packer *pk, const char *s, size_t n)
{
	return s ? msgpack_pack_str_with_body(pk, s, n) : msgpack_pack_nil(pk);
}

static int ref_time(msgpack_packer *pk, int64_t ms)
{
	char t[32];

	return ms < 0 ? msgpack_pack_nil(pk)
		      : ref_str(pk, t, ud_time_format(ms, t));
}

static int ref_obj(struct ud_buf *b, msgpack_packer *pk, const void *p,
		   size_t n)
{
	return n ? ud_buf_append(b, p, n) : msgpack_pack_map(pk, 0);
}

static void ref_user_mp(const struct ud_user_view *v, struct ud_buf *b)
{
	msgpack_packer pk;
	int rc = 0;

	msgpack_packer_init(&pk, b, codec_buf_write_cb);
	rc |= msgpack_pack_map(&pk, 12);
	rc |= ref_str(&pk, S("id")) | ref_str(&pk, v->id, v->id_len);
	rc |= ref_str(&pk, S("name")) | ref_str(&pk, v->name, v->name_len);
	rc |= ref_str(&pk, S("email")) | ref_str(&pk, v->email, v->email_len);
	rc |= ref_str(&pk, S("role")) | ref_str(&pk, ud_role_name(v->role),
						strlen(ud_role_name(v->role)));
	rc |= ref_str(&pk, S("status")) |
	      ref_str(&pk, ud_status_name(v->status),
		      strlen(ud_status_name(v->status)));
	rc |=
	    ref_str(&pk, S("avatar")) | ref_str(&pk, v->avatar, v->avatar_len);
	rc |= ref_str(&pk, S("custom_data")) |
	      ref_obj(b, &pk, v->custom_data, v->custom_data_len);
	rc |= ref_str(&pk, S("identities")) |
	      ref_obj(b, &pk, v->identities, v->identities_len);
	rc |= ref_str(&pk, S("has_password")) |
	      (v->has_password ? msgpack_pack_true(&pk)
			       : msgpack_pack_false(&pk));
	rc |= ref_str(&pk, S("last_sign_in_at")) |
	      ref_time(&pk, v->last_sign_in_ms);
	rc |= ref_str(&pk, S("created_at")) | ref_time(&pk, v->created_ms);
	rc |= ref_str(&pk, S("updated_at")) | ref_time(&pk, v->updated_ms);
	cr_assert_eq(rc, 0);
}

/* The hand-written user encoder writes what msgpack-c's packer writes, at
 * every string header boundary (31/32, 255/256, 65535/65536 bytes), with
 * every optional field absent and present, into a buffer that already
 * holds bytes and one that is empty. */
Test(codec, user_msgpack_bytes_equal_msgpack_c)
{
	static const size_t lens[] = {0, 1, 31, 32, 255, 256, 65535, 65536};
	struct ud_buf cd = {0}, ids = {0}, got = {0}, want = {0};
	struct ud_user_view v;
	char *big = malloc(70000);
	size_t i, j;

	cr_assert_not_null(big);
	memset(big, 'q', 70000);
	sample_view(&v, &cd, &ids);
	const int64_t updated = v.updated_ms;
	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		for (j = 0; j < 4; j++) {
			/* never updated (the encoder copies created_at) or not
			 */
			v.updated_ms = j & 2 ? v.created_ms : updated;
			v.name = big;
			v.name_len = lens[i];
			v.avatar = j & 1 ? big : NULL;
			v.avatar_len = j & 1 ? lens[(i + 3) % 8] : 0;
			v.last_sign_in_ms = j & 2 ? 1700000000123 : -1;
			v.has_password = j & 1;
			v.custom_data_len = j == 3 ? 0 : cd.len;
			v.role = (int)(i % 3);
			v.status = (int)(j % 3);
			got.len = want.len = 0;
			if (j & 1) { /* something already in the buffer */
				cr_assert_eq(ud_buf_append(&got, S("xyz")), 0);
				cr_assert_eq(ud_buf_append(&want, S("xyz")), 0);
			}
			cr_assert_eq(codec_user_mp(&v, &got), 0);
			ref_user_mp(&v, &want);
			cr_assert_eq(got.len, want.len, "len %zu case %zu",
				     lens[i], j);
			cr_assert_eq(memcmp(got.data, want.data, got.len), 0,
				     "len %zu case %zu", lens[i], j);
		}
	}
	free(big);
	ud_buf_free(&got);
	ud_buf_free(&want);
	ud_buf_free(&cd);
	ud_buf_free(&ids);
}

Test(codec, log_entry_json_and_msgpack)
{
	struct ud_buf d = {0}, b = {0}, mp = {0}, js = {0};
	struct ud_log_view e = {0};
	const char *want =
	    "{\"id\":\"log_00000000000000ff\",\"user_id\":\"usr_a\","
	    "\"event\":\"user.password_verified\","
	    "\"created_at\":\"2025-01-20T15:00:00.123Z\","
	    "\"details\":{\"valid\":false}}";

	json_to_mp("{\"valid\":false}", &d);
	e.id = 255;
	e.user_id = "usr_a";
	e.user_id_len = 5;
	e.event = UD_EV_PASSWORD_VERIFIED;
	e.created_ms = 1737385200123LL;
	e.details = d.data;
	e.details_len = d.len;
	cr_assert_eq(ud_log_write_json(&e, &b), 0);
	assert_buf(&b, want);
	cr_assert_eq(ud_log_write_msgpack(&e, &mp), 0);
	cr_assert_eq(codec_mp_to_json(mp.data, mp.len, &js), 0);
	assert_buf(&js, want);
	e.id = UINT64_MAX;
	b.len = 0;
	cr_assert_eq(codec_log_json(&e, &b), 0);
	cr_assert_eq(memcmp(b.data, "{\"id\":\"log_ffffffffffffffff\"", 27), 0);
	ud_buf_free(&b);
	ud_buf_free(&mp);
	ud_buf_free(&js);
	ud_buf_free(&d);
}

/* JSON -> msgpack -> JSON gives back the compact text. */
Test(codec, round_trip_custom_data)
{
	static const char *samples[] = {
	    "{}",
	    "{\"a\":1,\"b\":[true,false,null],\"c\":{\"d\":\"\xc3\xa9\\n\"}}",
	    "{\"e\":1.5,\"f\":-3,\"g\":1e+300,\"h\":0.1,\"i\":1.0,\"j\":-0.0}",
	    "{\"big\":9223372036854775807,\"small\":-9223372036854775808}",
	    "{\"s\":\"\\\"\\\\\\u0001\xe4\xb8\xad\xf0\x9f\x98\x80\"}",
	    "{\"z\":1,\"a\":2,\"m\":3}",
	    "{\"n\":[[[[[]]]],{}],\"x\":1.7976931348623157e+308}",
	};
	size_t i;

	for (i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
		struct ud_buf mp = {0}, js = {0};
		struct ud_error err = {0};
		size_t jl = 0;

		json_to_mp(samples[i], &mp);
		cr_assert_eq(
		    codec_mp_check(mp.data, mp.len, 32, 8192, "x", &jl, &err),
		    0, "%s", err.message);
		cr_assert_eq(codec_mp_to_json(mp.data, mp.len, &js), 0);
		assert_buf(&js, samples[i]);
		cr_assert_eq(jl, strlen(samples[i]), "measured == written");
		ud_buf_free(&mp);
		ud_buf_free(&js);
	}
}

/* codec_mp_skip counts depth as the RPC framer does: an empty container
 * nests nothing (fuzz_mpframe found them disagreeing). */
Test(codec, mp_skip_depth_counts_only_containers_that_hold)
{
	unsigned char b[80];
	struct codec_mp_cur c;

	memset(b, 0x91, 64); /* 64 nested one-element arrays */
	b[64] = 0x90;	     /* around an empty one */
	c = (struct codec_mp_cur){b, b + 65};
	cr_assert_eq(codec_mp_skip(&c, 64), 0);
	cr_assert_eq(c.p, b + 65);
	b[64] = 0x80; /* an empty map alike */
	c = (struct codec_mp_cur){b, b + 65};
	cr_assert_eq(codec_mp_skip(&c, 64), 0);
	b[64] = 0x91; /* a 65th that holds something: too deep */
	b[65] = 0x01;
	c = (struct codec_mp_cur){b, b + 66};
	cr_assert_eq(codec_mp_skip(&c, 64), -1);
}

Test(codec, json_to_mp_depth)
{
	struct ud_error err = {0};
	struct ud_buf b = {0};
	json_t *v = json_object(), *cur = v, *next;
	int i;

	for (i = 1; i < 32; i++) {
		next = json_object();
		json_object_set_new(cur, "k", next);
		cur = next;
	}
	cr_assert_eq(codec_json_to_mp(v, &b, "custom_data", &err), 0);
	json_object_set_new(cur, "k", json_array());
	b.len = 0;
	cr_assert_eq(codec_json_to_mp(v, &b, "custom_data", &err), UD_EINVAL);
	cr_assert_str_eq(err.field, "custom_data");
	json_decref(v);
	ud_buf_free(&b);
}

Test(codec, mp_to_json_lenient_forms)
{
	struct ud_buf b = {0}, js = {0};
	msgpack_packer pk;

	msgpack_packer_init(&pk, &b, codec_buf_write_cb);
	msgpack_pack_array(&pk, 8);
	msgpack_pack_uint64(&pk, UINT64_MAX);
	msgpack_pack_int64(&pk, INT64_MIN);
	msgpack_pack_float(&pk, 0.1f);
	msgpack_pack_double(&pk, 0.0 / 0.0);
	msgpack_pack_bin_with_body(&pk, "hi", 2);
	msgpack_pack_ext_with_body(&pk, "x", 1, 1);
	msgpack_pack_map(&pk, 2);
	msgpack_pack_int(&pk, 7);
	msgpack_pack_true(&pk);
	msgpack_pack_nil(&pk);
	msgpack_pack_int(&pk, -1);
	msgpack_pack_str_with_body(&pk, "\xff", 1);
	cr_assert_eq(codec_mp_to_json(b.data, b.len, &js), 0);
	assert_buf(&js,
		   "[18446744073709551615,-9223372036854775808,0.1,null,"
		   "\"hi\",null,{\"7\":true,\"null\":-1},\"\xef\xbf\xbd\"]");
	ud_buf_free(&b);
	ud_buf_free(&js);
}

Test(codec, mp_to_json_rejects_malformed)
{
	struct ud_buf b = {0}, js = {0};
	msgpack_packer pk;
	size_t i;
	int d;

	msgpack_packer_init(&pk, &b, codec_buf_write_cb);
	msgpack_pack_map(&pk, 2);
	msgpack_pack_str_with_body(&pk, "key", 3);
	msgpack_pack_array(&pk, 3);
	msgpack_pack_int(&pk, 300);
	msgpack_pack_double(&pk, 2.5);
	msgpack_pack_str_with_body(&pk, "long enough string value here!!!", 32);
	msgpack_pack_str_with_body(&pk, "k2", 2);
	msgpack_pack_bin_with_body(&pk, "bb", 2);
	for (i = 0; i < b.len; i++) {
		char *copy = malloc(i ? i : 1);

		memcpy(copy, b.data, i);
		js.len = 0;
		cr_assert_eq(codec_mp_to_json(copy, i, &js), UD_EINVAL,
			     "prefix %zu", i);
		free(copy);
	}
	js.len = 0;
	cr_assert_eq(codec_mp_to_json(b.data, b.len, &js), 0);
	/* 0xc1 is never valid; trailing bytes are refused. */
	cr_assert_eq(codec_mp_to_json("\xc1", 1, &js), UD_EINVAL);
	cr_assert_eq(codec_mp_to_json("\xc0\xc0", 2, &js), UD_EINVAL);
	/* A map32 claiming 4G entries with nothing after it. */
	cr_assert_eq(codec_mp_to_json("\xdf\xff\xff\xff\xff", 5, &js),
		     UD_EINVAL);
	/* Depth: 64 nested arrays convert, 65 do not; 1M do not crash. */
	for (d = 0; d < 3; d++) {
		size_t n = d == 0 ? 64 : d == 1 ? 65 : 1000000;
		char *deep = malloc(n);

		memset(deep, 0x91, n - 1);
		deep[n - 1] = (char)0x90;
		js.len = 0;
		cr_assert_eq(codec_mp_to_json(deep, n, &js),
			     d == 0 ? 0 : UD_EINVAL, "depth %zu", n);
		free(deep);
	}
	ud_buf_free(&b);
	ud_buf_free(&js);
}

Test(codec, mp_reader_types)
{
	static const unsigned char in[] = {
	    0x05, 0xff, 0xcc, 0xc8, 0xd0, 0x80, 0xd1, 0x7f, 0xff,
	    0xcb, 0x3f, 0xf8, 0,    0,	  0,	0,    0,    0,
	    0xa2, 'h',	'i',  0xc4, 0x01, 'z',	0xd4, 0x07, 0x41,
	    0x92, 0x81, 0xc2, 0xc3, 0xc0, 0xc3, 0xc0,
	};
	struct codec_mp_cur c = {in, in + sizeof(in)};
	struct codec_mp_item it;

	cr_assert_eq(codec_mp_next(&c, &it), 0);
	cr_assert(it.type == CODEC_MP_UINT && it.u == 5);
	cr_assert_eq(codec_mp_next(&c, &it), 0);
	cr_assert(it.type == CODEC_MP_INT && it.i == -1);
	cr_assert_eq(codec_mp_next(&c, &it), 0);
	cr_assert(it.type == CODEC_MP_UINT && it.u == 200);
	cr_assert_eq(codec_mp_next(&c, &it), 0);
	cr_assert(it.type == CODEC_MP_INT && it.i == -128);
	cr_assert_eq(codec_mp_next(&c, &it), 0);
	cr_assert(it.type == CODEC_MP_UINT && it.u == 32767);
	cr_assert_eq(codec_mp_next(&c, &it), 0);
	cr_assert(it.type == CODEC_MP_FLOAT && it.f == 1.5);
	cr_assert_eq(codec_mp_next(&c, &it), 0);
	cr_assert(it.type == CODEC_MP_STR && it.n == 2 && it.s[0] == 'h');
	cr_assert_eq(codec_mp_next(&c, &it), 0);
	cr_assert(it.type == CODEC_MP_BIN && it.n == 1 && it.s[0] == 'z');
	cr_assert_eq(codec_mp_next(&c, &it), 0);
	cr_assert(it.type == CODEC_MP_EXT && it.ext_type == 7 && it.n == 1);
	cr_assert_eq(codec_mp_next(&c, &it), 0);
	cr_assert(it.type == CODEC_MP_ARRAY && it.n == 2);
	cr_assert_eq(codec_mp_skip(&c, 0), -1, "a map needs depth 1");
	c.p = in + sizeof(in) - 6;
	cr_assert_eq(codec_mp_skip(&c, 1), 0);
	cr_assert_eq(codec_mp_next(&c, &it), 0);
	cr_assert(it.type == CODEC_MP_NIL);
	cr_assert_eq(codec_mp_next(&c, &it), 0);
	cr_assert(it.type == CODEC_MP_BOOL && it.b);
	cr_assert_eq(codec_mp_next(&c, &it), 0);
	cr_assert(it.type == CODEC_MP_NIL);
	cr_assert_eq(codec_mp_next(&c, &it), -1);
}

/* The lenient conversion always gives JSON jansson reads: a NUL in a key
 * (fuzz_fields finding lenient-mp-to-json-not-json) becomes U+FFFD, in a
 * value it stays \u0000; duplicate keys pass through. */
Test(codec, mp_to_json_lenient_is_always_json)
{
	struct ud_buf b = {0}, js = {0};
	msgpack_packer pk;
	json_error_t je;
	json_t *v;

	msgpack_packer_init(&pk, &b, codec_buf_write_cb);
	msgpack_pack_map(&pk, 4);
	msgpack_pack_str_with_body(&pk, "role\0", 5);
	msgpack_pack_int(&pk, 0);
	msgpack_pack_bin_with_body(&pk, "\0", 1);
	msgpack_pack_str_with_body(&pk, "\0v", 2);
	msgpack_pack_int(&pk, 0);
	msgpack_pack_int(&pk, 1);
	msgpack_pack_int(&pk, 0);
	msgpack_pack_int(&pk, 2);
	cr_assert_eq(codec_mp_to_json(b.data, b.len, &js), 0);
	assert_buf(&js, "{\"role\xef\xbf\xbd\":0,\"\xef\xbf\xbd\":\"\\u0000v\","
			"\"0\":1,\"0\":2}");
	v = json_loadb(js.data, js.len, JSON_ALLOW_NUL, &je);
	cr_assert(v, "jansson: %s", je.text);
	json_decref(v);
	ud_buf_free(&b);
	ud_buf_free(&js);
}

/* A float32 prints like the double its text parses to, so msgpack -> JSON ->
 * msgpack (reals as float64) -> JSON is stable (fuzz_fields: -1.181116e+09
 * came back as -1181116000.0); one layout for fixed and exponent forms. */
Test(codec, reals_print_alike_as_float32_and_float64)
{
	static const struct {
		float f;
		const char *json;
	} cases[] = {
	    {-1.181116e+09f, "-1181116000.0"},
	    {0.1f, "0.1"},
	    {1e-07f, "1e-07"},
	    {0.0001f, "0.0001"},
	    {100.0f, "100.0"},
	    {1e+20f, "1e+20"},
	    {3.4028235e+38f, "3.4028235e+38"},
	    {-0.0f, "-0.0"},
	    {123.456f, "123.456"},
	};
	struct ud_buf b = {0}, js = {0}, js2 = {0};
	msgpack_packer pk;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		b.len = js.len = js2.len = 0;
		msgpack_packer_init(&pk, &b, codec_buf_write_cb);
		msgpack_pack_float(&pk, cases[i].f);
		cr_assert_eq(codec_mp_to_json(b.data, b.len, &js), 0);
		cr_assert(js.len == strlen(cases[i].json) &&
			      memcmp(js.data, cases[i].json, js.len) == 0,
			  "%zu: %.*s, want %s", i, (int)js.len, js.data,
			  cases[i].json);
		b.len = 0; /* the double its text reads as */
		msgpack_pack_double(&pk, strtod(cases[i].json, NULL));
		cr_assert_eq(codec_mp_to_json(b.data, b.len, &js2), 0);
		cr_assert(js.len == js2.len &&
			      memcmp(js.data, js2.data, js.len) == 0,
			  "%zu: float %.*s, double %.*s", i, (int)js.len,
			  js.data, (int)js2.len, js2.data);
	}
	b.len = js.len = 0;
	msgpack_packer_init(&pk, &b, codec_buf_write_cb);
	msgpack_pack_array(&pk, 4);
	msgpack_pack_double(&pk, 0.1 + 0.2);
	msgpack_pack_double(&pk, 1234567890123456.0);
	msgpack_pack_double(&pk, 5e-324);
	msgpack_pack_double(&pk, 12.5);
	cr_assert_eq(codec_mp_to_json(b.data, b.len, &js), 0);
	assert_buf(&js, "[0.30000000000000004,1.234567890123456e+15,"
			"5e-324,12.5]");
	ud_buf_free(&b);
	ud_buf_free(&js);
	ud_buf_free(&js2);
}
