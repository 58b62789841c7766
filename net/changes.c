/*
 * changes.c -- the change stream; see changes.h for the design.
 */
#include "changes.h"

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "codec.h"
#include "journal.h"
#include "retain.h"
#include "server.h"

/* One encoded change: the msgpack map, and where its user_id lies in it. */
struct entry {
	uint64_t seq;
	uint64_t cum; /* bytes of every entry pushed so far, this one's too */
	char *mp;
	uint32_t len;
	uint32_t uid_off;
	uint16_t uid_len;
	uint8_t event;
};

/* Bytes shared by every watcher's output (evbuffer_add_reference). */
struct chunk {
	int refs;
	size_t len;
	char data[];
};

struct watcher {
	struct conn *c; /* referenced */
	enum changes_proto proto;
	char uid[UD_ID_MAX + 1];
	size_t uid_len;	 /* 0: every user */
	uint64_t cursor; /* ring index (absolute) of the next change to send */
	struct watcher *prev, *next;
};

struct changes {
	struct server *srv;
	/* the window: entries start .. start+count-1 (absolute indexes) at
	 * slot index % cap */
	struct entry *ring;
	size_t cap, keep;
	uint64_t start, count;
	uint64_t floor; /* resumable: since >= floor */
	uint64_t bytes; /* of every entry pushed (struct entry.cum) */
	/* committed, not yet durable; pending_log[i]: the log seq that
	 * pending[i] waits for (changes_publish) */
	struct entry *pending;
	uint64_t *pending_log;
	size_t npending, cappending;
	struct watcher *watchers;
	size_t nwatchers;
	struct event *heartbeat;
	struct event *batch; /* deliver() once CHANGES_BATCH_US have passed */
	uint64_t sent;	     /* ring index of the first entry not delivered */
	uint64_t next_deliver_us; /* no delivery before (deliver()) */
	struct ud_buf scratch;
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

/* The change as a msgpack map into e (malloc'd).  0 or UD_ENOMEM. */
static int entry_encode(struct changes *ch, const struct ud_change *c,
			struct entry *e)
{
	struct ud_buf *b = &ch->scratch;
	const char *actor, *ev = ud_event_name(c->event);
	size_t actor_len;
	char at[32];
	msgpack_packer pk;
	int rc = 0;

	b->len = 0;
	msgpack_packer_init(&pk, b, codec_buf_write_cb);
	msgpack_pack_map(&pk, 6);
	pack_cstr(&pk, "seq", 3);
	msgpack_pack_uint64(&pk, c->seq);
	pack_cstr(&pk, "event", 5);
	pack_cstr(&pk, ev, strlen(ev));
	pack_cstr(&pk, "user_id", 7);
	msgpack_pack_str(&pk, c->user_id_len);
	e->uid_off = (uint32_t)b->len;
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
	if (rc || !b->data || !(e->mp = malloc(b->len)))
		return UD_ENOMEM;
	memcpy(e->mp, b->data, b->len);
	e->len = (uint32_t)b->len;
	e->seq = c->seq;
	e->uid_len = (uint16_t)c->user_id_len;
	e->event = (uint8_t)c->event;
	return 0;
}

/* Append e framed for proto to b.  0 or UD_ENOMEM. */
static int entry_frame(const struct entry *e, enum changes_proto proto,
		       struct ud_buf *b)
{
	char head[96];
	int n;

	if (proto == CHANGES_RPC)
		return ud_buf_append(b,
				     "\x93\x02\xa6"
				     "change\x91",
				     10) ||
			       ud_buf_append(b, e->mp, e->len)
			   ? UD_ENOMEM
			   : 0;
	n = snprintf(head, sizeof head,
		     "id: %llu\nevent: %s\ndata: ", (unsigned long long)e->seq,
		     ud_event_name(e->event));
	if (ud_buf_append(b, head, (size_t)n) ||
	    codec_mp_to_json(e->mp, e->len, b) || ud_buf_append(b, "\n\n", 2))
		return UD_ENOMEM;
	return 0;
}

static bool entry_matches(const struct entry *e, const struct watcher *w)
{
	return !w->uid_len || (w->uid_len == e->uid_len &&
			       !memcmp(e->mp + e->uid_off, w->uid, w->uid_len));
}

/* ---- the window ------------------------------------------------------------
 */

static struct entry *ring_at(const struct changes *ch, uint64_t i)
{
	return &ch->ring[i % ch->cap];
}

static uint64_t ring_end(const struct changes *ch)
{
	return ch->start + ch->count;
}

/* The seq of the last change published (or known at start). */
static uint64_t last_seq(const struct changes *ch)
{
	return ch->count ? ring_at(ch, ring_end(ch) - 1)->seq : ch->floor;
}

/* The ring holds the window, and at least what one delivery needs. */
static size_t ring_max(const struct changes *ch)
{
	return ch->keep > CHANGES_RING_MIN ? ch->keep : CHANGES_RING_MIN;
}

/* Resumable: since >= this.  Past the last `keep` entries when the ring
 * holds more (a small --changes-keep). */
static uint64_t floor_seq(const struct changes *ch)
{
	if (ch->count > ch->keep)
		return ring_at(ch, ring_end(ch) - ch->keep - 1)->seq;
	return ch->floor;
}

static int ring_grow(struct changes *ch)
{
	size_t cap = ch->cap ? ch->cap * 2 : 1024;
	struct entry *r;

	if (cap > ring_max(ch))
		cap = ring_max(ch);
	if (!(r = calloc(cap, sizeof(*r))))
		return UD_ENOMEM;
	for (uint64_t i = ch->start; i < ring_end(ch); i++)
		r[i % cap] = *ring_at(ch, i);
	free(ch->ring);
	ch->ring = r;
	ch->cap = cap;
	return 0;
}

/* Take e into the window (its mp too), dropping the oldest past keep. */
static void ring_push(struct changes *ch, struct entry *e)
{
	if (ch->count == ch->cap && ch->cap < ring_max(ch))
		ring_grow(ch); /* on failure the window just stays smaller */
	if (ch->cap == 0) {
		ch->floor = e->seq;
		free(e->mp);
		return;
	}
	if (ch->count == ch->cap) { /* full: the oldest goes */
		struct entry *old = ring_at(ch, ch->start);
		ch->floor = old->seq;
		free(old->mp);
		ch->start++;
		ch->count--;
	}
	ch->bytes += e->len;
	e->cum = ch->bytes;
	*ring_at(ch, ring_end(ch)) = *e;
	ch->count++;
}

/* Bytes of the entries from index i to the end: what a watcher at cursor
 * i still owes its socket, besides its output. */
static uint64_t ring_lag(const struct changes *ch, uint64_t i)
{
	const struct entry *e;

	if (i >= ring_end(ch))
		return 0;
	e = ring_at(ch, i);
	return ch->bytes - (e->cum - e->len);
}

/* The absolute index of the first entry with seq > since. */
static uint64_t ring_find(const struct changes *ch, uint64_t since)
{
	uint64_t lo = ch->start, hi = ring_end(ch);

	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		if (ring_at(ch, mid)->seq <= since)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* ---- from the engine --------------------------------------------------- */

static void note_cb(void *ctx, const struct ud_change *c)
{
	struct changes *ch = ctx;
	struct entry e;

	if (ch->npending == ch->cappending) {
		size_t cap = ch->cappending ? ch->cappending * 2 : 64;
		struct entry *p = realloc(ch->pending, cap * sizeof(*p));
		if (p)
			ch->pending = p;
		uint64_t *l = realloc(ch->pending_log, cap * sizeof(*l));
		if (l)
			ch->pending_log = l;
		if (!p || !l)
			goto lost;
		ch->cappending = cap;
	}
	if (entry_encode(ch, c, &e))
		goto lost;
	ch->pending_log[ch->npending] = ud_log_seq(ch->srv->db);
	ch->pending[ch->npending++] = e;
	return;
lost:
	/* Out of memory: the stream cannot show this change, so no resume
	 * may pass over it.  Watchers must reload (410 on resume). */
	fprintf(stderr,
		"userdb-server: out of memory: change %llu is not "
		"in the change stream\n",
		(unsigned long long)c->seq);
	ch->floor = c->seq;
}

/* Rebuild the window from the log segments kept on disk. */
static int load_cb(void *ctx, uint64_t log_seq, const void *payload, size_t len)
{
	struct changes *ch = ctx;
	struct ud_change c;
	struct entry e;
	void *own;
	int rc;

	(void)log_seq;
	rc = ud_change_decode(ch->srv->db, payload, len, &c, &own);
	if (rc == 1)
		return 0;
	if (rc == 0)
		rc = entry_encode(ch, &c, &e);
	ud_change_release(own);
	if (rc)
		return rc;
	ring_push(ch, &e);
	return 0;
}

static void load_window(struct changes *ch)
{
	struct ud_error err = {0};
	uint64_t now = ud_db_last_seq(ch->srv->db);
	int rc = 0;

	if (!ch->srv->cfg.no_persist)
		rc = retain_scan(ch->srv->db, load_cb, ch, &err);
	if (rc || (ch->count && last_seq(ch) != now)) {
		fprintf(stderr,
			"userdb-server: warning: the change stream cannot "
			"resume from before seq %llu (%s)\n",
			(unsigned long long)now,
			rc ? err.message
			   : "the log does not hold every change");
		while (ch->count) {
			free(ring_at(ch, ch->start)->mp);
			ch->start++;
			ch->count--;
		}
	}
	/* The log holds every change after the first one kept: changes are
	 * numbered by one, so resuming from the seq before it misses none. */
	if (ch->count && ch->floor == 0)
		ch->floor = ring_at(ch, ch->start)->seq - 1;
	else if (!ch->count)
		ch->floor = now;
}

/* ---- watchers ------------------------------------------------------------ */

static void chunk_unref_cb(const void *data, size_t len, void *extra)
{
	struct chunk *k = extra;

	(void)data;
	(void)len;
	if (--k->refs == 0)
		free(k);
}

static void chunk_unref(struct chunk *k)
{
	if (k)
		chunk_unref_cb(NULL, 0, k);
}

static void watcher_free(struct changes *ch, struct watcher *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		ch->watchers = w->next;
	if (w->next)
		w->next->prev = w->prev;
	ch->nwatchers--;
	w->c->watch = NULL;
	conn_unref(w->c);
	free(w);
}

static size_t out_len(const struct watcher *w)
{
	return evbuffer_get_length(bufferevent_get_output(w->c->bev));
}

/* Cut a watcher that cannot keep up (output cap, or fell out of the
 * window). */
static void watcher_cut(struct changes *ch, struct watcher *w)
{
	ch->srv->metrics.connections_dropped++;
	conn_close(w->c);
	watcher_free(ch, w);
}

/* Output a watcher may hold before it is fed from the window instead. */
static size_t pump_bytes(const struct changes *ch)
{
	size_t quarter = ch->srv->cfg.max_output / 4;

	return quarter < CHANGES_PUMP_BYTES ? quarter : CHANGES_PUMP_BYTES;
}

/* May w be sent to now?  (Its connection's held replies go first.) */
static bool watcher_ready(const struct watcher *w)
{
	return !w->c->closed && !w->c->on_held;
}

/* Frames of entries [from, end) for proto, as one shared chunk. */
static struct chunk *chunk_new(const struct changes *ch, uint64_t from,
			       uint64_t end, enum changes_proto p,
			       struct ud_buf *b)
{
	struct chunk *k;

	b->len = 0;
	for (uint64_t i = from; i < end; i++)
		if (entry_frame(ring_at(ch, i), p, b))
			return NULL;
	if (!(k = malloc(sizeof(*k) + b->len)))
		return NULL;
	k->refs = 1;
	k->len = b->len;
	memcpy(k->data, b->data, b->len);
	return k;
}

/* Queue p[0..n) on w (part of k, or copied when k is NULL).  With nothing
 * queued before it, it is written to the socket at once: handing it to the
 * bufferevent would arm and disarm its write event around the write (two
 * epoll_ctl(2) calls per watcher and delivery; see conn_send_held). */
static int send_bytes(struct watcher *w, struct chunk *k, const char *p,
		      size_t n)
{
	struct evbuffer *out = bufferevent_get_output(w->c->bev);

	if (evbuffer_get_length(out) == 0) {
		ssize_t m = send(bufferevent_getfd(w->c->bev), p, n,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (m > 0) { /* else the bufferevent meets the error */
			p += m;
			n -= (size_t)m;
		}
	}
	if (n == 0)
		return 0;
	if (!k)
		return evbuffer_add(out, p, n);
	k->refs++;
	if (evbuffer_add_reference(out, p, n, chunk_unref_cb, k) == 0)
		return 0;
	k->refs--;
	return -1;
}

/* A filtered watcher gets its own copies of the entries that match. */
static int send_filtered(struct changes *ch, struct watcher *w, uint64_t from,
			 uint64_t end)
{
	struct ud_buf *b = &ch->scratch;

	b->len = 0;
	for (uint64_t i = from; i < end; i++) {
		const struct entry *e = ring_at(ch, i);
		if (entry_matches(e, w) && entry_frame(e, w->proto, b))
			return -1;
	}
	return b->len ? send_bytes(w, NULL, b->data, b->len) : 0;
}

/* Send one live watcher the entries [from, end): the shared chunk of its
 * protocol (made on first use), or its own copies when it filters. */
static void send_live(struct changes *ch, struct watcher *w, uint64_t from,
		      uint64_t end, struct chunk **kp)
{
	int rc;

	w->cursor = end;
	if (w->uid_len) {
		rc = send_filtered(ch, w, from, end);
	} else if (!*kp &&
		   !(*kp = chunk_new(ch, from, end, w->proto, &ch->scratch))) {
		rc = -1;
	} else {
		rc = send_bytes(w, *kp, (*kp)->data, (*kp)->len);
	}
	if (rc || out_len(w) > ch->srv->cfg.max_output)
		watcher_cut(ch, w);
}

/* CPU time of this thread: a delivery's cost, whatever the scheduler
 * did meanwhile on a busy machine. */
static uint64_t thread_cpu_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* Send the window's entries not broadcast yet to every live watcher. */
static void deliver(struct changes *ch)
{
	uint64_t from = ch->sent, end = ring_end(ch);
	struct chunk *k[2] = {NULL, NULL};
	struct watcher *w, *next;

	uint64_t t0 = metrics_now_ns() / 1000, cpu0 = thread_cpu_us(), took;

	ch->sent = end;
	if (from < ch->start)
		from = ch->start; /* dropped before we got to them */
	for (w = ch->watchers; w && from < end; w = next) {
		next = w->next;
		/* one with much unsent falls behind: pumped */
		if (w->cursor == from && watcher_ready(w) &&
		    out_len(w) < pump_bytes(ch))
			send_live(ch, w, from, end, &k[w->proto]);
	}
	chunk_unref(k[0]);
	chunk_unref(k[1]);
	/* Deliveries take at most a fifth of the loop's time: with many
	 * watchers they come less often and carry more changes each. */
	took = thread_cpu_us() - cpu0;
	if (took > CHANGES_PAUSE_MAX_US / 4)
		took = CHANGES_PAUSE_MAX_US / 4;
	ch->next_deliver_us =
	    t0 + (4 * took > CHANGES_BATCH_US ? 4 * took : CHANGES_BATCH_US);
}

static void deliver_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	deliver(arg);
}

void changes_publish(struct changes *ch, uint64_t durable)
{
	uint64_t now = metrics_now_ns() / 1000;
	size_t n = 0;

	while (n < ch->npending && ch->pending_log[n] <= durable)
		ring_push(ch, &ch->pending[n++]);
	if (n == 0 && ch->npending)
		return;
	ch->npending -= n;
	if (n && ch->npending) { /* (pending is NULL before any change) */
		memmove(ch->pending, ch->pending + n,
			ch->npending * sizeof(*ch->pending));
		memmove(ch->pending_log, ch->pending_log + n,
			ch->npending * sizeof(*ch->pending_log));
	}
	if (!ch->watchers) {
		ch->sent = ring_end(ch);
	} else if (now >= ch->next_deliver_us) {
		deliver(ch);
	} else if (!evtimer_pending(ch->batch, NULL)) {
		uint64_t wait = ch->next_deliver_us - now;
		struct timeval tv = {.tv_sec = (time_t)(wait / 1000000),
				     .tv_usec = (suseconds_t)(wait % 1000000)};
		evtimer_add(ch->batch, &tv);
	}
}

bool changes_pending(const struct changes *ch)
{
	return ch && ch->npending > 0;
}

/* Frame w's next changes from the window into its output, up to
 * CHANGES_PUMP_BYTES queued. */
static void watcher_pump(struct changes *ch, struct watcher *w)
{
	struct evbuffer *out = bufferevent_get_output(w->c->bev);
	struct ud_buf *b = &ch->scratch;

	/* The window moved past it, or it owes more than --max-output. */
	if (w->cursor < ch->start ||
	    evbuffer_get_length(out) + ring_lag(ch, w->cursor) >
		ch->srv->cfg.max_output) {
		watcher_cut(ch, w);
		return;
	}
	while (w->cursor < ch->sent &&
	       evbuffer_get_length(out) < pump_bytes(ch)) {
		const struct entry *e = ring_at(ch, w->cursor++);
		if (!entry_matches(e, w))
			continue;
		b->len = 0;
		if (entry_frame(e, w->proto, b) ||
		    evbuffer_add(out, b->data, b->len)) {
			watcher_cut(ch, w);
			return;
		}
	}
	if (evbuffer_get_length(out) > ch->srv->cfg.max_output)
		watcher_cut(ch, w);
}

void changes_pump(struct changes *ch)
{
	struct watcher *w, *next;

	if (!ch)
		return;
	for (w = ch->watchers; w; w = next) {
		next = w->next;
		if (w->c->closed)
			watcher_free(ch, w);
		else if (watcher_ready(w) && w->cursor < ch->sent)
			watcher_pump(ch, w); /* behind what was delivered */
	}
}

static void heartbeat_cb(evutil_socket_t fd, short what, void *arg)
{
	struct changes *ch = arg;
	struct watcher *w, *next;

	(void)fd;
	(void)what;
	for (w = ch->watchers; w; w = next) {
		next = w->next;
		if (w->c->closed)
			watcher_free(ch, w);
		else if (w->proto == CHANGES_SSE && watcher_ready(w))
			evbuffer_add(bufferevent_get_output(w->c->bev),
				     ": keep-alive\n\n", 14);
	}
}

int changes_watch(struct changes *ch, struct conn *c, enum changes_proto p,
		  bool has_since, uint64_t since, const char *uid,
		  size_t uid_len, uint64_t *last, struct ud_error *err)
{
	struct watcher *w = c->watch;

	*last = last_seq(ch);
	if (has_since && since < floor_seq(ch))
		return ud_error_set(err, UD_EGONE, "since",
				    "changes after seq %llu are no longer "
				    "retained (the oldest resumable seq is "
				    "%llu): reload and watch from now",
				    (unsigned long long)since,
				    (unsigned long long)floor_seq(ch));
	if (has_since && since > *last)
		return ud_error_set(err, UD_EINVAL, "since",
				    "seq %llu is after the last change (%llu)",
				    (unsigned long long)since,
				    (unsigned long long)*last);
	if (uid_len > UD_ID_MAX)
		return ud_error_set(err, UD_EINVAL, "user_id",
				    "user_id is too long");
	if (!w) {
		if (!(w = calloc(1, sizeof(*w))))
			return ud_error_set(err, UD_ENOMEM, NULL,
					    "out of memory");
		w->c = c;
		conn_ref(c);
		c->watch = w;
		w->next = ch->watchers;
		if (ch->watchers)
			ch->watchers->prev = w;
		ch->watchers = w;
		ch->nwatchers++;
		conn_set_streaming(c);
	}
	w->proto = p;
	if (uid_len)
		memcpy(w->uid, uid, uid_len);
	w->uid_len = uid_len;
	w->cursor = has_since ? ring_find(ch, since) : ring_end(ch);
	return 0;
}

void changes_unwatch(struct changes *ch, struct conn *c)
{
	if (c->watch)
		watcher_free(ch, c->watch);
}

size_t changes_watchers(const struct changes *ch)
{
	return ch ? ch->nwatchers : 0;
}

uint64_t changes_last_seq(const struct changes *ch)
{
	return last_seq(ch);
}

/* ---- life ------------------------------------------------------------------
 */

struct changes *changes_new(struct server *srv)
{
	struct changes *ch = calloc(1, sizeof(*ch));
	struct timeval tv = {.tv_sec = CHANGES_HEARTBEAT_S};

	if (!ch)
		goto fail;
	ch->srv = srv;
	ch->keep = srv->cfg.changes_keep;
	ch->heartbeat = event_new(srv->base, -1, EV_PERSIST, heartbeat_cb, ch);
	ch->batch = evtimer_new(srv->base, deliver_cb, ch);
	if (!ch->heartbeat || !ch->batch || event_add(ch->heartbeat, &tv))
		goto fail;
	load_window(ch);
	ch->sent = ring_end(ch);
	ud_db_set_changes(srv->db, note_cb, ch);
	return ch;
fail:
	fprintf(stderr, "userdb-server: cannot set up the change stream\n");
	changes_free(ch);
	return NULL;
}

void changes_free(struct changes *ch)
{
	if (!ch)
		return;
	if (ch->srv->db)
		ud_db_set_changes(ch->srv->db, NULL, NULL);
	while (ch->watchers)
		watcher_free(ch, ch->watchers);
	for (uint64_t i = ch->start; i < ring_end(ch); i++)
		free(ring_at(ch, i)->mp);
	for (size_t i = 0; i < ch->npending; i++)
		free(ch->pending[i].mp);
	if (ch->heartbeat)
		event_free(ch->heartbeat);
	if (ch->batch)
		event_free(ch->batch);
	free(ch->ring);
	free(ch->pending);
	free(ch->pending_log);
	ud_buf_free(&ch->scratch);
	free(ch);
}
