/*
 * chwin.c -- the change stream's window; see chwin.h for the design.
 */
#include "chwin.h"

#include <msgpack.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "codec.h"
#include "frame.h"

#define ENT_HDR 16

struct block {
	uint64_t first_seq, last_seq, first_ord;
	uint32_t n;
	size_t len, cap;
	char *raw; /* NULL once compressed */
	void *z;   /* compressed (in-memory form, sealed) */
	size_t zlen;
	struct retain_pos start; /* at or before its first change's record */
};

struct mark {
	uint64_t seq, ord;
	struct retain_pos pos; /* just past the record of change seq */
};

/* A change noted, not yet durable. */
struct waiting {
	uint64_t seq, log_seq;
	struct retain_pos pos;
};

struct chwin {
	ud_db *db;
	uint64_t keep;
	bool logged;
	/* resumable after base (ordinal base_ord; log: read from base_pos) */
	uint64_t base, base_ord;
	struct retain_pos base_pos;
	uint64_t last, total; /* the last change noted, its ordinal */
	struct retain_pos last_pos;
	uint64_t pub, pub_ord; /* the last change published */
	struct retain_pos pub_pos;
	/* blocks hold every change after enc_from */
	struct block *blk;
	size_t nblk, capblk;
	uint64_t enc_from;
	struct mark *mk;
	size_t nmk, capmk;
	struct waiting *wait; /* wait[0..nwait): in order, after pub */
	size_t nwait, capwait;
	uint64_t avg, bytes;
	struct ud_buf scratch, rd, zbuf;
	struct ud_buf unz; /* the block last decompressed */
	uint64_t unz_seq;  /* its first seq, 0: none */
};

/* ---- encoding ------------------------------------------------------------ */

static void pack_cstr(msgpack_packer *pk, const char *s, size_t n)
{
	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
}

/* details.actor as a string, if the event's details have one. */
static bool find_actor(const void *mp, size_t n, const char **s, size_t *len)
{
	struct codec_mp_cur cur = {mp, (const unsigned char *)mp + n};
	struct codec_mp_item it, v;
	uint32_t pairs;

	if (!mp || !n || codec_mp_next(&cur, &it) || it.type != CODEC_MP_MAP)
		return false;
	for (pairs = it.n; pairs > 0; pairs--) {
		if (codec_mp_next(&cur, &it))
			return false;
		if (it.type == CODEC_MP_STR && it.n == 5 &&
		    !memcmp(it.s, "actor", 5)) {
			if (codec_mp_next(&cur, &v) || v.type != CODEC_MP_STR)
				return false;
			*s = v.s;
			*len = v.n;
			return true;
		}
		if (it.type == CODEC_MP_ARRAY || it.type == CODEC_MP_MAP)
			return false; /* keys are strings (codec.h) */
		if (codec_mp_skip(&cur, CODEC_WALK_DEPTH))
			return false;
	}
	return false;
}

/* The change as an entry (header and map) appended to b.  0 or UD_ENOMEM. */
static int ent_encode(const struct ud_change *c, struct ud_buf *b)
{
	const char *actor, *ev = ud_event_name(c->event);
	size_t actor_len, start = b->len, uid_off;
	unsigned char hdr[ENT_HDR];
	uint32_t len;
	uint16_t off16;
	char at[32];
	msgpack_packer pk;
	int rc = 0;

	if (ud_buf_append(b, hdr, ENT_HDR))
		return UD_ENOMEM;
	msgpack_packer_init(&pk, b, codec_buf_write_cb);
	msgpack_pack_map(&pk, 6);
	pack_cstr(&pk, "seq", 3);
	msgpack_pack_uint64(&pk, c->seq);
	pack_cstr(&pk, "event", 5);
	pack_cstr(&pk, ev, strlen(ev));
	pack_cstr(&pk, "user_id", 7);
	msgpack_pack_str(&pk, c->user_id_len);
	uid_off = b->len - start - ENT_HDR;
	msgpack_pack_str_body(&pk, c->user_id, c->user_id_len);
	pack_cstr(&pk, "at", 2);
	pack_cstr(&pk, at, ud_time_format(c->at_ms, at));
	pack_cstr(&pk, "actor", 5);
	if (find_actor(c->details, c->details_len, &actor, &actor_len))
		pack_cstr(&pk, actor, actor_len);
	else
		msgpack_pack_nil(&pk);
	pack_cstr(&pk, "user", 4);
	if (c->user)
		rc = ud_user_write_msgpack(c->user, b);
	else
		msgpack_pack_nil(&pk);
	if (rc || !b->data || b->len - start > UINT32_MAX)
		return UD_ENOMEM;
	len = (uint32_t)(b->len - start - ENT_HDR);
	off16 = (uint16_t)uid_off;
	memcpy(hdr, &c->seq, 8);
	memcpy(hdr + 8, &len, 4);
	memcpy(hdr + 12, &off16, 2);
	hdr[14] = (unsigned char)c->user_id_len;
	hdr[15] = (unsigned char)c->event;
	memcpy(b->data + start, hdr, ENT_HDR);
	return 0;
}

/* The entry at p (within a block's raw bytes); its total size. */
static size_t ent_view(const char *p, struct chwin_ent *e)
{
	uint16_t off16;

	memcpy(&e->seq, p, 8);
	memcpy(&e->len, p + 8, 4);
	memcpy(&off16, p + 12, 2);
	e->uid_len = (uint8_t)p[14];
	e->event = (uint8_t)p[15];
	e->mp = p + ENT_HDR;
	e->uid = e->mp + off16;
	return ENT_HDR + e->len;
}

/* ---- arrays -------------------------------------------------------------- */

/* arr (of *cap elements of elem bytes) reallocated to twice as many, or
 * `first`; NULL (arr untouched) on out of memory. */
static void *arr_grow(void *arr, size_t *cap, size_t elem, size_t first)
{
	size_t n = *cap ? *cap * 2 : first;
	void *p = realloc(arr, n * elem);

	if (p)
		*cap = n;
	return p;
}

/* The index of the first of n elements (elem bytes each, sorted by the
 * uint64_t at key_off) whose key is > seq; n when none. */
static size_t arr_after(const void *arr, size_t n, size_t elem, size_t key_off,
			uint64_t seq)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		uint64_t key;
		memcpy(&key, (const char *)arr + mid * elem + key_off, 8);
		if (key <= seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* ---- blocks -------------------------------------------------------------- */

static void block_free(struct chwin *w, struct block *b)
{
	w->bytes -= b->raw ? b->cap : b->zlen;
	free(b->raw);
	free(b->z);
	if (w->unz_seq == b->first_seq)
		w->unz_seq = 0;
}

/* Compress a full block (in-memory form); on failure it stays raw. */
static void block_seal(struct chwin *w, struct block *b)
{
	size_t bound = ZSTD_compressBound(b->len), n;

	if (w->logged || !b->raw)
		return;
	w->zbuf.len = 0;
	if (ud_buf_reserve(&w->zbuf, bound))
		return;
	n = ZSTD_compress(w->zbuf.data, bound, b->raw, b->len,
			  CHWIN_ZSTD_LEVEL);
	if (ZSTD_isError(n) || !(b->z = malloc(n)))
		return;
	memcpy(b->z, w->zbuf.data, n);
	w->bytes += n;
	w->bytes -= b->cap;
	b->zlen = n;
	free(b->raw);
	b->raw = NULL;
}

/* A new last block with room for need bytes, its changes after the log
 * position start. */
static struct block *block_add(struct chwin *w, size_t need,
			       const struct retain_pos *start)
{
	struct block *b;

	if (w->nblk == w->capblk) {
		struct block *nb =
		    arr_grow(w->blk, &w->capblk, sizeof(*w->blk), 16);
		if (!nb)
			return NULL;
		w->blk = nb;
	}
	b = &w->blk[w->nblk];
	memset(b, 0, sizeof(*b));
	b->cap = need > CHWIN_BLOCK_BYTES ? need : CHWIN_BLOCK_BYTES;
	if (!(b->raw = malloc(b->cap)))
		return NULL;
	b->first_ord = w->total;
	b->start = *start;
	w->bytes += b->cap;
	w->nblk++;
	return b;
}

static void blocks_clear(struct chwin *w)
{
	for (size_t i = 0; i < w->nblk; i++)
		block_free(w, &w->blk[i]);
	w->nblk = 0;
}

/* Append the change just counted (ordinal w->total) to the blocks. */
static int block_append(struct chwin *w, const struct ud_change *c,
			const struct retain_pos *before)
{
	struct ud_buf *s = &w->scratch;
	struct block *b = w->nblk ? &w->blk[w->nblk - 1] : NULL;
	struct chwin_ent e;

	s->len = 0;
	if (ent_encode(c, s))
		return UD_ENOMEM;
	if (!b || !b->raw || b->len + s->len > b->cap) {
		if (b)
			block_seal(w, b);
		if (!(b = block_add(w, s->len, before)))
			return UD_ENOMEM;
		b->first_seq = c->seq;
	}
	memcpy(b->raw + b->len, s->data, s->len);
	b->len += s->len;
	b->n++;
	b->last_seq = c->seq;
	ent_view(s->data, &e);
	w->avg = w->avg - w->avg / 16 + e.len / 16;
	return 0;
}

/* The raw bytes of b, decompressed into the cache when needed. */
static const char *block_raw(struct chwin *w, const struct block *b)
{
	size_t n;

	if (b->raw)
		return b->raw;
	if (w->unz_seq == b->first_seq)
		return w->unz.data;
	w->unz_seq = 0;
	w->unz.len = 0;
	if (ud_buf_reserve(&w->unz, b->len))
		return NULL;
	n = ZSTD_decompress(w->unz.data, b->len, b->z, b->zlen);
	if (ZSTD_isError(n) || n != b->len)
		return NULL;
	w->unz_seq = b->first_seq;
	return w->unz.data;
}

/* The first block holding a change after seq (nblk when none). */
static size_t block_find(const struct chwin *w, uint64_t seq)
{
	return arr_after(w->blk, w->nblk, sizeof(*w->blk),
			 offsetof(struct block, last_seq), seq);
}

/* May block i (sealed, every change in it delivered) go?  The tail keeps
 * CHWIN_TAIL_BLOCKS; the in-memory form also every change of the last
 * `keep`. */
static bool block_may_drop(const struct chwin *w, size_t i, uint64_t done)
{
	const struct block *b = &w->blk[i];

	if (w->nblk - i <= CHWIN_TAIL_BLOCKS || b->last_seq > done)
		return false;
	return w->logged || b->first_ord + b->n - 1 + w->keep <= w->pub_ord;
}

void chwin_trim(struct chwin *w, uint64_t done)
{
	size_t k = 0;

	for (; k < w->nblk && block_may_drop(w, k, done); k++) {
		const struct block *b = &w->blk[k];

		w->enc_from = b->last_seq;
		if (!w->logged) {
			w->base = b->last_seq;
			w->base_ord = b->first_ord + b->n - 1;
		}
		block_free(w, &w->blk[k]);
	}
	if (k) {
		memmove(w->blk, w->blk + k, (w->nblk - k) * sizeof(*w->blk));
		w->nblk -= k;
	}
}

/* ---- marks (log-backed form) --------------------------------------------- */

static void mark_push(struct chwin *w)
{
	if (w->nmk == w->capmk) {
		size_t was = w->capmk;
		struct mark *m = arr_grow(w->mk, &w->capmk, sizeof(*m), 64);
		if (!m)
			return; /* a longer scan later, nothing worse */
		w->mk = m;
		w->bytes += (w->capmk - was) * sizeof(*m);
	}
	w->mk[w->nmk++] =
	    (struct mark){.seq = w->last, .ord = w->total, .pos = w->last_pos};
	/* A mark no resume can start from becomes the base. */
	size_t k = 0;
	while (w->nmk - k >= 2 && w->mk[k + 1].ord + w->keep <= w->total)
		k++;
	if (k) {
		w->base = w->mk[k - 1].seq;
		w->base_ord = w->mk[k - 1].ord;
		w->base_pos = w->mk[k - 1].pos;
		memmove(w->mk, w->mk + k, (w->nmk - k) * sizeof(*w->mk));
		w->nmk -= k;
	}
}

/* The last mark at or before seq, or the base. */
static struct mark mark_find(const struct chwin *w, uint64_t seq)
{
	size_t lo = arr_after(w->mk, w->nmk, sizeof(*w->mk),
			      offsetof(struct mark, seq), seq);

	if (lo == 0)
		return (struct mark){w->base, w->base_ord, w->base_pos};
	return w->mk[lo - 1];
}

/* ---- noting -------------------------------------------------------------- */

/* Queue the change just noted until its log seq is durable.  false on
 * out of memory. */
static bool wait_push(struct chwin *w, uint64_t log_seq)
{
	if (w->nwait == w->capwait) {
		struct waiting *q =
		    arr_grow(w->wait, &w->capwait, sizeof(*q), 64);
		if (!q)
			return false;
		w->wait = q;
	}
	w->wait[w->nwait++] = (struct waiting){w->last, log_seq, w->last_pos};
	return true;
}

void chwin_note(struct chwin *w, const struct ud_change *c, uint64_t log_seq,
		bool watched)
{
	struct retain_pos before = w->last_pos;
	uint64_t prev = w->last;

	w->total++;
	w->last = c->seq;
	if (w->logged)
		retain_tell(w->db, &w->last_pos);
	if (!wait_push(w, log_seq))
		goto lost;
	if (w->logged) {
		if (w->total % CHWIN_MARK_EVERY == 0)
			mark_push(w);
		if (!watched) {
			blocks_clear(w);
			return;
		}
		if (!w->nblk)
			w->enc_from = prev;
	}
	if (block_append(w, c, &before) == 0)
		return;
lost:
	/* Out of memory: the stream cannot show this change, so no resume
	 * may pass over it.  Watchers must reload (410 on resume). */
	fprintf(stderr,
		"userdb-server: out of memory: change %llu is not "
		"in the change stream\n",
		(unsigned long long)c->seq);
	chwin_lose(w, c->seq);
}

void chwin_lose(struct chwin *w, uint64_t seq)
{
	blocks_clear(w);
	w->nmk = 0;
	w->base = seq;
	w->base_ord = w->total;
	w->base_pos = w->last_pos;
	w->enc_from = seq;
}

void chwin_rebase(struct chwin *w, uint64_t seq)
{
	chwin_lose(w, seq);
	if (w->last < seq)
		w->last = seq;
	if (w->pub < seq)
		w->pub = seq;
}

void chwin_publish(struct chwin *w, uint64_t durable)
{
	size_t n = 0;

	while (n < w->nwait && w->wait[n].log_seq <= durable)
		n++;
	if (n == 0)
		return;
	w->pub = w->wait[n - 1].seq;
	w->pub_ord += n;
	w->pub_pos = w->wait[n - 1].pos;
	w->nwait -= n;
	memmove(w->wait, w->wait + n, w->nwait * sizeof(*w->wait));
}

bool chwin_pending(const struct chwin *w)
{
	return w->nwait > 0;
}

uint64_t chwin_published(const struct chwin *w)
{
	return w->pub;
}

uint64_t chwin_avg_bytes(const struct chwin *w)
{
	return w->avg;
}

uint64_t chwin_bytes(const struct chwin *w)
{
	return w->bytes;
}

/* ---- reading ------------------------------------------------------------- */

struct rd {
	struct chwin *w;
	struct chwin_cur *cur;
	uint64_t upto;
	size_t max, done;
	chwin_fn fn; /* NULL: only move (seek) */
	void *ctx;
	int rc;
};

/* One entry after the cursor: hand it on and move. */
static int rd_take(struct rd *r, const struct chwin_ent *e)
{
	r->cur->seq = e->seq;
	r->cur->ord++;
	r->done += e->len;
	if (r->fn && (r->rc = r->fn(r->ctx, e)) != 0)
		return 1;
	return r->done >= r->max;
}

/* Entries of the blocks after the cursor.  0 or UD_ENOMEM. */
static int read_blocks(struct rd *r)
{
	struct chwin *w = r->w;
	struct chwin_cur *cur = r->cur;

	for (size_t i = block_find(w, cur->seq); i < w->nblk; i++) {
		const struct block *b = &w->blk[i];
		const char *p = block_raw(w, b);
		size_t off = cur->blk == b->first_seq ? cur->off : 0;
		struct chwin_ent e;

		if (!p)
			return UD_ENOMEM;
		cur->pos = b->start;
		while (off < b->len) {
			size_t sz = ent_view(p + off, &e);
			if (e.seq > r->upto)
				return 0;
			off += sz;
			cur->blk = b->first_seq;
			cur->off = off;
			if (e.seq > cur->seq && rd_take(r, &e))
				return 0;
		}
	}
	return 0;
}

static int log_rec_cb(void *ctx, uint64_t log_seq, const void *payload,
		      size_t len, const struct retain_pos *end)
{
	struct rd *r = ctx;
	struct chwin *w = r->w;
	struct ud_change c;
	struct chwin_ent e;
	void *own;
	int rc, stop;

	(void)log_seq;
	rc = ud_change_decode(w->db, payload, len, &c, &own);
	if (rc < 0)
		return rc;
	if (rc == 1 || c.seq <= r->cur->seq) {
		ud_change_release(own);
		r->cur->pos = *end;
		return 0;
	}
	/* Back in the tail, or at the end of what may be read. */
	if (c.seq > r->upto ||
	    (r->fn && w->nblk && r->cur->seq >= w->enc_from)) {
		ud_change_release(own);
		return RETAIN_STOP;
	}
	if (c.seq != r->cur->seq + 1) { /* seqs rise by one in a log */
		ud_change_release(own);
		return UD_EGONE;
	}
	w->scratch.len = 0;
	rc = r->fn ? ent_encode(&c, &w->scratch) : 0;
	ud_change_release(own);
	if (rc)
		return rc;
	r->cur->pos = *end;
	if (!r->fn) {
		r->cur->seq = c.seq;
		r->cur->ord++;
		return 0;
	}
	ent_view(w->scratch.data, &e);
	stop = rd_take(r, &e);
	w->scratch.len = 0;
	return stop ? RETAIN_STOP : 0;
}

/* Changes of the log after the cursor. */
static int read_log(struct rd *r)
{
	struct retain_pos pos = r->cur->pos;
	struct ud_error err = {0};
	int rc;

	r->w->scratch.len = 0;
	rc = retain_read(r->w->db, &pos, SIZE_MAX, &r->w->rd, log_rec_cb, r,
			 &err);
	if (rc < 0 && rc != UD_EGONE)
		fprintf(stderr,
			"userdb-server: the change stream cannot read the "
			"log: %s\n",
			err.message[0] ? err.message : ud_code_name(rc));
	return rc;
}

int chwin_read(struct chwin *w, struct chwin_cur *cur, uint64_t upto,
	       size_t max, chwin_fn fn, void *ctx)
{
	struct rd r = {w,   cur, upto < w->pub ? upto : w->pub, max, 0, fn,
		       ctx, 0};
	int rc = 0;

	while (rc == 0 && r.rc == 0 && cur->seq < r.upto && r.done < max) {
		uint64_t was = cur->seq;

		if (cur->seq < w->base)
			return UD_EGONE;
		if (w->nblk && cur->seq >= w->enc_from)
			rc = read_blocks(&r);
		else if (w->logged)
			rc = read_log(&r);
		else
			return UD_EGONE;
		if (rc == 0 && cur->seq == was)
			break; /* nothing more to read yet */
	}
	return rc ? rc : r.rc;
}

/* ---- seeking ------------------------------------------------------------- */

void chwin_seek_end(struct chwin *w, struct chwin_cur *cur)
{
	memset(cur, 0, sizeof(*cur));
	cur->seq = w->pub;
	cur->ord = w->pub_ord;
	cur->pos = w->pub_pos;
}

/* *cur after since (base <= since < pub), its ordinal counted. */
static int seek_in(struct chwin *w, uint64_t since, struct chwin_cur *cur)
{
	struct rd r = {w, cur, since, SIZE_MAX, 0, NULL, NULL, 0};
	size_t i;

	memset(cur, 0, sizeof(*cur));
	if (w->nblk && since >= w->enc_from) {
		i = block_find(w, since);
		cur->seq = i ? w->blk[i - 1].last_seq : w->enc_from;
		cur->ord = i ? w->blk[i - 1].first_ord + w->blk[i - 1].n - 1
			     : w->blk[0].first_ord - 1;
		return read_blocks(&r);
	}
	if (!w->logged)
		return UD_EGONE;
	struct mark m = mark_find(w, since);
	cur->seq = m.seq;
	cur->ord = m.ord;
	cur->pos = m.pos;
	return read_log(&r);
}

int chwin_seek(struct chwin *w, uint64_t since, struct chwin_cur *cur,
	       struct ud_error *err)
{
	int rc = 0;

	if (since > w->pub)
		return ud_error_set(err, UD_EINVAL, "since",
				    "seq %llu is after the last change (%llu)",
				    (unsigned long long)since,
				    (unsigned long long)w->pub);
	if (since == w->pub)
		chwin_seek_end(w, cur);
	else if (since < w->base || (rc = seek_in(w, since, cur)) == UD_EGONE)
		rc = UD_EGONE;
	if (rc == 0 && cur->ord + w->keep < w->pub_ord)
		rc = UD_EGONE;
	if (rc == UD_EGONE)
		return ud_error_set(err, UD_EGONE, "since",
				    "changes after seq %llu are no longer "
				    "retained (only the last %llu are): reload "
				    "and watch from now",
				    (unsigned long long)since,
				    (unsigned long long)w->keep);
	if (rc)
		return ud_error_set(err, rc, NULL,
				    "cannot read the change stream's window");
	return 0;
}

/* ---- life ---------------------------------------------------------------- */

/* Index the changes found in the log segments kept on disk. */
static int load_cb(void *ctx, uint64_t log_seq, const void *payload, size_t len,
		   const struct retain_pos *end)
{
	struct chwin *w = ctx;
	struct ud_change c;
	void *own;
	int rc;

	(void)log_seq;
	rc = ud_change_decode(w->db, payload, len, &c, &own);
	ud_change_release(own);
	if (rc == 1)
		return 0;
	if (rc)
		return rc;
	if (w->total == 0) {
		/* Changes are numbered by one in a log: resuming from the seq
		 * before the first one kept misses none. */
		w->base = c.seq - 1;
		w->base_pos = *end;
		w->base_pos.off -= FRAME_REC_HDR + len;
	}
	w->total++;
	w->last = c.seq;
	w->last_pos = *end;
	if (w->total % CHWIN_MARK_EVERY == 0)
		mark_push(w);
	return 0;
}

static void load(struct chwin *w)
{
	struct ud_error err = {0};
	uint64_t now = ud_db_last_seq(w->db);
	int rc = 0;

	if (w->logged)
		rc = retain_scan(w->db, load_cb, w, &err);
	if (rc || w->last != now) {
		if (w->total)
			fprintf(stderr,
				"userdb-server: warning: the change stream "
				"cannot resume from before seq %llu (%s)\n",
				(unsigned long long)now,
				rc ? err.message
				   : "the log does not hold every change");
		w->nmk = 0;
		w->base = w->last = now;
		w->base_ord = w->total;
		if (w->logged)
			retain_tell(w->db, &w->last_pos);
		w->base_pos = w->last_pos;
	}
	w->enc_from = w->base;
	w->pub = w->last;
	w->pub_ord = w->total;
	w->pub_pos = w->last_pos;
}

struct chwin *chwin_new(ud_db *db, uint64_t keep)
{
	struct chwin *w = calloc(1, sizeof(*w));
	struct retain_pos pos;

	if (!w)
		return NULL;
	w->db = db;
	w->keep = keep;
	w->avg = 400;
	w->logged = retain_tell(db, &pos);
	load(w);
	return w;
}

void chwin_free(struct chwin *w)
{
	if (!w)
		return;
	blocks_clear(w);
	free(w->blk);
	free(w->mk);
	free(w->wait);
	ud_buf_free(&w->scratch);
	ud_buf_free(&w->rd);
	ud_buf_free(&w->zbuf);
	ud_buf_free(&w->unz);
	free(w);
}
