/*
 * text.c -- strict UTF-8 decoding, Unicode case folding, the case-insensitive
 * hash/equality/substring used by the email index and `search`, generated
 * ids and the wall clock.
 *
 * Folding works one code point at a time: ASCII letters are lowered inline;
 * anything else goes through utf8proc_decompose_char() with only
 * UTF8PROC_CASEFOLD, which maps one code point to at most three without
 * allocating.  Invalid bytes are copied as they are, so folding is total.
 *
 * The hot path is `search` over every user: when both sides are ASCII it is
 * a byte loop with no decoding and no copying; otherwise the haystack is
 * folded into a stack buffer (heap only beyond 2 KiB) and searched with
 * memmem().
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>
#include <utf8proc.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

#include "password.h"
#include "text.h"
#include "userdb.h"

/* Longest folded form of one code point: 3 code points of 4 bytes. */
#define FOLD_ONE_MAX 16
#define STACK_FOLD   2048

static inline unsigned char ascii_fold(unsigned char c)
{
	return (unsigned)(c - 'A') < 26u ? (unsigned char)(c | 0x20) : c;
}

int utf8_decode(const unsigned char *s, size_t n, int32_t *cp)
{
	unsigned char c = s[0];
	int32_t v;
	int len, i;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		v = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		v = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		v = c & 0x07;
	} else {
		return -1; /* continuation byte, C0/C1 overlong lead, > F4 */
	}
	if (n < (size_t)len)
		return -1;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return -1;
		v = (v << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && v < 0x800) || (len == 4 && v < 0x10000) ||
	    v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		return -1;
	*cp = v;
	return len;
}

long utf8_count(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	long count = 0;
	int32_t cp;
	int len;

	while (i < n) {
		if (p[i] < 0x80) {
			i++;
		} else {
			len = utf8_decode(p + i, n - i, &cp);
			if (len < 0)
				return -1;
			i += (size_t)len;
		}
		count++;
	}
	return count;
}

/* Fold the code point at s (n > 0 bytes) into out (FOLD_ONE_MAX bytes).
 * Returns the bytes of s consumed; *outn is the folded length. */
static size_t fold_one(const unsigned char *s, size_t n, unsigned char *out,
		       size_t *outn)
{
	utf8proc_int32_t seq[4];
	utf8proc_ssize_t k, i;
	size_t w = 0;
	int32_t cp;
	int len, bound = 0;

	if (s[0] < 0x80) {
		out[0] = ascii_fold(s[0]);
		*outn = 1;
		return 1;
	}
	len = utf8_decode(s, n, &cp);
	if (len < 0) {
		out[0] = s[0];
		*outn = 1;
		return 1;
	}
	k = utf8proc_decompose_char(cp, seq, 4, UTF8PROC_CASEFOLD, &bound);
	if (k <= 0 || k > 4) {
		memcpy(out, s, (size_t)len);
		*outn = (size_t)len;
		return (size_t)len;
	}
	for (i = 0; i < k; i++)
		w += (size_t)utf8proc_encode_char(seq[i], out + w);
	*outn = w;
	return (size_t)len;
}

/* Fold whole code points of s[*pos..n) into out while they fit in cap.
 * Advances *pos; returns the bytes written. */
static size_t fold_chunk(const unsigned char *s, size_t n, size_t *pos,
			 unsigned char *out, size_t cap)
{
	unsigned char one[FOLD_ONE_MAX];
	size_t i = *pos, w = 0, used, k;

	while (i < n) {
		if (s[i] < 0x80) {
			if (w == cap)
				break;
			out[w++] = ascii_fold(s[i++]);
			continue;
		}
		used = fold_one(s + i, n - i, one, &k);
		if (cap - w < k)
			break;
		memcpy(out + w, one, k);
		w += k;
		i += used;
	}
	*pos = i;
	return w;
}

size_t text_fold(const char *s, size_t n, char *out, size_t cap)
{
	const unsigned char *p = (const unsigned char *)s;
	unsigned char one[FOLD_ONE_MAX];
	size_t pos = 0, w, k;

	w = fold_chunk(p, n, &pos, (unsigned char *)out, cap);
	/* Out of room: keep counting so the caller learns the full length. */
	while (pos < n) {
		pos += fold_one(p + pos, n - pos, one, &k);
		if (w < cap)
			memcpy(out + w, one, cap - w < k ? cap - w : k);
		w += k;
	}
	return w;
}

uint64_t text_fold_hash(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	unsigned char buf[1024];
	XXH3_state_t st;
	size_t pos = 0, w;

	w = fold_chunk(p, n, &pos, buf, sizeof(buf));
	if (pos == n)
		return XXH3_64bits(buf, w);
	XXH3_64bits_reset(&st);
	XXH3_64bits_update(&st, buf, w);
	while (pos < n) {
		w = fold_chunk(p, n, &pos, buf, sizeof(buf));
		XXH3_64bits_update(&st, buf, w);
	}
	return XXH3_64bits_digest(&st);
}

static bool is_ascii(const char *s, size_t n)
{
	unsigned char acc = 0;
	size_t i;

	for (i = 0; i < n; i++)
		acc |= (unsigned char)s[i];
	return acc < 0x80;
}

/* Fold s into *out: buf when it fits (cap bytes), else a malloc'd block
 * that the caller frees when *out != buf.  Returns the length, or
 * (size_t)-1 when out of memory. */
static size_t fold_alloc(const char *s, size_t n, char *buf, size_t cap,
			 char **out)
{
	size_t len = text_fold(s, n, buf, cap);
	char *p;

	*out = buf;
	if (len <= cap)
		return len;
	p = malloc(len);
	if (!p)
		return (size_t)-1;
	text_fold(s, n, p, len);
	*out = p;
	return len;
}

static bool fold_equal_slow(const char *a, size_t an, const char *b, size_t bn)
{
	char abuf[STACK_FOLD / 2], bbuf[STACK_FOLD / 2], *fa, *fb;
	size_t la, lb;
	bool eq = false;

	la = fold_alloc(a, an, abuf, sizeof(abuf), &fa);
	lb = fold_alloc(b, bn, bbuf, sizeof(bbuf), &fb);
	if (la != (size_t)-1 && lb != (size_t)-1)
		eq = la == lb && memcmp(fa, fb, la) == 0;
	if (fa != abuf)
		free(fa);
	if (fb != bbuf)
		free(fb);
	return eq;
}

bool text_fold_equal(const char *a, size_t an, const char *b, size_t bn)
{
	const unsigned char *pa = (const unsigned char *)a;
	const unsigned char *pb = (const unsigned char *)b;
	size_t i;

	if (an != bn) {
		if (is_ascii(a, an) && is_ascii(b, bn))
			return false;
		return fold_equal_slow(a, an, b, bn);
	}
	for (i = 0; i < an; i++) {
		if ((pa[i] | pb[i]) & 0x80)
			return fold_equal_slow(a, an, b, bn);
		if (ascii_fold(pa[i]) != ascii_fold(pb[i]))
			return false;
	}
	return true;
}

/* Both ASCII: a first-byte scan, then a folded compare of the rest. */
static bool ascii_ci_contains(const unsigned char *h, size_t hn,
			      const unsigned char *nd, size_t nn)
{
	unsigned char c0 = nd[0];
	/* needle is folded: a letter c0 matches h when h | 0x20 == c0 */
	unsigned char mask = c0 >= 'a' && c0 <= 'z' ? 0x20 : 0;
	size_t i, j, last = hn - nn;

	for (i = 0; i <= last; i++) {
		if ((h[i] | mask) != c0)
			continue;
		for (j = 1; j < nn && ascii_fold(h[i + j]) == nd[j]; j++)
			;
		if (j == nn)
			return true;
	}
	return false;
}

bool text_ci_contains(const char *hay, size_t hn, const char *needle, size_t nn)
{
	char buf[STACK_FOLD], *folded;
	size_t len;
	bool found;

	if (nn == 0)
		return true;
	if (is_ascii(hay, hn)) {
		/* An ASCII haystack folds to ASCII: a non-ASCII needle cannot
		 * occur in it. */
		if (nn > hn || !is_ascii(needle, nn))
			return false;
		return ascii_ci_contains((const unsigned char *)hay, hn,
					 (const unsigned char *)needle, nn);
	}
	len = fold_alloc(hay, hn, buf, sizeof(buf), &folded);
	if (len == (size_t)-1)
		return false;
	found = memmem(folded, len, needle, nn) != NULL;
	if (folded != buf)
		free(folded);
	return found;
}

void id_generate(char *out)
{
	static const char alphabet[] = "0123456789abcdefghijklmnopqrstuvwxyz";
	unsigned char rnd[32];
	size_t used = sizeof(rnd);
	int i;

	/* One getrandom() per id instead of one per character: bytes >= 252
	 * are rejected so that v % 36 stays uniform (252 = 7 * 36). */
	password_init(); /* sodium_init(); idempotent and cheap after once */
	memcpy(out, "usr_", 4);
	for (i = 4; i < UD_ID_GEN_LEN;) {
		if (used == sizeof(rnd)) {
			randombytes_buf(rnd, sizeof(rnd));
			used = 0;
		}
		if (rnd[used] < 252)
			out[i++] = alphabet[rnd[used] % 36];
		used++;
	}
}

int64_t time_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
