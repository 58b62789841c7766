/*
 * fault.c -- fault rules (see fault.h) and the I/O wrappers.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fault.h"

void fault_init(struct fault *f)
{
	memset(f, 0, sizeof(*f));
	pthread_mutex_init(&f->mu, NULL);
}

static void rules_free(struct fault_rule *r, int n)
{
	for (int i = 0; i < n; i++)
		free(r[i].file);
}

void fault_destroy(struct fault *f)
{
	rules_free(f->rules, f->n);
	f->n = 0;
	pthread_mutex_destroy(&f->mu);
}

#ifdef UD_FAULT_INJECTION

static int op_parse(const char *s, size_t n)
{
	static const char *const names[FAULT__OPS] = {
	    [FAULT_WRITE] = "write",
	    [FAULT_FSYNC] = "fsync",
	    [FAULT_TRUNC] = "trunc",
	    [FAULT_SNAP] = "snap",
	    [FAULT_SNAP_WRITE] = "snapwrite",
	    [FAULT_SNAP_SYNC] = "snapsync",
	    [FAULT_SNAP_RENAME] = "snaprename",
	    [FAULT_SNAP_DIRSYNC] = "snapdirsync"};

	for (int i = 0; i < FAULT__OPS; i++)
		if (strlen(names[i]) == n && memcmp(s, names[i], n) == 0)
			return i;
	return -1;
}

static int err_parse(const char *s, size_t n)
{
	static const struct {
		const char *name;
		int err;
	} errs[] = {{"ENOSPC", ENOSPC},		{"EIO", EIO},
		    {"EDQUOT", EDQUOT},		{"SHORT", FAULT_SHORT},
		    {"PARTIAL", FAULT_PARTIAL}, {"SLOW", FAULT_SLOW}};

	for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++)
		if (strlen(errs[i].name) == n &&
		    memcmp(s, errs[i].name, n) == 0)
			return errs[i].err;
	return 0;
}

/* Parse one "op:err[:skip[:count]]" or "op:err:file=PATH" of length n. */
static int rule_parse(const char *s, size_t n, struct fault_rule *r)
{
	const char *end = s + n, *c1, *c2, *c3;

	memset(r, 0, sizeof(*r));
	r->count = 1;
	c1 = memchr(s, ':', n);
	if (!c1 || (r->op = op_parse(s, (size_t)(c1 - s))) < 0)
		return -1;
	c2 = memchr(c1 + 1, ':', (size_t)(end - c1 - 1));
	r->err = err_parse(c1 + 1, (size_t)((c2 ? c2 : end) - c1 - 1));
	if (!r->err)
		return -1;
	if (!c2)
		return 0;
	if (end - c2 > 6 && memcmp(c2 + 1, "file=", 5) == 0) {
		r->file = strndup(c2 + 6, (size_t)(end - c2 - 6));
		r->count = -1;
		return r->file ? 0 : -1;
	}
	r->skip = strtol(c2 + 1, (char **)&c3, 10);
	if (c3 == c2 + 1 || r->skip < 0)
		return -1;
	if (c3 == end)
		return 0;
	if (*c3 != ':')
		return -1;
	if (end - c3 == 2 && c3[1] == '*') {
		r->count = -1;
		return 0;
	}
	r->count = strtol(c3 + 1, (char **)&c1, 10);
	return (c1 == end && c1 != c3 + 1 && r->count >= 0) ? 0 : -1;
}

int fault_parse(struct fault *f, const char *spec, struct ud_error *err)
{
	struct fault_rule rules[FAULT_RULES];
	int n = 0;
	const char *p = spec;

	while (*p) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);

		if (n == FAULT_RULES || rule_parse(p, len, &rules[n]) != 0) {
			rules_free(rules, n);
			return ud_error_set(err, UD_EINVAL, NULL,
					    "bad fault rule in \"%s\"", spec);
		}
		n++;
		p += len + (comma ? 1 : 0);
	}
	pthread_mutex_lock(&f->mu);
	rules_free(f->rules, f->n);
	memcpy(f->rules, rules, sizeof(rules[0]) * (size_t)n);
	f->n = n;
	pthread_mutex_unlock(&f->mu);
	return 0;
}

/* The error of a rule that fires: PARTIAL alternates. */
static int rule_err(struct fault_rule *r)
{
	if (r->err != FAULT_PARTIAL)
		return r->err;
	r->half = !r->half;
	return r->half ? FAULT_SHORT : ENOSPC;
}

static int rule_fire(struct fault_rule *r)
{
	if (r->file)
		return access(r->file, F_OK) == 0 ? rule_err(r) : 0;
	if (r->skip > 0) {
		r->skip--;
		return 0;
	}
	if (r->count == 0)
		return 0;
	if (r->count > 0)
		r->count--;
	return rule_err(r);
}

int fault_check(struct fault *f, int op)
{
	int e = 0;

	if (!f)
		return 0;
	pthread_mutex_lock(&f->mu);
	for (int i = 0; i < f->n && !e; i++)
		if (f->rules[i].op == op)
			e = rule_fire(&f->rules[i]);
	pthread_mutex_unlock(&f->mu);
	return e;
}

#else /* !UD_FAULT_INJECTION */

int fault_parse(struct fault *f, const char *spec, struct ud_error *err)
{
	if (*spec)
		return ud_error_set(err, UD_EINVAL, NULL,
				    "built without fault injection");
	return 0;
}

int fault_check(struct fault *f, int op)
{
	return 0;
}

#endif

int fault_pwrite_all(struct fault *f, int fd, const void *buf, size_t n,
		     off_t off)
{
	const char *p = buf;

	while (n > 0) {
		int e = fault_check(f, FAULT_WRITE);
		size_t ask = n;
		ssize_t w;

		if (e > 0)
			return -e;
		if (e == FAULT_SHORT && n > 1)
			ask = n / 2;
		w = pwrite(fd, p, ask, off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (w == 0)
			return -EIO;
		p += w;
		off += w;
		n -= (size_t)w;
	}
	return 0;
}

int fault_fdatasync(struct fault *f, int fd)
{
	int e = fault_check(f, FAULT_FSYNC);

	if (e > 0)
		return -e;
	if (e == FAULT_SLOW)
		usleep(FAULT_SLOW_MS * 1000);
	return fdatasync(fd) == 0 ? 0 : -errno;
}

int fault_ftruncate(struct fault *f, int fd, off_t len)
{
	int e = fault_check(f, FAULT_TRUNC);

	if (e > 0)
		return -e;
	return ftruncate(fd, len) == 0 ? 0 : -errno;
}
