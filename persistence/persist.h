/*
 * persist.h -- internal controls of a store's persistence, for tests and
 * the server (not part of the embeddable API in userdb.h).
 */
#ifndef UD_PERSIST_H
#define UD_PERSIST_H

#include "userdb.h"

/* Replace the fault-injection rules of db (see fault.h for the syntax; ""
 * clears).  0, or UD_EINVAL for a bad spec or a store without a data dir.
 */
int persist_fault_set(ud_db *db, const char *spec, struct ud_error *err);

/* Message of the last failed snapshot ("" if none): valid until the next
 * call on db. */
const char *persist_snapshot_error(ud_db *db);

/* The data dir of db (NULL for a store in memory only); valid until
 * ud_close(). */
const char *persist_dir(ud_db *db);

/* The log of db (NULL for a store in memory only); valid until
 * ud_close(). */
struct oplog *persist_log(ud_db *db);

#endif
