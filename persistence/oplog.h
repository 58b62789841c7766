/*
 * oplog.h -- the append-only log: segments, group commit, fsync policy,
 * and the "unavailable" state after a disk failure.
 *
 * Files.  The log is a sequence of segment files DATA_DIR/log-<16 hex
 * seq>.ulog, where seq is the sequence number of the segment's first
 * record.  Each segment is a file header and records as laid out in
 * frame.h; records are numbered +1 across segments (invariant 1 there).
 * A new segment starts when a snapshot begins (oplog_rotate), so a
 * snapshot covers exactly the segments before the current one.
 *
 * Group commit.  oplog_append() (the engine's journal callback) only frames
 * the record into an in-memory batch.  oplog_flush() writes the whole batch
 * with one pwrite(2) (looping on short writes) at the end of the last good
 * record, then, in UD_FSYNC_ALWAYS, fdatasyncs once.  The server calls
 * oplog_flush_async() instead, once per event-loop iteration before any
 * reply leaves, so one write serves every request of that iteration.  In
 * UD_FSYNC_EVERYSEC a thread fdatasyncs a dup() of the segment's fd once a
 * second when something was written; UD_FSYNC_NO never syncs except at
 * rotation and close.
 *
 * The syncer (UD_FSYNC_ALWAYS).  oplog_flush_async() writes the batch like
 * oplog_flush() but does not wait for the disk: it asks the syncer thread
 * to fdatasync up to the new end and returns.  The syncer runs one
 * fdatasync at a time; what was written meanwhile is covered by its next
 * one, so under load one fdatasync serves many loop iterations (group
 * commit) while the loop goes on answering reads.  After each fdatasync
 * it writes to an eventfd (oplog_wake_fd()) so the owner thread's loop
 * wakes, takes the result and releases what became durable.
 * Durable seq (oplog_durable_seq()): the last record that the fsync mode
 * promises is kept: in UD_FSYNC_ALWAYS the last one fdatasynced, in the
 * other modes the last one written (SPEC §5: a reply leaves once its
 * write is in the log file).  It only grows.
 * Bytes written but not yet synced stay in memory (`pend`) until the
 * syncer has covered them.  If its fdatasync fails, they go back in front
 * of the batch, the file is cut back to the last synced byte and the log
 * becomes unavailable; the retry writes and fdatasyncs them again on the
 * owner thread (a failed fdatasync may have dropped dirty pages, so the
 * bytes are written again rather than synced again).
 *
 * Measured (issue 14): `bench/fsync_p99.sh 100000 5` (get_by_id, 10
 * connections, one request in flight each, while 50 connections create;
 * shared busy 2-core VM, an fdatasync here about 0.13 ms).  Before the
 * syncer every loop iteration with a write in it waited for its fdatasync
 * before any reply of the iteration left: read p99 always 5.7 ms vs
 * everysec 4.9 ms (1.17x), reads 17k/s.  With it: always 0.90 ms vs
 * everysec 5.8 ms, reads 58k/s, creates 18k/s (27k before: the reads
 * now take their share of the two cores).
 *
 * Failure (ENOSPC, EIO, fsync failure).  The bytes past the last good
 * record are cut off (ftruncate), the batch is KEPT (its mutations are
 * already in memory and their replies are held by the caller) and the log
 * becomes unavailable: oplog_append() refuses with UD_EUNAVAILABLE, reads
 * are unaffected.  oplog_flush() and oplog_tick() retry writing the same
 * batch; the first success clears the state.  Because the retry writes the
 * identical bytes at the identical offset, even a failed ftruncate leaves
 * no stale record behind.  A failed everysec fsync also makes the log
 * unavailable until a retried fdatasync succeeds.
 *
 * State (owner thread, plus the fsync thread where marked):
 *
 *     AVAILABLE --flush fails / sync thread fails--> UNAVAILABLE
 *     UNAVAILABLE --oplog_flush/oplog_tick retry ok--> AVAILABLE
 *
 * Invariants:
 *   1. good_size is the size of the current segment up to its last record
 *      that was written successfully; the file holds nothing else that a
 *      reader could take for a record.
 *   2. next_seq - 1 is the seq of the last record appended (batched or
 *      written); batch holds records written_seq+1 .. next_seq-1.
 *   3. The batch is empty whenever the log is rotated.
 *   4. durable_seq <= written_seq <= next_seq - 1; pend holds exactly the
 *      bytes [pend_off, good_size) of the current segment, the records
 *      durable_seq+1 .. written_seq (UD_FSYNC_ALWAYS; empty otherwise).
 */
#ifndef UD_OPLOG_H
#define UD_OPLOG_H

#include <stdbool.h>
#include <stdint.h>

#include "fault.h"
#include "userdb.h"

struct oplog;

/* One live segment as found by recovery or created since. */
struct oplog_seg {
	uint64_t first_seq;
	uint64_t bytes; /* file size (the current one: good size) */
};

/* Where recovery left the log: the existing segments in order (the last
 * one is appended to; nseg may be 0), the size of its intact prefix, and
 * the seq the next record gets. */
struct oplog_start {
	const struct oplog_seg *segs;
	size_t nseg;
	uint64_t next_seq;
};

/* Open the log of dir for appending (dir is copied; fault is borrowed and
 * must outlive the log).  Truncates the last segment to its good size,
 * creates a first segment when there is none (or the last one has no valid
 * header), and starts the fsync thread for UD_FSYNC_EVERYSEC.  Returns 0
 * and *out, or UD_EIO / UD_ENOMEM with err. */
int oplog_open(const char *dir, const struct oplog_start *st,
	       enum ud_fsync mode, struct fault *fault, struct oplog **out,
	       struct ud_error *err);
/* Flush, sync (every mode), stop the thread, close.  NULL is a no-op. */
void oplog_close(struct oplog *o);

/* Journal callback (ud_journal_fn): frame rec into the batch.  Returns 0,
 * UD_EUNAVAILABLE while the log is unavailable, UD_ETOOLARGE for a record
 * over FRAME_REC_MAX, UD_ENOMEM. */
int oplog_append(void *o, const void *rec, size_t len);
/* Write the batch (see above).  0, or UD_EUNAVAILABLE. */
int oplog_flush(struct oplog *o);
/* The same without waiting for fdatasync in UD_FSYNC_ALWAYS (the syncer
 * does it); in the other modes the same as oplog_flush(). */
int oplog_flush_async(struct oplog *o);
/* The last record durable as the mode promises (see above); takes the
 * syncer's results first. */
uint64_t oplog_durable_seq(struct oplog *o);
/* UD_FSYNC_ALWAYS: an eventfd that becomes readable after each fdatasync
 * of the syncer (the caller reads 8 bytes to clear it); -1 otherwise.
 * Owned by the log. */
int oplog_wake_fd(const struct oplog *o);
/* Periodic work: pick up an fsync-thread failure, retry when unavailable. */
void oplog_tick(struct oplog *o);
/* fdatasync the current segment now (any mode).  0 or UD_EUNAVAILABLE. */
int oplog_sync(struct oplog *o);

/* Start a new segment at next_seq (flushes first).  A no-op when the
 * current segment holds no record.  Returns 0, UD_EUNAVAILABLE when the
 * batch cannot be written, or UD_EIO (the log stays on the old segment). */
int oplog_rotate(struct oplog *o, struct ud_error *err);
/* Delete the segments all of whose records have seq <= upto (never the
 * current one).  Failures to unlink are ignored: recovery skips covered
 * segments. */
void oplog_remove_covered(struct oplog *o, uint64_t upto);

bool oplog_unavailable(const struct oplog *o);
uint64_t oplog_last_seq(const struct oplog *o);	 /* next_seq - 1 */
uint64_t oplog_bytes(const struct oplog *o);	 /* live segments */
uint64_t oplog_records(const struct oplog *o);	 /* written since open */
size_t oplog_batch_bytes(const struct oplog *o); /* not yet written */
int oplog_last_errno(const struct oplog *o);	 /* of the last failure */

/* Where the next record will start: the current segment's first seq and
 * the offset just past the last record appended (written or batched). */
void oplog_tell(const struct oplog *o, uint64_t *seg, uint64_t *off);
/* The first seq of the live segment after the one starting at seg (the
 * oldest live one when seg is older than all), 0 when there is none. */
uint64_t oplog_seg_next(const struct oplog *o, uint64_t seg);

/* Name of a segment: "log-<16 hex>.ulog" into out[32]. */
void oplog_seg_name(uint64_t first_seq, char out[32]);

#endif
