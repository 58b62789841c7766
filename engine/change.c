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
 * CH_COUNTERS, one CH_PUT (no event) per user in creation order, then one
 * CH_LOG per kept log: live users' first, then deleted users' in the order
 * they were deleted (so the FIFO of deleted logs comes back the same).
 */
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "codec.h"
#include "db.h"

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

static void pack_user(msgpack_packer *pk, const struct record *r)
{
	struct record_parts p;

	record_parts(r, &p);
	msgpack_pack_array(pk, USER_FIELDS);
	pack_str(pk, p.id, p.id_len);
	pack_str(pk, p.name, p.name_len);
	pack_str(pk, p.email, p.email_len);
	pack_str(pk, p.avatar, p.avatar_len);
	pack_bin(pk, p.custom, p.custom_len);
	pack_bin(pk, p.ident, p.ident_len);
	pack_str(pk, p.pw, p.pw_len);
	msgpack_pack_uint8(pk, r->role);
	msgpack_pack_uint8(pk, r->status);
	msgpack_pack_int64(pk, r->created_ms);
	msgpack_pack_int64(pk, r->updated_ms);
	msgpack_pack_int64(pk, r->last_sign_in_ms);
	msgpack_pack_uint64(pk, r->etag);
	msgpack_pack_uint64(pk, r->seq);
	msgpack_pack_uint32(pk, r->failed_verifies);
	if (r->flags & REC_LOADED)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
}

static void pack_opt_event(msgpack_packer *pk, const struct change *ch)
{
	if (ch->has_event)
		pack_event(pk, &ch->ev);
	else
		msgpack_pack_nil(pk);
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
		msgpack_pack_array(&pk, 3);
		msgpack_pack_int(&pk, CH_PUT);
		pack_user(&pk, ch->rec);
		pack_opt_event(&pk, ch);
		break;
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
	default:
		return UD_EINTERNAL;
	}
	return e.failed ? UD_ENOMEM : 0;
}

/* ---- decoding ------------------------------------------------------------ */

struct rd {
	struct codec_mp_cur c;
	bool bad;
};

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
	e->type = (int)rd_uint(r);
	e->ms = rd_int(r);
	e->details = rd_bytes(r, &e->details_len, false);
	if (e->type >= UD_EV__COUNT)
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
	u[0] = rd_uint(r);
	u[1] = rd_uint(r);
	for (i = 0; i < 3; i++)
		t[i] = rd_int(r);
	for (i = 2; i < 5; i++)
		u[i] = rd_uint(r);
	loaded = rd_bool(r);
	if (r->bad || u[0] >= UD_ROLES || u[1] >= UD_STATUSES ||
	    u[4] > UINT32_MAX || (rec = record_new(&p)) == NULL)
		return NULL;
	rec->role = (uint8_t)u[0];
	rec->status = (uint8_t)u[1];
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

static void rd_log(struct rd *r, struct change *ch)
{
	uint32_t n, i;
	bool has;

	ch->id = rd_bytes(r, &ch->id_len, false);
	ch->deleted = rd_bool(r);
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
	default:
		r->bad = true;
	}
}

int change_decode(const void *rec, size_t len, struct change *ch)
{
	struct rd r = {{rec, (const unsigned char *)rec + len}, false};
	uint32_t n;

	memset(ch, 0, sizeof(*ch));
	n = rd_array(&r, 0);
	if (n)
		ch->type = (int)rd_uint(&r);
	else
		r.bad = true;
	if (!r.bad)
		rd_body(&r, ch, n);
	if (r.bad || r.c.p != r.c.end) {
		change_release(ch);
		return UD_ECORRUPT;
	}
	return 0;
}

void change_release(struct change *ch)
{
	free(ch->rec);
	free(ch->events);
	ch->rec = NULL;
	ch->events = NULL;
}

int ud_db_apply(ud_db *db, const void *rec, size_t len, struct ud_error *err)
{
	struct change ch;
	int rc = change_decode(rec, len, &ch);

	if (rc)
		return ud_error_set(err, rc, NULL, "undecodable change record");
	rc = db_apply_change(db, &ch);
	change_release(&ch);
	if (rc)
		return ud_error_set(err, rc, NULL,
				    "change record does not fit the state");
	return 0;
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
