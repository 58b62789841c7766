/*
 * pwpack.c -- packing encoded Argon2 hashes (pwpack.h).
 *
 * Written by hand, not with sodium_base642bin/bin2base64: packing must
 * refuse whatever would not come back byte for byte, and unpacking runs
 * once per user in every snapshot, so it formats without snprintf.
 */
#include <string.h>

#include "pwpack.h"

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
			  "abcdefghijklmnopqrstuvwxyz0123456789+/";

enum { ALG_ID = 1, ALG_I = 2 };

static const char pre_id[] = "$argon2id$v=";
static const char pre_i[] = "$argon2i$v=";

static int b64_val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Base64 (no padding) s[0..n) into out; returns the byte count or -1.
 * Left-over bits are dropped here; the round trip catches non-zero ones. */
static long b64_dec(const char *s, size_t n, uint8_t *out, size_t cap)
{
	uint32_t acc = 0;
	int bits = 0;
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		int v = b64_val(s[i]);
		if (v < 0)
			return -1;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (k == cap)
				return -1;
			out[k++] = (uint8_t)(acc >> bits);
		}
	}
	return (long)k;
}

static char *b64_enc(char *w, const uint8_t *p, size_t n)
{
	uint32_t acc = 0;
	int bits = 0;

	for (size_t i = 0; i < n; i++) {
		acc = acc << 8 | p[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			*w++ = b64[(acc >> bits) & 63];
		}
	}
	if (bits)
		*w++ = b64[(acc << (6 - bits)) & 63];
	return w;
}

/* A decimal at s (no sign); advances *s.  -1 when none or too large. */
static int64_t dec_read(const char **s, const char *end)
{
	int64_t v = 0;
	const char *p = *s;

	if (p == end || *p < '0' || *p > '9')
		return -1;
	while (p < end && *p >= '0' && *p <= '9') {
		v = v * 10 + (*p++ - '0');
		if (v > UINT32_MAX)
			return -1;
	}
	*s = p;
	return v;
}

static size_t digits(uint32_t v)
{
	size_t n = 1;

	while (v >= 10) {
		v /= 10;
		n++;
	}
	return n;
}

static char *dec_write(char *w, uint32_t v)
{
	char tmp[10];
	int n = 0;

	do
		tmp[n++] = (char)('0' + v % 10);
	while (v /= 10);
	while (n)
		*w++ = tmp[--n];
	return w;
}

static uint8_t *leb_write(uint8_t *w, uint32_t v)
{
	while (v >= 0x80) {
		*w++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*w++ = (uint8_t)v;
	return w;
}

static int leb_read(const uint8_t **p, const uint8_t *end, uint32_t *v)
{
	uint64_t x = 0;

	for (int shift = 0; shift < 35; shift += 7) {
		if (*p == end)
			return -1;
		uint8_t b = *(*p)++;
		x |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			/* the shortest form only (a last byte 0 after others
			 * is padding): one value, one packed form */
			return x <= UINT32_MAX && (b || !shift)
				   ? (*v = (uint32_t)x, 0)
				   : -1;
	}
	return -1;
}

static int expect(const char **s, const char *end, const char *lit)
{
	size_t n = strlen(lit);

	if ((size_t)(end - *s) < n || memcmp(*s, lit, n) != 0)
		return -1;
	*s += n;
	return 0;
}

size_t pwpack_encode(const char *s, size_t n, uint8_t *out)
{
	const char *p = s, *end = s + n, *salt, *hash;
	uint8_t *w = out, raw[PWPACK_MAX];
	int64_t v[4];
	char back[UD_PWHASH_MAX];
	long sl, hl;

	if (n >= UD_PWHASH_MAX)
		return 0;
	if (expect(&p, end, pre_id) == 0)
		*w++ = ALG_ID;
	else if (expect(&p, end, pre_i) == 0)
		*w++ = ALG_I;
	else
		return 0;
	if ((v[0] = dec_read(&p, end)) < 0 || expect(&p, end, "$m=") ||
	    (v[1] = dec_read(&p, end)) < 0 || expect(&p, end, ",t=") ||
	    (v[2] = dec_read(&p, end)) < 0 || expect(&p, end, ",p=") ||
	    (v[3] = dec_read(&p, end)) < 0 || expect(&p, end, "$"))
		return 0;
	salt = p;
	hash = memchr(salt, '$', (size_t)(end - salt));
	if (!hash)
		return 0;
	sl = b64_dec(salt, (size_t)(hash - salt), raw, sizeof(raw));
	hash++;
	if (sl < 1)
		return 0;
	for (int i = 0; i < 4; i++)
		w = leb_write(w, (uint32_t)v[i]);
	*w++ = (uint8_t)sl;
	memcpy(w, raw, (size_t)sl);
	w += sl;
	hl = b64_dec(hash, (size_t)(end - hash), w,
		     PWPACK_MAX - (size_t)(w - out));
	if (hl < 1)
		return 0;
	w += hl;
	/* Exact or refused. */
	if (pwpack_decode(out, (size_t)(w - out), back) != n ||
	    memcmp(back, s, n) != 0)
		return 0;
	return (size_t)(w - out);
}

size_t pwpack_decode(const uint8_t *b, size_t n, char *out)
{
	const uint8_t *p = b, *end = b + n;
	uint32_t v[4];
	char *w = out;
	size_t sl;

	if (n < 1 || (b[0] != ALG_ID && b[0] != ALG_I))
		return 0;
	p++;
	for (int i = 0; i < 4; i++)
		if (leb_read(&p, end, &v[i]))
			return 0;
	if (p == end || (sl = *p++) < 1 || (size_t)(end - p) <= sl)
		return 0;
	/* The text's length, checked against out before writing. */
	size_t hl = (size_t)(end - p) - sl, len = b[0] == ALG_ID ? 12 : 11;
	for (int i = 0; i < 4; i++)
		len += digits(v[i]);
	len += 9 + 1 + (sl * 4 + 2) / 3 + 1 + (hl * 4 + 2) / 3;
	if (len >= UD_PWHASH_MAX)
		return 0;
	memcpy(w, b[0] == ALG_ID ? pre_id : pre_i,
	       b[0] == ALG_ID ? sizeof(pre_id) - 1 : sizeof(pre_i) - 1);
	w += b[0] == ALG_ID ? sizeof(pre_id) - 1 : sizeof(pre_i) - 1;
	w = dec_write(w, v[0]);
	memcpy(w, "$m=", 3);
	w = dec_write(w + 3, v[1]);
	memcpy(w, ",t=", 3);
	w = dec_write(w + 3, v[2]);
	memcpy(w, ",p=", 3);
	w = dec_write(w + 3, v[3]);
	*w++ = '$';
	w = b64_enc(w, p, sl);
	*w++ = '$';
	w = b64_enc(w, p + sl, (size_t)(end - p - sl));
	*w = '\0';
	return (size_t)(w - out);
}
