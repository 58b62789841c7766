/*
 * test_db.c -- ud_open() on a data dir with the real engine: replay
 * equivalence, snapshots and their clean-up, the lock, disk faults through
 * the public API, start-up repairs and refusals.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "frame.h"
#include "helper.h"
#include "journal.h"
#include "persist.h"
#include "snapshot.h"
#include "userdb.h"

static char *dir;

static void setup(void)
{
	dir = tmpdir_make();
}

static void teardown(void)
{
	tmpdir_remove(dir);
}

TestSuite(db, .init = setup, .fini = teardown);

static ud_db *open_db(enum ud_fsync mode)
{
	return store_open(dir, mode, 0);
}

static int create(ud_db *db, int i)
{
	return store_create(db, i);
}

static int dump_cb(void *ctx, const void *rec, size_t len)
{
	struct ud_buf *b = ctx;
	uint32_t n = (uint32_t)len;

	ud_buf_append(b, &n, sizeof(n));
	return ud_buf_append(b, rec, len);
}

static void dump(ud_db *db, struct ud_buf *b)
{
	b->len = 0;
	cr_assert_eq(ud_db_dump(db, dump_cb, b), 0);
}

static int user_id_cb(const ud_user *u, void *ctx)
{
	struct ud_user_view v;
	char *out = ctx;

	ud_user_view(u, &v);
	memcpy(out, v.id, v.id_len);
	out[v.id_len] = 0;
	return 1; /* the first one is enough */
}

/* Random mutations of every kind; returns how many were accepted. */
static int random_ops(ud_db *db, unsigned seed, int n)
{
	char id[UD_ID_MAX + 1];
	struct ud_error err;
	int ok = 0;

	srand(seed);
	for (int i = 0; i < n; i++) {
		int op = rand() % 6;

		if (op <= 1 || ud_user_foreach(db, user_id_cb, id) == 0) {
			ok += create(db, rand()) == 0;
			continue;
		}
		size_t len = strlen(id);
		struct ud_fields f = {
		    .set = UD_F_NAME, .name = "Renamed", .name_len = 7};

		if (op == 2)
			ok +=
			    ud_user_update(db, id, len, &f, 0, NULL, &err) == 0;
		else if (op == 3)
			ok += ud_user_set_suspended(db, id, len, rand() % 2,
						    NULL, &err) == 0;
		else if (op == 4)
			ok += ud_user_record_verify(db, id, len, rand() % 2,
						    &err) == 0;
		else
			ok += ud_user_delete(db, id, len, 0, &err) == 0;
	}
	return ok;
}

/* Dump db, close it, open the data dir again in mode, and check that the
 * reopened store dumps to the same bytes (users, indexes' contents, logs,
 * password hashes); closes it. */
static void close_reopen_compare(ud_db *db, enum ud_fsync mode)
{
	struct ud_buf before = {0}, after = {0};

	dump(db, &before);
	ud_close(db);
	db = open_db(mode);
	dump(db, &after);
	cr_assert_eq(before.len, after.len);
	cr_assert_eq(memcmp(before.data, after.data, before.len), 0);
	ud_close(db);
	ud_buf_free(&before);
	ud_buf_free(&after);
}

Test(db, replay_rebuilds_the_same_store)
{
	ud_db *db = open_db(UD_FSYNC_NO);

	cr_assert_gt(random_ops(db, 1, 300), 250);
	cr_assert_eq(ud_flush(db), 0);
	close_reopen_compare(db, UD_FSYNC_NO);
}

Test(db, snapshot_then_log_rebuilds_the_same_store)
{
	struct ud_buf before = {0}, after = {0};
	struct ud_error err;
	struct ud_stats st;
	ud_db *db = open_db(UD_FSYNC_ALWAYS);

	random_ops(db, 2, 200);
	cr_assert_eq(ud_snapshot_sync(db, &err), 0, "%s", err.message);
	cr_assert_eq(ud_snapshot_done(db), 1);
	cr_assert_eq(file_count(dir, ".usnap"), 1);
	cr_assert_eq(file_count(dir, ".ulog"), 1, "covered segment removed");
	ud_stats(db, &st);
	cr_assert_eq(st.snapshots, 1);
	cr_assert_gt(st.last_snapshot_bytes, 0);
	cr_assert_gt(st.last_snapshot_ms, 0);
	cr_assert_lt(st.log_bytes, 100, "only the new segment's header");
	random_ops(db, 3, 100);
	cr_assert_eq(ud_flush(db), 0);
	cr_assert_eq(ud_snapshot_sync(db, &err), 0, "%s", err.message);
	cr_assert_eq(file_count(dir, ".usnap"), 1, "older snapshot removed");
	random_ops(db, 4, 100);
	cr_assert_eq(ud_flush(db), 0);
	dump(db, &before);
	ud_close(db);
	db = open_db(UD_FSYNC_ALWAYS);
	cr_assert_str_eq(ud_open_warnings(db), "");
	dump(db, &after);
	cr_assert_eq(before.len, after.len);
	cr_assert_eq(memcmp(before.data, after.data, before.len), 0);
	ud_close(db);
	ud_buf_free(&before);
	ud_buf_free(&after);
}

Test(db, background_snapshot_while_writing)
{
	struct ud_error err;
	struct ud_stats st;
	ud_db *db = open_db(UD_FSYNC_EVERYSEC);

	random_ops(db, 5, 300);
	cr_assert_eq(ud_snapshot_start(db, &err), 0, "%s", err.message);
	ud_stats(db, &st);
	cr_assert(st.snapshot_running);
	for (int i = 0; i < 2000 && ud_snapshot_done(db) == 0; i++) {
		create(db, 100000 + i);
		cr_assert_eq(ud_flush(db), 0);
		ud_tick(db);
		nanosleep(&(struct timespec){0, 1000000}, NULL);
	}
	cr_assert_eq(ud_snapshot_done(db), 1);
	close_reopen_compare(db, UD_FSYNC_EVERYSEC);
}

Test(db, second_open_is_refused)
{
	struct ud_options opt = ud_options_default;
	struct ud_error err = {0};
	ud_db *db = open_db(UD_FSYNC_NO), *db2 = NULL;

	opt.data_dir = dir;
	cr_assert_eq(ud_open(&opt, &db2, &err), UD_ELOCKED);
	cr_assert(strstr(err.message, "in use"), "%s", err.message);
	ud_close(db);
	cr_assert_eq(ud_open(&opt, &db2, &err), 0, "free after close");
	ud_close(db2);
}

/* A cache bound forgets users without a journal record: on a data dir an
 * evicted id could be created again and the log would then not replay. */
Test(db, cache_bound_with_a_data_dir_is_refused)
{
	struct ud_options opt = ud_options_default;
	struct ud_error err = {0};
	ud_db *db = NULL;

	opt.data_dir = dir;
	opt.max_users = 2;
	cr_assert_eq(ud_open(&opt, &db, &err), UD_EINVAL);
	cr_assert_str_eq(err.field, "data_dir");
	cr_assert(strstr(err.message, "memory-only"), "%s", err.message);
	opt.max_users = 0;
	opt.max_bytes = 1 << 20;
	cr_assert_eq(ud_open(&opt, &db, &err), UD_EINVAL);
	opt.max_bytes = 0;
	cr_assert_eq(ud_open(&opt, &db, &err), 0, "%s", err.message);
	ud_close(db);
}

Test(db, files_are_private)
{
	struct stat st;
	char path[4200];
	struct ud_error err;
	ud_db *db;

	free(dir);
	dir = tmpdir_make();
	snprintf(path, sizeof(path), "%s/sub", dir);
	{
		struct ud_options opt = ud_options_default;

		opt.data_dir = path;
		cr_assert_eq(ud_open(&opt, &db, &err), 0, "%s", err.message);
	}
	create(db, 1);
	cr_assert_eq(ud_snapshot_sync(db, &err), 0);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0700);
	snprintf(path, sizeof(path), "%s/sub/snap-0000000000000001.usnap", dir);
	cr_assert_eq(stat(path, &st), 0, "%s", path);
	cr_assert_eq(st.st_mode & 0777, 0600);
	snprintf(path, sizeof(path), "%s/sub/log-0000000000000002.ulog", dir);
	cr_assert_eq(stat(path, &st), 0, "%s", path);
	cr_assert_eq(st.st_mode & 0777, 0600);
	ud_close(db);
}

Test(db, disk_full_refuses_writes_keeps_reads_and_loses_nothing)
{
	struct ud_error err;
	struct ud_stats st;
	ud_db *db = open_db(UD_FSYNC_ALWAYS);

	cr_assert_eq(create(db, 1), 0);
	cr_assert_eq(ud_flush(db), 0);
	cr_assert_eq(persist_fault_set(db, "write:ENOSPC:0:*", &err), 0);
	cr_assert_eq(create(db, 2), 0, "accepted into the batch");
	cr_assert_eq(ud_flush(db), UD_EUNAVAILABLE);
	cr_assert(ud_unavailable(db));
	ud_stats(db, &st);
	cr_assert(st.unavailable);
	cr_assert_eq(create(db, 3), UD_EUNAVAILABLE);
	cr_assert_not_null(ud_user_get_by_email(db, "user1@example.com", 17),
			   "reads keep working");
	ud_tick(db);
	cr_assert(ud_unavailable(db));
	cr_assert_eq(persist_fault_set(db, "", &err), 0);
	ud_tick(db);
	cr_assert_not(ud_unavailable(db));
	cr_assert_eq(create(db, 4), 0);
	cr_assert_eq(ud_flush(db), 0);
	ud_close(db);
	db = open_db(UD_FSYNC_ALWAYS);
	cr_assert_not_null(ud_user_get_by_email(db, "user2@example.com", 17));
	cr_assert_null(ud_user_get_by_email(db, "user3@example.com", 17));
	cr_assert_not_null(ud_user_get_by_email(db, "user4@example.com", 17));
	ud_close(db);
}

Test(db, failed_snapshot_keeps_everything)
{
	struct ud_error err;
	ud_db *db = open_db(UD_FSYNC_NO);

	random_ops(db, 6, 100);
	cr_assert_eq(persist_fault_set(db, "snap:ENOSPC", &err), 0);
	cr_assert_eq(ud_snapshot_sync(db, &err), UD_EIO);
	cr_assert(strstr(err.message, "No space"), "%s", err.message);
	cr_assert_eq(ud_snapshot_done(db), 0);
	cr_assert_eq(file_count(dir, ".usnap"), 0);
	cr_assert_eq(file_count(dir, ".inprogress"), 0);
	cr_assert_eq(ud_snapshot_sync(db, &err), 0, "the next one works");
	cr_assert_eq(ud_snapshot_done(db), 1);
	close_reopen_compare(db, UD_FSYNC_NO);
}

Test(db, torn_tail_is_cut_with_a_warning)
{
	ud_db *db = open_db(UD_FSYNC_NO);
	size_t len;
	char *p;

	create(db, 1);
	create(db, 2);
	ud_close(db);
	p = file_read(dir, "log-0000000000000001.ulog", &len);
	file_write(dir, "log-0000000000000001.ulog", p, len - 3);
	file_write(dir, "snap-0000000000000009.usnap.inprogress", "junk", 4);
	db = open_db(UD_FSYNC_NO);
	cr_assert(strstr(ud_open_warnings(db), "torn record"), "%s",
		  ud_open_warnings(db));
	cr_assert(strstr(ud_open_warnings(db), ".inprogress"));
	cr_assert_eq(file_count(dir, ".inprogress"), 0);
	cr_assert_not_null(ud_user_get_by_email(db, "user1@example.com", 17));
	cr_assert_null(ud_user_get_by_email(db, "user2@example.com", 17));
	ud_close(db);
	free(p);
}

Test(db, damage_mid_log_refuses_to_start)
{
	struct ud_options opt = ud_options_default;
	struct ud_error err = {0};
	ud_db *db = open_db(UD_FSYNC_NO);
	size_t len;
	char *p;

	create(db, 1);
	create(db, 2);
	ud_close(db);
	p = file_read(dir, "log-0000000000000001.ulog", &len);
	p[40] ^= 1;
	file_write(dir, "log-0000000000000001.ulog", p, len);
	opt.data_dir = dir;
	db = NULL;
	cr_assert_eq(ud_open(&opt, &db, &err), UD_ECORRUPT);
	cr_assert(strstr(err.message, "log-0000000000000001.ulog"), "%s",
		  err.message);
	cr_assert(strstr(err.message, "offset 32"), "%s", err.message);
	cr_assert_eq(ud_open(&opt, &db, &err), UD_ECORRUPT, "lock released");
	free(p);
}

Test(db, fault_from_environment)
{
	struct ud_options opt = ud_options_default;
	struct ud_error err = {0};
	ud_db *db = NULL;

	opt.data_dir = dir;
	setenv("USERDB_FAULT", "write:EIO:1:1", 1); /* after the header */
	cr_assert_eq(ud_open(&opt, &db, &err), 0, "%s", err.message);
	unsetenv("USERDB_FAULT");
	cr_assert_eq(create(db, 1), 0);
	cr_assert_eq(ud_flush(db), UD_EUNAVAILABLE);
	cr_assert_eq(ud_flush(db), 0, "the retry succeeds");
	ud_close(db);
	setenv("USERDB_FAULT", "nonsense", 1);
	cr_assert_eq(ud_open(&opt, &db, &err), UD_EINVAL);
	unsetenv("USERDB_FAULT");
}

Test(db, periodic_snapshot_from_tick)
{
	struct ud_options opt = ud_options_default;
	struct ud_error err = {0};
	ud_db *db = NULL;

	opt.data_dir = dir;
	opt.snapshot_interval = 1;
	cr_assert_eq(ud_open(&opt, &db, &err), 0, "%s", err.message);
	for (int i = 0; i < 30 && ud_snapshot_done(db) == 0; i++) {
		ud_tick(db);
		nanosleep(&(struct timespec){0, 100000000}, NULL);
	}
	cr_assert_eq(ud_snapshot_done(db), 0, "nothing changed");
	create(db, 1);
	for (int i = 0; i < 30 && ud_snapshot_done(db) == 0; i++) {
		ud_tick(db);
		nanosleep(&(struct timespec){0, 100000000}, NULL);
	}
	cr_assert_eq(ud_snapshot_done(db), 1);
	ud_close(db);
}

Test(db, crash_before_snapshot_cleanup)
{
	struct ud_buf before = {0}, after = {0};
	struct ud_error err;
	ud_db *db = open_db(UD_FSYNC_NO);
	size_t len;
	char *seg;

	random_ops(db, 7, 100);
	cr_assert_eq(ud_flush(db), 0);
	seg = file_read(dir, "log-0000000000000001.ulog", &len);
	cr_assert_eq(ud_snapshot_sync(db, &err), 0, "%s", err.message);
	random_ops(db, 8, 50);
	cr_assert_eq(ud_flush(db), 0);
	dump(db, &before);
	ud_close(db);
	/* As if the covered segment's unlink never happened. */
	file_write(dir, "log-0000000000000001.ulog", seg, len);
	cr_assert_eq(file_count(dir, ".ulog"), 2);
	db = open_db(UD_FSYNC_NO);
	dump(db, &after);
	cr_assert_eq(before.len, after.len);
	cr_assert_eq(memcmp(before.data, after.data, before.len), 0);
	cr_assert_eq(file_count(dir, ".ulog"), 1, "removed at start");
	ud_close(db);
	free(seg);
	ud_buf_free(&before);
	ud_buf_free(&after);
}

/* ---- the snapshot load on two threads (snapshot.c, engine/load.c) ------ */

Test(db, large_snapshot_loads_the_same_store)
{
	struct ud_error err;
	ud_db *db = open_db(UD_FSYNC_NO);

	/* many batches of SNAP_BATCH records: the helper thread takes part */
	for (int i = 0; i < 12 * SNAP_BATCH; i++)
		cr_assert_eq(create(db, i), 0);
	random_ops(db, 5, 400);
	cr_assert_eq(ud_snapshot_sync(db, &err), 0, "%s", err.message);
	random_ops(db, 6, 100);
	cr_assert_eq(ud_flush(db), 0);
	close_reopen_compare(db, UD_FSYNC_NO);
}

/* A snapshot of records, some crafted, as a snap_dump_fn source. */
struct crafted {
	struct ud_buf *recs;
	size_t n;
};

static int crafted_keep_cb(void *ctx, const void *rec, size_t len)
{
	struct crafted *c = ctx;

	c->recs = realloc(c->recs, (c->n + 1) * sizeof(*c->recs));
	cr_assert(c->recs);
	c->recs[c->n] = (struct ud_buf){0};
	return ud_buf_append(&c->recs[c->n++], rec, len);
}

static int crafted_dump(void *src, ud_journal_fn emit, void *ctx)
{
	struct crafted *c = src;
	int rc = 0;

	for (size_t i = 0; i < c->n && rc == 0; i++)
		rc = emit(ctx, c->recs[i].data, c->recs[i].len);
	return rc;
}

static void crafted_insert(struct crafted *c, size_t at, const void *rec,
			   size_t len)
{
	crafted_keep_cb(c, rec, len);
	struct ud_buf x = c->recs[c->n - 1];
	memmove(&c->recs[at + 1], &c->recs[at],
		(c->n - 1 - at) * sizeof(*c->recs));
	c->recs[at] = x;
}

/* Offset of record i in the snapshot file of c. */
static size_t crafted_offset(const struct crafted *c, size_t i)
{
	size_t off = FRAME_FILE_HDR;

	for (size_t k = 0; k < i; k++)
		off += FRAME_REC_HDR + c->recs[k].len;
	return off;
}

static void crafted_free(struct crafted *c)
{
	for (size_t i = 0; i < c->n; i++)
		ud_buf_free(&c->recs[i]);
	free(c->recs);
}

/* The dump of a store of n users. */
static void crafted_users(struct crafted *c, int n)
{
	struct ud_options opt = ud_options_default;
	struct ud_error err = {0};
	ud_db *db;

	cr_assert_eq(ud_open(&opt, &db, &err), 0);
	for (int i = 0; i < n; i++)
		cr_assert_eq(create(db, i), 0);
	cr_assert_eq(ud_db_dump(db, crafted_keep_cb, c), 0);
	ud_close(db);
}

/* ud_open of a snapshot holding c fails, naming the record at offset. */
static void open_refused(struct crafted *c, size_t offset, const char *why)
{
	struct ud_options opt = ud_options_default;
	struct ud_error err = {0};
	char at[64];
	uint64_t bytes;
	ud_db *db = NULL;

	cr_assert_eq(snap_write(dir, 1, crafted_dump, c, 0, &bytes, &err), 0,
		     "%s", err.message);
	opt.data_dir = dir;
	opt.snapshot_interval = 0;
	cr_assert_eq(ud_open(&opt, &db, &err), UD_ECORRUPT, "opened");
	snprintf(at, sizeof(at), "record at offset %zu cannot be applied",
		 offset);
	cr_assert(strstr(err.message, at), "message \"%s\", want \"%s\"",
		  err.message, at);
	cr_assert(strstr(err.message, why), "message \"%s\", want \"%s\"",
		  err.message, why);
}

Test(db, crafted_snapshot_with_a_repeated_email_is_refused)
{
	struct crafted c = {0}, other = {0};

	crafted_users(&c, 6 * SNAP_BATCH);
	crafted_users(&other, 8); /* "user7@example.com" again, another id */
	crafted_insert(&c, 4 * SNAP_BATCH + 3, other.recs[8].data,
		       other.recs[8].len);
	open_refused(&c, crafted_offset(&c, 4 * SNAP_BATCH + 3),
		     "creates a second user with email user7@example.com");
	crafted_free(&c);
	crafted_free(&other);
}

Test(db, crafted_snapshot_with_a_repeated_id_is_refused)
{
	struct crafted c = {0};

	crafted_users(&c, 6 * SNAP_BATCH);
	crafted_insert(&c, 5 * SNAP_BATCH, c.recs[9].data, c.recs[9].len);
	open_refused(&c, crafted_offset(&c, 5 * SNAP_BATCH),
		     "without an event");
	crafted_free(&c);
}

/* The first bad record in file order is the one reported, even when the
 * helper thread meets a later one first. */
Test(db, crafted_snapshot_reports_the_first_bad_record)
{
	struct crafted c = {0}, other = {0};

	crafted_users(&c, 8 * SNAP_BATCH);
	crafted_users(&other, 8);
	crafted_insert(&c, 7 * SNAP_BATCH, "\x93\x07\x01\x02", 4);
	crafted_insert(&c, SNAP_BATCH + 1, other.recs[8].data,
		       other.recs[8].len);
	open_refused(&c, crafted_offset(&c, SNAP_BATCH + 1),
		     "creates a second user");
	crafted_free(&c);
	crafted_free(&other);
	/* and a record that does not decode is reported as such */
	memset(&c, 0, sizeof(c));
	crafted_users(&c, 3 * SNAP_BATCH);
	crafted_insert(&c, 2 * SNAP_BATCH + 5, "\x93\x07\x01\x02", 4);
	tmpdir_remove(dir);
	dir = tmpdir_make();
	open_refused(&c, crafted_offset(&c, 2 * SNAP_BATCH + 5),
		     "undecodable change record");
	crafted_free(&c);
}
