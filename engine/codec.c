/*
 * codec.c -- the msgpack reader, msgpack -> JSON (emitting or just
 * measuring), jansson -> msgpack, and the user / log-entry encoders.
 *
 * One walker serves both codec_mp_to_json() and codec_mp_check(): a "sink"
 * either appends to a buffer or only counts bytes, so the 8 KiB bound that
 * validation measures is, byte for byte, the JSON that is later written.
 * The check mode is strict (rejects what JSON cannot hold); the output mode
 * is lenient (stored data was checked on the way in).
 */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "codec.h"
#include "text.h"

/* ---- the msgpack reader ------------------------------------------------- */

static uint64_t rd_be(const unsigned char *p, int n)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < n; i++)
		v = (v << 8) | p[i];
	return v;
}

/* Take a payload of n bytes at c->p into it->s. */
static int take_payload(struct codec_mp_cur *c, struct codec_mp_item *it,
			uint64_t n)
{
	if (n > (uint64_t)(c->end - c->p))
		return -1;
	it->s = (const char *)c->p;
	it->n = (uint32_t)n;
	c->p += n;
	return 0;
}

/* Fixed-size body of `size` bytes after the type byte (ints, floats,
 * lengths).  Returns its value or sets *bad. */
static uint64_t take_fixed(struct codec_mp_cur *c, int size, int *bad)
{
	uint64_t v;

	if ((size_t)(c->end - c->p) < (size_t)size) {
		*bad = 1;
		return 0;
	}
	v = rd_be(c->p, size);
	c->p += size;
	return v;
}

static void set_int(struct codec_mp_item *it, int64_t v)
{
	if (v >= 0) {
		it->type = CODEC_MP_UINT;
		it->u = (uint64_t)v;
	} else {
		it->type = CODEC_MP_INT;
		it->i = v;
	}
}

static int read_float(struct codec_mp_cur *c, struct codec_mp_item *it,
		      bool f32, int *bad)
{
	uint64_t raw = take_fixed(c, f32 ? 4 : 8, bad);
	uint32_t r32 = (uint32_t)raw;
	float f;

	it->type = CODEC_MP_FLOAT;
	it->is_f32 = f32;
	if (f32) {
		memcpy(&f, &r32, 4);
		it->f = f;
	} else {
		memcpy(&it->f, &raw, 8);
	}
	return 0;
}

/* Type bytes 0xc0..0xdf; the fix* forms are handled by the caller.  One
 * switch over the format table: long but flat. */
static int read_tagged(struct codec_mp_cur *c, struct codec_mp_item *it,
		       unsigned char t)
{
	static const int sz[] = {1, 2, 4, 8};
	int bad = 0;
	uint64_t n;

	switch (t) {
	case 0xc0:
		it->type = CODEC_MP_NIL;
		return 0;
	case 0xc2:
	case 0xc3:
		it->type = CODEC_MP_BOOL;
		it->b = t == 0xc3;
		return 0;
	case 0xc4:
	case 0xc5:
	case 0xc6:
		it->type = CODEC_MP_BIN;
		n = take_fixed(c, sz[t - 0xc4], &bad);
		return bad ? -1 : take_payload(c, it, n);
	case 0xc7:
	case 0xc8:
	case 0xc9:
		it->type = CODEC_MP_EXT;
		n = take_fixed(c, sz[t - 0xc7], &bad);
		it->ext_type = (int8_t)take_fixed(c, 1, &bad);
		return bad ? -1 : take_payload(c, it, n);
	case 0xca:
	case 0xcb:
		read_float(c, it, t == 0xca, &bad);
		return bad ? -1 : 0;
	case 0xcc:
	case 0xcd:
	case 0xce:
	case 0xcf:
		it->type = CODEC_MP_UINT;
		it->u = take_fixed(c, sz[t - 0xcc], &bad);
		return bad ? -1 : 0;
	case 0xd0:
		set_int(it, (int8_t)take_fixed(c, 1, &bad));
		return bad ? -1 : 0;
	case 0xd1:
		set_int(it, (int16_t)take_fixed(c, 2, &bad));
		return bad ? -1 : 0;
	case 0xd2:
		set_int(it, (int32_t)take_fixed(c, 4, &bad));
		return bad ? -1 : 0;
	case 0xd3:
		set_int(it, (int64_t)take_fixed(c, 8, &bad));
		return bad ? -1 : 0;
	case 0xd4:
	case 0xd5:
	case 0xd6:
	case 0xd7:
	case 0xd8:
		it->type = CODEC_MP_EXT;
		it->ext_type = (int8_t)take_fixed(c, 1, &bad);
		return bad ? -1 : take_payload(c, it, 1u << (t - 0xd4));
	case 0xd9:
	case 0xda:
	case 0xdb:
		it->type = CODEC_MP_STR;
		n = take_fixed(c, sz[t - 0xd9], &bad);
		return bad ? -1 : take_payload(c, it, n);
	case 0xdc:
	case 0xdd:
		it->type = CODEC_MP_ARRAY;
		it->n = (uint32_t)take_fixed(c, t == 0xdc ? 2 : 4, &bad);
		return bad ? -1 : 0;
	case 0xde:
	case 0xdf:
		it->type = CODEC_MP_MAP;
		it->n = (uint32_t)take_fixed(c, t == 0xde ? 2 : 4, &bad);
		return bad ? -1 : 0;
	default: /* 0xc1 is never used */
		return -1;
	}
}

int codec_mp_next(struct codec_mp_cur *c, struct codec_mp_item *it)
{
	unsigned char t;

	if (c->p >= c->end)
		return -1;
	t = *c->p++;
	it->is_f32 = false;
	if (t <= 0x7f) {
		it->type = CODEC_MP_UINT;
		it->u = t;
	} else if (t >= 0xe0) {
		it->type = CODEC_MP_INT;
		it->i = (int8_t)t;
	} else if ((t & 0xf0) == 0x80) {
		it->type = CODEC_MP_MAP;
		it->n = t & 0x0f;
	} else if ((t & 0xf0) == 0x90) {
		it->type = CODEC_MP_ARRAY;
		it->n = t & 0x0f;
	} else if ((t & 0xe0) == 0xa0) {
		it->type = CODEC_MP_STR;
		return take_payload(c, it, t & 0x1f);
	} else {
		return read_tagged(c, it, t);
	}
	return 0;
}

int codec_mp_skip(struct codec_mp_cur *c, int max_depth)
{
	struct codec_mp_item it;
	uint64_t i, count;

	if (codec_mp_next(c, &it))
		return -1;
	if (it.type != CODEC_MP_ARRAY && it.type != CODEC_MP_MAP)
		return 0;
	count = it.type == CODEC_MP_MAP ? 2 * (uint64_t)it.n : it.n;
	/* an empty container nests nothing: it needs no depth, as in the
	 * RPC framer (net/mpframe.c), which must agree (fuzz_mpframe) */
	if (count > 0 && max_depth < 1)
		return -1;
	for (i = 0; i < count; i++)
		if (codec_mp_skip(c, max_depth - 1))
			return -1;
	return 0;
}

int codec_buf_write_cb(void *data, const char *buf, size_t len)
{
	return ud_buf_append(data, buf, len) ? -1 : 0;
}

/* ---- the JSON sink ------------------------------------------------------ */

struct jsink {
	struct ud_buf *b; /* NULL: count only */
	size_t len;	  /* bytes counted (count mode) */
	size_t max;	  /* count mode: stop beyond this */
	bool strict;	  /* reject what JSON cannot hold */
	const char *field;
	struct ud_error *err;
};

static int sink_put(struct jsink *s, const void *p, size_t n)
{
	if (s->b)
		return ud_buf_append(s->b, p, n);
	s->len += n;
	if (s->len > s->max)
		return ud_error_set(s->err, UD_EINVAL, s->field,
				    "%s must be at most %zu bytes as JSON",
				    s->field, s->max);
	return 0;
}

static int sink_fail(struct jsink *s, const char *why)
{
	return ud_error_set(s->err, UD_EINVAL, s->field, "%s %s", s->field,
			    why);
}

static const char hexdig[] = "0123456789abcdef";

static int put_escape(struct jsink *s, unsigned char c)
{
	char e[6] = {'\\', 'u', '0', '0', hexdig[c >> 4], hexdig[c & 15]};

	switch (c) {
	case '"':
	case '\\':
		e[1] = (char)c;
		return sink_put(s, e, 2);
	case '\n':
		return sink_put(s, "\\n", 2);
	case '\r':
		return sink_put(s, "\\r", 2);
	case '\t':
		return sink_put(s, "\\t", 2);
	case '\b':
		return sink_put(s, "\\b", 2);
	case '\f':
		return sink_put(s, "\\f", 2);
	default:
		return sink_put(s, e, 6);
	}
}

/* Quoted, escaped string.  Runs of bytes that need nothing are copied in
 * one append.  A NUL in an object key (key) is refused when strict and
 * replaced by U+FFFD otherwise: JSON readers such as jansson cannot hold
 * it. */
static int put_text(struct jsink *s, const char *str, size_t n, bool key)
{
	const unsigned char *p = (const unsigned char *)str;
	size_t i = 0, start = 0;
	int32_t cp;
	int len, rc = sink_put(s, "\"", 1);

	while (rc == 0 && i < n) {
		unsigned char c = p[i];

		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
			i++;
			continue;
		}
		if (c >= 0x80) {
			len = utf8_decode(p + i, n - i, &cp);
			if (len > 0) {
				i += (size_t)len;
				continue;
			}
		}
		rc = sink_put(s, p + start, i - start);
		if (rc)
			break;
		if (c == 0 && key)
			rc = s->strict
				 ? sink_fail(s, "must not have NUL in keys")
				 : sink_put(s, "\xef\xbf\xbd", 3);
		else if (c < 0x80)
			rc = put_escape(s, c);
		else if (s->strict)
			rc = sink_fail(s, "must be valid UTF-8");
		else
			rc = sink_put(s, "\xef\xbf\xbd", 3);
		start = ++i;
	}
	if (rc == 0)
		rc = sink_put(s, p + start, i - start);
	return rc ? rc : sink_put(s, "\"", 1);
}

static int put_string(struct jsink *s, const char *str, size_t n)
{
	return put_text(s, str, n, false);
}

int codec_json_string(struct ud_buf *b, const char *s, size_t n)
{
	struct jsink sk = {.b = b, .field = "string"};

	return put_string(&sk, s, n) ? UD_ENOMEM : 0;
}

/* The shortest decimal that reads back as the same value, in one layout
 * that depends only on its digits and exponent: fixed ("1181116000.0",
 * "0.001") for exponents -4..14, else "1.5e+300".  A float32 and the double
 * its text parses to therefore print alike, so msgpack -> JSON -> msgpack ->
 * JSON is stable.  Always looks like a real ("1.0", not "1").  cap >= 48. */
static size_t format_double(double d, bool f32, char *buf, size_t cap)
{
	char e_form[40], digits[20];
	int prec, last = f32 ? 9 : 17, exp, nd = 0, i;
	const char *p;
	size_t n = 0;

	for (prec = 1;; prec++) {
		snprintf(e_form, sizeof(e_form), "%.*e", prec - 1, d);
		if (prec >= last || (f32 ? strtof(e_form, NULL) == (float)d
					 : strtod(e_form, NULL) == d))
			break;
	}
	for (p = e_form; *p && *p != 'e'; p++)
		if (*p >= '0' && *p <= '9')
			digits[nd++] = *p;
	exp = atoi(p + 1);
	while (nd > 1 && digits[nd - 1] == '0')
		nd--;
	if (e_form[0] == '-')
		buf[n++] = '-';
	if (exp < -4 || exp > 14) { /* d.ddde+XX */
		buf[n++] = digits[0];
		if (nd > 1)
			buf[n++] = '.';
		for (i = 1; i < nd; i++)
			buf[n++] = digits[i];
		n += (size_t)snprintf(buf + n, cap - n, "e%c%02d",
				      exp < 0 ? '-' : '+', abs(exp));
		return n;
	}
	if (exp < 0) { /* 0.000ddd */
		buf[n++] = '0';
		buf[n++] = '.';
		for (i = -1; i > exp; i--)
			buf[n++] = '0';
		for (i = 0; i < nd; i++)
			buf[n++] = digits[i];
	} else { /* ddd000.0 or dd.ddd */
		for (i = 0; i <= exp; i++)
			buf[n++] = i < nd ? digits[i] : '0';
		buf[n++] = '.';
		if (nd <= exp + 1)
			buf[n++] = '0';
		for (; i < nd; i++)
			buf[n++] = digits[i];
	}
	buf[n] = '\0';
	return n;
}

/* Decimal digits of v into buf (no NUL); returns their count.  What
 * snprintf("%" PRIu64) writes, without its cost (a snapshot load checks
 * every user's custom_data). */
static size_t fmt_u64(char *buf, uint64_t v)
{
	char tmp[20];
	size_t n = 0, i;

	do
		tmp[n++] = (char)('0' + v % 10);
	while (v /= 10);
	for (i = 0; i < n; i++)
		buf[i] = tmp[n - 1 - i];
	return n;
}

static size_t fmt_i64(char *buf, int64_t v)
{
	if (v >= 0)
		return fmt_u64(buf, (uint64_t)v);
	buf[0] = '-';
	return 1 + fmt_u64(buf + 1, -(uint64_t)v);
}

static int put_scalar(struct jsink *s, const struct codec_mp_item *it)
{
	char num[48];

	switch (it->type) {
	case CODEC_MP_NIL:
		return sink_put(s, "null", 4);
	case CODEC_MP_BOOL:
		return it->b ? sink_put(s, "true", 4) : sink_put(s, "false", 5);
	case CODEC_MP_UINT:
		return sink_put(s, num, fmt_u64(num, it->u));
	case CODEC_MP_INT:
		return sink_put(s, num, fmt_i64(num, it->i));
	case CODEC_MP_FLOAT:
		if (!isfinite(it->f))
			return s->strict ? sink_fail(s, "must hold only finite "
							"numbers")
					 : sink_put(s, "null", 4);
		return sink_put(
		    s, num, format_double(it->f, it->is_f32, num, sizeof(num)));
	case CODEC_MP_STR:
		return put_string(s, it->s, it->n);
	case CODEC_MP_BIN:
		if (s->strict)
			return sink_fail(s, "must not hold binary values");
		return put_string(s, it->s, it->n);
	default: /* EXT */
		if (s->strict)
			return sink_fail(s, "must not hold extension values");
		return sink_put(s, "null", 4);
	}
}

static int walk_value(struct codec_mp_cur *c, struct jsink *s, int depth);

/* A map key: a string (strict), or in lenient mode any scalar, quoted. */
static int walk_key(struct codec_mp_cur *c, struct jsink *s)
{
	struct codec_mp_item it;
	struct ud_buf tmp = {0};
	struct jsink ts = {.b = &tmp};
	int rc;

	if (codec_mp_next(c, &it))
		return sink_fail(s, "is not well-formed msgpack");
	if (it.type == CODEC_MP_STR)
		return put_text(s, it.s, it.n, true);
	if (s->strict || it.type == CODEC_MP_ARRAY || it.type == CODEC_MP_MAP)
		return sink_fail(s, "must have string keys");
	if (it.type == CODEC_MP_BIN)
		return put_text(s, it.s, it.n, true);
	rc = put_scalar(&ts, &it);
	if (rc == 0)
		rc = put_text(s, tmp.data, tmp.len, true);
	ud_buf_free(&tmp);
	return rc;
}

struct key_ref {
	const char *s;
	uint32_t n;
};

static int key_cmp(const void *a, const void *b)
{
	const struct key_ref *x = a, *y = b;
	int c = memcmp(x->s, y->s, x->n < y->n ? x->n : y->n);

	return c ? c : (x->n > y->n) - (x->n < y->n);
}

/* Does a key of a small map repeat?  Pairwise, without qsort's cost for the
 * few keys most maps have (every user's custom_data is checked at load). */
static bool small_repeat(const struct key_ref *keys, uint32_t n)
{
	for (uint32_t i = 1; i < n; i++)
		for (uint32_t j = 0; j < i; j++)
			if (key_cmp(&keys[i], &keys[j]) == 0)
				return true;
	return false;
}

/* Strict mode: the n string keys of one map, refused if one repeats (JSON
 * readers would keep only one of them). */
static int check_dup_keys(struct jsink *s, struct key_ref *keys, uint32_t n)
{
	char shown[65];
	uint32_t i, j;

	if (n <= 8 && !small_repeat(keys, n))
		return 0;
	/* sorted: the key reported does not depend on the map's order */
	qsort(keys, n, sizeof(*keys), key_cmp);
	for (i = 1; i < n; i++) {
		if (key_cmp(&keys[i - 1], &keys[i]) != 0)
			continue;
		for (j = 0; j < keys[i].n && j < 64; j++) /* printable ASCII */
			shown[j] = keys[i].s[j] >= 0x20 && keys[i].s[j] < 0x7f
				       ? keys[i].s[j]
				       : '?';
		shown[j] = '\0';
		return ud_error_set(s->err, UD_EINVAL, s->field,
				    "%s has the key \"%s\" more than once",
				    s->field, shown);
	}
	return 0;
}

static int walk_container(struct codec_mp_cur *c, struct jsink *s,
			  const struct codec_mp_item *it, int depth)
{
	bool map = it->type == CODEC_MP_MAP;
	struct key_ref stack_keys[16], *keys = NULL;
	struct codec_mp_cur peek;
	struct codec_mp_item k;
	uint32_t i;
	int rc;

	if (depth < 1)
		return ud_error_set(s->err, UD_EINVAL, s->field,
				    "%s is nested too deeply", s->field);
	if (map && it->n > (size_t)(c->end - c->p) / 2)
		return sink_fail(s, "is not well-formed msgpack");
	if (map && s->strict && it->n > 1) {
		keys = it->n <= 16 ? stack_keys : malloc(it->n * sizeof(*keys));
		if (!keys)
			return ud_error_set(s->err, UD_ENOMEM, NULL,
					    "out of memory");
	}
	rc = sink_put(s, map ? "{" : "[", 1);
	for (i = 0; rc == 0 && i < it->n; i++) {
		if (i)
			rc = sink_put(s, ",", 1);
		if (rc == 0 && map) {
			peek = *c;
			if (keys && codec_mp_next(&peek, &k) == 0)
				keys[i] = (struct key_ref){k.s, k.n};
			rc = walk_key(c, s);
			if (rc == 0)
				rc = sink_put(s, ":", 1);
		}
		if (rc == 0)
			rc = walk_value(c, s, depth - 1);
	}
	if (rc == 0 && keys)
		rc = check_dup_keys(s, keys, it->n);
	if (keys != stack_keys)
		free(keys);
	return rc ? rc : sink_put(s, map ? "}" : "]", 1);
}

static int walk_value(struct codec_mp_cur *c, struct jsink *s, int depth)
{
	struct codec_mp_item it;

	if (codec_mp_next(c, &it))
		return sink_fail(s, "is not well-formed msgpack");
	if (it.type == CODEC_MP_ARRAY || it.type == CODEC_MP_MAP)
		return walk_container(c, s, &it, depth);
	return put_scalar(s, &it);
}

int codec_mp_to_json(const void *mp, size_t n, struct ud_buf *b)
{
	struct codec_mp_cur c = {mp, (const unsigned char *)mp + n};
	struct jsink s = {.b = b, .field = "value"};
	int rc;

	rc = walk_value(&c, &s, CODEC_WALK_DEPTH);
	if (rc == UD_ENOMEM)
		return rc;
	return rc || c.p != c.end ? UD_EINVAL : 0;
}

int codec_mp_check(const void *mp, size_t n, int max_depth, size_t max_json,
		   const char *field, size_t *json_len, struct ud_error *err)
{
	struct codec_mp_cur c = {mp, (const unsigned char *)mp + n};
	struct codec_mp_cur peek = c;
	struct codec_mp_item it;
	struct jsink s = {
	    .max = max_json, .strict = true, .field = field, .err = err};
	int rc;

	if (!mp || codec_mp_next(&peek, &it) || it.type != CODEC_MP_MAP)
		return ud_error_set(err, UD_EINVAL, field,
				    "%s must be an object", field);
	rc = walk_value(&c, &s, max_depth);
	if (rc)
		return rc;
	if (c.p != c.end)
		return sink_fail(&s, "has trailing bytes after the object");
	if (json_len)
		*json_len = s.len;
	return 0;
}

/* ---- jansson -> msgpack ------------------------------------------------- */

static int json_mp_value(const json_t *v, msgpack_packer *pk, int depth,
			 const char *field, struct ud_error *err);

static int json_mp_container(const json_t *v, msgpack_packer *pk, int depth,
			     const char *field, struct ud_error *err)
{
	json_t *o = (json_t *)v; /* jansson's iterators are not const */
	const char *key;
	size_t klen, i;
	json_t *val;
	int rc;

	if (depth < 1)
		return ud_error_set(err, UD_EINVAL, field,
				    "%s is nested deeper than %d levels", field,
				    CODEC_MAX_DEPTH);
	if (json_is_array(v)) {
		if (msgpack_pack_array(pk, json_array_size(v)))
			return UD_ENOMEM;
		json_array_foreach(o, i, val)
		{
			rc = json_mp_value(val, pk, depth - 1, field, err);
			if (rc)
				return rc;
		}
		return 0;
	}
	if (msgpack_pack_map(pk, json_object_size(v)))
		return UD_ENOMEM;
	json_object_keylen_foreach(o, key, klen, val)
	{
		if (msgpack_pack_str_with_body(pk, key, klen))
			return UD_ENOMEM;
		rc = json_mp_value(val, pk, depth - 1, field, err);
		if (rc)
			return rc;
	}
	return 0;
}

static int json_mp_value(const json_t *v, msgpack_packer *pk, int depth,
			 const char *field, struct ud_error *err)
{
	int rc;

	switch (json_typeof(v)) {
	case JSON_OBJECT:
	case JSON_ARRAY:
		return json_mp_container(v, pk, depth, field, err);
	case JSON_STRING:
		rc = msgpack_pack_str_with_body(pk, json_string_value(v),
						json_string_length(v));
		break;
	case JSON_INTEGER:
		rc = msgpack_pack_int64(pk, json_integer_value(v));
		break;
	case JSON_REAL:
		rc = msgpack_pack_double(pk, json_real_value(v));
		break;
	case JSON_TRUE:
		rc = msgpack_pack_true(pk);
		break;
	case JSON_FALSE:
		rc = msgpack_pack_false(pk);
		break;
	default:
		rc = msgpack_pack_nil(pk);
		break;
	}
	return rc ? UD_ENOMEM : 0;
}

int codec_json_to_mp(const json_t *v, struct ud_buf *b, const char *field,
		     struct ud_error *err)
{
	msgpack_packer pk;

	msgpack_packer_init(&pk, b, codec_buf_write_cb);
	return json_mp_value(v, &pk, CODEC_MAX_DEPTH, field, err);
}

/* ---- times -------------------------------------------------------------- */

/* Days since 1970-01-01 to a proleptic Gregorian date (the era-based
 * civil-from-days algorithm: 400-year eras of 146097 days). */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	int64_t era, yy;
	unsigned doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = (unsigned)(z - era * 146097);
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	yy = (int64_t)yoe + era * 400;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = yy + (*m <= 2);
}

static char *put_digits(char *p, unsigned v, int width)
{
	int i;

	for (i = width - 1; i >= 0; i--) {
		p[i] = (char)('0' + v % 10);
		v /= 10;
	}
	return p + width;
}

static const char two_digits[201] = "00010203040506070809"
				    "10111213141516171819"
				    "20212223242526272829"
				    "30313233343536373839"
				    "40414243444546474849"
				    "50515253545556575859"
				    "60616263646566676869"
				    "70717273747576777879"
				    "80818283848586878889"
				    "90919293949596979899";

static char *put2(char *p, unsigned v)
{
	memcpy(p, two_digits + 2 * v, 2);
	return p + 2;
}

#define TIME_MIN_MS (-62167219200000LL) /* 0000-01-01T00:00:00.000Z */
#define TIME_MAX_MS 253402300799999LL	/* 9999-12-31T23:59:59.999Z */

/*
 * Every user in a reply carries two or three times, so this runs millions
 * of times a second under list and get load (perf of list_first at 1M
 * users: 18% of the server's CPU, ~18 ns a call).  The date part of the
 * last day formatted is kept per thread, since the times of a page or a
 * burst of writes mostly share days, and the clock fields come from a
 * two-digit table: ~5 ns a call when the day repeats.
 */
/* The 24 characters of ms, no NUL. */
static void time_format24(int64_t ms, char *out)
{
	static _Thread_local int64_t last_days = INT64_MIN;
	static _Thread_local char last_date[11]; /* "YYYY-MM-DDT" */
	int64_t days, secs, y;
	unsigned mo, d, sod, frac;
	char *p;

	if (ms < TIME_MIN_MS)
		ms = TIME_MIN_MS;
	if (ms > TIME_MAX_MS)
		ms = TIME_MAX_MS;
	secs = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
	frac = (unsigned)(ms - secs * 1000);
	days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
	sod = (unsigned)(secs - days * 86400);
	if (days != last_days) {
		civil_from_days(days, &y, &mo, &d);
		p = put_digits(last_date, (unsigned)y, 4);
		*p++ = '-';
		p = put2(p, mo);
		*p++ = '-';
		p = put2(p, d);
		*p = 'T';
		last_days = days;
	}
	memcpy(out, last_date, sizeof(last_date));
	p = put2(out + sizeof(last_date), sod / 3600);
	*p++ = ':';
	p = put2(p, sod / 60 % 60);
	*p++ = ':';
	p = put2(p, sod % 60);
	*p++ = '.';
	*p++ = (char)('0' + frac / 100);
	p = put2(p, frac % 100);
	*p = 'Z';
}

size_t ud_time_format(int64_t ms, char *out)
{
	time_format24(ms, out);
	out[CODEC_TIME_LEN] = '\0';
	return CODEC_TIME_LEN;
}

/* ---- user and log encoders ---------------------------------------------- */

/* A JSON writer with a sticky error, so encoders read as a list of keys. */
struct jw {
	struct ud_buf *b;
	int rc;
};

static void jw_raw(struct jw *w, const char *s, size_t n)
{
	if (w->rc == 0)
		w->rc = ud_buf_append(w->b, s, n);
}

static void jw_lit(struct jw *w, const char *s)
{
	jw_raw(w, s, strlen(s));
}

static void jw_str(struct jw *w, const char *s, size_t n)
{
	if (w->rc == 0)
		w->rc = codec_json_string(w->b, s, n);
}

/* The string or null. */
static void jw_opt_str(struct jw *w, const char *s, size_t n)
{
	if (s)
		jw_str(w, s, n);
	else
		jw_lit(w, "null");
}

static void jw_time(struct jw *w, int64_t ms)
{
	char t[32];

	if (ms < 0) {
		jw_lit(w, "null");
		return;
	}
	jw_raw(w, "\"", 1);
	jw_raw(w, t, ud_time_format(ms, t));
	jw_raw(w, "\"", 1);
}

/* A stored msgpack object; empty input means {}. */
static void jw_object(struct jw *w, const void *mp, size_t n)
{
	if (w->rc)
		return;
	if (!mp || n == 0)
		jw_lit(w, "{}");
	else
		w->rc = codec_mp_to_json(mp, n, w->b);
}

static const char *name_or(const char *s, const char *dflt)
{
	return s ? s : dflt;
}

int codec_user_json(const struct ud_user_view *v, struct ud_buf *b)
{
	struct jw w = {b, 0};

	jw_lit(&w, "{\"id\":");
	jw_str(&w, v->id, v->id_len);
	jw_lit(&w, ",\"name\":");
	jw_str(&w, v->name, v->name_len);
	jw_lit(&w, ",\"email\":");
	jw_str(&w, v->email, v->email_len);
	jw_lit(&w, ",\"role\":\"");
	jw_lit(&w, name_or(ud_role_name(v->role), "user"));
	jw_lit(&w, "\",\"status\":\"");
	jw_lit(&w, name_or(ud_status_name(v->status), "active"));
	jw_lit(&w, "\",\"avatar\":");
	jw_opt_str(&w, v->avatar, v->avatar_len);
	jw_lit(&w, ",\"custom_data\":");
	jw_object(&w, v->custom_data, v->custom_data_len);
	jw_lit(&w, ",\"identities\":");
	jw_object(&w, v->identities, v->identities_len);
	jw_lit(&w, v->has_password ? ",\"has_password\":true"
				   : ",\"has_password\":false");
	jw_lit(&w, ",\"last_sign_in_at\":");
	jw_time(&w, v->last_sign_in_ms);
	jw_lit(&w, ",\"created_at\":");
	jw_time(&w, v->created_ms);
	jw_lit(&w, ",\"updated_at\":");
	jw_time(&w, v->updated_ms);
	jw_lit(&w, "}");
	return w.rc;
}

static void log_id(uint64_t id, char out[21])
{
	snprintf(out, 21, "log_%016" PRIx64, id);
}

int codec_log_json(const struct ud_log_view *e, struct ud_buf *b)
{
	struct jw w = {b, 0};
	char id[21];

	log_id(e->id, id);
	jw_lit(&w, "{\"id\":\"");
	jw_lit(&w, id);
	jw_lit(&w, "\",\"user_id\":");
	jw_str(&w, e->user_id, e->user_id_len);
	jw_lit(&w, ",\"event\":\"");
	jw_lit(&w, name_or(ud_event_name(e->event), "unknown"));
	jw_lit(&w, "\",\"created_at\":");
	jw_time(&w, e->created_ms);
	jw_lit(&w, ",\"details\":");
	jw_object(&w, e->details, e->details_len);
	jw_lit(&w, "}");
	return w.rc;
}

/* msgpack side: every pack call returns 0 or -1 (the callback's result), so
 * OR-ing them, one statement each to keep the order, gives "any failed". */
static int mp_key(msgpack_packer *pk, const char *k)
{
	return msgpack_pack_str_with_body(pk, k, strlen(k));
}

static int mp_opt_str(msgpack_packer *pk, const char *s, size_t n)
{
	return s ? msgpack_pack_str_with_body(pk, s, n) : msgpack_pack_nil(pk);
}

static int mp_time(msgpack_packer *pk, int64_t ms)
{
	char t[32];

	if (ms < 0)
		return msgpack_pack_nil(pk);
	return msgpack_pack_str_with_body(pk, t, ud_time_format(ms, t));
}

static int mp_object(msgpack_packer *pk, struct ud_buf *b, const void *mp,
		     size_t n)
{
	if (!mp || n == 0)
		return msgpack_pack_map(pk, 0);
	return ud_buf_append(b, mp, n) ? -1 : 0;
}

/* The user object is written into the buffer directly rather than through
 * msgpack-c's packer: the packer calls back once per key and per value (25
 * buffer appends per user), and a perf profile of first pages of 20 users
 * over RPC showed those appends (ud_buf_append/reserve, the callback,
 * strlen of the keys) at about 30% of the server's time.  Here the bytes a
 * user can need are bounded, reserved once, and the constant keys are
 * copied with their lengths known at compile time.  The output is the same
 * byte for byte (tests/engine/test_codec checks it against msgpack-c). */
#define MPW_KEY(p, k) mpw_raw((p), false, (k), sizeof(k) - 1)

/* Formatted in place: a time is always a 24-byte string. */
static char *mpw_time(char *p, int64_t ms)
{
	if (ms < 0) {
		*p = (char)0xc0;
		return p + 1;
	}
	*p = (char)(0xa0 | CODEC_TIME_LEN);
	time_format24(ms, p + 1);
	return p + 1 + CODEC_TIME_LEN;
}

static char *mpw_object(char *p, const void *mp, size_t n)
{
	if (!mp || n == 0) {
		*p = (char)0x80;
		return p + 1;
	}
	memcpy(p, mp, n);
	return p + n;
}

/* Keys and their string headers (120), the role and status names (2 x
 * 21), 3 times (3 x 25), bools, nils and map headers: 256 is above it. */
#define MPW_USER_FIXED 256

/* The role and status names as msgpack strings, encoded once per process
 * from names.c (a strlen and a header per user cost ~4% of the server's
 * CPU under list load).  Copied MPW_NAME bytes at a time. */
#define MPW_NAME 16
struct mpw_name {
	char b[MPW_NAME];
	size_t n;
};
static struct mpw_name mpw_roles[UD_ROLES], mpw_statuses[UD_STATUSES];
static pthread_once_t mpw_names_once = PTHREAD_ONCE_INIT;

static void mpw_name_set(struct mpw_name *m, const char *s)
{
	size_t n = strlen(s);

	m->b[0] = (char)(0xa0 | n);
	memcpy(m->b + 1, s, n);
	m->n = 1 + n;
}

static void mpw_names_build(void)
{
	for (int i = 0; i < UD_ROLES; i++)
		mpw_name_set(&mpw_roles[i], ud_role_name(i));
	for (int i = 0; i < UD_STATUSES; i++)
		mpw_name_set(&mpw_statuses[i], ud_status_name(i));
}

static char *mpw_name(char *p, const struct mpw_name *m)
{
	memcpy(p, m->b, MPW_NAME);
	return p + m->n;
}

int codec_user_mp(const struct ud_user_view *v, struct ud_buf *b)
{
	size_t need = MPW_USER_FIXED + 4 * 5 + v->id_len + v->name_len +
		      v->email_len + v->avatar_len + v->custom_data_len +
		      v->identities_len;
	const struct mpw_name *role, *status;
	char *p, *created;

	if (ud_buf_reserve(b, need))
		return UD_ENOMEM;
	pthread_once(&mpw_names_once, mpw_names_build);
	role = &mpw_roles[v->role >= 0 && v->role < UD_ROLES ? v->role
							     : UD_ROLE_USER];
	status = &mpw_statuses[v->status >= 0 && v->status < UD_STATUSES
				   ? v->status
				   : UD_STATUS_ACTIVE];
	p = b->data + b->len;
	*p++ = (char)(0x80 | 12);
	p = MPW_KEY(p, "id");
	p = mpw_raw(p, false, v->id, v->id_len);
	p = MPW_KEY(p, "name");
	p = mpw_raw(p, false, v->name, v->name_len);
	p = MPW_KEY(p, "email");
	p = mpw_raw(p, false, v->email, v->email_len);
	p = MPW_KEY(p, "role");
	p = mpw_name(p, role);
	p = MPW_KEY(p, "status");
	p = mpw_name(p, status);
	p = MPW_KEY(p, "avatar");
	p = mpw_raw(p, false, v->avatar, v->avatar_len);
	p = MPW_KEY(p, "custom_data");
	p = mpw_object(p, v->custom_data, v->custom_data_len);
	p = MPW_KEY(p, "identities");
	p = mpw_object(p, v->identities, v->identities_len);
	p = MPW_KEY(p, "has_password");
	*p++ = (char)(v->has_password ? 0xc3 : 0xc2);
	p = MPW_KEY(p, "last_sign_in_at");
	p = mpw_time(p, v->last_sign_in_ms);
	p = MPW_KEY(p, "created_at");
	created = p;
	p = mpw_time(p, v->created_ms);
	p = MPW_KEY(p, "updated_at");
	if (v->updated_ms == v->created_ms && v->created_ms >= 0) {
		/* never updated (most users): the same 25 bytes */
		memcpy(p, created, 1 + CODEC_TIME_LEN);
		p += 1 + CODEC_TIME_LEN;
	} else {
		p = mpw_time(p, v->updated_ms);
	}
	b->len = (size_t)(p - b->data);
	return 0;
}

int codec_log_mp(const struct ud_log_view *e, struct ud_buf *b)
{
	msgpack_packer pk;
	char id[21];
	int rc = 0;

	log_id(e->id, id);
	msgpack_packer_init(&pk, b, codec_buf_write_cb);
	rc |= msgpack_pack_map(&pk, 5);
	rc |= mp_key(&pk, "id");
	rc |= mp_key(&pk, id);
	rc |= mp_key(&pk, "user_id");
	rc |= mp_opt_str(&pk, e->user_id, e->user_id_len);
	rc |= mp_key(&pk, "event");
	rc |= mp_key(&pk, name_or(ud_event_name(e->event), "unknown"));
	rc |= mp_key(&pk, "created_at");
	rc |= mp_time(&pk, e->created_ms);
	rc |= mp_key(&pk, "details");
	rc |= mp_object(&pk, b, e->details, e->details_len);
	return rc ? UD_ENOMEM : 0;
}

int ud_log_write_json(const struct ud_log_view *e, struct ud_buf *b)
{
	return codec_log_json(e, b);
}

int ud_log_write_msgpack(const struct ud_log_view *e, struct ud_buf *b)
{
	return codec_log_mp(e, b);
}
