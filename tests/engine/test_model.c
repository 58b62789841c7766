/*
 * test_model.c -- a randomised model test of the store: >= 100,000 random
 * operations (create, update, delete, suspension, identities, lists with
 * random filters, pages and orders, lookups) checked against a plain
 * reference (arrays and linear scans).  Every change record also goes
 * through a mirror journal into a second store, and at the end the store,
 * the mirror and a dump-and-reload copy must be identical.
 *
 * The seed is fixed; set UD_SEED to try another.  Failures print it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <criterion/criterion.h>

#include "helper_db.h"

#define MAX_USERS 4096
#define TARGETS	  4

static const char *const targets[TARGETS] = {"github", "google", "gitlab",
					     "okta"};
static const char *const pieces[] = {"Ann",   "bob",   "Zoë", "李",
				     "Жанна", "Smith", "x",   "Émile"};
static const char *const needles[] = {"ann", "BOB", "smi", "E1", "example",
				      "@",   "x",   "1",   "zz", "n b"};

struct ruser {
	char id[40], name[96], email[64];
	int role, status;
	unsigned targets;
	uint64_t etag;
};

struct model {
	unsigned seed, base_seed;
	unsigned long op;
	struct ruser *live[MAX_USERS]; /* creation order */
	size_t n;
	unsigned next_import;
	ud_db *db;
	char hash[UD_PWHASH_MAX]; /* one valid Argon2id string */
};

#define MCHECK(m, cond, ...)                                                   \
	cr_assert(cond, "seed %u op %lu: %s", (m)->base_seed, (m)->op, #cond)

static unsigned rnd(struct model *m, unsigned n)
{
	return n ? (unsigned)rand_r(&m->seed) % n : 0;
}

static struct ruser *ref_by_id(struct model *m, const char *id, size_t *at)
{
	size_t i;

	for (i = 0; i < m->n; i++)
		if (strcmp(m->live[i]->id, id) == 0) {
			if (at)
				*at = i;
			return m->live[i];
		}
	return NULL;
}

static struct ruser *ref_by_email(struct model *m, const char *email)
{
	size_t i;

	for (i = 0; i < m->n; i++)
		if (strcasecmp(m->live[i]->email, email) == 0)
			return m->live[i];
	return NULL;
}

static void rand_name(struct model *m, char *out, size_t cap)
{
	unsigned k = 1 + rnd(m, 3), i;
	size_t len = 0;

	for (i = 0; i < k; i++)
		len += snprintf(out + len, cap - len, "%s%s", i ? " " : "",
				pieces[rnd(m, 8)]);
	snprintf(out + len, cap - len, " %u", rnd(m, 1000));
}

static void rand_email(struct model *m, char *out, size_t cap)
{
	snprintf(out, cap, "%s%u@%s.com", rnd(m, 2) ? "e" : "E", rnd(m, 3000),
		 rnd(m, 2) ? "example" : "EXAMPLE");
}

static const char *const role_names[] = {"admin", "user", "viewer"};
static const char *const status_names[] = {"active", "inactive", "suspended"};

static void sync_user(struct ruser *r, const ud_user *u)
{
	struct ud_user_view v;

	ud_user_view(u, &v);
	snprintf(r->id, sizeof(r->id), "%.*s", (int)v.id_len, v.id);
	r->etag = v.etag;
}

static void op_create(struct model *m)
{
	struct ruser *r = calloc(1, sizeof(*r));
	struct ud_error err = {0};
	struct ud_fields f;
	const ud_user *u = NULL;
	bool import = rnd(m, 10) == 0;
	int want = 0, rc;

	rand_name(m, r->name, sizeof(r->name));
	rand_email(m, r->email, sizeof(r->email));
	r->role = rnd(m, 3);
	r->status = rnd(m, 3);
	f = hdb_fields(r->name, r->email);
	hdb_set(&f, UD_F_ROLE, role_names[r->role]);
	hdb_set(&f, UD_F_STATUS, status_names[r->status]);
	if (import) {
		snprintf(r->id, sizeof(r->id), "usr_m%u", rnd(m, 3000));
		hdb_set(&f, UD_F_ID, r->id);
	}
	if (import && ref_by_id(m, r->id, NULL))
		want = UD_EDUPID;
	else if (ref_by_email(m, r->email))
		want = UD_EDUPEMAIL;
	else if (m->n == MAX_USERS)
		want = 1; /* skip */
	if (want == 1) {
		free(r);
		return;
	}
	rc = ud_user_create(m->db, &f, &u, &err);
	MCHECK(m, rc == want);
	if (rc) {
		free(r);
		return;
	}
	sync_user(r, u);
	m->live[m->n++] = r;
}

/* A live user's id, or sometimes one that does not exist. */
static struct ruser *pick(struct model *m, const char **id)
{
	struct ruser *r;

	if (!m->n || rnd(m, 20) == 0) {
		*id = "usr_missing";
		return NULL;
	}
	r = m->live[rnd(m, (unsigned)m->n)];
	*id = r->id;
	return r;
}

static void op_update(struct model *m)
{
	const char *id;
	struct ruser *r = pick(m, &id), *other, nv;
	struct ud_fields f = {0};
	const ud_user *u = NULL;
	bool stale = rnd(m, 10) == 0;
	int rc, want = 0;

	if (r)
		nv = *r;
	else
		memset(&nv, 0, sizeof(nv));
	if (rnd(m, 2))
		rand_name(m, nv.name, sizeof(nv.name)),
		    hdb_set(&f, UD_F_NAME, nv.name);
	if (rnd(m, 3) == 0)
		rand_email(m, nv.email, sizeof(nv.email)),
		    hdb_set(&f, UD_F_EMAIL, nv.email);
	if (rnd(m, 2))
		nv.role = rnd(m, 3),
		hdb_set(&f, UD_F_ROLE, role_names[nv.role]);
	if (rnd(m, 2))
		nv.status = rnd(m, 3),
		hdb_set(&f, UD_F_STATUS, status_names[nv.status]);
	other = (f.set & UD_F_EMAIL) ? ref_by_email(m, nv.email) : NULL;
	if (!r)
		want = UD_ENOTFOUND;
	else if (stale)
		want = UD_EPRECONDITION;
	else if (other && other != r)
		want = UD_EDUPEMAIL;
	rc = ud_user_update(m->db, id, strlen(id), &f,
			    r ? r->etag + (stale ? 1000000 : 0) : 0, &u, NULL);
	MCHECK(m, rc == want);
	if (rc)
		return;
	*r = nv;
	sync_user(r, u);
}

static void op_delete(struct model *m)
{
	const char *id;
	struct ruser *r = pick(m, &id);
	size_t at = 0;
	int rc = ud_user_delete(m->db, id, strlen(id), 0, NULL);

	MCHECK(m, rc == (r ? 0 : UD_ENOTFOUND));
	if (!r)
		return;
	ref_by_id(m, r->id, &at);
	memmove(&m->live[at], &m->live[at + 1],
		(m->n - at - 1) * sizeof(m->live[0]));
	m->n--;
	free(r);
}

static void op_suspend(struct model *m)
{
	const char *id;
	struct ruser *r = pick(m, &id);
	bool s = rnd(m, 2);
	const ud_user *u = NULL;
	int rc = ud_user_set_suspended(m->db, id, strlen(id), s, &u, NULL);

	MCHECK(m, rc == (r ? 0 : UD_ENOTFOUND));
	if (!r)
		return;
	r->status = s ? UD_STATUS_SUSPENDED : UD_STATUS_ACTIVE;
	sync_user(r, u);
}

static void op_identity(struct model *m)
{
	const char *id;
	struct ruser *r = pick(m, &id);
	unsigned t = rnd(m, TARGETS);
	const ud_user *u = NULL;
	int rc;

	if (rnd(m, 2)) {
		rc = ud_user_link_identity(m->db, id, strlen(id), targets[t],
					   strlen(targets[t]), "ext-1", 5, NULL,
					   0, &u, NULL);
		MCHECK(m, rc == (r ? 0 : UD_ENOTFOUND));
		if (r)
			r->targets |= 1u << t;
	} else {
		rc = ud_user_unlink_identity(m->db, id, strlen(id), targets[t],
					     strlen(targets[t]), &u, NULL);
		MCHECK(m,
		       rc == (r && (r->targets >> t & 1) ? 0 : UD_ENOTFOUND));
		if (r && !rc)
			r->targets &= ~(1u << t);
	}
	if (r && !rc)
		sync_user(r, u);
}

static void op_password(struct model *m)
{
	const char *id;
	struct ruser *r = pick(m, &id);
	const ud_user *u = NULL;
	int rc;

	if (rnd(m, 3) == 0) {
		rc = ud_user_set_password_hash(m->db, id, strlen(id), m->hash,
					       strlen(m->hash), &u, NULL);
		MCHECK(m, rc == (r ? 0 : UD_ENOTFOUND));
		if (r)
			sync_user(r, u);
		return;
	}
	rc = ud_user_record_verify(m->db, id, strlen(id), rnd(m, 2), NULL);
	MCHECK(m, rc == (r ? 0 : UD_ENOTFOUND));
	if (r)
		sync_user(r, ud_user_get(m->db, id, strlen(id)));
}

/* ASCII case-insensitive substring: the needles are ASCII and no name
 * piece folds to ASCII, so this is what Unicode folding gives here. */
static bool ci_contains(const char *hay, const char *needle)
{
	size_t hn = strlen(hay), nn = strlen(needle), i;

	for (i = 0; i + nn <= hn; i++)
		if (strncasecmp(hay + i, needle, nn) == 0)
			return true;
	return false;
}

static bool ref_match(const struct ruser *r, const struct ud_query *q,
		      const char *email, const char *search)
{
	return (q->role < 0 || q->role == r->role) &&
	       (q->status < 0 || q->status == r->status) &&
	       (!email || strcasecmp(email, r->email) == 0) &&
	       (!search || ci_contains(r->name, search) ||
		ci_contains(r->email, search));
}

static void op_list(struct model *m)
{
	static struct ud_page p;
	char email[64];
	const char *search = NULL, *em = NULL;
	struct ruser *match[MAX_USERS];
	struct ud_query q;
	size_t n = 0, i;
	uint64_t off;
	char id[UD_ID_MAX + 1];

	ud_query_init(&q);
	q.role = (int)rnd(m, 4) - 1;
	q.status = (int)rnd(m, 4) - 1;
	q.asc = rnd(m, 2);
	q.limit = 1 + rnd(m, rnd(m, 2) ? 10 : 100);
	if (rnd(m, 10) == 0) {
		rand_email(m, email, sizeof(email));
		em = email;
		q.email = em, q.email_len = strlen(em);
	}
	if (rnd(m, 5) == 0) {
		search = needles[rnd(m, 10)];
		q.search = search, q.search_len = strlen(search);
	}
	for (i = 0; i < m->n; i++)
		if (ref_match(m->live[q.asc ? i : m->n - 1 - i], &q, em,
			      search))
			match[n++] = m->live[q.asc ? i : m->n - 1 - i];
	q.page = 1 + rnd(m, (unsigned)(n / q.limit + 2));
	MCHECK(m, ud_user_list(m->db, &q, &p, NULL) == 0);
	MCHECK(m, p.total == n);
	MCHECK(m, p.pages == (n + q.limit - 1) / q.limit);
	off = (uint64_t)(q.page - 1) * q.limit;
	MCHECK(m, p.count == (off >= n		  ? 0
			      : n - off < q.limit ? n - off
						  : q.limit));
	for (i = 0; i < p.count; i++)
		MCHECK(m,
		       strcmp(hdb_id(p.items[i], id), match[off + i]->id) == 0);
}

static void op_lookup(struct model *m)
{
	const char *id;
	struct ruser *r = pick(m, &id);
	const ud_user *u = ud_user_get(m->db, id, strlen(id));
	struct ud_user_view v;

	MCHECK(m, !u == !r);
	if (!r)
		return;
	ud_user_view(u, &v);
	MCHECK(m, v.etag == r->etag && v.role == r->role &&
		      v.status == r->status && v.name_len == strlen(r->name) &&
		      memcmp(v.name, r->name, v.name_len) == 0);
	MCHECK(m, ud_user_get_by_email(m->db, r->email, strlen(r->email)) == u);
}

static void step(struct model *m)
{
	unsigned k = rnd(m, 100);

	if (k < 22 || m->n < 50)
		op_create(m);
	else if (k < 40)
		op_update(m);
	else if (k < 56)
		op_delete(m);
	else if (k < 64)
		op_suspend(m);
	else if (k < 69)
		op_identity(m);
	else if (k < 72)
		op_password(m);
	else if (k < 92)
		op_list(m);
	else
		op_lookup(m);
}

static void run(unsigned long ops, unsigned long check_every)
{
	struct model *m = calloc(1, sizeof(*m));
	struct hdb_mirror mirror = {0};
	const char *env = getenv("UD_SEED");
	struct ud_error err = {0};
	char why[200];
	ud_db *copy;
	size_t i;

	m->base_seed = env ? (unsigned)strtoul(env, NULL, 10) : 20250120u;
	m->seed = m->base_seed;
	m->db = hdb_new(NULL);
	mirror.db = hdb_new(NULL);
	cr_assert_eq(
	    ud_password_hash(&m->db->opts, "model-password", 14, m->hash, NULL),
	    0);
	ud_db_set_journal(m->db, hdb_mirror_cb, &mirror);
	for (m->op = 0; m->op < ops; m->op++) {
		step(m);
		if (m->op % check_every == 0)
			cr_assert_eq(ud_db_check(m->db, &err), 0,
				     "seed %u op %lu: %s", m->base_seed, m->op,
				     err.message);
	}
	hdb_check(m->db);
	hdb_check(mirror.db);
	cr_assert_eq(hdb_compare(m->db, mirror.db, why, sizeof(why)), 0,
		     "seed %u: mirror differs: %s", m->base_seed, why);
	copy = hdb_dump_copy(m->db);
	hdb_check(copy);
	cr_assert_eq(hdb_compare(m->db, copy, why, sizeof(why)), 0,
		     "seed %u: dump differs: %s", m->base_seed, why);
	ud_db_free(copy);
	ud_db_free(mirror.db);
	ud_buf_free(&mirror.last);
	ud_db_free(m->db);
	for (i = 0; i < m->n; i++)
		free(m->live[i]);
	free(m);
}

Test(model, checked_after_every_op)
{
	run(3000, 1);
}

Test(model, hundred_thousand_ops, .timeout = 60)
{
	run(110000, 5000);
}
