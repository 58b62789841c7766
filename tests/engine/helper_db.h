/*
 * helper_db.h -- shared helpers of the engine store tests: stores with cheap
 * password hashing, field builders, a mirror journal (every change record
 * applied to a second store) and a full-state comparison of two stores.
 */
#ifndef HELPER_DB_H
#define HELPER_DB_H

#include "db.h"

/* A memory store with the cheapest Argon2id costs (tests only). */
ud_db *hdb_new(const struct ud_options *base);
/* Fields of a create with name and email (borrowed, NUL-terminated). */
struct ud_fields hdb_fields(const char *name, const char *email);
void hdb_set(struct ud_fields *f, unsigned bit, const char *val);
/* Create a user or fail the test. */
const ud_user *hdb_create(ud_db *db, const char *name, const char *email);
/* The id of u as a NUL-terminated string in buf (>= UD_ID_MAX + 1). */
const char *hdb_id(const ud_user *u, char *buf);
/* Fail the test if ud_db_check() does. */
void hdb_check(ud_db *db);

/* Journal callback: applies every record to ((struct hdb_mirror *)ctx)->db;
 * refuses with ->refuse when non-zero. */
struct hdb_mirror {
	ud_db *db;
	int refuse;
	unsigned long records;
	struct ud_buf last; /* the last record */
};
int hdb_mirror_cb(void *ctx, const void *rec, size_t len);

/* 0 when a and b hold the same users (all fields, order), logs (every page
 * of every kept log), counters and deleted-log FIFO; else a reason in why. */
int hdb_compare(ud_db *a, ud_db *b, char *why, size_t n);
/* Dump a into a fresh store (same options); returns it. */
ud_db *hdb_dump_copy(ud_db *a);

#endif
