/*
 * pg_row.c -- rows of schema userdb <-> change records; see pg_row.h.
 */
#include "pg_row.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "codec.h"
#include "db.h"
#include "record.h"
#include "text.h"

#define BADROW(field, ...) ud_error_set(err, UD_EINVAL, field, __VA_ARGS__)

int pg_row_int(const char *s, size_t n, int64_t *out)
{
	char buf[24], *end;
	long long v;

	if (!s || n == 0 || n >= sizeof buf)
		return -1;
	memcpy(buf, s, n);
	buf[n] = 0;
	errno = 0;
	v = strtoll(buf, &end, 10);
	if (errno || *end)
		return -1;
	*out = v;
	return 0;
}

int pg_row_event_type(const char *s, size_t n)
{
	for (int t = 0; t < UD_EV__COUNT; t++) {
		const char *name = ud_event_name(t);
		if (name && strlen(name) == n && memcmp(name, s, n) == 0)
			return t;
	}
	return -1;
}

/* JSON text of an object column into msgpack appended to b. */
static int json_col(const struct pg_val *v, const char *field, struct ud_buf *b,
		    struct ud_error *err)
{
	json_error_t jerr;
	json_t *j;
	int rc;

	if (!v->s)
		return ud_buf_append(b, "\x80", 1); /* NULL reads as {} */
	j = json_loadb(v->s, v->n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
	if (!j)
		return BADROW(field, "%s: %s", field, jerr.text);
	if (!json_is_object(j)) {
		json_decref(j);
		return BADROW(field, "%s is not a JSON object", field);
	}
	rc = codec_json_to_mp(j, b, field, err);
	json_decref(j);
	return rc;
}

static int int_col(const struct pg_val *v, const char *field, int64_t lo,
		   int64_t hi, int64_t *out, struct ud_error *err)
{
	if (!v->s || pg_row_int(v->s, v->n, out) || *out < lo || *out > hi)
		return BADROW(field, "%s out of range", field);
	return 0;
}

static int user_numbers(const struct pg_val *v, struct record *r,
			struct ud_error *err)
{
	int64_t t[3], ver, failed;
	int rc;

	if ((rc = int_col(&v[PGU_SIGNIN_MS], "last_sign_in_at", -1, INT64_MAX,
			  &t[0], err)) ||
	    (rc = int_col(&v[PGU_CREATED_MS], "created_at", INT64_MIN,
			  INT64_MAX, &t[1], err)) ||
	    (rc = int_col(&v[PGU_UPDATED_MS], "updated_at", INT64_MIN,
			  INT64_MAX, &t[2], err)) ||
	    (rc = int_col(&v[PGU_VERSION], "version", 1, REC_COUNTER_MAX, &ver,
			  err)) ||
	    (rc = int_col(&v[PGU_FAILED], "failed_verifies", 0, UINT32_MAX,
			  &failed, err)))
		return rc;
	r->last_sign_in_ms = t[0];
	r->created_ms = t[1];
	r->updated_ms = t[2];
	r->etag = (uint64_t)ver;
	r->failed_verifies = (uint32_t)failed;
	return 0;
}

/* role and status by name; NULL or unknown is refused. */
static int enum_cols(const struct pg_val *v, struct record *r,
		     struct ud_error *err)
{
	int role =
	    v[PGU_ROLE].s ? ud_role_parse(v[PGU_ROLE].s, v[PGU_ROLE].n) : -1;
	int status = v[PGU_STATUS].s
			 ? ud_status_parse(v[PGU_STATUS].s, v[PGU_STATUS].n)
			 : -1;

	if (role < 0)
		return BADROW("role", "role is not admin, user or viewer");
	if (status < 0)
		return BADROW("status",
			      "status is not active, inactive or suspended");
	r->role = (unsigned)role & 3;
	r->status = (unsigned)status & 3;
	return 0;
}

int pg_row_put(const struct pg_val *v, uint64_t seq, int ev_type,
	       uint64_t ev_id, struct ud_buf *out, struct ud_error *err)
{
	struct ud_buf custom = {0}, ident = {0};
	struct record_parts p = {0};
	struct change ch = {.type = CH_PUT};
	int rc;

	if (!v[PGU_ID].s || !v[PGU_NAME].s || !v[PGU_EMAIL].s) {
		rc = BADROW("id", "id, name or email is NULL");
		goto done;
	}
	if ((rc = json_col(&v[PGU_CUSTOM], "custom_data", &custom, err)) ||
	    (rc = json_col(&v[PGU_IDENT], "identities", &ident, err)))
		goto done;
	p = (struct record_parts){
	    v[PGU_ID].s,     v[PGU_ID].n,     v[PGU_NAME].s,
	    v[PGU_NAME].n,   v[PGU_EMAIL].s,  v[PGU_EMAIL].n,
	    v[PGU_AVATAR].s, v[PGU_AVATAR].n, custom.data,
	    custom.len,	     ident.data,      ident.len,
	    v[PGU_PWHASH].s, v[PGU_PWHASH].n, false};
	ch.rec = record_new(&p);
	if (!ch.rec) {
		rc = BADROW("id", "a column is longer than a user holds");
		goto done;
	}
	if ((rc = user_numbers(v, ch.rec, err)) ||
	    (rc = enum_cols(v, ch.rec, err)))
		goto done;
	ch.rec->seq = seq;
	if (ev_type >= 0) {
		ch.has_event = true;
		ch.ev = (struct change_event){ev_id,
					      ev_type == UD_EV_CREATED
						  ? ch.rec->created_ms
						  : ch.rec->updated_ms,
					      ev_type, "\x80", 1};
	}
	rc = change_encode(&ch, out);
done:
	free(ch.rec);
	ud_buf_free(&custom);
	ud_buf_free(&ident);
	return rc;
}

int pg_row_event(const struct pg_val *v, struct pg_event *e,
		 struct ud_buf *details, struct ud_error *err)
{
	int64_t id, ms;
	int rc;

	if ((rc = int_col(&v[PGE_ID], "id", 1, REC_COUNTER_MAX, &id, err)) ||
	    (rc = int_col(&v[PGE_MS], "created_at", INT64_MIN, INT64_MAX, &ms,
			  err)))
		return rc;
	e->type = v[PGE_EVENT].s
		      ? pg_row_event_type(v[PGE_EVENT].s, v[PGE_EVENT].n)
		      : -1;
	if (e->type < 0)
		return BADROW("event", "unknown event");
	e->id = (uint64_t)id;
	e->ms = ms;
	e->details_off = details->len;
	rc = json_col(&v[PGE_DETAILS], "details", details, err);
	e->details_len = details->len - e->details_off;
	return rc;
}

int pg_row_log(const char *id, size_t id_len, bool deleted,
	       const struct pg_event *ev, size_t n,
	       const struct ud_buf *details, struct ud_buf *out)
{
	struct change ch = {.type = CH_LOG,
			    .id = id,
			    .id_len = id_len,
			    .deleted = deleted,
			    .nevents = n};
	int rc;

	ch.events = calloc(n ? n : 1, sizeof(*ch.events));
	if (!ch.events)
		return UD_ENOMEM;
	for (size_t i = 0; i < n; i++)
		ch.events[i] = (struct change_event){
		    ev[i].id, ev[i].ms, ev[i].type,
		    details->data + ev[i].details_off, ev[i].details_len};
	rc = change_encode(&ch, out);
	free(ch.events);
	return rc;
}

int pg_row_delete(const char *id, size_t id_len, uint64_t ev_id, int64_t ms,
		  struct ud_buf *out)
{
	struct change ch = {.type = CH_DEL,
			    .id = id,
			    .id_len = id_len,
			    .has_event = ev_id != 0,
			    .ev = {ev_id, ms, UD_EV_DELETED, "\x80", 1}};

	return change_encode(&ch, out);
}

/* days from 1970-01-01 to y-m-d (proleptic Gregorian) */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

int pg_row_time(const char *s, size_t n, int64_t *ms)
{
	char b[40];
	int y, mo, d, h, mi, sec, used = 0;
	int64_t frac = 0;

	if (!s || n >= sizeof b)
		return -1;
	memcpy(b, s, n);
	b[n] = 0;
	if (sscanf(b, "%4d-%2d-%2d %2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec,
		   &used) != 6)
		return -1;
	if (b[used] == '.') {
		int k = 0;
		for (used++; b[used] >= '0' && b[used] <= '9'; used++, k++)
			if (k < 3)
				frac = frac * 10 + (b[used] - '0');
		while (k++ < 3)
			frac *= 10;
	}
	if (strcmp(b + used, "+00") != 0 || mo < 1 || mo > 12 || d < 1 ||
	    d > 31)
		return -1;
	*ms = ((days_from_civil(y, (unsigned)mo, (unsigned)d) * 24 + h) * 60 +
	       mi) *
		  60000LL +
	      sec * 1000LL + frac;
	return 0;
}

int pg_row_counters(uint64_t last_etag, uint64_t last_event, int64_t last_ms,
		    struct ud_buf *out)
{
	struct change ch = {.type = CH_COUNTERS,
			    .last_etag = last_etag,
			    .last_event = last_event,
			    .last_ms = last_ms};

	return change_encode(&ch, out);
}

/* ---- records into rows -------------------------------------------------- */

/* Offsets into txt are stored first and turned into pointers at the end,
 * since txt may move while it grows. */
struct pb {
	struct pg_row_params *o;
	size_t off[PG_ROW_PARAMS];
	bool null[PG_ROW_PARAMS], in_txt[PG_ROW_PARAMS];
	int rc;
};

static void pb_raw(struct pb *b, const char *s, size_t n)
{
	int i = b->o->n++;

	b->null[i] = !s;
	b->o->p[i] = s;
	b->o->len[i] = (int)n;
}

static void pb_txt(struct pb *b, const char *s, size_t n)
{
	int i = b->o->n++;

	b->in_txt[i] = true;
	b->off[i] = b->o->txt.len;
	b->o->len[i] = (int)n;
	if (ud_buf_append(&b->o->txt, s, n) || ud_buf_append(&b->o->txt, "", 1))
		b->rc = UD_ENOMEM;
}

static void pb_int(struct pb *b, int64_t v)
{
	char t[24];

	pb_txt(b, t, (size_t)snprintf(t, sizeof t, "%lld", (long long)v));
}

static void pb_json(struct pb *b, const void *mp, size_t n)
{
	size_t at = b->o->txt.len;
	int i = b->o->n++;

	b->in_txt[i] = true;
	b->off[i] = at;
	if (!mp || !n)
		mp = "\x80", n = 1;
	if (codec_mp_to_json(mp, n, &b->o->txt) ||
	    ud_buf_append(&b->o->txt, "", 1))
		b->rc = b->rc ? b->rc : UD_EINVAL;
	b->o->len[i] = (int)(b->o->txt.len - at - 1);
}

static void pb_user(struct pb *b, const struct record *r)
{
	struct record_parts p;
	char fold[UD_EMAIL_MAX * 4 + 16], pwbuf[UD_PWHASH_MAX];
	const char *pw;
	size_t fn, pwn;

	record_parts(r, &p);
	pb_raw(b, p.id, p.id_len);
	pb_raw(b, p.name, p.name_len);
	pb_raw(b, p.email, p.email_len);
	fn = text_fold(p.email, p.email_len, fold, sizeof fold);
	if (fn > sizeof fold)
		b->rc = UD_EINVAL;
	pb_txt(b, fold, fn > sizeof fold ? 0 : fn);
	pb_raw(b, ud_role_name(r->role), strlen(ud_role_name(r->role)));
	pb_raw(b, ud_status_name(r->status), strlen(ud_status_name(r->status)));
	pb_raw(b, p.avatar, p.avatar_len);
	pb_json(b, p.custom, p.custom_len);
	pb_json(b, p.ident, p.ident_len);
	pw = record_parts_pw_text(&p, pwbuf, &pwn);
	if (pwn)
		pb_txt(b, pw, pwn);
	else
		pb_raw(b, NULL, 0);
	pb_int(b, r->last_sign_in_ms);
	pb_int(b, r->created_ms);
	pb_int(b, r->updated_ms);
	pb_int(b, (int64_t)r->etag);
	pb_int(b, r->failed_verifies);
}

static void pb_event(struct pb *b, const struct change_event *e)
{
	const char *name = ud_event_name(e->type);

	pb_raw(b, name, strlen(name));
	pb_int(b, e->ms);
	pb_json(b, e->details, e->details_len);
}

int pg_row_params(const void *rec, size_t n, uint64_t old_version,
		  uint32_t failed_verifies, struct pg_row_params *out)
{
	struct pb b = {.o = out};
	struct change ch;

	memset(out, 0, sizeof(*out));
	if (change_decode(rec, n, &ch))
		return UD_EINVAL;
	if (ch.type == CH_PUT && ch.has_event) {
		out->kind = old_version ? PGS_UPDATE : PGS_CREATE;
		pb_user(&b, ch.rec);
		pb_event(&b, &ch.ev);
		if (old_version)
			pb_int(&b, (int64_t)old_version);
	} else if ((ch.type == CH_DEL || ch.type == CH_EVENT) && ch.has_event) {
		out->kind = ch.type == CH_DEL ? PGS_DELETE : PGS_EVENT;
		pb_txt(&b, ch.id, ch.id_len);
		pb_int(&b, ch.type == CH_DEL ? (int64_t)old_version
					     : failed_verifies);
		pb_event(&b, &ch.ev);
	} else if (ch.type != CH_COUNTERS && ch.type != CH_ACTORS) {
		b.rc = UD_EINVAL;
	}
	/* CH_PUT's strings point into ch.rec, freed below: keep copies */
	for (int i = 0; i < out->n && !b.rc; i++)
		if (!b.in_txt[i] && !b.null[i]) {
			const char *s = out->p[i];
			b.in_txt[i] = true;
			b.off[i] = out->txt.len;
			if (ud_buf_append(&out->txt, s, (size_t)out->len[i]) ||
			    ud_buf_append(&out->txt, "", 1))
				b.rc = UD_ENOMEM;
		}
	for (int i = 0; i < out->n; i++)
		out->p[i] = b.null[i] ? NULL : out->txt.data + b.off[i];
	change_release(&ch);
	if (b.rc)
		ud_buf_free(&out->txt);
	return b.rc;
}
