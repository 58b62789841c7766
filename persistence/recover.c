/*
 * recover.c -- the recovery rule of recover.h.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datadir.h"
#include "frame.h"
#include "recover.h"

/* Intact records from offset `from` (exclusive) to the end of the file. */
static uint64_t count_after(const unsigned char *p, size_t n, size_t from)
{
	struct frame_rec rec;
	uint64_t count = 0;
	size_t off = frame_find_next(p, n, from);

	while (off < n) {
		count++;
		off += frame_rec_decode(p + off, n - off, &rec);
		off = frame_find_next(p, n, off - 1);
	}
	return count;
}

static void scan_bad(struct seg_scan *s, enum seg_status st,
		     const unsigned char *p, size_t off)
{
	s->status = st;
	s->good = off;
	s->tail_only = frame_find_next(p, s->size, off) == s->size;
	s->records_after = count_after(p, s->size, off);
}

static int scan_records(const unsigned char *p, struct seg_scan *s,
			seg_rec_fn fn, void *ctx)
{
	size_t off = FRAME_FILE_HDR, sz;
	struct frame_rec rec;
	uint64_t expect = s->header_seq;
	int rc;

	while (off < s->size) {
		sz = frame_rec_decode(p + off, s->size - off, &rec);
		if (!sz) {
			scan_bad(s, SEG_BAD_RECORD, p, off);
			return 0;
		}
		if (rec.magic != FRAME_REC_MAGIC || rec.seq != expect) {
			scan_bad(s, SEG_BAD_SEQ, p, off);
			return 0;
		}
		if (fn && (rc = fn(ctx, rec.seq, rec.payload, rec.len, off)))
			return rc;
		if (!s->records++)
			s->first = rec.seq;
		s->last = rec.seq;
		expect++;
		off += sz;
	}
	s->good = off;
	return 0;
}

/* recover_scan_segment() over a mapping the caller keeps. */
static int scan_mapped(const struct datadir_map *m, uint64_t name_seq,
		       seg_rec_fn fn, void *ctx, struct seg_scan *out)
{
	memset(out, 0, sizeof(*out));
	out->size = m->size;
	if (m->size == 0) {
		out->status = SEG_EMPTY;
	} else if (frame_file_hdr_decode(m->data, m->size, FRAME_LOG,
					 &out->header_seq) != 0 ||
		   out->header_seq != name_seq) {
		scan_bad(out, SEG_BAD_HEADER, m->data, 0);
	} else {
		return scan_records(m->data, out, fn, ctx);
	}
	return 0;
}

int recover_scan_segment(const char *path, uint64_t name_seq, seg_rec_fn fn,
			 void *ctx, struct seg_scan *out, struct ud_error *err)
{
	struct datadir_map m;
	int rc = datadir_map(path, &m, err);

	if (rc) {
		memset(out, 0, sizeof(*out));
		return rc;
	}
	rc = scan_mapped(&m, name_seq, fn, ctx, out);
	datadir_unmap(&m);
	return rc;
}

static void warn(struct recover_result *r, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line))
		n = sizeof(line) - 1;
	if (r->warnings.len && r->warnings.data[r->warnings.len - 1] == 0)
		r->warnings.data[r->warnings.len - 1] = '\n';
	ud_buf_append(&r->warnings, line, (size_t)n);
	ud_buf_append(&r->warnings, "", 1);
}

/* Rule 1: the newest snapshot that checks out.  Returns its index, kept
 * open in *f (checked once, applied from the same mapping), or -1. */
static long pick_snapshot(const char *dir, const struct datadir_list *l,
			  snap_weigh_fn weigh, struct snap_file *f,
			  struct recover_result *r, struct ud_error *first)
{
	char name[32], path[4096];
	struct ud_error e = {0};
	uint64_t cov;
	int rc;

	for (size_t i = l->nsnap; i-- > 0;) {
		snap_name(l->snaps[i], name);
		if (datadir_path(path, sizeof(path), dir, name))
			continue;
		rc = snap_open(path, weigh, f, &e);
		cov = f->header_ok ? f->covered : l->snaps[i];
		if (rc == 0 && cov == l->snaps[i])
			return (long)i;
		if (rc == 0)
			snap_close(f);
		if (cov != l->snaps[i])
			ud_error_set(&e, UD_ECORRUPT, NULL,
				     "%s: header does not match the name at "
				     "offset 16",
				     name);
		if (!first->code)
			*first = e;
		warn(r, "snapshot damaged: %s; trying an older one", e.message);
	}
	return -1;
}

struct replay {
	snap_apply_fn apply;
	const struct snap_stage *stage; /* loads the snapshot, when set */
	void *ctx;
	uint64_t base;	 /* B */
	uint64_t expect; /* next seq to apply */
	uint64_t applied;
	const char *name; /* current segment */
	bool gap;	  /* failed because records are missing */
	struct ud_error *err;
};

static int seq_missing(const struct replay *rp, size_t off, uint64_t seq,
		       struct ud_error *err)
{
	return ud_error_set(err, UD_ECORRUPT, NULL,
			    "%s: record at offset %zu has seq %" PRIu64
			    ", expected %" PRIu64 " (records missing)",
			    rp->name, off, seq, rp->expect);
}

static int replay_cb(void *arg, uint64_t seq, const void *p, size_t len,
		     size_t off)
{
	struct replay *rp = arg;
	struct ud_error e = {0};

	if (seq <= rp->base)
		return 0;
	if (seq != rp->expect)
		return seq_missing(rp, off, seq, rp->err);
	if (rp->apply(rp->ctx, p, len, &e))
		return ud_error_set(rp->err, UD_ECORRUPT, NULL,
				    "%s: record at offset %zu cannot be "
				    "applied: %s",
				    rp->name, off, e.message);
	rp->expect++;
	rp->applied++;
	return 0;
}

/* Rules 3 and 4 for one scanned segment.  last: it is the last segment. */
static int judge_segment(const struct seg_scan *s, const char *name, bool last,
			 struct recover_result *r, struct ud_error *err)
{
	if (s->status == SEG_OK || s->status == SEG_EMPTY)
		return 0;
	if (last && s->tail_only && s->status != SEG_BAD_SEQ) {
		r->torn = true;
		r->torn_bytes = s->size - s->good;
		warn(r,
		     "%s: torn record at offset %zu (a write cut short); "
		     "%zu bytes cut off",
		     name, s->good, s->size - s->good);
		return 0;
	}
	return ud_error_set(
	    err, UD_ECORRUPT, NULL, "%s: %s at offset %zu%s; run userdb-check",
	    name,
	    s->status == SEG_BAD_HEADER ? "bad file header"
	    : s->status == SEG_BAD_SEQ	? "record out of sequence"
					: "bad checksum or length",
	    s->good, s->records_after ? " with intact records after it" : "");
}

/*
 * With a stage (two threads, snapshot.h), a segment is replayed like a
 * snapshot is loaded: pass 1 scans it (checksums, numbering) and notes
 * where every SNAP_BATCH-th record to apply starts; pass 2 hands the run of
 * records after B to snap_apply(), which prepares batches on a helper
 * thread and applies them here in file order.  The records after B are a
 * contiguous run of the segment's intact prefix (seqs rise by one from the
 * segment's first), so the snapshot's pipeline applies them unchanged.
 * What the store sees, and which failure is reported first, is as with
 * replay_cb: the records before a bad one are applied, then the bad one is
 * reported (an apply failure before a numbering gap before a damaged
 * record).  1M creates in the log alone: see persistence/db.c.
 */
struct seg_run {
	struct replay *rp;
	snap_weigh_fn weigh;
	struct snap_file f; /* the run: records, weight, batch starts */
	size_t cap;
	bool gap; /* the scan stopped at a seq that skips records */
	struct ud_error gap_err;
};

static int collect_cb(void *arg, uint64_t seq, const void *p, size_t len,
		      size_t off)
{
	struct seg_run *run = arg;
	struct replay *rp = run->rp;

	if (seq <= rp->base)
		return 0;
	if (seq != rp->expect) {
		run->gap = true;
		return seq_missing(rp, off, seq, &run->gap_err);
	}
	if (run->f.records % SNAP_BATCH == 0) {
		if (run->f.nstarts == run->cap) {
			size_t cap = run->cap ? run->cap * 2 : 64;
			size_t *n = realloc(run->f.starts, cap * sizeof(*n));

			if (!n)
				return UD_ENOMEM;
			run->f.starts = n;
			run->cap = cap;
		}
		run->f.starts[run->f.nstarts++] = off;
	}
	if (run->weigh)
		run->f.weight += run->weigh(p, len);
	run->f.records++;
	rp->expect++;
	return 0;
}

/* Scan the mapped segment and apply its records after B through the stage.
 * 0 with *s filled, or the first failure, as replay_cb would report it. */
static int replay_staged(const char *path, uint64_t first_seq,
			 struct replay *rp, struct seg_scan *s,
			 struct ud_error *err)
{
	struct seg_run run = {.rp = rp, .weigh = rp->stage->weigh};
	int rc = datadir_map(path, &run.f.m, err), rc2;

	if (rc) {
		memset(s, 0, sizeof(*s));
		return rc;
	}
	rc = scan_mapped(&run.f.m, first_seq, collect_cb, &run, s);
	if (rc && !run.gap) {
		snap_close(&run.f);
		return ud_error_set(err, rc, NULL, "out of memory");
	}
	rc2 = run.f.records
		  ? snap_apply(path, &run.f, rp->apply, rp->stage, rp->ctx, err)
		  : 0;
	if (rc2 == 0) {
		rp->applied += run.f.records;
		if (run.gap)
			rc2 = ud_error_set(err, UD_ECORRUPT, NULL, "%s",
					   run.gap_err.message);
	}
	snap_close(&run.f);
	return rc2;
}

static int replay_segment(const char *dir, const struct datadir_list *l,
			  size_t i, struct replay *rp, struct recover_result *r,
			  struct ud_error *err)
{
	char name[32], path[4096];
	struct seg_scan s;
	int rc;

	oplog_seg_name(l->logs[i], name);
	if (datadir_path(path, sizeof(path), dir, name))
		return ud_error_set(err, UD_EINVAL, NULL, "path too long");
	rp->name = name;
	/* A segment must start right after what came before it. */
	rp->gap = l->logs[i] > rp->expect;
	if (rp->gap)
		return ud_error_set(err, UD_ECORRUPT, NULL,
				    "%s: starts at seq %" PRIu64
				    " but seq %" PRIu64
				    " is missing (offset 0)",
				    name, l->logs[i], rp->expect);
	rc = rp->stage ? replay_staged(path, l->logs[i], rp, &s, err)
		       : recover_scan_segment(path, l->logs[i], replay_cb, rp,
					      &s, err);
	if (rc)
		return rc;
	rc = judge_segment(&s, name, i + 1 == l->nlog, r, err);
	if (rc)
		return rc;
	r->segs[i].first_seq = l->logs[i];
	r->segs[i].bytes = s.good;
	if (s.last >= rp->expect) /* records all <= B: move past them */
		rp->expect = s.last + 1;
	return 0;
}

/* Index of the first segment to read: the last one starting at or before
 * B+1 (earlier ones hold only records <= B). */
static size_t first_segment(const struct datadir_list *l, uint64_t base)
{
	size_t k = 0;

	for (size_t i = 0; i < l->nlog; i++)
		if (l->logs[i] <= base + 1)
			k = i;
	return k;
}

static int replay_log(const char *dir, const struct datadir_list *l,
		      struct replay *rp, struct recover_result *r,
		      struct ud_error *err)
{
	size_t k = first_segment(l, rp->base);
	int rc;

	r->segs = calloc(l->nlog ? l->nlog : 1, sizeof(*r->segs));
	if (!r->segs)
		return ud_error_set(err, UD_ENOMEM, NULL, "out of memory");
	r->nseg = l->nlog;
	for (size_t i = 0; i < k; i++) {
		r->segs[i].first_seq = l->logs[i];
		r->segs[i].bytes = FRAME_FILE_HDR; /* covered; size unknown */
	}
	for (size_t i = k; i < l->nlog; i++) {
		rc = replay_segment(dir, l, i, rp, r, err);
		if (rc)
			return rc;
	}
	return 0;
}

static int load_base(const char *dir, const struct datadir_list *l, long si,
		     struct snap_file *f, const struct replay *rp,
		     struct recover_result *r, struct ud_error *err)
{
	char name[32], path[4096];
	int rc;

	if (si < 0)
		return 0;
	snap_name(l->snaps[si], name);
	r->have_snap = true;
	r->snap_covered = f->covered;
	r->snap_records = f->records;
	if (datadir_path(path, sizeof(path), dir, name))
		rc = ud_error_set(err, UD_EINVAL, NULL, "path too long");
	else
		rc = snap_apply(path, f, rp->apply, rp->stage, rp->ctx, err);
	snap_close(f);
	return rc;
}

int recover_run(const char *dir, snap_apply_fn apply, void *ctx,
		struct recover_result *r, struct ud_error *err)
{
	return recover_run_staged(dir, apply, NULL, ctx, r, err);
}

int recover_run_staged(const char *dir, snap_apply_fn apply,
		       const struct snap_stage *stage, void *ctx,
		       struct recover_result *r, struct ud_error *err)
{
	struct datadir_list l;
	struct replay rp = {
	    .apply = apply, .stage = stage, .ctx = ctx, .err = err};
	struct ud_error damage = {0};
	struct snap_file f;
	long si;
	int rc;

	memset(r, 0, sizeof(*r));
	rc = datadir_list(dir, &l, err);
	if (rc)
		return rc;
	si =
	    pick_snapshot(dir, &l, stage ? stage->weigh : NULL, &f, r, &damage);
	if (si < 0 && l.nsnap)
		warn(r, "no valid snapshot: replaying the log from the start");
	rc = load_base(dir, &l, si, &f, &rp, r, err);
	if (rc == 0) {
		rp.base = r->snap_covered;
		rp.expect = rp.base + 1;
		rc = replay_log(dir, &l, &rp, r, err);
	}
	/* A damaged newer snapshot covered records up to its seq: the log
	 * must still hold them, or they would be silently lost.  Name the
	 * damaged file, the root cause, rather than the gap. */
	if ((rc == 0 || rp.gap) && damage.code &&
	    rp.expect - 1 < l.snaps[l.nsnap - 1]) {
		rc = ud_error_set(err, UD_ECORRUPT, NULL,
				  "%s (the log does not reach past seq %" PRIu64
				  ")",
				  damage.message, rp.expect - 1);
	}
	r->log_records = rp.applied;
	r->next_seq = rp.expect;
	datadir_list_free(&l);
	return rc;
}

void recover_result_free(struct recover_result *r)
{
	free(r->segs);
	ud_buf_free(&r->warnings);
	memset(r, 0, sizeof(*r));
}
