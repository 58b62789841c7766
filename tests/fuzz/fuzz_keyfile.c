/*
 * fuzz_keyfile.c -- the key file parser (net/apikey.c, --api-key-file)
 * against a reference parser written here from apikey.h's description.
 *
 * Input: the bytes of a key file.  The set starts with one --api-key flag
 * key, "flag-key", so the file's unnamed keys are key-2 on.
 *
 * Properties:
 *   1. apikey_file_parse accepts exactly the files the reference accepts,
 *      and refuses the others at the same line, with exactly one message
 *      "userdb-server: key file P line N: WHY": WHY is the reference's
 *      (the same checks in the order apikey.c makes them), so no part of a
 *      key ever appears in it.
 *   2. An accepted file gives the reference's keys in order: each is found
 *      by keyset_find at its place, with its scope and its name (NAME, or
 *      key-N).
 */
#define _GNU_SOURCE /* open_memstream */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apikey.h"
#include "fuzz_util.h"

#define PATH "/k"

struct ref_key {
	const char *key;
	size_t len;
	int scope;
	char name[KEY_NAME_MAX + 1];
};

struct ref {
	struct ref_key k[KEYSET_MAX];
	unsigned n;    /* keys in the file */
	unsigned line; /* the refused line, 0: accepted */
	char why[128]; /* its message */
};

static bool blank(char c)
{
	return c == ' ' || c == '\t';
}

/* Fields of s[0..n): up to 5 are counted (5 = "more than 4"). */
static unsigned ref_fields(const char *s, size_t n, const char *f[5],
			   size_t fl[5])
{
	unsigned k = 0;

	for (size_t i = 0; i < n;) {
		if (blank(s[i])) {
			i++;
			continue;
		}
		size_t j = i;
		while (j < n && !blank(s[j]))
			j++;
		if (k < 5) {
			f[k] = s + i;
			fl[k] = j - i;
			k++;
		}
		i = j;
	}
	return k;
}

static int ref_scope(const char *s, size_t n)
{
	static const char *const names[] = {"admin", "read", "verify"};

	for (int i = 0; i < 3; i++)
		if (strlen(names[i]) == n && memcmp(s, names[i], n) == 0)
			return i;
	return -1;
}

static bool ref_name_ok(const char *s, size_t n)
{
	if (n == 0 || n > KEY_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-'))
			return false;
	}
	return true;
}

static bool ref_taken(const struct ref *r, const char *k, size_t n)
{
	if (n == 8 && memcmp(k, "flag-key", 8) == 0)
		return true;
	for (unsigned i = 0; i < r->n; i++)
		if (r->k[i].len == n && memcmp(r->k[i].key, k, n) == 0)
			return true;
	return false;
}

/* One line; false (with r->why) when it is refused. */
static bool ref_line(struct ref *r, const char *s, size_t n)
{
	const char *f[5];
	size_t fl[5];
	unsigned k;

	if (n && s[n - 1] == '\r')
		n--;
	if (memchr(s, '\0', n)) {
		snprintf(r->why, sizeof r->why, "contains a NUL byte");
		return false;
	}
	k = ref_fields(s, n, f, fl);
	if (k == 0 || f[0][0] == '#')
		return true;
	if (k < 2 || k > 3)
		snprintf(r->why, sizeof r->why,
			 "expected KEY SCOPE [NAME], found %u fields", k);
	else if (fl[0] > KEY_LEN_MAX)
		snprintf(r->why, sizeof r->why,
			 "the key is longer than %u bytes", KEY_LEN_MAX);
	else if (ref_scope(f[1], fl[1]) < 0)
		snprintf(r->why, sizeof r->why,
			 "unknown scope (admin, read or verify)");
	else if (k == 3 && !ref_name_ok(f[2], fl[2]))
		snprintf(r->why, sizeof r->why,
			 "a name is 1 to %d of A-Z a-z 0-9 . _ -",
			 KEY_NAME_MAX);
	else if (ref_taken(r, f[0], fl[0]))
		snprintf(r->why, sizeof r->why, "the same key is given twice");
	else if (r->n + 1 >= KEYSET_MAX) /* the flag key takes one */
		snprintf(r->why, sizeof r->why, "more than %d keys",
			 KEYSET_MAX);
	else {
		struct ref_key *e = &r->k[r->n];
		e->key = f[0];
		e->len = fl[0];
		e->scope = ref_scope(f[1], fl[1]);
		if (k == 3)
			snprintf(e->name, sizeof e->name, "%.*s", (int)fl[2],
				 f[2]);
		else
			snprintf(e->name, sizeof e->name, "key-%u", r->n + 2);
		r->n++;
		return true;
	}
	return false;
}

static void ref_parse(struct ref *r, const char *buf, size_t len)
{
	unsigned lineno = 0;

	for (size_t off = 0; off < len;) {
		const char *nl = memchr(buf + off, '\n', len - off);
		size_t n = nl ? (size_t)(nl - (buf + off)) : len - off;
		lineno++;
		if (!ref_line(r, buf + off, n)) {
			r->line = lineno;
			return;
		}
		off += n + 1;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct keyset ks;
	static struct ref r;
	char *buf = malloc(size ? size : 1), *msg = NULL, want[256];
	size_t msg_len = 0;
	FILE *err = open_memstream(&msg, &msg_len);
	int rc;

	FUZZ_CHECK(buf && err, "out of memory");
	memcpy(buf, data, size);
	memset(&ks, 0, sizeof ks);
	memset(&r, 0, sizeof r);
	FUZZ_CHECK(keyset_add(&ks, "flag-key", 8) == 0, "flag key");
	rc = apikey_file_parse(&ks, buf, size, PATH, err);
	fclose(err);
	ref_parse(&r, (const char *)data, size);

	if (r.line) {
		snprintf(want, sizeof want,
			 "userdb-server: key file " PATH " line %u: %s\n",
			 r.line, r.why);
		FUZZ_CHECK(rc != 0, "accepted; the reference refuses: %s",
			   want);
		FUZZ_CHECK(strcmp(msg, want) == 0, "said %s, expected %s", msg,
			   want);
	} else {
		FUZZ_CHECK(rc == 0, "refused (%s); the reference accepts", msg);
		FUZZ_CHECK(msg_len == 0, "accepted, but said %s", msg);
		FUZZ_CHECK(ks.n == r.n + 1, "%u keys, expected %u", ks.n,
			   r.n + 1);
		for (unsigned i = 0; i < r.n; i++) {
			const struct key_entry *e = &ks.e[i + 1];
			FUZZ_CHECK(keyset_find(&ks, r.k[i].key, r.k[i].len,
					       NULL) == (int)i + 1,
				   "key %u not found at its place", i);
			FUZZ_CHECK((int)e->scope == r.k[i].scope &&
				       strcmp(e->name, r.k[i].name) == 0 &&
				       e->name_len == strlen(e->name),
				   "key %u: scope %d name %s, expected %d %s",
				   i, e->scope, e->name, r.k[i].scope,
				   r.k[i].name);
		}
	}
	free(msg);
	free(buf);
	return 0;
}
