/*
 * fields.c -- request bodies (JSON) and RPC maps (msgpack) to struct
 * ud_fields, and the whole-record rule check.
 *
 * Both parsers share one table of keys: which bit a key sets, whether an
 * update may carry it, and what JSON/msgpack type it takes.  Parsing only
 * checks shapes and types; ud_fields_validate() then applies every SPEC §1
 * rule, so a field is judged the same way whichever protocol it came in.
 *
 * JSON goes through jansson with JSON_REJECT_DUPLICATES; jansson itself
 * refuses invalid UTF-8 and "\u0000" in strings and keys, and nesting beyond
 * 2048 levels; custom_data is then bounded to 32 levels while converted to
 * msgpack.  jansson's tree is freed before returning: strings are copied
 * into the caller's arena.  msgpack strings (str, or bin holding text) are
 * borrowed from the input.
 */
#include <string.h>

#include <jansson.h>

#include "codec.h"
#include "valid.h"

enum kind { K_STR, K_STR_OR_NULL, K_OBJECT };

static const struct field_def {
	const char *name;
	unsigned bit;
	bool update_ok;
	enum kind kind;
} field_defs[] = {
    {"id", UD_F_ID, false, K_STR},
    {"name", UD_F_NAME, true, K_STR},
    {"email", UD_F_EMAIL, true, K_STR},
    {"role", UD_F_ROLE, true, K_STR},
    {"status", UD_F_STATUS, true, K_STR},
    {"avatar", UD_F_AVATAR, true, K_STR_OR_NULL},
    {"custom_data", UD_F_CUSTOM_DATA, true, K_OBJECT},
    {"password", UD_F_PASSWORD, false, K_STR},
    {"password_hash", UD_F_PASSWORD_HASH, false, K_STR},
};

#define FIELD_COUNT (sizeof(field_defs) / sizeof(field_defs[0]))

static const struct field_def *field_find(const char *key, size_t n)
{
	size_t i;

	for (i = 0; i < FIELD_COUNT; i++)
		if (strlen(field_defs[i].name) == n &&
		    memcmp(field_defs[i].name, key, n) == 0)
			return &field_defs[i];
	return NULL;
}

/* Known key allowed here, not seen before.  0 or UD_EINVAL. */
static int field_admit(const struct field_def *d, const char *key, size_t n,
		       bool for_create, unsigned seen, struct ud_error *err)
{
	if (!d)
		return valid_unknown_key("field", key, n, err);
	if (!for_create && !d->update_ok)
		return ud_error_set(err, UD_EINVAL, d->name,
				    "%s cannot be changed by an update%s",
				    d->name,
				    d->bit == UD_F_ID ? ""
						      : "; use the password "
							"operation");
	if (seen & d->bit)
		return ud_error_set(err, UD_EINVAL, d->name,
				    "%s is given twice", d->name);
	return 0;
}

static void field_store(struct ud_fields *f, unsigned bit, const char *s,
			size_t n)
{
	f->set |= bit;
	switch (bit) {
	case UD_F_ID:
		f->id = s, f->id_len = n;
		break;
	case UD_F_NAME:
		f->name = s, f->name_len = n;
		break;
	case UD_F_EMAIL:
		f->email = s, f->email_len = n;
		break;
	case UD_F_ROLE:
		f->role = s, f->role_len = n;
		break;
	case UD_F_STATUS:
		f->status = s, f->status_len = n;
		break;
	case UD_F_AVATAR:
		f->avatar = s, f->avatar_len = n;
		break;
	case UD_F_CUSTOM_DATA:
		f->custom_data = s, f->custom_data_len = n;
		break;
	case UD_F_PASSWORD:
		f->password = s, f->password_len = n;
		break;
	default:
		f->password_hash = s, f->password_hash_len = n;
		break;
	}
}

static int type_error(const struct field_def *d, struct ud_error *err)
{
	static const char *const want[] = {
	    [K_STR] = "a string",
	    [K_STR_OR_NULL] = "a string or null",
	    [K_OBJECT] = "an object",
	};

	return ud_error_set(err, UD_EINVAL, d->name, "%s must be %s", d->name,
			    want[d->kind]);
}

/* ---- JSON --------------------------------------------------------------- */

static char *arena_copy(struct ud_arena *a, const void *p, size_t n)
{
	char *s = ud_arena_alloc(a, n + 1);

	if (s) {
		memcpy(s, p, n);
		s[n] = '\0';
	}
	return s;
}

/* custom_data: convert to msgpack, then keep it in the arena. */
static int json_object_value(struct ud_fields *f, const json_t *v,
			     struct ud_arena *a, struct ud_error *err)
{
	struct ud_buf b = {0};
	char *copy;
	int rc;

	rc = codec_json_to_mp(v, &b, "custom_data", err);
	if (rc == 0) {
		copy = arena_copy(a, b.data, b.len);
		if (copy)
			field_store(f, UD_F_CUSTOM_DATA, copy, b.len);
		else
			rc = UD_ENOMEM;
	}
	ud_buf_free(&b);
	if (rc == UD_ENOMEM)
		return ud_error_set(err, rc, NULL, "out of memory");
	return rc;
}

static int json_value(const struct field_def *d, const json_t *v,
		      struct ud_fields *f, struct ud_arena *a,
		      struct ud_error *err)
{
	char *s;

	if (d->kind == K_OBJECT)
		return json_is_object(v) ? json_object_value(f, v, a, err)
					 : type_error(d, err);
	if (json_is_null(v) && d->kind == K_STR_OR_NULL) {
		field_store(f, d->bit, NULL, 0);
		return 0;
	}
	if (!json_is_string(v))
		return type_error(d, err);
	s = arena_copy(a, json_string_value(v), json_string_length(v));
	if (!s)
		return ud_error_set(err, UD_ENOMEM, NULL, "out of memory");
	field_store(f, d->bit, s, json_string_length(v));
	return 0;
}

static int json_fields(json_t *root, bool for_create, struct ud_fields *out,
		       struct ud_arena *arena, struct ud_error *err)
{
	const struct field_def *d;
	const char *key;
	size_t klen;
	json_t *v;
	int rc;

	json_object_keylen_foreach(root, key, klen, v)
	{
		d = field_find(key, klen);
		rc = field_admit(d, key, klen, for_create, out->set, err);
		if (rc == 0)
			rc = json_value(d, v, out, arena, err);
		if (rc)
			return rc;
	}
	return 0;
}

int ud_fields_from_json(const char *body, size_t len, bool for_create,
			struct ud_fields *out, struct ud_arena *arena,
			struct ud_error *err)
{
	json_error_t jerr;
	json_t *root;
	int rc;

	memset(out, 0, sizeof(*out));
	root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root && json_error_code(&jerr) == json_error_null_character)
		return ud_error_set(err, UD_EINVAL, NULL,
				    "malformed JSON at byte %d: a string "
				    "holds \\u0000 (NUL), which no field "
				    "takes",
				    jerr.position);
	if (!root)
		return ud_error_set(err, UD_EINVAL, NULL,
				    "malformed JSON at byte %d: %s",
				    jerr.position, jerr.text);
	if (!json_is_object(root))
		rc = ud_error_set(err, UD_EINVAL, NULL,
				  "the request body must be a JSON object");
	else
		rc = json_fields(root, for_create, out, arena, err);
	json_decref(root);
	if (rc)
		return rc;
	return ud_fields_validate(out, for_create, err);
}

int fields_from_jansson(json_t *root, struct ud_fields *out,
			struct ud_arena *arena, struct ud_error *err)
{
	int rc;

	memset(out, 0, sizeof(*out));
	rc = json_fields(root, true, out, arena, err);
	return rc ? rc : ud_fields_validate(out, true, err);
}

/* ---- msgpack ------------------------------------------------------------ */

static int mp_value(const struct field_def *d, struct codec_mp_cur *c,
		    struct ud_fields *f, struct ud_error *err)
{
	const unsigned char *start = c->p;
	struct codec_mp_item v;

	if (codec_mp_next(c, &v))
		return ud_error_set(err, UD_EINVAL, d->name,
				    "%s is not well-formed msgpack", d->name);
	if (d->kind == K_OBJECT) {
		if (v.type != CODEC_MP_MAP)
			return type_error(d, err);
		c->p = start; /* take the whole map; validate judges it */
		if (codec_mp_skip(c, CODEC_MAX_DEPTH))
			return ud_error_set(err, UD_EINVAL, d->name,
					    "%s is not well-formed msgpack or "
					    "nested deeper than %d levels",
					    d->name, CODEC_MAX_DEPTH);
		field_store(f, d->bit, (const char *)start,
			    (size_t)(c->p - start));
		return 0;
	}
	if (v.type == CODEC_MP_NIL && d->kind == K_STR_OR_NULL) {
		field_store(f, d->bit, NULL, 0);
		return 0;
	}
	if (v.type != CODEC_MP_STR && v.type != CODEC_MP_BIN)
		return type_error(d, err);
	field_store(f, d->bit, v.s, v.n);
	return 0;
}

static int mp_fields(struct codec_mp_cur *c, uint32_t count, bool for_create,
		     struct ud_fields *out, struct ud_error *err)
{
	const struct field_def *d;
	struct codec_mp_item k;
	uint32_t i;
	int rc;

	for (i = 0; i < count; i++) {
		if (codec_mp_next(c, &k))
			return ud_error_set(
			    err, UD_EINVAL, NULL,
			    "fields are not well-formed msgpack");
		if (k.type != CODEC_MP_STR && k.type != CODEC_MP_BIN)
			return ud_error_set(err, UD_EINVAL, NULL,
					    "field names must be strings");
		d = field_find(k.s, k.n);
		rc = field_admit(d, k.s, k.n, for_create, out->set, err);
		if (rc == 0)
			rc = mp_value(d, c, out, err);
		if (rc)
			return rc;
	}
	return 0;
}

int ud_fields_from_msgpack(const void *mp, size_t len, bool for_create,
			   struct ud_fields *out, struct ud_arena *arena,
			   struct ud_error *err)
{
	struct codec_mp_cur c = {mp, (const unsigned char *)mp + len};
	struct codec_mp_item m;
	int rc;

	(void)arena; /* everything is borrowed from mp */
	memset(out, 0, sizeof(*out));
	if (!mp || codec_mp_next(&c, &m) || m.type != CODEC_MP_MAP)
		return ud_error_set(err, UD_EINVAL, NULL,
				    "fields must be a msgpack map");
	rc = mp_fields(&c, m.n, for_create, out, err);
	if (rc)
		return rc;
	if (c.p != c.end)
		return ud_error_set(err, UD_EINVAL, NULL,
				    "trailing bytes after the fields map");
	return ud_fields_validate(out, for_create, err);
}

/* ---- rules -------------------------------------------------------------- */

static int validate_presence(const struct ud_fields *f, bool for_create,
			     struct ud_error *err)
{
	static const unsigned create_only =
	    UD_F_ID | UD_F_PASSWORD | UD_F_PASSWORD_HASH;
	size_t i;

	if (!for_create && (f->set & create_only)) {
		for (i = 0; !(field_defs[i].bit & f->set & create_only); i++)
			;
		return ud_error_set(err, UD_EINVAL, field_defs[i].name,
				    "%s cannot be changed by an update",
				    field_defs[i].name);
	}
	if (for_create && !(f->set & UD_F_NAME))
		return ud_error_set(err, UD_EINVAL, "name", "name is required");
	if (for_create && !(f->set & UD_F_EMAIL))
		return ud_error_set(err, UD_EINVAL, "email",
				    "email is required");
	if ((f->set & UD_F_PASSWORD) && (f->set & UD_F_PASSWORD_HASH))
		return ud_error_set(err, UD_EINVAL, "password_hash",
				    "give either password or password_hash, "
				    "not both");
	return 0;
}

static int validate_enums(const struct ud_fields *f, struct ud_error *err)
{
	if ((f->set & UD_F_ROLE) && ud_role_parse(f->role, f->role_len) < 0)
		return ud_error_set(err, UD_EINVAL, "role",
				    "role must be admin, user or viewer");
	if ((f->set & UD_F_STATUS) &&
	    ud_status_parse(f->status, f->status_len) < 0)
		return ud_error_set(err, UD_EINVAL, "status",
				    "status must be active, inactive or "
				    "suspended");
	return 0;
}

int ud_fields_validate(const struct ud_fields *f, bool for_create,
		       struct ud_error *err)
{
	unsigned s = f->set;
	int rc;

	if ((rc = validate_presence(f, for_create, err)))
		return rc;
	if ((s & UD_F_ID) && (rc = valid_id(f->id, f->id_len, err)))
		return rc;
	if ((s & UD_F_NAME) && (rc = valid_name(f->name, f->name_len, err)))
		return rc;
	if ((s & UD_F_EMAIL) && (rc = valid_email(f->email, f->email_len, err)))
		return rc;
	if ((rc = validate_enums(f, err)))
		return rc;
	if ((s & UD_F_AVATAR) &&
	    (rc = valid_avatar(f->avatar, f->avatar_len, err)))
		return rc;
	if ((s & UD_F_CUSTOM_DATA) &&
	    (rc = valid_mp_object(f->custom_data, f->custom_data_len,
				  "custom_data", err)))
		return rc;
	if ((s & UD_F_PASSWORD) && (rc = valid_password(f->password_len, err)))
		return rc;
	if ((s & UD_F_PASSWORD_HASH) &&
	    (rc = valid_password_hash(f->password_hash, f->password_hash_len,
				      err)))
		return rc;
	return 0;
}
