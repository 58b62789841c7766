/*
 * cache.c -- cache mode: the LRU bound and the loader (see db.h).
 *
 * The LRU list costs nothing unless a bound is set: it is threaded through
 * two uint32 arrays indexed by order slot (8 bytes a user), allocated only
 * in cache mode and grown with the order array.  Head = most recently used.
 * Order compaction renumbers slots, so cache_save() records the list as
 * record pointers and cache_restore() relinks it by the new slots.
 *
 * Evictions and loads follow the bound, not the journal: an eviction is
 * not journaled (the user is only out of the cache), and a loaded user is
 * inserted without a user.created event (REC_LOADED).
 */
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "password.h"
#include "text.h"

int cache_init(ud_db *db)
{
	db->lru_head = db->lru_tail = LRU_NONE;
	return 0;
}

void cache_destroy(ud_db *db)
{
	free(db->lru_prev);
	free(db->lru_next);
	db->lru_prev = db->lru_next = NULL;
	db->lru_cap = 0;
}

static int lru_reserve(ud_db *db, size_t n)
{
	size_t cap = db->lru_cap ? db->lru_cap : 256;
	uint32_t *p;

	if (n <= db->lru_cap)
		return 0;
	while (cap < n)
		cap *= 2;
	p = realloc(db->lru_prev, cap * sizeof(*p));
	if (!p)
		return UD_ENOMEM;
	db->lru_prev = p;
	p = realloc(db->lru_next, cap * sizeof(*p));
	if (!p)
		return UD_ENOMEM;
	db->lru_next = p;
	db->lru_cap = cap;
	return 0;
}

static void lru_push_head(ud_db *db, uint32_t s)
{
	db->lru_prev[s] = LRU_NONE;
	db->lru_next[s] = db->lru_head;
	if (db->lru_head != LRU_NONE)
		db->lru_prev[db->lru_head] = s;
	else
		db->lru_tail = s;
	db->lru_head = s;
}

static void lru_unlink(ud_db *db, uint32_t s)
{
	uint32_t p = db->lru_prev[s], n = db->lru_next[s];

	if (p != LRU_NONE)
		db->lru_next[p] = n;
	else
		db->lru_head = n;
	if (n != LRU_NONE)
		db->lru_prev[n] = p;
	else
		db->lru_tail = p;
}

int cache_reserve(ud_db *db)
{
	return db->cache ? lru_reserve(db, db->order.len + 1) : 0;
}

int cache_insert(ud_db *db, struct record *r)
{
	if (lru_reserve(db, (size_t)r->slot + 1))
		return UD_ENOMEM;
	lru_push_head(db, r->slot);
	return 0;
}

void cache_remove(ud_db *db, const struct record *r)
{
	lru_unlink(db, r->slot);
}

void cache_touch(ud_db *db, const struct record *r)
{
	if (!db->cache || db->lru_head == r->slot)
		return;
	lru_unlink(db, r->slot);
	lru_push_head(db, r->slot);
}

static bool over_bound(const ud_db *db)
{
	return (db->opts.max_users && db->order.live > db->opts.max_users) ||
	       (db->opts.max_bytes && db->record_bytes > db->opts.max_bytes);
}

void cache_enforce(ud_db *db, const struct record *keep)
{
	struct record *victim;
	struct ulog *l;

	while (over_bound(db) && db->lru_tail != LRU_NONE) {
		victim = db->order.items[db->lru_tail];
		if (victim == keep)
			break; /* alone over the bound: keep it anyway */
		if (victim->flags & REC_HAS_LOG) {
			l = actlog_find(&db->log, record_id(victim),
					victim->id_len);
			if (l)
				actlog_drop(&db->log, l);
		}
		db_unlink(db, victim);
		db->evictions++;
	}
}

struct record **cache_save(ud_db *db)
{
	struct record **saved = malloc((db->order.live + 1) * sizeof(*saved));
	size_t n = 0;
	uint32_t s;

	if (!saved)
		return NULL;
	for (s = db->lru_head; s != LRU_NONE; s = db->lru_next[s])
		saved[n++] = db->order.items[s];
	saved[n] = NULL;
	return saved;
}

void cache_restore(ud_db *db, struct record **saved)
{
	size_t n;

	/* compaction never grows the slot range, so no allocation here */
	db->lru_head = db->lru_tail = LRU_NONE;
	for (n = 0; saved[n]; n++)
		;
	while (n--)
		lru_push_head(db, saved[n]->slot);
	free(saved);
}

int cache_check(const ud_db *db)
{
	uint32_t s, prev = LRU_NONE;
	size_t n = 0;

	if (!db->cache)
		return 0;
	for (s = db->lru_head; s != LRU_NONE; prev = s, s = db->lru_next[s]) {
		if (s >= db->order.len || !db->order.items[s] ||
		    db->lru_prev[s] != prev || ++n > db->order.live)
			return UD_EINTERNAL;
	}
	return n == db->order.live && prev == db->lru_tail ? 0 : UD_EINTERNAL;
}

/* ---- the loader ---------------------------------------------------------- */

/* Does the loaded user answer the key it was asked for? */
static bool load_matches(const struct ud_fields *f, enum ud_key_kind kind,
			 const char *key, size_t len)
{
	if (!(f->set & UD_F_ID) || !(f->set & UD_F_EMAIL))
		return false;
	if (kind == UD_KEY_ID)
		return f->id_len == len && memcmp(f->id, key, len) == 0;
	return text_fold_equal(f->email, f->email_len, key, len);
}

/* Build the record of a loaded user (validated like an import). */
static struct record *load_record(ud_db *db, const struct ud_fields *f)
{
	char hash[UD_PWHASH_MAX];
	struct record_parts p = {0};
	struct record *r;

	if (ud_fields_validate(f, true, NULL) ||
	    db_find(db, f->id, f->id_len) ||
	    db_find_email(db, f->email, f->email_len))
		return NULL;
	p.id = f->id, p.id_len = f->id_len;
	p.name = f->name, p.name_len = f->name_len;
	p.email = f->email, p.email_len = f->email_len;
	if (f->set & UD_F_AVATAR)
		p.avatar = f->avatar, p.avatar_len = f->avatar_len;
	if (f->set & UD_F_CUSTOM_DATA)
		p.custom = f->custom_data, p.custom_len = f->custom_data_len;
	if (f->set & UD_F_PASSWORD_HASH) {
		p.pw = f->password_hash, p.pw_len = f->password_hash_len;
	} else if (f->set & UD_F_PASSWORD) {
		if (ud_password_hash(&db->opts, f->password, f->password_len,
				     hash, NULL))
			return NULL;
		p.pw = hash, p.pw_len = strlen(hash);
	}
	r = record_new(&p);
	if (!r)
		return NULL;
	r->role = (f->set & UD_F_ROLE) ? ud_role_parse(f->role, f->role_len)
				       : UD_ROLE_USER;
	r->status = (f->set & UD_F_STATUS)
			? ud_status_parse(f->status, f->status_len)
			: UD_STATUS_ACTIVE;
	r->flags |= REC_LOADED;
	return r;
}

struct record *cache_load(ud_db *db, enum ud_key_kind kind, const char *key,
			  size_t len)
{
	struct ud_fields f = {0};
	struct change ch = {.type = CH_PUT};
	struct record *r;
	int rc;

	if (!db->opts.loader)
		return NULL;
	rc = db->opts.loader(db->opts.loader_ctx, kind, key, len, &f);
	if (rc == UD_ENOTFOUND)
		return NULL;
	if (rc != 0 || !load_matches(&f, kind, key, len) ||
	    (r = load_record(db, &f)) == NULL)
		goto failed;
	r->created_ms = r->updated_ms = db_now(db);
	r->etag = db->last_etag + 1;
	r->seq = db->last_event + 1;
	ch.rec = r;
	if (db_commit(db, &ch, NULL))
		goto failed;
	db->loads++;
	return db_find(db, f.id, f.id_len);
failed: /* counted: the caller sees a NULL as for an absent user */
	db->load_failures++;
	return NULL;
}
