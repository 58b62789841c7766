/*
 * record.c -- building and reading the compact user record (record.h).
 */
#include <stdlib.h>
#include <string.h>

#include "pwpack.h"
#include "record.h"

static const char empty_map[1] = {(char)0x80};

static char *put(char *dst, const void *src, size_t n)
{
	if (n)
		memcpy(dst, src, n);
	return dst + n;
}

static int parts_fit(const struct record_parts *p)
{
	return p->id_len >= 1 && p->id_len <= REC_ID_LEN_MAX &&
	       p->email_len <= REC_EMAIL_LEN_MAX &&
	       p->name_len <= REC_NAME_LEN_MAX &&
	       p->avatar_len <= REC_AVATAR_LEN_MAX &&
	       p->custom_len <= REC_CUSTOM_LEN_MAX &&
	       p->ident_len <= REC_IDENT_LEN_MAX && p->pw_len <= REC_PW_LEN_MAX;
}

/* The stored form of parts: absent maps are {}, absent strings empty, a
 * text hash packed into pw_buf[PWPACK_MAX] when it packs exactly. */
static void parts_norm(struct record_parts *p, uint8_t *pw_buf)
{
	if (!p->custom || !p->custom_len) {
		p->custom = empty_map;
		p->custom_len = 1;
	}
	if (!p->ident || !p->ident_len) {
		p->ident = empty_map;
		p->ident_len = 1;
	}
	if (!p->pw)
		p->pw_len = 0;
	if (p->pw_len && !p->pw_packed) {
		size_t n = pwpack_encode(p->pw, p->pw_len, pw_buf);
		if (n) {
			p->pw = (const char *)pw_buf;
			p->pw_len = n;
			p->pw_packed = true;
		}
	}
	if (!p->pw_len)
		p->pw_packed = false;
	if (!p->avatar)
		p->avatar_len = 0;
}

size_t record_need(const struct record_parts *in)
{
	struct record_parts p = *in;
	uint8_t pw_buf[PWPACK_MAX];

	parts_norm(&p, pw_buf);
	if (!parts_fit(&p))
		return 0;
	return sizeof(struct record) + p.id_len + p.name_len + p.email_len +
	       p.avatar_len + p.custom_len + p.ident_len + p.pw_len;
}

struct record *record_init(void *mem, const struct record_parts *in)
{
	struct record_parts p = *in;
	struct record *r = mem;
	uint8_t pw_buf[PWPACK_MAX];
	char *w;

	parts_norm(&p, pw_buf);
	memset(r, 0, sizeof(*r));
	r->id_len = p.id_len & REC_ID_LEN_MAX;
	r->name_len = p.name_len & REC_NAME_LEN_MAX;
	r->email_len = p.email_len & REC_EMAIL_LEN_MAX;
	r->avatar_len = p.avatar_len & REC_AVATAR_LEN_MAX;
	r->custom_len = p.custom_len & REC_CUSTOM_LEN_MAX;
	r->ident_len = p.ident_len & REC_IDENT_LEN_MAX;
	r->pw_len = p.pw_len & REC_PW_LEN_MAX;
	r->last_sign_in_ms = -1;
	if (p.avatar)
		r->flags |= REC_AVATAR;
	if (p.pw_packed)
		r->flags |= REC_PW_PACKED;
	w = put(r->data, p.id, p.id_len);
	w = put(w, p.name, p.name_len);
	w = put(w, p.email, p.email_len);
	w = put(w, p.avatar, p.avatar_len);
	w = put(w, p.custom, p.custom_len);
	w = put(w, p.ident, p.ident_len);
	put(w, p.pw, p.pw_len);
	return r;
}

struct record *record_new(const struct record_parts *p)
{
	size_t n = record_need(p);
	void *mem = n ? malloc(n) : NULL;

	return mem ? record_init(mem, p) : NULL;
}

void record_parts(const struct record *r, struct record_parts *p)
{
	p->id = record_id(r);
	p->id_len = r->id_len;
	p->name = record_name(r);
	p->name_len = r->name_len;
	p->email = record_email(r);
	p->email_len = r->email_len;
	p->avatar = (r->flags & REC_AVATAR) ? record_avatar(r) : NULL;
	p->avatar_len = r->avatar_len;
	p->custom = record_custom(r);
	p->custom_len = r->custom_len;
	p->ident = record_ident(r);
	p->ident_len = r->ident_len;
	p->pw = r->pw_len ? record_pw(r) : NULL;
	p->pw_len = r->pw_len;
	p->pw_packed = (r->flags & REC_PW_PACKED) != 0;
}

const char *record_parts_pw_text(const struct record_parts *p,
				 char out[UD_PWHASH_MAX], size_t *len)
{
	if (!p->pw_len || !p->pw) {
		*len = 0;
		return NULL;
	}
	if (!p->pw_packed) {
		*len = p->pw_len;
		return p->pw;
	}
	/* Packed only when it unpacks exactly (pwpack_encode), so this
	 * cannot fail for a record built here. */
	*len = pwpack_decode((const uint8_t *)p->pw, p->pw_len, out);
	return out;
}

size_t record_size(const struct record *r)
{
	return sizeof(*r) + r->id_len + r->name_len + r->email_len +
	       r->avatar_len + r->custom_len + r->ident_len + r->pw_len;
}

struct record *record_dup(const struct record *r)
{
	size_t n = record_size(r);
	struct record *c = malloc(n);

	if (c)
		memcpy(c, r, n);
	return c;
}

void record_view(const struct record *r, struct ud_user_view *v)
{
	v->id = record_id(r);
	v->id_len = r->id_len;
	v->name = record_name(r);
	v->name_len = r->name_len;
	v->email = record_email(r);
	v->email_len = r->email_len;
	v->role = r->role;
	v->status = r->status;
	v->avatar = (r->flags & REC_AVATAR) ? record_avatar(r) : NULL;
	v->avatar_len = v->avatar ? r->avatar_len : 0;
	v->custom_data = record_custom(r);
	v->custom_data_len = r->custom_len;
	v->identities = record_ident(r);
	v->identities_len = r->ident_len;
	v->has_password = r->pw_len > 0;
	v->created_ms = r->created_ms;
	v->updated_ms = r->updated_ms;
	v->last_sign_in_ms = r->last_sign_in_ms;
	v->etag = r->etag;
}
