/*
 * pwpack.h -- an encoded Argon2 hash string in half the bytes.
 *
 * Records keep a user's password hash (record.h).  libsodium writes it as
 *
 *     $argon2id$v=19$m=65536,t=2,p=1$<salt, base64>$<hash, base64>
 *
 * 97 bytes for its interactive cost, a third of a benchmark-shaped user's
 * record.  The packed form holds the same information in binary:
 *
 *     0     1  algorithm: 1 argon2id, 2 argon2i
 *     1     v  version, m, t, p as LEB128 varints (v: 19 fits one byte)
 *     .     1  salt length S, then S salt bytes
 *     .     H  the hash bytes: the rest
 *
 * 56 bytes for the string above.  Packing is exact or refused: a string
 * is packed only when unpacking the result gives back the very same bytes
 * (so non-canonical base64, leading zeros, other parameter orders or
 * anything else libsodium would read differently stay as text, and the
 * record says which form it holds).  Pure functions, thread-safe.
 */
#ifndef UD_PWPACK_H
#define UD_PWPACK_H

#include <stddef.h>
#include <stdint.h>

#include "userdb.h"

/* Bytes the packed form takes at most (UD_PWHASH_MAX bounds the text). */
#define PWPACK_MAX UD_PWHASH_MAX

/* Pack the encoded hash s[0..n) into out[PWPACK_MAX].  Returns the packed
 * length, or 0 when s is not in the canonical form above (keep it as
 * text). */
size_t pwpack_encode(const char *s, size_t n, uint8_t *out);
/* Unpack b[0..n) (made by pwpack_encode) into out[UD_PWHASH_MAX],
 * NUL-terminated.  Returns the text's length, or 0 when b is not a packed
 * hash. */
size_t pwpack_decode(const uint8_t *b, size_t n, char *out);

#endif
