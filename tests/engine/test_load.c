/*
 * test_load.c -- the two-stage snapshot load of load.c: the same store as
 * ud_db_apply() record by record, the same refusals with the same
 * messages (a crafted snapshot repeating an id or an email), and size
 * hints that lie.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helper_db.h"
#include "journal.h"

/* A dump as a list of records. */
struct recs {
	struct ud_buf *items;
	size_t n, cap;
};

static void recs_add(struct recs *r, const void *p, size_t len)
{
	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 64;
		r->items = realloc(r->items, r->cap * sizeof(*r->items));
		cr_assert(r->items);
	}
	r->items[r->n] = (struct ud_buf){0};
	cr_assert_eq(ud_buf_append(&r->items[r->n], p, len), 0);
	r->n++;
}

static int recs_emit_cb(void *ctx, const void *rec, size_t len)
{
	recs_add(ctx, rec, len);
	return 0;
}

static void recs_free(struct recs *r)
{
	for (size_t i = 0; i < r->n; i++)
		ud_buf_free(&r->items[i]);
	free(r->items);
	memset(r, 0, sizeof(*r));
}

/* A store of n users with some history: renames, suspensions, failed
 * verifications (kept logs), deletions (deleted users' logs). */
static ud_db *history(int n)
{
	ud_db *db = hdb_new(NULL);
	char name[32], email[64], id[UD_ID_MAX + 1];
	struct ud_error err;

	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "User %d", i);
		snprintf(email, sizeof(email), "User%d@Example.com", i);
		const ud_user *u = hdb_create(db, name, email);

		hdb_id(u, id);
		if (i % 7 == 0)
			cr_assert_eq(ud_user_record_verify(db, id, strlen(id),
							   false, &err),
				     0);
		if (i % 11 == 0)
			cr_assert_eq(ud_user_set_suspended(db, id, strlen(id),
							   true, NULL, &err),
				     0);
		if (i % 13 == 0)
			cr_assert_eq(
			    ud_user_delete(db, id, strlen(id), 0, &err), 0);
	}
	hdb_check(db);
	return db;
}

/* Load recs into a fresh store with the two stages: every record prepared
 * first (as the helper thread may run far ahead), then applied in order.
 * Returns the store, or NULL with *err (the first failure in order). */
static ud_db *load(const struct recs *in, uint64_t hint, struct ud_error *err)
{
	struct ud_load_batch *b = ud_load_batch_new(in->n);
	ud_db *db = hdb_new(NULL);
	struct ud_error perr = {0};
	size_t i, bad = in->n;
	int rc = 0;

	cr_assert(b);
	cr_assert_eq(ud_load_begin(db, hint), 0);
	for (i = 0; i < in->n && bad == in->n; i++)
		if (ud_load_prepare(b, i, in->items[i].data, in->items[i].len,
				    &perr))
			bad = i;
	for (i = 0; i < bad && rc == 0; i++) {
		if (i + 2 < bad)
			ud_load_prefetch(db, b, i + 2);
		rc = ud_load_apply(db, b, i, err);
	}
	if (rc == 0 && bad < in->n) {
		*err = perr;
		rc = perr.code;
	}
	ud_load_batch_free(b); /* releases what was prepared, not applied */
	if (rc) {
		ud_db_free(db);
		return NULL;
	}
	return db;
}

/* ud_db_apply() record by record; NULL with *err at the first failure. */
static ud_db *apply_each(const struct recs *in, struct ud_error *err)
{
	ud_db *db = hdb_new(NULL);

	for (size_t i = 0; i < in->n; i++)
		if (ud_db_apply(db, in->items[i].data, in->items[i].len, err)) {
			ud_db_free(db);
			return NULL;
		}
	return db;
}

static void same_store(ud_db *a, ud_db *b)
{
	char why[256];

	hdb_check(b);
	cr_assert_eq(hdb_compare(a, b, why, sizeof(why)), 0, "%s", why);
}

/* The hint a snapshot of recs gives: its puts. */
static uint64_t weight(const struct recs *in)
{
	uint64_t w = 0;

	for (size_t i = 0; i < in->n; i++)
		w += ud_load_weigh(in->items[i].data, in->items[i].len);
	return w;
}

Test(load, same_store_as_apply)
{
	struct recs dump = {0};
	struct ud_error err = {0};
	ud_db *src = history(3000), *a, *b;

	cr_assert_eq(ud_db_dump(src, recs_emit_cb, &dump), 0);
	cr_assert_eq(weight(&dump), src->order.live);
	a = apply_each(&dump, &err);
	cr_assert(a, "%s", err.message);
	b = load(&dump, weight(&dump), &err);
	cr_assert(b, "%s", err.message);
	same_store(src, b);
	same_store(a, b);
	/* presized as one-by-one growth sizes them: no memory per user more */
	cr_assert_eq(b->by_id.main.cap, a->by_id.main.cap);
	cr_assert_eq(b->by_email.main.cap, a->by_email.main.cap);
	cr_assert_eq(b->by_id.old.cap, 0);
	ud_db_free(src);
	ud_db_free(a);
	ud_db_free(b);
	recs_free(&dump);
}

/* The hint sizes the indexes; a wrong one must change nothing else. */
Test(load, size_hints_that_lie)
{
	static const uint64_t hints[] = {0, 1, 17, 100, 1ull << 40, UINT64_MAX};
	struct recs dump = {0};
	struct ud_error err = {0};
	ud_db *src = history(1000), *b;

	cr_assert_eq(ud_db_dump(src, recs_emit_cb, &dump), 0);
	for (size_t i = 0; i < sizeof(hints) / sizeof(hints[0]); i++) {
		b = load(&dump, hints[i], &err);
		cr_assert(b, "hint %llu: %s", (unsigned long long)hints[i],
			  err.message);
		same_store(src, b);
		ud_db_free(b);
	}
	/* a hint on a store that is not empty is ignored */
	b = hdb_new(NULL);
	hdb_create(b, "Ann", "ann@example.com");
	cr_assert_eq(ud_load_begin(b, 1u << 20), 0);
	cr_assert_lt(b->by_id.main.cap, 1u << 20);
	ud_db_free(b);
	ud_db_free(src);
	recs_free(&dump);
}

/* Both paths refuse recs with the same code and message. */
static void refused_alike(const struct recs *in, const char *why)
{
	struct ud_error ea = {0}, eb = {0};

	cr_assert_null(apply_each(in, &ea), "ud_db_apply accepted %s", why);
	cr_assert_null(load(in, weight(in), &eb), "the load accepted %s", why);
	cr_assert_eq(ea.code, UD_ECORRUPT);
	cr_assert_eq(eb.code, ea.code);
	cr_assert_str_eq(eb.message, ea.message);
	cr_assert(strstr(eb.message, why), "message \"%s\", want \"%s\"",
		  eb.message, why);
}

/* The dump of src with record `extra` of another dump inserted at `at`. */
static void crafted(const struct recs *src, size_t at, const struct ud_buf *x,
		    struct recs *out)
{
	for (size_t i = 0; i < src->n; i++) {
		if (i == at)
			recs_add(out, x->data, x->len);
		recs_add(out, src->items[i].data, src->items[i].len);
	}
}

Test(load, crafted_snapshot_repeating_an_id_is_refused)
{
	struct recs dump = {0}, bad = {0};
	ud_db *src = history(600);

	cr_assert_eq(ud_db_dump(src, recs_emit_cb, &dump), 0);
	/* user 5's put again, later: same id, no event */
	crafted(&dump, 400, &dump.items[6], &bad);
	refused_alike(&bad, "without an event");
	ud_db_free(src);
	recs_free(&dump);
	recs_free(&bad);
}

Test(load, crafted_snapshot_repeating_an_email_is_refused)
{
	struct recs dump = {0}, other = {0}, bad = {0};
	ud_db *src = history(600), *o = hdb_new(NULL);

	cr_assert_eq(ud_db_dump(src, recs_emit_cb, &dump), 0);
	/* another user whose email folds like src's user 5 */
	hdb_create(o, "Copy", "USER5@EXAMPLE.COM");
	cr_assert_eq(ud_db_dump(o, recs_emit_cb, &other), 0);
	crafted(&dump, 500, &other.items[1], &bad);
	refused_alike(&bad, "creates a second user with email");
	ud_db_free(src);
	ud_db_free(o);
	recs_free(&dump);
	recs_free(&other);
	recs_free(&bad);
}

/* What the first stage refuses (undecodable, a field rule) is reported
 * like ud_db_apply reports it, and only after the records before it. */
Test(load, first_stage_refusals_match_apply)
{
	struct recs dump = {0}, bad = {0}, bad2 = {0}, other = {0};
	struct ud_buf junk = {0}, dup = {0};
	ud_db *src = history(300), *o = hdb_new(NULL);

	cr_assert_eq(ud_db_dump(src, recs_emit_cb, &dump), 0);
	ud_buf_append(&junk, "\x93\x07\x01\x02", 4);
	crafted(&dump, 200, &junk, &bad);
	refused_alike(&bad, "undecodable change record");
	/* an earlier store refusal wins over a later decoding failure */
	hdb_create(o, "Copy", "user7@example.com");
	cr_assert_eq(ud_db_dump(o, recs_emit_cb, &other), 0);
	ud_buf_append(&dup, other.items[1].data, other.items[1].len);
	recs_free(&bad);
	crafted(&dump, 250, &junk, &bad);
	crafted(&bad, 100, &dup, &bad2);
	refused_alike(&bad2, "creates a second user with email");
	ud_db_free(src);
	ud_db_free(o);
	ud_buf_free(&junk);
	ud_buf_free(&dup);
	recs_free(&dump);
	recs_free(&other);
	recs_free(&bad);
	recs_free(&bad2);
}
