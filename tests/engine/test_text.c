/*
 * test_text.c -- UTF-8 decoding, case folding, the folded hash/equality/
 * substring search, generated ids.
 */
#define _GNU_SOURCE /* memmem */
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>

#include "text.h"
#include "userdb.h"

#define S(lit) lit, sizeof(lit) - 1

static const char *fold(const char *s, char *out, size_t cap)
{
	size_t n = text_fold(s, strlen(s), out, cap - 1);

	cr_assert_lt(n, cap);
	out[n] = '\0';
	return out;
}

Test(text, utf8_count)
{
	cr_assert_eq(utf8_count(S("")), 0);
	cr_assert_eq(utf8_count(S("abc")), 3);
	cr_assert_eq(utf8_count(S("\xe4\xb8\xad\xe6\x96\x87")), 2);
	cr_assert_eq(utf8_count(S("\xf0\x9f\x98\x80")), 1);
	cr_assert_eq(utf8_count(S("\xc0\x80")), -1);
	cr_assert_eq(utf8_count(S("\xed\xa0\x80")), -1);
	cr_assert_eq(utf8_count(S("\xf4\x90\x80\x80")), -1);
	cr_assert_eq(utf8_count(S("\xe4\xb8")), -1);
	cr_assert_eq(utf8_count("a\0b", 3), 3);
}

Test(text, fold_ascii_and_unicode)
{
	char out[64];

	cr_assert_str_eq(fold("Hello@Example.COM", out, sizeof(out)),
			 "hello@example.com");
	cr_assert_str_eq(fold("\xc3\x89"
			      "COLE",
			      out, sizeof(out)),
			 "\xc3\xa9"
			 "cole"); /* ÉCOLE -> école */
	cr_assert_str_eq(fold("\xd0\x9f\xd0\xa0\xd0\x98", out, sizeof(out)),
			 "\xd0\xbf\xd1\x80\xd0\xb8"); /* ПРИ -> при */
	cr_assert_str_eq(fold("\xce\xa3\xce\x9f", out, sizeof(out)),
			 "\xcf\x83\xce\xbf"); /* ΣΟ -> σο */
	cr_assert_str_eq(fold("Stra\xc3\x9f"
			      "e",
			      out, sizeof(out)),
			 "strasse"); /* full folding: ß -> ss */
	cr_assert_str_eq(fold("\xe4\xb8\xad", out, sizeof(out)),
			 "\xe4\xb8\xad"); /* no case */
	cr_assert_str_eq(fold("a\xff"
			      "B",
			      out, sizeof(out)),
			 "a\xff"
			 "b"); /* invalid bytes kept */
}

Test(text, fold_reports_needed_length)
{
	char out[4];
	size_t n = text_fold(S("ABCDEFGH"), out, sizeof(out));

	cr_assert_eq(n, 8);
	cr_assert_eq(memcmp(out, "abcd", 4), 0);
	n = text_fold(S("\xc3\x9f\xc3\x9f\xc3\x9f"), out, sizeof(out));
	cr_assert_eq(n, 6);
	cr_assert_eq(memcmp(out, "ssss", 4), 0);
}

Test(text, fold_hash_and_equal)
{
	cr_assert_eq(text_fold_hash(S("A@X.com")),
		     text_fold_hash(S("a@x.COM")));
	cr_assert_neq(text_fold_hash(S("a@x.com")),
		      text_fold_hash(S("b@x.com")));
	cr_assert_eq(text_fold_hash(S("\xc3\x89lise@x.fr")),
		     text_fold_hash(S("\xc3\xa9LISE@X.FR")));
	cr_assert(text_fold_equal(S("A@X.com"), S("a@x.COM")));
	cr_assert(!text_fold_equal(S("a@x.com"), S("a@x.co")));
	cr_assert(!text_fold_equal(S("a@x.com"), S("a@y.com")));
	cr_assert(text_fold_equal(S("\xc3\x89lise"), S("\xc3\xa9LISE")));
	cr_assert(text_fold_equal(S("STRASSE"), S("stra\xc3\x9f"
						  "e")));
	cr_assert(!text_fold_equal(S("\xc3\xa9"), S("e")));
}

Test(text, fold_hash_long_input_streams)
{
	/* Beyond the 1 KiB stack chunk the streaming path must agree. */
	static char a[5000], b[5000];
	int i;

	for (i = 0; i < 5000; i++) {
		a[i] = (char)('A' + i % 26);
		b[i] = (char)('a' + i % 26);
	}
	cr_assert_eq(text_fold_hash(a, 5000), text_fold_hash(b, 5000));
	cr_assert(text_fold_equal(a, 5000, b, 5000));
	/* Multi-byte folding across the chunk boundary. */
	for (i = 0; i + 1 < 5000; i += 2) {
		a[i] = '\xc3';
		a[i + 1] = '\x89';
		b[i] = '\xc3';
		b[i + 1] = '\xa9';
	}
	cr_assert_eq(text_fold_hash(a, 5000), text_fold_hash(b, 5000));
	cr_assert(text_fold_equal(a, 5000, b, 5000));
}

Test(text, ci_contains)
{
	cr_assert(text_ci_contains(S("Alice Smith"), S("smi")));
	cr_assert(text_ci_contains(S("Alice Smith"), S("alice smith")));
	cr_assert(text_ci_contains(S("Alice Smith"), S("")));
	cr_assert(!text_ci_contains(S("Alice Smith"), S("smithy")));
	cr_assert(!text_ci_contains(S("Al"), S("alice")));
	cr_assert(text_ci_contains(S("ALICE@EXAMPLE.COM"), S("e@ex")));
	cr_assert(text_ci_contains(S("\xc3\x89"
				     "COLE"),
				   S("\xc3\xa9"
				     "co")));
	cr_assert(
	    text_ci_contains(S("\xd0\x9f\xd0\xa0\xd0\x98\xd0\x92\xd0\x95"
			       "\xd0\xa2"),
			     S("\xd1\x80\xd0\xb8\xd0\xb2"))); /* ПРИВЕТ/рив */
	cr_assert(text_ci_contains(S("\xce\x9f\xce\x94\xce\xa5\xce\xa3"),
				   S("\xce\xb4\xcf\x85"))); /* ΟΔΥΣ/δυ */
	cr_assert(text_ci_contains(S("\xe5\xbc\xa0\xe4\xb8\x89\xe4\xb8\xb0"),
				   S("\xe4\xb8\x89\xe4\xb8\xb0"))); /* 张三丰 */
	cr_assert(!text_ci_contains(S("\xe5\xbc\xa0\xe4\xb8\x89"),
				    S("\xe4\xb8\xb0")));
	cr_assert(!text_ci_contains(S("ecole"), S("\xc3\xa9")));
	/* ASCII needle in a non-ASCII haystack. */
	cr_assert(text_ci_contains(S("Jos\xc3\xa9 GARC\xc3\x8d"
				     "A"),
				   S("garc")));
	cr_assert(text_ci_contains(S("Stra\xc3\x9f"
				     "e"),
				   S("strasse")));
}

Test(text, ci_contains_is_fast_for_ascii)
{
	/* 1M haystacks of ~40 bytes, the shape of a `search` scan. */
	static const char hay[] = "Alexander Hamilton alex.ham@example.com";
	struct timespec t0, t1;
	const char *volatile hp = hay; /* keep the baseline loop honest */
	unsigned hits = 0;
	double ms;
	int i;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < 1000000; i++)
		hits += text_ci_contains(hay, sizeof(hay) - 1 - (i & 7),
					 S("zebra"));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
	cr_assert_eq(hits, 0);
	cr_log_info("1M ASCII ci_contains: %.1f ms", ms);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < 1000000; i++)
		hits += memmem(hp, sizeof(hay) - 1 - (i & 7), S("zebra")) != 0;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	cr_log_info("1M memmem (case-sensitive baseline): %.1f ms",
		    (t1.tv_sec - t0.tv_sec) * 1e3 +
			(t1.tv_nsec - t0.tv_nsec) / 1e6);
	cr_assert_eq(hits, 0);
	cr_assert_lt(ms, 2000.0); /* generous: ASan and a shared machine */
}

Test(text, id_generate_shape_and_uniqueness)
{
	char a[UD_ID_GEN_LEN + 1] = {0}, b[UD_ID_GEN_LEN + 1] = {0};
	int i;

	id_generate(a);
	id_generate(b);
	cr_assert_eq(memcmp(a, "usr_", 4), 0);
	for (i = 4; i < UD_ID_GEN_LEN; i++)
		cr_assert((a[i] >= '0' && a[i] <= '9') ||
			  (a[i] >= 'a' && a[i] <= 'z'));
	cr_assert_str_neq(a, b);
}

Test(text, id_generate_uses_whole_alphabet)
{
	/* 2,000 ids give 32,000 characters: every one of the 36 must appear,
	 * and none may be far from the uniform 1/36 share. */
	unsigned seen[256] = {0};
	char id[UD_ID_GEN_LEN];
	int i, j;

	for (i = 0; i < 2000; i++) {
		id_generate(id);
		for (j = 4; j < UD_ID_GEN_LEN; j++)
			seen[(unsigned char)id[j]]++;
	}
	for (i = 0; i < 256; i++) {
		bool ok = (i >= '0' && i <= '9') || (i >= 'a' && i <= 'z');

		if (!ok)
			cr_assert_eq(seen[i], 0, "char %d", i);
		else
			cr_assert(seen[i] > 600 && seen[i] < 1200,
				  "char %c seen %u times", i, seen[i]);
	}
}

Test(text, time_now_is_plausible)
{
	int64_t t = time_now_ms();

	cr_assert_gt(t, 1700000000000LL); /* after Nov 2023 */
	cr_assert_lt(t, 4102444800000LL); /* before 2100 */
}
