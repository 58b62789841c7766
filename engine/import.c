/*
 * import.c -- ud_user_import: a create with given times; see import.h.
 */
#include "import.h"

#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "codec.h"
#include "db.h"
#include "text.h"

static int64_t newest_created(const ud_db *db)
{
	size_t s = db->order.len;

	while (s > 0)
		if (db->order.items[--s])
			return ((const struct record *)db->order.items[s])
			    ->created_ms;
	return INT64_MIN;
}

/* Resolve x's times against the store into r; 0 or UD_EINVAL. */
static int import_times(ud_db *db, const struct ud_import_extra *x,
			struct record *r, struct ud_error *err)
{
	int64_t now = db_now(db), newest = newest_created(db);
	int64_t c = x->created_ms == UD_IMPORT_NO_TIME ? now : x->created_ms;
	int64_t u = x->updated_ms == UD_IMPORT_NO_TIME ? c : x->updated_ms;
	int64_t l =
	    x->last_sign_in_ms == UD_IMPORT_NO_TIME ? -1 : x->last_sign_in_ms;

	if (c > now)
		return ud_error_set(err, UD_EINVAL, "created_at",
				    "created_at is in the future");
	if (c < newest)
		return ud_error_set(err, UD_EINVAL, "created_at",
				    "created_at is before the newest user's: "
				    "users are kept in creation order, so "
				    "import them oldest first");
	if (u < c || u > now)
		return ud_error_set(err, UD_EINVAL, "updated_at",
				    "updated_at must lie between created_at "
				    "and now");
	if (l > now || (l < 0 && l != -1))
		return ud_error_set(err, UD_EINVAL, "last_sign_in_at",
				    "last_sign_in_at must lie between 1970 "
				    "and now");
	r->created_ms = c;
	r->updated_ms = u;
	r->last_sign_in_ms = l;
	return 0;
}

/* What both kinds of import line must satisfy without the store. */
static int import_check_line(ud_db *db, const struct ud_fields *f,
			     const struct ud_import_extra *x,
			     struct ud_error *err)
{
	int rc = x->checked ? 0 : ud_fields_validate(f, true, err);

	(void)db;
	if (rc)
		return rc;
	if (f->set & UD_F_PASSWORD)
		return ud_error_set(err, UD_EINVAL, "password",
				    "an import takes password_hash, not a "
				    "plain password");
	if (x->identities && x->identities_len > UD_IDENTITIES_MAX)
		return ud_error_set(err, UD_EINVAL, "identities",
				    "identities over 1 MiB");
	if (x->identities &&
	    (rc = codec_mp_check(x->identities, x->identities_len,
				 CODEC_MAX_DEPTH, SIZE_MAX, "identities", NULL,
				 err)) != 0)
		return rc;
	return 0;
}

static int import_check(ud_db *db, const struct ud_fields *f,
			const struct ud_import_extra *x, struct ud_error *err)
{
	int rc = import_check_line(db, f, x, err);

	if (rc)
		return rc;
	if ((f->set & UD_F_ID) && db_find(db, f->id, f->id_len))
		return ud_error_set(err, UD_EDUPID, "id",
				    "a user with this id exists");
	if (db_find_email(db, f->email, f->email_len))
		return ud_error_set(err, UD_EDUPEMAIL, "email",
				    "a user with this email exists");
	return 0;
}

static void import_parts(const struct ud_fields *f,
			 const struct ud_import_extra *x,
			 struct record_parts *p, char *gen, const ud_db *db)
{
	memset(p, 0, sizeof(*p));
	p->name = f->name, p->name_len = f->name_len;
	p->email = f->email, p->email_len = f->email_len;
	if ((f->set & UD_F_AVATAR) && f->avatar)
		p->avatar = f->avatar, p->avatar_len = f->avatar_len;
	if (f->set & UD_F_CUSTOM_DATA)
		p->custom = f->custom_data, p->custom_len = f->custom_data_len;
	if (x->identities)
		p->ident = x->identities, p->ident_len = x->identities_len;
	if (f->set & UD_F_PASSWORD_HASH)
		p->pw = f->password_hash, p->pw_len = f->password_hash_len;
	if (f->set & UD_F_ID) {
		p->id = f->id, p->id_len = f->id_len;
		return;
	}
	do
		id_generate(gen);
	while (db_find(db, gen, UD_ID_GEN_LEN));
	p->id = gen, p->id_len = UD_ID_GEN_LEN;
}

int ud_user_import(ud_db *db, const struct ud_fields *f,
		   const struct ud_import_extra *x, const ud_user **out,
		   struct ud_error *err)
{
	char gen[UD_ID_GEN_LEN];
	struct record_parts p;
	struct change ch = {.type = CH_PUT, .has_event = true};
	struct record *r;
	int rc = import_check(db, f, x, err);

	if (rc)
		return rc;
	import_parts(f, x, &p, gen, db);
	r = record_new(&p);
	if (!r)
		return ud_error_set(err, UD_ENOMEM, NULL, "out of memory");
	if ((rc = import_times(db, x, r, err)) != 0) {
		free(r);
		return rc;
	}
	r->role = (f->set & UD_F_ROLE) ? ud_role_parse(f->role, f->role_len)
				       : UD_ROLE_USER;
	r->status = (f->set & UD_F_STATUS)
			? ud_status_parse(f->status, f->status_len)
			: UD_STATUS_ACTIVE;
	r->etag = db->last_etag + 1;
	r->seq = db->last_event + 1;
	ch.rec = r;
	ch.ev.id = r->seq;
	ch.ev.ms = r->created_ms;
	ch.ev.type = UD_EV_CREATED;
	rc = db_commit(db, &ch, err);
	if (rc == 0 && out)
		*out = (const ud_user *)r;
	return rc;
}

/* ---- on_conflict=update -------------------------------------------------- */

struct changed {
	const char *names[12];
	unsigned n;
};

static void changed_if(struct changed *c, bool cond, const char *name)
{
	if (cond)
		c->names[c->n++] = name;
}

static bool differ(const void *a, size_t an, const void *b, size_t bn)
{
	return an != bn || (an && memcmp(a, b, an) != 0);
}

/* old + the line's fields -> p, role, status; the names of what changed. */
static void merge_fields(const struct record *old, const struct ud_fields *f,
			 const struct ud_import_extra *x,
			 struct record_parts *p, struct record *r,
			 struct changed *c)
{
	struct record_parts o;
	unsigned set = f->set;

	record_parts(old, &o);
	*p = o;
	if (set & UD_F_NAME)
		p->name = f->name, p->name_len = f->name_len;
	if (set & UD_F_EMAIL)
		p->email = f->email, p->email_len = f->email_len;
	if (set & UD_F_AVATAR)
		p->avatar = f->avatar,
		p->avatar_len = f->avatar ? f->avatar_len : 0;
	if (set & UD_F_CUSTOM_DATA)
		p->custom = f->custom_data, p->custom_len = f->custom_data_len;
	if (x->identities)
		p->ident = x->identities, p->ident_len = x->identities_len;
	if (set & UD_F_PASSWORD_HASH)
		p->pw = f->password_hash, p->pw_len = f->password_hash_len,
		p->pw_packed = false;
	r->role =
	    (set & UD_F_ROLE) ? ud_role_parse(f->role, f->role_len) : old->role;
	r->status = (set & UD_F_STATUS)
			? ud_status_parse(f->status, f->status_len)
			: old->status;
	changed_if(c, differ(o.name, o.name_len, p->name, p->name_len), "name");
	changed_if(c, differ(o.email, o.email_len, p->email, p->email_len),
		   "email");
	changed_if(c, r->role != old->role, "role");
	changed_if(c, r->status != old->status, "status");
	changed_if(c,
		   !o.avatar != !p->avatar ||
		       differ(o.avatar, o.avatar_len, p->avatar, p->avatar_len),
		   "avatar");
	changed_if(c, differ(o.custom, o.custom_len, p->custom, p->custom_len),
		   "custom_data");
	changed_if(c, differ(o.ident, o.ident_len, p->ident, p->ident_len),
		   "identities");
	changed_if(c, (set & UD_F_PASSWORD_HASH) != 0, "password");
}

/* The line's times on an existing user; 0 or UD_EINVAL. */
static int merge_times(ud_db *db, const struct record *old,
		       const struct ud_import_extra *x, struct record *r,
		       struct changed *c, struct ud_error *err)
{
	int64_t now = db_now(db);

	if (x->created_ms != UD_IMPORT_NO_TIME &&
	    x->created_ms != old->created_ms)
		return ud_error_set(err, UD_EINVAL, "created_at",
				    "created_at of an existing user cannot "
				    "change: users are kept in creation order");
	r->created_ms = old->created_ms;
	r->updated_ms =
	    x->updated_ms == UD_IMPORT_NO_TIME ? now : x->updated_ms;
	if (r->updated_ms < old->updated_ms || r->updated_ms > now)
		return ud_error_set(err, UD_EINVAL, "updated_at",
				    "updated_at must lie between the user's "
				    "current updated_at and now");
	r->last_sign_in_ms = old->last_sign_in_ms;
	if (x->last_sign_in_ms != UD_IMPORT_NO_TIME)
		r->last_sign_in_ms = x->last_sign_in_ms;
	if (r->last_sign_in_ms > now ||
	    (r->last_sign_in_ms < 0 && r->last_sign_in_ms != -1))
		return ud_error_set(err, UD_EINVAL, "last_sign_in_at",
				    "last_sign_in_at must lie between 1970 "
				    "and now");
	changed_if(c, r->last_sign_in_ms != old->last_sign_in_ms,
		   "last_sign_in_at");
	return 0;
}

static int changed_details(struct ud_buf *b, const struct changed *c)
{
	msgpack_packer pk;

	msgpack_packer_init(&pk, b, codec_buf_write_cb);
	msgpack_pack_map(&pk, 1);
	msgpack_pack_str_with_body(&pk, "fields", 6);
	msgpack_pack_array(&pk, c->n);
	for (unsigned i = 0; i < c->n; i++)
		msgpack_pack_str_with_body(&pk, c->names[i],
					   strlen(c->names[i]));
	return b->data ? 0 : UD_ENOMEM;
}

int ud_user_import_update(ud_db *db, const ud_user *user,
			  const struct ud_fields *f,
			  const struct ud_import_extra *x, const ud_user **out,
			  struct ud_error *err)
{
	const struct record *old = (const struct record *)user, *other;
	struct change ch = {.type = CH_PUT, .has_event = true};
	struct changed c = {{0}, 0};
	struct record_parts p;
	struct record tmp = {0};
	struct ud_buf details = {0};
	struct record *r;
	int rc = import_check_line(db, f, x, err);

	if (rc)
		return rc;
	if ((f->set & UD_F_ID) &&
	    differ(f->id, f->id_len, record_id(old), old->id_len))
		return ud_error_set(err, UD_EINVAL, "id",
				    "the id cannot be changed");
	other = db_find_email(db, f->email, f->email_len);
	if (other && other != old)
		return ud_error_set(err, UD_EDUPEMAIL, "email",
				    "a user with this email exists");
	merge_fields(old, f, x, &p, &tmp, &c);
	if ((rc = merge_times(db, old, x, &tmp, &c, err)) != 0)
		return rc;
	if (c.n == 0 && tmp.updated_ms == old->updated_ms) {
		if (out) /* nothing changes: no event, same etag */
			*out = user;
		return 0;
	}
	if (!(r = record_new(&p)))
		return ud_error_set(err, UD_ENOMEM, NULL, "out of memory");
	r->created_ms = tmp.created_ms;
	r->updated_ms = tmp.updated_ms;
	r->last_sign_in_ms = tmp.last_sign_in_ms;
	r->role = tmp.role;
	r->status = tmp.status;
	r->etag = db->last_etag + 1;
	r->seq = old->seq;
	r->failed_verifies = old->failed_verifies;
	r->flags |= old->flags & REC_LOADED;
	if (changed_details(&details, &c)) {
		free(r);
		return ud_error_set(err, UD_ENOMEM, NULL, "out of memory");
	}
	ch.rec = r;
	ch.ev.id = db->last_event + 1;
	ch.ev.ms = db_now(db);
	ch.ev.type = UD_EV_UPDATED;
	ch.ev.details = details.data;
	ch.ev.details_len = details.len;
	rc = db_commit(db, &ch, err);
	ud_buf_free(&details);
	if (rc == 0 && out)
		*out = (const ud_user *)r;
	return rc;
}
