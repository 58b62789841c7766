/*
 * test_retain.c -- reading the kept log segments back (retain.h): every
 * record in order with positions that resume exactly, across a snapshot's
 * rotation, past a removed segment, stopping at a torn tail, at the end of
 * what was written, and where the callback says.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "frame.h"
#include "helper.h"
#include "oplog.h"
#include "persist.h"
#include "retain.h"
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

TestSuite(retain, .init = setup, .fini = teardown);

static ud_db *open_db(uint64_t keep)
{
	return store_open(dir, UD_FSYNC_NO, keep);
}

static void create(ud_db *db, int i)
{
	cr_assert_eq(store_create(db, i), 0);
}

/* What a read saw: log seqs and the position after each. */
struct seen {
	uint64_t seq[4096];
	struct retain_pos end[4096];
	size_t n, stop_at; /* stop_at: RETAIN_STOP at this record (0: never) */
};

static int seen_cb(void *ctx, uint64_t log_seq, const void *payload, size_t len,
		   const struct retain_pos *end)
{
	struct seen *s = ctx;

	(void)payload;
	cr_assert_gt(len, 0);
	if (s->stop_at && log_seq == s->stop_at)
		return RETAIN_STOP;
	cr_assert_lt(s->n, 4096);
	s->seq[s->n] = log_seq;
	s->end[s->n++] = *end;
	return 0;
}

static void read_all(ud_db *db, struct retain_pos *pos, struct seen *s)
{
	struct ud_buf buf = {0};
	struct ud_error err = {0};

	cr_assert_eq(retain_read(db, pos, SIZE_MAX, &buf, seen_cb, s, &err), 0,
		     "%s", err.message);
	ud_buf_free(&buf);
}

static struct retain_pos first_pos(ud_db *db)
{
	struct retain_pos p;
	uint64_t seg = oplog_seg_next(persist_log(db), 0);

	cr_assert(retain_tell(db, &p));
	p.seg = seg;
	p.off = FRAME_FILE_HDR;
	return p;
}

Test(retain, reads_every_record_in_order_across_a_rotation)
{
	ud_db *db = open_db(1000000);
	struct seen *s = calloc(1, sizeof(*s)), *t = calloc(1, sizeof(*t));
	struct retain_pos pos, end;
	struct ud_error err = {0};

	for (int i = 0; i < 300; i++)
		create(db, i);
	cr_assert_eq(ud_flush(db), 0);
	cr_assert_eq(ud_snapshot_sync(db, &err), 0, "%s", err.message);
	for (int i = 300; i < 500; i++)
		create(db, i);
	cr_assert_eq(ud_flush(db), 0);
	cr_assert_eq(file_count(dir, ".ulog"), 2, "segments kept");
	pos = first_pos(db);
	read_all(db, &pos, s);
	cr_assert_eq(s->n, 500);
	for (size_t i = 0; i < s->n; i++)
		cr_assert_eq(s->seq[i], i + 1);
	cr_assert(retain_tell(db, &end));
	cr_assert_eq(pos.seg, end.seg);
	cr_assert_eq(pos.off, end.off, "left at the end of what was written");
	cr_assert_neq(s->end[0].seg, s->end[499].seg, "two segments");
	/* From any record's end: exactly the records after it. */
	pos = s->end[349];
	read_all(db, &pos, t);
	cr_assert_eq(t->n, 150);
	cr_assert_eq(t->seq[0], 351);
	/* A record still in the batch is not read. */
	create(db, 500);
	t->n = 0;
	read_all(db, &pos, t);
	cr_assert_eq(t->n, 0);
	cr_assert_eq(ud_flush(db), 0);
	read_all(db, &pos, t);
	cr_assert_eq(t->n, 1);
	cr_assert_eq(t->seq[0], 501);
	free(s);
	free(t);
	ud_close(db);
}

Test(retain, stop_leaves_the_position_at_the_record)
{
	ud_db *db = open_db(1000000);
	struct seen *s = calloc(1, sizeof(*s));
	struct retain_pos pos;

	for (int i = 0; i < 50; i++)
		create(db, i);
	cr_assert_eq(ud_flush(db), 0);
	pos = first_pos(db);
	s->stop_at = 21;
	read_all(db, &pos, s);
	cr_assert_eq(s->n, 20);
	cr_assert_eq(pos.off, s->end[19].off);
	s->stop_at = 0;
	s->n = 0;
	read_all(db, &pos, s);
	cr_assert_eq(s->n, 30);
	cr_assert_eq(s->seq[0], 21);
	free(s);
	ud_close(db);
}

Test(retain, a_removed_segment_is_skipped)
{
	ud_db *db = open_db(10);
	struct seen *s = calloc(1, sizeof(*s));
	struct retain_pos pos;
	struct ud_error err = {0};

	for (int i = 0; i < 100; i++)
		create(db, i);
	cr_assert_eq(ud_flush(db), 0);
	pos = first_pos(db);
	cr_assert_eq(ud_snapshot_sync(db, &err), 0, "%s", err.message);
	for (int i = 100; i < 120; i++)
		create(db, i);
	cr_assert_eq(ud_flush(db), 0);
	cr_assert_eq(ud_snapshot_sync(db, &err), 0, "%s", err.message);
	/* The first segment (records 1..100) went: the last 10 records are
	 * in the second one. */
	read_all(db, &pos, s);
	cr_assert_gt(s->n, 0);
	cr_assert_gt(s->seq[0], 100, "read on in the next live segment");
	cr_assert_eq(s->seq[s->n - 1], 120);
	free(s);
	ud_close(db);
}

Test(retain, stops_at_a_torn_tail)
{
	ud_db *db = open_db(1000000);
	struct seen *s = calloc(1, sizeof(*s));
	struct retain_pos pos, end;
	char name[32], path[4096];
	int fd;

	for (int i = 0; i < 40; i++)
		create(db, i);
	cr_assert_eq(ud_flush(db), 0);
	cr_assert(retain_tell(db, &end));
	/* Half a record's header after the last one, as a crash leaves. */
	oplog_seg_name(end.seg, name);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_APPEND);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, "URECxxxxxxxx", 12), 12);
	close(fd);
	pos = first_pos(db);
	read_all(db, &pos, s);
	cr_assert_eq(s->n, 40);
	cr_assert_eq(pos.off, end.off);
	free(s);
	ud_close(db);
}
