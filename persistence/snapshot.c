/*
 * snapshot.c -- write, check and load snapshots; the forked writer.
 */
#define _GNU_SOURCE /* pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

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

static int w_flush(struct writer *w)
{
	int rc = w->len ? w_write(w, w->buf, w->len) : 0;

	w->len = 0;
	return rc;
}

static int w_frame(struct writer *w, uint32_t magic, uint64_t seq,
		   const void *rec, size_t len)
{
	unsigned char hdr[FRAME_REC_HDR];

	if (len > FRAME_REC_MAX) {
		w->err = EFBIG;
		return UD_ETOOLARGE;
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

	frame_file_hdr_encode(hdr, FRAME_SNAP, covered);
	memcpy(w->buf, hdr, sizeof(hdr));
	w->len = sizeof(hdr);
	rc = dump(src, emit_cb, w);
	if (rc)
		return rc;
	if (w_frame(w, FRAME_END_MAGIC, w->count, "", 0) || w_flush(w))
		return UD_EIO;
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

int snap_write(const char *dir, uint64_t covered, snap_dump_fn dump, void *src,
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
	if (!w.buf)
		return ud_error_set(err, UD_ENOMEM, NULL, "out of memory");
	w.fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (w.fd < 0) {
		free(w.buf);
		return ud_error_set(err, UD_EIO, NULL, "cannot create %s: %s",
				    tmp, strerror(errno));
	}
	rc = write_body(&w, covered, dump, src);
	close(w.fd);
	free(w.buf);
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

/* Pass 1: every record intact and numbered, end marker exactly at EOF. */
static int snap_check(const char *path, const struct datadir_map *m,
		      uint64_t *records, struct ud_error *err)
{
	size_t off = FRAME_FILE_HDR, sz;
	struct frame_rec rec;
	uint64_t n = 0;

	for (;;) {
		sz = frame_rec_decode(m->data + off, m->size - off, &rec);
		if (!sz)
			return ud_error_set(
			    err, UD_ECORRUPT, NULL,
			    off == m->size ? "%s: no end marker at offset %zu"
					   : "%s: bad record at offset %zu",
			    base_name(path), off);
		if (rec.magic == FRAME_END_MAGIC)
			break;
		if (rec.seq != ++n)
			return ud_error_set(err, UD_ECORRUPT, NULL,
					    "%s: record out of order at "
					    "offset %zu",
					    base_name(path), off);
		off += sz;
	}
	if (rec.seq != n || off + sz != m->size)
		return ud_error_set(err, UD_ECORRUPT, NULL,
				    "%s: bad end marker at offset %zu",
				    base_name(path), off);
	*records = n;
	return 0;
}

static int snap_apply(const char *path, const struct datadir_map *m,
		      snap_apply_fn apply, void *ctx, struct ud_error *err)
{
	size_t off = FRAME_FILE_HDR, sz;
	struct frame_rec rec;
	struct ud_error e = {0};

	while ((sz = frame_rec_decode(m->data + off, m->size - off, &rec)) &&
	       rec.magic == FRAME_REC_MAGIC) {
		if (apply(ctx, rec.payload, rec.len, &e))
			return ud_error_set(err, UD_ECORRUPT, NULL,
					    "%s: record at offset %zu cannot "
					    "be applied: %s",
					    base_name(path), off, e.message);
		off += sz;
	}
	return 0;
}

int snap_load(const char *path, snap_apply_fn apply, void *ctx,
	      uint64_t *covered, uint64_t *records, struct ud_error *err)
{
	struct datadir_map m;
	int rc = datadir_map(path, &m, err);

	if (rc)
		return rc;
	if (frame_file_hdr_decode(m.data, m.size, FRAME_SNAP, covered) != 0)
		rc = ud_error_set(err, UD_ECORRUPT, NULL,
				  "%s: bad file header at offset 0",
				  base_name(path));
	if (rc == 0)
		rc = snap_check(path, &m, records, err);
	if (rc == 0 && apply)
		rc = snap_apply(path, &m, apply, ctx, err);
	datadir_unmap(&m);
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
