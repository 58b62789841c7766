/*
 * fuzz_apply.c -- ud_db_apply (engine/change.c) on arbitrary change
 * records: what log replay and snapshot loading feed the engine once a
 * record's checksum matched.
 *
 * Input: change records separated by FUZZ_SEP, applied in order to an
 * empty in-memory store (failures are expected and skipped).
 *
 * Properties: no crash, no sanitizer report, no unbounded allocation; a
 * record that fails leaves the store exactly as it was (ud_db_apply checks
 * everything before applying); the store's invariants (ud_db_check) hold
 * after every record; the state survives a dump and reload exactly (dump ->
 * apply to an empty store -> dump gives the same records), as a snapshot
 * would.  (These strict checks were opt-in, FUZZ_APPLY_STRICT, until the
 * findings now under regressions/apply/ were fixed.)
 */
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "fuzz_util.h"
#include "fuzz_persist.h"

struct ctx {
	ud_db *db;
	struct ud_buf before, after;
};

static int apply_piece(void *ctx, const uint8_t *p, size_t n)
{
	struct ctx *c = ctx;
	struct ud_error err;
	fuzz_dump(c->db, &c->before);
	if (ud_db_apply(c->db, p, n, &err) != 0) {
		fuzz_dump(c->db, &c->after);
		FUZZ_CHECK(fuzz_buf_eq(&c->before, &c->after),
			   "a refused record changed the store");
	}
	FUZZ_CHECK(ud_db_check(c->db, &err) == 0, "invariants: %s",
		   err.message);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctx c = {0};
	struct ud_error err;
	c.db = ud_db_new(&ud_options_default, &err);
	FUZZ_CHECK(c.db, "ud_db_new");
	fuzz_split(data, size, apply_piece, &c);

	ud_db *db2 = ud_db_new(&ud_options_default, &err);
	FUZZ_CHECK(db2, "ud_db_new");
	fuzz_dump(c.db, &c.before);
	FUZZ_CHECK(fuzz_dump_apply(db2, &c.before, &err) == 0,
		   "reloading a dump failed: %s", err.message);
	FUZZ_CHECK(ud_db_check(db2, &err) == 0, "reloaded: %s", err.message);
	fuzz_dump(db2, &c.after);
	FUZZ_CHECK(fuzz_buf_eq(&c.before, &c.after),
		   "dump -> reload -> dump differs");
	ud_db_free(db2);
	ud_db_free(c.db);
	ud_buf_free(&c.before);
	ud_buf_free(&c.after);
	return 0;
}
