/*
 * fuzz_pwpack.c -- the packed form of encoded Argon2 hashes
 * (engine/pwpack.c), both ways.
 *
 * Input: bytes read twice, as a packed hash and as an encoded string.
 *
 * Properties:
 *   1. pwpack_decode either refuses (0) or writes a NUL-terminated text of
 *      the length it returns, shorter than UD_PWHASH_MAX.
 *   2. Packing is a bijection: a packed form that decodes is exactly what
 *      pwpack_encode makes of the text it decodes to (so one text has one
 *      packed form, and a record can never hold a second spelling).
 *   3. A string that packs unpacks to itself byte for byte, in fewer
 *      bytes.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "pwpack.h"

static void check_decode(const uint8_t *b, size_t n)
{
	char text[UD_PWHASH_MAX + 16];
	uint8_t again[PWPACK_MAX];
	size_t len, k;

	memset(text, 'Z', sizeof text);
	len = pwpack_decode(b, n, text);
	if (len == 0)
		return;
	FUZZ_CHECK(len < UD_PWHASH_MAX && text[len] == '\0' &&
		       strlen(text) == len,
		   "decode returned %zu", len);
	k = pwpack_encode(text, len, again);
	FUZZ_CHECK(k == n && memcmp(again, b, n) == 0,
		   "%zu packed bytes decode to %s, which packs to %zu bytes", n,
		   text, k);
}

static void check_encode(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1), back[UD_PWHASH_MAX];
	uint8_t packed[PWPACK_MAX];
	size_t k;

	FUZZ_CHECK(s != NULL, "malloc");
	memcpy(s, data, size);
	s[size] = '\0';
	k = pwpack_encode(s, size, packed);
	if (k) {
		FUZZ_CHECK(k < size, "%zu bytes packed to %zu", size, k);
		FUZZ_CHECK(pwpack_decode(packed, k, back) == size &&
			       memcmp(back, s, size) == 0,
			   "%s does not come back", s);
	}
	free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* an exact-size copy, so that a read past the end is caught */
	uint8_t *b = malloc(size ? size : 1);

	FUZZ_CHECK(b != NULL, "malloc");
	memcpy(b, data, size);
	check_decode(b, size);
	check_encode(b, size);
	free(b);
	return 0;
}
