/*
 * test_snapshot.c -- snapshot files: round trip, every byte flipped or cut
 * is refused, the forked writer and its failures, unfinished files.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "datadir.h"
#include "fault.h"
#include "frame.h"
#include "helper.h"
#include "snapshot.h"

#define SNAP5 "snap-0000000000000005.usnap"

static char *dir;

static void setup(void)
{
	dir = tmpdir_make();
}

static void teardown(void)
{
	tmpdir_remove(dir);
}

TestSuite(snap, .init = setup, .fini = teardown);

static int load(const char *name, struct recs *out, uint64_t *covered,
		struct ud_error *err)
{
	char path[4200];
	uint64_t n;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return snap_load(path, recs_apply, out, covered, &n, err);
}

Test(snap, write_and_load_round_trip)
{
	struct recs in, out = {0};
	struct ud_error err;
	uint64_t bytes, covered;

	recs_make(&in, 100, 50);
	cr_assert_eq(snap_write(dir, 5, recs_dump, &in, 0, &bytes, &err), 0);
	cr_assert_eq((long)bytes, file_size(dir, SNAP5));
	cr_assert_eq(file_count(dir, ".inprogress"), 0);
	cr_assert_eq(load(SNAP5, &out, &covered, &err), 0, "%s", err.message);
	cr_assert_eq(covered, 5);
	cr_assert(recs_equal(&in, &out));
	recs_free(&in);
	recs_free(&out);
}

Test(snap, empty_state_and_huge_record)
{
	struct recs in = {0}, out = {0};
	struct ud_error err;
	uint64_t bytes, covered;
	char *big = malloc(3 << 20);

	cr_assert_eq(snap_write(dir, 5, recs_dump, &in, 0, &bytes, &err), 0);
	cr_assert_eq(load(SNAP5, &out, &covered, &err), 0);
	cr_assert_eq(out.n, 0);
	memset(big, 'z', 3 << 20);
	recs_apply(&in, "small", 5, NULL);
	recs_apply(&in, big, 3 << 20, NULL);
	recs_apply(&in, "tail", 4, NULL);
	cr_assert_eq(snap_write(dir, 5, recs_dump, &in, 0, &bytes, &err), 0);
	cr_assert_eq(load(SNAP5, &out, &covered, &err), 0, "%s", err.message);
	cr_assert(recs_equal(&in, &out));
	free(big);
	recs_free(&in);
	recs_free(&out);
}

/* Both versions: compressed (what snap_write makes) and uncompressed
 * (what releases before compression made, still loaded). */
static const int levels[] = {SNAP_ZSTD_LEVEL, 0};

static void flips_and_cuts(int level)
{
	struct recs in, out = {0};
	struct ud_error err;
	uint64_t bytes, covered;
	size_t len;
	char *full;

	recs_make(&in, 3, 10);
	cr_assert_eq(
	    snap_write_level(dir, 5, level, recs_dump, &in, 0, &bytes, &err),
	    0);
	full = file_read(dir, SNAP5, &len);
	for (size_t i = 0; i < len; i++) {
		full[i] ^= 0x08;
		file_write(dir, SNAP5, full, len);
		full[i] ^= 0x08;
		cr_assert_eq(load(SNAP5, &out, &covered, &err), UD_ECORRUPT,
			     "flip %zu", i);
		cr_assert(strstr(err.message, SNAP5), "%s", err.message);
		cr_assert_eq(out.n, 0, "nothing applied from a bad file");
	}
	for (size_t cut = 0; cut < len; cut++) {
		file_write(dir, SNAP5, full, cut);
		cr_assert_eq(load(SNAP5, &out, &covered, &err), UD_ECORRUPT,
			     "cut %zu", cut);
		cr_assert_eq(out.n, 0);
	}
	free(full);
	recs_free(&in);
}

Test(snap, every_flipped_byte_and_every_cut_is_refused)
{
	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++)
		flips_and_cuts(levels[i]);
}

Test(snap, both_versions_round_trip_and_compressed_is_smaller)
{
	struct recs in, out = {0};
	struct ud_error err;
	uint64_t bytes[2], covered;
	size_t len;
	char *p;

	recs_make(&in, 12000, 120); /* across two 1 MiB blocks */
	for (size_t i = 0; i < 2; i++) {
		cr_assert_eq(snap_write_level(dir, 5, levels[i], recs_dump, &in,
					      0, &bytes[i], &err),
			     0, "%s", err.message);
		p = file_read(dir, SNAP5, &len);
		cr_assert_eq(len, bytes[i]);
		cr_assert_eq(frame_get32((unsigned char *)p + 8),
			     levels[i] ? 2 : 1, "file version");
		free(p);
		cr_assert_eq(load(SNAP5, &out, &covered, &err), 0, "%s",
			     err.message);
		cr_assert_eq(covered, 5);
		cr_assert(recs_equal(&in, &out), "level %d", levels[i]);
		recs_free(&out);
		out = (struct recs){0};
	}
	cr_assert_lt(bytes[0] * 2, bytes[1], "%lu compressed vs %lu",
		     (unsigned long)bytes[0], (unsigned long)bytes[1]);
	recs_free(&in);
}

Test(snap, compressed_block_that_lies_about_its_size_is_refused)
{
	struct recs in, out = {0};
	struct ud_error err;
	uint64_t bytes, covered;
	size_t len;
	unsigned char *p;

	recs_make(&in, 10, 50);
	cr_assert_eq(snap_write(dir, 5, recs_dump, &in, 0, &bytes, &err), 0);
	p = (unsigned char *)file_read(dir, SNAP5, &len);
	/* Truncate block 1's compressed bytes by one, fixing up the frame
	 * so that only zstd can tell: checksums alone do not make a file
	 * sound. */
	uint32_t blen = frame_get32(p + FRAME_FILE_HDR + 4);
	unsigned char *blk = p + FRAME_FILE_HDR;
	memmove(blk + FRAME_REC_HDR + blen - 1, blk + FRAME_REC_HDR + blen,
		len - (FRAME_FILE_HDR + FRAME_REC_HDR + blen));
	len--;
	frame_rec_hdr_encode(blk, FRAME_ZBLK_MAGIC, 1, blk + FRAME_REC_HDR,
			     blen - 1);
	file_write(dir, SNAP5, (char *)p, len);
	cr_assert_eq(load(SNAP5, &out, &covered, &err), UD_ECORRUPT);
	cr_assert(strstr(err.message, "decompress"), "%s", err.message);
	cr_assert_eq(out.n, 0);
	free(p);
	recs_free(&in);
}

Test(snap, trailing_garbage_is_refused)
{
	struct recs in;
	struct ud_error err;
	uint64_t bytes, covered;
	size_t len;
	char *full;

	recs_make(&in, 3, 10);
	cr_assert_eq(snap_write(dir, 5, recs_dump, &in, 0, &bytes, &err), 0);
	full = file_read(dir, SNAP5, &len);
	full = realloc(full, len + 1);
	full[len] = 0;
	file_write(dir, SNAP5, full, len + 1);
	cr_assert_eq(load(SNAP5, NULL, &covered, &err), UD_ECORRUPT);
	free(full);
	recs_free(&in);
}

Test(snap, forked_job_writes_and_reports)
{
	struct recs in, out = {0};
	struct snap_job job = {0};
	struct snap_result res;
	struct ud_error err;
	uint64_t covered;

	recs_make(&in, 1000, 100);
	cr_assert_eq(snap_job_start(&job, dir, 5, recs_dump, &in, 0, &err), 0);
	cr_assert_gt(job.pid, 0);
	/* The parent may change its state: the child has its own copy. */
	recs_apply(&in, "late", 4, NULL);
	while (snap_job_poll(&job, dir, false, &res) == 0)
		nanosleep(&(struct timespec){0, 1000000}, NULL);
	cr_assert_eq(res.code, 0, "%s", res.message);
	cr_assert_eq(job.pid, 0);
	cr_assert_eq((long)res.bytes, file_size(dir, SNAP5));
	cr_assert_eq(load(SNAP5, &out, &covered, &err), 0);
	cr_assert_eq(out.n, 1000, "a cut at the fork");
	recs_free(&in);
	recs_free(&out);
}

Test(snap, failed_child_leaves_nothing)
{
	struct recs in;
	struct snap_job job = {0};
	struct snap_result res;
	struct ud_error err;

	recs_make(&in, 10, 10);
	cr_assert_eq(snap_job_start(&job, dir, 5, recs_dump, &in,
				    &(struct snap_faults){.write = ENOSPC},
				    &err),
		     0);
	cr_assert_eq(snap_job_poll(&job, dir, true, &res), 1);
	cr_assert_eq(res.code, UD_EIO);
	cr_assert(strstr(res.message, "No space"), "%s", res.message);
	cr_assert_eq(file_count(dir, ".usnap"), 0);
	cr_assert_eq(file_count(dir, ".inprogress"), 0);
	recs_free(&in);
}

Test(snap, every_failing_step_leaves_nothing)
{
	const struct snap_faults cases[] = {{.write = EIO},
					    {.sync = EIO},
					    {.rename = ENOSPC},
					    {.dirsync = EIO}};
	struct recs in;
	struct ud_error err;
	uint64_t bytes;

	recs_make(&in, 10, 10);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cr_assert_eq(
		    snap_write(dir, 5, recs_dump, &in, &cases[i], &bytes, &err),
		    UD_EIO, "case %zu", i);
		cr_assert_eq(file_count(dir, ".usnap"), 0, "case %zu", i);
		cr_assert_eq(file_count(dir, ".inprogress"), 0, "case %zu", i);
	}
	recs_free(&in);
}

Test(snap, short_writes_are_looped_over)
{
	struct recs in, out = {0};
	struct ud_error err;
	uint64_t bytes, covered;

	recs_make(&in, 500, 100);
	cr_assert_eq(snap_write(dir, 5, recs_dump, &in,
				&(struct snap_faults){.write = FAULT_SHORT},
				&bytes, &err),
		     0, "%s", err.message);
	cr_assert_eq((long)bytes, file_size(dir, SNAP5));
	cr_assert_eq(load(SNAP5, &out, &covered, &err), 0, "%s", err.message);
	cr_assert_eq(out.n, 500);
	recs_free(&in);
	recs_free(&out);
}

Test(snap, unfinished_file_is_never_read_and_removed)
{
	struct recs in;
	struct datadir_list l;
	struct ud_error err;
	uint64_t bytes;

	recs_make(&in, 3, 10);
	cr_assert_eq(snap_write(dir, 5, recs_dump, &in, 0, &bytes, &err), 0);
	/* A crash before the rename: a complete file under the temp name. */
	size_t len;
	char *p = file_read(dir, SNAP5, &len);

	file_write(dir, "snap-0000000000000009.usnap.inprogress", p, len);
	file_write(dir, "log-0000000000000009.ulog.inprogress", "x", 1);
	cr_assert_eq(datadir_list(dir, &l, &err), 0);
	cr_assert_eq(l.nsnap, 1);
	cr_assert_eq(l.snaps[0], 5);
	datadir_list_free(&l);
	cr_assert_eq(datadir_remove_inprogress(dir), 2);
	cr_assert_eq(file_count(dir, ".inprogress"), 0);
	cr_assert_eq(file_count(dir, ".usnap"), 1);
	free(p);
	recs_free(&in);
}
