/*
 * test_search.c -- `search` (list.c over the signatures of sigs.c and
 * order.c) against a brute-force scan: fold name, email and needle with
 * text_fold() and memmem() them, over a reference list kept in creation
 * order.  Names and emails mix ASCII, Cyrillic, Greek, CJK, accented
 * letters and the foldings that change length or leave ASCII ("ß" ->
 * "ss", KELVIN SIGN -> "k", LONG S -> "s", "ﬁ" -> "fi", "İ" -> "i̇").
 * Signatures must stay exact across creates, renames, email changes,
 * role/status changes, deletes with compaction, replay (a mirror store fed
 * the journal) and cache eviction; ud_db_check() recomputes them.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "helper_db.h"
#include "sigs.h"
#include "text.h"

static const char *const pieces[] = {
    "Ann",
    "BOB",
    "carol",
    "José",
    "MÜLLER",
    "müller",
    "Ångström",
    "Straße",
    "STRASSE",
    "strasse",
    "Дмитрий",
    "ДМИТРИЙ",
    "ёлка",
    "Σοφία",
    "ΟΔΥΣΣΕΥΣ",
    "οδυσσευς",
    "王小明",
    "東京",
    "李",
    "\xe2\x84\xaa"
    "elvin", /* KELVIN SIGN */
    "\xc5\xbftar",
    /* LONG S */ "\xef\xac\x81ne", /* LIGATURE FI */
    "İstanbul",
    "Zoë",
    "x",
    "ab",
    "name",
    "NAME",
    "Ωmega",
    "Ǆemal",
};

static const char *const local_parts[] = {
    "ann",    "BOB",	      "müller",	 "δ",	   "王",
    "Kelvin", "\xe2\x84\xaa", "STRASSE", "straße", "x"};

static const char *const domains[] = {"example.com", "EXAMPLE.org", "müller.de",
				      "例え.jp", "x.io"};

#define MAXU 6000

struct ruser {
	char id[UD_ID_MAX + 1];
	char name[256];
	char email[256];
	int role, status;
	bool live;
};

struct world {
	ud_db *db;
	struct hdb_mirror mirror; /* replays every change record */
	struct ruser u[MAXU];
	size_t n; /* creation order, dead ones kept */
	unsigned seed;
	unsigned long serial;
	unsigned long queries, matches;
	bool cache; /* users may be evicted behind the reference's back */
};

static unsigned rnd(struct world *w, unsigned n)
{
	return (unsigned)rand_r(&w->seed) % n;
}

static const char *pick(struct world *w, const char *const *a, size_t n)
{
	return a[rnd(w, (unsigned)n)];
}

#define PICK(w, a) pick(w, a, sizeof(a) / sizeof(a[0]))

static void make_name(struct world *w, char *out, size_t cap)
{
	int k = 1 + (int)rnd(w, 3), i, len = 0;

	for (i = 0; i < k; i++)
		len += snprintf(out + len, cap - len, "%s%s", i ? " " : "",
				PICK(w, pieces));
	if (rnd(w, 2))
		snprintf(out + len, cap - len, " %u", rnd(w, 1000));
}

static void make_email(struct world *w, char *out, size_t cap)
{
	snprintf(out, cap, "%s%lu@%s", PICK(w, local_parts), w->serial++,
		 PICK(w, domains));
}

/* fold(hay) contains fold(needle), the slow obvious way. */
static bool ref_contains(const char *hay, const char *needle)
{
	char fh[4096], fn[4096];
	size_t hn = text_fold(hay, strlen(hay), fh, sizeof(fh));
	size_t nn = text_fold(needle, strlen(needle), fn, sizeof(fn));

	cr_assert(hn <= sizeof(fh) && nn <= sizeof(fn));
	return memmem(fh, hn, fn, nn) != NULL;
}

static bool ref_match(const struct ruser *r, const struct ud_query *q)
{
	return r->live && (q->role < 0 || q->role == r->role) &&
	       (q->status < 0 || q->status == r->status) &&
	       (ref_contains(r->name, q->search) ||
		ref_contains(r->email, q->search));
}

static struct ruser *random_live(struct world *w)
{
	size_t i, start;

	if (!w->n)
		return NULL;
	start = rnd(w, (unsigned)w->n);
	for (i = 0; i < w->n; i++)
		if (w->u[(start + i) % w->n].live)
			return &w->u[(start + i) % w->n];
	return NULL;
}

/* A substring of s on code point boundaries, 1..6 code points long, with
 * ASCII letters' case flipped at random. */
static void cut_needle(struct world *w, const char *s, char *out)
{
	size_t n = strlen(s), a, b, i, k;

	a = rnd(w, (unsigned)n);
	while (a > 0 && ((unsigned char)s[a] & 0xc0) == 0x80)
		a--;
	b = a;
	for (k = 1 + rnd(w, 6); k && b < n; k--) {
		b++;
		while (b < n && ((unsigned char)s[b] & 0xc0) == 0x80)
			b++;
	}
	for (i = a; i < b; i++) {
		char c = s[i];

		if (rnd(w, 2) &&
		    ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
			c ^= 0x20;
		out[i - a] = c;
	}
	out[b - a] = 0;
}

static void make_needle(struct world *w, char *out, size_t cap)
{
	struct ruser *r = random_live(w);
	static const char *const odd[] = {
	    "ss",  "SS", "k",  "K",   "s",   "fi", "i̇",
	    "σ",   "ς",	 "Σ",  "é",   "ü",   "@",  ".",
	    "com", "0",	 "1",  "xyz", "@ex", "ß",  "\xe2\x84\xaa",
	    "王",  "ДМ", "zz", "q@"};

	switch (rnd(w, 4)) {
	case 0:
	case 1:
		if (r) {
			cut_needle(w, rnd(w, 2) ? r->name : r->email, out);
			break;
		}
		/* fall through */
	case 2:
		snprintf(out, cap, "%s", PICK(w, odd));
		break;
	default:
		snprintf(out, cap, "%s", PICK(w, pieces));
		if (rnd(w, 2))
			out[strlen(out) / 2 + 1] = 0; /* maybe mid code point */
	}
}

static const char *id_of(const ud_user *u, char *buf)
{
	return hdb_id(u, buf);
}

/* One list query on db against the reference; every page checked when the
 * result is small, else page 1 and one random page. */
static void check_query(struct world *w, ud_db *db, const char *needle)
{
	static struct ud_page p;
	struct ud_query q;
	struct ud_error err = {0};
	static size_t want[MAXU];
	size_t nwant = 0, i, k, start;
	char id[UD_ID_MAX + 1];
	unsigned page, pages;

	ud_query_init(&q);
	q.search = needle;
	q.search_len = strlen(needle);
	q.role = rnd(w, 3) ? -1 : (int)rnd(w, UD_ROLES);
	q.status = rnd(w, 3) ? -1 : (int)rnd(w, UD_STATUSES);
	q.asc = rnd(w, 2);
	q.limit = 1 + rnd(w, 100);
	for (i = 0; i < w->n; i++) {
		size_t s = q.asc ? i : w->n - 1 - i;

		if (ref_match(&w->u[s], &q))
			want[nwant++] = s;
	}
	pages = (unsigned)((nwant + q.limit - 1) / q.limit);
	for (page = 1; page <= pages + 1; page++) {
		if (page > 3 && page < pages) /* big result: sample pages */
			page += rnd(w, pages - page);
		q.page = page;
		cr_assert_eq(ud_user_list(db, &q, &p, &err), 0, "%s",
			     err.message);
		cr_assert_eq(p.total, nwant,
			     "search \"%s\": total %llu, want %zu", needle,
			     (unsigned long long)p.total, nwant);
		start = (size_t)(page - 1) * q.limit;
		k = start >= nwant ? 0 : nwant - start;
		cr_assert_eq(p.count, k < q.limit ? k : q.limit);
		for (i = 0; i < p.count; i++)
			cr_assert_str_eq(
			    id_of(p.items[i], id), w->u[want[start + i]].id,
			    "search \"%s\" page %u item %zu", needle, page, i);
	}
	w->queries++;
	w->matches += nwant;
}

static void check_queries(struct world *w, int count)
{
	char needle[128];
	int i;

	for (i = 0; i < count; i++) {
		make_needle(w, needle, sizeof(needle));
		check_query(w, w->db, needle);
		if (w->mirror.db)
			check_query(w, w->mirror.db, needle);
	}
}

static const char *const role_names[] = {"admin", "user", "viewer"};
static const char *const status_names[] = {"active", "inactive", "suspended"};

static void op_create(struct world *w)
{
	struct ruser *r = &w->u[w->n];
	struct ud_fields f;
	struct ud_error err = {0};
	const ud_user *u;

	if (w->n == MAXU)
		return;
	make_name(w, r->name, sizeof(r->name));
	make_email(w, r->email, sizeof(r->email));
	r->role = (int)rnd(w, UD_ROLES);
	r->status = (int)rnd(w, UD_STATUSES);
	f = hdb_fields(r->name, r->email);
	hdb_set(&f, UD_F_ROLE, role_names[r->role]);
	hdb_set(&f, UD_F_STATUS, status_names[r->status]);
	cr_assert_eq(ud_user_create(w->db, &f, &u, &err), 0, "%s: %s", r->name,
		     err.message);
	hdb_id(u, r->id);
	r->live = true;
	w->n++;
}

static void op_update(struct world *w)
{
	struct ruser *r = random_live(w);
	struct ruser nr;
	struct ud_fields f = {0};
	struct ud_error err = {0};
	int rc;

	if (!r)
		return;
	nr = *r;
	switch (rnd(w, 4)) {
	case 0:
		make_name(w, nr.name, sizeof(nr.name));
		hdb_set(&f, UD_F_NAME, nr.name);
		break;
	case 1:
		make_email(w, nr.email, sizeof(nr.email));
		hdb_set(&f, UD_F_EMAIL, nr.email);
		break;
	case 2: /* same email, other case: same user, new bytes */
		for (size_t i = 0; nr.email[i]; i++)
			if ((nr.email[i] >= 'a' && nr.email[i] <= 'z') ||
			    (nr.email[i] >= 'A' && nr.email[i] <= 'Z'))
				nr.email[i] ^= 0x20;
		hdb_set(&f, UD_F_EMAIL, nr.email);
		break;
	default:
		nr.role = (int)rnd(w, UD_ROLES);
		nr.status = (int)rnd(w, UD_STATUSES);
		hdb_set(&f, UD_F_ROLE, role_names[nr.role]);
		hdb_set(&f, UD_F_STATUS, status_names[nr.status]);
	}
	rc = ud_user_update(w->db, r->id, strlen(r->id), &f, 0, NULL, &err);
	if (rc == UD_ENOTFOUND && w->cache) {
		r->live = false; /* evicted */
		return;
	}
	cr_assert_eq(rc, 0, "%s", err.message);
	*r = nr;
}

static void op_delete(struct world *w)
{
	struct ruser *r = random_live(w);
	struct ud_error err = {0};
	int rc;

	if (!r)
		return;
	rc = ud_user_delete(w->db, r->id, strlen(r->id), 0, &err);

	cr_assert(rc == 0 || (rc == UD_ENOTFOUND && w->cache), "%s",
		  err.message);
	r->live = false;
}

static void step(struct world *w, unsigned create, unsigned update,
		 unsigned del)
{
	unsigned x = rnd(w, create + update + del);

	if (x < create)
		op_create(w);
	else if (x < create + update)
		op_update(w);
	else
		op_delete(w);
}

static void world_init(struct world *w, unsigned seed, bool mirror)
{
	memset(w, 0, sizeof(*w));
	w->seed = seed;
	w->db = hdb_new(NULL);
	if (mirror) {
		w->mirror.db = hdb_new(NULL);
		ud_db_set_journal(w->db, hdb_mirror_cb, &w->mirror);
	}
}

static void world_free(struct world *w)
{
	ud_db_free(w->db);
	if (w->mirror.db)
		ud_db_free(w->mirror.db);
}

static void check_both(struct world *w)
{
	hdb_check(w->db);
	if (w->mirror.db)
		hdb_check(w->mirror.db);
}

Test(search, random_mix_matches_brute_force)
{
	static struct world w;
	int i;

	world_init(&w, 7, true);
	for (i = 0; i < 1500; i++) {
		step(&w, 6, 3, 1);
		if (i % 100 == 0) {
			check_both(&w);
			check_queries(&w, 10);
		}
	}
	check_both(&w);
	check_queries(&w, 150);
	/* delete most users: order compaction moves every slot */
	for (i = 0; i < 1300; i++) {
		step(&w, 0, 1, 4);
		if (i % 100 == 0) {
			check_both(&w);
			check_queries(&w, 5);
		}
	}
	check_both(&w);
	check_queries(&w, 100);
	for (i = 0; i < 600; i++)
		step(&w, 5, 3, 2);
	check_both(&w);
	check_queries(&w, 100);
	cr_assert_gt(w.matches, 1000, "the needles should match somebody");
	world_free(&w);
}

/* Every needle, every position: all substrings of a few hard names. */
Test(search, every_substring_of_hard_names)
{
	static struct world w;
	static const char *const hard[] = {"Straße Müller", "ΟΔΥΣΣΕΥΣ Σοφία",
					   "\xe2\x84\xaa\xc5\xbf\xef\xac\x81",
					   "İstanbul 王小明", "Ǆemal Дмитрий"};
	char needle[128];
	size_t i, a, b, n;

	world_init(&w, 3, false);
	for (i = 0; i < 40; i++)
		op_create(&w);
	for (i = 0; i < sizeof(hard) / sizeof(hard[0]); i++) {
		struct ruser *r = &w.u[w.n];
		struct ud_fields f;
		const ud_user *u;

		snprintf(r->name, sizeof(r->name), "%s", hard[i]);
		make_email(&w, r->email, sizeof(r->email));
		f = hdb_fields(r->name, r->email);
		cr_assert_eq(ud_user_create(w.db, &f, &u, NULL), 0);
		hdb_id(u, r->id);
		r->role = UD_ROLE_USER, r->status = UD_STATUS_ACTIVE;
		r->live = true;
		w.n++;
	}
	hdb_check(w.db);
	for (i = 0; i < sizeof(hard) / sizeof(hard[0]); i++) {
		n = strlen(hard[i]);
		for (a = 0; a < n; a++)
			for (b = a + 1; b <= n && b - a < sizeof(needle); b++) {
				memcpy(needle, hard[i] + a, b - a);
				needle[b - a] = 0;
				check_query(&w, w.db, needle);
			}
	}
	/* folded and upper-case spellings of the same names */
	check_query(&w, w.db, "STRASSE M");
	check_query(&w, w.db, "strasse");
	check_query(&w, w.db, "οδυσσευσ σοφ");
	check_query(&w, w.db, "kſ");
	check_query(&w, w.db, "KSFI");
	check_query(&w, w.db, "i̇stanbul");
	check_query(&w, w.db, "ǆemal дмитрий");
	world_free(&w);
}

struct collect {
	struct world *w;
	size_t n;
};

/* Rebuild the reference from what the cache still holds. */
static int keep_cb(const ud_user *u, void *ctx)
{
	struct collect *c = ctx;
	struct ud_user_view v;
	struct ruser *r = &c->w->u[c->n++];

	ud_user_view(u, &v);
	memset(r, 0, sizeof(*r));
	memcpy(r->id, v.id, v.id_len);
	memcpy(r->name, v.name, v.name_len);
	memcpy(r->email, v.email, v.email_len);
	r->role = v.role;
	r->status = v.status;
	r->live = true;
	return 0;
}

/* The loader's backing store: "usr_load<k>" is "Loaded Straße <k>". */
static int loader_cb(void *ctx, enum ud_key_kind kind, const char *key,
		     size_t len, struct ud_fields *out)
{
	static char id[32], name[48], email[48];
	unsigned k;

	(void)ctx;
	if (kind != UD_KEY_ID || len < 9 || len > 20 ||
	    memcmp(key, "usr_load", 8) != 0)
		return UD_ENOTFOUND;
	k = (unsigned)atoi(key + 8);
	snprintf(id, sizeof(id), "usr_load%u", k);
	snprintf(name, sizeof(name), "Loaded Straße %u", k);
	snprintf(email, sizeof(email), "LOAD%u@ΔΈΛΤΑ.gr", k);
	*out = hdb_fields(name, email);
	hdb_set(out, UD_F_ID, id);
	return 0;
}

Test(search, cache_eviction_and_loads_keep_signatures)
{
	static struct world w, tmp;
	struct ud_options o = ud_options_default;
	struct collect c = {&tmp, 0};
	size_t loaded;
	char id[32];
	int i;

	o.max_users = 300;
	o.loader = loader_cb;
	world_init(&w, 5, false);
	ud_db_free(w.db);
	w.db = hdb_new(&o);
	w.cache = true;
	for (i = 0; i < 2000; i++) {
		step(&w, 7, 2, 1);
		if (i % 5 == 0) { /* a miss: the loader inserts the user */
			snprintf(id, sizeof(id), "usr_load%d", i % 400);
			cr_assert(ud_user_get(w.db, id, strlen(id)));
		}
		if (i % 250 == 0)
			hdb_check(w.db);
	}
	hdb_check(w.db);
	/* the reference is what is cached, in the store's creation order */
	memset(&tmp, 0, sizeof(tmp));
	tmp.db = w.db;
	tmp.seed = 9;
	ud_user_foreach(w.db, keep_cb, &c);
	tmp.n = c.n;
	cr_assert_leq(tmp.n, 300);
	check_queries(&tmp, 200);
	for (i = 0, loaded = 0; i < (int)tmp.n; i++)
		loaded += strncmp(tmp.u[i].id, "usr_load", 8) == 0;
	cr_assert_gt(loaded, 0, "loaded users are cached");
	for (i = 0; i < 10; i++) {
		check_query(&tmp, w.db, "loaded strasse");
		check_query(&tmp, w.db, "@δέλτα.GR");
	}
	ud_db_free(w.db);
}

Test(search, checker_catches_a_stale_signature)
{
	ud_db *db = hdb_new(NULL);
	struct ud_error err = {0};
	struct sig g;
	int rc;

	hdb_create(db, "Ann Smith", "ann@example.com");
	hdb_create(db, "Bob", "bob@example.com");
	cr_assert_eq(ud_db_check(db, &err), 0);

	order_sig(&db->order, 1, &g);
	g.email ^= 1ull << 5;
	order_set_sig(&db->order, 1, &g);
	rc = ud_db_check(db, &err);
	cr_assert_eq(rc, UD_EINTERNAL, "%d %s", rc, err.message);
	cr_assert(strstr(err.message, "signature"), "%s", err.message);
	ud_db_free(db);
}

Test(search, signatures_follow_folding)
{
	cr_assert_eq(sig_text("ABC", 3), sig_folded("abc", 3));
	cr_assert_eq(sig_text("Straße", strlen("Straße")),
		     sig_folded("strasse", 7));
	cr_assert_eq(sig_text("ΣΟΦΊΑ", strlen("ΣΟΦΊΑ")),
		     sig_text("σοφία", strlen("σοφία")));
	cr_assert_eq(sig_folded("a", 1), 0);
	cr_assert_eq(sig_folded("", 0), 0);
	cr_assert_neq(sig_folded("ab", 2), 0);
	/* cut inside code points: the whole ones still filter */
	cr_assert_eq(sig_folded("\xa9xyz", 4), sig_folded("xyz", 3));
	cr_assert_eq(sig_folded("xyz\xc3", 4), sig_folded("xyz", 3));
	cr_assert_eq(sig_folded("\x84\xaaxyz\xe2\x84", 7),
		     sig_folded("xyz", 3));
	/* invalid inside: no filter */
	cr_assert_eq(sig_folded("x\xffyz", 4), 0);
	/* code points, not bytes: a two-byte letter is one unit */
	cr_assert_eq(sig_folded("ä", 2), 0);
	cr_assert_neq(sig_folded("äb", 3), 0);
	cr_assert(sig_may(sig_text("User Name 42", 12), sig_folded("name", 4)));
}

/* The subset property on random strings (mostly valid UTF-8, with stray
 * bytes now and then): the signature of any byte range of fold(s), cut
 * anywhere, even inside code points, is within sig_text(s). */
Test(search, substring_signature_is_a_subset)
{
	static const char *const units[] = {"a",
					    "A",
					    "b",
					    "B",
					    "z",
					    "Z",
					    "0",
					    "9",
					    "@",
					    ".",
					    " ",
					    "ß",
					    "Σ",
					    "ς",
					    "Д",
					    "王",
					    "\xe2\x84\xaa",
					    "\xf0\x9f\x98\x80"};
	static const char *const stray[] = {"\xc3", "\x9f", "\xff", "\xe2\x84"};
	unsigned seed = 17;
	char s[256], f[1024];
	size_t n, fl, a, b, k;
	const char *u;
	int i, j;

	for (i = 0; i < 20000; i++) {
		n = 0;
		for (j = 0; j < 1 + rand_r(&seed) % 30; j++) {
			u = rand_r(&seed) % 10
				? units[rand_r(&seed) %
					(sizeof(units) / sizeof(units[0]))]
				: stray[rand_r(&seed) % 4];
			memcpy(s + n, u, strlen(u));
			n += strlen(u);
		}
		fl = text_fold(s, n, f, sizeof(f));
		cr_assert(fl <= sizeof(f));
		if (utf8_count(s, n) >= 0)
			cr_assert_eq(sig_text(s, n), sig_folded(f, fl));
		for (k = 0; k < 8; k++) {
			a = (size_t)rand_r(&seed) % fl;
			b = a + (size_t)rand_r(&seed) % (fl - a) + 1;
			cr_assert(
			    sig_may(sig_text(s, n), sig_folded(f + a, b - a)),
			    "bytes %zu..%zu of %zu", a, b, fl);
		}
	}
}

static uint64_t total_of(ud_db *db, const char *needle, int role, unsigned page)
{
	static struct ud_page p;
	struct ud_query q;

	ud_query_init(&q);
	q.search = needle;
	q.search_len = strlen(needle);
	q.role = role;
	q.limit = 1;
	q.page = page;
	cr_assert_eq(ud_user_list(db, &q, &p, NULL), 0);
	cr_assert_eq(p.count, page <= p.total ? 1u : 0u);
	return p.total;
}

/* A remembered total (the next pages of a search stop early) is dropped
 * by every kind of change that can alter it. */
Test(search, remembered_totals_follow_changes)
{
	ud_db *db = hdb_new(NULL);
	struct ud_fields f;
	char email[32], id[UD_ID_MAX + 1], first[UD_ID_MAX + 1];
	int i;

	for (i = 0; i < 10; i++) {
		snprintf(email, sizeof(email), "u%d@b.io", i);
		hdb_id(hdb_create(db, i < 3 ? "Zed Zedson" : "Ann", email),
		       i ? id : first);
	}
	cr_assert_eq(total_of(db, "zed", -1, 1), 3);
	cr_assert_eq(total_of(db, "zed", -1, 2), 3); /* remembered */
	cr_assert_eq(total_of(db, "zed", -1, 3), 3);
	/* a rename (id is the newest user, "Ann") */
	f = hdb_fields("Ann Zedd", NULL);
	cr_assert_eq(ud_user_update(db, id, strlen(id), &f, 0, NULL, NULL), 0);
	cr_assert_eq(total_of(db, "zed", -1, 2), 4);
	/* an email change */
	f = hdb_fields(NULL, "zed@b.io");
	cr_assert_eq(
	    ud_user_update(db, first, strlen(first), &f, 0, NULL, NULL), 0);
	cr_assert_eq(total_of(db, "zed@", -1, 1), 1);
	f = hdb_fields(NULL, "u0@b.io");
	cr_assert_eq(
	    ud_user_update(db, first, strlen(first), &f, 0, NULL, NULL), 0);
	cr_assert_eq(total_of(db, "zed@", -1, 1), 0);
	/* a role change under a role filter */
	cr_assert_eq(total_of(db, "zed", UD_ROLE_ADMIN, 1), 0);
	f = (struct ud_fields){0};
	hdb_set(&f, UD_F_ROLE, "admin");
	cr_assert_eq(ud_user_update(db, id, strlen(id), &f, 0, NULL, NULL), 0);
	cr_assert_eq(total_of(db, "zed", UD_ROLE_ADMIN, 1), 1);
	/* a delete, a create */
	cr_assert_eq(ud_user_delete(db, id, strlen(id), 0, NULL), 0);
	cr_assert_eq(total_of(db, "zed", -1, 2), 3);
	hdb_create(db, "Zed Again", "again@b.io");
	cr_assert_eq(total_of(db, "zed", -1, 2), 4);
	hdb_check(db);
	ud_db_free(db);
}
