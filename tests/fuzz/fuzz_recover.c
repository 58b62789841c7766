/*
 * fuzz_recover.c -- opening a data directory whose files hold arbitrary
 * bytes: frame.c, recover.c, snapshot.c, oplog_open and replay through
 * ud_db_apply, via the public ud_open().
 *
 * Input: the first byte picks how the rest becomes files in a fresh
 * directory (FUZZ_SEP separates pieces):
 *   0  raw bytes as the log segment log-0000000000000001.ulog
 *   1  piece 1 raw as the snapshot snap-0000000000000001.usnap, piece 2
 *      (if any) raw as log-0000000000000002.ulog
 *   2  each piece is a change record, framed with correct checksums as
 *      records 1..n of log-0000000000000001.ulog (so the bytes reach the
 *      engine's decoder instead of stopping at a checksum)
 *   3  the same framed as a complete snapshot covering seq 1
 *
 * Properties: ud_open either fails cleanly (a code, a message) or opens a
 * store whose invariants hold; an opened store takes a new write, and
 * after ud_close a second ud_open succeeds with exactly the same state
 * (dump compare), both from the log alone and after a snapshot.
 */
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "frame.h"
#include "fuzz_persist.h"
#include "fuzz_util.h"

struct framer {
	struct ud_buf b;
	uint64_t seq;
	uint32_t magic;
};

static int frame_piece(void *ctx, const uint8_t *p, size_t n)
{
	struct framer *f = ctx;
	unsigned char hdr[FRAME_REC_HDR];
	frame_rec_hdr_encode(hdr, f->magic, ++f->seq, p, (uint32_t)n);
	FUZZ_CHECK(ud_buf_append(&f->b, hdr, sizeof hdr) == 0 &&
		       ud_buf_append(&f->b, p, n) == 0,
		   "append");
	return 0;
}

static void write_framed(const char *dir, const uint8_t *p, size_t n, bool snap)
{
	struct framer f = {.magic = FRAME_REC_MAGIC};
	unsigned char hdr[FRAME_FILE_HDR];
	frame_file_hdr_encode(hdr, snap ? FRAME_SNAP : FRAME_LOG, 1);
	FUZZ_CHECK(ud_buf_append(&f.b, hdr, sizeof hdr) == 0, "append");
	fuzz_split(p, n, frame_piece, &f);
	if (snap) {
		unsigned char end[FRAME_REC_HDR];
		frame_rec_hdr_encode(end, FRAME_END_MAGIC, f.seq, NULL, 0);
		FUZZ_CHECK(ud_buf_append(&f.b, end, sizeof end) == 0, "end");
	}
	fuzz_write_file(dir,
			snap ? "snap-0000000000000001.usnap"
			     : "log-0000000000000001.ulog",
			f.b.data, f.b.len);
	ud_buf_free(&f.b);
}

struct pieces {
	const char *dir;
	unsigned n;
};

static int raw_piece(void *ctx, const uint8_t *p, size_t n)
{
	struct pieces *c = ctx;
	if (c->n == 0)
		fuzz_write_file(c->dir, "snap-0000000000000001.usnap", p, n);
	else if (c->n == 1)
		fuzz_write_file(c->dir, "log-0000000000000002.ulog", p, n);
	return ++c->n >= 2;
}

static int open_store(const char *dir, ud_db **db, struct ud_error *err)
{
	struct ud_options opt = ud_options_default;
	opt.data_dir = dir;
	opt.fsync = UD_FSYNC_NO;
	opt.snapshot_interval = 0;
	opt.pw_opslimit = 1;
	opt.pw_memlimit = 8192;
	memset(err, 0, sizeof *err);
	return ud_open(&opt, db, err);
}

/* Close and reopen: the same state must come back. */
static void reopen_same(const char *dir, ud_db **db, struct ud_buf *d1,
			struct ud_buf *d2)
{
	struct ud_error err;
	fuzz_dump(*db, d1);
	ud_close(*db);
	int rc = open_store(dir, db, &err);
	FUZZ_CHECK(rc == 0, "reopen after our own writes failed: %s",
		   err.message);
	fuzz_dump(*db, d2);
	FUZZ_CHECK(fuzz_buf_eq(d1, d2), "state changed across a reopen");
}

static void use_store(const char *dir, ud_db *db)
{
	struct ud_error err;
	struct ud_buf d1 = {0}, d2 = {0};
	FUZZ_CHECK(ud_db_check(db, &err) == 0, "recovered store: %s",
		   err.message);
	struct ud_fields f = {.set = UD_F_NAME | UD_F_EMAIL,
			      .name = "Fuzz",
			      .name_len = 4,
			      .email = "fuzz@fuzz.example",
			      .email_len = 17};
	int rc = ud_user_create(db, &f, NULL, &err);
	FUZZ_CHECK(rc == 0 || rc == UD_EDUPEMAIL, "create after recovery: %s",
		   err.message);
	FUZZ_CHECK(ud_flush(db) == 0, "flush");
	reopen_same(dir, &db, &d1, &d2);
	FUZZ_CHECK(ud_snapshot_sync(db, &err) == 0, "snapshot: %s",
		   err.message);
	reopen_same(dir, &db, &d1, &d2);
	ud_close(db);
	ud_buf_free(&d1);
	ud_buf_free(&d2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char dir[256];
	struct ud_error err;
	ud_db *db;
	if (size == 0)
		return 0;
	fuzz_mkdtemp(dir);
	const uint8_t *p = data + 1;
	size_t n = size - 1;
	struct pieces pc = {dir, 0};
	switch (data[0] % 4) {
	case 0:
		fuzz_write_file(dir, "log-0000000000000001.ulog", p, n);
		break;
	case 1:
		fuzz_split(p, n, raw_piece, &pc);
		break;
	default:
		write_framed(dir, p, n, data[0] % 4 == 3);
		break;
	}
	int rc = open_store(dir, &db, &err);
	if (rc == 0)
		use_store(dir, db);
	else
		FUZZ_CHECK(rc < 0 && err.code == rc && err.message[0],
			   "ud_open failed without a message (rc %d)", rc);
	fuzz_rmdir(dir);
	return 0;
}
