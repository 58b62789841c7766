/*
 * import.c -- ud_user_import: a create with given times; see import.h.
 */
#include "import.h"

#include <stdlib.h>
#include <string.h>

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

static int import_check(ud_db *db, const struct ud_fields *f,
			const struct ud_import_extra *x, struct ud_error *err)
{
	int rc = x->checked ? 0 : ud_fields_validate(f, true, err);

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
