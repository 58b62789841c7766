/*
 * valid.h -- the rules of SPEC §1, one function per field.
 *
 * Each returns 0 or UD_EINVAL with err->field set to the field's wire name and
 * a message saying which rule failed.  Pure functions: thread-safe, no
 * allocation (except valid_mp_object's scratch for maps of more than 16 keys),
 * no store access (uniqueness is the store's business).
 */
#ifndef UD_VALID_H
#define UD_VALID_H

#include "userdb.h"

/* Caller-supplied id: ^usr_[A-Za-z0-9_-]{1,60}$ */
int valid_id(const char *s, size_t n, struct ud_error *err);
/* 1..128 code points of valid UTF-8, no control characters (C0, DEL, C1). */
int valid_name(const char *s, size_t n, struct ud_error *err);
/* <= 254 bytes, local@domain, a dot inside the domain, no spaces or
 * control characters, valid UTF-8. */
int valid_email(const char *s, size_t n, struct ud_error *err);
/* http:// or https:// URL with a host, <= 2048 bytes, no spaces/controls. */
int valid_avatar(const char *s, size_t n, struct ud_error *err);
/* A msgpack map, well formed, exactly n bytes, <= 8 KiB, string keys (none
 * twice in one map, no NUL), nesting <= 32.  `field` names the field for the
 * error ("custom_data", "details"). */
int valid_mp_object(const void *mp, size_t n, const char *field,
		    struct ud_error *err);
/* 8..256 bytes. */
int valid_password(size_t n, struct ud_error *err);
/* Encoded "$argon2id$..." or "$argon2i$...", < UD_PWHASH_MAX bytes. */
int valid_password_hash(const char *s, size_t n, struct ud_error *err);
/* Identity target: 1..64 of [A-Za-z0-9_.-]; user_id: 1..256 bytes UTF-8. */
int valid_identity(const char *target, size_t tn, const char *uid, size_t un,
		   struct ud_error *err);

/* UD_EINVAL for an unknown key (of a request body, query string or RPC map).
 * The key is not static, so a sanitised copy (controls and non-ASCII as '?',
 * at most 64 bytes) is kept at the end of err->message and err->field
 * points there: valid as long as *err is, and not after copying *err.
 * `what` names the kind of key ("field", "query parameter"). */
int valid_unknown_key(const char *what, const char *key, size_t n,
		      struct ud_error *err);

#endif
