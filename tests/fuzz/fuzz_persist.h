/*
 * fuzz_persist.h -- helpers of the persistence harnesses (fuzz_recover.c,
 * fuzz_apply.c): whole-state dumps to compare stores.
 */
#ifndef UD_FUZZ_PERSIST_H
#define UD_FUZZ_PERSIST_H

#include <string.h>

#include "fuzz_util.h"
#include "journal.h"
#include "userdb.h"

/* Every change record of ud_db_dump(db), each preceded by its length as 4
 * little-endian bytes, appended to b. */
static inline int fuzz_dump_emit(void *ctx, const void *rec, size_t len)
{
	struct ud_buf *b = ctx;
	unsigned char n[4] = {(unsigned char)len, (unsigned char)(len >> 8),
			      (unsigned char)(len >> 16),
			      (unsigned char)(len >> 24)};
	return ud_buf_append(b, n, 4) || ud_buf_append(b, rec, len) ? UD_ENOMEM
								    : 0;
}

static inline void fuzz_dump(ud_db *db, struct ud_buf *b)
{
	b->len = 0;
	FUZZ_CHECK(ud_db_dump(db, fuzz_dump_emit, b) == 0, "ud_db_dump");
}

/* Apply the records of a fuzz_dump to db; 0 or the first failure. */
static inline int fuzz_dump_apply(ud_db *db, const struct ud_buf *b,
				  struct ud_error *err)
{
	const unsigned char *p = (const unsigned char *)b->data;
	size_t off = 0;
	while (off < b->len) {
		size_t n = (size_t)p[off] | (size_t)p[off + 1] << 8 |
			   (size_t)p[off + 2] << 16 | (size_t)p[off + 3] << 24;
		int rc = ud_db_apply(db, p + off + 4, n, err);
		if (rc)
			return rc;
		off += 4 + n;
	}
	return 0;
}

static inline bool fuzz_buf_eq(const struct ud_buf *a, const struct ud_buf *b)
{
	return a->len == b->len &&
	       (a->len == 0 || !memcmp(a->data, b->data, a->len));
}

#endif
