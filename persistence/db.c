/*
 * db.c -- ud_open()/ud_close() and the persistence controls of userdb.h:
 * glue between the engine (journal.h) and the log, snapshot and recovery
 * modules.
 *
 * A store with a data dir owns one struct persist, hung on the engine's
 * db with ud_db_set_ext(); the engine's journal callback is oplog_append.
 *
 * Snapshot policy: one snapshot is kept.  When a snapshot is on disk, the
 * segments it covers and every older snapshot are deleted, so disk use is
 * bounded by one snapshot plus the log written since it began (SPEC §5).
 * Recovery still falls back to an older snapshot when one is present with
 * a log that reaches from it (for instance after a crash between the
 * rename and the clean-up).
 *
 * Thread assumptions: everything runs on the store's owner thread; the
 * oplog has its own fsync thread.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "datadir.h"
#include "fault.h"
#include "journal.h"
#include "oplog.h"
#include "persist.h"
#include "recover.h"
#include "retain.h"
#include "snapshot.h"
#include "userdb.h"

struct persist {
	ud_db *db;
	char *dir;
	int lock_fd;
	struct fault fault;
	struct oplog *log;
	struct snap_job job;
	unsigned interval;     /* seconds, 0 = on demand only */
	uint64_t changes_keep; /* log records kept past a snapshot */
	uint64_t snap_covered;
	uint64_t snap_done;
	uint64_t snap_failed;	  /* snapshots that failed to start or finish */
	int64_t last_snapshot_ms; /* wall clock, -1 never */
	uint64_t last_snapshot_bytes;
	int64_t last_attempt; /* monotonic ms */
	char *warnings;
	char snap_error[192];
};

static int64_t now_ms(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct persist *persist_of(ud_db *db)
{
	return db ? ud_db_ext(db) : NULL;
}

const char *persist_dir(ud_db *db)
{
	struct persist *p = persist_of(db);

	return p ? p->dir : NULL;
}

struct oplog *persist_log(ud_db *db)
{
	struct persist *p = persist_of(db);

	return p ? p->log : NULL;
}

static int apply_cb(void *ctx, const void *rec, size_t len,
		    struct ud_error *err)
{
	return ud_db_apply(ctx, rec, len, err);
}

/* The snapshot is loaded in two stages on two threads (engine/load.c). */
static int load_begin_cb(void *ctx, uint64_t users)
{
	return ud_load_begin(ctx, users);
}

static void *load_batch_new_cb(size_t n)
{
	return ud_load_batch_new(n);
}

static void load_batch_free_cb(void *batch)
{
	ud_load_batch_free(batch);
}

static int load_prepare_cb(void *batch, size_t i, const void *rec, size_t len,
			   struct ud_error *err)
{
	return ud_load_prepare(batch, i, rec, len, err);
}

static void load_prefetch_cb(void *ctx, void *batch, size_t i)
{
	ud_load_prefetch(ctx, batch, i);
}

static int load_apply_cb(void *ctx, void *batch, size_t i, struct ud_error *err)
{
	return ud_load_apply(ctx, batch, i, err);
}

static const struct snap_stage persist_load_stage = {
    .begin = load_begin_cb,
    .weigh = ud_load_weigh,
    .batch_new = load_batch_new_cb,
    .batch_free = load_batch_free_cb,
    .prepare = load_prepare_cb,
    .prefetch = load_prefetch_cb,
    .apply = load_apply_cb,
};

static int dump_cb(void *src, ud_journal_fn emit, void *ctx)
{
	return ud_db_dump(src, emit, ctx);
}

/* Delete every snapshot older than `keep`. */
static void remove_old_snapshots(struct persist *p, uint64_t keep)
{
	struct datadir_list l;
	char name[32], path[4096];

	if (datadir_list(p->dir, &l, NULL))
		return;
	for (size_t i = 0; i < l.nsnap; i++) {
		if (l.snaps[i] >= keep)
			continue;
		snap_name(l.snaps[i], name);
		if (datadir_path(path, sizeof(path), p->dir, name) == 0)
			unlink(path);
	}
	datadir_list_free(&l);
}

static void snapshot_finished(struct persist *p, const struct snap_result *r)
{
	if (r->code) {
		memcpy(p->snap_error, r->message, sizeof(p->snap_error));
		p->snap_failed++;
		return;
	}
	p->snap_error[0] = 0;
	p->snap_done++;
	p->last_snapshot_ms = now_ms(CLOCK_REALTIME);
	p->last_snapshot_bytes = r->bytes;
	p->snap_covered = p->job.covered;
	remove_old_snapshots(p, p->job.covered);
	oplog_remove_covered(
	    p->log, retain_upto(p->log, p->job.covered, p->changes_keep));
}

/* Reap the snapshot child if it has finished (or wait for it). */
static void snapshot_poll(struct persist *p, bool wait)
{
	struct snap_result r;

	if (!p->job.pid || snap_job_poll(&p->job, p->dir, wait, &r) == 0)
		return;
	snapshot_finished(p, &r);
}

static void persist_free(struct persist *p)
{
	oplog_close(p->log);
	fault_destroy(&p->fault);
	if (p->lock_fd >= 0)
		close(p->lock_fd);
	free(p->warnings);
	free(p->dir);
	free(p);
}

/* ud_db_free() calls this before it frees the store. */
static void persist_close_cb(void *ext)
{
	struct persist *p = ext;

	snapshot_poll(p, true);
	persist_free(p);
}

static void last_snapshot_time(struct persist *p,
			       const struct recover_result *r)
{
	char name[32], path[4096];
	struct stat st;

	p->last_snapshot_ms = -1;
	if (!r->have_snap)
		return;
	snap_name(r->snap_covered, name);
	if (datadir_path(path, sizeof(path), p->dir, name) == 0 &&
	    stat(path, &st) == 0) {
		p->last_snapshot_ms = (int64_t)st.st_mtim.tv_sec * 1000 +
				      st.st_mtim.tv_nsec / 1000000;
		p->last_snapshot_bytes = (uint64_t)st.st_size;
	}
}

static int fault_from_env(struct persist *p, struct ud_error *err)
{
#ifdef UD_FAULT_INJECTION
	const char *spec = getenv("USERDB_FAULT");

	if (spec && *spec)
		return fault_parse(&p->fault, spec, err);
#endif
	return 0;
}

/* Keep recovery's warnings (plus our own) for ud_open_warnings(). */
static void keep_warnings(struct persist *p, struct recover_result *r,
			  int inprogress)
{
	char line[96];
	struct ud_buf *w = &r->warnings;

	if (inprogress) {
		snprintf(line, sizeof(line),
			 "removed %d unfinished *.inprogress file(s)",
			 inprogress);
		if (w->len)
			w->data[w->len - 1] = '\n';
		ud_buf_append(w, line, strlen(line) + 1);
	}
	p->warnings = strdup(w->len ? w->data : "");
}

static int persist_recover(struct persist *p, const struct ud_options *opt,
			   int inprogress, struct ud_error *err)
{
	struct recover_result r;
	struct oplog_start st;
	int rc = recover_run_staged(p->dir, apply_cb, &persist_load_stage,
				    p->db, &r, err);

	if (rc == 0) {
		st.segs = r.segs;
		st.nseg = r.nseg;
		st.next_seq = r.next_seq;
		rc = oplog_open(p->dir, &st, opt->fsync, &p->fault, &p->log,
				err);
	}
	if (rc == 0) {
		/* Left over by a crash between a snapshot's rename and its
		 * clean-up: the loaded snapshot covers them. */
		if (r.have_snap)
			oplog_remove_covered(p->log,
					     retain_upto(p->log, r.snap_covered,
							 p->changes_keep));
		p->snap_covered = r.snap_covered;
		last_snapshot_time(p, &r);
		keep_warnings(p, &r, inprogress);
	}
	recover_result_free(&r);
	return rc;
}

static int persist_open(ud_db *db, const struct ud_options *opt,
			struct ud_error *err)
{
	struct persist *p = calloc(1, sizeof(*p));
	int rc = UD_ENOMEM, inprogress;

	if (!p || !(p->dir = strdup(opt->data_dir))) {
		free(p);
		return ud_error_set(err, rc, NULL, "out of memory");
	}
	p->db = db;
	p->lock_fd = -1;
	p->interval = opt->snapshot_interval;
	p->changes_keep = opt->changes_keep;
	p->last_attempt = now_ms(CLOCK_MONOTONIC);
	fault_init(&p->fault);
	rc = datadir_create(p->dir, err);
	if (rc == 0)
		rc = datadir_lock(p->dir, &p->lock_fd, err);
	if (rc == 0)
		rc = fault_from_env(p, err);
	if (rc == 0) {
		inprogress = datadir_remove_inprogress(p->dir);
		rc = persist_recover(p, opt, inprogress, err);
	}
	if (rc) {
		persist_free(p);
		return rc;
	}
	ud_db_set_journal(db, oplog_append, p->log);
	ud_db_set_ext(db, p, persist_close_cb);
	return 0;
}

int ud_open(const struct ud_options *opt, ud_db **out, struct ud_error *err)
{
	ud_db *db;
	int rc;

	if (!opt)
		opt = &ud_options_default;
	/* Evictions are not journaled (a cache forgets; the slower store
	 * behind it remembers), so a bounded store on a data dir would let an
	 * evicted id or email be created again and then refuse to reopen. */
	if (opt->data_dir && (opt->max_users || opt->max_bytes))
		return ud_error_set(err, UD_EINVAL, "data_dir",
				    "a cache bound (max_users, max_bytes) "
				    "needs a memory-only store: data_dir must "
				    "be NULL");
	db = ud_db_new(opt, err);
	if (!db)
		return err ? err->code : UD_ENOMEM;
	if (opt->data_dir) {
		rc = persist_open(db, opt, err);
		if (rc) {
			ud_db_free(db);
			return rc;
		}
	}
	*out = db;
	return 0;
}

void ud_close(ud_db *db)
{
	if (db)
		ud_db_free(db);
}

const char *ud_open_warnings(ud_db *db)
{
	struct persist *p = persist_of(db);

	return p && p->warnings ? p->warnings : "";
}

int ud_flush(ud_db *db)
{
	struct persist *p = persist_of(db);

	return p ? oplog_flush(p->log) : 0;
}

int ud_flush_async(ud_db *db)
{
	struct persist *p = persist_of(db);

	return p ? oplog_flush_async(p->log) : 0;
}

uint64_t ud_log_seq(ud_db *db)
{
	struct persist *p = persist_of(db);

	return p ? oplog_last_seq(p->log) : 0;
}

uint64_t ud_durable_seq(ud_db *db)
{
	struct persist *p = persist_of(db);

	return p ? oplog_durable_seq(p->log) : UINT64_MAX;
}

int ud_durable_fd(ud_db *db)
{
	struct persist *p = persist_of(db);

	return p ? oplog_wake_fd(p->log) : -1;
}

/* The injected failures of one snapshot, decided here in the parent.
 * SHORT means something only to snapwrite; elsewhere it is EIO. */
static void snapshot_faults(struct persist *p, struct snap_faults *f)
{
	int e = fault_check(&p->fault, FAULT_SNAP);

	f->write = e < 0 ? EIO : e;
	if (!f->write)
		f->write = fault_check(&p->fault, FAULT_SNAP_WRITE);
	e = fault_check(&p->fault, FAULT_SNAP_SYNC);
	f->sync = e < 0 ? EIO : e;
	e = fault_check(&p->fault, FAULT_SNAP_RENAME);
	f->rename = e < 0 ? EIO : e;
	e = fault_check(&p->fault, FAULT_SNAP_DIRSYNC);
	f->dirsync = e < 0 ? EIO : e;
}

int ud_snapshot_start(ud_db *db, struct ud_error *err)
{
	struct persist *p = persist_of(db);
	struct snap_faults fail;
	int rc;

	if (!p || p->job.pid)
		return 0;
	p->last_attempt = now_ms(CLOCK_MONOTONIC);
	rc = oplog_rotate(p->log, err);
	if (rc == 0) {
		snapshot_faults(p, &fail);
		rc = snap_job_start(&p->job, p->dir, oplog_last_seq(p->log),
				    dump_cb, db, &fail, err);
	}
	if (rc)
		p->snap_failed++;
	return rc;
}

int ud_snapshot_sync(ud_db *db, struct ud_error *err)
{
	struct persist *p = persist_of(db);
	uint64_t done;
	int rc;

	if (!p)
		return 0;
	snapshot_poll(p, true);
	done = p->snap_done;
	rc = ud_snapshot_start(db, err);
	if (rc)
		return rc;
	snapshot_poll(p, true);
	if (p->snap_done == done)
		return ud_error_set(err, UD_EIO, NULL, "%s", p->snap_error);
	return 0;
}

uint64_t ud_snapshot_done(ud_db *db)
{
	struct persist *p = persist_of(db);

	return p ? p->snap_done : 0;
}

void ud_tick(ud_db *db)
{
	struct persist *p = persist_of(db);

	if (!p)
		return;
	oplog_tick(p->log);
	snapshot_poll(p, false);
	if (p->interval && !p->job.pid &&
	    oplog_last_seq(p->log) > p->snap_covered &&
	    now_ms(CLOCK_MONOTONIC) - p->last_attempt >=
		(int64_t)p->interval * 1000)
		ud_snapshot_start(db, NULL);
}

bool ud_unavailable(ud_db *db)
{
	struct persist *p = persist_of(db);

	return p && oplog_unavailable(p->log);
}

void ud_stats(ud_db *db, struct ud_stats *out)
{
	struct persist *p = persist_of(db);

	memset(out, 0, sizeof(*out));
	ud_db_stats(db, out);
	out->last_snapshot_ms = -1;
	if (!p)
		return;
	out->log_bytes = oplog_bytes(p->log);
	out->log_records = oplog_records(p->log);
	out->log_seq = oplog_last_seq(p->log);
	out->snapshots = p->snap_done;
	out->snapshot_failures = p->snap_failed;
	out->last_snapshot_ms = p->last_snapshot_ms;
	out->last_snapshot_bytes = p->last_snapshot_bytes;
	out->snapshot_running = p->job.pid != 0;
	out->unavailable = oplog_unavailable(p->log);
}

int persist_fault_set(ud_db *db, const char *spec, struct ud_error *err)
{
	struct persist *p = persist_of(db);

	if (!p)
		return ud_error_set(err, UD_EINVAL, NULL, "no data dir");
	return fault_parse(&p->fault, spec, err);
}

const char *persist_snapshot_error(ud_db *db)
{
	struct persist *p = persist_of(db);

	return p ? p->snap_error : "";
}
