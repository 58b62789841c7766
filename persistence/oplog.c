/*
 * oplog.c -- the append-only log (see oplog.h for the design and states).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "datadir.h"
#include "frame.h"
#include "oplog.h"

/* A batch this large is written by oplog_append itself, so that a caller
 * that never flushes (an embedded user) does not grow it without bound. */
#define BATCH_AUTOFLUSH (1u << 20)

struct oplog {
	char *dir;
	enum ud_fsync mode;
	struct fault *fault; /* borrowed */
	int fd;		     /* current segment; guarded by mu */
	struct oplog_seg *segs;
	size_t nseg, capseg;
	uint64_t good_size; /* guarded by mu (read by the thread) */
	uint64_t next_seq;
	struct ud_buf batch;
	uint64_t batch_records;
	uint64_t records;
	bool unavailable;
	bool need_sync; /* unavailable because an fsync failed */
	int last_errno;
	uint64_t written_seq; /* last record written to the file */
	uint64_t durable_seq; /* last record known durable (oplog.h) */
	/* UD_FSYNC_ALWAYS, oplog_flush_async: the bytes written but not yet
	 * known synced, [pend_off, good_size) of the current segment, kept to
	 * be written again if the syncer's fdatasync fails. */
	struct ud_buf pend;
	uint64_t pend_off;

	/* the sync thread (everysec: once a second; always: the syncer) */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t thr;
	bool thr_on, stop;
	uint64_t gen;	     /* bumped at rotation and at a syncer failure */
	uint64_t synced;     /* good_size known on disk, this gen */
	uint64_t synced_seq; /* the last record in those bytes */
	uint64_t req_off;    /* always: sync up to here, this gen ... */
	uint64_t req_seq;    /* ... which ends with this record */
	int thr_err;
	int wake_fd; /* always: eventfd, written after each syncer pass */
};

void oplog_seg_name(uint64_t first_seq, char out[32])
{
	snprintf(out, 32, "log-%016" PRIx64 ".ulog", first_seq);
}

static int seg_path(const struct oplog *o, uint64_t first_seq, char *out,
		    size_t n)
{
	char name[32];

	oplog_seg_name(first_seq, name);
	return datadir_path(out, n, o->dir, name);
}

/* Create segment first_seq with its header, durable unless mode is NO.
 * Returns the fd, or -errno. */
static int seg_create(struct oplog *o, uint64_t first_seq)
{
	unsigned char hdr[FRAME_FILE_HDR];
	char path[4096];
	int fd, rc;

	if (seg_path(o, first_seq, path, sizeof(path)))
		return -ENAMETOOLONG;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	frame_file_hdr_encode(hdr, FRAME_LOG, first_seq);
	rc = fault_pwrite_all(o->fault, fd, hdr, sizeof(hdr), 0);
	if (rc == 0 && o->mode != UD_FSYNC_NO) {
		rc = fault_fdatasync(o->fault, fd);
		if (rc == 0 && datadir_fsync(o->dir) != 0)
			rc = -EIO;
	}
	if (rc) {
		close(fd);
		unlink(path);
		return rc;
	}
	return fd;
}

static int segs_push(struct oplog *o, uint64_t first_seq, uint64_t bytes)
{
	if (o->nseg == o->capseg) {
		size_t cap = o->capseg ? o->capseg * 2 : 8;
		struct oplog_seg *p = realloc(o->segs, cap * sizeof(*p));

		if (!p)
			return UD_ENOMEM;
		o->segs = p;
		o->capseg = cap;
	}
	o->segs[o->nseg].first_seq = first_seq;
	o->segs[o->nseg].bytes = bytes;
	o->nseg++;
	return 0;
}

/* One fdatasync of the current segment up to target (the record seq ends
 * it), with mu held on entry and exit but not during the call.  A result
 * for a segment rotated away meanwhile is dropped: rotation synced it. */
static void thread_sync(struct oplog *o, uint64_t target, uint64_t seq)
{
	uint64_t gen = o->gen;
	int fd = dup(o->fd), rc;

	pthread_mutex_unlock(&o->mu);
	rc = fd < 0 ? -errno : fault_fdatasync(o->fault, fd);
	if (fd >= 0)
		close(fd);
	pthread_mutex_lock(&o->mu);
	if (gen != o->gen)
		return;
	if (rc == 0 && target > o->synced) {
		o->synced = target;
		o->synced_seq = seq;
	} else if (rc != 0) {
		o->thr_err = -rc;
	}
}

/* everysec: fdatasync once a second when something was written. */
static void *everysec_thread_cb(void *arg)
{
	struct oplog *o = arg;
	struct timespec ts;

	pthread_mutex_lock(&o->mu);
	while (!o->stop) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&o->cv, &o->mu, &ts);
		if (o->stop || o->good_size <= o->synced || o->thr_err)
			continue;
		thread_sync(o, o->good_size, o->written_seq);
	}
	pthread_mutex_unlock(&o->mu);
	return NULL;
}

/* always: the syncer.  Whatever was written while one fdatasync ran is
 * covered by the next one: one call per pass however many writes (group
 * commit).  After each pass the loop is woken through wake_fd; after a
 * failure the syncer waits until the owner thread has taken it. */
static void *syncer_thread_cb(void *arg)
{
	struct oplog *o = arg;
	uint64_t one = 1;

	pthread_mutex_lock(&o->mu);
	while (!o->stop) {
		if (o->thr_err || o->req_off <= o->synced) {
			pthread_cond_wait(&o->cv, &o->mu);
			continue;
		}
		thread_sync(o, o->req_off, o->req_seq);
		if (write(o->wake_fd, &one, sizeof(one)) < 0) {
			/* EAGAIN: the counter is full, the loop is awake */
		}
	}
	pthread_mutex_unlock(&o->mu);
	return NULL;
}

static int thread_start(struct oplog *o)
{
	pthread_condattr_t ca;
	void *(*fn)(void *) = NULL;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&o->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (o->mode == UD_FSYNC_EVERYSEC)
		fn = everysec_thread_cb;
	if (o->mode == UD_FSYNC_ALWAYS) {
		o->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (o->wake_fd < 0)
			return UD_ENOMEM;
		fn = syncer_thread_cb;
	}
	if (!fn)
		return 0;
	if (pthread_create(&o->thr, NULL, fn, o) != 0)
		return UD_ENOMEM;
	o->thr_on = true;
	return 0;
}

/* Open the last segment of st (or create the first one) at its good size. */
static int open_tail(struct oplog *o, const struct oplog_start *st,
		     struct ud_error *err)
{
	const struct oplog_seg *last = st->nseg ? &st->segs[st->nseg - 1] : 0;
	char path[4096];
	int fd;

	if (last && last->bytes >= FRAME_FILE_HDR) {
		if (seg_path(o, last->first_seq, path, sizeof(path)))
			return ud_error_set(err, UD_EINVAL, "data_dir",
					    "path too long");
		fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0 || ftruncate(fd, (off_t)last->bytes) != 0) {
			if (fd >= 0)
				close(fd);
			return ud_error_set(err, UD_EIO, NULL,
					    "cannot open %s: %s", path,
					    strerror(errno));
		}
		o->fd = fd;
		o->good_size = o->synced = last->bytes;
		return 0;
	}
	if (last) { /* no valid header: nothing in it to keep */
		seg_path(o, last->first_seq, path, sizeof(path));
		unlink(path);
		o->nseg--;
	}
	fd = seg_create(o, st->next_seq);
	if (fd < 0)
		return ud_error_set(err, UD_EIO, NULL,
				    "cannot create log segment in %s: %s",
				    o->dir, strerror(-fd));
	o->fd = fd;
	o->good_size = o->synced = FRAME_FILE_HDR;
	return segs_push(o, st->next_seq, FRAME_FILE_HDR);
}

int oplog_open(const char *dir, const struct oplog_start *st,
	       enum ud_fsync mode, struct fault *fault, struct oplog **out,
	       struct ud_error *err)
{
	struct oplog *o = calloc(1, sizeof(*o));
	int rc = UD_ENOMEM;

	if (!o || !(o->dir = strdup(dir)))
		goto fail;
	o->mode = mode;
	o->fault = fault;
	o->fd = -1;
	o->wake_fd = -1;
	o->next_seq = st->next_seq;
	o->written_seq = o->durable_seq = st->next_seq - 1;
	pthread_mutex_init(&o->mu, NULL);
	for (size_t i = 0; i < st->nseg; i++)
		if (segs_push(o, st->segs[i].first_seq, st->segs[i].bytes))
			goto fail;
	rc = open_tail(o, st, err);
	if (rc)
		goto fail;
	o->segs[o->nseg - 1].bytes = o->good_size;
	o->pend_off = o->req_off = o->good_size;
	o->synced_seq = o->req_seq = o->written_seq;
	if (thread_start(o) == 0) {
		*out = o;
		return 0;
	}
	rc = UD_ENOMEM;
fail:
	if (rc == UD_ENOMEM)
		ud_error_set(err, rc, NULL, "out of memory");
	if (o) {
		if (o->fd >= 0)
			close(o->fd);
		if (o->wake_fd >= 0)
			close(o->wake_fd);
		free(o->segs);
		free(o->dir);
		free(o);
	}
	return rc;
}

/* A write or sync failed: cut the file back to the last good record and
 * refuse new mutations; the batch stays for the retry. */
static int fail(struct oplog *o, int neg_errno)
{
	fault_ftruncate(o->fault, o->fd, (off_t)o->good_size);
	o->unavailable = true;
	o->last_errno = -neg_errno;
	return UD_EUNAVAILABLE;
}

/* Everything written is on disk (an fdatasync of the owner thread
 * returned): nothing is pending for the syncer any more. */
static void mark_durable(struct oplog *o)
{
	pthread_mutex_lock(&o->mu);
	if (o->synced < o->good_size) {
		o->synced = o->good_size;
		o->synced_seq = o->written_seq;
	}
	if (o->req_off < o->good_size) {
		o->req_off = o->good_size;
		o->req_seq = o->written_seq;
	}
	pthread_mutex_unlock(&o->mu);
	o->pend.len = 0;
	o->pend_off = o->good_size;
	o->durable_seq = o->written_seq;
}

/* pwrite the batch at good_size; with `sync`, fdatasync it too.  `async`
 * (UD_FSYNC_ALWAYS only): keep the bytes in pend and leave the fdatasync
 * to the syncer; if pend cannot grow, sync here instead. */
static int write_batch_mode(struct oplog *o, bool sync, bool async)
{
	int rc;

	if (o->batch.len == 0)
		return 0;
	rc = fault_pwrite_all(o->fault, o->fd, o->batch.data, o->batch.len,
			      (off_t)o->good_size);
	if (rc == 0 && async &&
	    ud_buf_append(&o->pend, o->batch.data, o->batch.len) != 0) {
		async = false;
		sync = true;
	}
	if (rc == 0 && sync)
		rc = fault_fdatasync(o->fault, o->fd);
	if (rc)
		return fail(o, rc);
	pthread_mutex_lock(&o->mu);
	o->good_size += o->batch.len;
	o->written_seq = o->next_seq - 1;
	if (async) {
		o->req_off = o->good_size;
		o->req_seq = o->written_seq;
		pthread_cond_signal(&o->cv);
	}
	pthread_mutex_unlock(&o->mu);
	o->segs[o->nseg - 1].bytes = o->good_size;
	o->records += o->batch_records;
	o->batch.len = 0;
	o->batch_records = 0;
	if (sync)
		mark_durable(o);
	else if (!async)
		o->durable_seq = o->written_seq;
	return 0;
}

static int write_batch(struct oplog *o)
{
	return write_batch_mode(o, o->mode == UD_FSYNC_ALWAYS, false);
}

/* The syncer's fdatasync failed: what it may not have synced, pend, goes
 * back in front of the batch, the file is cut back to the last synced
 * byte, and the log is unavailable until the retry (a synchronous write
 * and fdatasync) succeeds.  As with a failed write, the identical bytes
 * are written again at the identical offset. */
static void syncer_failed(struct oplog *o, int e)
{
	uint64_t back = o->written_seq - o->durable_seq;

	if (ud_buf_reserve(&o->batch, o->pend.len) == 0) {
		memmove(o->batch.data + o->pend.len, o->batch.data,
			o->batch.len);
		memcpy(o->batch.data, o->pend.data, o->pend.len);
		o->batch.len += o->pend.len;
		o->batch_records += back;
		o->records -= back;
		fault_ftruncate(o->fault, o->fd, (off_t)o->pend_off);
		pthread_mutex_lock(&o->mu);
		o->good_size = o->req_off = o->synced = o->pend_off;
		o->written_seq = o->req_seq = o->synced_seq = o->durable_seq;
		o->gen++;
		pthread_mutex_unlock(&o->mu);
		o->segs[o->nseg - 1].bytes = o->good_size;
		o->pend.len = 0;
	} else {
		o->need_sync = true; /* keep the bytes; a new fdatasync */
	}
	o->unavailable = true;
	o->last_errno = e;
}

/* Take what the sync thread did: a failure, and (always) how far the
 * syncer got, which drops that much of pend. */
static void collect_thread(struct oplog *o)
{
	uint64_t synced, seq;
	int e;

	if (!o->thr_on)
		return;
	pthread_mutex_lock(&o->mu);
	e = o->thr_err;
	o->thr_err = 0;
	synced = o->synced;
	seq = o->synced_seq;
	pthread_mutex_unlock(&o->mu);
	if (o->mode == UD_FSYNC_ALWAYS && synced > o->pend_off) {
		size_t n = (size_t)(synced - o->pend_off);

		memmove(o->pend.data, o->pend.data + n, o->pend.len - n);
		o->pend.len -= n;
		o->pend_off = synced;
		o->durable_seq = seq;
	}
	if (e && o->mode == UD_FSYNC_ALWAYS) {
		syncer_failed(o, e);
	} else if (e) {
		o->unavailable = true;
		o->need_sync = true;
		o->last_errno = e;
	}
}

static int retry(struct oplog *o)
{
	int rc;

	if (o->need_sync) {
		rc = fault_fdatasync(o->fault, o->fd);
		if (rc) {
			o->last_errno = -rc;
			return UD_EUNAVAILABLE;
		}
		mark_durable(o);
		o->need_sync = false;
	}
	rc = write_batch(o);
	if (rc == 0)
		o->unavailable = false;
	return rc;
}

int oplog_append(void *arg, const void *rec, size_t len)
{
	struct oplog *o = arg;
	unsigned char *p;

	if (o->unavailable)
		return UD_EUNAVAILABLE;
	if (len > FRAME_REC_MAX)
		return UD_ETOOLARGE;
	if (o->batch.len >= BATCH_AUTOFLUSH && write_batch(o) != 0)
		return UD_EUNAVAILABLE;
	if (ud_buf_reserve(&o->batch, FRAME_REC_HDR + len))
		return UD_ENOMEM;
	p = (unsigned char *)o->batch.data + o->batch.len;
	memcpy(p + FRAME_REC_HDR, rec, len);
	frame_rec_hdr_encode(p, FRAME_REC_MAGIC, o->next_seq, p + FRAME_REC_HDR,
			     (uint32_t)len);
	o->batch.len += FRAME_REC_HDR + len;
	o->batch_records++;
	o->next_seq++;
	return 0;
}

int oplog_flush(struct oplog *o)
{
	collect_thread(o);
	if (o->unavailable)
		return retry(o);
	return write_batch(o);
}

int oplog_flush_async(struct oplog *o)
{
	collect_thread(o);
	if (o->unavailable)
		return retry(o);
	if (o->mode != UD_FSYNC_ALWAYS)
		return write_batch(o);
	return write_batch_mode(o, false, true);
}

uint64_t oplog_durable_seq(struct oplog *o)
{
	collect_thread(o);
	return o->durable_seq;
}

int oplog_wake_fd(const struct oplog *o)
{
	return o->wake_fd;
}

void oplog_tick(struct oplog *o)
{
	collect_thread(o);
	if (o->unavailable)
		retry(o);
}

int oplog_sync(struct oplog *o)
{
	int rc = oplog_flush(o);

	if (rc)
		return rc;
	rc = fault_fdatasync(o->fault, o->fd);
	if (rc) {
		o->unavailable = o->need_sync = true;
		o->last_errno = -rc;
		return UD_EUNAVAILABLE;
	}
	mark_durable(o);
	return 0;
}

int oplog_rotate(struct oplog *o, struct ud_error *err)
{
	int rc = o->mode == UD_FSYNC_NO ? oplog_flush(o) : oplog_sync(o);
	int fd;

	if (rc)
		return ud_error_set(err, rc, NULL,
				    "the log cannot be written: %s",
				    strerror(o->last_errno));
	if (o->next_seq == o->segs[o->nseg - 1].first_seq)
		return 0;
	fd = seg_create(o, o->next_seq);
	if (fd < 0)
		return ud_error_set(err, UD_EIO, NULL,
				    "cannot create log segment: %s",
				    strerror(-fd));
	if (segs_push(o, o->next_seq, FRAME_FILE_HDR)) {
		char path[4096];

		close(fd);
		seg_path(o, o->next_seq, path, sizeof(path));
		unlink(path);
		return ud_error_set(err, UD_ENOMEM, NULL, "out of memory");
	}
	pthread_mutex_lock(&o->mu);
	close(o->fd);
	o->fd = fd;
	o->good_size = o->synced = o->req_off = FRAME_FILE_HDR;
	o->gen++;
	pthread_mutex_unlock(&o->mu);
	o->pend_off = FRAME_FILE_HDR;
	return 0;
}

void oplog_remove_covered(struct oplog *o, uint64_t upto)
{
	char path[4096];
	size_t keep = 0;

	for (size_t i = 0; i < o->nseg; i++) {
		bool covered =
		    i + 1 < o->nseg && o->segs[i + 1].first_seq - 1 <= upto;

		if (covered && seg_path(o, o->segs[i].first_seq, path,
					sizeof(path)) == 0) {
			unlink(path);
			continue;
		}
		o->segs[keep++] = o->segs[i];
	}
	if (keep != o->nseg && o->mode != UD_FSYNC_NO)
		datadir_fsync(o->dir);
	o->nseg = keep;
}

void oplog_close(struct oplog *o)
{
	if (!o)
		return;
	oplog_sync(o);
	if (o->thr_on) {
		pthread_mutex_lock(&o->mu);
		o->stop = true;
		pthread_cond_signal(&o->cv);
		pthread_mutex_unlock(&o->mu);
		pthread_join(o->thr, NULL);
	}
	pthread_cond_destroy(&o->cv);
	pthread_mutex_destroy(&o->mu);
	close(o->fd);
	if (o->wake_fd >= 0)
		close(o->wake_fd);
	ud_buf_free(&o->batch);
	ud_buf_free(&o->pend);
	free(o->segs);
	free(o->dir);
	free(o);
}

bool oplog_unavailable(const struct oplog *o)
{
	return o->unavailable;
}

uint64_t oplog_last_seq(const struct oplog *o)
{
	return o->next_seq - 1;
}

uint64_t oplog_bytes(const struct oplog *o)
{
	uint64_t n = 0;

	for (size_t i = 0; i < o->nseg; i++)
		n += o->segs[i].bytes;
	return n;
}

uint64_t oplog_records(const struct oplog *o)
{
	return o->records;
}

size_t oplog_batch_bytes(const struct oplog *o)
{
	return o->batch.len;
}

int oplog_last_errno(const struct oplog *o)
{
	return o->last_errno;
}

void oplog_tell(const struct oplog *o, uint64_t *seg, uint64_t *off)
{
	*seg = o->nseg ? o->segs[o->nseg - 1].first_seq : 0;
	*off = o->good_size + o->batch.len;
}

uint64_t oplog_seg_next(const struct oplog *o, uint64_t seg)
{
	for (size_t i = 0; i < o->nseg; i++)
		if (o->segs[i].first_seq > seg)
			return o->segs[i].first_seq;
	return 0;
}
