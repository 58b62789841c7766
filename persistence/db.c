/*
 * db.c -- ud_open()/ud_close() and the persistence controls of userdb.h.
 *
 * Placeholder until the log and snapshots land: only memory-only stores
 * (data_dir == NULL) open; every control is a no-op.
 */
#include <string.h>

#include "journal.h"
#include "userdb.h"

int ud_open(const struct ud_options *opt, ud_db **out, struct ud_error *err)
{
	if (opt && opt->data_dir)
		return ud_error_set(err, UD_EINVAL, "data_dir",
				    "persistence is not built yet");
	*out = ud_db_new(opt ? opt : &ud_options_default, err);
	return *out ? 0 : (err ? err->code : UD_ENOMEM);
}

void ud_close(ud_db *db)
{
	if (db)
		ud_db_free(db);
}

int ud_flush(ud_db *db)
{
	return 0;
}

int ud_snapshot_start(ud_db *db, struct ud_error *err)
{
	return 0;
}

int ud_snapshot_sync(ud_db *db, struct ud_error *err)
{
	return 0;
}

uint64_t ud_snapshot_done(ud_db *db)
{
	return 0;
}

void ud_tick(ud_db *db)
{
}

bool ud_unavailable(ud_db *db)
{
	return false;
}

void ud_stats(ud_db *db, struct ud_stats *out)
{
	memset(out, 0, sizeof(*out));
	ud_db_stats(db, out);
	out->last_snapshot_ms = -1;
}
