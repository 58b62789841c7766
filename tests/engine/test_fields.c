/*
 * test_fields.c -- request bodies to struct ud_fields: JSON and msgpack,
 * create and update, every prefix of a body, invalid UTF-8 in every field,
 * NUL bytes, duplicate keys, deep nesting, huge numbers.
 */
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>
#include <msgpack.h>

#include "codec.h"
#include "valid.h"
#include "helper_mp.h"

static int from_json(const char *body, bool create, struct ud_fields *f,
		     struct ud_arena *a, struct ud_error *err)
{
	return ud_fields_from_json(body, strlen(body), create, f, a, err);
}

/* Parse and discard. */
static int json_rc(const char *body, bool create, struct ud_error *err)
{
	struct ud_arena a = {0};
	struct ud_fields f;
	int rc = from_json(body, create, &f, &a, err);

	ud_arena_free(&a);
	return rc;
}

static bool field_is(const char *p, size_t n, const char *want)
{
	return p && n == strlen(want) && memcmp(p, want, n) == 0;
}

Test(fields, json_create_full)
{
	static const char body[] =
	    "{\"id\":\"usr_import1\",\"name\":\"Zo\\u00eb \xe4\xb8\xad\","
	    "\"email\":\"Zoe@Example.com\",\"role\":\"admin\","
	    "\"status\":\"inactive\",\"avatar\":\"https://x.io/a.png\","
	    "\"custom_data\":{\"plan\":\"pro\",\"n\":[1,2.5,null]},"
	    "\"password\":\"hunter2hunter2\"}";
	struct ud_error err = {0};
	struct ud_arena a = {0};
	struct ud_fields f;
	struct ud_buf j = {0};

	cr_assert_eq(from_json(body, true, &f, &a, &err), 0, "%s", err.message);
	cr_assert_eq(f.set, UD_F_ID | UD_F_NAME | UD_F_EMAIL | UD_F_ROLE |
				UD_F_STATUS | UD_F_AVATAR | UD_F_CUSTOM_DATA |
				UD_F_PASSWORD);
	cr_assert(field_is(f.id, f.id_len, "usr_import1"));
	cr_assert(field_is(f.name, f.name_len, "Zo\xc3\xab \xe4\xb8\xad"));
	cr_assert(field_is(f.email, f.email_len, "Zoe@Example.com"));
	cr_assert(field_is(f.role, f.role_len, "admin"));
	cr_assert(field_is(f.status, f.status_len, "inactive"));
	cr_assert(field_is(f.avatar, f.avatar_len, "https://x.io/a.png"));
	cr_assert(field_is(f.password, f.password_len, "hunter2hunter2"));
	cr_assert_eq(codec_mp_to_json(f.custom_data, f.custom_data_len, &j), 0);
	cr_assert_eq(j.len, strlen("{\"plan\":\"pro\",\"n\":[1,2.5,null]}"));
	cr_assert_eq(
	    memcmp(j.data, "{\"plan\":\"pro\",\"n\":[1,2.5,null]}", j.len), 0);
	ud_buf_free(&j);
	ud_arena_free(&a);
}

Test(fields, json_required_and_defaults)
{
	struct ud_error err = {0};
	struct ud_arena a = {0};
	struct ud_fields f;

	cr_assert_eq(from_json("{\"name\":\"A\",\"email\":\"a@b.co\"}", true,
			       &f, &a, &err),
		     0);
	cr_assert_eq(f.set, UD_F_NAME | UD_F_EMAIL);
	ud_arena_free(&a);
	cr_assert_eq(json_rc("{\"email\":\"a@b.co\"}", true, &err), UD_EINVAL);
	cr_assert_str_eq(err.field, "name");
	cr_assert_str_eq(err.message, "name is required");
	cr_assert_eq(json_rc("{\"name\":\"A\"}", true, &err), UD_EINVAL);
	cr_assert_str_eq(err.field, "email");
	cr_assert_eq(json_rc("{}", false, &err), 0, "empty update is fine");
}

Test(fields, json_unknown_and_wrong_types)
{
	struct ud_error err = {0};

	cr_assert_eq(json_rc("{\"name\":\"A\",\"email\":\"a@b.co\","
			     "\"nickname\":\"x\"}",
			     true, &err),
		     UD_EINVAL);
	cr_assert_str_eq(err.field, "nickname");
	cr_assert_eq(json_rc("{\"name\":5,\"email\":\"a@b.co\"}", true, &err),
		     UD_EINVAL);
	cr_assert_str_eq(err.field, "name");
	cr_assert_str_eq(err.message, "name must be a string");
	cr_assert_eq(json_rc("{\"role\":null}", false, &err), UD_EINVAL);
	cr_assert_str_eq(err.field, "role");
	cr_assert_eq(json_rc("{\"custom_data\":[1]}", false, &err), UD_EINVAL);
	cr_assert_str_eq(err.field, "custom_data");
	cr_assert_eq(json_rc("{\"custom_data\":null}", false, &err), UD_EINVAL);
	cr_assert_eq(json_rc("{\"avatar\":false}", false, &err), UD_EINVAL);
	cr_assert_str_eq(err.field, "avatar");
	cr_assert_eq(json_rc("{\"role\":\"root\"}", false, &err), UD_EINVAL);
	cr_assert_str_eq(err.field, "role");
	cr_assert_eq(json_rc("{\"status\":\"Active\"}", false, &err),
		     UD_EINVAL);
	cr_assert_str_eq(err.field, "status");
	cr_assert_eq(json_rc("[]", false, &err), UD_EINVAL);
	cr_assert_null(err.field);
	cr_assert_eq(json_rc("\"x\"", false, &err), UD_EINVAL);
	cr_assert_eq(json_rc("", false, &err), UD_EINVAL);
	cr_assert_eq(json_rc("{} x", false, &err), UD_EINVAL);
	cr_assert_eq(json_rc("{}{}", false, &err), UD_EINVAL);
	cr_assert_eq(json_rc(" {}\r\n", false, &err), 0);
}

Test(fields, json_avatar_null_clears)
{
	struct ud_error err = {0};
	struct ud_arena a = {0};
	struct ud_fields f;

	cr_assert_eq(from_json("{\"avatar\":null}", false, &f, &a, &err), 0);
	cr_assert_eq(f.set, UD_F_AVATAR);
	cr_assert_null(f.avatar);
	ud_arena_free(&a);
}

Test(fields, json_update_refuses_create_only)
{
	struct ud_error err = {0};

	cr_assert_eq(json_rc("{\"password\":\"longenough\"}", false, &err),
		     UD_EINVAL);
	cr_assert_str_eq(err.field, "password");
	cr_assert_eq(json_rc("{\"id\":\"usr_x\"}", false, &err), UD_EINVAL);
	cr_assert_str_eq(err.field, "id");
	cr_assert_eq(
	    json_rc("{\"password_hash\":\"$argon2id$x\"}", false, &err),
	    UD_EINVAL);
	cr_assert_str_eq(err.field, "password_hash");
	cr_assert_eq(json_rc("{\"name\":\"A\",\"email\":\"a@b.co\","
			     "\"password\":\"longenough\","
			     "\"password_hash\":\"$argon2id$v=19$x\"}",
			     true, &err),
		     UD_EINVAL);
	cr_assert_str_eq(err.field, "password_hash");
	cr_assert_eq(json_rc("{\"name\":\"A\",\"email\":\"a@b.co\","
			     "\"password\":\"short\"}",
			     true, &err),
		     UD_EINVAL);
	cr_assert_str_eq(err.field, "password");
}

Test(fields, json_duplicates_nul_utf8)
{
	struct ud_error err = {0};
	static const char *fields[] = {"name",	 "email",  "role",
				       "status", "avatar", "id"};
	char body[200];
	size_t i;

	cr_assert_eq(json_rc("{\"name\":\"A\",\"name\":\"B\"}", false, &err),
		     UD_EINVAL);
	cr_assert_eq(json_rc("{\"name\":\"A\\u0000B\"}", false, &err),
		     UD_EINVAL);
	cr_assert(strstr(err.message, "NUL") &&
		      !strstr(err.message, "JSON_ALLOW_NUL"),
		  "the message names the NUL, not a parser flag: %s",
		  err.message);
	cr_assert_eq(ud_fields_from_json("{\"name\":\"A\0B\"}", 14, false,
					 &(struct ud_fields){0},
					 &(struct ud_arena){0}, &err),
		     UD_EINVAL);
	cr_assert_eq(json_rc("{\"name\":\"A\\u0001\"}", false, &err),
		     UD_EINVAL);
	cr_assert_str_eq(err.field, "name");
	cr_assert_eq(json_rc("{\"name\":\"\\ud800\"}", false, &err), UD_EINVAL);
	cr_assert_eq(json_rc("{\"na\xffme\":\"x\"}", false, &err), UD_EINVAL);
	for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		snprintf(body, sizeof(body),
			 "{\"name\":\"A\",\"email\":\"a@b.co\",\"%s\":"
			 "\"http://x.co/\xc3\"}",
			 fields[i]);
		cr_assert_eq(json_rc(body, true, &err), UD_EINVAL, "%s",
			     fields[i]);
		snprintf(body, sizeof(body),
			 "{\"name\":\"A\",\"email\":\"a@b.co\",\"%s\":"
			 "\"http://x.co/\xed\xa0\x80\"}",
			 fields[i]);
		cr_assert_eq(json_rc(body, true, &err), UD_EINVAL, "%s",
			     fields[i]);
	}
	cr_assert_eq(json_rc("{\"custom_data\":{\"k\":\"\xc3\"}}", false, &err),
		     UD_EINVAL);
	cr_assert_eq(json_rc("{\"custom_data\":{\"\xc3\":1}}", false, &err),
		     UD_EINVAL);
}

static char *nested(int depth)
{
	size_t n = 40 + (size_t)depth * 6;
	char *s = malloc(n), *p = s;
	int i;

	p += sprintf(p, "{\"custom_data\":");
	for (i = 0; i < depth - 1; i++)
		p += sprintf(p, "{\"k\":");
	p += sprintf(p, "{}");
	for (i = 0; i < depth - 1; i++)
		*p++ = '}';
	strcpy(p, "}");
	return s;
}

Test(fields, json_depth)
{
	struct ud_error err = {0};
	char *s;

	s = nested(32);
	cr_assert_eq(json_rc(s, false, &err), 0, "%s", err.message);
	free(s);
	s = nested(33);
	cr_assert_eq(json_rc(s, false, &err), UD_EINVAL);
	cr_assert_str_eq(err.field, "custom_data");
	free(s);
	s = nested(1000);
	cr_assert_eq(json_rc(s, false, &err), UD_EINVAL);
	free(s);
	s = nested(100000); /* beyond jansson's own bound */
	cr_assert_eq(json_rc(s, false, &err), UD_EINVAL);
	free(s);
}

Test(fields, json_huge_numbers)
{
	struct ud_error err = {0};

	cr_assert_eq(json_rc("{\"custom_data\":{\"n\":"
			     "123456789012345678901234567890}}",
			     false, &err),
		     UD_EINVAL);
	cr_assert_eq(json_rc("{\"custom_data\":{\"n\":1e999}}", false, &err),
		     UD_EINVAL);
	cr_assert_eq(json_rc("{\"custom_data\":{\"n\":9223372036854775807,"
			     "\"m\":-9223372036854775808,\"r\":1e308}}",
			     false, &err),
		     0, "%s", err.message);
}

Test(fields, json_custom_data_8k)
{
	struct ud_error err = {0};
	char *s = malloc(9000);
	int n;

	/* {"k":"aaa..."} is 8 + len bytes compact. */
	n = sprintf(s, "{\"custom_data\":{\"k\":\"");
	memset(s + n, 'a', 8184);
	strcpy(s + n + 8184, "\"}}");
	cr_assert_eq(json_rc(s, false, &err), 0, "%s", err.message);
	memset(s + n, 'a', 8185);
	strcpy(s + n + 8185, "\"}}");
	cr_assert_eq(json_rc(s, false, &err), UD_EINVAL);
	cr_assert_str_eq(err.field, "custom_data");
	free(s);
}

Test(fields, json_every_prefix)
{
	static const char body[] =
	    "{\"name\":\"Zo\\u00eb\",\"email\":\"z@x.io\",\"avatar\":null,"
	    "\"custom_data\":{\"a\":[1,{\"b\":\"\\n\"}],\"c\":-1.5e3}}";
	struct ud_error err;
	size_t i, len = sizeof(body) - 1;
	char *copy;

	for (i = 0; i < len; i++) {
		struct ud_arena a = {0};
		struct ud_fields f;

		copy = malloc(i ? i : 1); /* exact size: ASan sees overreads */
		memcpy(copy, body, i);
		cr_assert_eq(ud_fields_from_json(copy, i, true, &f, &a, &err),
			     UD_EINVAL, "prefix %zu", i);
		ud_arena_free(&a);
		free(copy);
	}
	cr_assert_eq(json_rc(body, true, &err), 0, "%s", err.message);
}

/* --- msgpack -------------------------------------------------------------- */

static int mp_rc(struct mp *m, bool create, struct ud_fields *f,
		 struct ud_error *err)
{
	struct ud_arena a = {0};
	int rc =
	    ud_fields_from_msgpack(m->b.data, m->b.len, create, f, &a, err);

	ud_arena_free(&a);
	return rc;
}

Test(fields, msgpack_create)
{
	struct ud_error err = {0};
	struct ud_fields f;
	struct mp m;
	size_t i, cd_off, cd_end;

	mp_init(&m);
	msgpack_pack_map(&m.pk, 5);
	mp_str(&m, "name");
	msgpack_pack_bin_with_body(&m.pk, "B\xc3\xa9", 3); /* bin = text */
	mp_str(&m, "email");
	mp_str(&m, "b@c.de");
	mp_str(&m, "avatar");
	msgpack_pack_nil(&m.pk);
	mp_str(&m, "custom_data");
	cd_off = m.b.len;
	msgpack_pack_map(&m.pk, 1);
	mp_str(&m, "x");
	msgpack_pack_array(&m.pk, 2);
	msgpack_pack_true(&m.pk);
	msgpack_pack_double(&m.pk, 0.25);
	cd_end = m.b.len;
	mp_str(&m, "password_hash");
	mp_str(&m,
	       "$argon2id$v=19$m=8,t=1,p=1$c29tZXNhbHQ$aGFzaGhhc2hoYXNoaGFzaA");
	cr_assert_eq(mp_rc(&m, true, &f, &err), 0, "%s", err.message);
	cr_assert(field_is(f.name, f.name_len, "B\xc3\xa9"));
	cr_assert(field_is(f.email, f.email_len, "b@c.de"));
	cr_assert(f.set & UD_F_AVATAR);
	cr_assert_null(f.avatar);
	cr_assert_eq((const char *)f.custom_data, m.b.data + cd_off,
		     "custom_data is borrowed from the input");
	cr_assert_eq(f.custom_data_len, cd_end - cd_off);
	for (i = 0; i < m.b.len; i++) {
		struct ud_arena a = {0};
		char *copy = malloc(i ? i : 1);

		memcpy(copy, m.b.data, i);
		cr_assert_eq(
		    ud_fields_from_msgpack(copy, i, true, &f, &a, &err),
		    UD_EINVAL, "prefix %zu", i);
		free(copy);
	}
	ud_buf_free(&m.b);
}

Test(fields, msgpack_errors)
{
	struct ud_error err = {0};
	struct ud_fields f;
	struct mp m;

	mp_init(&m);
	msgpack_pack_map(&m.pk, 1);
	mp_str(&m, "nickname");
	mp_str(&m, "x");
	cr_assert_eq(mp_rc(&m, false, &f, &err), UD_EINVAL);
	cr_assert_str_eq(err.field, "nickname");
	ud_buf_free(&m.b);

	mp_init(&m);
	msgpack_pack_map(&m.pk, 1);
	mp_str(&m, "name");
	msgpack_pack_int(&m.pk, 7);
	cr_assert_eq(mp_rc(&m, false, &f, &err), UD_EINVAL);
	cr_assert_str_eq(err.message, "name must be a string");
	ud_buf_free(&m.b);

	mp_init(&m);
	msgpack_pack_map(&m.pk, 2);
	mp_str(&m, "name");
	mp_str(&m, "a");
	mp_str(&m, "name");
	mp_str(&m, "b");
	cr_assert_eq(mp_rc(&m, false, &f, &err), UD_EINVAL);
	cr_assert_str_eq(err.field, "name");
	ud_buf_free(&m.b);

	mp_init(&m);
	msgpack_pack_map(&m.pk, 1);
	mp_str(&m, "password");
	mp_str(&m, "longenough");
	cr_assert_eq(mp_rc(&m, false, &f, &err), UD_EINVAL);
	cr_assert_str_eq(err.field, "password");
	ud_buf_free(&m.b);

	mp_init(&m);
	msgpack_pack_map(&m.pk, 1);
	mp_str(&m, "name");
	mp_str(&m, "a\xc3");
	cr_assert_eq(mp_rc(&m, false, &f, &err), UD_EINVAL);
	cr_assert_str_eq(err.field, "name");
	ud_buf_free(&m.b);

	mp_init(&m);
	msgpack_pack_array(&m.pk, 0);
	cr_assert_eq(mp_rc(&m, false, &f, &err), UD_EINVAL);
	ud_buf_free(&m.b);

	mp_init(&m);
	msgpack_pack_map(&m.pk, 0);
	msgpack_pack_nil(&m.pk);
	cr_assert_eq(mp_rc(&m, false, &f, &err), UD_EINVAL, "trailing");
	ud_buf_free(&m.b);
}

Test(fields, validate_direct)
{
	struct ud_error err = {0};
	struct ud_fields f = {0};

	f.set = UD_F_NAME | UD_F_EMAIL | UD_F_ID;
	f.name = "A";
	f.name_len = 1;
	f.email = "a@b.co";
	f.email_len = 6;
	f.id = "usr_ok";
	f.id_len = 6;
	cr_assert_eq(ud_fields_validate(&f, true, &err), 0);
	cr_assert_eq(ud_fields_validate(&f, false, &err), UD_EINVAL);
	cr_assert_str_eq(err.field, "id");
	f.id = "usr_no!";
	f.id_len = 7;
	cr_assert_eq(ud_fields_validate(&f, true, &err), UD_EINVAL);
	cr_assert_str_eq(err.field, "id");
}
