/*
 * sigs.c -- search signatures of folded bigrams (see sigs.h).
 */
#include <pthread.h>
#include <string.h>

#include "sigs.h"
#include "text.h"

/* Bit of the bigram of units a, b (code points, or 0x110000 + an invalid
 * byte): the top 6 bits of a multiplicative hash, which spreads the few
 * pairs that real text uses evenly over the word. */
static inline uint64_t gram_bit(uint32_t a, uint32_t b)
{
	uint64_t g = (uint64_t)a << 21 | b;

	return 1ull << ((g * 0x9E3779B97F4A7C15ull) >> 58);
}

static inline unsigned char ascii_fold(unsigned char c)
{
	return (unsigned)(c - 'A') < 26u ? (unsigned char)(c | 0x20) : c;
}

/* Bigram bits of the units of p[0..n): code points, each invalid byte a
 * unit of its own (as utf8_decode resynchronises).  *bad is set when an
 * invalid byte was seen. */
static uint64_t unit_grams(const unsigned char *p, size_t n, bool *bad)
{
	uint64_t w = 0;
	uint32_t prev = 0, u;
	size_t i = 0;
	int32_t cp;
	int len;

	while (i < n) {
		len = 1;
		u = p[i];
		if (u >= 0x80) {
			len = utf8_decode(p + i, n - i, &cp);
			if (len < 0) {
				len = 1;
				u = 0x110000u + p[i];
				*bad = true;
			} else {
				u = (uint32_t)cp;
			}
		}
		if (i)
			w |= gram_bit(prev, u);
		prev = u;
		i += (size_t)len;
	}
	return w;
}

static size_t seq_len(unsigned char c)
{
	return c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
}

uint64_t sig_folded(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t a = 0, b = n, last;
	bool bad = false;
	uint64_t w;

	/* A needle cut inside code points still occurs in a valid text; only
	 * its whole code points are gram'd (they are whole in the text too:
	 * UTF-8 resynchronises on every lead byte). */
	while (a < b && (p[a] & 0xC0) == 0x80)
		a++;
	for (last = b; last > a && (p[last - 1] & 0xC0) == 0x80;)
		last--;
	if (last > a && (last - 1) + seq_len(p[last - 1]) > b)
		b = last - 1; /* an incomplete last code point */
	if (a >= b)
		return 0;
	w = unit_grams(p + a, b - a, &bad);
	/* invalid inside: it cannot occur in valid text, but a text may be
	 * invalid too; take no chance, every field is a candidate */
	return bad ? 0 : w;
}

uint64_t sig_text(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	char buf[SIG_FOLD_MAX];
	unsigned char prev, c;
	uint64_t w = 0;
	size_t i, len;
	bool bad = false;

	/* ASCII (most data): fold on the fly, one pass, no copy. */
	for (i = 0; i < n && p[i] < 0x80; i++)
		;
	if (i == n) {
		for (i = 1, prev = n ? ascii_fold(p[0]) : 0; i < n; i++) {
			c = ascii_fold(p[i]);
			w |= gram_bit(prev, c);
			prev = c;
		}
		return w;
	}
	len = text_fold(s, n, buf, sizeof(buf));
	if (len > sizeof(buf))
		return SIG_ALL; /* never a false negative */
	return unit_grams((const unsigned char *)buf, len, &bad);
}

void sig_user(const char *name, size_t name_len, const char *email,
	      size_t email_len, struct sig *out)
{
	out->name = sig_text(name, name_len);
	out->email = sig_text(email, email_len);
}

void sig_fold2_init(uint16_t table[SIG_FOLD2_N])
{
	unsigned char in[2], out[16];
	unsigned cp;
	size_t n;

	for (cp = 0x80; cp < 0x800; cp++) {
		in[0] = (unsigned char)(0xC0 | cp >> 6);
		in[1] = (unsigned char)(0x80 | (cp & 0x3F));
		n = text_fold((const char *)in, 2, (char *)out, sizeof(out));
		table[cp - 0x80] = 0;
		if (n == 1 && out[0] < 0x80)
			table[cp - 0x80] = out[0];
		else if (n == 2 && out[0] >= 0xC2 && out[0] <= 0xDF)
			table[cp - 0x80] =
			    (uint16_t)((out[0] & 0x1F) << 6 | (out[1] & 0x3F));
	}
}

static uint16_t fold2_shared[SIG_FOLD2_N];
static pthread_once_t fold2_once = PTHREAD_ONCE_INIT;

static void fold2_build(void)
{
	sig_fold2_init(fold2_shared);
}

const uint16_t *sig_fold2_table(void)
{
	pthread_once(&fold2_once, fold2_build);
	return fold2_shared;
}

/* Scripts without case, which fold to themselves (test_sigs checks this
 * against text_fold for every code point): kana, CJK ideographs, Hangul. */
static inline bool caseless(int32_t cp)
{
	return (cp >= 0x3040 && cp <= 0x30FF) ||
	       (cp >= 0x3400 && cp <= 0x4DBF) ||
	       (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0xAC00 && cp <= 0xD7A3);
}

size_t sig_fold(const uint16_t table[SIG_FOLD2_N], const char *s, size_t n,
		char *out, size_t cap)
{
	const unsigned char *p = (const unsigned char *)s;
	unsigned char *o = (unsigned char *)out;
	size_t i = 0, w = 0;
	unsigned f;
	int32_t cp;
	int len;

	/* whole code points while any one fits (a fold is <= 12 bytes) */
	while (i < n && cap - w >= 16) {
		if (p[i] < 0x80) {
			o[w++] = ascii_fold(p[i++]);
			continue;
		}
		if (p[i] >= 0xC2 && p[i] <= 0xDF && i + 1 < n &&
		    (p[i + 1] & 0xC0) == 0x80 &&
		    (f = table[((p[i] & 0x1Fu) << 6 | (p[i + 1] & 0x3Fu)) -
			       0x80]) != 0) {
			if (f < 0x80) {
				o[w++] = (unsigned char)f;
			} else {
				o[w++] = (unsigned char)(0xC0 | f >> 6);
				o[w++] = (unsigned char)(0x80 | (f & 0x3F));
			}
			i += 2;
			continue;
		}
		len = utf8_decode(p + i, n - i, &cp);
		if (len == 3 && caseless(cp)) {
			memcpy(o + w, p + i, 3);
			w += 3;
			i += 3;
			continue;
		}
		if (len < 0)
			len = 1; /* text_fold copies an invalid byte alone */
		w += text_fold(s + i, (size_t)len, out + w, cap - w);
		i += (size_t)len;
	}
	if (i < n) /* out of room: the rest's length, and what fits */
		w += text_fold(s + i, n - i, out + w, cap - w);
	return w;
}
