/*
 * helper_fs.c -- fixtures of helper.h.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helper.h"
#include "oplog.h"
#include "recover.h"

char *tmpdir_make(void)
{
	char tmpl[] = "/tmp/udpersist-XXXXXX";
	char *d = mkdtemp(tmpl);

	cr_assert(d, "mkdtemp");
	return strdup(d);
}

void tmpdir_remove(char *dir)
{
	char cmd[4200];

	if (!dir)
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
	free(dir);
}

static void path_of(char *out, size_t n, const char *dir, const char *name)
{
	snprintf(out, n, "%s/%s", dir, name);
}

char *file_read(const char *dir, const char *name, size_t *len)
{
	char path[4200];
	struct stat st;
	char *buf;
	int fd;

	path_of(path, sizeof(path), dir, name);
	fd = open(path, O_RDONLY);
	cr_assert(fd >= 0, "open %s", path);
	cr_assert_eq(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	cr_assert(buf);
	cr_assert_eq(read(fd, buf, (size_t)st.st_size), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

void file_write(const char *dir, const char *name, const void *p, size_t n)
{
	char path[4200];
	int fd;

	path_of(path, sizeof(path), dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert(fd >= 0, "open %s", path);
	cr_assert_eq(write(fd, p, n), (ssize_t)n);
	close(fd);
}

long file_size(const char *dir, const char *name)
{
	char path[4200];
	struct stat st;

	path_of(path, sizeof(path), dir, name);
	return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

int file_count(const char *dir, const char *suffix)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t sl = strlen(suffix);
	int n = 0;

	cr_assert(d);
	while ((e = readdir(d)) != NULL) {
		size_t l = strlen(e->d_name);

		if (l >= sl && strcmp(e->d_name + l - sl, suffix) == 0)
			n++;
	}
	closedir(d);
	return n;
}

void recs_free(struct recs *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->items[i]);
	free(r->items);
	free(r->lens);
	memset(r, 0, sizeof(*r));
}

int recs_apply(void *ctx, const void *rec, size_t len, struct ud_error *err)
{
	struct recs *r = ctx;

	if (len >= 4 && memcmp(rec, "BAD!", 4) == 0)
		return ud_error_set(err, UD_ECORRUPT, NULL, "fake: bad record");
	r->items = realloc(r->items, (r->n + 1) * sizeof(char *));
	r->lens = realloc(r->lens, (r->n + 1) * sizeof(size_t));
	r->items[r->n] = malloc(len + 1);
	memcpy(r->items[r->n], rec, len);
	r->lens[r->n] = len;
	r->n++;
	return 0;
}

int recs_dump(void *src, ud_journal_fn emit, void *ctx)
{
	struct recs *r = src;
	int rc;

	for (size_t i = 0; i < r->n; i++)
		if ((rc = emit(ctx, r->items[i], r->lens[i])))
			return rc;
	return 0;
}

void recs_make(struct recs *r, size_t n, size_t size)
{
	char buf[64];

	memset(r, 0, sizeof(*r));
	for (size_t i = 0; i < n; i++) {
		size_t len = (size_t)snprintf(buf, sizeof(buf), "rec-%zu", i);
		size_t want = size > len ? size + i % 7 : len;
		char *p = malloc(want);

		memset(p, 'a' + (int)(i % 26), want);
		memcpy(p, buf, len);
		r->items = realloc(r->items, (r->n + 1) * sizeof(char *));
		r->lens = realloc(r->lens, (r->n + 1) * sizeof(size_t));
		r->items[r->n] = p;
		r->lens[r->n] = want;
		r->n++;
	}
}

int recs_equal(const struct recs *a, const struct recs *b)
{
	if (a->n != b->n)
		return 0;
	for (size_t i = 0; i < a->n; i++)
		if (a->lens[i] != b->lens[i] ||
		    memcmp(a->items[i], b->items[i], a->lens[i]) != 0)
			return 0;
	return 1;
}

struct oplog *log_reopen(const char *dir, int mode, struct fault *f,
			 struct recs *replayed, char **warnings)
{
	struct recover_result r;
	struct ud_error err = {0};
	struct oplog_start st;
	struct oplog *o = NULL;
	int rc = recover_run(dir, recs_apply, replayed, &r, &err);

	cr_assert_eq(rc, 0, "recover: %s", err.message);
	st.segs = r.segs;
	st.nseg = r.nseg;
	st.next_seq = r.next_seq;
	rc = oplog_open(dir, &st, (enum ud_fsync)mode, f, &o, &err);
	cr_assert_eq(rc, 0, "oplog_open: %s", err.message);
	if (warnings)
		*warnings = strdup(r.warnings.len ? r.warnings.data : "");
	recover_result_free(&r);
	return o;
}

void log_append_all(struct oplog *o, const struct recs *r)
{
	for (size_t i = 0; i < r->n; i++)
		cr_assert_eq(oplog_append(o, r->items[i], r->lens[i]), 0);
}
