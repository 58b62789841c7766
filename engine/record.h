/*
 * record.h -- the compact user record: one allocation per user.
 *
 * A record is a fixed 56-byte header followed by the packed bytes of the
 * variable fields, in this order (no separators, no NULs):
 *
 *     id | name | email | avatar | custom_data | identities | password hash
 *
 * Lengths live in the header; custom_data and identities are msgpack maps
 * (an empty map is the single byte 0x80).  The password hash is kept
 * packed (pwpack.h: 56 bytes for libsodium's 97-byte string) when it packs
 * exactly, flagged REC_PW_PACKED, else as its text.  Times are Unix ms. Nothing
 * points out of a record, so freeing it is one free().
 *
 * Invariants:
 *   1. id_len >= 1, email_len >= 1, custom_len >= 1, ident_len >= 1.
 *   2. role < UD_ROLES, status < UD_STATUSES.
 *   3. slot is the record's index in the creation-order array (order.h);
 *      the store keeps it current across compactions.
 *   4. seq is the creation sequence: the id of the user's user.created
 *      event, unique and increasing in creation order.
 *
 * Records are immutable once published in the indexes except for slot,
 * flags, failed_verifies and last_sign_in_ms: a change builds a new record
 * and swaps it in (the old pointer stays valid until the swap).
 */
#ifndef UD_RECORD_H
#define UD_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "userdb.h"

enum record_flag {
	REC_HAS_LOG = 1u << 0, /* the activity log holds this user's events */
	REC_LOADED = 1u << 1, /* filled by the cache loader: no created event */
	REC_AVATAR = 1u << 2, /* avatar present (may not be empty) */
	REC_PW_PACKED = 1u << 3, /* the hash is pwpack.h's binary form */
};

/* Largest value of each packed header field.  The lengths cover what
 * validation admits (userdb.h: UD_ID_MAX, UD_NAME_MAX_BYTES, ...; the
 * asserts below) with room to spare.  Etags and sequence numbers are 48
 * bits: a store making a million changes a second takes nine years to run
 * out, and then refuses writes (db_commit). */
#define REC_ID_LEN_MAX	   127u
#define REC_EMAIL_LEN_MAX  255u
#define REC_NAME_LEN_MAX   1023u
#define REC_AVATAR_LEN_MAX 4095u
#define REC_CUSTOM_LEN_MAX 65535u
#define REC_IDENT_LEN_MAX  ((1u << 24) - 1)
#define REC_PW_LEN_MAX	   255u
#define REC_COUNTER_MAX	   ((UINT64_C(1) << 48) - 1)

/*
 * The header is 56 bytes, not the 64 that plain fields took: a record of
 * the benchmark's shape is 56 + ~125 bytes, which malloc serves from a
 * 192-byte chunk where 64 + 125 took 208 (glibc adds 8 bytes and rounds to
 * 16): 16 bytes a user, 6% of the store's memory at 1M users
 * (bench/mem_engine.c).  Small lengths, the role, status and flags share
 * words through bit-fields; the times stay whole int64 (RFC 3339 years
 * 0000-9999 need 49 bits).  Only the loop thread writes a published
 * record's mutable fields (flags share a word with seq), so the shared
 * words need no atomics.
 */
struct record {
	int64_t created_ms;
	int64_t updated_ms;
	int64_t last_sign_in_ms; /* -1 never */
	uint64_t etag : 48;
	uint64_t custom_len : 16;
	uint64_t seq : 48; /* creation sequence = created event id */
	uint64_t name_len : 10;
	uint64_t flags : 6;
	uint32_t slot; /* index in the order array */
	uint32_t failed_verifies;
	uint32_t ident_len : 24;
	uint32_t pw_len : 8;
	uint32_t avatar_len : 12;
	uint32_t id_len : 7;
	uint32_t email_len : 8;
	uint32_t role : 2;
	uint32_t status : 2;
	char data[];
};

_Static_assert(sizeof(struct record) == 56, "record header is 56 bytes");
_Static_assert(UD_ID_MAX <= REC_ID_LEN_MAX &&
		   UD_EMAIL_MAX <= REC_EMAIL_LEN_MAX &&
		   UD_NAME_MAX_BYTES <= REC_NAME_LEN_MAX &&
		   UD_AVATAR_MAX <= REC_AVATAR_LEN_MAX &&
		   UD_IDENTITIES_MAX <= REC_IDENT_LEN_MAX &&
		   UD_PWHASH_MAX <= REC_PW_LEN_MAX,
	       "what validation admits fits the header");
_Static_assert(UD_ROLES <= 4 && UD_STATUSES <= 4, "role/status fit 2 bits");

/* The variable fields of a record, borrowed, for record_new(). */
struct record_parts {
	const char *id;
	size_t id_len;
	const char *name;
	size_t name_len;
	const char *email;
	size_t email_len;
	const char *avatar; /* NULL: none */
	size_t avatar_len;
	const void *custom; /* NULL: {} */
	size_t custom_len;
	const void *ident; /* NULL: {} */
	size_t ident_len;
	const char *pw; /* NULL or "": no password */
	size_t pw_len;
	bool pw_packed; /* pw is packed (pwpack.h), not text */
};

/* Allocate a record holding copies of parts; header fields other than the
 * lengths and REC_AVATAR are zero (last_sign_in_ms -1).  Returns NULL when
 * out of memory or when a length exceeds its field (caller validated). */
struct record *record_new(const struct record_parts *p);
/* record_new() in two steps, for a caller with its own memory: the bytes
 * the record of p takes (0 when a length exceeds its field), and building
 * it in mem (that many bytes, aligned like a struct record). */
size_t record_need(const struct record_parts *p);
struct record *record_init(void *mem, const struct record_parts *p);
/* Fill parts with pointers into r (borrowed from r); the hash as stored
 * (pw_packed says which form). */
void record_parts(const struct record *r, struct record_parts *p);
/* The hash of parts as text, into out[UD_PWHASH_MAX]: p->pw itself when
 * it is text, else unpacked into out.  *len gets its length (0: none). */
const char *record_parts_pw_text(const struct record_parts *p,
				 char out[UD_PWHASH_MAX], size_t *len);
/* A copy of r with the same header and bytes; NULL when out of memory. */
struct record *record_dup(const struct record *r);
/* Bytes allocated for r (header + data), as counted in stats. */
size_t record_size(const struct record *r);

static inline const char *record_id(const struct record *r)
{
	return r->data;
}
static inline const char *record_name(const struct record *r)
{
	return r->data + r->id_len;
}
static inline const char *record_email(const struct record *r)
{
	return r->data + r->id_len + r->name_len;
}
static inline const char *record_avatar(const struct record *r)
{
	return record_email(r) + r->email_len;
}
static inline const char *record_custom(const struct record *r)
{
	return record_avatar(r) + r->avatar_len;
}
static inline const char *record_ident(const struct record *r)
{
	return record_custom(r) + r->custom_len;
}
static inline const char *record_pw(const struct record *r)
{
	return record_ident(r) + r->ident_len;
}

/* Fill a public view of r (borrowed). */
void record_view(const struct record *r, struct ud_user_view *v);

#endif
