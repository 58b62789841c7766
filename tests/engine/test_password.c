/*
 * test_password.c -- Argon2id hashing, verification of argon2id and argon2i
 * strings, length rules, and the decoy for users without a password.
 */
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>
#include <sodium.h>

#include "password.h"
#include "valid.h"

#define S(lit) lit, sizeof(lit) - 1

static struct ud_options fast(void)
{
	struct ud_options o = {0}; /* only the cost fields matter */

	o.pw_opslimit = crypto_pwhash_OPSLIMIT_MIN;
	o.pw_memlimit = crypto_pwhash_MEMLIMIT_MIN;
	return o;
}

static double now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

Test(password, hash_then_verify)
{
	struct ud_options o = fast();
	struct ud_error err = {0};
	char h[UD_PWHASH_MAX];

	cr_assert_eq(ud_password_hash(&o, S("correct horse"), h, &err), 0);
	cr_assert_eq(strncmp(h, "$argon2id$", 10), 0, "%s", h);
	cr_assert_eq(valid_password_hash(h, strlen(h), &err), 0);
	cr_assert_eq(ud_password_verify(h, S("correct horse")), 1);
	cr_assert_eq(ud_password_verify(h, S("correct horsE")), 0);
	cr_assert_eq(ud_password_verify(h, S("")), 0);
}

Test(password, salted)
{
	struct ud_options o = fast();
	char a[UD_PWHASH_MAX], b[UD_PWHASH_MAX];

	cr_assert_eq(ud_password_hash(&o, S("samepassword"), a, NULL), 0);
	cr_assert_eq(ud_password_hash(&o, S("samepassword"), b, NULL), 0);
	cr_assert_str_neq(a, b);
}

Test(password, length_rules)
{
	struct ud_options o = fast();
	struct ud_error err = {0};
	char h[UD_PWHASH_MAX], pw[300];

	memset(pw, 'p', sizeof(pw));
	cr_assert_eq(ud_password_hash(&o, pw, 7, h, &err), UD_EINVAL);
	cr_assert_str_eq(err.field, "password");
	cr_assert_eq(ud_password_hash(&o, pw, 257, h, &err), UD_EINVAL);
	cr_assert_eq(ud_password_hash(&o, pw, 8, h, &err), 0);
	cr_assert_eq(ud_password_verify(h, pw, 8), 1);
	cr_assert_eq(ud_password_hash(&o, pw, 256, h, &err), 0);
	cr_assert_eq(ud_password_verify(h, pw, 256), 1);
	cr_assert_eq(ud_password_verify(h, pw, 255), 0);
}

Test(password, binary_password_bytes)
{
	struct ud_options o = fast();
	char h[UD_PWHASH_MAX];

	cr_assert_eq(ud_password_hash(&o, "ab\0cdefgh", 9, h, NULL), 0);
	cr_assert_eq(ud_password_verify(h, "ab\0cdefgh", 9), 1);
	cr_assert_eq(ud_password_verify(h, "ab\0cdefgX", 9), 0);
}

Test(password, argon2i_import_verifies)
{
	char h[crypto_pwhash_STRBYTES];

	cr_assert_eq(password_init(), 0);
	cr_assert_eq(crypto_pwhash_str_alg(h, "imported-pw", 11,
					   crypto_pwhash_argon2i_OPSLIMIT_MIN,
					   crypto_pwhash_MEMLIMIT_MIN,
					   crypto_pwhash_ALG_ARGON2I13),
		     0);
	cr_assert_eq(strncmp(h, "$argon2i$", 9), 0);
	cr_assert_eq(valid_password_hash(h, strlen(h), NULL), 0);
	cr_assert_eq(ud_password_verify(h, S("imported-pw")), 1);
	cr_assert_eq(ud_password_verify(h, S("imported-pX")), 0);
}

Test(password, garbage_hash_is_invalid_not_a_crash)
{
	cr_assert_eq(ud_password_verify("$argon2id$garbage", S("whatever1")),
		     0);
	cr_assert_eq(ud_password_verify("not a hash", S("whatever1")), 0);
}

/* One test at the default (INTERACTIVE) cost: hashing works, and the decoy
 * for a missing hash costs about as much as a real verification. */
Test(password, default_cost_and_decoy_timing)
{
	struct ud_error err = {0};
	char h[UD_PWHASH_MAX];
	double t0, real, decoy;

	cr_assert_eq(ud_password_hash(NULL, S("default-cost"), h, &err), 0);
	cr_assert(strstr(h, "m=65536"), "%s", h); /* 64 MiB INTERACTIVE */
	/* First decoy call also builds the decoy; time a second one. */
	cr_assert_eq(ud_password_verify(NULL, S("default-cost")), 0);
	t0 = now_ms();
	cr_assert_eq(ud_password_verify("", S("default-cost")), 0);
	decoy = now_ms() - t0;
	t0 = now_ms();
	cr_assert_eq(ud_password_verify(h, S("wrong-pass")), 0);
	real = now_ms() - t0;
	cr_log_info("verify: real %.1f ms, decoy %.1f ms", real, decoy);
	cr_assert_gt(decoy, real / 3);
	cr_assert_lt(decoy, real * 3 + 20);
}

Test(password, decoy_carries_the_configured_cost)
{
	struct ud_options o = fast();
	char a[UD_PWHASH_MAX], b[UD_PWHASH_MAX];

	cr_assert_eq(ud_password_decoy(&o, a, NULL), 0);
	cr_assert_eq(ud_password_decoy(&o, b, NULL), 0);
	cr_assert_eq(strncmp(a, "$argon2id$", 10), 0, "%s", a);
	/* libsodium encodes the cost: MEMLIMIT_MIN is 8 KiB, OPSLIMIT_MIN 1 */
	cr_assert(strstr(a, "$m=8,t=1,") != NULL, "%s", a);
	cr_assert_str_neq(a, b, "a fresh random password each time");
	cr_assert_eq(ud_password_verify(a, S("")), 0);
	cr_assert_eq(ud_password_verify(a, S("password")), 0);
}
