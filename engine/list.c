/*
 * list.c -- reading: lookups (with the cache loader), user lists with
 * filters and pages, activity-log pages, user views and writers.
 *
 * How a list is answered:
 *   email given   one index lookup (0 or 1 user), then the other filters;
 *   search given  a scan of the creation order's search signatures
 *                 (sigs.h), oldest or newest first: order_scan_next()
 *                 ANDs the bit slices of the needle's bigrams per group of
 *                 1024 slots and returns the slots whose role/status pass
 *                 and whose name or email signature holds every bigram of
 *                 the needle.  Only those records are read, and only the
 *                 field(s) the signature allows are verified (field_has:
 *                 raw ASCII compare, folding only for non-ASCII text).
 *                 The total needs every match, so the scan is complete and
 *                 a needle found in everybody costs a verification per
 *                 user -- except that a total, once counted, is
 *                 remembered (db->memo) until the next change, and the
 *                 following pages of that search stop once full.
 *                 1M users: ~0.3 ms for a selective needle, ~16 ms for
 *                 one that every user matches (bench/mem_engine);
 *   otherwise     total = sum of <= 9 cell counters; each item of the page
 *                 is the k-th match, found by order_select() in
 *                 O(log n + 256): page 25,000 costs what page 1 costs.
 */
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "codec.h"
#include "db.h"
#include "text.h"
#include "valid.h"

const ud_user *ud_user_get(ud_db *db, const char *id, size_t len)
{
	struct record *r = db_find(db, id, len);

	if (r) {
		db->cache_hits++;
		cache_touch(db, r);
		return (const ud_user *)r;
	}
	db->cache_misses++;
	return (const ud_user *)cache_load(db, UD_KEY_ID, id, len);
}

const ud_user *ud_user_get_by_email(ud_db *db, const char *email, size_t len)
{
	struct record *r = db_find_email(db, email, len);

	if (r) {
		db->cache_hits++;
		cache_touch(db, r);
		return (const ud_user *)r;
	}
	db->cache_misses++;
	return (const ud_user *)cache_load(db, UD_KEY_EMAIL, email, len);
}

#define PREFETCH_BATCH 32

void ud_user_prefetch(ud_db *db, const struct ud_lookup *keys, size_t n)
{
	uint64_t h[PREFETCH_BATCH];
	const struct index *ix;
	const char *r;
	size_t i, m;

	for (; n; keys += m, n -= m) {
		m = n < PREFETCH_BATCH ? n : PREFETCH_BATCH;
		for (i = 0; i < m; i++) { /* every slot, then every record */
			h[i] = keys[i].kind == UD_KEY_EMAIL
				   ? text_fold_hash(keys[i].key, keys[i].len)
				   : XXH3_64bits(keys[i].key, keys[i].len);
			index_prefetch(keys[i].kind == UD_KEY_EMAIL
					   ? &db->by_email
					   : &db->by_id,
				       h[i]);
		}
		for (i = 0; i < m; i++) {
			ix = keys[i].kind == UD_KEY_EMAIL ? &db->by_email
							  : &db->by_id;
			r = index_peek(ix, h[i]);
			if (r) { /* the header and the fields after it */
				__builtin_prefetch(r);
				__builtin_prefetch(r + 64);
				__builtin_prefetch(r + 128);
				__builtin_prefetch(r + 192);
			}
		}
	}
}

void ud_user_view(const ud_user *u, struct ud_user_view *out)
{
	record_view((const struct record *)u, out);
}

int ud_user_write_json(const ud_user *u, struct ud_buf *b)
{
	struct ud_user_view v;

	ud_user_view(u, &v);
	return codec_user_json(&v, b);
}

int ud_user_write_msgpack(const ud_user *u, struct ud_buf *b)
{
	struct ud_user_view v;

	ud_user_view(u, &v);
	return codec_user_mp(&v, b);
}

/* ---- user lists -----------------------------------------------------------
 */

static int check_page(unsigned page, unsigned limit, struct ud_error *err)
{
	if (page < 1)
		return ud_error_set(err, UD_EINVAL, "page",
				    "page must be >= 1");
	if (limit < 1 || limit > UD_LIMIT_MAX)
		return ud_error_set(err, UD_EINVAL, "limit",
				    "limit must be 1..%d", UD_LIMIT_MAX);
	return 0;
}

static int check_query(const struct ud_query *q, struct ud_error *err)
{
	int rc = check_page(q->page, q->limit, err);

	if (rc)
		return rc;
	if (q->role < -1 || q->role >= UD_ROLES)
		return ud_error_set(err, UD_EINVAL, "role", "unknown role");
	if (q->status < -1 || q->status >= UD_STATUSES)
		return ud_error_set(err, UD_EINVAL, "status", "unknown status");
	return 0;
}

/* A search needle, case-folded once, with its signature word and, for an
 * ASCII needle, the mask that makes a compare case-insensitive: orm[j] is
 * 0x20 where s[j] is a letter (s is folded, so lower case), else 0, and
 * (hay byte | orm[j]) == s[j] exactly when the hay byte folds to s[j]. */
struct needle {
	char small[256];
	unsigned char orm[256];
	char *s;
	size_t n;
	uint64_t sig;
	bool ascii; /* all ASCII and n <= sizeof(orm): the raw path applies */
	const uint16_t *fold2; /* the store's two-byte folding table */
};

static int needle_fold(struct needle *nd, const char *s, size_t n)
{
	size_t j;

	nd->s = nd->small;
	nd->n = text_fold(s, n, nd->small, sizeof(nd->small));
	if (nd->n > sizeof(nd->small)) {
		nd->s = malloc(nd->n);
		if (!nd->s)
			return UD_ENOMEM;
		text_fold(s, n, nd->s, nd->n);
	}
	nd->sig = sig_folded(nd->s, nd->n);
	nd->ascii = nd->n > 0 && nd->n <= sizeof(nd->orm);
	for (j = 0; nd->ascii && j < nd->n; j++) {
		unsigned char c = (unsigned char)nd->s[j];

		nd->ascii = c < 0x80;
		nd->orm[j] = c >= 'a' && c <= 'z' ? 0x20 : 0;
	}
	return 0;
}

static inline uint64_t load64(const void *p)
{
	uint64_t x;

	memcpy(&x, p, sizeof(x));
	return x;
}

static bool bytes_ascii(const unsigned char *h, size_t n)
{
	uint64_t acc = 0;
	size_t i = 0;

	for (; i + 8 <= n; i += 8)
		acc |= load64(h + i);
	for (; i < n; i++)
		acc |= h[i];
	return !(acc & 0x8080808080808080ull);
}

/* Does h[0..nd->n) fold to the (ASCII) needle?  8 bytes per compare; the
 * last word overlaps the previous one rather than reading past the end. */
static inline bool ascii_eq(const unsigned char *h, const struct needle *nd)
{
	const unsigned char *s = (const unsigned char *)nd->s;
	size_t j;

	if (nd->n < 8) {
		for (j = 0; j < nd->n; j++)
			if ((h[j] | nd->orm[j]) != s[j])
				return false;
		return true;
	}
	for (j = 0; j + 8 < nd->n; j += 8)
		if ((load64(h + j) | load64(nd->orm + j)) != load64(s + j))
			return false;
	j = nd->n - 8;
	return (load64(h + j) | load64(nd->orm + j)) == load64(s + j);
}

/* memmem() for the short needles of search: a two-byte prefix compare per
 * position, then the rest (memmem's set-up costs more than the search
 * when the haystack is a name). */
static bool bytes_find(const char *h, size_t hn, const char *nd, size_t nn)
{
	uint16_t first, x;
	size_t i;

	if (nn > hn)
		return false;
	if (nn < 2)
		return nn == 0 || memchr(h, nd[0], hn) != NULL;
	memcpy(&first, nd, 2);
	for (i = 0; i + nn <= hn; i++) {
		memcpy(&x, h + i, 2);
		if (x == first && memcmp(h + i + 2, nd + 2, nn - 2) == 0)
			return true;
	}
	return false;
}

/* Fold hay (fast for two-byte code points, sigs.h) and search it. */
static bool folded_has(const char *hay, size_t hn, const struct needle *nd)
{
	char buf[2048];
	size_t len = sig_fold(nd->fold2, hay, hn, buf, sizeof(buf));

	if (len > sizeof(buf)) /* longer than names and emails can fold to */
		return text_ci_contains(hay, hn, nd->s, nd->n);
	return bytes_find(buf, len, nd->s, nd->n);
}

/* Does fold(h) contain the needle?  For an ASCII needle the raw bytes are
 * searched first: a raw hit is a hit (ASCII bytes are whole code points and
 * fold to themselves lowered), a raw miss in an ASCII hay is a miss; only a
 * non-ASCII hay that missed (it may hold e.g. U+212A KELVIN SIGN, which
 * folds to "k") is folded and searched. */
static bool field_has(const char *hay, size_t hn, const struct needle *nd)
{
	const unsigned char *h = (const unsigned char *)hay;
	unsigned char c0, m0;
	size_t i;

	if (!nd->n)
		return true;
	if (!nd->ascii)
		return folded_has(hay, hn, nd);
	c0 = (unsigned char)nd->s[0];
	m0 = nd->orm[0];
	for (i = 0; i + nd->n <= hn; i++)
		if ((h[i] | m0) == c0 && ascii_eq(h + i, nd))
			return true;
	if (bytes_ascii(h, hn))
		return false;
	return folded_has(hay, hn, nd);
}

/* Does r hold the needle in one of fields (enum sig_field bits)? */
static bool search_hit(const struct record *r, unsigned fields,
		       const struct needle *nd)
{
	return ((fields & SIG_NAME) &&
		field_has(record_name(r), r->name_len, nd)) ||
	       ((fields & SIG_EMAIL) &&
		field_has(record_email(r), r->email_len, nd));
}

static bool cell_ok(unsigned mask, uint8_t cell)
{
	return cell < ORDER_CELLS && ((mask >> cell) & 1u);
}

/* Candidates taken from the signature scan at a time.  (Prefetching a
 * batch's records before verifying them was measured slower: records are
 * allocated in creation order and the hardware prefetcher follows the
 * scan better than explicit hints.) */
#define SEARCH_BATCH 32

static const struct search_memo *
memo_find(const ud_db *db, const struct needle *nd, unsigned mask)
{
	const struct search_memo *m;
	size_t i;

	for (i = 0; i < SEARCH_MEMOS; i++) {
		m = &db->memo[i];
		if (m->used && m->gen == db->order.gen && m->mask == mask &&
		    m->len == nd->n && memcmp(m->needle, nd->s, nd->n) == 0)
			return m;
	}
	return NULL;
}

static void memo_put(ud_db *db, const struct needle *nd, unsigned mask,
		     uint64_t total)
{
	struct search_memo *m = &db->memo[db->memo_next++ % SEARCH_MEMOS];

	if (nd->n > SEARCH_MEMO_MAX)
		return;
	m->used = true;
	m->len = (uint8_t)nd->n;
	m->mask = mask;
	m->gen = db->order.gen;
	m->total = total;
	memcpy(m->needle, nd->s, nd->n);
}

/* Walk the signatures in list order; verify the candidates; keep the
 * matches of [offset, offset + limit).  The total needs every match,
 * unless the same search was counted since the last change (memo): then
 * the walk stops when the page is full. */
static void list_search(ud_db *db, const struct ud_query *q, unsigned mask,
			const struct needle *nd, uint64_t offset,
			struct ud_page *out)
{
	const struct order *o = &db->order;
	const struct search_memo *memo = memo_find(db, nd, mask);
	uint64_t stop = memo ? offset + q->limit : UINT64_MAX;
	uint32_t slots[SEARCH_BATCH];
	uint8_t fields[SEARCH_BATCH];
	struct order_scan it;
	const struct record *r;
	size_t n, i;

	order_scan_init(o, &it, nd->sig, mask, q->asc);
	while (out->total < stop &&
	       (n = order_scan_next(o, &it, slots, fields, SEARCH_BATCH))) {
		for (i = 0; i < n && out->total < stop; i++) {
			r = o->items[slots[i]];
			if (!search_hit(r, fields[i], nd))
				continue;
			if (out->total >= offset && out->count < q->limit)
				out->items[out->count++] = (const ud_user *)r;
			out->total++;
		}
	}
	if (memo)
		out->total = memo->total;
	else
		memo_put(db, nd, mask, out->total);
}

static void list_email(ud_db *db, const struct ud_query *q, unsigned mask,
		       const struct needle *nd, uint64_t offset,
		       struct ud_page *out)
{
	struct record *r = db_find_email(db, q->email, q->email_len);

	if (!r || !cell_ok(mask, db->order.cells[r->slot]) ||
	    (nd && !search_hit(r, SIG_NAME | SIG_EMAIL, nd)))
		return;
	out->total = 1;
	if (offset == 0)
		out->items[out->count++] = (const ud_user *)r;
}

/* The next live slot after *slot (before it when !asc) whose cell is in
 * mask, looking at no more than LIST_STEP_MAX slots; NULL when none is that
 * near (the caller then selects by rank). */
#define LIST_STEP_MAX 512

static void *list_step(const struct order *o, unsigned mask, uint32_t *slot,
		       bool asc)
{
	size_t s = *slot, n;
	uint8_t c;

	for (n = 0; n < LIST_STEP_MAX; n++) {
		if (asc ? s + 1 >= o->len : s == 0)
			return NULL;
		s = asc ? s + 1 : s - 1;
		c = o->cells[s];
		if (c < ORDER_CELLS && ((mask >> c) & 1u)) {
			*slot = (uint32_t)s;
			return o->items[s];
		}
	}
	return NULL;
}

/* The page's first item by rank (O(log n + block)), the rest by stepping
 * to the neighbouring slots of the same cells: with a role and a status
 * one slot in nine matches, so a step reads a few bytes of cells where a
 * rank select walks the Fenwick tree (perf: order_select was 22% of the
 * server's time on first pages of 20 before this). */
static void list_cells(ud_db *db, const struct ud_query *q, unsigned mask,
		       uint64_t offset, struct ud_page *out)
{
	const struct order *o = &db->order;
	uint32_t slot = 0;
	void *item = NULL;
	uint64_t k;

	out->total = order_count(o, mask);
	for (k = offset; k < out->total && out->count < q->limit; k++) {
		if (item)
			item = list_step(o, mask, &slot, q->asc);
		if (!item)
			item = order_select(
			    o, mask, q->asc ? k : out->total - 1 - k, &slot);
		out->items[out->count++] = item;
	}
}

uint64_t ud_generation(const ud_db *db)
{
	return db->order.gen;
}

int ud_user_list(ud_db *db, const struct ud_query *q, struct ud_page *out,
		 struct ud_error *err)
{
	unsigned mask = order_mask(q->role, q->status);
	uint64_t offset = (uint64_t)(q->page - 1) * q->limit;
	struct needle nd = {.s = NULL};
	bool search = q->search && q->search_len;
	int rc = check_query(q, err);

	if (rc)
		return rc;
	out->count = 0;
	out->total = 0;
	out->page = q->page;
	out->limit = q->limit;
	nd.fold2 = db->fold2;
	if (search && needle_fold(&nd, q->search, q->search_len))
		return ud_error_set(err, UD_ENOMEM, NULL, "out of memory");
	if (q->email)
		list_email(db, q, mask, search ? &nd : NULL, offset, out);
	else if (search)
		list_search(db, q, mask, &nd, offset, out);
	else
		list_cells(db, q, mask, offset, out);
	if (nd.s != nd.small)
		free(nd.s);
	out->pages = (out->total + q->limit - 1) / q->limit;
	return 0;
}

/* ---- activity-log pages ---------------------------------------------------
 */

static void log_implicit(const ud_db *db, const struct record *r,
			 struct ud_log_view *v)
{
	v->id = r->seq;
	v->user_id = record_id(r);
	v->user_id_len = r->id_len;
	v->event = UD_EV_CREATED;
	v->created_ms = r->created_ms;
	v->details =
	    actors_created_details(&db->actors, r->seq, &v->details_len);
}

static void log_fill(const struct ulog *l, uint64_t offset,
		     struct ud_log_page *out)
{
	const struct event *e;
	uint64_t i;

	out->total = l->count;
	for (i = offset; i < l->count && out->count < out->limit; i++) {
		e = actlog_event(l, (uint32_t)i);
		out->items[out->count++] = (struct ud_log_view){
		    e->id, l->id,      l->id_len,     e->type,
		    e->ms, e->details, e->details_len};
	}
}

int ud_log_list(ud_db *db, const char *user_id, size_t len, unsigned page,
		unsigned limit, struct ud_log_page *out, struct ud_error *err)
{
	uint64_t offset = (uint64_t)(page - 1) * limit;
	const struct record *r;
	const struct ulog *l;
	struct ud_error e;
	int rc = check_page(page, limit, err);

	if (rc)
		return rc;
	/* a value that can be no user's id is a bad query, not an empty log */
	if (valid_id(user_id, len, &e))
		return ud_error_set(err, UD_EINVAL, "user_id",
				    "user_id must be a user id: usr_ and 1 to "
				    "60 of A-Z a-z 0-9 _ -");
	out->count = 0;
	out->total = 0;
	out->page = page;
	out->limit = limit;
	r = db_find(db, user_id, len);
	if (r && !(r->flags & (REC_HAS_LOG | REC_LOADED))) {
		out->total = 1;
		if (offset == 0)
			log_implicit(db, r, &out->items[out->count++]);
	} else if ((l = actlog_find(&db->log, user_id, len)) != NULL) {
		log_fill(l, offset, out);
	}
	out->pages = (out->total + limit - 1) / limit;
	return 0;
}
