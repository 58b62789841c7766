/*
 * fuzz_util.c -- helpers shared by the harnesses; see fuzz_util.h.
 */
#define _GNU_SOURCE
#include "fuzz_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void fuzz_fail(const char *file, int line, const char *cond, const char *fmt,
	       ...)
{
	va_list ap;
	fprintf(stderr, "%s:%d: property broken: %s: ", file, line, cond);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

int fuzz_split(const uint8_t *data, size_t size,
	       int (*fn)(void *ctx, const uint8_t *p, size_t n), void *ctx)
{
	const uint8_t *p = data, *end = data + size;
	for (;;) {
		const uint8_t *sep =
		    size ? memmem(p, (size_t)(end - p), FUZZ_SEP, FUZZ_SEP_LEN)
			 : NULL;
		size_t n = sep ? (size_t)(sep - p) : (size_t)(end - p);
		int rc = fn(ctx, p, n);
		if (rc || !sep)
			return rc;
		p = sep + FUZZ_SEP_LEN;
	}
}

void fuzz_mkdtemp(char out[256])
{
	struct stat st;
	const char *base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) &&
				   access("/dev/shm", W_OK) == 0
			       ? "/dev/shm"
			       : "/tmp";
	snprintf(out, 256, "%s/udfuzz-XXXXXX", base);
	FUZZ_CHECK(mkdtemp(out) != NULL, "mkdtemp %s", out);
}

void fuzz_rmdir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[512];
	if (!d)
		return;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(dir);
}

void fuzz_write_file(const char *dir, const char *name, const void *data,
		     size_t n)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	FUZZ_CHECK(fd >= 0, "open %s", path);
	FUZZ_CHECK(n == 0 || write(fd, data, n) == (ssize_t)n, "write %s",
		   path);
	close(fd);
}

bool fuzz_json_ok(const char *s, size_t n)
{
	json_error_t e;
	json_t *v = json_loadb(s, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
	if (v) {
		json_decref(v);
		return true;
	}
	return strstr(e.text, "too big") != NULL;
}
