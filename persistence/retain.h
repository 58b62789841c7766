/*
 * retain.h -- the log segments kept for the change stream, and reading the
 * changes back out of them.
 *
 * Where the retained changes live.  A log record already carries a whole
 * change: the user after it (a put), the event with its id (the change's
 * seq, journal.h), time and details.  So the change stream keeps no file
 * of its own: after a snapshot the log keeps every segment that holds one
 * of the last `changes_keep` records (struct ud_options) and removes only
 * the segments before them, instead of every segment the snapshot covers.
 * Every live log record is one change (puts, deletes and failed
 * verifications; counters and kept logs appear only in snapshots), so the
 * last N records are the last N changes.  The byte layout is the log's own
 * (frame.h: file header, then [len | crc | seq | payload] records; the
 * payload is the change record of change.c).
 *
 * Bounds.  Disk: the snapshot, plus the segments holding the last N
 * records, plus what was written since the last snapshot (one segment per
 * snapshot interval), so disk stays bounded by N and the interval.  A
 * restart replays only the records after the snapshot; retained records
 * before it are checked by recovery (recover.h rule 2) and read once more
 * by retain_scan() to rebuild the stream's window.
 *
 * Threads: the store's owner thread.
 */
#ifndef UD_RETAIN_H
#define UD_RETAIN_H

#include <stdint.h>

#include "oplog.h"
#include "userdb.h"

/* The highest log seq whose segments may go after a snapshot covering
 * `covered`: min(covered, last - keep), 0 while fewer than keep records
 * exist.  keep 0: covered. */
uint64_t retain_upto(const struct oplog *o, uint64_t covered, uint64_t keep);

/* Called with each record of the data dir's log segments, oldest first
 * (payload borrowed for the call).  Non-zero stops the scan. */
typedef int (*retain_fn)(void *ctx, uint64_t log_seq, const void *payload,
			 size_t len);

/* Read every intact record of db's log segments in order (call before any
 * write).  0, the callback's code, UD_EINVAL for a store without a data
 * dir, UD_EIO with err. */
int retain_scan(ud_db *db, retain_fn fn, void *ctx, struct ud_error *err);

#endif
