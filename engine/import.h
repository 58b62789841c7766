/*
 * import.h -- a create that keeps what an export wrote (SPEC §9).
 *
 * An imported user keeps its own created_at, updated_at, last_sign_in_at
 * and identities, where ud_user_create() would stamp the clock and start
 * with none.  It is still one create: one user.created change record,
 * journaled like any other, so a crash mid-import leaves whole users.
 *
 * The store's invariants limit the times (db.h: creation order is also
 * created_at order, and the clock only moves forward past what was
 * applied):
 *   - created_at is not before the newest user's created_at (an export
 *     imported in its own order into an empty store, or after older users,
 *     always satisfies this);
 *   - no time is later than the store's clock (a time in the future would
 *     drag every later timestamp along with it);
 *   - created_at <= updated_at; last_sign_in_at any time up to the clock.
 * A line breaking one is refused with UD_EINVAL naming the field.
 *
 * Threads: as the store (owner thread).  No hashing happens here: a plain
 * password is refused (the caller hashes off its loop and passes the hash).
 */
#ifndef UD_IMPORT_H
#define UD_IMPORT_H

#include "userdb.h"

#define UD_IMPORT_NO_TIME INT64_MIN /* a time the line did not give */

/* The parts of an import line that a create does not take.  Borrowed. */
struct ud_import_extra {
	int64_t created_ms;	 /* UD_IMPORT_NO_TIME: now */
	int64_t updated_ms;	 /* UD_IMPORT_NO_TIME: created */
	int64_t last_sign_in_ms; /* UD_IMPORT_NO_TIME or -1: never */
	const void *identities;	 /* msgpack map (checked by the caller's
				    parser), NULL: {} */
	size_t identities_len;
	bool checked; /* the caller already ran ud_fields_validate(f, true)
			 on these fields (a parser on another thread did) */
};

/* Create the user of f (validated like ud_user_create unless x->checked;
 * UD_F_PASSWORD refused) with x's times and identities.  Returns 0 (*out, which
 * may be NULL, borrowed like a get) or the create's codes: UD_EINVAL,
 * UD_EDUPID, UD_EDUPEMAIL, UD_EUNAVAILABLE, UD_ENOMEM. */
int ud_user_import(ud_db *db, const struct ud_fields *f,
		   const struct ud_import_extra *x, const ud_user **out,
		   struct ud_error *err);

/* on_conflict=update: set on the existing user u what line (f, x) gives,
 * as one journaled change (a user.updated event whose details name the
 * changed fields, "password" and "identities" included): name, email, role,
 * status, avatar, custom_data, password_hash, identities (the whole map),
 * last_sign_in_at and updated_at (when absent: now).  created_at, when
 * given, must be the user's own (it cannot move: creation order), and
 * updated_at may not go back past the user's current one nor pass now.  A
 * line that changes nothing makes no change.  Returns 0 (*out, may be NULL)
 * or UD_EINVAL, UD_EDUPEMAIL (the email is another user's),
 * UD_EUNAVAILABLE, UD_ENOMEM. */
int ud_user_import_update(ud_db *db, const ud_user *u,
			  const struct ud_fields *f,
			  const struct ud_import_extra *x, const ud_user **out,
			  struct ud_error *err);

#endif
