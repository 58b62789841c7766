/*
 * test_recovery.c -- the recovery rule of recover.h: a log cut at every
 * byte, every byte flipped, empty files, sequence gaps, snapshot choice.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "datadir.h"
#include "fault.h"
#include "frame.h"
#include "helper.h"
#include "oplog.h"
#include "recover.h"
#include "snapshot.h"

#define SEG1 "log-0000000000000001.ulog"

static char *dir;

static void setup(void)
{
	dir = tmpdir_make();
}

static void teardown(void)
{
	tmpdir_remove(dir);
}

TestSuite(recover, .init = setup, .fini = teardown);

/* Write recs as a one-segment log; return the record end offsets. */
static size_t *write_log(const struct recs *in)
{
	struct recs out = {0};
	struct oplog *o = log_reopen(dir, UD_FSYNC_NO, NULL, &out, NULL);
	size_t *ends = calloc(in->n + 1, sizeof(size_t));

	ends[0] = FRAME_FILE_HDR;
	for (size_t i = 0; i < in->n; i++) {
		cr_assert_eq(oplog_append(o, in->items[i], in->lens[i]), 0);
		cr_assert_eq(oplog_flush(o), 0);
		ends[i + 1] = (size_t)oplog_bytes(o);
	}
	oplog_close(o);
	return ends;
}

static void log_and_snapshot(const struct recs *in, size_t rot, size_t snap);

/* A stage (snapshot.h) over recs_apply: prepare copies a record into its
 * batch (on either thread), apply hands it to recs_apply in order. */
struct tbatch {
	size_t n;
	struct tent {
		char *p;
		size_t len;
	} e[];
};

static int t_begin(void *ctx, uint64_t weight)
{
	return 0;
}

static void *t_batch_new(size_t n)
{
	struct tbatch *b = calloc(1, sizeof(*b) + n * sizeof(b->e[0]));

	if (b)
		b->n = n;
	return b;
}

static void t_batch_free(void *batch)
{
	struct tbatch *b = batch;

	for (size_t i = 0; i < b->n; i++)
		free(b->e[i].p);
	free(b);
}

static int t_prepare(void *batch, size_t i, const void *rec, size_t len,
		     struct ud_error *err)
{
	struct tbatch *b = batch;

	free(b->e[i].p);
	b->e[i].p = malloc(len ? len : 1);
	memcpy(b->e[i].p, rec, len);
	b->e[i].len = len;
	return 0;
}

static void t_prefetch(void *ctx, void *batch, size_t i)
{
}

static int t_apply(void *ctx, void *batch, size_t i, struct ud_error *err)
{
	struct tbatch *b = batch;

	return recs_apply(ctx, b->e[i].p, b->e[i].len, err);
}

static const struct snap_stage test_stage = {
    t_begin, NULL, t_batch_new, t_batch_free, t_prepare, t_prefetch, t_apply};

/* Recover dir one record at a time, and again through the two-thread stage
 * (the server's path: log segments too are replayed in batches); the two
 * must agree on everything: outcome, message, records, counts. */
static int try_recover(struct recs *out, struct ud_error *err,
		       struct recover_result *r)
{
	struct recs out2 = {0};
	struct ud_error err2 = {0};
	struct recover_result r2;
	int rc = recover_run(dir, recs_apply, out, r, err);
	int rc2 =
	    recover_run_staged(dir, recs_apply, &test_stage, &out2, &r2, &err2);

	cr_assert_eq(rc2, rc, "staged %d (%s), serial %d (%s)", rc2,
		     err2.message, rc, rc ? err->message : "");
	if (rc)
		cr_assert_str_eq(err2.message, err->message);
	cr_assert(recs_equal(out, &out2), "staged: %zu records, serial %zu",
		  out2.n, out->n);
	if (rc == 0) {
		cr_assert_eq(r2.log_records, r->log_records);
		cr_assert_eq(r2.next_seq, r->next_seq);
		cr_assert_eq(r2.torn, r->torn);
		cr_assert_eq(r2.torn_bytes, r->torn_bytes);
		cr_assert_eq(r2.nseg, r->nseg);
	}
	recover_result_free(&r2);
	recs_free(&out2);
	return rc;
}

/* Logs long enough for many batches (SNAP_BATCH records each) on both
 * threads: a snapshot mid-segment, a rotation, and a record that cannot
 * be applied deep in the second segment; try_recover compares the staged
 * replay with the serial one. */
Test(recover, long_log_replays_the_same_on_two_threads)
{
	struct recs in, out = {0};
	struct recover_result r;
	struct ud_error err;
	size_t n = 5 * SNAP_BATCH + 17;

	recs_make(&in, n, 24);
	log_and_snapshot(&in, 2 * SNAP_BATCH + 5, SNAP_BATCH + 3);
	cr_assert_eq(try_recover(&out, &err, &r), 0, "%s", err.message);
	cr_assert_eq(r.log_records, n - (SNAP_BATCH + 3));
	cr_assert(recs_equal(&in, &out));
	recover_result_free(&r);
	recs_free(&out);
	recs_free(&in);
}

Test(recover, long_log_reports_the_first_bad_record)
{
	struct recs in, out = {0};
	struct recover_result r;
	struct ud_error err;
	size_t n = 5 * SNAP_BATCH + 17, bad = 4 * SNAP_BATCH - 7;

	recs_make(&in, n, 24);
	memcpy(in.items[bad], "BAD!", 4);
	memcpy(in.items[bad + 40], "BAD!", 4); /* a later one: not reported */
	log_and_snapshot(&in, 2 * SNAP_BATCH + 5, 0);
	cr_assert_eq(try_recover(&out, &err, &r), UD_ECORRUPT);
	cr_assert(strstr(err.message, "cannot be applied: fake: bad record"),
		  "%s", err.message);
	char seg2[40];
	snprintf(seg2, sizeof seg2, "log-%016llx.ulog",
		 (unsigned long long)(2 * SNAP_BATCH + 5 + 1));
	cr_assert(strstr(err.message, seg2), "%s", err.message);
	cr_assert_eq(out.n, bad, "the records before it were applied");
	recover_result_free(&r);
	recs_free(&out);
	recs_free(&in);
}

Test(recover, log_cut_at_every_byte)
{
	struct recs in, out = {0};
	size_t *ends, len;
	char *full;

	recs_make(&in, 5, 12);
	ends = write_log(&in);
	full = file_read(dir, SEG1, &len);
	cr_assert_eq(len, ends[5]);
	for (size_t cut = 0; cut <= len; cut++) {
		size_t whole = 0;
		char *w = NULL;
		struct oplog *o;

		while (whole < 5 && ends[whole + 1] <= cut)
			whole++;
		file_write(dir, SEG1, full, cut);
		o = log_reopen(dir, UD_FSYNC_NO, NULL, &out, &w);
		cr_assert_eq(out.n, whole, "cut %zu", cut);
		for (size_t i = 0; i < whole; i++)
			cr_assert_eq(
			    memcmp(out.items[i], in.items[i], in.lens[i]), 0);
		bool torn = cut > 0 && cut != ends[whole];
		cr_assert_eq(strstr(w, "torn") != NULL, torn,
			     "cut %zu warnings '%s'", cut, w);
		cr_assert_eq(
		    file_size(dir, SEG1),
		    (long)(cut < FRAME_FILE_HDR ? FRAME_FILE_HDR : ends[whole]),
		    "cut %zu: torn tail truncated", cut);
		/* The log keeps working after the cut. */
		cr_assert_eq(oplog_append(o, "next", 4), 0);
		oplog_close(o);
		recs_free(&out);
		oplog_close(log_reopen(dir, UD_FSYNC_NO, NULL, &out, NULL));
		cr_assert_eq(out.n, whole + 1, "cut %zu", cut);
		cr_assert_eq(memcmp(out.items[whole], "next", 4), 0);
		recs_free(&out);
		free(w);
	}
	free(full);
	free(ends);
	recs_free(&in);
}

Test(recover, log_every_byte_flipped)
{
	struct recs in, out = {0};
	struct recover_result r;
	struct ud_error err;
	size_t *ends, len;
	char *full;

	recs_make(&in, 4, 9);
	ends = write_log(&in);
	full = file_read(dir, SEG1, &len);
	for (size_t i = 0; i < len; i++) {
		size_t k = 0; /* record holding byte i (0 = header) */
		int rc;

		while (k < 4 && ends[k] <= i)
			k++;
		full[i] ^= 0x20;
		file_write(dir, SEG1, full, len);
		full[i] ^= 0x20;
		memset(&err, 0, sizeof(err));
		rc = try_recover(&out, &err, &r);
		if (k == 4) { /* the last record: a torn tail */
			cr_assert_eq(rc, 0, "byte %zu: %s", i, err.message);
			cr_assert(r.torn);
			cr_assert_eq(out.n, 3);
		} else {
			char want[64];

			snprintf(want, sizeof(want), "%s: ", SEG1);
			cr_assert_eq(rc, UD_ECORRUPT, "byte %zu", i);
			cr_assert(strstr(err.message, want), "%s", err.message);
			snprintf(want, sizeof(want), "offset %zu",
				 k ? ends[k - 1] : 0);
			cr_assert(strstr(err.message, want),
				  "byte %zu: want %s in '%s'", i, want,
				  err.message);
		}
		recover_result_free(&r);
		recs_free(&out);
	}
	free(full);
	free(ends);
	recs_free(&in);
}

Test(recover, bad_record_in_earlier_segment_is_corruption)
{
	struct recs in, out = {0};
	struct recover_result r;
	struct ud_error err;
	struct oplog *o;
	size_t len;
	char *seg;

	recs_make(&in, 6, 10);
	o = log_reopen(dir, UD_FSYNC_NO, NULL, &out, NULL);
	for (int i = 0; i < 6; i++) {
		cr_assert_eq(oplog_append(o, in.items[i], in.lens[i]), 0);
		if (i == 2)
			cr_assert_eq(oplog_rotate(o, &err), 0);
	}
	oplog_close(o);
	seg = file_read(dir, SEG1, &len);
	seg[len - 1] ^= 1; /* last record of the FIRST segment */
	file_write(dir, SEG1, seg, len);
	cr_assert_eq(try_recover(&out, &err, &r), UD_ECORRUPT);
	cr_assert(strstr(err.message, SEG1), "%s", err.message);
	recover_result_free(&r);
	recs_free(&out);
	free(seg);
	recs_free(&in);
}

Test(recover, empty_directory_and_empty_files)
{
	struct recs out = {0};
	char *w;
	struct oplog *o = log_reopen(dir, UD_FSYNC_NO, NULL, &out, &w);

	cr_assert_eq(out.n, 0);
	cr_assert_str_eq(w, "");
	cr_assert_eq(file_size(dir, SEG1), FRAME_FILE_HDR);
	oplog_close(o);
	free(w);
	/* A 0-byte segment (crash right after create) is just empty. */
	file_write(dir, SEG1, "", 0);
	o = log_reopen(dir, UD_FSYNC_NO, NULL, &out, &w);
	cr_assert_eq(out.n, 0);
	cr_assert_eq(oplog_append(o, "a", 1), 0);
	oplog_close(o);
	free(w);
	/* A 0-byte snapshot is damaged; the log from seq 1 still serves. */
	file_write(dir, "snap-0000000000000001.usnap", "", 0);
	o = log_reopen(dir, UD_FSYNC_NO, NULL, &out, &w);
	cr_assert_eq(out.n, 1);
	cr_assert(strstr(w, "snapshot damaged"), "%s", w);
	oplog_close(o);
	free(w);
	recs_free(&out);
}

Test(recover, sequence_gap_is_corruption)
{
	struct recs out = {0};
	struct recover_result r;
	struct ud_error err;
	struct oplog *o;
	struct oplog_seg seg = {10, 0};
	struct oplog_start st = {&seg, 1, 10};

	/* A log that starts at seq 10 with nothing before it. */
	cr_assert_eq(oplog_open(dir, &st, UD_FSYNC_NO, NULL, &o, &err), 0);
	cr_assert_eq(oplog_append(o, "x", 1), 0);
	oplog_close(o);
	cr_assert_eq(try_recover(&out, &err, &r), UD_ECORRUPT);
	cr_assert(strstr(err.message, "log-000000000000000a.ulog"), "%s",
		  err.message);
	cr_assert(strstr(err.message, "missing"), "%s", err.message);
	recover_result_free(&r);
}

/* Log of in (records 1..n) split at `rot`, and a snapshot of the first
 * `snap` records. */
static void log_and_snapshot(const struct recs *in, size_t rot, size_t snap)
{
	struct recs out = {0}, part = *in;
	struct ud_error err;
	uint64_t bytes;
	struct oplog *o = log_reopen(dir, UD_FSYNC_NO, NULL, &out, NULL);

	for (size_t i = 0; i < in->n; i++) {
		if (i == rot)
			cr_assert_eq(oplog_rotate(o, &err), 0);
		cr_assert_eq(oplog_append(o, in->items[i], in->lens[i]), 0);
	}
	oplog_close(o);
	part.n = snap;
	cr_assert_eq(snap_write(dir, snap, recs_dump, &part, 0, &bytes, &err),
		     0);
}

Test(recover, snapshot_then_log_after_it)
{
	struct recs in, out = {0};
	struct recover_result r;
	struct ud_error err;

	recs_make(&in, 10, 20);
	log_and_snapshot(&in, 4, 4);
	cr_assert_eq(try_recover(&out, &err, &r), 0, "%s", err.message);
	cr_assert(r.have_snap);
	cr_assert_eq(r.snap_covered, 4);
	cr_assert_eq(r.snap_records, 4);
	cr_assert_eq(r.log_records, 6);
	cr_assert_eq(r.next_seq, 11);
	cr_assert(recs_equal(&in, &out));
	recover_result_free(&r);
	recs_free(&out);
	recs_free(&in);
}

Test(recover, snapshot_mid_segment_skips_covered_records)
{
	struct recs in, out = {0};
	struct recover_result r;
	struct ud_error err;

	recs_make(&in, 10, 20);
	log_and_snapshot(&in, 99, 7); /* one segment, snapshot at 7 */
	cr_assert_eq(try_recover(&out, &err, &r), 0, "%s", err.message);
	cr_assert_eq(r.log_records, 3);
	cr_assert(recs_equal(&in, &out));
	recover_result_free(&r);
	recs_free(&out);
	recs_free(&in);
}

static void damage(const char *name, size_t at)
{
	size_t len;
	char *p = file_read(dir, name, &len);

	cr_assert_lt(at, len);
	p[at] ^= 0x55;
	file_write(dir, name, p, len);
	free(p);
}

Test(recover, damaged_newest_snapshot_falls_back_to_older)
{
	struct recs in, out = {0}, part;
	struct recover_result r;
	struct ud_error err;
	uint64_t bytes;

	recs_make(&in, 10, 20);
	log_and_snapshot(&in, 4, 4);
	part = in;
	part.n = 8;
	cr_assert_eq(snap_write(dir, 8, recs_dump, &part, 0, &bytes, &err), 0);
	damage("snap-0000000000000008.usnap", 100);
	cr_assert_eq(try_recover(&out, &err, &r), 0, "%s", err.message);
	cr_assert_eq(r.snap_covered, 4);
	cr_assert(recs_equal(&in, &out));
	cr_assert(strstr(r.warnings.data, "snap-0000000000000008.usnap"));
	recover_result_free(&r);
	recs_free(&out);
	recs_free(&in);
}

Test(recover, damaged_snapshot_without_log_is_corruption)
{
	struct recs in, out = {0};
	struct recover_result r;
	struct ud_error err;
	char path[4200];

	recs_make(&in, 10, 20);
	log_and_snapshot(&in, 4, 4);
	/* The covered segment is gone, as after a normal snapshot. */
	snprintf(path, sizeof(path), "%s/%s", dir, SEG1);
	cr_assert_eq(unlink(path), 0);
	damage("snap-0000000000000004.usnap", 40);
	cr_assert_eq(try_recover(&out, &err, &r), UD_ECORRUPT);
	cr_assert(strstr(err.message, "snap-0000000000000004.usnap"), "%s",
		  err.message);
	cr_assert(strstr(err.message, "offset"), "%s", err.message);
	recover_result_free(&r);
	recs_free(&out);
	recs_free(&in);
}

Test(recover, record_the_engine_rejects_is_corruption)
{
	struct recs out = {0};
	struct recover_result r;
	struct ud_error err;
	struct oplog *o = log_reopen(dir, UD_FSYNC_NO, NULL, &out, NULL);

	cr_assert_eq(oplog_append(o, "good", 4), 0);
	cr_assert_eq(oplog_append(o, "BAD!", 4), 0);
	oplog_close(o);
	cr_assert_eq(try_recover(&out, &err, &r), UD_ECORRUPT);
	cr_assert(strstr(err.message, "offset 60"), "%s", err.message);
	cr_assert(strstr(err.message, "fake: bad record"), "%s", err.message);
	recover_result_free(&r);
	recs_free(&out);
}
