/*
 * retain.c -- log segments kept for the change stream; see retain.h.
 */
#include "retain.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "datadir.h"
#include "frame.h"
#include "persist.h"
#include "recover.h"

#define RETAIN_CHUNK (256u << 10)

uint64_t retain_upto(const struct oplog *o, uint64_t covered, uint64_t keep)
{
	uint64_t last = oplog_last_seq(o), upto;

	if (!keep)
		return covered;
	upto = last > keep ? last - keep : 0;
	return upto < covered ? upto : covered;
}

struct scan {
	retain_fn fn;
	void *ctx;
	uint64_t seg;
};

static int scan_rec_cb(void *ctx, uint64_t seq, const void *payload, size_t len,
		       size_t offset)
{
	struct scan *s = ctx;
	struct retain_pos end = {s->seg, offset + FRAME_REC_HDR + len};

	return s->fn(s->ctx, seq, payload, len, &end);
}

int retain_scan(ud_db *db, retain_fn fn, void *ctx, struct ud_error *err)
{
	const char *dir = persist_dir(db);
	struct scan s = {fn, ctx, 0};
	struct datadir_list l;
	struct seg_scan out;
	char name[32], path[4096];
	int rc;

	if (!dir)
		return ud_error_set(err, UD_EINVAL, NULL, "no data dir");
	if ((rc = datadir_list(dir, &l, err)) != 0)
		return rc;
	for (size_t i = 0; i < l.nlog && rc == 0; i++) {
		oplog_seg_name(l.logs[i], name);
		s.seg = l.logs[i];
		rc = datadir_path(path, sizeof(path), dir, name);
		if (rc == 0)
			rc = recover_scan_segment(path, l.logs[i], scan_rec_cb,
						  &s, &out, err);
	}
	datadir_list_free(&l);
	return rc;
}

bool retain_tell(ud_db *db, struct retain_pos *pos)
{
	struct oplog *o = persist_log(db);

	if (!o)
		return false;
	oplog_tell(o, &pos->seg, &pos->off);
	return true;
}

/* One reading pass over a segment. */
struct seg_read {
	struct retain_pos *pos;
	size_t max, done;
	struct ud_buf *b;
	retain_fn fn;
	void *ctx;
};

/* The records in b[0..n) read at r->pos: bytes taken, *rc set when fn
 * stopped (or max was reached: RETAIN_STOP). */
static size_t take_records(struct seg_read *r, size_t n, int *rc)
{
	const unsigned char *p = (const unsigned char *)r->b->data;
	struct frame_rec rec;
	size_t at = 0, sz;

	while (at < n && (sz = frame_rec_decode(p + at, n - at, &rec)) != 0) {
		struct retain_pos end = {r->pos->seg, r->pos->off + at + sz};
		if (rec.magic != FRAME_REC_MAGIC)
			break;
		if ((*rc = r->fn(r->ctx, rec.seq, rec.payload, rec.len, &end)))
			break;
		at += sz;
		r->done += rec.len;
		if (r->done >= r->max) {
			*rc = RETAIN_STOP;
			break;
		}
	}
	return at;
}

/* Records of the open segment fd from r->pos on.  0 when its intact
 * records end, RETAIN_STOP when stopped, or a negative code. */
static int read_seg(struct seg_read *r, int fd, struct ud_error *err)
{
	size_t want = RETAIN_CHUNK;
	int rc = 0;

	for (;;) {
		ssize_t n;
		size_t at;

		r->b->len = 0;
		if (ud_buf_reserve(r->b, want))
			return ud_error_set(err, UD_ENOMEM, NULL,
					    "out of memory");
		n = pread(fd, r->b->data, want, (off_t)r->pos->off);
		if (n < 0)
			return ud_error_set(err, UD_EIO, NULL,
					    "reading a log segment: %s",
					    strerror(errno));
		at = take_records(r, (size_t)n, &rc);
		r->pos->off += at;
		if (rc)
			return rc;
		if (at)
			continue;
		/* Nothing whole at pos: the end, damage, or a big record. */
		if ((size_t)n < want || (size_t)n < FRAME_REC_HDR)
			return 0;
		uint32_t len =
		    frame_get32((const unsigned char *)r->b->data + 4);
		if (len > FRAME_REC_MAX || FRAME_REC_HDR + (size_t)len <= want)
			return 0;
		want = FRAME_REC_HDR + (size_t)len;
	}
}

int retain_read(ud_db *db, struct retain_pos *pos, size_t max,
		struct ud_buf *buf, retain_fn fn, void *ctx,
		struct ud_error *err)
{
	struct oplog *o = persist_log(db);
	struct seg_read r = {pos, max, 0, buf, fn, ctx};
	char name[32], path[4096];
	uint64_t next;
	int rc, fd;

	if (!o)
		return ud_error_set(err, UD_EINVAL, NULL, "no log");
	for (;;) {
		oplog_seg_name(pos->seg, name);
		if ((rc = datadir_path(path, sizeof(path), persist_dir(db),
				       name)) != 0)
			return rc;
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 && errno != ENOENT)
			return ud_error_set(err, UD_EIO, NULL, "%s: %s", name,
					    strerror(errno));
		rc = fd < 0 ? 0 : read_seg(&r, fd, err);
		if (fd >= 0)
			close(fd);
		if (rc)
			return rc < 0 ? rc : 0;
		if (!(next = oplog_seg_next(o, pos->seg)))
			return 0; /* the current segment's end */
		pos->seg = next;
		pos->off = FRAME_FILE_HDR;
	}
}
