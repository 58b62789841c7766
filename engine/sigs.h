/*
 * sigs.h -- search signatures: a per-user bitmap of case-folded bigrams.
 *
 * `search` is a case-insensitive substring test on name and email, and its
 * total needs every match, so each search visits every user.  A signature
 * lets the visit skip almost all of them without touching their records:
 *
 *   - A field's signature is 64 bits: for every bigram (pair of adjacent
 *     code points) of the field's case-folded form (text_fold), one bit
 *     chosen by a hash of the pair.  Name and email get a word each, so a
 *     candidate says which field may hold the needle (only that one is
 *     verified) and a needle's bigrams cannot be found half in one field,
 *     half in the other.
 *   - A needle's signature is built the same way from the folded needle.
 *     If fold(field) contains the needle, every bigram of the needle is a
 *     bigram of fold(field), so sig(needle) & ~sig(field) == 0.  The filter
 *     therefore never loses a match (no false negative); what it lets
 *     through is verified, and the verification decides.
 *   - Grams are over folded code points: "ß" and "SS" both fold to "ss";
 *     a Cyrillic name has as many grams as an ASCII one of the same length
 *     (byte pairs would double them and fill the word).  A byte that is not
 *     valid UTF-8 is a unit of its own, as text_fold() copies it.
 *   - A needle cut inside code points (a byte-level search) keeps only its
 *     whole code points: UTF-8 resynchronises on every lead byte, so they
 *     are whole in the field too.  A needle with an invalid byte inside
 *     gets signature 0.
 *   - A needle of fewer than 2 code points has no bigram: its signature is
 *     0, which every slot passes (a full scan, verified).
 *   - A field whose folded form does not fit SIG_FOLD_MAX bytes (cannot
 *     happen within the validation limits, kept for safety) gets all bits:
 *     always a candidate, never a false negative.
 *
 * Why bigrams in 64 bits: a benchmark name ("User Name 123456") has 15
 * bigrams and fills ~21% of its word, an email ~30%; a needle's bigrams
 * must all hit, so the false-positive rate falls geometrically with its
 * length.  Measured on mem_engine's 1M users: "name 500000" (7 bits) lets
 * 0.25% through, "name 50" (6 bits) 2.3%, "r9" (1 bit) 27%.  Trigrams are
 * more selective per gram but fill the word faster and cannot serve
 * 2-character needles; two bits per bigram would cut the false positives
 * of short needles but double the slices a search reads.
 *
 * Cost: 16 bytes per order slot, stored bit-sliced by the order array
 * (order.h) so that a search reads only the slices of its needle's bits;
 * computing a user's signature is one pass over name and email (~50 ns
 * for ASCII), once per create or name/email change.
 *
 * Pure functions, thread-safe, no allocation.
 */
#ifndef UD_SIGS_H
#define UD_SIGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SIG_FOLD_MAX 2048
#define SIG_ALL	     UINT64_MAX

struct sig {
	uint64_t name;
	uint64_t email;
};

/* Which fields a candidate may match (order_scan, list.c). */
enum sig_field {
	SIG_NAME = 1u << 0,
	SIG_EMAIL = 1u << 1,
};

/* Signature word of fold(s) (s is any text, folded here). */
uint64_t sig_text(const char *s, size_t n);
/* Signature word of a needle that is already folded; 0 when n < 2. */
uint64_t sig_folded(const char *s, size_t n);
/* Both words of a user's name and email. */
void sig_user(const char *name, size_t name_len, const char *email,
	      size_t email_len, struct sig *out);

/* Folding two-byte code points (U+0080..U+07FF: Latin-1 and Extended,
 * Greek, Cyrillic, Armenian, Hebrew, Arabic) by table, for verifying
 * candidates: text_fold() asks utf8proc per code point (~15 ns), and a
 * search matching many non-ASCII names folds each of them.  Entry cp -
 * 0x80 is the code point it folds to when that is one code point below
 * U+0800, else 0 (then utf8proc decides, e.g. U+00DF -> "ss").  Built from
 * text_fold() itself, so it cannot disagree with it.  Kana, CJK
 * ideographs and Hangul (no case) are copied without asking utf8proc. */
#define SIG_FOLD2_N 0x780
void sig_fold2_init(uint16_t table[SIG_FOLD2_N]);
/* The table, built once per process (pthread_once) and shared by every
 * store: building it asks utf8proc 1,920 times (~50 us), which ud_open()
 * paid per store before (a fuzzer opening a store per input ran 5x
 * slower for it). */
const uint16_t *sig_fold2_table(void);
/* text_fold(s, n, out, cap) with the table's fast path: same result and
 * the same return protocol (the folded length; > cap means out holds a
 * prefix). */
size_t sig_fold(const uint16_t table[SIG_FOLD2_N], const char *s, size_t n,
		char *out, size_t cap);

/* May a field with signature have contain a needle with signature want? */
static inline bool sig_may(uint64_t have, uint64_t want)
{
	return (have & want) == want;
}

#endif
