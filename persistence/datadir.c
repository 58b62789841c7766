/*
 * datadir.c -- data directory helpers (see datadir.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "datadir.h"

int datadir_create(const char *dir, struct ud_error *err)
{
	struct stat st;

	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return ud_error_set(err, UD_EIO, "data_dir",
				    "cannot create data directory %s: %s", dir,
				    strerror(errno));
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
		return ud_error_set(err, UD_EIO, "data_dir",
				    "data directory %s is not a directory",
				    dir);
	return 0;
}

int datadir_lock(const char *dir, int *fd, struct ud_error *err)
{
	char path[4096], pid[32];
	int f, n;

	if (datadir_path(path, sizeof(path), dir, "LOCK"))
		return ud_error_set(err, UD_EINVAL, "data_dir",
				    "path too long");
	f = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (f < 0)
		return ud_error_set(err, UD_EIO, "data_dir",
				    "cannot open %s: %s", path,
				    strerror(errno));
	if (flock(f, LOCK_EX | LOCK_NB) != 0) {
		int e = errno;

		close(f);
		if (e == EWOULDBLOCK)
			return ud_error_set(
			    err, UD_ELOCKED, "data_dir",
			    "data directory %s is in use by another process "
			    "(lock file %s is held)",
			    dir, path);
		return ud_error_set(err, UD_EIO, "data_dir",
				    "cannot lock %s: %s", path, strerror(e));
	}
	/* The pid is informational only: the flock is the lock. */
	n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(f, 0) == 0 && pwrite(f, pid, (size_t)n, 0) < 0)
		(void)0;
	*fd = f;
	return 0;
}

static int has_suffix(const char *s, const char *suf)
{
	size_t n = strlen(s), m = strlen(suf);

	return n >= m && strcmp(s + n - m, suf) == 0;
}

int datadir_remove_inprogress(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[4096];
	int removed = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)) != NULL) {
		if (!has_suffix(e->d_name, ".inprogress"))
			continue;
		if (datadir_path(path, sizeof(path), dir, e->d_name) == 0 &&
		    unlink(path) == 0)
			removed++;
	}
	closedir(d);
	return removed;
}

/* Parse "<prefix><16 hex><suffix>" exactly. */
static int name_seq(const char *name, const char *prefix, const char *suffix,
		    uint64_t *seq)
{
	size_t pl = strlen(prefix), sl = strlen(suffix);
	uint64_t v = 0;

	if (strlen(name) != pl + 16 + sl || strncmp(name, prefix, pl) != 0 ||
	    strcmp(name + pl + 16, suffix) != 0)
		return -1;
	for (size_t i = 0; i < 16; i++) {
		char c = name[pl + i];
		int d = c >= '0' && c <= '9'   ? c - '0'
			: c >= 'a' && c <= 'f' ? c - 'a' + 10
					       : -1;
		if (d < 0)
			return -1;
		v = v << 4 | (uint64_t)d;
	}
	*seq = v;
	return 0;
}

static int push(uint64_t **arr, size_t *n, uint64_t v)
{
	uint64_t *p = realloc(*arr, (*n + 1) * sizeof(**arr));

	if (!p)
		return UD_ENOMEM;
	p[(*n)++] = v;
	*arr = p;
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int datadir_list(const char *dir, struct datadir_list *out,
		 struct ud_error *err)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	uint64_t seq;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if (!d)
		return ud_error_set(err, UD_EIO, "data_dir",
				    "cannot read %s: %s", dir, strerror(errno));
	while (rc == 0 && (e = readdir(d)) != NULL) {
		if (name_seq(e->d_name, "snap-", ".usnap", &seq) == 0)
			rc = push(&out->snaps, &out->nsnap, seq);
		else if (name_seq(e->d_name, "log-", ".ulog", &seq) == 0)
			rc = push(&out->logs, &out->nlog, seq);
	}
	closedir(d);
	if (rc) {
		datadir_list_free(out);
		return ud_error_set(err, rc, NULL, "out of memory");
	}
	if (out->nsnap > 1) /* qsort's base must not be NULL */
		qsort(out->snaps, out->nsnap, sizeof(uint64_t), cmp_u64);
	if (out->nlog > 1)
		qsort(out->logs, out->nlog, sizeof(uint64_t), cmp_u64);
	return 0;
}

void datadir_list_free(struct datadir_list *l)
{
	free(l->snaps);
	free(l->logs);
	memset(l, 0, sizeof(*l));
}

int datadir_path(char *out, size_t n, const char *dir, const char *name)
{
	int w = snprintf(out, n, "%s/%s", dir, name);

	return (w < 0 || (size_t)w >= n) ? UD_EINVAL : 0;
}

int datadir_fsync(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc;

	if (fd < 0)
		return UD_EIO;
	rc = fsync(fd) == 0 ? 0 : UD_EIO;
	close(fd);
	return rc;
}

int datadir_map(const char *path, struct datadir_map *m, struct ud_error *err)
{
	struct stat st;
	void *p;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	memset(m, 0, sizeof(*m));
	if (fd < 0)
		return ud_error_set(err, UD_EIO, NULL, "cannot open %s: %s",
				    path, strerror(errno));
	if (fstat(fd, &st) != 0) {
		close(fd);
		return ud_error_set(err, UD_EIO, NULL, "cannot stat %s: %s",
				    path, strerror(errno));
	}
	if (st.st_size > 0) {
		p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd,
			 0);
		if (p == MAP_FAILED) {
			close(fd);
			return ud_error_set(err, UD_EIO, NULL,
					    "cannot map %s: %s", path,
					    strerror(errno));
		}
		madvise(p, (size_t)st.st_size, MADV_SEQUENTIAL);
		m->data = p;
		m->size = (size_t)st.st_size;
	}
	close(fd);
	return 0;
}

void datadir_unmap(struct datadir_map *m)
{
	if (m->data)
		munmap((void *)m->data, m->size);
	m->data = NULL;
	m->size = 0;
}
