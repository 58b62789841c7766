/*
 * test_pwpack.c -- packed password hashes: exact round trips of what
 * libsodium writes, and refusal of everything that would not come back
 * byte for byte.
 */
#include <criterion/criterion.h>
#include <sodium.h>
#include <string.h>

#include "helper_db.h"
#include "pwpack.h"

static void round_trip(const char *s)
{
	uint8_t b[PWPACK_MAX];
	char back[UD_PWHASH_MAX];
	size_t n = pwpack_encode(s, strlen(s), b);

	cr_assert_gt(n, 0, "%s packs", s);
	cr_assert_lt(n, strlen(s), "%s: packed is smaller", s);
	cr_assert_eq(pwpack_decode(b, n, back), strlen(s));
	cr_assert_str_eq(back, s);
}

Test(pwpack, libsodium_hashes_round_trip_exactly)
{
	static const struct {
		int alg;
		unsigned long long ops;
		size_t mem;
	} cost[] = {
	    {crypto_pwhash_ALG_ARGON2ID13, 1, 8192},
	    {crypto_pwhash_ALG_ARGON2ID13, 2, 67108864},
	    {crypto_pwhash_ALG_ARGON2ID13, 4, 1u << 20},
	    {crypto_pwhash_ALG_ARGON2I13, 3, 1u << 15},
	};
	char h[crypto_pwhash_STRBYTES];

	cr_assert_geq(sodium_init(), 0);
	for (size_t i = 0; i < sizeof(cost) / sizeof(cost[0]); i++) {
		cr_assert_eq(crypto_pwhash_str_alg(h, "pw", 2, cost[i].ops,
						   cost[i].mem, cost[i].alg),
			     0);
		round_trip(h);
	}
	/* libsodium's interactive cost: 97 bytes -> 56 */
	uint8_t b[PWPACK_MAX];
	const char *s = "$argon2id$v=19$m=65536,t=2,p=1$"
			"AAAAAAAAAAAAAAAAAAAAAA$"
			"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
	cr_assert_eq(strlen(s), 97);
	cr_assert_eq(pwpack_encode(s, strlen(s), b), 56);
	round_trip("$argon2id$v=19$m=4294967295,t=4294967295,p=255$"
		   "AQ$AQID");
}

Test(pwpack, non_canonical_text_stays_text)
{
	static const char *const bad[] = {
	    "",
	    "$argon2d$v=19$m=8,t=1,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAA",
	    "$argon2id$v=19$m=08,t=1,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAA",
	    "$argon2id$v=19$t=1,m=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAA",
	    "$argon2id$v=19$m=8,t=1,p=1$AAAAAAAAAAAAAAAAAAAAAA==$AAAA",
	    "$argon2id$v=19$m=8,t=1,p=1$AAAAAAAAAAAAAAAAAAAAAB$AAAA",
	    "$argon2id$v=19$m=8,t=1,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAA$",
	    "$argon2id$v=19$m=8,t=1,p=1$$AAAA",
	    "$argon2id$v=19$m=8,t=1,p=1$AAAA$",
	    "$argon2id$v=19$m=4294967296,t=1,p=1$AAAA$AAAA",
	    "$argon2id$m=8,t=1,p=1$AAAA$AAAA",
	    "$argon2id$v=19$m=8,t=1,p=1$AA AA$AAAA",
	};
	uint8_t b[PWPACK_MAX];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(pwpack_encode(bad[i], strlen(bad[i]), b), 0, "%s",
			     bad[i]);
}

/* Any one-character change of a real hash either packs and comes back
 * exactly, or stays text: never packs into something else. */
Test(pwpack, every_changed_character_packs_exactly_or_not_at_all)
{
	static const char alphabet[] = "$=,+/09AZaz-_ .\x01\xff";
	char h[crypto_pwhash_STRBYTES], back[UD_PWHASH_MAX];
	uint8_t b[PWPACK_MAX];

	cr_assert_geq(sodium_init(), 0);
	cr_assert_eq(crypto_pwhash_str_alg(h, "pw", 2, 1, 8192,
					   crypto_pwhash_ALG_ARGON2ID13),
		     0);
	size_t len = strlen(h);
	for (size_t i = 0; i < len; i++) {
		char keep = h[i];
		for (const char *c = alphabet; *c; c++) {
			h[i] = *c;
			size_t n = pwpack_encode(h, len, b);
			if (n) {
				cr_assert_eq(pwpack_decode(b, n, back), len);
				cr_assert_eq(memcmp(back, h, len), 0);
			}
		}
		h[i] = keep;
	}
}

Test(pwpack, damaged_packed_bytes_are_refused_or_bounded)
{
	char back[UD_PWHASH_MAX];
	uint8_t b[PWPACK_MAX] = {0};

	cr_assert_eq(pwpack_decode(b, 0, back), 0);
	b[0] = 3; /* no such algorithm */
	cr_assert_eq(pwpack_decode(b, 10, back), 0);
	/* a salt length past the end */
	memcpy(b, "\x01\x13\x08\x01\x01\x40xx", 8);
	cr_assert_eq(pwpack_decode(b, 8, back), 0);
	/* a varint that never ends */
	memset(b, 0xff, sizeof(b));
	b[0] = 1;
	cr_assert_eq(pwpack_decode(b, sizeof(b), back), 0);
	/* too long to print in UD_PWHASH_MAX */
	memcpy(b, "\x01\x13\x08\x01\x01\x10", 6);
	memset(b + 6, 7, sizeof(b) - 6);
	cr_assert_eq(pwpack_decode(b, sizeof(b), back), 0);
}

/* One text, one packed form: a varint padded with a last 0x00 byte (the
 * fuzzer's find: "v=19" as 0x93 0x00 decoded to the text whose packing is
 * 0x13) is refused, so a record cannot hold a second spelling. */
Test(pwpack, a_padded_varint_is_refused)
{
	char back[UD_PWHASH_MAX];
	uint8_t ok[] = {1, 0x13, 8, 1, 1, 1, 's', 'h'};
	uint8_t padded[] = {1, 0x93, 0x00, 8, 1, 1, 1, 's', 'h'};
	uint8_t zero[] = {1, 0x13, 8, 0, 1, 1, 's', 'h'};
	uint8_t b[PWPACK_MAX];
	size_t n = pwpack_decode(ok, sizeof ok, back);

	cr_assert_gt(n, 0);
	cr_assert_eq(pwpack_encode(back, n, b), sizeof ok);
	cr_assert_eq(memcmp(b, ok, sizeof ok), 0);
	cr_assert_eq(pwpack_decode(padded, sizeof padded, back), 0);
	cr_assert_gt(pwpack_decode(zero, sizeof zero, back), 0,
		     "0 is one byte");
}

/* The store keeps a packable hash packed and gives back the same text:
 * after an import, a password change, and in its change records. */
Test(pwpack, the_store_gives_back_the_text_it_was_given)
{
	static const char hash[] =
	    "$argon2id$v=19$m=8,t=1,p=1$"
	    "hdwIxmpRR6gobzMlBvv6ew$"
	    "c4sJpi6PQPgCNtt31ty19y1lNL1D7CCZFr8YX2ge/q8";
	ud_db *db = hdb_new(NULL), *mirror = hdb_new(NULL);
	struct hdb_mirror m = {.db = mirror};
	struct ud_fields f = hdb_fields("Ann", "ann@example.com");
	char out[UD_PWHASH_MAX], id[UD_ID_MAX + 1];
	const ud_user *u;
	bool ok;

	ud_db_set_journal(db, hdb_mirror_cb, &m);
	hdb_set(&f, UD_F_PASSWORD_HASH, hash);
	cr_assert_eq(ud_user_create(db, &f, &u, NULL), 0);
	hdb_id(u, id);
	cr_assert_eq(ud_user_password_hash_copy(db, id, strlen(id), out), 0);
	cr_assert_str_eq(out, hash);
	cr_assert_eq(ud_user_password_hash_copy(mirror, id, strlen(id), out),
		     0);
	cr_assert_str_eq(out, hash, "the change record carried the text");
	cr_assert_eq(ud_user_set_password(db, id, strlen(id), "longenough", 10,
					  NULL, NULL),
		     0);
	cr_assert_eq(ud_user_verify_password(db, id, strlen(id), "longenough",
					     10, &ok, NULL),
		     0);
	cr_assert(ok);
	cr_assert_eq(ud_user_verify_password(mirror, id, strlen(id),
					     "longenough", 10, &ok, NULL),
		     0);
	cr_assert(ok);
	hdb_check(db);
	hdb_check(mirror);
	ud_db_free(db);
	ud_db_free(mirror);
	ud_buf_free(&m.last);
}
