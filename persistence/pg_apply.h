/*
 * pg_apply.h -- applying a row change from the replication stream
 * (pg_repl.h) to a store: another node's write or a SQL client's.
 *
 * Rules.
 *  0. A change this node's writer committed (c->own, its replication
 *     origin) is skipped: memory applied it before it was sent.
 *  1. users INSERT/UPDATE with version V from anyone else: skipped when
 *     memory holds the user at ETag V already; else the row becomes the
 *     user's whole state with ETag V (even when memory's ETag is higher:
 *     memory then held an optimistic write PostgreSQL refused), through
 *     ud_db_apply_foreign() and so through the engine's checks (a row it
 *     cannot accept changes nothing and is refused), with a user.created
 *     (new) or user.updated event.
 *  2. users DELETE: the user leaves memory with a user.deleted event;
 *     skipped when memory does not have it.
 *  3. A column that came as unchanged TOAST keeps memory's value.
 *  4. events rows are not applied (each node logs what it applies).
 *
 * Returns 0 (applied), 1 (skipped) or a negative code with the reason in
 * err (refused: the caller logs and counts it).  Loop thread only.
 */
#ifndef UD_PG_APPLY_H
#define UD_PG_APPLY_H

#include <stdint.h>

#include "pg_repl.h"

int pg_apply_change(ud_db *db, const struct pg_row_change *c, int64_t now_ms,
		    struct ud_error *err);

/* Put user id back to the state PostgreSQL holds: row (PG_USERS_COLS
 * order, as pg_row_put reads it) or NULL when PostgreSQL has no such row.
 * The rollback of writes PostgreSQL refused or whose outcome was lost
 * (pg_write.h): no event, so nothing reaches the activity log or the
 * change stream; applied even when memory's ETag equals the row's (memory
 * may hold a refused write that happened to get the same version).
 * Returns 0, 1 (nothing to do) or a negative code with err. */
/* The change stream's view of users row change c (after it was applied,
 * or skipped as this node's own): a change record whose user is the row
 * (unchanged TOAST columns from memory), with a placeholder event
 * (user.updated, id 1; a delete's user.deleted) that the caller replaces
 * (ud_change_decode reads it).  *at_ms: the row's updated_at (a delete:
 * left as given).  0 or a negative code with err. */
int pg_apply_describe(ud_db *db, const struct pg_row_change *c,
		      struct ud_buf *rec, int64_t *at_ms, struct ud_error *err);

int pg_apply_restore(ud_db *db, const char *id, size_t id_len,
		     const struct pg_val *row, struct ud_error *err);

#endif
