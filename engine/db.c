/*
 * db.c -- the store's lifecycle, lookups, applying changes and the
 * invariant checker (see db.h for the structure and invariants).
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <xxhash.h>

#include "db.h"
#include "password.h"
#include "text.h"

const struct ud_options ud_options_default = {
    .data_dir = NULL,
    .fsync = UD_FSYNC_EVERYSEC,
    .snapshot_interval = 300,
    .log_keep = UD_LOG_KEEP,
    .log_deleted_max = 100000,
};

static uint64_t id_hash(const void *item)
{
	const struct record *r = item;

	return XXH3_64bits(record_id(r), r->id_len);
}

static bool id_eq(const void *item, const void *key, size_t len)
{
	const struct record *r = item;

	return r->id_len == len && memcmp(record_id(r), key, len) == 0;
}

static uint64_t email_hash(const void *item)
{
	const struct record *r = item;

	return text_fold_hash(record_email(r), r->email_len);
}

static bool email_eq(const void *item, const void *key, size_t len)
{
	const struct record *r = item;

	return text_fold_equal(record_email(r), r->email_len, key, len);
}

ud_db *ud_db_new(const struct ud_options *opt, struct ud_error *err)
{
	uint64_t seed[3];
	ud_db *db;

	if (!opt)
		opt = &ud_options_default;
	if (opt->log_keep && opt->log_keep < UD_LOG_KEEP) {
		ud_error_set(err, UD_EINVAL, "log_keep",
			     "log_keep must be >= %d", UD_LOG_KEEP);
		return NULL;
	}
	db = calloc(1, sizeof(*db));
	if (!db) {
		ud_error_set(err, UD_ENOMEM, NULL, "out of memory");
		return NULL;
	}
	db->opts = *opt;
	if (!db->opts.log_keep)
		db->opts.log_keep = UD_LOG_KEEP;
	if (!db->opts.log_deleted_max)
		db->opts.log_deleted_max = 100000;
	password_init(); /* sodium_init(), for the hash seeds */
	randombytes_buf(seed, sizeof(seed));
	index_init(&db->by_id, id_hash, seed[0]);
	index_init(&db->by_email, email_hash, seed[1]);
	order_init(&db->order);
	db->fold2 = sig_fold2_table();
	actlog_init(&db->log, db->opts.log_keep, db->opts.log_deleted_max,
		    seed[2]);
	db->cache = opt->max_users || opt->max_bytes;
	if (cache_init(db)) {
		ud_db_free(db);
		ud_error_set(err, UD_ENOMEM, NULL, "out of memory");
		return NULL;
	}
	return db;
}

void ud_db_free(ud_db *db)
{
	size_t s;

	if (!db)
		return;
	if (db->ext_close)
		db->ext_close(db->ext);
	for (s = 0; s < db->order.len; s++)
		free(db->order.items[s]);
	index_destroy(&db->by_id);
	index_destroy(&db->by_email);
	order_destroy(&db->order);
	actlog_destroy(&db->log);
	actors_destroy(&db->actors);
	cache_destroy(db);
	ud_buf_free(&db->enc);
	free(db);
}

void ud_db_set_journal(ud_db *db, ud_journal_fn fn, void *ctx)
{
	db->journal = fn;
	db->journal_ctx = ctx;
}

void ud_db_set_ext(ud_db *db, void *ext, void (*close_fn)(void *ext))
{
	db->ext = ext;
	db->ext_close = close_fn;
}

void *ud_db_ext(ud_db *db)
{
	return db->ext;
}

void ud_db_stats(ud_db *db, struct ud_stats *out)
{
	int r, s;

	out->users = db->order.live;
	for (r = 0; r < UD_ROLES; r++)
		for (s = 0; s < UD_STATUSES; s++)
			out->by_role_status[r][s] =
			    db->order.cell_count[r * UD_STATUSES + s];
	out->record_bytes = db->record_bytes;
	out->log_events = db->log.events + db->implicit;
	out->evictions = db->evictions;
	out->cache_hits = db->cache_hits;
	out->cache_misses = db->cache_misses;
	out->loads = db->loads;
	out->load_failures = db->load_failures;
	out->failed_verifies = db->failed_verifies;
}

void db_keys_hash(const struct record *r, struct db_keys *k)
{
	k->id = XXH3_64bits(record_id(r), r->id_len);
	k->email = text_fold_hash(record_email(r), r->email_len);
	k->has_sig = false;
}

struct record *db_find(const ud_db *db, const char *id, size_t len)
{
	return db_find_hashed(db, id, len, XXH3_64bits(id, len));
}

struct record *db_find_email(const ud_db *db, const char *email, size_t len)
{
	return db_find_email_hashed(db, email, len, text_fold_hash(email, len));
}

struct record *db_find_hashed(const ud_db *db, const char *id, size_t len,
			      uint64_t h)
{
	return index_find(&db->by_id, h, id_eq, id, len);
}

struct record *db_find_email_hashed(const ud_db *db, const char *email,
				    size_t len, uint64_t h)
{
	return index_find(&db->by_email, h, email_eq, email, len);
}

int64_t db_now(const ud_db *db)
{
	int64_t now = time_now_ms();

	return now > db->last_ms ? now : db->last_ms;
}

int ud_user_foreach(ud_db *db, int (*fn)(const ud_user *u, void *ctx),
		    void *ctx)
{
	size_t s;
	int rc;

	for (s = 0; s < db->order.len; s++)
		if (db->order.items[s] &&
		    (rc = fn((const ud_user *)db->order.items[s], ctx)) != 0)
			return rc;
	return 0;
}

/* ---- applying changes --------------------------------------------------- */

static unsigned cell_of(const struct record *r)
{
	return r->role * UD_STATUSES + r->status;
}

static void raise_counters(ud_db *db, uint64_t etag, uint64_t event, int64_t ms)
{
	if (etag > db->last_etag)
		db->last_etag = etag;
	if (event > db->last_event)
		db->last_event = event;
	if (ms > db->last_ms)
		db->last_ms = ms;
}

static void moved_cb(void *item, uint32_t slot, void *ctx)
{
	((struct record *)item)->slot = slot;
}

/* Squeeze dead order slots when they outnumber live ones (amortised). */
static void maybe_compact(ud_db *db)
{
	struct record **saved = NULL;

	if (!order_should_compact(&db->order))
		return;
	if (db->cache && !(saved = cache_save(db)))
		return;
	order_compact(&db->order, moved_cb, NULL); /* on ENOMEM: retry later */
	if (saved)
		cache_restore(db, saved);
}

/* Give r (live, slot set) a log with its created event materialised. */
static struct ulog *user_log(ud_db *db, struct record *r)
{
	struct ulog *l;

	if (r->flags & REC_HAS_LOG)
		return actlog_find(&db->log, record_id(r), r->id_len);
	l = actlog_open(&db->log, record_id(r), r->id_len);
	if (!l)
		return NULL;
	actlog_revive(&db->log, l);
	if (!(r->flags & REC_LOADED)) {
		size_t dn;
		const void *d =
		    actors_created_details(&db->actors, r->seq, &dn);
		if (actlog_append(&db->log, l, r->seq, UD_EV_CREATED,
				  r->created_ms, d, dn))
			return NULL;
		db->implicit--;
	}
	r->flags |= REC_HAS_LOG;
	return l;
}

static int user_event(ud_db *db, struct record *r, const struct change_event *e)
{
	struct ulog *l = user_log(db, r);

	raise_counters(db, 0, e->id, e->ms);
	if (!l)
		return UD_ENOMEM;
	return actlog_append(&db->log, l, e->id, e->type, e->ms, e->details,
			     e->details_len);
}

/* The search signature of r's name and email. */
static void sig_of(const struct record *r, struct sig *g)
{
	sig_user(record_name(r), r->name_len, record_email(r), r->email_len, g);
}

static bool same_text(const struct record *a, const struct record *b)
{
	return a->name_len == b->name_len && a->email_len == b->email_len &&
	       memcmp(record_name(a), record_name(b),
		      a->name_len + a->email_len) == 0;
}

/* Insert a user that is not in the store.  Frees r on failure. */
static int put_new(ud_db *db, struct record *r, const struct change *ch,
		   const struct db_keys *k)
{
	struct ulog *l;
	struct sig g;

	if (db_find_email_hashed(db, record_email(r), r->email_len, k->email)) {
		free(r);
		return UD_ECORRUPT;
	}
	if (k->has_sig)
		g = k->sig;
	else
		sig_of(r, &g);
	if (order_append(&db->order, r, cell_of(r), &g, &r->slot)) {
		free(r);
		return UD_ENOMEM;
	}
	if (index_insert_hashed(&db->by_id, r, k->id) ||
	    index_insert_hashed(&db->by_email, r, k->email) ||
	    (db->cache && cache_insert(db, r))) {
		index_remove(&db->by_id, r);
		index_remove(&db->by_email, r);
		order_kill(&db->order, r->slot);
		free(r);
		return UD_ENOMEM;
	}
	db->record_bytes += record_size(r);
	r->flags &= ~REC_HAS_LOG;
	l = actlog_find_hashed(&db->log, record_id(r), r->id_len, k->id);
	if (l) { /* the id lives again: its kept log continues */
		actlog_revive(&db->log, l);
		r->flags |= REC_HAS_LOG;
		if (ch->has_event) {
			raise_counters(db, 0, ch->ev.id, ch->ev.ms);
			actlog_append(&db->log, l, ch->ev.id, ch->ev.type,
				      ch->ev.ms, ch->ev.details,
				      ch->ev.details_len);
		}
	} else {
		if (!(r->flags & REC_LOADED))
			db->implicit++;
		/* out of memory here only loses the implicit event's actor */
		if (ch->has_event && ch->ev.type == UD_EV_CREATED)
			(void)actors_note_created(&db->actors, r->seq,
						  ch->ev.details,
						  ch->ev.details_len);
		else if (ch->has_event)
			user_event(db, r, &ch->ev);
	}
	if (db->cache)
		cache_enforce(db, r);
	return 0;
}

/* Swap r in for old (same id).  Frees r on failure, old on success. */
static int put_replace(ud_db *db, struct record *old, struct record *r,
		       const struct change *ch, const struct db_keys *k)
{
	struct record *other =
	    db_find_email_hashed(db, record_email(r), r->email_len, k->email);
	struct sig g;

	if (other && other != old) {
		free(r);
		return UD_ECORRUPT;
	}
	if (!other) { /* the folded email changed */
		index_remove(&db->by_email, old);
		if (index_insert_hashed(&db->by_email, r, k->email)) {
			index_insert(&db->by_email, old);
			free(r);
			return UD_ENOMEM;
		}
	} else {
		index_replace(&db->by_email, old, r);
	}
	index_replace(&db->by_id, old, r);
	r->slot = old->slot;
	r->flags = (r->flags & (REC_AVATAR | REC_PW_PACKED)) |
		   (old->flags & (REC_HAS_LOG | REC_LOADED));
	order_set_item(&db->order, r->slot, r);
	order_set_cell(&db->order, r->slot, cell_of(r));
	if (!same_text(old, r)) {
		if (k->has_sig)
			g = k->sig;
		else
			sig_of(r, &g);
		order_set_sig(&db->order, r->slot, &g);
	}
	db->record_bytes += record_size(r) - record_size(old);
	free(old);
	if (db->cache) { /* a write is a use; a grown record may pass max_bytes
			  */
		cache_touch(db, r);
		cache_enforce(db, r);
	}
	if (ch->has_event)
		return user_event(db, r, &ch->ev);
	return 0;
}

static int apply_put(ud_db *db, struct change *ch, const struct db_keys *k)
{
	struct record *r = ch->rec, *old;
	struct db_keys own;

	ch->rec = NULL;
	if (r->role >= UD_ROLES || r->status >= UD_STATUSES) {
		free(r);
		return UD_ECORRUPT;
	}
	if (!k) {
		db_keys_hash(r, &own);
		k = &own;
	}
	raise_counters(db, r->etag, r->seq, r->updated_ms);
	raise_counters(db, 0, 0, r->last_sign_in_ms);
	old = db_find_hashed(db, record_id(r), r->id_len, k->id);
	if (old && ch->has_event && ch->ev.type == UD_EV_CREATED) {
		free(r); /* a second creation of a live id */
		return UD_ECORRUPT;
	}
	return old ? put_replace(db, old, r, ch, k) : put_new(db, r, ch, k);
}

void db_unlink(ud_db *db, struct record *r)
{
	index_remove(&db->by_id, r);
	index_remove(&db->by_email, r);
	if (db->cache)
		cache_remove(db, r);
	order_kill(&db->order, r->slot);
	db->record_bytes -= record_size(r);
	if (!(r->flags & (REC_HAS_LOG | REC_LOADED)))
		db->implicit--;
	free(r);
	maybe_compact(db);
}

static int apply_del(ud_db *db, const struct change *ch)
{
	struct record *r = db_find(db, ch->id, ch->id_len);
	struct ulog *l;

	if (!r)
		return UD_ECORRUPT;
	if (ch->has_event)
		user_event(db, r, &ch->ev);
	l = (r->flags & REC_HAS_LOG)
		? actlog_find(&db->log, record_id(r), r->id_len)
		: NULL;
	db_unlink(db, r);
	if (l)
		actlog_mark_deleted(&db->log, l);
	return 0;
}

static int apply_event(ud_db *db, const struct change *ch)
{
	struct record *r = db_find(db, ch->id, ch->id_len);

	if (!r || !ch->has_event)
		return UD_ECORRUPT;
	r->failed_verifies++;
	db->failed_verifies++;
	return user_event(db, r, &ch->ev);
}

static int apply_log(ud_db *db, const struct change *ch)
{
	struct record *r = db_find(db, ch->id, ch->id_len);
	struct ulog *l;
	size_t i;

	if (r && ch->deleted)
		return UD_ECORRUPT;
	l = actlog_open(&db->log, ch->id, ch->id_len);
	if (!l)
		return UD_ENOMEM;
	for (i = 0; i < ch->nevents; i++) {
		raise_counters(db, 0, ch->events[i].id, ch->events[i].ms);
		if (actlog_append(&db->log, l, ch->events[i].id,
				  ch->events[i].type, ch->events[i].ms,
				  ch->events[i].details,
				  ch->events[i].details_len))
			return UD_ENOMEM;
	}
	if (r && !(r->flags & REC_HAS_LOG)) {
		if (!(r->flags & REC_LOADED))
			db->implicit--;
		r->flags |= REC_HAS_LOG;
	}
	if (ch->deleted)
		actlog_mark_deleted(&db->log, l);
	return 0;
}

static int apply_actors(ud_db *db, const struct change *ch)
{
	size_t i;
	int rc = 0;

	actors_reset(&db->actors);
	for (i = 0; i < ch->nevents && !rc; i++)
		rc = actors_note_created(&db->actors, ch->events[i].id,
					 ch->events[i].details,
					 ch->events[i].details_len);
	return rc;
}

int db_apply_change(ud_db *db, struct change *ch)
{
	return db_apply_change_keys(db, ch, NULL);
}

int db_apply_change_keys(ud_db *db, struct change *ch, const struct db_keys *k)
{
	switch (ch->type) {
	case CH_COUNTERS:
		raise_counters(db, ch->last_etag, ch->last_event, ch->last_ms);
		if (ch->failed_verifies > db->failed_verifies)
			db->failed_verifies = ch->failed_verifies;
		return 0;
	case CH_PUT:
		return apply_put(db, ch, k);
	case CH_DEL:
		return apply_del(db, ch);
	case CH_EVENT:
		return apply_event(db, ch);
	case CH_LOG:
		return apply_log(db, ch);
	case CH_ACTORS:
		return apply_actors(db, ch);
	}
	return UD_ECORRUPT;
}

/* Allocate what applying a put may need, before the journal takes it: an
 * accepted change must not then fail for want of memory.  (Activity-log
 * entries are small and still allocated while applying.) */
static int reserve_put(ud_db *db)
{
	if (order_reserve(&db->order) || index_reserve(&db->by_id) ||
	    index_reserve(&db->by_email) || cache_reserve(db))
		return UD_ENOMEM;
	return 0;
}

int db_commit(ud_db *db, struct change *ch, struct ud_error *err)
{
	struct db_note note;
	int rc;

	/* The next etag and event id were taken as last + 1; at the top of
	 * their 48 bits (record.h) the store takes no more changes. */
	if (db->last_etag >= REC_COUNTER_MAX ||
	    db->last_event >= REC_COUNTER_MAX) {
		free(ch->rec);
		ch->rec = NULL;
		return ud_error_set(err, UD_EUNAVAILABLE, NULL,
				    "the store's change counters are used up");
	}
	if (ch->has_event &&
	    actors_merge(&db->actors, &ch->ev.details, &ch->ev.details_len)) {
		free(ch->rec);
		ch->rec = NULL;
		return ud_error_set(err, UD_ENOMEM, NULL, "out of memory");
	}
	if (ch->type == CH_PUT && reserve_put(db)) {
		free(ch->rec);
		ch->rec = NULL;
		return ud_error_set(err, UD_ENOMEM, NULL, "out of memory");
	}
	if (db->journal) {
		db->enc.len = 0;
		rc = change_encode(ch, &db->enc);
		if (!rc)
			rc = db->journal(db->journal_ctx, db->enc.data,
					 db->enc.len);
		if (rc) {
			free(ch->rec);
			ch->rec = NULL;
			return ud_error_set(err, rc, NULL,
					    "the change was not journaled: %s",
					    ud_code_name(rc));
		}
	}
	db_note_prepare(ch, &note);
	rc = db_apply_change(db, ch);
	if (rc)
		return ud_error_set(err, rc, NULL,
				    "applying the change failed");
	db_note_change(db, ch, &note);
	return 0;
}
