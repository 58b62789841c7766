/*
 * test_stream.c -- the engine's side of the change stream (stream.c): the
 * listener hears every change with seq = event id, in order, with the user
 * after it; ud_change_decode reads the same change back out of each log
 * record; ud_db_apply (the entry point of a follower that is given its
 * seqs) reports the same changes.
 */
#define _GNU_SOURCE /* memmem */
#include <string.h>

#include <criterion/criterion.h>

#include "helper_db.h"

#define MAXCH 64

struct heard {
	size_t n;
	uint64_t seq[MAXCH];
	int event[MAXCH];
	int64_t at[MAXCH];
	char uid[MAXCH][UD_ID_MAX + 1];
	bool has_user[MAXCH];
	bool actor[MAXCH]; /* details name an actor */
};

static void listen_cb(void *ctx, const struct ud_change *c)
{
	struct heard *h = ctx;

	cr_assert_lt(h->n, MAXCH);
	h->seq[h->n] = c->seq;
	h->event[h->n] = c->event;
	h->at[h->n] = c->at_ms;
	cr_assert_leq(c->user_id_len, UD_ID_MAX);
	memcpy(h->uid[h->n], c->user_id, c->user_id_len);
	h->uid[h->n][c->user_id_len] = 0;
	h->has_user[h->n] = c->user != NULL;
	if (c->user) { /* the user after the change is this user */
		struct ud_user_view v;
		ud_user_view(c->user, &v);
		cr_assert_eq(v.id_len, c->user_id_len);
		cr_assert(!memcmp(v.id, c->user_id, v.id_len));
	}
	h->actor[h->n] =
	    c->details_len && memmem(c->details, c->details_len, "actor", 5);
	h->n++;
}

/* Every journaled record, kept. */
struct tape {
	size_t n;
	struct ud_buf rec[MAXCH];
};

static int tape_cb(void *ctx, const void *rec, size_t len)
{
	struct tape *t = ctx;

	cr_assert_lt(t->n, MAXCH);
	cr_assert_eq(ud_buf_append(&t->rec[t->n++], rec, len), 0);
	return 0;
}

/* One of each change: create, update, suspend, identity link and unlink,
 * a good and a failed verification, delete.  Returns how many. */
static size_t one_of_each(ud_db *db, char *id)
{
	struct ud_error err = {0};
	struct ud_fields f = hdb_fields("n2", "a@x.com");
	size_t n = strlen(hdb_id(hdb_create(db, "Ann", "a@x.com"), id));

	f.set = UD_F_NAME;
	cr_assert_eq(ud_user_update(db, id, n, &f, 0, NULL, &err), 0, "%s",
		     err.message);
	cr_assert_eq(ud_set_actor(db, "svc", 3), 0);
	cr_assert_eq(ud_user_set_suspended(db, id, n, true, NULL, &err), 0);
	cr_assert_eq(ud_user_link_identity(db, id, n, "github", 6, "g1", 2,
					   "\x80", 1, NULL, &err),
		     0, "%s", err.message);
	cr_assert_eq(
	    ud_user_unlink_identity(db, id, n, "github", 6, NULL, &err), 0);
	cr_assert_eq(ud_user_record_verify(db, id, n, true, &err), 0);
	cr_assert_eq(ud_user_record_verify(db, id, n, false, &err), 0);
	cr_assert_eq(ud_user_delete(db, id, n, 0, &err), 0);
	return 8;
}

Test(stream, every_change_once_in_order_with_seq_the_event_id)
{
	ud_db *db = hdb_new(NULL);
	struct heard h = {0};
	char id[UD_ID_MAX + 1];
	static const int want[] = {
	    UD_EV_CREATED,	     UD_EV_UPDATED,
	    UD_EV_SUSPENDED,	     UD_EV_IDENTITY_LINKED,
	    UD_EV_IDENTITY_REMOVED,  UD_EV_PASSWORD_VERIFIED,
	    UD_EV_PASSWORD_VERIFIED, UD_EV_DELETED};

	ud_db_set_changes(db, listen_cb, &h);
	cr_assert_eq(ud_db_last_seq(db), 0);
	size_t n = one_of_each(db, id);
	cr_assert_eq(h.n, n);
	for (size_t i = 0; i < n; i++) {
		cr_assert_eq(h.seq[i], i + 1, "seq %zu", i);
		cr_assert_eq(h.event[i], want[i], "event %zu", i);
		cr_assert_str_eq(h.uid[i], id);
		cr_assert_eq(h.has_user[i], i + 1 < n, "user after %zu", i);
		cr_assert_eq(h.actor[i], i >= 2, "actor of %zu", i);
		if (i)
			cr_assert_geq(h.at[i], h.at[i - 1]);
	}
	cr_assert_eq(ud_db_last_seq(db), n);
	/* a refused write is no change */
	struct ud_error err;
	cr_assert_neq(ud_user_delete(db, id, strlen(id), 0, &err), 0);
	cr_assert_eq(h.n, n);
	ud_db_free(db);
}

Test(stream, log_records_decode_to_the_same_changes_and_apply_reports_them)
{
	ud_db *db = hdb_new(NULL), *follower = hdb_new(NULL);
	struct heard live = {0}, applied = {0};
	struct tape t = {0};
	struct ud_error err = {0};
	char id[UD_ID_MAX + 1];

	ud_db_set_changes(db, listen_cb, &live);
	ud_db_set_journal(db, tape_cb, &t);
	size_t n = one_of_each(db, id);
	cr_assert_eq(t.n, n, "one log record per change");
	ud_db_set_changes(follower, listen_cb, &applied);
	for (size_t i = 0; i < t.n; i++) {
		struct ud_change c;
		void *own;

		/* decoded against the follower before it applies the record:
		 * a failed verification then finds its user there */
		cr_assert_eq(ud_change_decode(follower, t.rec[i].data,
					      t.rec[i].len, &c, &own),
			     0);
		cr_assert_eq(c.seq, live.seq[i]);
		cr_assert_eq(c.event, live.event[i]);
		cr_assert_eq(c.at_ms, live.at[i]);
		cr_assert_eq(c.user_id_len, strlen(id));
		cr_assert(!memcmp(c.user_id, id, c.user_id_len));
		cr_assert_eq(c.user != NULL, live.has_user[i], "user %zu", i);
		ud_change_release(own);
		cr_assert_eq(
		    ud_db_apply(follower, t.rec[i].data, t.rec[i].len, &err), 0,
		    "%s", err.message);
	}
	cr_assert_eq(applied.n, n);
	cr_assert(!memcmp(applied.seq, live.seq, sizeof live.seq));
	cr_assert(!memcmp(applied.event, live.event, sizeof live.event));
	cr_assert_eq(ud_db_last_seq(follower), n);
	/* not a change, and garbage */
	struct ud_change c;
	void *own;
	cr_assert_eq(ud_change_decode(db, "\x91\x00", 2, &c, &own),
		     UD_ECORRUPT);
	for (size_t i = 0; i < t.n; i++)
		ud_buf_free(&t.rec[i]);
	ud_db_free(db);
	ud_db_free(follower);
}
