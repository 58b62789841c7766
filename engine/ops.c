/*
 * ops.c -- the mutating operations of userdb.h (the RPC methods).
 *
 * Each operation checks its input and the store (existence, If-Match,
 * uniqueness), builds the complete new record, and hands one struct change
 * to db_commit(), which journals it and applies it (db.h).  Nothing here
 * touches the indexes directly, so the live path and replay are the same
 * code.  Counters are read, not advanced: the change carries last+1 and
 * applying raises the counter, so a refused journal leaves no gap.
 */
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "codec.h"
#include "db.h"
#include "text.h"
#include "valid.h"

static int not_found(struct ud_error *err)
{
	return ud_error_set(err, UD_ENOTFOUND, NULL, "no such user");
}

/* The live user, or NULL with UD_ENOTFOUND in err. */
static struct record *find_user(ud_db *db, const char *id, size_t len,
				struct ud_error *err)
{
	struct record *r = db_find(db, id, len);

	if (!r)
		not_found(err);
	return r;
}

static int check_match(const struct record *r, uint64_t if_match,
		       struct ud_error *err)
{
	if (if_match && if_match != r->etag)
		return ud_error_set(err, UD_EPRECONDITION, NULL,
				    "the user changed (etag %llu)",
				    (unsigned long long)r->etag);
	return 0;
}

/* A copy of old's header onto a new record built from p: same identity
 * and times, next etag, updated at now. */
static struct record *rebuild(ud_db *db, const struct record *old,
			      const struct record_parts *p, int64_t now)
{
	struct record *r = record_new(p);

	if (!r)
		return NULL;
	r->created_ms = old->created_ms;
	r->updated_ms = now;
	r->last_sign_in_ms = old->last_sign_in_ms;
	r->etag = db->last_etag + 1;
	r->seq = old->seq;
	r->failed_verifies = old->failed_verifies;
	r->role = old->role;
	r->status = old->status;
	r->flags |= old->flags & REC_LOADED;
	return r;
}

/* Commit r (a new state) with one event; *out gets the stored user. */
static int commit_put(ud_db *db, struct record *r, int ev, int64_t now,
		      const struct ud_buf *details, const ud_user **out,
		      struct ud_error *err)
{
	struct change ch = {.type = CH_PUT, .rec = r, .has_event = true};
	int rc;

	if (!r)
		return ud_error_set(err, UD_ENOMEM, NULL, "out of memory");
	ch.ev.id = ev == UD_EV_CREATED ? r->seq : db->last_event + 1;
	ch.ev.ms = now;
	ch.ev.type = ev;
	ch.ev.details = details ? details->data : NULL;
	ch.ev.details_len = details ? details->len : 0;
	rc = db_commit(db, &ch, err);
	if (!rc && out)
		*out = (const ud_user *)r;
	return rc;
}

/* {"<key>": <string>} or {"valid": bool} details as msgpack. */
static int details_kv(struct ud_buf *b, const char *key, const char *s,
		      size_t n, int boolean)
{
	msgpack_packer pk;

	msgpack_packer_init(&pk, b, codec_buf_write_cb);
	msgpack_pack_map(&pk, 1);
	msgpack_pack_str_with_body(&pk, key, strlen(key));
	if (s)
		msgpack_pack_str_with_body(&pk, s, n);
	else if (boolean)
		msgpack_pack_true(&pk);
	else
		msgpack_pack_false(&pk);
	return b->data ? 0 : UD_ENOMEM;
}

/* ---- create ---------------------------------------------------------------
 */

static int create_unique(ud_db *db, const struct ud_fields *f,
			 struct ud_error *err)
{
	if ((f->set & UD_F_ID) && db_find(db, f->id, f->id_len))
		return ud_error_set(err, UD_EDUPID, "id",
				    "a user with this id exists");
	if (db_find_email(db, f->email, f->email_len))
		return ud_error_set(err, UD_EDUPEMAIL, "email",
				    "a user with this email exists");
	return 0;
}

/* Fill p from f (id aside); hash is scratch for a plain password. */
static int create_parts(ud_db *db, const struct ud_fields *f,
			struct record_parts *p, char *hash,
			struct ud_error *err)
{
	int rc;

	memset(p, 0, sizeof(*p));
	p->name = f->name, p->name_len = f->name_len;
	p->email = f->email, p->email_len = f->email_len;
	if ((f->set & UD_F_AVATAR) && f->avatar)
		p->avatar = f->avatar, p->avatar_len = f->avatar_len;
	if (f->set & UD_F_CUSTOM_DATA)
		p->custom = f->custom_data, p->custom_len = f->custom_data_len;
	if (f->set & UD_F_PASSWORD) {
		rc = ud_password_hash(&db->opts, f->password, f->password_len,
				      hash, err);
		if (rc)
			return rc;
		p->pw = hash, p->pw_len = strlen(hash);
	} else if (f->set & UD_F_PASSWORD_HASH) {
		p->pw = f->password_hash, p->pw_len = f->password_hash_len;
	}
	return 0;
}

int ud_user_create(ud_db *db, const struct ud_fields *f, const ud_user **out,
		   struct ud_error *err)
{
	char hash[UD_PWHASH_MAX], gen[UD_ID_GEN_LEN];
	struct record_parts p;
	struct record *r;
	int64_t now;
	int rc;

	if ((rc = ud_fields_validate(f, true, err)) != 0 ||
	    (rc = create_unique(db, f, err)) != 0 ||
	    (rc = create_parts(db, f, &p, hash, err)) != 0)
		return rc;
	if (f->set & UD_F_ID) {
		p.id = f->id, p.id_len = f->id_len;
	} else {
		do
			id_generate(gen);
		while (db_find(db, gen, sizeof(gen)));
		p.id = gen, p.id_len = sizeof(gen);
	}
	r = record_new(&p);
	if (!r)
		return ud_error_set(err, UD_ENOMEM, NULL, "out of memory");
	r->role = (f->set & UD_F_ROLE) ? ud_role_parse(f->role, f->role_len)
				       : UD_ROLE_USER;
	r->status = (f->set & UD_F_STATUS)
			? ud_status_parse(f->status, f->status_len)
			: UD_STATUS_ACTIVE;
	now = db_now(db);
	r->created_ms = r->updated_ms = now;
	r->etag = db->last_etag + 1;
	r->seq = db->last_event + 1;
	return commit_put(db, r, UD_EV_CREATED, now, NULL, out, err);
}

/* ---- update ---------------------------------------------------------------
 */

struct diff {
	const char *names[6];
	unsigned n;
};

static bool same(const void *a, size_t an, const void *b, size_t bn)
{
	return an == bn && (an == 0 || memcmp(a, b, an) == 0);
}

static void diff_str(struct diff *d, unsigned set, unsigned bit,
		     const char *name, const void *cur, size_t cn,
		     const void *nv, size_t nn)
{
	if ((set & bit) && !same(cur, cn, nv, nn))
		d->names[d->n++] = name;
}

/* New parts and role/status from old + f; the names of changed fields. */
static void update_parts(const struct record *old, const struct ud_fields *f,
			 struct record_parts *p, int *role, int *status,
			 struct diff *d)
{
	struct record_parts o;

	record_parts(old, &o);
	*p = o;
	*role = (f->set & UD_F_ROLE) ? ud_role_parse(f->role, f->role_len)
				     : old->role;
	*status = (f->set & UD_F_STATUS)
		      ? ud_status_parse(f->status, f->status_len)
		      : old->status;
	diff_str(d, f->set, UD_F_NAME, "name", o.name, o.name_len, f->name,
		 f->name_len);
	diff_str(d, f->set, UD_F_EMAIL, "email", o.email, o.email_len, f->email,
		 f->email_len);
	if (*role != old->role)
		d->names[d->n++] = "role";
	if (*status != old->status)
		d->names[d->n++] = "status";
	if ((f->set & UD_F_AVATAR) &&
	    (!f->avatar != !o.avatar ||
	     (f->avatar &&
	      !same(o.avatar, o.avatar_len, f->avatar, f->avatar_len))))
		d->names[d->n++] = "avatar";
	diff_str(d, f->set, UD_F_CUSTOM_DATA, "custom_data", o.custom,
		 o.custom_len, f->custom_data, f->custom_data_len);
	if (f->set & UD_F_NAME)
		p->name = f->name, p->name_len = f->name_len;
	if (f->set & UD_F_EMAIL)
		p->email = f->email, p->email_len = f->email_len;
	if (f->set & UD_F_AVATAR)
		p->avatar = f->avatar, p->avatar_len = f->avatar_len;
	if (f->set & UD_F_CUSTOM_DATA)
		p->custom = f->custom_data, p->custom_len = f->custom_data_len;
}

static int details_fields(struct ud_buf *b, const struct diff *d)
{
	msgpack_packer pk;
	unsigned i;

	msgpack_packer_init(&pk, b, codec_buf_write_cb);
	msgpack_pack_map(&pk, 1);
	msgpack_pack_str_with_body(&pk, "fields", 6);
	msgpack_pack_array(&pk, d->n);
	for (i = 0; i < d->n; i++)
		msgpack_pack_str_with_body(&pk, d->names[i],
					   strlen(d->names[i]));
	return b->data ? 0 : UD_ENOMEM;
}

static int update_check(ud_db *db, const struct ud_fields *f,
			struct ud_error *err)
{
	if (f->set & UD_F_ID)
		return ud_error_set(err, UD_EINVAL, "id",
				    "the id cannot be changed");
	if (f->set & (UD_F_PASSWORD | UD_F_PASSWORD_HASH))
		return ud_error_set(err, UD_EINVAL, "password",
				    "use the password operation");
	return ud_fields_validate(f, false, err);
}

int ud_user_update(ud_db *db, const char *id, size_t len,
		   const struct ud_fields *f, uint64_t if_match,
		   const ud_user **out, struct ud_error *err)
{
	struct record *old = find_user(db, id, len, err), *r, *other;
	struct diff d = {{0}, 0};
	struct record_parts p;
	struct ud_buf b = {0};
	int role, status, rc;
	int64_t now;

	if (!old)
		return UD_ENOTFOUND;
	if ((rc = check_match(old, if_match, err)) != 0 ||
	    (rc = update_check(db, f, err)) != 0)
		return rc;
	update_parts(old, f, &p, &role, &status, &d);
	if (!d.n) { /* nothing changes: no event, same etag */
		if (out)
			*out = (const ud_user *)old;
		return 0;
	}
	other = (f->set & UD_F_EMAIL)
		    ? db_find_email(db, f->email, f->email_len)
		    : NULL;
	if (other && other != old)
		return ud_error_set(err, UD_EDUPEMAIL, "email",
				    "a user with this email exists");
	now = db_now(db);
	r = rebuild(db, old, &p, now);
	if (r) {
		r->role = (uint8_t)role;
		r->status = (uint8_t)status;
	}
	rc = details_fields(&b, &d);
	rc = rc ? ud_error_set(err, rc, NULL, "out of memory")
		: commit_put(db, r, UD_EV_UPDATED, now, &b, out, err);
	ud_buf_free(&b);
	return rc;
}

/* ---- delete, suspension ---------------------------------------------------
 */

int ud_user_delete(ud_db *db, const char *id, size_t len, uint64_t if_match,
		   struct ud_error *err)
{
	struct record *r = find_user(db, id, len, err);
	struct change ch = {.type = CH_DEL, .has_event = true};
	int rc;

	if (!r)
		return UD_ENOTFOUND;
	if ((rc = check_match(r, if_match, err)) != 0)
		return rc;
	ch.id = record_id(r);
	ch.id_len = r->id_len;
	ch.ev.id = db->last_event + 1;
	ch.ev.ms = db_now(db);
	ch.ev.type = UD_EV_DELETED;
	return db_commit(db, &ch, err);
}

int ud_user_set_suspended(ud_db *db, const char *id, size_t len, bool suspended,
			  const ud_user **out, struct ud_error *err)
{
	struct record *old = find_user(db, id, len, err), *r;
	int want = suspended ? UD_STATUS_SUSPENDED : UD_STATUS_ACTIVE;
	struct record_parts p;
	int64_t now;

	if (!old)
		return UD_ENOTFOUND;
	if (old->status == want) { /* already so: nothing to log */
		if (out)
			*out = (const ud_user *)old;
		return 0;
	}
	record_parts(old, &p);
	now = db_now(db);
	r = rebuild(db, old, &p, now);
	if (r)
		r->status = (uint8_t)want;
	return commit_put(db, r,
			  suspended ? UD_EV_SUSPENDED : UD_EV_UNSUSPENDED, now,
			  NULL, out, err);
}

/* ---- passwords ------------------------------------------------------------
 */

int ud_user_set_password_hash(ud_db *db, const char *id, size_t len,
			      const char *hash, size_t hash_len,
			      const ud_user **out, struct ud_error *err)
{
	struct record *old;
	struct record_parts p;
	int64_t now;
	int rc;

	if ((rc = valid_password_hash(hash, hash_len, err)) != 0)
		return rc;
	if (!(old = find_user(db, id, len, err)))
		return UD_ENOTFOUND;
	record_parts(old, &p);
	p.pw = hash, p.pw_len = hash_len, p.pw_packed = false;
	now = db_now(db);
	return commit_put(db, rebuild(db, old, &p, now), UD_EV_PASSWORD_CHANGED,
			  now, NULL, out, err);
}

int ud_user_set_password(ud_db *db, const char *id, size_t len, const char *pw,
			 size_t pw_len, const ud_user **out,
			 struct ud_error *err)
{
	char hash[UD_PWHASH_MAX];
	int rc;

	if (!db_find(db, id, len))
		return not_found(err);
	if ((rc = ud_password_hash(&db->opts, pw, pw_len, hash, err)) != 0)
		return rc;
	return ud_user_set_password_hash(db, id, len, hash, strlen(hash), out,
					 err);
}

int ud_user_password_hash_copy(ud_db *db, const char *id, size_t len,
			       char out[UD_PWHASH_MAX])
{
	struct record *r = db_find(db, id, len);
	struct record_parts p;
	const char *pw;
	size_t n;

	if (!r)
		return UD_ENOTFOUND;
	record_parts(r, &p);
	pw = record_parts_pw_text(&p, out, &n);
	if (n && pw != out)
		memcpy(out, pw, n);
	out[n] = '\0';
	return 0;
}

/* A failed verification: an event-only record whose details carry the
 * user's failed verifications so far, this one included. */
static int verify_failed(ud_db *db, struct record *r, struct ud_error *err)
{
	struct change ch = {.type = CH_EVENT, .has_event = true};
	struct ud_buf b = {0};
	msgpack_packer pk;
	int rc;

	msgpack_packer_init(&pk, &b, codec_buf_write_cb);
	msgpack_pack_map(&pk, 2);
	msgpack_pack_str_with_body(&pk, "valid", 5);
	msgpack_pack_false(&pk);
	msgpack_pack_str_with_body(&pk, "failed_count", 12);
	msgpack_pack_uint64(&pk, (uint64_t)r->failed_verifies + 1);
	rc = b.data ? 0 : UD_ENOMEM;

	ch.id = record_id(r);
	ch.id_len = r->id_len;
	ch.ev.id = db->last_event + 1;
	ch.ev.ms = db_now(db);
	ch.ev.type = UD_EV_PASSWORD_VERIFIED;
	ch.ev.details = b.data;
	ch.ev.details_len = b.len;
	rc = rc ? ud_error_set(err, rc, NULL, "out of memory")
		: db_commit(db, &ch, err);
	ud_buf_free(&b);
	return rc;
}

int ud_user_record_verify(ud_db *db, const char *id, size_t len, bool valid,
			  struct ud_error *err)
{
	struct record *old = find_user(db, id, len, err), *r;
	struct record_parts p;
	struct ud_buf b = {0};
	int64_t now;
	int rc;

	if (!old)
		return UD_ENOTFOUND;
	if (!valid)
		return verify_failed(db, old, err);
	record_parts(old, &p);
	now = db_now(db);
	r = rebuild(db, old, &p, now);
	if (r) { /* a sign-in is not an update: updated_at stays */
		r->updated_ms = old->updated_ms;
		r->last_sign_in_ms = now;
	}
	rc = details_kv(&b, "valid", NULL, 0, 1);
	rc =
	    rc ? ud_error_set(err, rc, NULL, "out of memory")
	       : commit_put(db, r, UD_EV_PASSWORD_VERIFIED, now, &b, NULL, err);
	ud_buf_free(&b);
	return rc;
}

int ud_user_verify_password(ud_db *db, const char *id, size_t len,
			    const char *pw, size_t pw_len, bool *valid,
			    struct ud_error *err)
{
	char hash[UD_PWHASH_MAX];

	if (ud_user_password_hash_copy(db, id, len, hash))
		return not_found(err);
	*valid = ud_password_verify(hash, pw, pw_len) == 1;
	return ud_user_record_verify(db, id, len, *valid, err);
}

/* ---- identities -----------------------------------------------------------
 */

/* Append the identity entry `target: {"user_id", "details"}`. */
static void ident_entry(msgpack_packer *pk, struct ud_buf *b, const char *t,
			size_t tn, const char *uid, size_t un,
			const void *details, size_t dn)
{
	msgpack_pack_str_with_body(pk, t, tn);
	msgpack_pack_map(pk, 2);
	msgpack_pack_str_with_body(pk, "user_id", 7);
	msgpack_pack_str_with_body(pk, uid, un);
	msgpack_pack_str_with_body(pk, "details", 7);
	if (details && dn)
		ud_buf_append(b, details, dn);
	else
		ud_buf_append(b, "\x80", 1);
}

struct ident_edit {
	const char *t, *uid;
	size_t tn, un;
	const void *details;
	size_t dn;
	bool link; /* false: remove */
};

/* Is e->t a key of the map mp?  *count gets its size.  -1 unreadable. */
static int ident_find(const void *mp, size_t n, const struct ident_edit *e,
		      uint32_t *count)
{
	struct codec_mp_cur c = {mp, (const unsigned char *)mp + n};
	struct codec_mp_item it;
	uint32_t i;
	int found = 0;

	if (codec_mp_next(&c, &it) || it.type != CODEC_MP_MAP)
		return -1;
	*count = it.n;
	for (i = 0; i < *count; i++) {
		if (codec_mp_next(&c, &it) || codec_mp_skip(&c, 64))
			return -1;
		if (it.type == CODEC_MP_STR && same(it.s, it.n, e->t, e->tn))
			found = 1;
	}
	return found;
}

/* Copy the map mp without e->t, putting the new entry (link) where the old
 * one was or at the end.  *found says whether t was there.  0, UD_ENOMEM or
 * UD_ECORRUPT (stored map unreadable). */
static int ident_rebuild(const void *mp, size_t n, const struct ident_edit *e,
			 struct ud_buf *b, bool *found)
{
	struct codec_mp_cur c = {mp, (const unsigned char *)mp + n};
	struct codec_mp_item it;
	const unsigned char *start;
	msgpack_packer pk;
	uint32_t i, count;
	int f = ident_find(mp, n, e, &count);

	if (f < 0)
		return UD_ECORRUPT;
	*found = f;
	msgpack_packer_init(&pk, b, codec_buf_write_cb);
	msgpack_pack_map(&pk, count - f + e->link);
	codec_mp_next(&c, &it); /* the map header, read above */
	for (i = 0; i < count; i++) {
		start = c.p;
		codec_mp_next(&c, &it);
		codec_mp_skip(&c, 64);
		if (it.type == CODEC_MP_STR && same(it.s, it.n, e->t, e->tn)) {
			if (e->link)
				ident_entry(&pk, b, e->t, e->tn, e->uid, e->un,
					    e->details, e->dn);
			continue;
		}
		ud_buf_append(b, start, (size_t)(c.p - start));
	}
	if (e->link && !f)
		ident_entry(&pk, b, e->t, e->tn, e->uid, e->un, e->details,
			    e->dn);
	return b->data ? 0 : UD_ENOMEM;
}

static int ident_commit(ud_db *db, const char *id, size_t len,
			const struct ident_edit *e, const ud_user **out,
			struct ud_error *err)
{
	struct record *old = find_user(db, id, len, err);
	struct ud_buf ident = {0}, det = {0};
	struct record_parts p;
	bool found;
	int64_t now;
	int rc;

	if (!old)
		return UD_ENOTFOUND;
	rc =
	    ident_rebuild(record_ident(old), old->ident_len, e, &ident, &found);
	if (!rc && !e->link && !found)
		rc = ud_error_set(err, UD_ENOTFOUND, "target",
				  "no identity linked for this target");
	else if (!rc && ident.len > UD_IDENTITIES_MAX)
		rc = ud_error_set(err, UD_EINVAL, "identities",
				  "a user's identities may take at most %d "
				  "bytes (msgpack); unlink some first",
				  UD_IDENTITIES_MAX);
	else if (!rc)
		rc = details_kv(&det, "target", e->t, e->tn, 0);
	if (!rc) {
		record_parts(old, &p);
		p.ident = ident.data, p.ident_len = ident.len;
		now = db_now(db);
		rc = commit_put(db, rebuild(db, old, &p, now),
				e->link ? UD_EV_IDENTITY_LINKED
					: UD_EV_IDENTITY_REMOVED,
				now, &det, out, err);
	} else if (rc != UD_ENOTFOUND && rc != UD_EINVAL) {
		ud_error_set(err, rc, NULL, "identities unreadable");
	}
	ud_buf_free(&ident);
	ud_buf_free(&det);
	return rc;
}

int ud_user_link_identity(ud_db *db, const char *id, size_t len,
			  const char *target, size_t target_len,
			  const char *ext_user_id, size_t ext_user_id_len,
			  const void *details, size_t details_len,
			  const ud_user **out, struct ud_error *err)
{
	struct ident_edit e = {
	    target,  ext_user_id, target_len, ext_user_id_len,
	    details, details_len, true};
	int rc = valid_identity(target, target_len, ext_user_id,
				ext_user_id_len, err);

	if (!rc && details && details_len)
		rc = valid_mp_object(details, details_len, "details", err);
	return rc ? rc : ident_commit(db, id, len, &e, out, err);
}

int ud_user_unlink_identity(ud_db *db, const char *id, size_t len,
			    const char *target, size_t target_len,
			    const ud_user **out, struct ud_error *err)
{
	struct ident_edit e = {.t = target, .tn = target_len, .link = false};

	return ident_commit(db, id, len, &e, out, err);
}
