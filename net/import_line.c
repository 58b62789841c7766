/*
 * import_line.c -- an import line into fields and extras; see
 * import_line.h.
 */
#include "import_line.h"

#include <jansson.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "codec.h"
#include "valid.h"

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static bool digits(const char *s, int n, unsigned *out)
{
	unsigned v = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	*out = v;
	return true;
}

/* RFC 3339 UTC: YYYY-MM-DDTHH:MM:SS[.fraction]Z -> Unix ms (fraction
 * beyond milliseconds dropped).  0 or -1. */
static int time_parse(const char *s, size_t n, int64_t *ms)
{
	static const unsigned mdays[] = {31, 29, 31, 30, 31, 30,
					 31, 31, 30, 31, 30, 31};
	unsigned y, mo, d, h, mi, se, frac = 0;
	size_t i = 19;
	if (n < 20 || s[4] != '-' || s[7] != '-' ||
	    (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':' ||
	    !digits(s, 4, &y) || !digits(s + 5, 2, &mo) ||
	    !digits(s + 8, 2, &d) || !digits(s + 11, 2, &h) ||
	    !digits(s + 14, 2, &mi) || !digits(s + 17, 2, &se))
		return -1;
	if (s[i] == '.') {
		unsigned scale = 100;
		if (++i >= n - 1)
			return -1;
		for (; i < n - 1; i++) {
			if (s[i] < '0' || s[i] > '9')
				return -1;
			frac += (unsigned)(s[i] - '0') * scale;
			scale /= 10;
		}
	}
	if (i != n - 1 || (s[i] != 'Z' && s[i] != 'z'))
		return -1;
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] ||
	    (mo == 2 && d == 29 && !leap) || h > 23 || mi > 59 || se > 59)
		return -1;
	*ms = ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60000 +
	      (int64_t)se * 1000 + frac;
	return 0;
}

/* Take key (a time string, or null when nullable) out of o into *ms. */
static int take_time(json_t *o, const char *key, bool nullable, int64_t *ms,
		     struct ud_error *err)
{
	json_t *v = json_object_get(o, key);
	*ms = UD_IMPORT_NO_TIME;
	if (!v)
		return 0;
	if (json_is_null(v) && nullable) {
		json_object_del(o, key);
		return 0;
	}
	if (!json_is_string(v) ||
	    time_parse(json_string_value(v), json_string_length(v), ms))
		return ud_error_set(err, UD_EINVAL, key,
				    "%s must be an RFC 3339 UTC time such as "
				    "2025-01-20T15:00:00Z%s",
				    key, nullable ? " or null" : "");
	json_object_del(o, key);
	return 0;
}

/* identities {"target": {"user_id": s, "details": {...}}} -> the stored
 * msgpack form (ops.c's ident_entry order). */
static int take_identities(json_t *o, struct ud_buf *mp, bool *given,
			   struct ud_error *err)
{
	json_t *ids = json_object_get(o, "identities"), *e;
	const char *t;
	msgpack_packer pk;
	int rc = 0;
	*given = false;
	if (!ids || json_is_null(ids))
		goto done;
	if (!json_is_object(ids))
		return ud_error_set(err, UD_EINVAL, "identities",
				    "identities must be an object");
	msgpack_packer_init(&pk, mp, codec_buf_write_cb);
	msgpack_pack_map(&pk, json_object_size(ids));
	json_object_foreach(ids, t, e)
	{
		json_t *uid = json_object_get(e, "user_id");
		json_t *det = json_object_get(e, "details");
		size_t keys = json_is_object(e) ? json_object_size(e) : 0;
		if (!json_is_object(e) || !json_is_string(uid) ||
		    keys != 1u + (det != NULL) ||
		    (det && !json_is_object(det) && !json_is_null(det)))
			return ud_error_set(err, UD_EINVAL, "identities",
					    "each identity must be "
					    "{\"user_id\": string, "
					    "\"details\": object}");
		if ((rc = valid_identity(t, strlen(t), json_string_value(uid),
					 json_string_length(uid), err)) != 0)
			return rc;
		msgpack_pack_str_with_body(&pk, t, strlen(t));
		msgpack_pack_map(&pk, 2);
		msgpack_pack_str_with_body(&pk, "user_id", 7);
		msgpack_pack_str_with_body(&pk, json_string_value(uid),
					   json_string_length(uid));
		msgpack_pack_str_with_body(&pk, "details", 7);
		if (det && json_is_object(det))
			rc = codec_json_to_mp(det, mp, "identities", err);
		else
			msgpack_pack_map(&pk, 0);
		if (rc)
			return rc;
	}
	if (!mp->data)
		return ud_error_set(err, UD_ENOMEM, NULL, "out of memory");
	*given = true;
done:
	json_object_del(o, "identities");
	return 0;
}

/* The line's extras out of root into x (identities copied into arena). */
static int take_extras(json_t *root, struct ud_import_extra *x,
		       struct ud_arena *arena, struct ud_error *err)
{
	json_t *hp = json_object_get(root, "has_password");
	struct ud_buf mp = {0};
	bool given;
	int rc;
	memset(x, 0, sizeof(*x));
	if (hp && !json_is_boolean(hp))
		return ud_error_set(err, UD_EINVAL, "has_password",
				    "has_password must be a boolean");
	json_object_del(root, "has_password"); /* read-only: ignored */
	if (json_is_null(json_object_get(root, "password_hash")))
		json_object_del(root, "password_hash"); /* as export writes */
	if ((rc = take_time(root, "created_at", false, &x->created_ms, err)) ||
	    (rc = take_time(root, "updated_at", false, &x->updated_ms, err)) ||
	    (rc = take_time(root, "last_sign_in_at", true, &x->last_sign_in_ms,
			    err)) ||
	    (rc = take_identities(root, &mp, &given, err)))
		goto out;
	if (given) {
		void *copy = ud_arena_alloc(arena, mp.len);
		if (!copy) {
			rc =
			    ud_error_set(err, UD_ENOMEM, NULL, "out of memory");
			goto out;
		}
		memcpy(copy, mp.data, mp.len);
		x->identities = copy, x->identities_len = mp.len;
	}
out:
	ud_buf_free(&mp);
	return rc;
}

int import_line_parse(const char *s, size_t n, struct ud_fields *f,
		      struct ud_import_extra *x, struct ud_arena *arena,
		      struct ud_error *err)
{
	json_error_t jerr;
	json_t *root = json_loadb(s, n, JSON_REJECT_DUPLICATES, &jerr);
	int rc;
	if (!root)
		return ud_error_set(err, UD_EINVAL, NULL,
				    "malformed JSON at byte %d: %s",
				    jerr.position, jerr.text);
	if (!json_is_object(root))
		rc = ud_error_set(err, UD_EINVAL, NULL,
				  "a line must be a JSON object");
	else if ((rc = take_extras(root, x, arena, err)) == 0 &&
		 (rc = fields_from_jansson(root, f, arena, err)) == 0)
		x->checked = true;
	json_decref(root);
	return rc;
}
