/*
 * sigs.c -- search signatures of folded bigrams (see sigs.h).
 */
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
