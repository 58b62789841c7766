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
 * by retain_scan() to rebuild the stream's window index.
 *
 * Reading back.  The change stream keeps only positions in memory
 * (struct retain_pos) and reads older changes with retain_read(): pread(2)
 * of RETAIN_CHUNK bytes at a time from the segment file, records checked
 * by frame.h's validity rule, moving on to the next live segment at the
 * end of one.  Records are read only once written (oplog_flush), so the
 * reader never sees the batch; a record past good_size left by a failed
 * write fails its check or is overwritten identically (oplog.h).
 *
 * Threads: the store's owner thread.
 */
#ifndef UD_RETAIN_H
#define UD_RETAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "oplog.h"
#include "userdb.h"

/* The highest log seq whose segments may go after a snapshot covering
 * `covered`: min(covered, last - keep), 0 while fewer than keep records
 * exist.  keep 0: covered. */
uint64_t retain_upto(const struct oplog *o, uint64_t covered, uint64_t keep);

/* A place in the log: the segment (its first seq, as in its name) and a
 * byte offset in it, at a record's start or just past the last one. */
struct retain_pos {
	uint64_t seg;
	uint64_t off;
};

/* Called with each record, oldest first (payload borrowed for the call);
 * *end is the position just past it.  0 goes on; RETAIN_STOP stops before
 * this record (retain_read leaves its position at the record's start);
 * a negative code stops and is returned. */
#define RETAIN_STOP 1
typedef int (*retain_fn)(void *ctx, uint64_t log_seq, const void *payload,
			 size_t len, const struct retain_pos *end);

/* Read every intact record of db's log segments in order (call before any
 * write).  0, the callback's code, UD_EINVAL for a store without a data
 * dir, UD_EIO with err. */
int retain_scan(ud_db *db, retain_fn fn, void *ctx, struct ud_error *err);

/* The position where db's next record will start (past the last one
 * appended, written or batched).  false for a store without a log. */
bool retain_tell(ud_db *db, struct retain_pos *pos);

/* Read the intact records from *pos on, across live segments, calling fn
 * with each: until fn stops, about `max` payload bytes were read, or the
 * records written so far end (a record still in the batch is not read).
 * A segment removed meanwhile is skipped (the caller sees the gap in its
 * own numbering).  *pos is left past the last record taken; buf (the
 * caller's, reused) holds what was read.  0, fn's negative code, UD_EIO
 * with err, UD_EINVAL without a log. */
int retain_read(ud_db *db, struct retain_pos *pos, size_t max,
		struct ud_buf *buf, retain_fn fn, void *ctx,
		struct ud_error *err);

#endif
