/*
 * test_oplog.c -- the log: group commit, reopen, rotation, and disk
 * failures (ENOSPC, EIO, short writes, fsync errors) that lose nothing.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fault.h"
#include "frame.h"
#include "helper.h"
#include "oplog.h"

static char *dir;
static struct fault flt;

static void setup(void)
{
	dir = tmpdir_make();
	fault_init(&flt);
}

static void teardown(void)
{
	fault_destroy(&flt);
	tmpdir_remove(dir);
}

TestSuite(oplog, .init = setup, .fini = teardown);

static double test_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Reopened, the log holds exactly in, up to seq last, all of it durable;
 * frees in and out. */
static void reopen_holds(struct recs *in, struct recs *out, uint64_t last)
{
	struct oplog *o = log_reopen(dir, UD_FSYNC_ALWAYS, &flt, out, NULL);

	cr_assert(recs_equal(in, out));
	cr_assert_eq(oplog_last_seq(o), last);
	cr_assert_eq(oplog_durable_seq(o), last);
	oplog_close(o);
	recs_free(in);
	recs_free(out);
}

Test(oplog, append_only_batches_until_flush)
{
	struct recs in, out = {0};
	struct oplog *o = log_reopen(dir, UD_FSYNC_ALWAYS, &flt, &out, NULL);
	long before = file_size(dir, "log-0000000000000001.ulog");

	recs_make(&in, 10, 30);
	log_append_all(o, &in);
	cr_assert_eq(file_size(dir, "log-0000000000000001.ulog"), before,
		     "append must not write");
	cr_assert_gt(oplog_batch_bytes(o), 0);
	cr_assert_eq(oplog_flush(o), 0);
	cr_assert_eq(oplog_batch_bytes(o), 0);
	cr_assert_eq(oplog_records(o), 10);
	cr_assert_eq(oplog_last_seq(o), 10);
	cr_assert_eq(file_size(dir, "log-0000000000000001.ulog"),
		     (long)oplog_bytes(o));
	oplog_close(o);
	reopen_holds(&in, &out, 10);
}

Test(oplog, one_write_per_flush)
{
	struct recs in, out = {0};
	struct oplog *o = log_reopen(dir, UD_FSYNC_NO, &flt, &out, NULL);

	recs_make(&in, 50, 20);
	log_append_all(o, &in);
	/* Only one write call may happen: a second would fail. */
	cr_assert_eq(fault_parse(&flt, "write:EIO:1:*", NULL), 0);
	cr_assert_eq(oplog_flush(o), 0);
	cr_assert_eq(fault_parse(&flt, "", NULL), 0);
	oplog_close(o);
	o = log_reopen(dir, UD_FSYNC_NO, &flt, &out, NULL);
	cr_assert(recs_equal(&in, &out));
	oplog_close(o);
	recs_free(&in);
	recs_free(&out);
}

Test(oplog, reopen_appends_across_modes)
{
	int modes[] = {UD_FSYNC_EVERYSEC, UD_FSYNC_ALWAYS, UD_FSYNC_NO};
	struct recs in, out = {0}, part;

	recs_make(&in, 30, 10);
	for (int m = 0; m < 3; m++) {
		struct oplog *o = log_reopen(dir, modes[m], &flt, &out, NULL);

		recs_free(&out);
		part = in;
		part.items += m * 10;
		part.lens += m * 10;
		part.n = 10;
		log_append_all(o, &part);
		cr_assert_eq(oplog_flush(o), 0);
		oplog_close(o);
	}
	oplog_close(log_reopen(dir, UD_FSYNC_NO, &flt, &out, NULL));
	cr_assert(recs_equal(&in, &out));
	recs_free(&in);
	recs_free(&out);
}

/* Reopened, the log holds the 5 records of a, the 5 of b and "after";
 * frees a, b and out. */
static void reopen_holds_a_b_after(int mode, struct recs *a, struct recs *b,
				   struct recs *out)
{
	struct oplog *o = log_reopen(dir, mode, &flt, out, NULL);

	cr_assert_eq(out->n, 11);
	for (size_t i = 0; i < 5; i++) {
		cr_assert_eq(out->lens[i], a->lens[i]);
		cr_assert_eq(out->lens[5 + i], b->lens[i]);
		cr_assert_eq(memcmp(out->items[5 + i], b->items[i], b->lens[i]),
			     0);
	}
	cr_assert_eq(memcmp(out->items[10], "after", 5), 0);
	oplog_close(o);
	recs_free(a);
	recs_free(b);
	recs_free(out);
}

/* Write a batch under `rule`; it must fail, refuse appends, lose nothing,
 * and succeed once the rule is cleared. */
static void failing_flush(int mode, const char *rule, bool cut)
{
	struct recs a, b, out = {0};
	struct oplog *o = log_reopen(dir, mode, &flt, &out, NULL);
	long good;

	recs_make(&a, 5, 40);
	recs_make(&b, 5, 400);
	log_append_all(o, &a);
	cr_assert_eq(oplog_flush(o), 0);
	good = (long)oplog_bytes(o);
	log_append_all(o, &b);
	cr_assert_eq(fault_parse(&flt, rule, NULL), 0);
	cr_assert_eq(oplog_flush(o), UD_EUNAVAILABLE, "%s", rule);
	cr_assert(oplog_unavailable(o));
	cr_assert_eq(oplog_append(o, "x", 1), UD_EUNAVAILABLE);
	if (cut)
		cr_assert_eq(file_size(dir, "log-0000000000000001.ulog"), good,
			     "the failed write must be cut back");
	else
		cr_assert_gt(file_size(dir, "log-0000000000000001.ulog"), good,
			     "the truncate was made to fail");
	oplog_tick(o); /* still failing */
	cr_assert(oplog_unavailable(o));
	cr_assert_eq(fault_parse(&flt, "", NULL), 0);
	oplog_tick(o);
	cr_assert_not(oplog_unavailable(o));
	cr_assert_eq(oplog_flush(o), 0);
	cr_assert_eq(oplog_append(o, "after", 5), 0);
	cr_assert_eq(oplog_flush(o), 0);
	oplog_close(o);
	reopen_holds_a_b_after(mode, &a, &b, &out);
}

Test(oplog, enospc_keeps_batch_until_disk_recovers)
{
	failing_flush(UD_FSYNC_EVERYSEC, "write:ENOSPC:0:*", true);
}

Test(oplog, eio_keeps_batch_until_disk_recovers)
{
	failing_flush(UD_FSYNC_NO, "write:EIO:0:*", true);
}

Test(oplog, fsync_failure_in_always_mode_rewrites_batch)
{
	failing_flush(UD_FSYNC_ALWAYS, "fsync:EIO:0:*", true);
}

Test(oplog, partial_write_then_enospc_is_cut_back)
{
	/* The first write half succeeds, the rest hits a full disk. */
	failing_flush(UD_FSYNC_NO, "write:SHORT:0:1,write:ENOSPC:0:*", true);
}

Test(oplog, failed_truncate_still_loses_nothing)
{
	failing_flush(UD_FSYNC_NO,
		      "write:SHORT:0:1,write:ENOSPC:0:*,trunc:EIO:0:*", false);
}

Test(oplog, short_writes_are_completed)
{
	struct recs in, out = {0};
	struct oplog *o = log_reopen(dir, UD_FSYNC_NO, &flt, &out, NULL);

	recs_make(&in, 20, 100);
	log_append_all(o, &in);
	cr_assert_eq(fault_parse(&flt, "write:SHORT:0:5", NULL), 0);
	cr_assert_eq(oplog_flush(o), 0);
	cr_assert_not(oplog_unavailable(o));
	oplog_close(o);
	oplog_close(log_reopen(dir, UD_FSYNC_NO, &flt, &out, NULL));
	cr_assert(recs_equal(&in, &out));
	recs_free(&in);
	recs_free(&out);
}

Test(oplog, everysec_thread_failure_makes_log_unavailable)
{
	struct recs in, out = {0};
	struct oplog *o = log_reopen(dir, UD_FSYNC_EVERYSEC, &flt, &out, NULL);

	recs_make(&in, 3, 10);
	cr_assert_eq(fault_parse(&flt, "fsync:EIO:0:*", NULL), 0);
	log_append_all(o, &in);
	cr_assert_eq(oplog_flush(o), 0, "write(2) itself works");
	for (int i = 0; i < 30 && !oplog_unavailable(o); i++) {
		usleep(100 * 1000);
		oplog_tick(o);
	}
	cr_assert(oplog_unavailable(o), "thread fsync error must surface");
	cr_assert_eq(oplog_append(o, "x", 1), UD_EUNAVAILABLE);
	cr_assert_eq(fault_parse(&flt, "", NULL), 0);
	oplog_tick(o);
	cr_assert_not(oplog_unavailable(o));
	cr_assert_eq(oplog_append(o, "x", 1), 0);
	oplog_close(o);
	oplog_close(log_reopen(dir, UD_FSYNC_NO, &flt, &out, NULL));
	cr_assert_eq(out.n, 4);
	recs_free(&in);
	recs_free(&out);
}

Test(oplog, rotate_and_remove_covered)
{
	struct recs in, out = {0};
	struct oplog *o = log_reopen(dir, UD_FSYNC_ALWAYS, &flt, &out, NULL);
	struct ud_error err;

	recs_make(&in, 8, 10);
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(oplog_append(o, in.items[i], in.lens[i]), 0);
	}
	cr_assert_eq(oplog_rotate(o, &err), 0, "flushes first");
	cr_assert_eq(oplog_rotate(o, &err), 0, "empty: no new segment");
	cr_assert_eq(file_count(dir, ".ulog"), 2);
	cr_assert_gt(file_size(dir, "log-0000000000000005.ulog"), 0);
	for (int i = 4; i < 8; i++)
		cr_assert_eq(oplog_append(o, in.items[i], in.lens[i]), 0);
	cr_assert_eq(oplog_flush(o), 0);
	oplog_close(o);
	o = log_reopen(dir, UD_FSYNC_ALWAYS, &flt, &out, NULL);
	cr_assert(recs_equal(&in, &out));
	oplog_remove_covered(o, 3);
	cr_assert_eq(file_count(dir, ".ulog"), 2, "seq 4 not covered yet");
	oplog_remove_covered(o, 4);
	cr_assert_eq(file_count(dir, ".ulog"), 1);
	cr_assert_eq(oplog_bytes(o),
		     (uint64_t)file_size(dir, "log-0000000000000005.ulog"));
	oplog_close(o);
	recs_free(&in);
	recs_free(&out);
}

Test(oplog, rotate_fails_cleanly_on_full_disk)
{
	struct recs out = {0};
	struct oplog *o = log_reopen(dir, UD_FSYNC_NO, &flt, &out, NULL);
	struct ud_error err;

	cr_assert_eq(oplog_append(o, "a", 1), 0);
	cr_assert_eq(oplog_flush(o), 0);
	cr_assert_eq(fault_parse(&flt, "write:ENOSPC:0:1", NULL), 0);
	cr_assert_eq(oplog_rotate(o, &err), UD_EIO);
	cr_assert_eq(file_count(dir, ".ulog"), 1, "no half-made segment");
	cr_assert_not(oplog_unavailable(o));
	cr_assert_eq(oplog_append(o, "b", 1), 0);
	oplog_close(o);
	oplog_close(log_reopen(dir, UD_FSYNC_NO, &flt, &out, NULL));
	cr_assert_eq(out.n, 2);
	recs_free(&out);
}

Test(oplog, fault_spec_syntax)
{
	cr_assert_eq(fault_parse(&flt, "write:ENOSPC", NULL), 0);
	cr_assert_eq(fault_parse(&flt, "fsync:EIO:2:3,snap:SHORT", NULL), 0);
	cr_assert_eq(fault_parse(&flt, "write:ENOSPC:file=/nonexistent", NULL),
		     0);
	cr_assert_eq(fault_check(&flt, FAULT_WRITE), 0);
	cr_assert_eq(fault_parse(&flt, "bogus:EIO", NULL), UD_EINVAL);
	cr_assert_eq(fault_parse(&flt, "write:EWHAT", NULL), UD_EINVAL);
	cr_assert_eq(fault_parse(&flt, "write:EIO:x", NULL), UD_EINVAL);
	cr_assert_eq(fault_parse(&flt, "fsync:EIO:1:2", NULL), 0);
	cr_assert_eq(fault_check(&flt, FAULT_FSYNC), 0);
	cr_assert_eq(fault_check(&flt, FAULT_FSYNC), EIO);
	cr_assert_eq(fault_check(&flt, FAULT_FSYNC), EIO);
	cr_assert_eq(fault_check(&flt, FAULT_FSYNC), 0);
	cr_assert_eq(fault_parse(&flt,
				 "snapwrite:SHORT,snapsync:EIO,snaprename:"
				 "ENOSPC,snapdirsync:EIO,write:PARTIAL:0:*",
				 NULL),
		     0);
	cr_assert_eq(fault_check(&flt, FAULT_SNAP), 0);
	cr_assert_eq(fault_check(&flt, FAULT_SNAP_WRITE), FAULT_SHORT);
	cr_assert_eq(fault_check(&flt, FAULT_SNAP_SYNC), EIO);
	cr_assert_eq(fault_check(&flt, FAULT_SNAP_RENAME), ENOSPC);
	cr_assert_eq(fault_check(&flt, FAULT_SNAP_DIRSYNC), EIO);
	for (int i = 0; i < 4; i++) /* half a write, then a full disk */
		cr_assert_eq(fault_check(&flt, FAULT_WRITE),
			     i % 2 ? ENOSPC : FAULT_SHORT);
	cr_assert_eq(fault_parse(&flt, "snapfoo:EIO", NULL), UD_EINVAL);
}

Test(oplog, partial_rule_writes_half_then_fails)
{
	failing_flush(UD_FSYNC_NO, "write:PARTIAL:0:*", true);
}

/* Wait (at most 3 s) until the syncer has woken the owner thread and the
 * durable seq reached `want`. */
static bool durable_reaches(struct oplog *o, uint64_t want)
{
	struct pollfd pfd = {.fd = oplog_wake_fd(o), .events = POLLIN};
	uint64_t n;

	for (int i = 0; i < 300 && oplog_durable_seq(o) < want; i++)
		if (poll(&pfd, 1, 10) == 1)
			cr_assert_eq(read(pfd.fd, &n, sizeof n), sizeof n);
	return oplog_durable_seq(o) >= want;
}

Test(oplog, async_flush_leaves_fdatasync_to_the_syncer)
{
	struct recs in, out = {0};
	struct oplog *o = log_reopen(dir, UD_FSYNC_ALWAYS, &flt, &out, NULL);

	cr_assert_geq(oplog_wake_fd(o), 0);
	recs_make(&in, 20, 50);
	log_append_all(o, &in);
	cr_assert_eq(oplog_durable_seq(o), 0);
	/* A slow disk: the write returns at once, the sync a second later. */
	cr_assert_eq(fault_parse(&flt, "fsync:SLOW:0:1", NULL), 0);
	double t0 = test_ms();
	cr_assert_eq(oplog_flush_async(o), 0);
	cr_assert_lt(test_ms() - t0, FAULT_SLOW_MS / 2, "waited for the disk");
	cr_assert_eq(oplog_batch_bytes(o), 0);
	cr_assert_eq(file_size(dir, "log-0000000000000001.ulog"),
		     (long)oplog_bytes(o), "written");
	cr_assert_lt(oplog_durable_seq(o), 20, "durable before its fdatasync");
	cr_assert(durable_reaches(o, 20));
	cr_assert_geq(test_ms() - t0, FAULT_SLOW_MS);
	oplog_close(o);
	reopen_holds(&in, &out, 20);
}

Test(oplog, async_flush_in_other_modes_is_durable_when_written)
{
	int modes[] = {UD_FSYNC_EVERYSEC, UD_FSYNC_NO};
	for (int m = 0; m < 2; m++) {
		struct recs out = {0};
		struct oplog *o = log_reopen(dir, modes[m], &flt, &out, NULL);
		uint64_t seq = oplog_last_seq(o);

		cr_assert_eq(oplog_wake_fd(o), -1);
		cr_assert_eq(oplog_append(o, "abc", 3), 0);
		cr_assert_eq(oplog_durable_seq(o), seq);
		cr_assert_eq(oplog_flush_async(o), 0);
		cr_assert_eq(oplog_durable_seq(o), seq + 1);
		oplog_close(o);
		recs_free(&out);
	}
}

/* The syncer's fdatasync fails: nothing written since the last good sync
 * counts as durable, the file is cut back to it, appends are refused, and
 * the retry writes the same records again. */
Test(oplog, syncer_failure_cuts_back_and_rewrites)
{
	struct recs a, b, out = {0};
	struct oplog *o = log_reopen(dir, UD_FSYNC_ALWAYS, &flt, &out, NULL);

	recs_make(&a, 5, 40);
	recs_make(&b, 5, 400);
	log_append_all(o, &a);
	cr_assert_eq(oplog_flush_async(o), 0);
	cr_assert(durable_reaches(o, 5));
	long good = (long)oplog_bytes(o);
	cr_assert_eq(fault_parse(&flt, "fsync:EIO:0:*", NULL), 0);
	log_append_all(o, &b);
	cr_assert_eq(oplog_flush_async(o), 0, "the write itself works");
	for (int i = 0; i < 300 && !oplog_unavailable(o); i++) {
		usleep(10000);
		oplog_tick(o);
	}
	cr_assert(oplog_unavailable(o), "the syncer's failure must surface");
	cr_assert_eq(oplog_durable_seq(o), 5);
	cr_assert_eq(file_size(dir, "log-0000000000000001.ulog"), good,
		     "the unsynced records must be cut back");
	cr_assert_eq(oplog_append(o, "x", 1), UD_EUNAVAILABLE);
	cr_assert_eq(oplog_flush_async(o), UD_EUNAVAILABLE, "still failing");
	cr_assert_eq(fault_parse(&flt, "", NULL), 0);
	cr_assert_eq(oplog_flush_async(o), 0, "the retry syncs at once");
	cr_assert_not(oplog_unavailable(o));
	cr_assert_eq(oplog_durable_seq(o), 10);
	cr_assert_eq(oplog_records(o), 10);
	cr_assert_eq(oplog_append(o, "after", 5), 0);
	cr_assert_eq(oplog_flush_async(o), 0);
	cr_assert(durable_reaches(o, 11));
	oplog_close(o);
	reopen_holds_a_b_after(UD_FSYNC_ALWAYS, &a, &b, &out);
}
