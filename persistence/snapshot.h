/*
 * snapshot.h -- snapshots: the whole state as change records in one file.
 *
 * Layout: a file header of kind FRAME_SNAP whose seq is the last log
 * sequence number the snapshot covers, then records numbered 1..n, then an
 * end marker (magic FRAME_END_MAGIC, len 0, seq n); see frame.h.  Written
 * compressed (zstd blocks around that same body, frame.h's version 2);
 * uncompressed files of earlier releases load as before.  The file
 * is DATA_DIR/snap-<16 hex covered seq>.usnap.  It is written as
 * "<name>.inprogress", fdatasynced, renamed into place, and the directory
 * is fsynced: a snapshot that is visible under its final name is complete
 * (a crash leaves at most an .inprogress file, removed at the next start).
 * A reader still checks every record and the end marker, and loads nothing
 * unless the whole file checks out.
 *
 * Why fork().  The snapshot must be written while clients keep being
 * served, and it must be a consistent cut at one log sequence number.  A
 * forked child sees the store frozen at the moment of the fork through
 * copy-on-write pages, without locks in the engine, without copying the
 * data up front, and without slowing the owner thread beyond the fork
 * itself (page-table copy: a few ms per GB) and the pages it later dirties.
 * The child only reads (ud_db_dump is fork-safe), writes its file and
 * _exit()s; the parent reaps it with waitpid(WNOHANG) from ud_tick().  A
 * pipe carries the child's result (bytes written or an error message).
 * The child is killed when its parent dies (PR_SET_PDEATHSIG): after a
 * crash it would otherwise hold the inherited lock and sockets until done,
 * and its file is only an .inprogress that the next start removes.  (The
 * signal follows the forking thread: fork from the store's owner thread.)
 *
 * Thread assumptions: all functions run on the store's owner thread (the
 * writer also in the child).  snap_apply() with a struct snap_stage starts
 * one helper thread for the call (every signal blocked in it) and joins it
 * before returning; only the stage's prepare runs there.  No globals.
 */
#ifndef UD_SNAPSHOT_H
#define UD_SNAPSHOT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "datadir.h"
#include "journal.h"
#include "userdb.h"

/* Emits the state through emit (ud_db_dump's shape). */
typedef int (*snap_dump_fn)(void *src, ud_journal_fn emit, void *emit_ctx);
/* Applies one record (ud_db_apply's shape). */
typedef int (*snap_apply_fn)(void *ctx, const void *rec, size_t len,
			     struct ud_error *err);

/* "snap-<16 hex>.usnap" into out[32]. */
void snap_name(uint64_t covered, char out[32]);

/* Failures to inject into one snapshot (fault.h's snap* ops): an errno
 * value, or 0 for none.  write: the first write fails with it, or with
 * FAULT_SHORT every write is short (and looped over); sync: the file's
 * fdatasync; rename; dirsync: the directory fsync after the rename. */
struct snap_faults {
	int write, sync, rename, dirsync;
};

/* Write a snapshot of src covering log seq `covered` into dir, synchronously
 * (the child of snap_job_start() calls this).  fail (NULL: none) injects
 * failures.  Returns 0 and *bytes (the file size), or UD_EIO / UD_ENOMEM
 * with err; nothing is left behind on failure.  A failed directory fsync
 * fails the snapshot too (its rename may not be durable, so it must not
 * let the log it covers go), and the renamed file is removed again. */
int snap_write(const char *dir, uint64_t covered, snap_dump_fn dump, void *src,
	       const struct snap_faults *fail, uint64_t *bytes,
	       struct ud_error *err);
/* The same at a zstd level: 0 writes an uncompressed (version 1) file, as
 * releases before compression did; snap_write uses SNAP_ZSTD_LEVEL.  Both
 * versions load (frame.h, snapshot.c). */
#define SNAP_ZSTD_LEVEL 1
int snap_write_level(const char *dir, uint64_t covered, int level,
		     snap_dump_fn dump, void *src,
		     const struct snap_faults *fail, uint64_t *bytes,
		     struct ud_error *err);

/* Check the snapshot at path and, when apply is non-NULL and the whole file
 * is sound, apply its records in order.  Returns 0 and *covered, *records;
 * UD_ECORRUPT with "file: reason at offset N" in err; UD_EIO.  (*covered is
 * also set when only the file header is sound.) */
int snap_load(const char *path, snap_apply_fn apply, void *ctx,
	      uint64_t *covered, uint64_t *records, struct ud_error *err);

/* ---- loading in two stages, on two threads ----------------------------
 *
 * A snapshot is loaded in two passes over one mapping of the file: pass 1
 * (snap_open) checks every record's checksum and numbering and the end
 * marker; only when the whole file is sound does pass 2 (snap_apply)
 * apply anything.  Given a struct snap_stage, pass 2 splits applying a
 * record in two: prepare (decode, the checks that need no store, hashing)
 * runs on a helper thread and on the caller's thread alike, SNAP_BATCH
 * records at a time, at most SNAP_RING batches ahead; apply (the checks
 * against the store, then the insert) runs on the caller's thread in file
 * order.  So the store sees the same records in the same order as with a
 * snap_apply_fn, and the first record that fails, in file order, is the one
 * reported ("record at offset N cannot be applied: ..."), after the ones
 * before it were applied, exactly as one thread would.
 *
 * Synchronisation is one mutex and one condition variable, taken once per
 * batch (~2000 times at 1M users), not per record.
 *
 * Measured at 1M users (200 MB snapshot, 2 cores): ud_open 2.5 s -> ~0.6 s;
 * the breakdown is in engine/load.c. */
#define SNAP_BATCH    512 /* records per batch */
#define SNAP_RING     8	  /* batches prepared ahead, at most */
#define SNAP_PREFETCH 4	  /* apply prefetches this many records ahead */

/* How many users a record adds, for a size hint: a peek, no decoding (the
 * record's checksum matched; it may still lie, costing memory only). */
typedef uint64_t (*snap_weigh_fn)(const void *rec, size_t len);

struct snap_stage {
	/* Before anything: weight = the file's records weighed by weigh (or
	 * its record count when weigh is NULL), a hint.  0 or UD_ENOMEM. */
	int (*begin)(void *ctx, uint64_t weight);
	snap_weigh_fn weigh;
	/* Room for n prepared records; NULL when out of memory.  batch_free
	 * also releases records prepared and never applied. */
	void *(*batch_new)(size_t n);
	void (*batch_free)(void *batch);
	/* Any thread, several at once on different batches: must not touch
	 * ctx or anything else shared.  rec is borrowed for the call. */
	int (*prepare)(void *batch, size_t i, const void *rec, size_t len,
		       struct ud_error *err);
	/* The caller's thread, in order: a hint, then the apply. */
	void (*prefetch)(void *ctx, void *batch, size_t i);
	int (*apply)(void *ctx, void *batch, size_t i, struct ud_error *err);
};

/* A snapshot file checked by pass 1 and kept mapped for pass 2. */
struct snap_file {
	struct datadir_map m;
	bool header_ok;	  /* the file header is sound (covered is valid) */
	bool inflated;	  /* compressed: m is the body on the heap */
	uint64_t covered; /* the header's seq */
	uint64_t records; /* without the end marker */
	uint64_t weight;  /* sum of weigh() over the records (see snap_open) */
	size_t *starts;	  /* offset of records 0, SNAP_BATCH, 2 SNAP_BATCH.. */
	size_t nstarts;
};

/* Map and check the snapshot at path (pass 1), weighing each record with
 * weigh (NULL: weight = records).  Returns 0 (close it with snap_close),
 * UD_ECORRUPT with "file: reason at offset N", UD_EIO or UD_ENOMEM (then
 * nothing to close; header_ok and covered stay readable). */
int snap_open(const char *path, snap_weigh_fn weigh, struct snap_file *f,
	      struct ud_error *err);
/* Pass 2: apply every record of f in order, with stage when non-NULL (two
 * threads, above) or else apply (this thread).  path names the file in
 * messages.  0, or UD_ECORRUPT naming the first record that failed. */
int snap_apply(const char *path, const struct snap_file *f, snap_apply_fn apply,
	       const struct snap_stage *stage, void *ctx, struct ud_error *err);
void snap_close(struct snap_file *f);

/* A snapshot being written by a child process. */
struct snap_job {
	pid_t pid; /* 0: none running */
	int pipe_fd;
	uint64_t covered;
};

struct snap_result {
	int code; /* 0 or a ud_code */
	uint64_t bytes;
	char message[192];
};

/* Fork a child that runs snap_write().  Returns 0, or UD_EIO when fork or
 * pipe fail.  j->pid must be 0. */
int snap_job_start(struct snap_job *j, const char *dir, uint64_t covered,
		   snap_dump_fn dump, void *src, const struct snap_faults *fail,
		   struct ud_error *err);
/* Reap the child: returns 0 while it runs (only when !wait), 1 when it has
 * finished (result filled, j->pid back to 0, a failed child's .inprogress
 * file removed). */
int snap_job_poll(struct snap_job *j, const char *dir, bool wait,
		  struct snap_result *res);

#endif
