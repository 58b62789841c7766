/*
 * fault.h -- fault injection for the persistence layer, and the I/O calls
 * that honour it.
 *
 * Every write, fdatasync and ftruncate that persistence issues goes through
 * the fault_* wrappers below.  Without UD_FAULT_INJECTION they are the plain
 * system calls.  With it (off by default, so nothing installed carries the
 * hooks; scripts/test.sh turns it on, and the tests are only built with it)
 * each store carries one struct fault: no globals.  Two ways to arm it:
 *
 *   - persist_fault_set(db, spec) (persist.h), from tests;
 *   - the environment variable USERDB_FAULT=spec, read once by ud_open(),
 *     so that a test can start userdb-server with a failing disk.
 *
 * spec is a comma-separated list of rules, "" clears them all:
 *
 *     op:err[:skip[:count]]        e.g. write:ENOSPC:0:3
 *     op:err:file=PATH             active while PATH exists
 *
 *   op     write        (log writes, including segment headers)
 *          fsync        (log fdatasync, in every fsync mode that calls it)
 *          trunc        (ftruncate of the log after a failed write)
 *          snap         (a snapshot: the child's first write fails; SHORT
 *                        counts as EIO)
 *          snapwrite    (a snapshot's writes: the first fails, or with
 *                        SHORT every one is short and the writer loops)
 *          snapsync     (the fdatasync of the snapshot file)
 *          snaprename   (the rename of .inprogress to the final name)
 *          snapdirsync  (the fsync of the data dir after the rename)
 *          The snap* ops are counted once per snapshot and decided by the
 *          parent before it forks (the child takes no lock it may have
 *          inherited held); see struct snap_faults in snapshot.h.
 *   err    ENOSPC, EIO, EDQUOT, SHORT (a write that writes half of what it
 *          was asked and reports it; the callers loop; no effect on the
 *          other calls), or PARTIAL (a disk filling up mid-write: the
 *          calls alternate between a SHORT write and ENOSPC, so half of
 *          the bytes reach the file before the failure), or SLOW (a
 *          slow disk: an fdatasync takes FAULT_SLOW_MS longer, then
 *          succeeds; no effect on the other calls)
 *   skip   calls that pass before the rule fires (default 0)
 *   count  calls that fail once it fires (default 1; "*" = until cleared)
 *
 * Thread assumptions: the everysec fsync thread and the owner thread both
 * consult the rules; a mutex inside struct fault serialises that.
 */
#ifndef UD_FAULT_H
#define UD_FAULT_H

#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>

#include "userdb.h"

enum fault_op {
	FAULT_WRITE = 0,
	FAULT_FSYNC,
	FAULT_TRUNC,
	FAULT_SNAP,
	FAULT_SNAP_WRITE,
	FAULT_SNAP_SYNC,
	FAULT_SNAP_RENAME,
	FAULT_SNAP_DIRSYNC,
	FAULT__OPS
};

#define FAULT_SHORT   (-1) /* pseudo errno: short write */
#define FAULT_PARTIAL (-2) /* rule only: SHORT, then ENOSPC, alternating */
#define FAULT_SLOW    (-3) /* pseudo errno: fdatasync sleeps, then syncs */
#define FAULT_SLOW_MS 1000
#define FAULT_RULES   16

struct fault_rule {
	int op;
	int err; /* errno value or FAULT_SHORT */
	long skip;
	long count; /* < 0: forever */
	char *file; /* NULL, or: active only while this path exists */
	bool half;  /* PARTIAL: the last call was the short write */
};

struct fault {
	pthread_mutex_t mu;
	int n;
	struct fault_rule rules[FAULT_RULES];
};

void fault_init(struct fault *f);
/* Free the rules and the mutex. */
void fault_destroy(struct fault *f);
/* Replace the rules with those of spec (copied).  Returns 0 or UD_EINVAL
 * (the rules are then unchanged).  Without UD_FAULT_INJECTION: UD_EINVAL
 * unless spec is empty. */
int fault_parse(struct fault *f, const char *spec, struct ud_error *err);
/* Consume one call of op: returns 0 (go ahead) or the errno / FAULT_SHORT
 * the call must fail with (never FAULT_PARTIAL).  f may be NULL. */
int fault_check(struct fault *f, int op);

/* Write all n bytes at off, looping on short writes and EINTR, under the
 * FAULT_WRITE rules (f may be NULL: no faults).  Returns 0 or -errno. */
int fault_pwrite_all(struct fault *f, int fd, const void *buf, size_t n,
		     off_t off);
/* fdatasync(fd); returns 0 or -errno. */
int fault_fdatasync(struct fault *f, int fd);
/* ftruncate(fd, len); returns 0 or -errno. */
int fault_ftruncate(struct fault *f, int fd, off_t len);

#endif
