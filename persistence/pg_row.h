/*
 * pg_row.h -- the row codec: a row of userdb.users / userdb.events <-> the
 * engine's change records (journal.h).
 *
 * Free of server and connection code (it never calls libpq), so the start-
 * up load, the replication reader and the embedded connector share it.
 *
 * Row form (what PostgreSQL's text output gives and what the write path
 * binds as text parameters): strings as they are, jsonb as JSON text,
 * times as integer milliseconds since the epoch (the SQL side converts
 * with to_timestamp / extract(epoch)), -1 for a NULL last_sign_in_at.
 *
 * Rows into records: pg_row_put builds a put with no event (the form a
 * snapshot holds) and pg_row_log the kept log of one user; whether the
 * engine accepts either is decided by ud_db_apply() and its checks, so a
 * hostile row is refused exactly as a damaged snapshot record would be.
 * Records into rows: pg_row_from_put / pg_row_event_from give the values
 * of a write (pg_write.c).
 *
 * Ownership: inputs are borrowed for the call; outputs are appended to the
 * caller's struct ud_buf.  Pure and thread-safe.
 */
#ifndef UD_PG_ROW_H
#define UD_PG_ROW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "userdb.h"

/* One borrowed text value (NULL for SQL NULL). */
struct pg_val {
	const char *s;
	size_t n;
};

/* Column order of PG_USERS_SELECT and of struct pg_user_row. */
enum pg_user_col {
	PGU_ID,
	PGU_NAME,
	PGU_EMAIL,
	PGU_ROLE,
	PGU_STATUS,
	PGU_AVATAR,
	PGU_CUSTOM,
	PGU_IDENT,
	PGU_PWHASH,
	PGU_SIGNIN_MS,
	PGU_CREATED_MS,
	PGU_UPDATED_MS,
	PGU_VERSION,
	PGU_FAILED,
	PGU__COUNT
};
#define PG_USERS_COLS                                                          \
	"id, name, email, role, status, avatar, custom_data::text,"            \
	" identities::text, password_hash,"                                    \
	" coalesce(floor(extract(epoch FROM last_sign_in_at) * 1000), -1)"     \
	"::bigint,"                                                            \
	" floor(extract(epoch FROM created_at) * 1000)::bigint,"               \
	" floor(extract(epoch FROM updated_at) * 1000)::bigint,"               \
	" version, failed_verifies"

enum pg_event_col {
	PGE_ID,
	PGE_USER_ID,
	PGE_EVENT,
	PGE_MS,
	PGE_DETAILS,
	PGE__COUNT
};
#define PG_EVENTS_COLS                                                         \
	"id, user_id, event,"                                                  \
	" floor(extract(epoch FROM created_at) * 1000)::bigint, details::text"

/* Append the put of the user in row v[PGU__COUNT] with creation sequence
 * seq, and event ev_type (enum ud_event; -1: none, as in a snapshot) with
 * id ev_id at the row's updated_at (created_at for user.created), details
 * {}.  0, UD_EINVAL (reason in err: a column that is not what its type
 * needs, JSON that does not parse, a length the record cannot hold) or
 * UD_ENOMEM. */
int pg_row_put(const struct pg_val *v, uint64_t seq, int ev_type,
	       uint64_t ev_id, struct ud_buf *out, struct ud_error *err);
/* Append the delete of user id with event user.deleted (ev_id, ms); ev_id
 * 0: no event (a rollback, ud_db_restore). */
int pg_row_delete(const char *id, size_t id_len, uint64_t ev_id, int64_t ms,
		  struct ud_buf *out);
/* Milliseconds of a timestamptz in ISO text form at UTC
 * ("2025-01-20 15:00:00.123456+00"), truncated.  0 or -1. */
int pg_row_time(const char *s, size_t n, int64_t *ms);

/* One event row, parsed (borrows the row, except details: msgpack in the
 * caller's buffer). */
struct pg_event {
	uint64_t id;
	int type; /* enum ud_event */
	int64_t ms;
	size_t details_off, details_len; /* in the details buffer */
};
/* Parse event row v[PGE__COUNT], appending its details as msgpack to
 * details.  0 or UD_EINVAL / UD_ENOMEM. */
int pg_row_event(const struct pg_val *v, struct pg_event *e,
		 struct ud_buf *details, struct ud_error *err);
/* Append the log record of user id with events ev[0..n) (oldest first,
 * details in details).  deleted: the user is gone.  0 or UD_ENOMEM. */
int pg_row_log(const char *id, size_t id_len, bool deleted,
	       const struct pg_event *ev, size_t n,
	       const struct ud_buf *details, struct ud_buf *out);
/* The counters record a load starts with. */
int pg_row_counters(uint64_t last_etag, uint64_t last_event, int64_t last_ms,
		    struct ud_buf *out);

/* Parse a decimal int64 of n bytes (a bigint column).  0 or -1. */
int pg_row_int(const char *s, size_t n, int64_t *out);
/* The enum ud_event of "user.created" etc., or -1. */
int pg_row_event_type(const char *s, size_t n);

/* ---- records into rows (the write path) ---------------------------------
 *
 * pg_row_params: the text parameters of the statement that commits one
 * journaled record.  kind says which statement (pg_write.c's table); p[]
 * points into txt (and the record), valid while both live. */
enum pg_stmt {
	PGS_NONE,   /* nothing to write (counters) */
	PGS_CREATE, /* $1..$15 user (PG_USERS_COLS order + folded email
		     * fourth), $16..$18 event (name, ms, details) */
	PGS_UPDATE, /* the same + $19 the version memory held before */
	PGS_DELETE, /* $1 id, $2 old version, $3..$5 event */
	PGS_EVENT,  /* $1 id, $2 failed_verifies, $3..$5 event */
};
#define PG_ROW_PARAMS 19
struct pg_row_params {
	enum pg_stmt kind;
	int n;
	const char *p[PG_ROW_PARAMS];
	int len[PG_ROW_PARAMS];
	struct ud_buf txt; /* owns the converted values; ud_buf_free it */
};
/* Fill out from change record rec[0..n).  old_version: the stored version
 * of the user before this change (0 when it did not exist);
 * failed_verifies: the user's count after a failed verification (PGS_EVENT).
 * 0, UD_EINVAL (a record this codec cannot write) or UD_ENOMEM. */
int pg_row_params(const void *rec, size_t n, uint64_t old_version,
		  uint32_t failed_verifies, struct pg_row_params *out);

#endif
