/*
 * snapshot.c -- write, check and load snapshots; the forked writer.
 *
 * Compression (frame.h: version 2).  The writer fills its 1 MiB buffer with
 * the records of a version-1 body (inner checks 0) and compresses each full
 * buffer into one block with zstd at SNAP_ZSTD_LEVEL.  The loader checks
 * every block, inflates the whole body into one heap buffer and then runs
 * the version-1 code on it, so pass 1 and pass 2 are the same for both
 * versions.  Measured on the benchmark's 1M users (200 MB uncompressed, one
 * shared 2-core VM): zstd -1 writes 28.5 MB in ~0.26 s of compression and
 * inflates in ~0.11 s; -3 gives 26.8 MB for ~0.47 s; lz4 56 MB for 0.32 s.
 * So zstd level 1: seven times smaller files for a fraction of a second
 * of the child's CPU.  Per-record checks would have cost 38 MB instead of
 * 28.5.  In the server (same machine, busy): 1M users, snapshot
 * 200.4 MB -> 28.1 MB, server.snapshot 0.56-0.62 s; start-up CPU (user +
 * sys to `ready`, 3 runs each, alternating) 0.78-0.84 s from the old file,
 * 0.94-0.99 s from the compressed one: the inflate runs before pass 1, on
 * one thread.  Overlapping it with the apply is the next step if start-up
 * needs it.
 */
#define _GNU_SOURCE /* pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zstd.h>

#include "datadir.h"
#include "fault.h"
#include "frame.h"
#include "snapshot.h"

#define WBUF (1u << 20)

void snap_name(uint64_t covered, char out[32])
{
	snprintf(out, 32, "snap-%016" PRIx64 ".usnap", covered);
}

/* Buffered writer behind the emit callback. */
struct writer {
	int fd;
	unsigned char *buf;
	size_t len;
	uint64_t off;
	uint64_t count;
	int fail_errno;	     /* injected: the first write fails with it */
	int fail_sync;	     /* injected: the fdatasync fails with it */
	struct fault *fault; /* injected short writes, or NULL */
	int err;	     /* first errno */
	ZSTD_CCtx *zc;	     /* compressing (version 2), else NULL */
	unsigned char *zbuf; /* one block: frame header + compressed bytes */
	size_t zcap;
	uint64_t blocks;
};

static int w_write(struct writer *w, const void *p, size_t n)
{
	int rc;

	if (w->err)
		return -1;
	if (w->fail_errno) {
		w->err = w->fail_errno;
		return -1;
	}
	rc = fault_pwrite_all(w->fault, w->fd, p, n, (off_t)w->off);
	if (rc) {
		w->err = -rc;
		return -1;
	}
	w->off += n;
	return 0;
}

/* Compress buf[0..len) into the next block and write it. */
static int z_block(struct writer *w)
{
	size_t n = ZSTD_compress2(w->zc, w->zbuf + FRAME_REC_HDR,
				  w->zcap - FRAME_REC_HDR, w->buf, w->len);

	if (ZSTD_isError(n)) {
		w->err = ENOMEM;
		return -1;
	}
	frame_rec_hdr_encode(w->zbuf, FRAME_ZBLK_MAGIC, ++w->blocks,
			     w->zbuf + FRAME_REC_HDR, (uint32_t)n);
	return w_write(w, w->zbuf, FRAME_REC_HDR + n);
}

static int w_flush(struct writer *w)
{
	int rc = 0;

	if (w->len)
		rc = w->zc ? z_block(w) : w_write(w, w->buf, w->len);
	w->len = 0;
	return rc;
}

/* Compressing: append to the body, a block per full buffer. */
static int z_append(struct writer *w, const void *p, size_t n)
{
	const unsigned char *s = p;

	while (n) {
		size_t take = WBUF - w->len < n ? WBUF - w->len : n;

		memcpy(w->buf + w->len, s, take);
		w->len += take;
		s += take;
		n -= take;
		if (w->len == WBUF && w_flush(w))
			return -1;
	}
	return 0;
}

static int w_frame(struct writer *w, uint32_t magic, uint64_t seq,
		   const void *rec, size_t len)
{
	unsigned char hdr[FRAME_REC_HDR];

	if (len > FRAME_REC_MAX) {
		w->err = EFBIG;
		return UD_ETOOLARGE;
	}
	if (w->zc) {
		frame_rec_hdr_encode_unchecked(hdr, magic, seq, (uint32_t)len);
		if (z_append(w, hdr, sizeof(hdr)) || z_append(w, rec, len))
			return UD_EIO;
		return 0;
	}
	if (w->len + FRAME_REC_HDR + len > WBUF && w_flush(w))
		return UD_EIO;
	if (FRAME_REC_HDR + len > WBUF) { /* huge record: write through */
		frame_rec_hdr_encode(hdr, magic, seq, rec, (uint32_t)len);
		if (w_write(w, hdr, sizeof(hdr)) || w_write(w, rec, len))
			return UD_EIO;
		return 0;
	}
	memcpy(w->buf + w->len + FRAME_REC_HDR, rec, len);
	frame_rec_hdr_encode(w->buf + w->len, magic, seq,
			     w->buf + w->len + FRAME_REC_HDR, (uint32_t)len);
	w->len += FRAME_REC_HDR + len;
	return 0;
}

static int emit_cb(void *ctx, const void *rec, size_t len)
{
	struct writer *w = ctx;

	w->count++;
	return w_frame(w, FRAME_REC_MAGIC, w->count, rec, len);
}

/* Header, records, end marker, fdatasync.  0 or a ud_code (w->err set). */
static int write_body(struct writer *w, uint64_t covered, snap_dump_fn dump,
		      void *src)
{
	unsigned char hdr[FRAME_FILE_HDR];
	int rc;

	frame_snap_hdr_encode(hdr, covered, w->zc ? FRAME_SNAP_ZSTD : 0);
	if (w->zc) {
		if (w_write(w, hdr, sizeof(hdr)))
			return UD_EIO;
	} else {
		memcpy(w->buf, hdr, sizeof(hdr));
		w->len = sizeof(hdr);
	}
	rc = dump(src, emit_cb, w);
	if (rc)
		return rc;
	if (w_frame(w, FRAME_END_MAGIC, w->count, "", 0) || w_flush(w))
		return UD_EIO;
	if (w->zc) { /* the outer end marker: the block count */
		frame_rec_hdr_encode(hdr, FRAME_END_MAGIC, w->blocks, "", 0);
		if (w_write(w, hdr, FRAME_REC_HDR))
			return UD_EIO;
	}
	if (w->fail_sync || fdatasync(w->fd) != 0) {
		w->err = w->fail_sync ? w->fail_sync : errno;
		return UD_EIO;
	}
	return 0;
}

/* Rename into place and fsync the directory (each may be made to fail):
 * 0, or UD_EIO with w->err, the final name gone again. */
static int publish(struct writer *w, const char *dir, const char *tmp,
		   const char *path, const struct snap_faults *fail)
{
	if (fail->rename || rename(tmp, path) != 0) {
		w->err = fail->rename ? fail->rename : errno;
		return UD_EIO;
	}
	if (fail->dirsync || datadir_fsync(dir) != 0) {
		w->err = fail->dirsync ? fail->dirsync : EIO;
		unlink(path);
		return UD_EIO;
	}
	return 0;
}

/* Set up w's compressor for level (0: none).  0 or -1. */
static int z_open(struct writer *w, int level)
{
	if (level <= 0)
		return 0;
	w->zcap = FRAME_REC_HDR + ZSTD_compressBound(WBUF);
	w->zbuf = malloc(w->zcap);
	w->zc = ZSTD_createCCtx();
	if (!w->zbuf || !w->zc ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(w->zc, ZSTD_c_compressionLevel,
						level)) ||
	    ZSTD_isError(
		ZSTD_CCtx_setParameter(w->zc, ZSTD_c_checksumFlag, 1)) ||
	    ZSTD_isError(
		ZSTD_CCtx_setParameter(w->zc, ZSTD_c_contentSizeFlag, 1)))
		return -1;
	return 0;
}

static void z_close(struct writer *w)
{
	ZSTD_freeCCtx(w->zc);
	free(w->zbuf);
}

int snap_write(const char *dir, uint64_t covered, snap_dump_fn dump, void *src,
	       const struct snap_faults *fail, uint64_t *bytes,
	       struct ud_error *err)
{
	return snap_write_level(dir, covered, SNAP_ZSTD_LEVEL, dump, src, fail,
				bytes, err);
}

int snap_write_level(const char *dir, uint64_t covered, int level,
		     snap_dump_fn dump, void *src,
		     const struct snap_faults *fail, uint64_t *bytes,
		     struct ud_error *err)
{
	static const struct snap_faults none;
	struct writer w = {0};
	struct fault shortw;
	char name[32], path[4096], tmp[4200];
	int rc;

	fail = fail ? fail : &none;
	w.fail_errno = fail->write > 0 ? fail->write : 0;
	w.fail_sync = fail->sync;
	fault_init(&shortw);
	if (fail->write == FAULT_SHORT &&
	    fault_parse(&shortw, "write:SHORT:0:*", NULL) == 0)
		w.fault = &shortw;

	snap_name(covered, name);
	if (datadir_path(path, sizeof(path), dir, name))
		return ud_error_set(err, UD_EINVAL, NULL, "path too long");
	snprintf(tmp, sizeof(tmp), "%s.inprogress", path);
	w.buf = malloc(WBUF);
	if (!w.buf || z_open(&w, level)) {
		free(w.buf);
		z_close(&w);
		fault_destroy(&shortw);
		return ud_error_set(err, UD_ENOMEM, NULL, "out of memory");
	}
	w.fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (w.fd < 0) {
		free(w.buf);
		z_close(&w);
		fault_destroy(&shortw);
		return ud_error_set(err, UD_EIO, NULL, "cannot create %s: %s",
				    tmp, strerror(errno));
	}
	rc = write_body(&w, covered, dump, src);
	close(w.fd);
	free(w.buf);
	z_close(&w);
	fault_destroy(&shortw);
	if (rc == 0)
		rc = publish(&w, dir, tmp, path, fail);
	if (rc) {
		unlink(tmp);
		return ud_error_set(err, rc == UD_ENOMEM ? rc : UD_EIO, NULL,
				    "cannot write snapshot %s: %s", name,
				    w.err ? strerror(w.err) : "dump failed");
	}
	*bytes = w.off;
	return 0;
}

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

/* Pass 1: every record intact and numbered, end marker exactly at EOF.
 * Notes the offset of every SNAP_BATCH-th record for pass 2. */
static int snap_check(const char *path, snap_weigh_fn weigh,
		      struct snap_file *f, struct ud_error *err)
{
	const struct datadir_map *m = &f->m;
	size_t off = FRAME_FILE_HDR, sz, cap = 0, *p;
	const char *in = f->inflated ? " of the uncompressed body" : "";
	struct frame_rec rec;
	uint64_t n = 0;

	for (;;) {
		sz = f->inflated
			 ? frame_rec_decode_unchecked(m->data + off,
						      m->size - off, &rec)
			 : frame_rec_decode(m->data + off, m->size - off, &rec);
		if (!sz)
			return ud_error_set(
			    err, UD_ECORRUPT, NULL,
			    off == m->size ? "%s: no end marker at offset %zu%s"
					   : "%s: bad record at offset %zu%s",
			    base_name(path), off, in);
		if (rec.magic == FRAME_END_MAGIC)
			break;
		if (rec.seq != ++n)
			return ud_error_set(err, UD_ECORRUPT, NULL,
					    "%s: record out of order at "
					    "offset %zu%s",
					    base_name(path), off, in);
		if ((n - 1) % SNAP_BATCH == 0) {
			if (f->nstarts == cap) {
				cap = cap ? cap * 2 : 64;
				p = realloc(f->starts, cap * sizeof(*p));
				if (!p)
					return ud_error_set(err, UD_ENOMEM,
							    NULL,
							    "out of memory");
				f->starts = p;
			}
			f->starts[f->nstarts++] = off;
		}
		f->weight += weigh ? weigh(rec.payload, rec.len) : 1;
		off += sz;
	}
	if (rec.seq != n || off + sz != m->size)
		return ud_error_set(err, UD_ECORRUPT, NULL,
				    "%s: bad end marker at offset %zu%s",
				    base_name(path), off, in);
	f->records = n;
	return 0;
}

/* Walk the blocks of a compressed file: each intact and numbered, an end
 * marker with the block count exactly at EOF.  Returns 0 and *body, the
 * sum of the blocks' declared content sizes, or UD_ECORRUPT. */
static int zblk_walk(const char *path, const struct datadir_map *m,
		     uint64_t *body, struct ud_error *err)
{
	size_t off = FRAME_FILE_HDR, sz;
	struct frame_rec rec;
	uint64_t k = 0, total = 0;
	unsigned long long c;

	for (;;) {
		sz = frame_zblk_decode(m->data + off, m->size - off, &rec);
		if (!sz)
			return ud_error_set(
			    err, UD_ECORRUPT, NULL,
			    off == m->size ? "%s: no end marker at offset %zu"
					   : "%s: bad block at offset %zu",
			    base_name(path), off);
		if (rec.magic == FRAME_END_MAGIC)
			break;
		c = ZSTD_getFrameContentSize(rec.payload, rec.len);
		if (rec.seq != ++k || c == ZSTD_CONTENTSIZE_ERROR ||
		    c == ZSTD_CONTENTSIZE_UNKNOWN || c > SIZE_MAX - total)
			return ud_error_set(err, UD_ECORRUPT, NULL,
					    "%s: bad block at offset %zu",
					    base_name(path), off);
		total += c;
		off += sz;
	}
	if (rec.seq != k || off + sz != m->size)
		return ud_error_set(err, UD_ECORRUPT, NULL,
				    "%s: bad end marker at offset %zu",
				    base_name(path), off);
	*body = total;
	return 0;
}

/* Replace f's mapping of a compressed file by its body inflated on the
 * heap, behind a copy of the file header, so that pass 1 and pass 2 read
 * it as a version-1 snapshot.  0, UD_ECORRUPT or UD_ENOMEM. */
static int snap_inflate(const char *path, struct snap_file *f,
			struct ud_error *err)
{
	size_t off = FRAME_FILE_HDR, at = FRAME_FILE_HDR, n;
	ZSTD_DCtx *dc = NULL;
	struct frame_rec rec;
	unsigned char *out;
	uint64_t body = 0;
	int rc = zblk_walk(path, &f->m, &body, err);

	if (rc)
		return rc;
	if (body > SIZE_MAX - FRAME_FILE_HDR ||
	    !(out = malloc(FRAME_FILE_HDR + body)))
		return ud_error_set(err, UD_ENOMEM, NULL, "out of memory");
	dc = ZSTD_createDCtx();
	if (!dc) {
		free(out);
		return ud_error_set(err, UD_ENOMEM, NULL, "out of memory");
	}
	memcpy(out, f->m.data, FRAME_FILE_HDR);
	while (
	    (n = frame_zblk_decode(f->m.data + off, f->m.size - off, &rec)) &&
	    rec.magic == FRAME_ZBLK_MAGIC) {
		size_t want = ZSTD_getFrameContentSize(rec.payload, rec.len);
		size_t got = ZSTD_decompressDCtx(dc, out + at, want,
						 rec.payload, rec.len);

		if (ZSTD_isError(got) || got != want) {
			rc = ud_error_set(err, UD_ECORRUPT, NULL,
					  "%s: block at offset %zu does not "
					  "decompress",
					  base_name(path), off);
			break;
		}
		at += got;
		off += n;
	}
	ZSTD_freeDCtx(dc);
	if (rc) {
		free(out);
		return rc;
	}
	datadir_unmap(&f->m);
	f->m.data = out;
	f->m.size = FRAME_FILE_HDR + body;
	f->inflated = true;
	return 0;
}

int snap_open(const char *path, snap_weigh_fn weigh, struct snap_file *f,
	      struct ud_error *err)
{
	int rc;

	uint32_t flags = 0;

	memset(f, 0, sizeof(*f));
	rc = datadir_map(path, &f->m, err);
	if (rc)
		return rc;
	if (frame_snap_hdr_decode(f->m.data, f->m.size, &f->covered, &flags) !=
	    0)
		rc = ud_error_set(err, UD_ECORRUPT, NULL,
				  "%s: bad file header at offset 0",
				  base_name(path));
	else
		f->header_ok = true;
	if (rc == 0 && (flags & FRAME_SNAP_ZSTD))
		rc = snap_inflate(path, f, err);
	if (rc == 0)
		rc = snap_check(path, weigh, f, err);
	if (rc)
		snap_close(f);
	return rc;
}

void snap_close(struct snap_file *f)
{
	if (f->inflated) {
		free((void *)f->m.data);
		f->m.data = NULL;
		f->m.size = 0;
		f->inflated = false;
	} else {
		datadir_unmap(&f->m);
	}
	free(f->starts);
	f->starts = NULL;
	f->nstarts = 0;
}

/* The payload length of the (checked) record at off. */
static size_t rec_len(const struct snap_file *f, size_t off)
{
	return frame_get32(f->m.data + off + 4);
}

static int apply_error(const char *path, size_t off, const struct ud_error *e,
		       struct ud_error *err)
{
	return ud_error_set(err, UD_ECORRUPT, NULL,
			    "%s: record at offset %zu cannot be applied: %s",
			    base_name(path), off, e->message);
}

/* One record at a time, on this thread. */
static int apply_serial(const char *path, const struct snap_file *f,
			snap_apply_fn apply, void *ctx, struct ud_error *err)
{
	size_t off = FRAME_FILE_HDR, len;
	struct ud_error e = {0};

	for (uint64_t i = 0; i < f->records; i++) {
		len = rec_len(f, off);
		if (apply(ctx, f->m.data + off + FRAME_REC_HDR, len, &e))
			return apply_error(path, off, &e, err);
		off += FRAME_REC_HDR + len;
	}
	return 0;
}

/* ---- pass 2 on two threads (see snapshot.h) ------------------------------
 *
 * Batch k holds records k * SNAP_BATCH ... (at most SNAP_BATCH of them),
 * starting at f->starts[k].  Batch k is prepared into ring slot k % SNAP_RING
 * by whichever thread claims it first: the helper claims batches in order,
 * the owner claims one too whenever the batch it must apply next is not
 * ready (so neither thread idles while work is left).  A batch may be
 * claimed only when its slot is free: at most SNAP_RING batches ahead of
 * the one being applied.  The owner applies batch after batch in order. */

enum { SLOT_FREE, SLOT_BUSY, SLOT_DONE };

struct pipe_slot {
	void *batch;
	size_t index; /* the batch it holds */
	int state;
	size_t count; /* records prepared; a failure stops at record count */
	int rc;	      /* 0, or record count's prepare failure: */
	size_t bad_off;
	struct ud_error err;
};

struct pipe {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	const struct snap_file *f;
	const struct snap_stage *st;
	size_t nbatch;
	size_t claim;	/* next batch to prepare */
	size_t applied; /* batches applied */
	bool stop;
	struct pipe_slot slot[SNAP_RING];
};

static size_t batch_len(const struct pipe *p, size_t k)
{
	uint64_t first = (uint64_t)k * SNAP_BATCH;

	return p->f->records - first < SNAP_BATCH
		   ? (size_t)(p->f->records - first)
		   : SNAP_BATCH;
}

static void prepare_batch(struct pipe *p, size_t k, struct pipe_slot *s)
{
	size_t off = p->f->starts[k], n = batch_len(p, k), len, j;

	s->rc = 0;
	for (j = 0; j < n; j++) {
		len = rec_len(p->f, off);
		s->rc = p->st->prepare(s->batch, j,
				       p->f->m.data + off + FRAME_REC_HDR, len,
				       &s->err);
		if (s->rc) {
			s->bad_off = off;
			break;
		}
		off += FRAME_REC_HDR + len;
	}
	s->count = j;
}

/* With mu held: claim the next batch if one may be claimed and prepare it
 * (mu released meanwhile).  False when there was none. */
static bool claim_one(struct pipe *p)
{
	struct pipe_slot *s;
	size_t k;

	if (p->stop || p->claim >= p->nbatch ||
	    p->claim >= p->applied + SNAP_RING)
		return false;
	k = p->claim++;
	s = &p->slot[k % SNAP_RING];
	s->index = k;
	s->state = SLOT_BUSY;
	pthread_mutex_unlock(&p->mu);
	prepare_batch(p, k, s);
	pthread_mutex_lock(&p->mu);
	s->state = SLOT_DONE;
	pthread_cond_broadcast(&p->cv);
	return true;
}

static void *helper_main(void *arg)
{
	struct pipe *p = arg;

	pthread_mutex_lock(&p->mu);
	while (!p->stop && p->claim < p->nbatch)
		if (!claim_one(p))
			pthread_cond_wait(&p->cv, &p->mu);
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* Wait until batch k is prepared, preparing others meanwhile. */
static struct pipe_slot *wait_batch(struct pipe *p, size_t k)
{
	struct pipe_slot *s = &p->slot[k % SNAP_RING];

	pthread_mutex_lock(&p->mu);
	while (s->state != SLOT_DONE || s->index != k)
		if (!claim_one(p))
			pthread_cond_wait(&p->cv, &p->mu);
	pthread_mutex_unlock(&p->mu);
	return s;
}

/* Offset of record j of batch k (for messages: walks the batch). */
static size_t batch_offset(const struct pipe *p, size_t k, size_t j)
{
	size_t off = p->f->starts[k];

	while (j--)
		off += FRAME_REC_HDR + rec_len(p->f, off);
	return off;
}

/* Apply the prepared batch k; then report its prepare failure, if any. */
static int apply_batch(const char *path, struct pipe *p, void *ctx,
		       struct pipe_slot *s, size_t k, struct ud_error *err)
{
	struct ud_error e = {0};

	for (size_t j = 0; j < s->count; j++) {
		if (j + SNAP_PREFETCH < s->count)
			p->st->prefetch(ctx, s->batch, j + SNAP_PREFETCH);
		if (p->st->apply(ctx, s->batch, j, &e))
			return apply_error(path, batch_offset(p, k, j), &e,
					   err);
	}
	return s->rc ? apply_error(path, s->bad_off, &s->err, err) : 0;
}

static int pipe_run(const char *path, struct pipe *p, void *ctx,
		    struct ud_error *err)
{
	struct pipe_slot *s;
	int rc = 0;

	for (size_t k = 0; k < p->nbatch && rc == 0; k++) {
		s = wait_batch(p, k);
		rc = apply_batch(path, p, ctx, s, k, err);
		pthread_mutex_lock(&p->mu);
		s->state = SLOT_FREE;
		p->applied++;
		p->stop |= rc != 0;
		pthread_cond_broadcast(&p->cv);
		pthread_mutex_unlock(&p->mu);
	}
	return rc;
}

/* Start the helper with every signal blocked (they stay the owner's). */
static bool helper_start(pthread_t *t, struct pipe *p)
{
	sigset_t all, old;
	bool ok;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ok = pthread_create(t, NULL, helper_main, p) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return ok;
}

static int apply_staged(const char *path, const struct snap_file *f,
			const struct snap_stage *st, void *ctx,
			struct ud_error *err)
{
	struct pipe p = {.f = f, .st = st, .nbatch = f->nstarts};
	bool helper = false;
	pthread_t t;
	int rc = 0;
	size_t i;

	if (st->begin(ctx, f->weight))
		return ud_error_set(err, UD_ENOMEM, NULL, "out of memory");
	for (i = 0; i < SNAP_RING && rc == 0; i++)
		if (!(p.slot[i].batch = st->batch_new(SNAP_BATCH)))
			rc =
			    ud_error_set(err, UD_ENOMEM, NULL, "out of memory");
	pthread_mutex_init(&p.mu, NULL);
	pthread_cond_init(&p.cv, NULL);
	if (rc == 0 && p.nbatch > 1)
		helper = helper_start(&t, &p); /* else: all on this thread */
	if (rc == 0)
		rc = pipe_run(path, &p, ctx, err);
	if (helper) {
		pthread_mutex_lock(&p.mu);
		p.stop = true;
		pthread_cond_broadcast(&p.cv);
		pthread_mutex_unlock(&p.mu);
		pthread_join(t, NULL);
	}
	pthread_cond_destroy(&p.cv);
	pthread_mutex_destroy(&p.mu);
	for (i = 0; i < SNAP_RING; i++)
		if (p.slot[i].batch)
			st->batch_free(p.slot[i].batch);
	return rc;
}

int snap_apply(const char *path, const struct snap_file *f, snap_apply_fn apply,
	       const struct snap_stage *stage, void *ctx, struct ud_error *err)
{
	if (stage)
		return apply_staged(path, f, stage, ctx, err);
	return apply_serial(path, f, apply, ctx, err);
}

int snap_load(const char *path, snap_apply_fn apply, void *ctx,
	      uint64_t *covered, uint64_t *records, struct ud_error *err)
{
	struct snap_file f;
	int rc = snap_open(path, NULL, &f, err);

	if (f.header_ok)
		*covered = f.covered;
	if (rc)
		return rc;
	*records = f.records;
	if (apply)
		rc = snap_apply(path, &f, apply, NULL, ctx, err);
	snap_close(&f);
	return rc;
}

/* The child: write, report through the pipe, _exit without running the
 * parent's atexit handlers or flushing its stdio buffers. */
static void child_run(int fd, const char *dir, uint64_t covered,
		      snap_dump_fn dump, void *src,
		      const struct snap_faults *fail)
{
	struct snap_result r = {0};
	struct ud_error e = {0};

	r.code = snap_write(dir, covered, dump, src, fail, &r.bytes, &e);
	if (r.code)
		memcpy(r.message, e.message, sizeof(r.message));
	if (write(fd, &r, sizeof(r)) != (ssize_t)sizeof(r))
		_exit(2);
	_exit(r.code ? 1 : 0);
}

int snap_job_start(struct snap_job *j, const char *dir, uint64_t covered,
		   snap_dump_fn dump, void *src, const struct snap_faults *fail,
		   struct ud_error *err)
{
	int p[2];
	pid_t pid, parent;

	if (pipe2(p, O_CLOEXEC) != 0)
		return ud_error_set(err, UD_EIO, NULL, "pipe: %s",
				    strerror(errno));
	parent = getpid();
	pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return ud_error_set(err, UD_EIO, NULL, "fork: %s",
				    strerror(errno));
	}
	if (pid == 0) {
		close(p[0]);
		/* Die with the owner: an orphan would keep every inherited
		 * fd open (the data dir's lock, a server's listening and
		 * client sockets) and block a restart after a crash. */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 ||
		    getppid() != parent)
			_exit(1);
		child_run(p[1], dir, covered, dump, src, fail);
	}
	close(p[1]);
	j->pid = pid;
	j->pipe_fd = p[0];
	j->covered = covered;
	return 0;
}

int snap_job_poll(struct snap_job *j, const char *dir, bool wait,
		  struct snap_result *res)
{
	char name[32], path[4096], tmp[4200];
	int status;
	pid_t r;

	do
		r = waitpid(j->pid, &status, wait ? 0 : WNOHANG);
	while (r < 0 && errno == EINTR);
	if (r == 0)
		return 0;
	memset(res, 0, sizeof(*res));
	if (r < 0 || read(j->pipe_fd, res, sizeof(*res)) != sizeof(*res) ||
	    !WIFEXITED(status) || (WEXITSTATUS(status) == 0) != !res->code) {
		res->code = UD_EIO;
		snprintf(res->message, sizeof(res->message),
			 "snapshot process failed (status %d)", status);
	}
	if (res->code) {
		snap_name(j->covered, name);
		if (datadir_path(path, sizeof(path), dir, name) == 0) {
			snprintf(tmp, sizeof(tmp), "%s.inprogress", path);
			unlink(tmp);
		}
	}
	close(j->pipe_fd);
	j->pid = 0;
	j->pipe_fd = -1;
	return 1;
}
