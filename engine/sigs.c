/*
 * sigs.c -- search signatures of folded bigrams (see sigs.h).
 */
#include <string.h>

#include "sigs.h"
#include "text.h"

/* Bit of the bigram (a, b): the top 6 bits of a multiplicative hash, which
 * spreads the few pairs that real text uses (letters, digits, '@', '.')
 * evenly over the word. */
static inline uint64_t gram_bit(unsigned char a, unsigned char b)
{
	uint32_t g = (uint32_t)a << 8 | b;

	return 1ull << ((g * 0x9E3779B1u) >> 26);
}

static inline unsigned char ascii_fold(unsigned char c)
{
	return (unsigned)(c - 'A') < 26u ? (unsigned char)(c | 0x20) : c;
}

uint64_t sig_folded(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	uint64_t w = 0;
	size_t i;

	for (i = 1; i < n; i++)
		w |= gram_bit(p[i - 1], p[i]);
	return w;
}

uint64_t sig_text(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	char buf[SIG_FOLD_MAX];
	unsigned char prev;
	uint64_t w = 0;
	size_t i, len;

	/* ASCII (most data): fold on the fly, one pass, no copy. */
	for (i = 0; i < n && p[i] < 0x80; i++)
		;
	if (i == n) {
		for (i = 1, prev = n ? ascii_fold(p[0]) : 0; i < n; i++) {
			w |= gram_bit(prev, ascii_fold(p[i]));
			prev = ascii_fold(p[i]);
		}
		return w;
	}
	len = text_fold(s, n, buf, sizeof(buf));
	if (len > sizeof(buf))
		return SIG_ALL; /* never a false negative */
	return sig_folded(buf, len);
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
		if (len < 0)
			len = 1; /* text_fold copies an invalid byte alone */
		w += text_fold(s + i, (size_t)len, out + w, cap - w);
		i += (size_t)len;
	}
	if (i < n) /* out of room: the rest's length, and what fits */
		w += text_fold(s + i, n - i, out + w, cap - w);
	return w;
}
