/*
 * import_line.h -- one line of POST /v1/users/import parsed into what
 * ud_user_import() takes (SPEC §9).
 *
 * A line is a JSON object with the fields of POST /v1/users (fields.c's
 * rules: valid UTF-8, no duplicate keys, known keys, right types) plus what
 * an export writes: created_at, updated_at and last_sign_in_at (RFC 3339
 * UTC, the last one may be null), identities ({"target": {"user_id": s,
 * "details": {...}}}, stored as msgpack), has_password (a boolean, ignored)
 * and password_hash null (no hash).  The fields are checked with
 * ud_fields_validate(); what needs the store (uniqueness, the order of
 * creation times) is ud_user_import's to check.
 *
 * Threads: pure functions of their arguments, safe on any thread (the
 * import parses on the worker pool).
 */
#ifndef UD_NET_IMPORT_LINE_H
#define UD_NET_IMPORT_LINE_H

#include <stddef.h>

#include "import.h"
#include "userdb.h"

/* Parse line s[0..n) into f and x; every byte they point at is copied into
 * arena (the line may be freed).  x->checked is set: f passed
 * ud_fields_validate() for a create.  A plain `password` stays in f
 * (UD_F_PASSWORD, validated) for the caller to hash.  Returns 0, UD_EINVAL
 * (err names the field where one is at fault) or UD_ENOMEM. */
int import_line_parse(const char *s, size_t n, struct ud_fields *f,
		      struct ud_import_extra *x, struct ud_arena *arena,
		      struct ud_error *err);

#endif
