/*
 * check_main.c -- userdb-check: verify (and with --repair, cut back) the
 * files of a data directory.
 *
 *     userdb-check [--repair] DATA_DIR
 *
 * Checks every snapshot and every log segment on its own, then replays the
 * directory into a memory store exactly as a start would (recover.h) and
 * prints what it found.  Exit status: 0 sound, 1 damaged (each damage names
 * the file and offset), 2 usage or the directory cannot be read/locked.
 *
 * --repair takes the directory's lock (the server must be stopped), cuts
 * the log at the first bad record -- the bytes from there on and any later
 * segments are kept aside as *.dropped files, never silently deleted -- and
 * sets damaged snapshots aside as *.damaged; it says how many records and
 * bytes were dropped, then checks again.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "datadir.h"
#include "journal.h"
#include "recover.h"
#include "snapshot.h"
#include "userdb.h"
#include "userdb_version.h"

struct check {
	const char *dir;
	int damaged;
	bool repair;
};

static const char *status_text(enum seg_status s)
{
	switch (s) {
	case SEG_BAD_HEADER:
		return "bad file header";
	case SEG_BAD_SEQ:
		return "record out of sequence";
	case SEG_BAD_RECORD:
		return "bad checksum or length";
	default:
		return "ok";
	}
}

/* Rename dir/name to dir/name+suffix. */
static int set_aside(const char *dir, const char *name, const char *suffix)
{
	char from[4096], to[4200];

	if (datadir_path(from, sizeof(from), dir, name))
		return -1;
	snprintf(to, sizeof(to), "%s%s", from, suffix);
	return rename(from, to);
}

static void check_snapshots(struct check *c, const struct datadir_list *l)
{
	char name[32], path[4096];
	struct ud_error err = {0};
	uint64_t cov, recs;

	for (size_t i = 0; i < l->nsnap; i++) {
		snap_name(l->snaps[i], name);
		datadir_path(path, sizeof(path), c->dir, name);
		if (snap_load(path, NULL, NULL, &cov, &recs, &err) == 0) {
			printf("  %s: ok, %" PRIu64 " records, covers log seq "
			       "%" PRIu64 "\n",
			       name, recs, cov);
			continue;
		}
		c->damaged = 1;
		printf("  %s: DAMAGED: %s\n", name, err.message);
		if (c->repair && set_aside(c->dir, name, ".damaged") == 0)
			printf("  repair: %s set aside as %s.damaged\n", name,
			       name);
	}
}

/* Copy dir/name bytes [from, size) to dir/name.dropped, then cut there. */
static int cut_segment(const char *dir, const char *name, size_t from,
		       size_t size)
{
	char path[4096], aside[4200];
	struct datadir_map m;
	int fd, rc = -1;

	if (datadir_path(path, sizeof(path), dir, name) ||
	    datadir_map(path, &m, NULL))
		return -1;
	snprintf(aside, sizeof(aside), "%s.dropped", path);
	fd = open(aside, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd >= 0 &&
	    write(fd, m.data + from, size - from) == (ssize_t)(size - from) &&
	    fsync(fd) == 0 && truncate(path, (off_t)from) == 0)
		rc = 0;
	if (fd >= 0)
		close(fd);
	datadir_unmap(&m);
	return rc;
}

/* Set aside everything from segment i, offset s->good, on. */
static void repair_log(struct check *c, const struct datadir_list *l, size_t i,
		       const struct seg_scan *s)
{
	char name[32];
	uint64_t recs = s->records_after, bytes = s->size - s->good;
	struct seg_scan t;
	char path[4096];

	oplog_seg_name(l->logs[i], name);
	if (cut_segment(c->dir, name, s->good, s->size) != 0) {
		printf("  repair: cannot cut %s\n", name);
		return;
	}
	for (size_t j = i + 1; j < l->nlog; j++) {
		oplog_seg_name(l->logs[j], name);
		datadir_path(path, sizeof(path), c->dir, name);
		if (recover_scan_segment(path, l->logs[j], NULL, NULL, &t,
					 NULL) == 0) {
			recs += t.records + t.records_after;
			bytes += t.size;
		}
		set_aside(c->dir, name, ".dropped");
	}
	oplog_seg_name(l->logs[i], name);
	printf("  repair: log cut at %s offset %zu: dropped %" PRIu64
	       " intact record(s) after the damage and %" PRIu64
	       " bytes in all (kept in *.dropped)\n",
	       name, s->good, recs, bytes);
}

static void check_logs(struct check *c, const struct datadir_list *l)
{
	char name[32], path[4096];
	struct ud_error err = {0};
	struct seg_scan s;

	for (size_t i = 0; i < l->nlog; i++) {
		oplog_seg_name(l->logs[i], name);
		datadir_path(path, sizeof(path), c->dir, name);
		if (recover_scan_segment(path, l->logs[i], NULL, NULL, &s,
					 &err)) {
			c->damaged = 1;
			printf("  %s: UNREADABLE: %s\n", name, err.message);
			continue;
		}
		printf("  %s: %" PRIu64 " records", name, s.records);
		if (s.records)
			printf(", seq %" PRIu64 "..%" PRIu64, s.first, s.last);
		printf(", %zu bytes", s.size);
		if (s.status == SEG_OK || s.status == SEG_EMPTY) {
			printf(", ok\n");
			continue;
		}
		c->damaged = 1;
		printf(", DAMAGED at offset %zu: %s (%s)\n", s.good,
		       status_text(s.status),
		       s.tail_only && i + 1 == l->nlog
			   ? "a torn tail: a start cuts it off"
			   : "a start refuses this");
		if (c->repair) {
			repair_log(c, l, i, &s);
			return;
		}
	}
}

static int apply_cb(void *ctx, const void *rec, size_t len,
		    struct ud_error *err)
{
	return ud_db_apply(ctx, rec, len, err);
}

static void check_replay(struct check *c)
{
	struct ud_error err = {0};
	struct recover_result r;
	struct ud_stats st;
	ud_db *db = ud_db_new(&ud_options_default, &err);

	if (!db) {
		printf("replay: cannot create a store: %s\n", err.message);
		c->damaged = 1;
		return;
	}
	if (recover_run(c->dir, apply_cb, db, &r, &err) != 0) {
		printf("replay: FAILED: %s\n", err.message);
		c->damaged = 1;
	} else {
		ud_db_stats(db, &st);
		printf("replay: snapshot seq %" PRIu64 " (%" PRIu64
		       " records) + %" PRIu64 " log records -> %" PRIu64
		       " users, %" PRIu64 " activity log entries\n",
		       r.snap_covered, r.snap_records, r.log_records, st.users,
		       st.log_events);
		if (r.warnings.len)
			printf("warnings:\n  %s\n", r.warnings.data);
	}
	recover_result_free(&r);
	ud_db_free(db);
}

static int check_dir(struct check *c)
{
	struct datadir_list l;
	struct ud_error err = {0};

	c->damaged = 0;
	if (datadir_list(c->dir, &l, &err)) {
		fprintf(stderr, "userdb-check: %s\n", err.message);
		return 2;
	}
	printf("%s: %zu snapshot(s), %zu log segment(s)\n", c->dir, l.nsnap,
	       l.nlog);
	check_snapshots(c, &l);
	check_logs(c, &l);
	datadir_list_free(&l);
	if (!c->repair)
		check_replay(c);
	return c->damaged;
}

/* Asked for (--help): stdout, exit 0; a bad command line: stderr, exit 2. */
static int usage(bool asked)
{
	fprintf(
	    asked ? stdout : stderr,
	    "usage: userdb-check [--repair] DATA_DIR\n"
	    "       userdb-check --help | --version\n\n"
	    "Checks every snapshot and log file of DATA_DIR and replays it\n"
	    "as a start would: exit 0 sound, 1 damaged, 2 usage or not\n"
	    "readable.  --repair (server stopped) cuts the log at the first\n"
	    "bad record, keeping what it cuts as *.dropped files.\n");
	return asked ? 0 : 2;
}

int main(int argc, char **argv)
{
	struct check c = {0};
	struct ud_error err = {0};
	int lock_fd = -1, rc;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--repair") == 0)
			c.repair = true;
		else if (strcmp(argv[i], "-h") == 0 ||
			 strcmp(argv[i], "--help") == 0)
			return usage(true);
		else if (strcmp(argv[i], "--version") == 0) {
			printf("userdb-check %s\n", UD_VERSION_TEXT);
			return 0;
		} else if (argv[i][0] == '-' || c.dir)
			return usage(false);
		else
			c.dir = argv[i];
	}
	if (!c.dir)
		return usage(false);
	if (c.repair && datadir_lock(c.dir, &lock_fd, &err) != 0) {
		fprintf(stderr, "userdb-check: %s\n", err.message);
		return 2;
	}
	rc = check_dir(&c);
	if (c.repair && rc != 2) {
		printf("after repair:\n");
		c.repair = false;
		rc = check_dir(&c);
	}
	printf("%s\n", rc == 0 ? "sound" : rc == 1 ? "DAMAGED" : "error");
	if (lock_fd >= 0)
		close(lock_fd);
	return rc;
}
