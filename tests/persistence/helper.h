/*
 * helper.h -- shared fixtures of the persistence tests: temporary data
 * directories, file surgery, and a fake record source/sink standing in for
 * the engine (no engine symbols are defined here).
 */
#ifndef UD_TEST_PERSIST_HELPER_H
#define UD_TEST_PERSIST_HELPER_H

#include <stddef.h>
#include <stdint.h>

#include "journal.h"
#include "userdb.h"

/* A fresh empty directory under /tmp; returns a static-lifetime copy the
 * caller frees with tmpdir_remove (which deletes it recursively). */
char *tmpdir_make(void);
void tmpdir_remove(char *dir);

/* Whole-file helpers; abort the test on failure. */
char *file_read(const char *dir, const char *name, size_t *len);
void file_write(const char *dir, const char *name, const void *p, size_t n);
long file_size(const char *dir, const char *name); /* -1 if missing */
int file_count(const char *dir, const char *suffix);

/* Fake engine: records are "rec-<n>" strings, optionally padded. */
struct recs {
	char **items;
	size_t *lens;
	size_t n;
};
void recs_free(struct recs *r);
/* snap_apply_fn: appends a copy. */
int recs_apply(void *ctx, const void *rec, size_t len, struct ud_error *err);
/* snap_dump_fn over a struct recs. */
int recs_dump(void *src, ud_journal_fn emit, void *ctx);
/* Fill r with n records of about `size` bytes, deterministic in i. */
void recs_make(struct recs *r, size_t n, size_t size);
int recs_equal(const struct recs *a, const struct recs *b);

struct oplog;
struct fault;
/* Recover dir into *replayed (records appended) and open its log for
 * appending; asserts success.  warnings (may be NULL) gets a malloc'd copy
 * of recovery's warnings. */
struct oplog *log_reopen(const char *dir, int mode, struct fault *f,
			 struct recs *replayed, char **warnings);
/* Append every record of r to o (asserting success). */
void log_append_all(struct oplog *o, const struct recs *r);

/* A real store on dir (helper_store.c): ud_open with mode, no timed
 * snapshots, changes_keep = keep (0: the default); asserts success. */
ud_db *store_open(const char *dir, enum ud_fsync mode, uint64_t keep);
/* Create user i ("User i", userI@example.com); ud_user_create's code. */
int store_create(ud_db *db, int i);

#endif
