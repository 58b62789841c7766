/*
 * change.c -- the change record: encoding, decoding, ud_db_apply() and
 * ud_db_dump().
 *
 * A change record is one msgpack array whose first element is its type:
 *
 *   [0, last_etag, last_event, last_ms, failed_verifies]     CH_COUNTERS
 *   [1, user, event | nil]                                   CH_PUT
 *   [2, id, event]                                           CH_DEL
 *   [3, id, event]                                           CH_EVENT
 *   [4, id, deleted, [event, ...]]   (events oldest first)   CH_LOG
 *   [5, [event, ...]]    (runs: id = first seq, details)     CH_ACTORS
 *
 *   user  = [id, name, email, avatar | nil, custom_data (bin),
 *            identities (bin), password_hash | nil, role, status,
 *            created_ms, updated_ms, last_sign_in_ms, etag, seq,
 *            failed_verifies, loaded (bool)]
 *   event = [id, type, ms, details (bin)]
 *
 * Strings are msgpack str, embedded msgpack maps are bin.  A record is
 * self-contained: applying it needs no clock, no random ids and no
 * password hashing, so replay rebuilds exactly the same store.  A dump is
 * CH_COUNTERS, CH_ACTORS when there are runs (actor.h), one CH_PUT (no event)
 * per user in creation order, then one CH_LOG per kept log: live users' first,
 * then deleted users' in the order they were deleted (so the FIFO of deleted
 * logs comes back the same).
 */
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "codec.h"
#include "db.h"
#include "valid.h"

#define USER_FIELDS 16

/* ---- encoding ------------------------------------------------------------ */

static void pack_str(msgpack_packer *pk, const char *s, size_t n)
{
	if (!s) {
		msgpack_pack_nil(pk);
		return;
	}
	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
}

static void pack_bin(msgpack_packer *pk, const void *p, size_t n)
{
	msgpack_pack_bin(pk, n);
	msgpack_pack_bin_body(pk, p, n);
}

static void pack_event(msgpack_packer *pk, const struct change_event *e)
{
	msgpack_pack_array(pk, 4);
	msgpack_pack_uint64(pk, e->id);
	msgpack_pack_int(pk, e->type);
	msgpack_pack_int64(pk, e->ms);
	if (e->details && e->details_len)
		pack_bin(pk, e->details, e->details_len);
	else
		pack_bin(pk, "\x80", 1);
}

static void pack_opt_event(msgpack_packer *pk, const struct change *ch)
{
	if (ch->has_event)
		pack_event(pk, &ch->ev);
	else
		msgpack_pack_nil(pk);
}

/*
 * A put -- every user of a snapshot, every create and update in the log --
 * is written straight into reserved space rather than through msgpack-c's
 * packer, whose write callback ran once per field and per header (perf of
 * the snapshot writer at 1M users: the callback, ud_buf_append/reserve and
 * their copies ~50% of the child's time).  The bytes are msgpack-c's:
 * the same smallest forms (mpw_* in codec.h; tests/engine/test_db.c
 * compares the bytes).
 */
/* Headers (7 x 5), 7 integers (7 x 9), the array and type bytes, the
 * event's fixed part (4 + 3 x 9 + 5): 160 covers them. */
#define PUT_FIXED 160

static int encode_put(const struct change *ch, struct ud_buf *b)
{
	const struct record *r = ch->rec;
	struct record_parts pt;
	char *p, *start, pwbuf[UD_PWHASH_MAX];
	size_t need;

	record_parts(r, &pt);
	pt.pw = record_parts_pw_text(&pt, pwbuf, &pt.pw_len);
	need = PUT_FIXED + pt.id_len + pt.name_len + pt.email_len +
	       pt.avatar_len + pt.custom_len + pt.ident_len + pt.pw_len +
	       (ch->has_event ? ch->ev.details_len : 0);
	if (ud_buf_reserve(b, need))
		return UD_ENOMEM;
	p = start = b->data + b->len;
	*p++ = (char)0x93; /* [CH_PUT, user, event | nil] */
	*p++ = CH_PUT;
	*p++ = (char)0xdc; /* array 16: a fixarray holds at most 15 */
	p = mpw_be(p, USER_FIELDS, 2);
	p = mpw_raw(p, false, pt.id, pt.id_len);
	p = mpw_raw(p, false, pt.name, pt.name_len);
	p = mpw_raw(p, false, pt.email, pt.email_len);
	p = mpw_raw(p, false, pt.avatar, pt.avatar_len);
	p = mpw_raw(p, true, pt.custom, pt.custom_len);
	p = mpw_raw(p, true, pt.ident, pt.ident_len);
	p = mpw_raw(p, false, pt.pw, pt.pw_len);
	p = mpw_uint(p, r->role);
	p = mpw_uint(p, r->status);
	p = mpw_int(p, r->created_ms);
	p = mpw_int(p, r->updated_ms);
	p = mpw_int(p, r->last_sign_in_ms);
	p = mpw_uint(p, r->etag);
	p = mpw_uint(p, r->seq);
	p = mpw_uint(p, r->failed_verifies);
	*p++ = (char)((r->flags & REC_LOADED) ? 0xc3 : 0xc2);
	if (!ch->has_event) {
		*p++ = (char)0xc0;
	} else {
		*p++ = (char)0x94;
		p = mpw_uint(p, ch->ev.id);
		p = mpw_int(p, ch->ev.type);
		p = mpw_int(p, ch->ev.ms);
		p = ch->ev.details && ch->ev.details_len
			? mpw_raw(p, true, ch->ev.details, ch->ev.details_len)
			: mpw_raw(p, true, "\x80", 1);
	}
	b->len += (size_t)(p - start);
	return 0;
}

struct enc {
	struct ud_buf *b;
	bool failed;
};

static int enc_write_cb(void *data, const char *buf, size_t len)
{
	struct enc *e = data;

	if (!e->failed && ud_buf_append(e->b, buf, len))
		e->failed = true;
	return e->failed ? -1 : 0;
}

int change_encode(const struct change *ch, struct ud_buf *b)
{
	struct enc e = {b, false};
	msgpack_packer pk;
	size_t i;

	msgpack_packer_init(&pk, &e, enc_write_cb);
	switch (ch->type) {
	case CH_COUNTERS:
		msgpack_pack_array(&pk, 5);
		msgpack_pack_int(&pk, CH_COUNTERS);
		msgpack_pack_uint64(&pk, ch->last_etag);
		msgpack_pack_uint64(&pk, ch->last_event);
		msgpack_pack_int64(&pk, ch->last_ms);
		msgpack_pack_uint64(&pk, ch->failed_verifies);
		break;
	case CH_PUT:
		return encode_put(ch, b);
	case CH_DEL:
	case CH_EVENT:
		msgpack_pack_array(&pk, 3);
		msgpack_pack_int(&pk, ch->type);
		pack_str(&pk, ch->id, ch->id_len);
		pack_opt_event(&pk, ch);
		break;
	case CH_LOG:
		msgpack_pack_array(&pk, 4);
		msgpack_pack_int(&pk, CH_LOG);
		pack_str(&pk, ch->id, ch->id_len);
		if (ch->deleted)
			msgpack_pack_true(&pk);
		else
			msgpack_pack_false(&pk);
		msgpack_pack_array(&pk, ch->nevents);
		for (i = 0; i < ch->nevents; i++)
			pack_event(&pk, &ch->events[i]);
		break;
	case CH_ACTORS:
		msgpack_pack_array(&pk, 2);
		msgpack_pack_int(&pk, CH_ACTORS);
		msgpack_pack_array(&pk, ch->nevents);
		for (i = 0; i < ch->nevents; i++)
			pack_event(&pk, &ch->events[i]);
		break;
	default:
		return UD_EINTERNAL;
	}
	return e.failed ? UD_ENOMEM : 0;
}

/* ---- decoding ------------------------------------------------------------ */

struct rd {
	struct codec_mp_cur c;
	bool bad;
	const struct change_alloc *alloc; /* NULL: records are malloc'd */
	bool borrowed;			  /* the record came from alloc */
};

/* The record of p: in the caller's space when it has room, else malloc'd.
 * NULL when a length does not fit its field or out of memory. */
static struct record *rd_record(struct rd *r, const struct record_parts *p)
{
	size_t n = record_need(p);
	void *mem;

	if (!n)
		return NULL;
	mem = r->alloc ? r->alloc->alloc(r->alloc->ctx, n) : NULL;
	r->borrowed = mem != NULL;
	return mem ? record_init(mem, p) : record_new(p);
}

static bool rd_item(struct rd *r, struct codec_mp_item *it)
{
	if (r->bad || codec_mp_next(&r->c, it))
		r->bad = true;
	return !r->bad;
}

static uint64_t rd_uint(struct rd *r)
{
	struct codec_mp_item it;

	if (rd_item(r, &it) && it.type == CODEC_MP_UINT)
		return it.u;
	r->bad = true;
	return 0;
}

static int64_t rd_int(struct rd *r)
{
	struct codec_mp_item it;

	if (!rd_item(r, &it))
		return 0;
	if (it.type == CODEC_MP_INT)
		return it.i;
	if (it.type == CODEC_MP_UINT && it.u <= INT64_MAX)
		return (int64_t)it.u;
	r->bad = true;
	return 0;
}

static bool rd_bool(struct rd *r)
{
	struct codec_mp_item it;

	if (rd_item(r, &it) && it.type == CODEC_MP_BOOL)
		return it.b;
	r->bad = true;
	return false;
}

/* str or bin; nil gives NULL when nil_ok. */
static const char *rd_bytes(struct rd *r, size_t *n, bool nil_ok)
{
	struct codec_mp_item it;

	*n = 0;
	if (!rd_item(r, &it))
		return NULL;
	if (it.type == CODEC_MP_NIL && nil_ok)
		return NULL;
	if (it.type != CODEC_MP_STR && it.type != CODEC_MP_BIN) {
		r->bad = true;
		return NULL;
	}
	*n = it.n;
	return it.s;
}

static uint32_t rd_array(struct rd *r, uint32_t want)
{
	struct codec_mp_item it;

	if (rd_item(r, &it) && it.type == CODEC_MP_ARRAY &&
	    (!want || it.n == want))
		return it.n;
	r->bad = true;
	return 0;
}

/* An event array, or nil (has = false). */
static void rd_event(struct rd *r, struct change_event *e, bool *has)
{
	struct codec_mp_item it;
	uint64_t type;

	*has = false;
	if (!rd_item(r, &it))
		return;
	if (it.type == CODEC_MP_NIL && has)
		return;
	if (it.type != CODEC_MP_ARRAY || it.n != 4) {
		r->bad = true;
		return;
	}
	e->id = rd_uint(r);
	type = rd_uint(r);
	e->type = type < UD_EV__COUNT ? (int)type : 0;
	e->ms = rd_int(r);
	e->details = rd_bytes(r, &e->details_len, false);
	if (type >= UD_EV__COUNT)
		r->bad = true;
	*has = !r->bad;
}

static struct record *rd_user(struct rd *r)
{
	struct record_parts p;
	struct record *rec;
	int64_t t[3];
	uint64_t u[5];
	bool loaded;
	int i;

	if (rd_array(r, USER_FIELDS) != USER_FIELDS)
		return NULL;
	p.id = rd_bytes(r, &p.id_len, false);
	p.name = rd_bytes(r, &p.name_len, false);
	p.email = rd_bytes(r, &p.email_len, false);
	p.avatar = rd_bytes(r, &p.avatar_len, true);
	p.custom = rd_bytes(r, &p.custom_len, false);
	p.ident = rd_bytes(r, &p.ident_len, false);
	p.pw = rd_bytes(r, &p.pw_len, true);
	p.pw_packed = false; /* text in a change record */
	u[0] = rd_uint(r);
	u[1] = rd_uint(r);
	for (i = 0; i < 3; i++)
		t[i] = rd_int(r);
	for (i = 2; i < 5; i++)
		u[i] = rd_uint(r);
	loaded = rd_bool(r);
	/* Checked before they meet the header's bit-fields (record.h), which
	 * would keep only their low bits. */
	if (r->bad || u[0] >= UD_ROLES || u[1] >= UD_STATUSES ||
	    u[2] > REC_COUNTER_MAX || u[3] > REC_COUNTER_MAX ||
	    u[4] > UINT32_MAX || (rec = rd_record(r, &p)) == NULL)
		return NULL;
	rec->role = u[0] & 3;
	rec->status = u[1] & 3;
	rec->created_ms = t[0];
	rec->updated_ms = t[1];
	rec->last_sign_in_ms = t[2];
	rec->etag = u[2];
	rec->seq = u[3];
	rec->failed_verifies = (uint32_t)u[4];
	if (loaded)
		rec->flags |= REC_LOADED;
	return rec;
}

/* [event, ...] into ch->events. */
static void rd_events(struct rd *r, struct change *ch)
{
	uint32_t n, i;
	bool has;

	n = rd_array(r, 0);
	if (r->bad || n > UINT16_MAX)
		return;
	ch->events = calloc(n ? n : 1, sizeof(*ch->events));
	if (!ch->events) {
		r->bad = true;
		return;
	}
	for (i = 0; i < n && !r->bad; i++)
		rd_event(r, &ch->events[i], &has);
	ch->nevents = n;
}

static void rd_log(struct rd *r, struct change *ch)
{
	ch->id = rd_bytes(r, &ch->id_len, false);
	ch->deleted = rd_bool(r);
	rd_events(r, ch);
}

static void rd_body(struct rd *r, struct change *ch, uint32_t n)
{
	switch (ch->type) {
	case CH_COUNTERS:
		r->bad |= n != 5;
		ch->last_etag = rd_uint(r);
		ch->last_event = rd_uint(r);
		ch->last_ms = rd_int(r);
		ch->failed_verifies = rd_uint(r);
		break;
	case CH_PUT:
		r->bad |= n != 3;
		ch->rec = r->bad ? NULL : rd_user(r);
		r->bad |= !ch->rec;
		rd_event(r, &ch->ev, &ch->has_event);
		break;
	case CH_DEL:
	case CH_EVENT:
		r->bad |= n != 3;
		ch->id = rd_bytes(r, &ch->id_len, false);
		rd_event(r, &ch->ev, &ch->has_event);
		break;
	case CH_LOG:
		r->bad |= n != 4;
		rd_log(r, ch);
		break;
	case CH_ACTORS:
		r->bad |= n != 2;
		rd_events(r, ch);
		break;
	default:
		r->bad = true;
	}
}

int change_decode(const void *rec, size_t len, struct change *ch)
{
	return change_decode_with(rec, len, NULL, ch);
}

int change_decode_with(const void *rec, size_t len,
		       const struct change_alloc *alloc, struct change *ch)
{
	struct rd r = {
	    {rec, (const unsigned char *)rec + len}, false, alloc, false};
	uint64_t type;
	uint32_t n;

	memset(ch, 0, sizeof(*ch));
	n = rd_array(&r, 0);
	type = n ? rd_uint(&r) : 0;
	if (!n || type > CH_ACTORS)
		r.bad = true;
	ch->type = (int)(type & 0xff);
	if (!r.bad)
		rd_body(&r, ch, n);
	ch->rec_borrowed = ch->rec && r.borrowed;
	if (r.bad || r.c.p != r.c.end) {
		change_release(ch);
		return UD_ECORRUPT;
	}
	return 0;
}

void change_release(struct change *ch)
{
	if (!ch->rec_borrowed)
		free(ch->rec);
	ch->rec_borrowed = false;
	free(ch->events);
	ch->rec = NULL;
	ch->events = NULL;
}

/* ---- checking a decoded record against the store -------------------------
 *
 * A record whose checksum matched can still contradict the store (a bug, a
 * hand-edited file, a log spliced from another store).  ud_db_apply checks
 * everything the engine relies on BEFORE touching the store, so a refused
 * record changes nothing.  The rules are what the live path (ops.c,
 * cache.c) always produces:
 *   - fields follow SPEC §1 (valid_*); custom_data, identities and event
 *     details are well-formed msgpack maps without duplicate keys;
 *   - times lie in 0000..9999 (what ud_time_format can show), a user's
 *     updated >= created; counters and ids stay below 2^63;
 *   - every event carried by a put, delete or event record is newer than
 *     anything applied: id > last event id (hence > the user's newest);
 *     a put with an event has a new etag (> last etag);
 *   - a put of a new user: no user with its email, seq and created time not
 *     before the newest user's (creation order), an event (if any) is its
 *     user.created with id = seq and time = created; a put of an existing
 *     user keeps seq and created time, raises the etag, never lowers
 *     updated, may not take another user's email and carries an event
 *     (cache mode relaxes what unjournaled evictions make possible);
 *   - a delete or failed-verification event needs a live user;
 *   - a kept log (dump only): events oldest first with increasing ids, at
 *     least one; each id's log once; a live user's log is not deleted, a
 *     missing user's is. */

#define CH_MS_MIN (-62167219200000LL) /* 0000-01-01T00:00:00.000Z */
#define CH_MS_MAX 253402300799999LL   /* 9999-12-31T23:59:59.999Z */
#define CH_ID_MAX REC_COUNTER_MAX     /* etags, sequences, event ids */

#define BAD(...)                                                               \
	ud_error_set(err, UD_ECORRUPT, NULL, "change record: " __VA_ARGS__)

static bool ms_ok(int64_t ms)
{
	return ms >= CH_MS_MIN && ms <= CH_MS_MAX;
}

/* A stored msgpack map (custom_data, identities, details). */
static int check_map(const void *mp, size_t n, const char *what,
		     struct ud_error *err)
{
	struct ud_error e;

	if (codec_mp_check(mp, n, CODEC_WALK_DEPTH, SIZE_MAX, what, NULL, &e))
		return BAD("%s", e.message);
	return 0;
}

static int check_event(const struct change_event *e, struct ud_error *err)
{
	if (e->id == 0 || e->id > CH_ID_MAX)
		return BAD("event id %llu out of range",
			   (unsigned long long)e->id);
	if (!ms_ok(e->ms))
		return BAD("event %llu: time out of range",
			   (unsigned long long)e->id);
	if (e->details_len > UINT16_MAX)
		return BAD("event %llu: details too long",
			   (unsigned long long)e->id);
	return check_map(e->details, e->details_len, "event details", err);
}

/* An event (checked by check_event) that happens now: after the last. */
static int check_event_after(const ud_db *db, const struct change_event *e,
			     struct ud_error *err)
{
	if (e->id <= db->last_event)
		return BAD("event id %llu is not after the last one (%llu)",
			   (unsigned long long)e->id,
			   (unsigned long long)db->last_event);
	return 0;
}

/* An event that happens now (put, delete, failed verification). */
static int check_new_event(const ud_db *db, const struct change_event *e,
			   struct ud_error *err)
{
	int rc = check_event(e, err);

	return rc ? rc : check_event_after(db, e, err);
}

static int check_fields(const struct record *r, struct ud_error *err)
{
	struct record_parts p;
	struct ud_error e;
	char pwbuf[UD_PWHASH_MAX];

	record_parts(r, &p);
	p.pw = record_parts_pw_text(&p, pwbuf, &p.pw_len);
	if (valid_id(p.id, p.id_len, &e) ||
	    valid_name(p.name, p.name_len, &e) ||
	    valid_email(p.email, p.email_len, &e) ||
	    (p.avatar && valid_avatar(p.avatar, p.avatar_len, &e)) ||
	    valid_mp_object(p.custom, p.custom_len, "custom_data", &e) ||
	    (p.pw_len && valid_password_hash(p.pw, p.pw_len, &e)))
		return BAD("user %.*s: %s", (int)p.id_len, p.id, e.message);
	if (check_map(p.ident, p.ident_len, "identities", err))
		return UD_ECORRUPT;
	if (!ms_ok(r->created_ms) || !ms_ok(r->updated_ms) ||
	    !ms_ok(r->last_sign_in_ms) || r->updated_ms < r->created_ms)
		return BAD("user %.*s: times out of range", (int)p.id_len,
			   p.id);
	if (r->etag == 0 || r->seq == 0) /* the top: rd_user */
		return BAD("user %.*s: etag or seq out of range", (int)p.id_len,
			   p.id);
	return 0;
}

/* The most recently created live user, or NULL. */
static const struct record *newest_user(const ud_db *db)
{
	size_t s = db->order.len;

	while (s > 0)
		if (db->order.items[--s])
			return db->order.items[s];
	return NULL;
}

static int check_put_new(const ud_db *db, const struct change *ch,
			 const struct db_keys *k, struct ud_error *err)
{
	const struct record *r = ch->rec, *last;
	const struct change_event *e = &ch->ev;

	if (db_find_email_hashed(db, record_email(r), r->email_len, k->email))
		return BAD("creates a second user with email %.*s",
			   (int)r->email_len, record_email(r));
	if (ch->has_event && e->type != UD_EV_CREATED) {
		if (!db->cache) /* cache mode: evicted here, not when logged */
			return BAD("updates missing user %.*s", (int)r->id_len,
				   record_id(r));
		return 0;
	}
	last = newest_user(db);
	if (last && (r->seq <= last->seq ||
		     (r->created_ms < last->created_ms && !db->foreign)))
		return BAD("user %.*s is not newer than the newest user",
			   (int)r->id_len, record_id(r));
	if (ch->has_event && (e->id != r->seq || e->ms != r->created_ms ||
			      (r->flags & REC_LOADED)))
		return BAD("user.created event of %.*s disagrees with the user",
			   (int)r->id_len, record_id(r));
	return 0;
}

/* The rules a put's record obeys on its own: no store access. */
static int check_put_record(const struct change *ch, struct ud_error *err)
{
	int rc = check_fields(ch->rec, err);

	if (rc == 0 && ch->has_event)
		rc = check_event(&ch->ev, err);
	return rc;
}

/* The rest of a put's rules: against the store, after check_put_record. */
static int check_put(const ud_db *db, const struct change *ch,
		     const struct db_keys *k, struct ud_error *err)
{
	const struct record *r = ch->rec, *old, *other;
	int rc;

	if (ch->has_event) {
		if ((rc = check_event_after(db, &ch->ev, err)) != 0)
			return rc;
		if (r->etag <= db->last_etag && !db->foreign)
			return BAD("etag %llu is not after the last one (%llu)",
				   (unsigned long long)r->etag,
				   (unsigned long long)db->last_etag);
	}
	old = db_find_hashed(db, record_id(r), r->id_len, k->id);
	if (!old)
		return check_put_new(db, ch, k, err);
	if (ch->has_event && ch->ev.type == UD_EV_CREATED)
		return BAD("creates existing user %.*s", (int)r->id_len,
			   record_id(r));
	other =
	    db_find_email_hashed(db, record_email(r), r->email_len, k->email);
	if (other && other != old)
		return BAD("gives user %.*s the email of another user",
			   (int)r->id_len, record_id(r));
	if (db->cache)
		return 0; /* a replayed load may meet an unevicted user */
	if (!ch->has_event && !db->restore)
		return BAD("changes user %.*s without an event", (int)r->id_len,
			   record_id(r));
	if (r->seq != old->seq || r->created_ms != old->created_ms ||
	    (!db->foreign &&
	     (r->etag <= old->etag || r->updated_ms < old->updated_ms)))
		return BAD("user %.*s: seq, created time, etag or updated time "
			   "inconsistent with the stored user",
			   (int)r->id_len, record_id(r));
	return 0;
}

static int check_log(const ud_db *db, const struct change *ch,
		     struct ud_error *err)
{
	const struct record *r = db_find(db, ch->id, ch->id_len);
	struct ud_error e;
	size_t i;
	int rc;

	if (valid_id(ch->id, ch->id_len, &e))
		return BAD("log: %s", e.message);
	if (r ? ch->deleted : !ch->deleted)
		return BAD("log of %.*s: deleted flag disagrees with the store",
			   (int)ch->id_len, ch->id);
	if (actlog_find(&db->log, ch->id, ch->id_len))
		return BAD("log of %.*s given twice", (int)ch->id_len, ch->id);
	if (ch->nevents == 0)
		return BAD("log of %.*s is empty", (int)ch->id_len, ch->id);
	for (i = 0; i < ch->nevents; i++) {
		if ((rc = check_event(&ch->events[i], err)) != 0)
			return rc;
		if (i && ch->events[i].id <= ch->events[i - 1].id)
			return BAD("log of %.*s: event ids not increasing",
				   (int)ch->id_len, ch->id);
	}
	return 0;
}

static int check_actors(const struct change *ch, struct ud_error *err)
{
	size_t i;
	int rc;

	for (i = 0; i < ch->nevents; i++) {
		if ((rc = check_event(&ch->events[i], err)) != 0)
			return rc;
		if (i && ch->events[i].id <= ch->events[i - 1].id)
			return BAD("actor runs: first seqs not increasing");
	}
	return 0;
}

int change_check_record(const struct change *ch, struct ud_error *err)
{
	return ch->type == CH_PUT ? check_put_record(ch, err) : 0;
}

int change_check_store(const ud_db *db, const struct change *ch,
		       const struct db_keys *k, struct ud_error *err)
{
	const struct record *r;
	struct db_keys own;
	int rc;

	switch (ch->type) {
	case CH_COUNTERS:
		if (ch->last_etag > CH_ID_MAX || ch->last_event > CH_ID_MAX ||
		    !ms_ok(ch->last_ms))
			return BAD("counters out of range");
		return 0;
	case CH_PUT:
		if (!k) {
			db_keys_hash(ch->rec, &own);
			k = &own;
		}
		return check_put(db, ch, k, err);
	case CH_DEL:
	case CH_EVENT:
		r = db_find(db, ch->id, ch->id_len);
		if (!r)
			return BAD("%s missing user %.*s",
				   ch->type == CH_DEL ? "deletes" : "logs for",
				   (int)ch->id_len, ch->id);
		if (!ch->has_event && ch->type == CH_DEL && db->restore)
			return 0;
		if (!ch->has_event ||
		    ch->ev.type != (ch->type == CH_DEL
					? UD_EV_DELETED
					: UD_EV_PASSWORD_VERIFIED))
			return BAD("wrong or missing event for %.*s",
				   (int)ch->id_len, ch->id);
		if (ch->type == CH_EVENT && r->failed_verifies == UINT32_MAX)
			return BAD("failed verifications of %.*s overflow",
				   (int)ch->id_len, ch->id);
		if ((rc = check_new_event(db, &ch->ev, err)) != 0)
			return rc;
		return 0;
	case CH_LOG:
		return check_log(db, ch, err);
	case CH_ACTORS:
		return check_actors(ch, err);
	}
	return BAD("unknown type %d", ch->type);
}

int change_prepare(const void *rec, size_t len, bool sig,
		   const struct change_alloc *alloc, struct change *ch,
		   struct db_keys *k, struct ud_error *err)
{
	int rc = change_decode_with(rec, len, alloc, ch);

	if (rc)
		return ud_error_set(err, rc, NULL, "undecodable change record");
	rc = change_check_record(ch, err);
	if (rc) {
		change_release(ch);
		return rc;
	}
	if (ch->type == CH_PUT) {
		db_keys_hash(ch->rec, k);
		if (sig) {
			sig_user(record_name(ch->rec), ch->rec->name_len,
				 record_email(ch->rec), ch->rec->email_len,
				 &k->sig);
			k->has_sig = true;
		}
	}
	return 0;
}

int change_commit(ud_db *db, struct change *ch, const struct db_keys *k,
		  struct ud_error *err)
{
	int rc;

	if (ch->type != CH_PUT)
		k = NULL;
	rc = change_check_store(db, ch, k, err);
	if (rc == 0 && ch->rec_borrowed) { /* the store owns what it holds */
		struct record *own = record_dup(ch->rec);

		if (!own) {
			change_release(ch);
			return ud_error_set(err, UD_ENOMEM, NULL,
					    "out of memory");
		}
		ch->rec = own;
		ch->rec_borrowed = false;
	}
	if (rc == 0) {
		struct db_note note;

		db_note_prepare(ch, &note);

		rc = db_apply_change_keys(db, ch, k);
		if (rc)
			ud_error_set(err, rc, NULL,
				     "change record does not fit the state");
		else
			db_note_change(db, ch, &note);
	}
	change_release(ch);
	return rc;
}

int ud_db_apply(ud_db *db, const void *rec, size_t len, struct ud_error *err)
{
	struct change ch;
	struct db_keys k;
	int rc = change_prepare(rec, len, false, NULL, &ch, &k, err);

	return rc ? rc : change_commit(db, &ch, &k, err);
}

int ud_db_apply_foreign(ud_db *db, const void *rec, size_t len,
			struct ud_error *err)
{
	int rc;

	db->foreign = true;
	rc = ud_db_apply(db, rec, len, err);
	db->foreign = false;
	return rc;
}

int ud_db_restore(ud_db *db, const void *rec, size_t len, struct ud_error *err)
{
	int rc;

	db->restore = true;
	rc = ud_db_apply_foreign(db, rec, len, err);
	db->restore = false;
	return rc;
}

/* ---- dump ---------------------------------------------------------------- */

struct dumper {
	ud_db *db;
	ud_journal_fn emit;
	void *ctx;
	struct ud_buf b;
	struct change_event *evs; /* scratch, keep entries */
};

static int dump_emit(struct dumper *d, const struct change *ch)
{
	int rc;

	d->b.len = 0;
	rc = change_encode(ch, &d->b);
	return rc ? rc : d->emit(d->ctx, d->b.data, d->b.len);
}

static int dump_log(struct dumper *d, const struct ulog *l)
{
	struct change ch = {.type = CH_LOG};
	const struct event *e;
	uint32_t i;

	ch.id = l->id;
	ch.id_len = l->id_len;
	ch.deleted = l->deleted;
	ch.events = d->evs;
	ch.nevents = l->count;
	for (i = 0; i < l->count; i++) { /* oldest first */
		e = actlog_event(l, l->count - 1 - i);
		d->evs[i] = (struct change_event){e->id, e->ms, e->type,
						  e->details, e->details_len};
	}
	return dump_emit(d, &ch);
}

static int dump_users(struct dumper *d, bool logs)
{
	struct change ch = {.type = CH_PUT};
	const struct order *o = &d->db->order;
	struct record *r;
	size_t s;
	int rc;

	for (s = 0; s < o->len; s++) {
		if (!(r = o->items[s]))
			continue;
		if (!logs) {
			ch.rec = r;
			rc = dump_emit(d, &ch);
		} else if (r->flags & REC_HAS_LOG) {
			rc = dump_log(d, actlog_find(&d->db->log, record_id(r),
						     r->id_len));
		} else {
			rc = 0;
		}
		if (rc)
			return rc;
	}
	return 0;
}

static int dump_actors(struct dumper *d)
{
	const struct actors *a = &d->db->actors;
	struct change ch = {.type = CH_ACTORS};
	size_t i;
	int rc;

	ch.events = malloc(a->n_runs * sizeof(*ch.events));
	if (!ch.events)
		return UD_ENOMEM;
	ch.nevents = a->n_runs;
	for (i = 0; i < a->n_runs; i++) {
		const struct actor_run *run = &a->runs[i];
		ch.events[i] = (struct change_event){run->first_seq, 0,
						     UD_EV_CREATED, "\x80", 1};
		if (run->name != ACTOR_NONE) {
			ch.events[i].details = a->names[run->name].data;
			ch.events[i].details_len = a->names[run->name].len;
		}
	}
	rc = dump_emit(d, &ch);
	free(ch.events);
	return rc;
}

int ud_db_dump(ud_db *db, ud_journal_fn emit, void *ctx)
{
	struct dumper d = {db, emit, ctx, {0}, NULL};
	struct change ch = {.type = CH_COUNTERS};
	const struct ulog *l;
	int rc;

	d.evs = malloc(db->opts.log_keep * sizeof(*d.evs));
	if (!d.evs)
		return UD_ENOMEM;
	ch.last_etag = db->last_etag;
	ch.last_event = db->last_event;
	ch.last_ms = db->last_ms;
	ch.failed_verifies = db->failed_verifies;
	rc = dump_emit(&d, &ch);
	if (!rc && db->actors.n_runs)
		rc = dump_actors(&d);
	if (!rc)
		rc = dump_users(&d, false);
	if (!rc)
		rc = dump_users(&d, true);
	for (l = db->log.fifo_head; l && !rc; l = l->next)
		rc = dump_log(&d, l);
	ud_buf_free(&d.b);
	free(d.evs);
	return rc;
}
