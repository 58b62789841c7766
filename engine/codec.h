/*
 * codec.h -- JSON and MessagePack conversion of users, log entries and free
 * objects (custom_data, identity details).
 *
 * Stored form.  Free objects are kept as msgpack maps; they are produced
 * either from a client's msgpack (checked by codec_mp_check) or from a
 * jansson value (codec_json_to_mp), so every stored object is a map with
 * string keys, valid UTF-8 strings, finite numbers, no bin/ext, depth <= 32.
 * That is exactly what JSON can hold, so the msgpack and JSON views of a user
 * are the same data.
 *
 * Reading msgpack.  A small hand-written reader (codec_mp_next) instead of
 * msgpack_unpack_next(): the data is already in one contiguous buffer, the
 * reader needs no zone allocation, can stop at a depth bound before
 * recursing, and lets the JSON writer stream straight from the bytes.
 * Writing msgpack uses msgpack-c's packer with a write callback into a
 * struct ud_buf.
 *
 * Writers append to a struct ud_buf and return 0 or UD_ENOMEM (UD_EINVAL
 * where the input may be malformed).  On failure b->len may have grown by a
 * partial value; callers discard the buffer.  Everything here is pure and
 * thread-safe.
 */
#ifndef UD_CODEC_H
#define UD_CODEC_H

#include <stdbool.h>
#include <stdint.h>

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <jansson.h>

#include "userdb.h"

#define CODEC_MAX_DEPTH	  32   /* nesting bound of free objects */
#define CODEC_WALK_DEPTH  64   /* bound when converting stored msgpack */
#define CODEC_DETAILS_MAX 8192 /* compact-JSON bound for identity details */
#define CODEC_TIME_LEN	  24   /* "2025-01-20T15:00:00.123Z": years 0000-9999 */

/* ---- writing msgpack straight into reserved space ----------------------
 *
 * For the hot encoders (a user in a reply, a put in the log or a
 * snapshot), which reserve room for a whole value first and then write
 * without a callback per field.  The forms are msgpack-c's (the smallest
 * that fits), so the bytes equal its packer's (test_codec, test_db).
 * Each returns the position after what it wrote. */
static inline char *mpw_be(char *p, uint64_t v, int bytes)
{
	for (int i = bytes - 1; i >= 0; i--, v >>= 8)
		p[i] = (char)(unsigned char)v;
	return p + bytes;
}

/* msgpack_pack_uint64's forms */
static inline char *mpw_uint(char *p, uint64_t v)
{
	if (v < 128) {
		*p = (char)v;
		return p + 1;
	}
	*p = (char)(v < 256	      ? 0xcc
		    : v < 65536	      ? 0xcd
		    : v <= UINT32_MAX ? 0xce
				      : 0xcf);
	return mpw_be(p + 1, v, 1 << ((unsigned char)*p - 0xcc));
}

/* msgpack_pack_int64's forms */
static inline char *mpw_int(char *p, int64_t v)
{
	if (v >= -32)
		return v < 128 ? (*p = (char)v, p + 1)
			       : mpw_uint(p, (uint64_t)v);
	*p = (char)(v >= -128	     ? 0xd0
		    : v >= -32768    ? 0xd1
		    : v >= INT32_MIN ? 0xd2
				     : 0xd3);
	return mpw_be(p + 1, (uint64_t)v, 1 << ((unsigned char)*p - 0xd0));
}

/* msgpack_pack_str (bin false) or _bin header, then the n bytes of s; a
 * NULL string is nil */
static inline char *mpw_raw(char *p, bool bin, const void *s, size_t n)
{
	if (!bin && !s) {
		*p = (char)0xc0;
		return p + 1;
	}
	if (!bin && n < 32) {
		*p++ = (char)(0xa0 | n);
	} else if (n < 256) {
		*p++ = (char)(bin ? 0xc4 : 0xd9);
		p = mpw_be(p, n, 1);
	} else if (n < 65536) {
		*p++ = (char)(bin ? 0xc5 : 0xda);
		p = mpw_be(p, n, 2);
	} else {
		*p++ = (char)(bin ? 0xc6 : 0xdb);
		p = mpw_be(p, n, 4);
	}
	if (n)
		memcpy(p, s, n);
	return p + n;
}

/* ---- users and log entries ---------------------------------------------- */

/* Append the public user (SPEC §1 keys in order) as compact JSON. */
int codec_user_json(const struct ud_user_view *v, struct ud_buf *b);
/* The same as a msgpack map of 12 (times as strings, nil for null). */
int codec_user_mp(const struct ud_user_view *v, struct ud_buf *b);
/* {"id":"log_<16 hex>","user_id","event","created_at","details"} */
int codec_log_json(const struct ud_log_view *e, struct ud_buf *b);
int codec_log_mp(const struct ud_log_view *e, struct ud_buf *b);

/* ---- free values -------------------------------------------------------- */

/* Convert the one msgpack value that spans exactly mp[0..n) to compact
 * JSON.  Lenient (for stored or trusted data): bin becomes a string, ext and
 * non-finite floats become null, scalar map keys are stringified, invalid
 * UTF-8 and NUL in keys become U+FFFD (the output is always JSON that
 * jansson reads; duplicate keys are written as they come).  UD_EINVAL when
 * malformed, nested deeper than CODEC_WALK_DEPTH or followed by trailing bytes.
 */
int codec_mp_to_json(const void *mp, size_t n, struct ud_buf *b);

/* Check that mp[0..n) is exactly one msgpack map that JSON can hold: string
 * keys at every level, no key twice in one map and no NUL in keys, valid
 * UTF-8 strings, no bin/ext, finite floats, depth <= max_depth, and at most
 * max_json bytes as compact JSON.  A map of more than 16 keys allocates a
 * scratch array (UD_ENOMEM).  Returns 0 (and
 * *json_len when non-NULL) or UD_EINVAL naming `field` with the reason. */
int codec_mp_check(const void *mp, size_t n, int max_depth, size_t max_json,
		   const char *field, size_t *json_len, struct ud_error *err);

/* Append a jansson value as msgpack.  Depth (containers) <= CODEC_MAX_DEPTH;
 * objects become maps with str keys, reals float64.  UD_EINVAL naming
 * `field` when too deep; UD_ENOMEM. */
int codec_json_to_mp(const json_t *v, struct ud_buf *b, const char *field,
		     struct ud_error *err);

/* ud_fields_from_json() for a create whose body jansson already parsed
 * (an import line, net/bulk.c); strings are copied into arena, root is
 * only read. */
int fields_from_jansson(json_t *root, struct ud_fields *out,
			struct ud_arena *arena, struct ud_error *err);

/* Append s[0..n) as a quoted JSON string: '"', '\\' and control characters
 * escaped, UTF-8 passed through, invalid UTF-8 replaced by U+FFFD. */
int codec_json_string(struct ud_buf *b, const char *s, size_t n);

/* RPC user.list: fill q (already ud_query_init'ed) from a msgpack map of the
 * HTTP query keys; page/limit may be ints or decimal strings, nil values
 * are ignored.  UD_EINVAL with err->field.  Strings borrow from mp. */
int ud_query_from_msgpack(struct ud_query *q, const void *mp, size_t n,
			  struct ud_error *err);

/* ---- a minimal msgpack reader ------------------------------------------- */

enum codec_mp_type {
	CODEC_MP_NIL,
	CODEC_MP_BOOL,
	CODEC_MP_UINT, /* any integer >= 0: .u */
	CODEC_MP_INT,  /* any integer < 0: .i */
	CODEC_MP_FLOAT,
	CODEC_MP_STR,	/* .s, .n */
	CODEC_MP_BIN,	/* .s, .n */
	CODEC_MP_EXT,	/* .s, .n, .ext_type */
	CODEC_MP_ARRAY, /* .n elements follow */
	CODEC_MP_MAP,	/* .n key/value pairs follow */
};

struct codec_mp_item {
	enum codec_mp_type type;
	bool b;
	bool is_f32; /* FLOAT came as float32 */
	int8_t ext_type;
	uint32_t n;
	uint64_t u;
	int64_t i;
	double f;
	const char *s; /* borrowed from the input */
};

struct codec_mp_cur {
	const unsigned char *p, *end;
};

/* Read one value's header at c->p (and a str/bin/ext payload) and advance.
 * Containers' elements are read by further calls.  0 or -1 when truncated or
 * the byte 0xc1 (never used) appears. */
int codec_mp_next(struct codec_mp_cur *c, struct codec_mp_item *it);
/* Skip one whole value, containers included, refusing nesting deeper than
 * max_depth.  0 or -1. */
int codec_mp_skip(struct codec_mp_cur *c, int max_depth);

/* msgpack packer write callback appending to the struct ud_buf in data. */
int codec_buf_write_cb(void *data, const char *buf, size_t len);

#endif
