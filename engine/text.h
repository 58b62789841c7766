/*
 * text.h -- UTF-8 and case folding, ids and clocks.
 *
 * Case-insensitive identity (emails) and search use Unicode full case
 * folding (utf8proc's CASEFOLD mapping applied one code point at a time, so
 * "STRASSE" and "straße" fold alike), with an ASCII fast path: most data is
 * ASCII and folding it costs one compare per byte.  Folding is not
 * normalisation: "é" precomposed and "e" + U+0301 stay different.
 *
 * Pure and thread-safe, except id_generate() which reads libsodium's CSPRNG
 * (itself thread-safe; id_generate() makes sure sodium_init() ran).
 */
#ifndef UD_TEXT_H
#define UD_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Decode one code point from s (n > 0 bytes available).  Returns its length
 * (1..4) and *cp, or -1 for an invalid or truncated sequence (overlong,
 * surrogate, > U+10FFFF). */
int utf8_decode(const unsigned char *s, size_t n, int32_t *cp);

/* Number of code points if s is valid UTF-8 (no overlongs, no surrogates,
 * <= U+10FFFF), else -1. */
long utf8_count(const char *s, size_t n);

/* Case-fold s into out (cap bytes).  Returns the folded length; if it is
 * larger than cap, out holds a prefix and the caller retries with more room.
 * Invalid UTF-8 bytes are copied unchanged. */
size_t text_fold(const char *s, size_t n, char *out, size_t cap);
/* xxh3 of the folded form, computed without allocating. */
uint64_t text_fold_hash(const char *s, size_t n);
/* fold(a) == fold(b) */
bool text_fold_equal(const char *a, size_t an, const char *b, size_t bn);
/* fold(hay) contains needle, where needle is already folded. */
bool text_ci_contains(const char *hay, size_t hn, const char *needle,
		      size_t nn);

/* "usr_" + 16 of [0-9a-z] from the CSPRNG; writes UD_ID_GEN_LEN bytes. */
void id_generate(char *out);
/* Wall clock, Unix milliseconds. */
int64_t time_now_ms(void);

#endif
