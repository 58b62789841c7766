/*
 * query.c -- the list query (SPEC §2 "List query"): defaults, one parameter
 * at a time from its string form (HTTP query string), and the RPC map form.
 *
 * Strict on purpose: an out-of-range or misspelt value is a 400, never a
 * silent clamp.  Integers are decimal digits only (leading zeros allowed; no
 * sign, no spaces, no overflow).  An empty `email` or `search` means "no
 * filter", as an empty HTML form field would.
 */
#include <string.h>

#include "codec.h"
#include "text.h"
#include "valid.h"

#define PAGE_MAX 1000000000u

void ud_query_init(struct ud_query *q)
{
	memset(q, 0, sizeof(*q));
	q->page = 1;
	q->limit = 20;
	q->role = -1;
	q->status = -1;
}

/* Decimal digits only, value <= max.  0 or -1. */
static int parse_uint(const char *s, size_t n, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (n == 0)
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
		if (v > max)
			return -1;
	}
	*out = v;
	return 0;
}

static bool key_is(const char *key, size_t n, const char *name)
{
	return strlen(name) == n && memcmp(key, name, n) == 0;
}

static int set_page(struct ud_query *q, uint64_t v, struct ud_error *err)
{
	if (v < 1 || v > PAGE_MAX)
		return ud_error_set(err, UD_EINVAL, "page",
				    "page must be an integer from 1 to %u",
				    PAGE_MAX);
	q->page = (unsigned)v;
	return 0;
}

static int set_limit(struct ud_query *q, uint64_t v, struct ud_error *err)
{
	if (v < 1 || v > UD_LIMIT_MAX)
		return ud_error_set(err, UD_EINVAL, "limit",
				    "limit must be an integer from 1 to %d",
				    UD_LIMIT_MAX);
	q->limit = (unsigned)v;
	return 0;
}

/* email and search: borrowed text, empty = no filter. */
static int set_text(const char **dst, size_t *dst_len, const char *field,
		    const char *val, size_t n, struct ud_error *err)
{
	if (utf8_count(val, n) < 0)
		return ud_error_set(err, UD_EINVAL, field,
				    "%s must be valid UTF-8", field);
	*dst = n ? val : NULL;
	*dst_len = n;
	return 0;
}

int ud_query_set(struct ud_query *q, const char *key, size_t key_len,
		 const char *val, size_t val_len, struct ud_error *err)
{
	uint64_t v = 0;

	if (key_is(key, key_len, "page"))
		return parse_uint(val, val_len, UINT64_MAX / 10, &v)
			   ? set_page(q, 0, err)
			   : set_page(q, v, err);
	if (key_is(key, key_len, "limit"))
		return parse_uint(val, val_len, UINT64_MAX / 10, &v)
			   ? set_limit(q, 0, err)
			   : set_limit(q, v, err);
	if (key_is(key, key_len, "role")) {
		q->role = ud_role_parse(val, val_len);
		return q->role >= 0 ? 0
				    : ud_error_set(err, UD_EINVAL, "role",
						   "role must be admin, user "
						   "or viewer");
	}
	if (key_is(key, key_len, "status")) {
		q->status = ud_status_parse(val, val_len);
		return q->status >= 0 ? 0
				      : ud_error_set(err, UD_EINVAL, "status",
						     "status must be active, "
						     "inactive or suspended");
	}
	if (key_is(key, key_len, "email"))
		return set_text(&q->email, &q->email_len, "email", val, val_len,
				err);
	if (key_is(key, key_len, "search"))
		return set_text(&q->search, &q->search_len, "search", val,
				val_len, err);
	if (key_is(key, key_len, "order")) {
		if (val_len == 3 && memcmp(val, "asc", 3) == 0)
			q->asc = true;
		else if (val_len == 4 && memcmp(val, "desc", 4) == 0)
			q->asc = false;
		else
			return ud_error_set(err, UD_EINVAL, "order",
					    "order must be asc or desc");
		return 0;
	}
	return valid_unknown_key("query parameter", key, key_len, err);
}

static const char *const query_keys[] = {
    "page", "limit", "role", "status", "email", "search", "order",
};

/* The static spelling of a known key, or NULL. */
static const char *known_key(const char *k, size_t n)
{
	size_t i;

	for (i = 0; i < sizeof(query_keys) / sizeof(query_keys[0]); i++)
		if (key_is(k, n, query_keys[i]))
			return query_keys[i];
	return NULL;
}

/* One key/value of the RPC map: nil means "not given"; page and limit may
 * be integers; anything else must be a string.  *seen: the keys so far (a
 * key twice is refused: JSON readers would keep only one). */
static int query_set_mp(struct ud_query *q, const struct codec_mp_item *k,
			const struct codec_mp_item *v, unsigned *seen,
			struct ud_error *err)
{
	const char *name = known_key(k->s, k->n);
	unsigned bit = 1;
	bool num;

	if (!name)
		return valid_unknown_key("query parameter", k->s, k->n, err);
	while (query_keys[__builtin_ctz(bit)] != name)
		bit <<= 1;
	if (*seen & bit)
		return ud_error_set(err, UD_EINVAL, name, "%s is given twice",
				    name);
	*seen |= bit;
	num = name == query_keys[0] || name == query_keys[1];
	if (v->type == CODEC_MP_NIL)
		return 0;
	if (num && (v->type == CODEC_MP_UINT || v->type == CODEC_MP_INT)) {
		uint64_t u = v->type == CODEC_MP_UINT ? v->u : 0;

		return name == query_keys[0] ? set_page(q, u, err)
					     : set_limit(q, u, err);
	}
	if (v->type == CODEC_MP_STR || v->type == CODEC_MP_BIN)
		return ud_query_set(q, k->s, k->n, v->s, v->n, err);
	return ud_error_set(err, UD_EINVAL, name, "%s must be %s", name,
			    num ? "an integer" : "a string");
}

int ud_query_from_msgpack(struct ud_query *q, const void *mp, size_t n,
			  struct ud_error *err)
{
	struct codec_mp_cur c = {mp, (const unsigned char *)mp + n};
	struct codec_mp_item m, k, v;
	unsigned seen = 0;
	uint32_t i;
	int rc;

	if (codec_mp_next(&c, &m))
		goto malformed;
	if (m.type == CODEC_MP_NIL && c.p == c.end)
		return 0; /* no query: the defaults */
	if (m.type != CODEC_MP_MAP)
		return ud_error_set(err, UD_EINVAL, NULL,
				    "the query must be a map");
	for (i = 0; i < m.n; i++) {
		if (codec_mp_next(&c, &k))
			goto malformed;
		if (k.type != CODEC_MP_STR && k.type != CODEC_MP_BIN)
			return ud_error_set(err, UD_EINVAL, NULL,
					    "query keys must be strings");
		if (codec_mp_next(&c, &v))
			goto malformed;
		/* A container value is refused here, so its elements are never
		 * read. */
		rc = query_set_mp(q, &k, &v, &seen, err);
		if (rc)
			return rc;
	}
	if (c.p != c.end)
		goto malformed;
	return 0;
malformed:
	return ud_error_set(err, UD_EINVAL, NULL,
			    "the query is not well-formed msgpack");
}
