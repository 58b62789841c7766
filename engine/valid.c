/*
 * valid.c -- the field rules of SPEC §1.
 *
 * Every check walks its input once, decoding UTF-8 strictly (text.c) where
 * text is allowed, and stops at the first broken rule with a message a
 * client can act on.  Limits are in bytes where the SPEC says bytes (email,
 * avatar, password) and in code points for names.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>
#include <utf8proc.h>

#include "codec.h"
#include "text.h"
#include "valid.h"

static bool is_control(int32_t cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f);
}

static bool is_space(int32_t cp)
{
	utf8proc_category_t cat;

	if (cp == ' ')
		return true;
	if (cp < 0x80)
		return false;
	cat = utf8proc_category(cp);
	return cat == UTF8PROC_CATEGORY_ZS || cat == UTF8PROC_CATEGORY_ZL ||
	       cat == UTF8PROC_CATEGORY_ZP;
}

/* Are the 8 bytes at p all printable ASCII (0x21..0x7e, and a space unless
 * no_space)?  Word-at-a-time tests: for bytes below 0x80, (x - k * ONES) &
 * ~x & HIGH is non-zero iff some byte is below k. */
static bool plain8(const unsigned char *p, bool no_space)
{
	const uint64_t ones = 0x0101010101010101ull, high = ones << 7;
	uint64_t x, y;

	memcpy(&x, p, 8);
	if (x & high)
		return false;
	if ((x - 0x20 * ones) & ~x & high) /* a control character */
		return false;
	y = x ^ (0x7f * ones); /* DEL: a zero byte of y */
	if ((y - ones) & ~y & high)
		return false;
	y = x ^ (0x20 * ones);
	return !no_space || !((y - ones) & ~y & high);
}

/* Scan s as UTF-8 text.  Returns the number of code points, -1 for invalid
 * UTF-8, -2 for a control character, -3 for a space (when no_space). */
static long scan_text(const char *s, size_t n, bool no_space)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	long count = 0;
	int32_t cp;
	int len;

	while (i < n) {
		if (i + 8 <= n && plain8(p + i, no_space)) {
			i += 8;
			count += 8;
			continue;
		}
		if (p[i] < 0x80) { /* ASCII: the same rules, without decoding */
			if (p[i] < 0x20 || p[i] == 0x7f)
				return -2;
			if (no_space && p[i] == ' ')
				return -3;
			i++;
			count++;
			continue;
		}
		len = utf8_decode(p + i, n - i, &cp);
		if (len < 0)
			return -1;
		if (is_control(cp))
			return -2;
		if (no_space && is_space(cp))
			return -3;
		i += (size_t)len;
		count++;
	}
	return count;
}

int valid_id(const char *s, size_t n, struct ud_error *err)
{
	size_t i;

	if (!s || n < 5 || n > UD_ID_MAX || memcmp(s, "usr_", 4) != 0)
		goto bad;
	for (i = 4; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		/* c | 0x20 maps A-Z onto a-z and no other byte into a-z */
		if (!((unsigned)(c - '0') < 10u ||
		      (unsigned)((c | 0x20) - 'a') < 26u || c == '_' ||
		      c == '-'))
			goto bad;
	}
	return 0;
bad:
	return ud_error_set(err, UD_EINVAL, "id",
			    "id must be \"usr_\" followed by 1 to 60 of "
			    "A-Z a-z 0-9 _ -");
}

int valid_name(const char *s, size_t n, struct ud_error *err)
{
	long cps;

	if (!s || n == 0 || n > UD_NAME_MAX_BYTES)
		goto length;
	cps = scan_text(s, n, false);
	if (cps == -1)
		return ud_error_set(err, UD_EINVAL, "name",
				    "name must be valid UTF-8");
	if (cps == -2)
		return ud_error_set(err, UD_EINVAL, "name",
				    "name must not contain control characters");
	if (cps >= 1 && cps <= UD_NAME_MAX_CP)
		return 0;
length:
	return ud_error_set(err, UD_EINVAL, "name",
			    "name must be 1 to %d characters", UD_NAME_MAX_CP);
}

/* The domain: at least one dot, not first or last, no empty label. */
static bool domain_ok(const char *d, size_t n)
{
	if (n < 3 || d[0] == '.' || d[n - 1] == '.' || !memchr(d, '.', n))
		return false;
	return memmem(d, n, "..", 2) == NULL;
}

int valid_email(const char *s, size_t n, struct ud_error *err)
{
	const char *at;
	long cps;

	if (!s || n == 0)
		return ud_error_set(err, UD_EINVAL, "email",
				    "email must not be empty");
	if (n > UD_EMAIL_MAX)
		return ud_error_set(err, UD_EINVAL, "email",
				    "email must be at most %d bytes",
				    UD_EMAIL_MAX);
	cps = scan_text(s, n, true);
	if (cps == -1)
		return ud_error_set(err, UD_EINVAL, "email",
				    "email must be valid UTF-8");
	if (cps < 0)
		return ud_error_set(err, UD_EINVAL, "email",
				    "email must not contain spaces or control "
				    "characters");
	at = memchr(s, '@', n);
	if (!at || at == s || at == s + n - 1 ||
	    memchr(at + 1, '@', (size_t)(s + n - at - 1)))
		return ud_error_set(err, UD_EINVAL, "email",
				    "email must be of the form local@domain");
	if (!domain_ok(at + 1, (size_t)(s + n - at - 1)))
		return ud_error_set(err, UD_EINVAL, "email",
				    "email domain must contain a dot, as in "
				    "example.com");
	return 0;
}

/* Length of the scheme prefix ("http://" or "https://", any case), or 0. */
static size_t url_scheme(const char *s, size_t n)
{
	if (n >= 7 && strncasecmp(s, "http://", 7) == 0)
		return 7;
	if (n >= 8 && strncasecmp(s, "https://", 8) == 0)
		return 8;
	return 0;
}

/* The authority has a non-empty host once userinfo and port are removed. */
static bool url_has_host(const char *a, size_t n)
{
	const char *at, *end = a + n, *colon;

	at = memrchr(a, '@', n);
	if (at)
		a = at + 1;
	if (a < end && *a == '[') {
		const char *close = memchr(a, ']', (size_t)(end - a));

		return close && close > a + 1;
	}
	colon = memchr(a, ':', (size_t)(end - a));
	return (colon ? colon : end) > a;
}

int valid_avatar(const char *s, size_t n, struct ud_error *err)
{
	size_t scheme, auth;

	if (!s)
		return 0; /* null clears the avatar */
	if (n > UD_AVATAR_MAX)
		return ud_error_set(err, UD_EINVAL, "avatar",
				    "avatar must be at most %d bytes",
				    UD_AVATAR_MAX);
	if (scan_text(s, n, true) < 0)
		return ud_error_set(err, UD_EINVAL, "avatar",
				    "avatar must be a URL without spaces or "
				    "control characters");
	scheme = url_scheme(s, n);
	if (!scheme)
		return ud_error_set(
		    err, UD_EINVAL, "avatar",
		    "avatar must be an http:// or https:// URL");
	/* s is not NUL-terminated (it may point into an RPC frame): scan
	 * within n, never with strcspn. */
	for (auth = 0; scheme + auth < n; auth++)
		if (s[scheme + auth] == '/' || s[scheme + auth] == '?' ||
		    s[scheme + auth] == '#')
			break;
	if (!url_has_host(s + scheme, auth))
		return ud_error_set(err, UD_EINVAL, "avatar",
				    "avatar URL must have a host");
	return 0;
}

int valid_mp_object(const void *mp, size_t n, const char *field,
		    struct ud_error *err)
{
	size_t max = strcmp(field, "custom_data") == 0 ? UD_CUSTOM_MAX
						       : CODEC_DETAILS_MAX;

	if (n > max)
		return ud_error_set(err, UD_EINVAL, field,
				    "%s must be at most %zu bytes", field, max);
	return codec_mp_check(mp, n, CODEC_MAX_DEPTH, max, field, NULL, err);
}

int valid_password(size_t n, struct ud_error *err)
{
	if (n < UD_PASSWORD_MIN || n > UD_PASSWORD_MAX)
		return ud_error_set(err, UD_EINVAL, "password",
				    "password must be %d to %d bytes",
				    UD_PASSWORD_MIN, UD_PASSWORD_MAX);
	return 0;
}

/* The cost an imported hash may ask of each verification: at most that of
 * libsodium's "sensitive" preset (1 GiB x 4 passes, a few seconds of one
 * worker); more would let one import tie up a worker for minutes or
 * exhaust memory on every sign-in. */
#define PWHASH_COST_MAX_KIB (1048576ull * 4) /* m (KiB) x t */
#define PWHASH_LANES_MAX    16

int valid_password_hash(const char *s, size_t n, struct ud_error *err)
{
	char z[UD_PWHASH_MAX];
	unsigned long m, t, p;
	const char *params;
	size_t i;

	if (!s || n >= UD_PWHASH_MAX)
		goto bad;
	if (!(n > 10 && memcmp(s, "$argon2id$", 10) == 0) &&
	    !(n > 9 && memcmp(s, "$argon2i$", 9) == 0))
		goto bad;
	for (i = 0; i < n; i++)
		if (s[i] < 0x21 || s[i] > 0x7e)
			goto bad;
	memcpy(z, s, n);
	z[n] = '\0';
	/* libsodium parses the whole string (version, parameters, salt and
	 * hash lengths, base64): -1 when it could never verify. */
	if (crypto_pwhash_str_needs_rehash(z, crypto_pwhash_OPSLIMIT_MIN,
					   crypto_pwhash_MEMLIMIT_MIN) < 0)
		goto bad;
	params = strstr(z, "$m=");
	if (!params || sscanf(params, "$m=%lu,t=%lu,p=%lu$", &m, &t, &p) != 3 ||
	    (unsigned long long)m * t > PWHASH_COST_MAX_KIB ||
	    p > PWHASH_LANES_MAX)
		return ud_error_set(err, UD_EINVAL, "password_hash",
				    "password_hash asks too much of each "
				    "verification: at most m x t = %llu KiB "
				    "and p = %d",
				    PWHASH_COST_MAX_KIB, PWHASH_LANES_MAX);
	return 0;
bad:
	return ud_error_set(err, UD_EINVAL, "password_hash",
			    "password_hash must be an encoded $argon2id$ or "
			    "$argon2i$ string (version 19, parameters, salt "
			    "and hash) shorter than %d bytes",
			    UD_PWHASH_MAX);
}

int valid_identity(const char *target, size_t tn, const char *uid, size_t un,
		   struct ud_error *err)
{
	size_t i;

	if (!target || tn == 0 || tn > UD_TARGET_MAX)
		goto bad_target;
	for (i = 0; i < tn; i++) {
		unsigned char c = (unsigned char)target[i];

		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
		      (c >= 'A' && c <= 'Z') || c == '_' || c == '.' ||
		      c == '-'))
			goto bad_target;
	}
	if (!uid || un == 0 || un > 256 || scan_text(uid, un, false) < 0)
		return ud_error_set(err, UD_EINVAL, "user_id",
				    "user_id must be 1 to 256 bytes of UTF-8 "
				    "text without control characters");
	return 0;
bad_target:
	return ud_error_set(err, UD_EINVAL, "target",
			    "identity target must be 1 to %d of A-Z a-z 0-9 "
			    "_ . -",
			    UD_TARGET_MAX);
}

int valid_unknown_key(const char *what, const char *key, size_t n,
		      struct ud_error *err)
{
	char clean[65];
	size_t i, at;
	int len;

	if (n > 64)
		n = 64;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)key[i];

		clean[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	clean[n] = '\0';
	if (!err)
		return UD_EINVAL;
	len = snprintf(err->message, sizeof(err->message), "unknown %s: %s",
		       what, clean);
	at =
	    len > 0 && (size_t)len < sizeof(err->message) ? (size_t)len - n : 0;
	err->code = UD_EINVAL;
	err->field = at ? err->message + at : NULL;
	return UD_EINVAL;
}
