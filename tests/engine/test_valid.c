/*
 * test_valid.c -- every rule of SPEC §1: the accepted edge and the rejected
 * one next to it.
 */
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>
#include <sodium.h>
#include <msgpack.h>

#include "codec.h"
#include "valid.h"
#include "helper_mp.h"

#define S(lit) lit, sizeof(lit) - 1

static char *repeat(const char *unit, int times)
{
	size_t u = strlen(unit);
	char *s = malloc(u * (size_t)times + 1);
	int i;

	for (i = 0; i < times; i++)
		memcpy(s + u * (size_t)i, unit, u);
	s[u * (size_t)times] = '\0';
	return s;
}

Test(valid, id_edges)
{
	struct ud_error err = {0};
	char id[80] = "usr_";

	cr_assert_eq(valid_id(S("usr_a"), &err), 0);
	cr_assert_eq(valid_id(S("usr_AZaz09_-"), &err), 0);
	memset(id + 4, 'x', 60);
	cr_assert_eq(valid_id(id, 64, &err), 0);
	memset(id + 4, 'x', 61);
	cr_assert_eq(valid_id(id, 65, &err), UD_EINVAL);
	cr_assert_str_eq(err.field, "id");
	cr_assert_eq(valid_id(S("usr_"), &err), UD_EINVAL);
	cr_assert_eq(valid_id(S("usx_abc"), &err), UD_EINVAL);
	cr_assert_eq(valid_id(S("USR_abc"), &err), UD_EINVAL);
	cr_assert_eq(valid_id(S("usr_a.b"), &err), UD_EINVAL);
	cr_assert_eq(valid_id(S("usr_a b"), &err), UD_EINVAL);
	cr_assert_eq(valid_id("usr_a\0b", 7, &err), UD_EINVAL);
	cr_assert_eq(valid_id(S("usr_\xc3\xa9"), &err), UD_EINVAL);
}

Test(valid, name_128_chinese_ok)
{
	struct ud_error err = {0};
	char *s = repeat("\xe4\xb8\xad", 128); /* 中 */
	char *t = repeat("\xe4\xb8\xad", 129);

	cr_assert_eq(valid_name(s, strlen(s), &err), 0);
	cr_assert_eq(valid_name(t, strlen(t), &err), UD_EINVAL);
	cr_assert_str_eq(err.field, "name");
	cr_assert_str_eq(err.message, "name must be 1 to 128 characters");
	free(s);
	free(t);
}

Test(valid, name_length_edges)
{
	struct ud_error err = {0};
	char *a128 = repeat("a", 128), *a129 = repeat("a", 129);
	char *e4 = repeat("\xf0\x9f\x98\x80", 128); /* 128 emoji, 512 bytes */

	cr_assert_eq(valid_name(S("a"), &err), 0);
	cr_assert_eq(valid_name("", 0, &err), UD_EINVAL);
	cr_assert_eq(valid_name(a128, 128, &err), 0);
	cr_assert_eq(valid_name(a129, 129, &err), UD_EINVAL);
	cr_assert_eq(valid_name(e4, 512, &err), 0);
	free(a128);
	free(a129);
	free(e4);
}

Test(valid, name_bad_utf8)
{
	static const char *bad[] = {
	    "\xc0\xaf",		/* overlong '/' */
	    "\xe0\x80\xaf",	/* overlong */
	    "\xf0\x80\x80\xaf", /* overlong */
	    "\xed\xa0\x80",	/* surrogate D800 */
	    "\xed\xbf\xbf",	/* surrogate DFFF */
	    "\xf4\x90\x80\x80", /* > U+10FFFF */
	    "\xf5\x80\x80\x80",
	    "\xe4\xb8", /* truncated */
	    "\x80",	/* lone continuation */
	    "ab\xff",
	};
	struct ud_error err = {0};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(valid_name(bad[i], strlen(bad[i]), &err),
			     UD_EINVAL, "case %zu", i);
		cr_assert_str_eq(err.message, "name must be valid UTF-8");
	}
	/* The accepted edges next to them. */
	cr_assert_eq(valid_name(S("\xed\x9f\xbf"), &err), 0);	  /* U+D7FF */
	cr_assert_eq(valid_name(S("\xee\x80\x80"), &err), 0);	  /* U+E000 */
	cr_assert_eq(valid_name(S("\xf4\x8f\xbf\xbf"), &err), 0); /* 10FFFF */
	cr_assert_eq(valid_name(S("\xc2\xa0x"), &err), 0);	  /* A0 */
}

Test(valid, name_controls)
{
	struct ud_error err = {0};

	cr_assert_eq(valid_name("a\0b", 3, &err), UD_EINVAL);
	cr_assert_str_eq(err.message,
			 "name must not contain control characters");
	cr_assert_eq(valid_name(S("a\tb"), &err), UD_EINVAL);
	cr_assert_eq(valid_name(S("a\nb"), &err), UD_EINVAL);
	cr_assert_eq(valid_name(S("a\x1f"), &err), UD_EINVAL);
	cr_assert_eq(valid_name(S("a\x7f"), &err), UD_EINVAL);
	cr_assert_eq(valid_name(S("a\xc2\x80"), &err), UD_EINVAL); /* C1 */
	cr_assert_eq(valid_name(S("a\xc2\x9f"), &err), UD_EINVAL); /* C1 */
	cr_assert_eq(valid_name(S("a b~"), &err), 0);
	cr_assert_eq(valid_name(S("Zoë Ωμέγα Тест"), &err), 0);
}

Test(valid, email_edges)
{
	struct ud_error err = {0};
	char buf[300];

	cr_assert_eq(valid_email(S("a@b.co"), &err), 0);
	cr_assert_eq(valid_email(S("A.B+tag@Sub.Example.COM"), &err), 0);
	cr_assert_eq(valid_email(S("j\xc3\xb6rg@m\xc3\xbcller.de"), &err), 0);
	cr_assert_eq(valid_email(S(""), &err), UD_EINVAL);
	cr_assert_str_eq(err.field, "email");
	cr_assert_eq(valid_email(S("ab.co"), &err), UD_EINVAL);
	cr_assert_eq(valid_email(S("@b.co"), &err), UD_EINVAL);
	cr_assert_eq(valid_email(S("a@"), &err), UD_EINVAL);
	cr_assert_eq(valid_email(S("a@b@c.co"), &err), UD_EINVAL);
	cr_assert_eq(valid_email(S("a@bco"), &err), UD_EINVAL);
	cr_assert_eq(valid_email(S("a@.bco"), &err), UD_EINVAL);
	cr_assert_eq(valid_email(S("a@bco."), &err), UD_EINVAL);
	cr_assert_eq(valid_email(S("a@b..co"), &err), UD_EINVAL);
	cr_assert_eq(valid_email(S("a b@c.co"), &err), UD_EINVAL);
	cr_assert_eq(valid_email(S("ab@c.co "), &err), UD_EINVAL);
	cr_assert_eq(valid_email(S("a\xc2\xa0"
				   "b@c.co"),
				 &err),
		     UD_EINVAL); /* NBSP */
	cr_assert_eq(valid_email(S("a\tb@c.co"), &err), UD_EINVAL);
	cr_assert_eq(valid_email("a\0b@c.co", 8, &err), UD_EINVAL);
	cr_assert_eq(valid_email(S("a\xff@c.co"), &err), UD_EINVAL);
	/* 254 bytes accepted, 255 refused. */
	memset(buf, 'a', sizeof(buf));
	memcpy(buf + 254 - 6, "@b.com", 6);
	cr_assert_eq(valid_email(buf, 254, &err), 0);
	memcpy(buf + 255 - 6, "@b.com", 6);
	cr_assert_eq(valid_email(buf, 255, &err), UD_EINVAL);
	cr_assert_str_eq(err.message, "email must be at most 254 bytes");
}

Test(valid, role_status_names)
{
	cr_assert_eq(ud_role_parse(S("admin")), UD_ROLE_ADMIN);
	cr_assert_eq(ud_role_parse(S("user")), UD_ROLE_USER);
	cr_assert_eq(ud_role_parse(S("viewer")), UD_ROLE_VIEWER);
	cr_assert_eq(ud_role_parse(S("Admin")), -1);
	cr_assert_eq(ud_role_parse(S("admins")), -1);
	cr_assert_eq(ud_role_parse(S("")), -1);
	cr_assert_eq(ud_status_parse(S("active")), UD_STATUS_ACTIVE);
	cr_assert_eq(ud_status_parse(S("inactive")), UD_STATUS_INACTIVE);
	cr_assert_eq(ud_status_parse(S("suspended")), UD_STATUS_SUSPENDED);
	cr_assert_eq(ud_status_parse(S("ACTIVE")), -1);
	cr_assert_eq(ud_status_parse("active", 5), -1);
	cr_assert_str_eq(ud_role_name(UD_ROLE_VIEWER), "viewer");
	cr_assert_null(ud_role_name(3));
	cr_assert_null(ud_role_name(-1));
	cr_assert_str_eq(ud_status_name(UD_STATUS_SUSPENDED), "suspended");
	cr_assert_null(ud_status_name(3));
}

Test(valid, event_names)
{
	static const char *want[] = {
	    "user.created",	      "user.updated",
	    "user.deleted",	      "user.password_changed",
	    "user.password_verified", "user.suspended",
	    "user.unsuspended",	      "user.identity_linked",
	    "user.identity_removed",
	};
	int i;

	for (i = 0; i < UD_EV__COUNT; i++)
		cr_assert_str_eq(ud_event_name(i), want[i]);
	cr_assert_null(ud_event_name(UD_EV__COUNT));
	cr_assert_null(ud_event_name(-1));
}

Test(valid, avatar_edges)
{
	struct ud_error err = {0};
	char *big;

	cr_assert_eq(valid_avatar(NULL, 0, &err), 0);
	cr_assert_eq(valid_avatar(S("http://x"), &err), 0);
	cr_assert_eq(valid_avatar(S("https://cdn.example.com/a.png?s=1"), &err),
		     0);
	cr_assert_eq(valid_avatar(S("HTTPS://EXAMPLE.COM/A"), &err), 0);
	cr_assert_eq(valid_avatar(S("http://u:p@h:8080/x"), &err), 0);
	cr_assert_eq(valid_avatar(S("http://[::1]/x"), &err), 0);
	cr_assert_eq(valid_avatar(S("http://"), &err), UD_EINVAL);
	cr_assert_str_eq(err.field, "avatar");
	cr_assert_eq(valid_avatar(S("https:///path"), &err), UD_EINVAL);
	cr_assert_eq(valid_avatar(S("http://:80/"), &err), UD_EINVAL);
	cr_assert_eq(valid_avatar(S("http://u@/"), &err), UD_EINVAL);
	cr_assert_eq(valid_avatar(S("http://[]/"), &err), UD_EINVAL);
	cr_assert_eq(valid_avatar(S("ftp://x.com/a"), &err), UD_EINVAL);
	cr_assert_eq(valid_avatar(S("javascript:alert(1)"), &err), UD_EINVAL);
	cr_assert_eq(valid_avatar(S("//x.com/a"), &err), UD_EINVAL);
	cr_assert_eq(valid_avatar(S("http://x.com/a b"), &err), UD_EINVAL);
	cr_assert_eq(valid_avatar(S("http://x.com/\n"), &err), UD_EINVAL);
	cr_assert_eq(valid_avatar(S(""), &err), UD_EINVAL);
	big = malloc(2100);
	memcpy(big, "https://x.co/", 13);
	memset(big + 13, 'a', 2100 - 13);
	cr_assert_eq(valid_avatar(big, 2048, &err), 0);
	cr_assert_eq(valid_avatar(big, 2049, &err), UD_EINVAL);
	free(big);
}

/* Found by fuzz_rpc: the host part was found with strcspn, reading past
 * an avatar that is not NUL-terminated (a string inside an RPC frame).
 * The URL here is alone in an exact-size allocation, so ASan sees any read
 * beyond it; the byte after it would otherwise end the host early. */
Test(valid, avatar_not_nul_terminated)
{
	struct ud_error err = {0};
	static const char url[] = "https://x";
	char *p = malloc(sizeof url - 1);

	memcpy(p, url, sizeof url - 1);
	cr_assert_eq(valid_avatar(p, sizeof url - 1, &err), 0);
	cr_assert_eq(valid_avatar(p, 8, &err), UD_EINVAL); /* "https://" */
	free(p);
	cr_assert_eq(valid_avatar(S("https://h/x"), &err), 0);
	cr_assert_eq(valid_avatar("https://?h/x", 12, &err), UD_EINVAL);
	cr_assert_eq(valid_avatar("https://h#/x", 12, &err), 0);
}

Test(valid, password_edges)
{
	struct ud_error err = {0};

	cr_assert_eq(valid_password(8, &err), 0);
	cr_assert_eq(valid_password(256, &err), 0);
	cr_assert_eq(valid_password(7, &err), UD_EINVAL);
	cr_assert_str_eq(err.field, "password");
	cr_assert_eq(valid_password(257, &err), UD_EINVAL);
	cr_assert_eq(valid_password(0, &err), UD_EINVAL);
}

Test(valid, password_hash_edges)
{
	struct ud_error err = {0};
	const char *h = "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$"
			"RdescudvJCsgt3ub+b+dWRWJTmaaJObG";
	const char *head =
	    "$argon2id$v=19$m=16,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$";
	char made[crypto_pwhash_STRBYTES], big[200];

	cr_assert_eq(valid_password_hash(h, strlen(h), &err), 0, "%s",
		     err.message);
	cr_assert_eq(crypto_pwhash_str_alg(made, "pw", 2,
					   crypto_pwhash_argon2i_OPSLIMIT_MIN,
					   crypto_pwhash_MEMLIMIT_MIN,
					   crypto_pwhash_ALG_ARGON2I13),
		     0);
	cr_assert_eq(valid_password_hash(made, strlen(made), &err), 0, "%s",
		     made);
	cr_assert_eq(valid_password_hash(S("$argon2d$v=19$x"), &err),
		     UD_EINVAL);
	cr_assert_str_eq(err.field, "password_hash");
	cr_assert_eq(valid_password_hash(S("$2b$10$abc"), &err), UD_EINVAL);
	cr_assert_eq(valid_password_hash(S("$argon2id$"), &err), UD_EINVAL);
	cr_assert_eq(valid_password_hash(S("$argon2id$ x"), &err), UD_EINVAL);
	cr_assert_eq(valid_password_hash(S("$argon2id$\xc3\xa9"), &err),
		     UD_EINVAL);
	/* the right prefix is not enough: libsodium must parse the rest */
	cr_assert_eq(valid_password_hash(S("$argon2i$xyz"), &err), UD_EINVAL);
	cr_assert_eq(
	    valid_password_hash(S("$argon2id$v=19$m=8,t=1,p=1$garbage"), &err),
	    UD_EINVAL);
	cr_assert_eq(
	    valid_password_hash(S("$argon2i$v=19$m=4096,t=3,p=1$x$y"), &err),
	    UD_EINVAL);
	cr_assert_eq(
	    valid_password_hash(S("$argon2id$v=16$m=65536,t=2,p=1$c29tZXNhbHQ$"
				  "RdescudvJCsgt3ub+b+dWRWJTmaaJObG"),
				&err),
	    UD_EINVAL);
	/* the cost of one verification is bounded (sensitive preset) */
	cr_assert_eq(valid_password_hash(
			 S("$argon2id$v=19$m=1048576,t=4,p=1$c29tZXNhbHQ$"
			   "RdescudvJCsgt3ub+b+dWRWJTmaaJObG"),
			 &err),
		     0, "%s", err.message);
	cr_assert_eq(valid_password_hash(
			 S("$argon2id$v=19$m=1048576,t=5,p=1$c29tZXNhbHQ$"
			   "RdescudvJCsgt3ub+b+dWRWJTmaaJObG"),
			 &err),
		     UD_EINVAL);
	cr_assert(strstr(err.message, "too much"), "%s", err.message);
	cr_assert_eq(valid_password_hash(
			 S("$argon2id$v=19$m=65536,t=300000,p=1$c29tZXNhbHQ$"
			   "RdescudvJCsgt3ub+b+dWRWJTmaaJObG"),
			 &err),
		     UD_EINVAL);
	cr_assert_eq(
	    valid_password_hash(S("$argon2id$v=19$m=65536,t=2,p=17$c29tZXNhbHQ$"
				  "RdescudvJCsgt3ub+b+dWRWJTmaaJObG"),
				&err),
	    UD_EINVAL);
	/* length: 127 bytes (a 57-byte hash) is taken, 128 is not */
	memset(big, 'A', sizeof(big));
	memcpy(big, head, strlen(head));
	cr_assert_eq(valid_password_hash(big, 127, &err), 0, "%s", err.message);
	cr_assert_eq(valid_password_hash(big, 128, &err), UD_EINVAL);
}

Test(valid, identity_edges)
{
	struct ud_error err = {0};
	char t[70];

	cr_assert_eq(valid_identity(S("github"), S("12345"), &err), 0);
	cr_assert_eq(valid_identity(S("my-idp.v2_x"), S("\xe4\xb8\xad"), &err),
		     0);
	cr_assert_eq(valid_identity(S(""), S("1"), &err), UD_EINVAL);
	cr_assert_str_eq(err.field, "target");
	cr_assert_eq(valid_identity(S("git hub"), S("1"), &err), UD_EINVAL);
	cr_assert_eq(valid_identity(S("a/b"), S("1"), &err), UD_EINVAL);
	memset(t, 'a', sizeof(t));
	cr_assert_eq(valid_identity(t, 64, S("1"), &err), 0);
	cr_assert_eq(valid_identity(t, 65, S("1"), &err), UD_EINVAL);
	cr_assert_eq(valid_identity(S("github"), S(""), &err), UD_EINVAL);
	cr_assert_str_eq(err.field, "user_id");
	cr_assert_eq(valid_identity(S("github"), S("a\xff"), &err), UD_EINVAL);
}

Test(valid, unknown_key_names_it)
{
	struct ud_error err = {0};

	cr_assert_eq(valid_unknown_key("field", S("nickname"), &err),
		     UD_EINVAL);
	cr_assert_str_eq(err.field, "nickname");
	cr_assert_str_eq(err.message, "unknown field: nickname");
	cr_assert_eq(valid_unknown_key("field", S("a\x01\xc3\xa9"), &err),
		     UD_EINVAL);
	cr_assert_str_eq(err.field, "a???");
	cr_assert_eq(valid_unknown_key("field", S("x"), NULL), UD_EINVAL);
}

/* --- msgpack objects ---------------------------------------------------- */

Test(valid, mp_object_shapes)
{
	struct ud_error err = {0};
	struct mp m;

	mp_init(&m);
	msgpack_pack_map(&m.pk, 0);
	cr_assert_eq(valid_mp_object(m.b.data, m.b.len, "custom_data", &err),
		     0);
	/* trailing byte */
	msgpack_pack_nil(&m.pk);
	cr_assert_eq(valid_mp_object(m.b.data, m.b.len, "custom_data", &err),
		     UD_EINVAL);
	cr_assert_str_eq(err.field, "custom_data");
	ud_buf_free(&m.b);

	mp_init(&m);
	msgpack_pack_array(&m.pk, 0);
	cr_assert_eq(valid_mp_object(m.b.data, m.b.len, "custom_data", &err),
		     UD_EINVAL);
	cr_assert_str_eq(err.message, "custom_data must be an object");
	ud_buf_free(&m.b);

	/* non-string key, nested */
	mp_init(&m);
	msgpack_pack_map(&m.pk, 1);
	mp_str(&m, "a");
	msgpack_pack_map(&m.pk, 1);
	msgpack_pack_int(&m.pk, 1);
	msgpack_pack_int(&m.pk, 2);
	cr_assert_eq(valid_mp_object(m.b.data, m.b.len, "details", &err),
		     UD_EINVAL);
	cr_assert_str_eq(err.field, "details");
	cr_assert_str_eq(err.message, "details must have string keys");
	/* truncated: every proper prefix is refused */
	for (size_t i = 0; i < m.b.len; i++)
		cr_assert_eq(valid_mp_object(m.b.data, i, "details", &err),
			     UD_EINVAL);
	ud_buf_free(&m.b);
}

Test(valid, mp_object_rejects_non_json)
{
	struct ud_error err = {0};
	struct mp m;
	int kind;

	for (kind = 0; kind < 4; kind++) {
		mp_init(&m);
		msgpack_pack_map(&m.pk, 1);
		mp_str(&m, "k");
		if (kind == 0)
			msgpack_pack_bin_with_body(&m.pk, "x", 1);
		else if (kind == 1)
			msgpack_pack_ext_with_body(&m.pk, "x", 1, 5);
		else if (kind == 2)
			msgpack_pack_double(&m.pk, 1.0 / 0.0);
		else
			msgpack_pack_str_with_body(&m.pk, "\xff", 1);
		cr_assert_eq(
		    valid_mp_object(m.b.data, m.b.len, "custom_data", &err),
		    UD_EINVAL, "kind %d", kind);
		ud_buf_free(&m.b);
	}
}

static void pack_nested(struct mp *m, int depth)
{
	int i;

	for (i = 0; i < depth - 1; i++) {
		msgpack_pack_map(&m->pk, 1);
		mp_str(m, "k");
	}
	msgpack_pack_map(&m->pk, 0);
}

Test(valid, mp_object_depth_32_ok_33_not)
{
	struct ud_error err = {0};
	struct mp m;

	mp_init(&m);
	pack_nested(&m, 32);
	cr_assert_eq(valid_mp_object(m.b.data, m.b.len, "custom_data", &err),
		     0);
	ud_buf_free(&m.b);
	mp_init(&m);
	pack_nested(&m, 33);
	cr_assert_eq(valid_mp_object(m.b.data, m.b.len, "custom_data", &err),
		     UD_EINVAL);
	ud_buf_free(&m.b);
	mp_init(&m);
	pack_nested(&m, 100000); /* no stack overflow */
	cr_assert_eq(valid_mp_object(m.b.data, m.b.len, "custom_data", &err),
		     UD_EINVAL);
	ud_buf_free(&m.b);
}

/* {"k": "<n x 'a'>"} is 8 + n bytes of JSON. */
Test(valid, mp_object_8k_json_bound)
{
	struct ud_error err = {0};
	char *s = repeat("a", 8192);
	struct mp m;

	mp_init(&m);
	msgpack_pack_map(&m.pk, 1);
	mp_str(&m, "k");
	msgpack_pack_str_with_body(&m.pk, s, 8192 - 8);
	cr_assert_eq(valid_mp_object(m.b.data, m.b.len, "custom_data", &err),
		     0);
	ud_buf_free(&m.b);
	mp_init(&m);
	msgpack_pack_map(&m.pk, 1);
	mp_str(&m, "k");
	msgpack_pack_str_with_body(&m.pk, s, 8192 - 7);
	cr_assert_eq(valid_mp_object(m.b.data, m.b.len, "custom_data", &err),
		     UD_EINVAL);
	ud_buf_free(&m.b);
	/* Escapes count: 4100 newlines are 8208 JSON bytes, 4106 msgpack. */
	memset(s, '\n', 4100);
	mp_init(&m);
	msgpack_pack_map(&m.pk, 1);
	mp_str(&m, "k");
	msgpack_pack_str_with_body(&m.pk, s, 4100);
	cr_assert_eq(valid_mp_object(m.b.data, m.b.len, "custom_data", &err),
		     UD_EINVAL);
	cr_assert(strstr(err.message, "as JSON"));
	ud_buf_free(&m.b);
	free(s);
}

/* A key twice in one map, at any depth, is refused naming the field (JSON
 * readers keep one of the two); equal keys in different maps are fine. */
Test(valid, mp_object_rejects_duplicate_keys)
{
	struct ud_error err = {0};
	struct mp m;
	int depth, n;

	for (depth = 0; depth < 3; depth++) {
		mp_init(&m);
		for (n = 0; n < depth; n++) { /* {"x": {"x": ...}} */
			msgpack_pack_map(&m.pk, 2);
			mp_str(&m, "y");
			msgpack_pack_int(&m.pk, 1);
			mp_str(&m, "x");
		}
		msgpack_pack_map(&m.pk, 3);
		mp_str(&m, "dup");
		msgpack_pack_int(&m.pk, 1);
		mp_str(&m, "other");
		msgpack_pack_int(&m.pk, 2);
		mp_str(&m, "dup");
		msgpack_pack_int(&m.pk, 3);
		cr_assert_eq(
		    valid_mp_object(m.b.data, m.b.len, "custom_data", &err),
		    UD_EINVAL, "depth %d", depth);
		cr_assert_str_eq(err.field, "custom_data");
		cr_assert(strstr(err.message, "\"dup\" more than once"), "%s",
			  err.message);
		cr_assert_eq(
		    valid_mp_object(m.b.data, m.b.len, "details", &err),
		    UD_EINVAL);
		cr_assert_str_eq(err.field, "details");
		ud_buf_free(&m.b);
	}
	/* many keys (the sorted path), one repeated far apart */
	mp_init(&m);
	msgpack_pack_map(&m.pk, 40);
	for (n = 0; n < 40; n++) {
		char k[8];

		snprintf(k, sizeof(k), "k%d", n == 39 ? 3 : n);
		mp_str(&m, k);
		msgpack_pack_nil(&m.pk);
	}
	cr_assert_eq(valid_mp_object(m.b.data, m.b.len, "custom_data", &err),
		     UD_EINVAL);
	cr_assert(strstr(err.message, "\"k3\""), "%s", err.message);
	ud_buf_free(&m.b);
	/* the same keys in sibling maps, and keys that share a prefix */
	mp_init(&m);
	msgpack_pack_map(&m.pk, 3);
	mp_str(&m, "a");
	msgpack_pack_map(&m.pk, 1);
	mp_str(&m, "k");
	msgpack_pack_nil(&m.pk);
	mp_str(&m, "b");
	msgpack_pack_map(&m.pk, 1);
	mp_str(&m, "k");
	msgpack_pack_nil(&m.pk);
	mp_str(&m, "ab");
	msgpack_pack_nil(&m.pk);
	cr_assert_eq(valid_mp_object(m.b.data, m.b.len, "custom_data", &err), 0,
		     "%s", err.message);
	ud_buf_free(&m.b);
}

/* jansson cannot hold NUL in an object key: refused when checking. */
Test(valid, mp_object_rejects_nul_in_keys)
{
	struct ud_error err = {0};
	struct mp m;

	mp_init(&m);
	msgpack_pack_map(&m.pk, 1);
	msgpack_pack_str_with_body(&m.pk, "a\0b", 3);
	msgpack_pack_nil(&m.pk);
	cr_assert_eq(valid_mp_object(m.b.data, m.b.len, "custom_data", &err),
		     UD_EINVAL);
	cr_assert(strstr(err.message, "NUL"), "%s", err.message);
	ud_buf_free(&m.b);
	/* a NUL in a value is fine (JSON \u0000) */
	mp_init(&m);
	msgpack_pack_map(&m.pk, 1);
	mp_str(&m, "k");
	msgpack_pack_str_with_body(&m.pk, "a\0b", 3);
	cr_assert_eq(valid_mp_object(m.b.data, m.b.len, "custom_data", &err),
		     0);
	ud_buf_free(&m.b);
}
