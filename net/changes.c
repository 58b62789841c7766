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

#include "chwin.h"
#include "codec.h"
#include "journal.h"
#include "server.h"

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
	size_t uid_len;	      /* 0: every user */
	struct chwin_cur cur; /* after the last change sent */
	struct watcher *prev, *next;
};

struct changes {
	struct server *srv;
	struct chwin *win;
	struct chwin_cur sent; /* after the last change delivered */
	struct watcher *watchers;
	size_t nwatchers;
	struct event *heartbeat;
	struct event *batch; /* deliver() once CHANGES_BATCH_US have passed */
	uint64_t next_deliver_us; /* no delivery before (deliver()) */
	struct ud_buf frames[2];  /* per protocol */
};

/* ---- framing ------------------------------------------------------------- */

/* Append e framed for proto to b.  0 or UD_ENOMEM. */
static int entry_frame(const struct chwin_ent *e, enum changes_proto proto,
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

/* What a read frames into: both protocols (need[p]) or one watcher's. */
struct framer {
	struct ud_buf *b[2];
	const struct watcher *w; /* its filter, when set */
};

static int frame_cb(void *ctx, const struct chwin_ent *e)
{
	struct framer *f = ctx;

	if (f->w && f->w->uid_len &&
	    (f->w->uid_len != e->uid_len ||
	     memcmp(e->uid, f->w->uid, e->uid_len)))
		return 0;
	for (int p = 0; p < 2; p++)
		if (f->b[p] && entry_frame(e, (enum changes_proto)p, f->b[p]))
			return UD_ENOMEM;
	return 0;
}

/* ---- from the engine (or any other source) ------------------------------ */

void changes_note(struct changes *ch, const struct ud_change *c)
{
	chwin_note(ch->win, c, ud_log_seq(ch->srv->db), ch->nwatchers > 0);
}

static void note_cb(void *ctx, const struct ud_change *c)
{
	changes_note(ctx, c);
}

void changes_take_over(struct changes *ch, uint64_t seq)
{
	ud_db_set_changes(ch->srv->db, NULL, NULL);
	chwin_rebase(ch->win, seq);
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

/* b's bytes as one shared chunk (NULL on out of memory). */
static struct chunk *chunk_new(const struct ud_buf *b)
{
	struct chunk *k = malloc(sizeof(*k) + b->len);

	if (!k)
		return NULL;
	k->refs = 1;
	k->len = b->len;
	if (b->len)
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

/* Read w's changes after its cursor up to seq upto, at most max bytes,
 * framed for it into b.  0 or a code (w is then cut). */
static int read_for(struct changes *ch, struct watcher *w, uint64_t upto,
		    size_t max, struct ud_buf *b)
{
	struct framer f = {{NULL, NULL}, w};

	f.b[w->proto] = b;
	b->len = 0;
	return chwin_read(ch->win, &w->cur, upto, max, frame_cb, &f);
}

/* Send one live watcher what was delivered: the shared chunk of its
 * protocol, or its own copies when it filters. */
static void send_live(struct changes *ch, struct watcher *w, struct chunk *k)
{
	struct ud_buf *b = &ch->frames[w->proto];
	int rc;

	if (w->uid_len) {
		rc = read_for(ch, w, ch->sent.seq, SIZE_MAX, b);
		if (rc == 0 && b->len)
			rc = send_bytes(w, NULL, b->data, b->len);
	} else {
		w->cur = ch->sent;
		rc = k ? send_bytes(w, k, k->data, k->len) : -1;
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

/* Is w at the delivered point, ready, with room in its output? */
static bool watcher_live(const struct changes *ch, const struct watcher *w,
			 const struct chwin_cur *from)
{
	return w->cur.seq == from->seq && watcher_ready(w) &&
	       out_len(w) < pump_bytes(ch);
}

/* The frames of the changes not yet delivered, for each protocol a live
 * unfiltered watcher speaks, as shared chunks; ch->sent moves past them. */
static void chunks_make(struct changes *ch, const struct chwin_cur *from,
			struct chunk *k[2])
{
	struct framer f = {{NULL, NULL}, NULL};
	struct watcher *w;
	int rc;

	for (w = ch->watchers; w; w = w->next)
		if (!w->uid_len && watcher_live(ch, w, from))
			f.b[w->proto] = &ch->frames[w->proto];
	for (int p = 0; p < 2; p++)
		if (f.b[p])
			f.b[p]->len = 0;
	rc = chwin_read(ch->win, &ch->sent, chwin_published(ch->win), SIZE_MAX,
			frame_cb, &f);
	if (rc) /* the live watchers are cut; later ones start from now */
		chwin_seek_end(ch->win, &ch->sent);
	for (int p = 0; p < 2; p++)
		if (f.b[p] && rc == 0)
			k[p] = chunk_new(f.b[p]);
}

/* Send the changes not delivered yet to every live watcher. */
static void deliver(struct changes *ch)
{
	struct chwin_cur from = ch->sent;
	struct chunk *k[2] = {NULL, NULL};
	struct watcher *w, *next;
	uint64_t t0 = metrics_now_ns() / 1000, cpu0 = thread_cpu_us(), took;

	chunks_make(ch, &from, k);
	for (w = ch->watchers; w && from.seq < ch->sent.seq; w = next) {
		next = w->next;
		/* one with much unsent falls behind: pumped */
		if (watcher_live(ch, w, &from))
			send_live(ch, w, k[w->proto]);
	}
	chunk_unref(k[0]);
	chunk_unref(k[1]);
	chwin_trim(ch->win, ch->sent.seq);
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
	uint64_t now = metrics_now_ns() / 1000, was = chwin_published(ch->win);

	chwin_publish(ch->win, durable);
	if (chwin_published(ch->win) == was)
		return;
	if (!ch->watchers) {
		chwin_seek_end(ch->win, &ch->sent);
		chwin_trim(ch->win, ch->sent.seq);
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
	return ch && chwin_pending(ch->win);
}

/* Frame w's next changes from the window into its output, up to
 * the pump limit queued. */
static void watcher_pump(struct changes *ch, struct watcher *w)
{
	struct evbuffer *out = bufferevent_get_output(w->c->bev);
	struct ud_buf *b = &ch->frames[w->proto];
	size_t have = evbuffer_get_length(out);
	uint64_t owed = (ch->sent.ord - w->cur.ord) * chwin_avg_bytes(ch->win);

	/* It owes more than --max-output (estimated from the average size
	 * of a change), or the window no longer has its next change. */
	if (have + owed > ch->srv->cfg.max_output ||
	    read_for(ch, w, ch->sent.seq, pump_bytes(ch) - have, b) ||
	    (b->len && evbuffer_add(out, b->data, b->len)) ||
	    evbuffer_get_length(out) > ch->srv->cfg.max_output)
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
		else if (watcher_ready(w) && w->cur.seq < ch->sent.seq &&
			 out_len(w) < pump_bytes(ch))
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
	struct chwin_cur cur;
	int rc;

	*last = chwin_published(ch->win);
	if (has_since && (rc = chwin_seek(ch->win, since, &cur, err)) != 0)
		return rc;
	if (!has_since)
		chwin_seek_end(ch->win, &cur);
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
	w->cur = cur;
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
	return chwin_published(ch->win);
}

uint64_t changes_window_bytes(const struct changes *ch)
{
	return ch ? chwin_bytes(ch->win) : 0;
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
	ch->heartbeat = event_new(srv->base, -1, EV_PERSIST, heartbeat_cb, ch);
	ch->batch = evtimer_new(srv->base, deliver_cb, ch);
	if (!ch->heartbeat || !ch->batch || event_add(ch->heartbeat, &tv))
		goto fail;
	if (!(ch->win = chwin_new(srv->db, srv->cfg.changes_keep)))
		goto fail;
	chwin_seek_end(ch->win, &ch->sent);
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
	chwin_free(ch->win);
	if (ch->heartbeat)
		event_free(ch->heartbeat);
	if (ch->batch)
		event_free(ch->batch);
	ud_buf_free(&ch->frames[0]);
	ud_buf_free(&ch->frames[1]);
	free(ch);
}
