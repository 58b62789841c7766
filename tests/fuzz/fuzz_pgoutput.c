/*
 * fuzz_pgoutput.c -- the pgoutput stream decoder (persistence/pg_repl.c)
 * and what the server does with each row change it gives
 * (persistence/pg_apply.c), on an in-memory store, without PostgreSQL.
 *
 * Input: CopyData messages of the replication stream ('w' XLogData with a
 * pgoutput message, 'k' keepalive), separated by UDSEP.  Decoding stops at
 * the first message that cannot be decoded, as the stream does (rule 4).
 *
 * Properties: no crash or sanitizer report (each message is an exact-size
 * copy); a row change is of a userdb table with a known operation, its
 * values lie inside the message and an unchanged-TOAST value has none;
 * pg_apply_change applies, skips or refuses with a reason; the store's
 * invariants (ud_db_check) hold after every change.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "fuzz_util.h"
#include "pg_apply.h"
#include "pg_repl.h"

struct run {
	ud_db *db;
	struct pg_repl *r;
	const unsigned char *lo, *hi; /* the message being decoded */
};

static int on_change(void *ctx, const struct pg_row_change *c)
{
	struct run *run = ctx;
	struct ud_error err = {0};
	int rc;

	FUZZ_CHECK(c->table == PGT_USERS || c->table == PGT_EVENTS, "table %d",
		   c->table);
	FUZZ_CHECK(c->op == PGO_INSERT || c->op == PGO_UPDATE ||
		       c->op == PGO_DELETE,
		   "op %d", c->op);
	for (int i = 0; i < PGU__COUNT; i++) {
		const struct pg_val *v = &c->v[i];
		if (c->unchanged[i])
			FUZZ_CHECK(!v->s, "unchanged column %d has a value", i);
		if (v->s)
			FUZZ_CHECK(
			    (const unsigned char *)v->s >= run->lo &&
				v->n <= (size_t)(run->hi -
						 (const unsigned char *)v->s),
			    "column %d outside the message", i);
	}
	rc = pg_apply_change(run->db, c, 1700000000000, &err);
	if (getenv("FUZZ_DEBUG")) /* see what the seeds do */
		fprintf(stderr, "change %d on table %d: %d %s\n", c->op,
			c->table, rc, rc < 0 ? err.message : "");
	FUZZ_CHECK(rc == 0 || rc == 1 || (rc < 0 && err.message[0]),
		   "pg_apply_change %d without a reason", rc);
	FUZZ_CHECK(ud_db_check(run->db, &err) == 0, "store invariants: %s",
		   err.message);
	return 0;
}

static int message(void *ctx, const uint8_t *p, size_t n)
{
	struct run *run = ctx;
	unsigned char *m = malloc(n ? n : 1);
	int rc;

	FUZZ_CHECK(m != NULL, "malloc");
	memcpy(m, p, n);
	run->lo = m;
	run->hi = m + n;
	rc = pg_repl_decode(run->r, m, n);
	free(m);
	FUZZ_CHECK(rc >= -1 && rc <= 1, "pg_repl_decode %d", rc);
	return rc < 0; /* the stream ends there */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ud_options opt = ud_options_default;
	struct ud_error err;
	struct run run = {0};

	FUZZ_CHECK(ud_open(&opt, &run.db, &err) == 0, "ud_open: %s",
		   err.message);
	run.r = pg_repl_decoder_new("n1", on_change, &run);
	FUZZ_CHECK(run.r != NULL, "decoder");
	fuzz_split(data, size, message, &run);
	pg_repl_free(run.r);
	FUZZ_CHECK(ud_db_check(run.db, &err) == 0, "store invariants: %s",
		   err.message);
	ud_close(run.db);
	return 0;
}
