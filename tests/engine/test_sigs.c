/*
 * test_sigs.c -- search signatures and the table-driven fold (sigs.c),
 * checked against text_fold(): every code point, then random strings cut
 * at every output capacity.
 */
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "sigs.h"
#include "text.h"

static uint16_t table[SIG_FOLD2_N];

static size_t encode(uint32_t cp, char *out)
{
	unsigned char *o = (unsigned char *)out;

	if (cp < 0x80) {
		o[0] = (unsigned char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (unsigned char)(0xC0 | cp >> 6);
		o[1] = (unsigned char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (unsigned char)(0xE0 | cp >> 12);
		o[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
		o[2] = (unsigned char)(0x80 | (cp & 0x3F));
		return 3;
	}
	o[0] = (unsigned char)(0xF0 | cp >> 18);
	o[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
	o[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
	o[3] = (unsigned char)(0x80 | (cp & 0x3F));
	return 4;
}

static void same_fold(const char *s, size_t n, size_t cap)
{
	char a[512], b[512];
	size_t la, lb;

	memset(a, 0x55, sizeof(a));
	memset(b, 0x55, sizeof(b));
	la = text_fold(s, n, a, cap);
	lb = sig_fold(table, s, n, b, cap);
	cr_assert_eq(la, lb, "length, input of %zu bytes, cap %zu", n, cap);
	cr_assert(memcmp(a, b, sizeof(a)) == 0, "bytes, cap %zu", cap);
}

Test(sigs, table_fold_equals_text_fold_for_every_code_point)
{
	char s[8];
	uint32_t cp;
	size_t n;

	sig_fold2_init(table);
	cr_assert_eq(table[0xC4 - 0x80], 0xE4);	  /* Ä -> ä */
	cr_assert_eq(table[0x410 - 0x80], 0x430); /* А -> а */
	cr_assert_eq(table[0x17F - 0x80], 's');	  /* ſ -> s */
	cr_assert_eq(table[0xDF - 0x80], 0);	  /* ß -> "ss": utf8proc */
	for (cp = 0; cp <= 0x10FFFF; cp++) {
		if (cp >= 0xD800 && cp <= 0xDFFF)
			continue;
		n = encode(cp, s);
		same_fold(s, n, 64);
	}
}

Test(sigs, table_fold_equals_text_fold_on_mixed_text)
{
	static const char *const parts[] = {"a",
					    "Z",
					    "ß",
					    "Ä",
					    "ΣΟΦΊΑ",
					    "ς",
					    "ДМИТРИЙ",
					    "ё",
					    "王",
					    "\xe2\x84\xaa",
					    "\xc5\xbf",
					    "İ",
					    "\xef\xac\x81",
					    "\xc3",
					    "\x80",
					    "\xff",
					    "@",
					    "ǅ"};
	unsigned seed = 23;
	char s[256];
	size_t n, cap;
	int i, k;

	sig_fold2_init(table);
	for (i = 0; i < 400; i++) {
		n = 0;
		for (k = 0; k < 1 + rand_r(&seed) % 20; k++) {
			const char *p =
			    parts[rand_r(&seed) %
				  (sizeof(parts) / sizeof(parts[0]))];

			memcpy(s + n, p, strlen(p));
			n += strlen(p);
		}
		for (cap = 0; cap <= 3 * n + 20 && cap <= 512; cap++)
			same_fold(s, n, cap);
	}
}
