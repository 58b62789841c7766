/*
 * helper_db.c -- see helper_db.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <sodium.h>

#include "helper_db.h"

ud_db *hdb_new(const struct ud_options *base)
{
	struct ud_options o = base ? *base : ud_options_default;
	struct ud_error err = {0};
	ud_db *db;

	o.pw_opslimit = crypto_pwhash_argon2id_OPSLIMIT_MIN;
	o.pw_memlimit = crypto_pwhash_argon2id_MEMLIMIT_MIN;
	db = ud_db_new(&o, &err);
	cr_assert(db, "ud_db_new: %s", err.message);
	return db;
}

struct ud_fields hdb_fields(const char *name, const char *email)
{
	struct ud_fields f = {0};

	if (name)
		hdb_set(&f, UD_F_NAME, name);
	if (email)
		hdb_set(&f, UD_F_EMAIL, email);
	return f;
}

void hdb_set(struct ud_fields *f, unsigned bit, const char *v)
{
	size_t n = v ? strlen(v) : 0;

	f->set |= bit;
	switch (bit) {
	case UD_F_ID:
		f->id = v, f->id_len = n;
		break;
	case UD_F_NAME:
		f->name = v, f->name_len = n;
		break;
	case UD_F_EMAIL:
		f->email = v, f->email_len = n;
		break;
	case UD_F_ROLE:
		f->role = v, f->role_len = n;
		break;
	case UD_F_STATUS:
		f->status = v, f->status_len = n;
		break;
	case UD_F_AVATAR:
		f->avatar = v, f->avatar_len = n;
		break;
	case UD_F_PASSWORD:
		f->password = v, f->password_len = n;
		break;
	case UD_F_PASSWORD_HASH:
		f->password_hash = v, f->password_hash_len = n;
		break;
	}
}

const ud_user *hdb_create(ud_db *db, const char *name, const char *email)
{
	struct ud_fields f = hdb_fields(name, email);
	struct ud_error err = {0};
	const ud_user *u = NULL;
	int rc = ud_user_create(db, &f, &u, &err);

	cr_assert_eq(rc, 0, "create %s: %s", email, err.message);
	cr_assert(u);
	return u;
}

const char *hdb_id(const ud_user *u, char *buf)
{
	struct ud_user_view v;

	ud_user_view(u, &v);
	memcpy(buf, v.id, v.id_len);
	buf[v.id_len] = '\0';
	return buf;
}

void hdb_check(ud_db *db)
{
	struct ud_error err = {0};

	cr_assert_eq(ud_db_check(db, &err), 0, "ud_db_check: %s", err.message);
}

int hdb_mirror_cb(void *ctx, const void *rec, size_t len)
{
	struct hdb_mirror *m = ctx;
	struct ud_error err = {0};
	int rc;

	if (m->refuse)
		return m->refuse;
	m->last.len = 0;
	ud_buf_append(&m->last, rec, len);
	m->records++;
	if (!m->db)
		return 0;
	rc = ud_db_apply(m->db, rec, len, &err);
	cr_assert_eq(rc, 0, "mirror apply: %s", err.message);
	return 0;
}

static int dump_cb(void *ctx, const void *rec, size_t len)
{
	struct ud_error err = {0};
	int rc = ud_db_apply(ctx, rec, len, &err);

	cr_assert_eq(rc, 0, "dump apply: %s", err.message);
	return 0;
}

ud_db *hdb_dump_copy(ud_db *a)
{
	ud_db *b = hdb_new(&a->opts);

	cr_assert_eq(ud_db_dump(a, dump_cb, b), 0);
	return b;
}

/* ---- comparison -----------------------------------------------------------
 */

#define WHY(...) (snprintf(why, n, __VA_ARGS__), -1)

static bool bytes_eq(const void *a, size_t an, const void *b, size_t bn)
{
	return an == bn && (!an || memcmp(a, b, an) == 0);
}

static int user_cmp(const struct record *x, const struct record *y, char *why,
		    size_t n)
{
	struct ud_user_view a, b;

	record_view(x, &a);
	record_view(y, &b);
	if (!bytes_eq(a.id, a.id_len, b.id, b.id_len) ||
	    !bytes_eq(a.name, a.name_len, b.name, b.name_len) ||
	    !bytes_eq(a.email, a.email_len, b.email, b.email_len) ||
	    !bytes_eq(a.avatar, a.avatar_len, b.avatar, b.avatar_len) ||
	    !a.avatar != !b.avatar ||
	    !bytes_eq(a.custom_data, a.custom_data_len, b.custom_data,
		      b.custom_data_len) ||
	    !bytes_eq(a.identities, a.identities_len, b.identities,
		      b.identities_len) ||
	    !bytes_eq(record_pw(x), x->pw_len, record_pw(y), y->pw_len))
		return WHY("user %.*s: bytes differ", (int)a.id_len, a.id);
	if (a.role != b.role || a.status != b.status ||
	    a.created_ms != b.created_ms || a.updated_ms != b.updated_ms ||
	    a.last_sign_in_ms != b.last_sign_in_ms || a.etag != b.etag ||
	    x->seq != y->seq || x->failed_verifies != y->failed_verifies ||
	    x->flags != y->flags)
		return WHY("user %.*s: header differs", (int)a.id_len, a.id);
	return 0;
}

static int log_cmp(ud_db *a, ud_db *b, const char *id, size_t len, char *why,
		   size_t n)
{
	static struct ud_log_page pa, pb;
	unsigned page = 1, i;

	do {
		cr_assert_eq(ud_log_list(a, id, len, page, 100, &pa, NULL), 0);
		cr_assert_eq(ud_log_list(b, id, len, page, 100, &pb, NULL), 0);
		if (pa.total != pb.total || pa.count != pb.count)
			return WHY("log %.*s: %llu vs %llu events", (int)len,
				   id, (unsigned long long)pa.total,
				   (unsigned long long)pb.total);
		for (i = 0; i < pa.count; i++) {
			struct ud_log_view *x = &pa.items[i], *y = &pb.items[i];

			if (x->id != y->id || x->event != y->event ||
			    x->created_ms != y->created_ms ||
			    !bytes_eq(x->user_id, x->user_id_len, y->user_id,
				      y->user_id_len) ||
			    !bytes_eq(x->details, x->details_len, y->details,
				      y->details_len))
				return WHY("log %.*s: event %u differs",
					   (int)len, id, i);
		}
		page++;
	} while ((uint64_t)(page - 1) * 100 < pa.total);
	return 0;
}

static int counters_cmp(ud_db *a, ud_db *b, char *why, size_t n)
{
	struct ud_stats sa = {0}, sb = {0};

	ud_db_stats(a, &sa);
	ud_db_stats(b, &sb);
	if (sa.users != sb.users || sa.record_bytes != sb.record_bytes ||
	    sa.log_events != sb.log_events ||
	    sa.failed_verifies != sb.failed_verifies ||
	    memcmp(sa.by_role_status, sb.by_role_status,
		   sizeof(sa.by_role_status)))
		return WHY("stats differ (users %llu vs %llu)",
			   (unsigned long long)sa.users,
			   (unsigned long long)sb.users);
	if (a->last_etag != b->last_etag || a->last_event != b->last_event ||
	    a->last_ms != b->last_ms || a->implicit != b->implicit ||
	    a->log.deleted_count != b->log.deleted_count)
		return WHY("counters differ");
	return 0;
}

static struct record *next_live(ud_db *db, size_t *s)
{
	while (*s < db->order.len && !db->order.items[*s])
		(*s)++;
	return *s < db->order.len ? db->order.items[(*s)++] : NULL;
}

int hdb_compare(ud_db *a, ud_db *b, char *why, size_t n)
{
	struct record *x, *y;
	struct ulog *la, *lb;
	size_t sa = 0, sb = 0;
	int rc;

	if ((rc = counters_cmp(a, b, why, n)) != 0)
		return rc;
	for (;;) {
		x = next_live(a, &sa);
		y = next_live(b, &sb);
		if (!x || !y)
			break;
		if ((rc = user_cmp(x, y, why, n)) != 0 ||
		    (rc = log_cmp(a, b, record_id(x), x->id_len, why, n)) != 0)
			return rc;
	}
	if (x || y)
		return WHY("user order differs");
	la = a->log.fifo_head;
	lb = b->log.fifo_head;
	for (; la && lb; la = la->next, lb = lb->next)
		if (!bytes_eq(la->id, la->id_len, lb->id, lb->id_len) ||
		    (rc = log_cmp(a, b, la->id, la->id_len, why, n)) != 0)
			return rc ? rc : WHY("deleted-log FIFO differs");
	return la || lb ? WHY("deleted-log FIFO length differs") : 0;
}
