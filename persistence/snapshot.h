/*
 * snapshot.h -- snapshots: the whole state as change records in one file.
 *
 * Layout: a file header of kind FRAME_SNAP whose seq is the last log
 * sequence number the snapshot covers, then records numbered 1..n, then an
 * end marker (magic FRAME_END_MAGIC, len 0, seq n); see frame.h.  The file
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
 * writer also in the child).  No globals.
 */
#ifndef UD_SNAPSHOT_H
#define UD_SNAPSHOT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

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

/* Check the snapshot at path and, when apply is non-NULL and the whole file
 * is sound, apply its records in order.  Returns 0 and *covered, *records;
 * UD_ECORRUPT with "file: reason at offset N" in err; UD_EIO. */
int snap_load(const char *path, snap_apply_fn apply, void *ctx,
	      uint64_t *covered, uint64_t *records, struct ud_error *err);

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
