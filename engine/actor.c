/*
 * actor.c -- the actor of activity events and the runs of implicit created
 * events' actors; see actor.h.
 */
#include <stdlib.h>
#include <string.h>

#include "actor.h"
#include "db.h"

void actors_destroy(struct actors *a)
{
	uint32_t i;

	ud_buf_free(&a->cur);
	ud_buf_free(&a->merged);
	for (i = 0; i < a->n_names; i++)
		ud_buf_free(&a->names[i]);
	free(a->names);
	free(a->runs);
	memset(a, 0, sizeof(*a));
}

void actors_reset(struct actors *a)
{
	a->n_runs = 0;
}

/* Entries and header size of the msgpack map at d, or -1. */
static long map_count(const unsigned char *d, size_t len, size_t *hdr)
{
	if (len >= 1 && d[0] >= 0x80 && d[0] <= 0x8f) {
		*hdr = 1;
		return d[0] & 0x0f;
	}
	if (len >= 3 && d[0] == 0xde) {
		*hdr = 3;
		return (long)d[1] << 8 | d[2];
	}
	return -1; /* map32: no event details are that large */
}

int actors_merge(struct actors *a, const void **d, size_t *len)
{
	const unsigned char *old = *d ? *d : (const unsigned char *)"\x80";
	size_t old_len = *d && *len ? *len : 1, hdr;
	long n;
	unsigned char h[3];
	size_t hn;

	if (!a->cur.len)
		return 0;
	n = map_count(old, old_len, &hdr);
	if (n < 0 || n >= 0xffff)
		return 0;
	n++;
	if (n <= 15) {
		h[0] = (unsigned char)(0x80 | n);
		hn = 1;
	} else {
		h[0] = 0xde, h[1] = (unsigned char)(n >> 8);
		h[2] = (unsigned char)n;
		hn = 3;
	}
	a->merged.len = 0;
	if (ud_buf_append(&a->merged, h, hn) ||
	    ud_buf_append(&a->merged, a->cur.data + 1, a->cur.len - 1) ||
	    ud_buf_append(&a->merged, old + hdr, old_len - hdr))
		return UD_ENOMEM;
	*d = a->merged.data;
	*len = a->merged.len;
	return 0;
}

static bool is_empty_map(const void *d, size_t len)
{
	return !d || !len || (len == 1 && *(const unsigned char *)d == 0x80);
}

/* The index of details d in names, added when new; ACTOR_NONE for {}.
 * Returns 0 or UD_ENOMEM. */
static int name_intern(struct actors *a, const void *d, size_t len,
		       uint32_t *out)
{
	uint32_t i;

	*out = ACTOR_NONE;
	if (is_empty_map(d, len))
		return 0;
	for (i = 0; i < a->n_names; i++)
		if (a->names[i].len == len && !memcmp(a->names[i].data, d, len))
			return *out = i, 0;
	if (a->n_names == a->cap_names) {
		uint32_t cap = a->cap_names ? a->cap_names * 2 : 8;
		struct ud_buf *nn = realloc(a->names, cap * sizeof(*nn));
		if (!nn)
			return UD_ENOMEM;
		a->names = nn;
		a->cap_names = cap;
	}
	a->names[a->n_names] = (struct ud_buf){0};
	if (ud_buf_append(&a->names[a->n_names], d, len))
		return UD_ENOMEM;
	*out = a->n_names++;
	return 0;
}

int actors_note_created(struct actors *a, uint64_t seq, const void *d,
			size_t len)
{
	struct actor_run *last = a->n_runs ? &a->runs[a->n_runs - 1] : NULL;
	uint32_t name;
	int rc;

	if (last && seq < last->first_seq)
		return 0; /* creation seqs only grow; nothing to note */
	if ((rc = name_intern(a, d, len, &name)) != 0)
		return rc;
	if (last ? last->name == name : name == ACTOR_NONE)
		return 0;
	if (last && last->first_seq == seq) {
		last->name = name;
		return 0;
	}
	if (a->n_runs == a->cap_runs) {
		size_t cap = a->cap_runs ? a->cap_runs * 2 : 8;
		struct actor_run *nr = realloc(a->runs, cap * sizeof(*nr));
		if (!nr)
			return UD_ENOMEM;
		a->runs = nr;
		a->cap_runs = cap;
	}
	a->runs[a->n_runs++] = (struct actor_run){seq, name};
	return 0;
}

const void *actors_created_details(const struct actors *a, uint64_t seq,
				   size_t *len)
{
	size_t lo = 0, hi = a->n_runs;

	while (lo < hi) { /* the first run starting after seq */
		size_t mid = lo + (hi - lo) / 2;
		if (a->runs[mid].first_seq <= seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0 || a->runs[lo - 1].name == ACTOR_NONE) {
		*len = 1;
		return "\x80";
	}
	*len = a->names[a->runs[lo - 1].name].len;
	return a->names[a->runs[lo - 1].name].data;
}

int ud_set_actor(ud_db *db, const char *name, size_t len)
{
	struct ud_buf *b = &db->actors.cur;
	unsigned char h[2];

	size_t hn = len < 32 ? 1 : 2;

	b->len = 0;
	if (!name)
		return 0;
	if (len > ACTOR_NAME_MAX)
		return UD_EINVAL;
	h[0] = len < 32 ? (unsigned char)(0xa0 | len) : 0xd9;
	h[1] = (unsigned char)len;
	if (ud_buf_append(b,
			  "\x81\xa5"
			  "actor",
			  7) ||
	    ud_buf_append(b, h, hn) || ud_buf_append(b, name, len)) {
		b->len = 0;
		return UD_ENOMEM;
	}
	return 0;
}

const char *ud_actor(const ud_db *db, size_t *len)
{
	const struct ud_buf *b = &db->actors.cur;
	size_t hdr;

	if (!b->len) {
		*len = 0;
		return NULL;
	}
	hdr = ((unsigned char)b->data[7] == 0xd9) ? 9 : 8;
	*len = b->len - hdr;
	return b->data + hdr;
}
