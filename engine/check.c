/*
 * check.c -- ud_db_check(): the whole-store invariant checker (db.h).
 *
 * O(n) and allocation-free; tests call it after every mutation.  Each
 * failure names the broken invariant in err->message.
 */
#include <string.h>

#include "db.h"

#define FAIL(...) ud_error_set(err, UD_EINTERNAL, NULL, __VA_ARGS__)

struct walk {
	const ud_db *db;
	uint64_t n;
};

/* Every index entry is a live record sitting in its order slot. */
static int entry_live_cb(void *item, void *ctx)
{
	struct walk *w = ctx;
	const struct record *r = item;

	w->n++;
	if (r->slot >= w->db->order.len || w->db->order.items[r->slot] != r)
		return UD_EINTERNAL;
	return 0;
}

static int check_indexes(const ud_db *db, struct ud_error *err)
{
	struct walk w = {db, 0};

	if (index_check(&db->by_id) || index_check(&db->by_email))
		return FAIL("hash index layout broken");
	if (index_foreach(&db->by_id, entry_live_cb, &w) ||
	    w.n != db->order.live)
		return FAIL("id index and order disagree");
	w.n = 0;
	if (index_foreach(&db->by_email, entry_live_cb, &w) ||
	    w.n != db->order.live)
		return FAIL("email index and order disagree");
	return 0;
}

/* have: the signature stored for slot s. */
static int check_record(const ud_db *db, const struct record *r, uint32_t s,
			const struct sig *have, struct ud_error *err)
{
	const struct ulog *l = actlog_find(&db->log, record_id(r), r->id_len);
	struct sig g;

	if (r->slot != s)
		return FAIL("record slot %u is not its order slot %u", r->slot,
			    s);
	if (db->order.cells[s] != r->role * UD_STATUSES + r->status)
		return FAIL("order cell of slot %u is stale", s);
	sig_user(record_name(r), r->name_len, record_email(r), r->email_len,
		 &g);
	if (have->name != g.name || have->email != g.email)
		return FAIL("search signature of slot %u is stale", s);
	if (db_find(db, record_id(r), r->id_len) != r)
		return FAIL("id index misses slot %u", s);
	if (db_find_email(db, record_email(r), r->email_len) != r)
		return FAIL("email index misses slot %u", s);
	if (!!(r->flags & REC_HAS_LOG) != (l && !l->deleted))
		return FAIL("log flag of slot %u disagrees with the log", s);
	if (r->updated_ms < r->created_ms || r->etag > db->last_etag ||
	    r->seq > db->last_event)
		return FAIL("times or counters of slot %u out of range", s);
	return 0;
}

static int check_records(const ud_db *db, struct ud_error *err)
{
	uint64_t bytes = 0, implicit = 0;
	const struct record *r;
	struct sig sigs[64];
	size_t s;
	int rc;

	for (s = 0; s < db->order.len; s++) {
		if (s % 64 == 0)
			order_sig_block(&db->order, s, sigs);
		r = db->order.items[s];
		if (!r)
			continue;
		if ((rc = check_record(db, r, (uint32_t)s, &sigs[s % 64],
				       err)) != 0)
			return rc;
		bytes += record_size(r);
		implicit += !(r->flags & (REC_HAS_LOG | REC_LOADED));
	}
	if (bytes != db->record_bytes)
		return FAIL("record_bytes %llu, records hold %llu",
			    (unsigned long long)db->record_bytes,
			    (unsigned long long)bytes);
	if (implicit != db->implicit)
		return FAIL("implicit created events miscounted");
	return 0;
}

static int check_deleted_logs(const ud_db *db, struct ud_error *err)
{
	const struct ulog *l;

	for (l = db->log.fifo_head; l; l = l->next)
		if (db_find(db, l->id, l->id_len))
			return FAIL(
			    "a deleted user's log belongs to a live id");
	return 0;
}

int ud_db_check(ud_db *db, struct ud_error *err)
{
	int rc;

	if (order_check(&db->order))
		return FAIL("order array inconsistent");
	if ((rc = check_indexes(db, err)) != 0 ||
	    (rc = check_records(db, err)) != 0)
		return rc;
	if (actlog_check(&db->log))
		return FAIL("activity log inconsistent");
	if ((rc = check_deleted_logs(db, err)) != 0)
		return rc;
	if (cache_check(db))
		return FAIL("LRU list inconsistent");
	return 0;
}
