/*
 * server.c -- listeners, connection lifetime, the flush-before-reply loop,
 * signals and graceful shutdown; see server.h for the design.
 */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "backoff.h"
#include "tls.h"
#include "changes.h"
#include "pgmode.h"
#include "pwjob.h"

struct snap_waiter {
	struct snap_waiter *next;
	struct conn *conn; /* referenced */
	uint64_t msgid;
	uint64_t target; /* ud_snapshot_done() value that answers */
	bool restart;	 /* one was running: start ours after it */
	snap_done_fn cb;
};

/* ---- connections ------------------------------------------------------- */

void conn_ref(struct conn *c)
{
	c->refs++;
}

void conn_unref(struct conn *c)
{
	if (--c->refs > 0)
		return;
	if (c->proto->on_free)
		c->proto->on_free(c);
	evbuffer_free(c->held);
	free(c->pg_marks);
	free(c);
}

void conn_close(struct conn *c)
{
	struct server *srv = c->srv;
	if (c->closed)
		return;
	c->closed = true;
	if (c->rev)
		event_free(c->rev);
	c->rev = NULL;
	bufferevent_free(c->bev);
	c->bev = NULL;
	evbuffer_drain(c->held, evbuffer_get_length(c->held));
	if (c->prev)
		c->prev->next = c->next;
	else
		srv->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	srv->metrics.connections_open--;
	conn_unref(c); /* the socket's reference; held list skips closed */
}

static size_t conn_queued(const struct conn *c)
{
	return evbuffer_get_length(c->held) +
	       evbuffer_get_length(bufferevent_get_output(c->bev));
}

/* Reading.  The bufferevent only writes; the socket is read through the
 * connection's own event (rev), with read(2) into the server's rbuf and
 * then into the bufferevent's input, where the protocols take it.
 * libevent's own read path asks the kernel how much is readable (ioctl
 * FIONREAD) before every read to size its buffer: a third system call per
 * request at one request in flight (strace of get_by_id at P=1: readv,
 * ioctl, writev per request).  Reading into rbuf sizes the copy exactly
 * without asking.  The idle timeout is rev's timeout, restarted by every
 * read, and like the bufferevent's read timeout it runs only while the
 * connection is being read. */
static void conn_read_set(struct conn *c, bool on)
{
	if (c->tls && !c->closed && c->reading != on) { /* tls.h */
		struct timeval rd = {.tv_sec = c->srv->cfg.idle_timeout};
		struct timeval wr = {.tv_sec = c->srv->cfg.write_timeout};
		c->reading = on;
		bufferevent_set_timeouts(
		    c->bev, c->srv->cfg.idle_timeout && !c->watch ? &rd : NULL,
		    c->srv->cfg.write_timeout ? &wr : NULL);
		if (on)
			bufferevent_enable(c->bev, EV_READ);
		else
			bufferevent_disable(c->bev, EV_READ);
		return;
	}
	if (c->closed || c->reading == on || !c->rev) /* !rev: tests' fakes */
		return;
	c->reading = on;
	if (on) {
		struct timeval tv = {.tv_sec = c->srv->cfg.idle_timeout};
		event_add(c->rev,
			  c->srv->cfg.idle_timeout && !c->watch ? &tv : NULL);
	} else {
		event_del(c->rev);
	}
}

void conn_set_streaming(struct conn *c)
{
	if (c->reading) { /* again, without the idle timeout */
		conn_read_set(c, false);
		conn_read_set(c, true);
	}
}

static void conn_pause(struct conn *c)
{
	c->paused = true;
	conn_read_set(c, false);
}

bool conn_may_read(const struct conn *c)
{
	return !c->closed && !c->paused && !c->close_when_done &&
	       !c->srv->stopping && c->jobs < c->max_jobs;
}

/* Let libevent read again unless something else holds reading off. */
static void conn_read_again(struct conn *c)
{
	if (conn_may_read(c))
		conn_read_set(c, true);
}

void conn_job_begin(struct conn *c)
{
	c->jobs++;
	if (!c->closed && c->jobs >= c->max_jobs)
		conn_read_set(c, false);
}

void conn_job_end(struct conn *c)
{
	c->jobs--;
	if (!c->closed)
		conn_read_again(c);
}

struct evbuffer *conn_reply_begin(struct conn *c)
{
	c->reply_start = evbuffer_get_length(c->held);
	return c->held;
}

void conn_reply_end(struct conn *c, bool write)
{
	struct server *srv = c->srv;
	if (c->closed)
		return;
	c->held_write |= write;
	if (write)
		c->log_need = ud_log_seq(srv->db);
	if (write && srv->pg)
		pgmode_note_reply(c);
	if (!c->on_held) {
		c->on_held = true;
		conn_ref(c);
		c->held_next = srv->held_head;
		srv->held_head = c;
	}
	if (!c->paused && conn_queued(c) > CONN_HIGH_WATER)
		conn_pause(c);
}

/* Every reply is written and no job is left: close, or linger first. */
static void conn_socket_read_cb(evutil_socket_t fd, short what, void *arg);
static void conn_finish(struct conn *c)
{
	if (c->linger && c->tls && !c->rev && !c->lingering) { /* tls.h */
		tls_close_notify(c->bev);
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
		c->rev =
		    event_new(c->srv->base, bufferevent_getfd(c->bev),
			      EV_READ | EV_PERSIST, conn_socket_read_cb, c);
	}
	if (!c->linger || c->lingering || !c->rev || c->srv->stopping ||
	    shutdown(event_get_fd(c->rev), SHUT_WR) != 0) {
		conn_close(c);
		return;
	}
	struct timeval tv = {.tv_sec = CONN_LINGER_S};
	c->lingering = true;
	c->reading = true;
	event_add(c->rev, &tv); /* persistent: each read restarts it */
}

void conn_close_when_done(struct conn *c)
{
	if (c->closed)
		return;
	c->close_when_done = true;
	conn_read_set(c, false);
	if (!c->on_held && c->jobs == 0 &&
	    evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
		conn_finish(c);
}

void conn_close_lingering(struct conn *c)
{
	if (c->closed)
		return;
	c->linger = true;
	conn_close_when_done(c);
}

void conn_resume(struct conn *c)
{
	if (c->closed)
		return;
	conn_ref(c);
	c->proto->on_read(c);
	conn_unref(c);
}

/* Output drained below the low-water mark. */
static void conn_write_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	size_t out = evbuffer_get_length(bufferevent_get_output(bev));
	if (c->close_when_done) {
		if (out == 0 && !c->on_held && c->jobs == 0 && !c->lingering)
			conn_finish(c);
		return;
	}
	if (c->paused && conn_queued(c) <= CONN_HIGH_WATER / 2 &&
	    !c->srv->stopping) {
		c->paused = false;
		conn_read_again(c);
		conn_resume(c); /* input may already be buffered */
	}
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;
	if (what == BEV_EVENT_CONNECTED) /* a TLS handshake completed */
		return;
	if (what & BEV_EVENT_TIMEOUT) {
		if (what & BEV_EVENT_WRITING)
			c->srv->metrics.connections_dropped++;
		conn_close(c);
	} else if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR)) {
		/* Half-close: the client may still read our replies. */
		conn_close_when_done(c);
	} else {
		conn_close(c);
	}
}

/* The socket is readable (or the idle timeout passed): one read(2). */
static void conn_socket_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	struct server *srv = c->srv;
	if (what & EV_TIMEOUT) {
		conn_event_cb(c->bev, BEV_EVENT_READING | BEV_EVENT_TIMEOUT, c);
		return;
	}
	ssize_t n = read(fd, srv->rbuf, sizeof srv->rbuf);
	if (c->lingering) { /* discard; end at EOF, an error or the cap */
		if (n > 0 && (c->linger_bytes += (size_t)n) <= CONN_LINGER_MAX)
			return;
		if (n < 0 &&
		    (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return;
		conn_close(c);
		return;
	}
	if (n > 0) {
		/* the bufferevent keeps its input's end frozen to all but its
		 * own reads (which are off): lift that for the copy */
		struct evbuffer *in = bufferevent_get_input(c->bev);
		evbuffer_unfreeze(in, 0);
		int rc = evbuffer_add(in, srv->rbuf, (size_t)n);
		evbuffer_freeze(in, 0);
		if (rc) {
			conn_close(c);
			return;
		}
		conn_resume(c);
	} else if (n == 0) { /* half-close: stops reading, may still write */
		conn_event_cb(c->bev, BEV_EVENT_READING | BEV_EVENT_EOF, c);
	} else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
		conn_event_cb(c->bev, BEV_EVENT_READING | BEV_EVENT_ERROR, c);
	}
}

/* A TLS connection's input grew (the filter decrypted a record). */
static void conn_tls_read_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	conn_resume(arg);
}

static void conn_set_timeouts(struct conn *c)
{
	const struct server_config *cfg = &c->srv->cfg;
	struct timeval wr = {.tv_sec = cfg->write_timeout};
	bufferevent_set_timeouts(c->bev, NULL, cfg->write_timeout ? &wr : NULL);
}

static void conn_open(struct server *srv, evutil_socket_t fd,
		      const struct conn_proto *proto, bool tls)
{
	struct conn *c = calloc(1, sizeof(*c));
	if (!c)
		goto fail;
	c->srv = srv;
	c->proto = proto;
	c->refs = 1;
	c->max_jobs = proto == &http_proto ? 1 : CONN_RPC_JOBS;
	c->held = evbuffer_new();
	c->tls = tls;
	if (tls) {
		c->bev = tls_bev_new(srv, fd);
		fd = -1; /* closed by tls_bev_new or with the bev */
	} else {
		c->bev = bufferevent_socket_new(srv->base, fd,
						BEV_OPT_CLOSE_ON_FREE);
		c->rev = event_new(srv->base, fd, EV_READ | EV_PERSIST,
				   conn_socket_read_cb, c);
	}
	if (!c->held || !c->bev || (!c->rev && !tls) || proto->init(c)) {
		if (c->rev)
			event_free(c->rev);
		if (c->bev)
			bufferevent_free(c->bev);
		else if (fd >= 0)
			evutil_closesocket(fd);
		if (c->held)
			evbuffer_free(c->held);
		free(c);
		return;
	}
	c->next = srv->conns;
	if (srv->conns)
		srv->conns->prev = c;
	srv->conns = c;
	srv->metrics.connections_open++;
	srv->metrics.connections_total++;
	bufferevent_setcb(c->bev, tls ? conn_tls_read_cb : NULL, conn_write_cb,
			  conn_event_cb, c);
	bufferevent_setwatermark(c->bev, EV_WRITE, CONN_HIGH_WATER / 2, 0);
	conn_set_timeouts(c);
	conn_read_set(c, true);
	return;
fail:
	evutil_closesocket(fd);
}

static void conn_open_tls(struct server *srv, evutil_socket_t fd,
			  const struct conn_proto *proto)
{
	conn_open(srv, fd, proto, true);
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd,
		      struct sockaddr *sa, int socklen, void *arg,
		      const struct conn_proto *proto)
{
	struct server *srv = arg;
	if (srv->metrics.connections_open >= srv->cfg.max_connections) {
		srv->metrics.connections_refused++;
		evutil_closesocket(fd);
		return;
	}
	if (sa->sa_family == AF_INET || sa->sa_family == AF_INET6) {
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	}
	if (srv->tls_ctx && sa->sa_family != AF_UNIX)
		tls_gate(srv, fd, proto, conn_open_tls); /* tls.h */
	else
		conn_open(srv, fd, proto, false);
}

static void rpc_accept_cb(struct evconnlistener *l, evutil_socket_t fd,
			  struct sockaddr *sa, int socklen, void *arg)
{
	accept_cb(l, fd, sa, socklen, arg, &rpc_proto);
}

static void http_accept_cb(struct evconnlistener *l, evutil_socket_t fd,
			   struct sockaddr *sa, int socklen, void *arg)
{
	accept_cb(l, fd, sa, socklen, arg, &http_proto);
}

/* ---- the durability hook ------------------------------------------------ */

/* Move c's held replies towards its socket, and return the bufferevent's
 * output.  When nothing is queued ahead of them they are written at once,
 * one writev(2): handing them to the bufferevent instead arms its write
 * event and disarms it after the write, two epoll_ctl(2) calls per reply
 * (strace of get_by_id at one request in flight per connection: 5 system
 * calls per request, 2 of them epoll_ctl).  What the socket does not take
 * goes to the output as before.  A paused connection is woken through
 * the write callback, deferred, as if the bufferevent had drained it (a
 * closing one is closed by the caller once its output is empty). */
#define CONN_TLS_COALESCE (16u << 10) /* a TLS record's payload */
static struct evbuffer *conn_send_held(struct conn *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	size_t held = evbuffer_get_length(c->held);
	if (c->tls && held > 0 && held <= CONN_TLS_COALESCE)
		/* one chain: one SSL_write, so one record and one write(2) for
		 * the batch instead of one per reply (tls.h) */
		evbuffer_pullup(c->held, -1);
	else if (evbuffer_get_length(out) == 0 && held && !c->tls)
		evbuffer_write(c->held, bufferevent_getfd(c->bev));
	evbuffer_add_buffer(out, c->held);
	/* Paused for what was queued, and the socket took enough of it that
	 * the pause no longer holds: go on as if the output had drained (the
	 * write callback resumes reading).  Waiting for the socket to drain
	 * instead stalled a client that reads nothing once the kernel had
	 * taken all but a little (loopback send buffers grow to 4 MB): it
	 * sat paused under --max-output until --write-timeout. */
	if (c->paused && conn_queued(c) <= CONN_HIGH_WATER / 2)
		bufferevent_trigger(c->bev, EV_WRITE,
				    BEV_TRIG_IGNORE_WATERMARKS |
					BEV_TRIG_DEFER_CALLBACKS);
	return out;
}

/* Move held replies to the sockets.  flush_rc != 0: the log write failed, so
 * replies that report writes stay held, as do those whose write is not yet
 * durable (log_need > durable). */
static void server_release_held(struct server *srv, int flush_rc,
				uint64_t durable)
{
	struct conn *c = srv->held_head, *keep = NULL;
	srv->held_head = NULL;
	while (c) {
		struct conn *next = c->held_next;
		int pg = !c->closed && c->held_write && srv->pg
			     ? pgmode_may_release(c)
			     : 1;
		if (pg < 0) {
			conn_close(c); /* its write was refused or lost */
			c->pg_failed = false;
		}
		if (!c->closed && c->held_write &&
		    (flush_rc || pg == 0 || c->log_need > durable)) {
			c->held_next = keep;
			keep = c;
			c = next;
			continue;
		}
		if (srv->pg && !c->closed)
			pgmode_redo_refused(c); /* PostgreSQL's verdicts */
		c->on_held = false;
		c->held_write = false;
		c->pg_first = c->pg_last = 0;
		c->pg_nmarks = 0;
		if (!c->closed) {
			struct evbuffer *out = conn_send_held(c);
			if (evbuffer_get_length(out) > srv->cfg.max_output) {
				srv->metrics.connections_dropped++;
				conn_close(c);
			} else if (c->close_when_done &&
				   evbuffer_get_length(out) == 0) {
				conn_finish(c);
			}
		}
		conn_unref(c);
		c = next;
	}
	srv->held_head = keep;
}

/* Changes reach watchers after the replies, once they are in the log. */
static void server_flush(struct server *srv)
{
	pgmode_flush(srv);
	if (!srv->held_head && !changes_pending(srv->changes))
		return;
	int rc = ud_flush_async(srv->db);
	if (rc)
		srv->metrics.flush_errors++;
	uint64_t durable = ud_durable_seq(srv->db);
	server_release_held(srv, rc, durable);
	if (srv->changes)
		changes_publish(srv->changes, durable);
}

/* The log's syncer finished an fdatasync: clear its eventfd; server_flush,
 * right after this loop iteration, releases what became durable. */
static void durable_cb(evutil_socket_t fd, short what, void *arg)
{
	uint64_t n;
	(void)what;
	(void)arg;
	if (read(fd, &n, sizeof n) < 0) {
		/* EAGAIN: already cleared */
	}
}

/* ---- snapshots on demand ------------------------------------------------- */

/* The store's timer: every 100 ms, and every 10 ms while a client waits
 * for a snapshot, so that its reply leaves within 10 ms of the writer's
 * exit rather than up to 100 ms later (1M users: about 1.3 s of writing). */
#define TICK_US	     100000
#define TICK_FAST_US 10000

static void tick_set(struct server *srv, bool fast)
{
	struct timeval tv = {.tv_usec = fast ? TICK_FAST_US : TICK_US};
	if (srv->tick_fast == fast)
		return;
	srv->tick_fast = fast;
	event_add(srv->tick_ev, &tv);
}

static void snap_check(struct server *srv)
{
	struct snap_waiter **pp = &srv->snap_waiters;
	struct ud_stats st;
	if (!*pp)
		return;
	ud_stats(srv->db, &st);
	uint64_t done = ud_snapshot_done(srv->db);
	while (*pp) {
		struct snap_waiter *w = *pp;
		int rc = 1; /* still waiting */
		if (w->restart && !st.snapshot_running) {
			struct ud_error err;
			w->restart = false;
			w->target = done + 1;
			rc = ud_snapshot_start(srv->db, &err) ? err.code : 1;
			ud_stats(srv->db, &st);
		} else if (!w->restart && done >= w->target) {
			rc = 0;
		} else if (!w->restart && !st.snapshot_running) {
			rc = UD_EUNAVAILABLE; /* it ended without completing */
		}
		if (rc == 1) {
			pp = &w->next;
			continue;
		}
		*pp = w->next;
		w->cb(w->conn, w->msgid, rc);
		conn_unref(w->conn);
		free(w);
	}
}

int server_snapshot_wait(struct server *srv, struct conn *c, uint64_t msgid,
			 snap_done_fn cb, struct ud_error *err)
{
	struct ud_stats st;
	if (srv->cfg.no_persist)
		return ud_error_set(err, UD_EUNAVAILABLE, NULL,
				    "persistence is off (--no-persist)");
	struct snap_waiter *w = calloc(1, sizeof(*w));
	if (!w)
		return ud_error_set(err, UD_ENOMEM, NULL, "out of memory");
	ud_stats(srv->db, &st);
	w->restart = st.snapshot_running; /* it may predate our writes */
	w->target = ud_snapshot_done(srv->db) + 1;
	if (!w->restart) {
		int rc = ud_snapshot_start(srv->db, err);
		if (rc) {
			free(w);
			return rc;
		}
	}
	w->conn = c;
	w->msgid = msgid;
	w->cb = cb;
	conn_ref(c);
	w->next = srv->snap_waiters;
	srv->snap_waiters = w;
	tick_set(srv, true);
	return 0;
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;
	ud_tick(srv->db);
	pgmode_tick(srv);
	snap_check(srv);
	tick_set(srv, srv->snap_waiters != NULL);
	/* a failed flush is retried */
	server_flush(srv);
}

/* ---- listeners ------------------------------------------------------------
 */

/* Bind a TCP listener on cfg->bind:port; *bound gets the chosen port. */
static struct evconnlistener *listen_tcp(struct server *srv, int port,
					 evconnlistener_cb cb, int *bound)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE | AI_NUMERICSERV},
			*ai;
	char ps[16];
	snprintf(ps, sizeof ps, "%d", port);
	int rc = getaddrinfo(srv->cfg.bind, ps, &hints, &ai);
	if (rc) {
		fprintf(stderr, "userdb-server: bad --bind %s: %s\n",
			srv->cfg.bind, gai_strerror(rc));
		return NULL;
	}
	struct evconnlistener *l = evconnlistener_new_bind(
	    srv->base, cb, srv,
	    LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
	    1024, ai->ai_addr, (int)ai->ai_addrlen);
	freeaddrinfo(ai);
	if (!l) {
		fprintf(stderr, "userdb-server: cannot listen on %s:%d: %s\n",
			srv->cfg.bind, port, strerror(errno));
		return NULL;
	}
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&ss, &len);
	*bound = ntohs(ss.ss_family == AF_INET6
			   ? ((struct sockaddr_in6 *)&ss)->sin6_port
			   : ((struct sockaddr_in *)&ss)->sin_port);
	return l;
}

static struct evconnlistener *listen_unix(struct server *srv, const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct stat st;
	if (strlen(path) >= sizeof sun.sun_path) {
		fprintf(stderr, "userdb-server: socket path too long\n");
		return NULL;
	}
	strcpy(sun.sun_path, path);
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(path); /* stale socket from an earlier run */
	struct evconnlistener *l = evconnlistener_new_bind(
	    srv->base, rpc_accept_cb, srv,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 1024,
	    (struct sockaddr *)&sun, sizeof sun);
	if (!l)
		fprintf(stderr, "userdb-server: cannot listen on %s: %s\n",
			path, strerror(errno));
	return l;
}

static void host_port(const char *host, int port, char *out, size_t cap)
{
	if (strchr(host, ':'))
		snprintf(out, cap, "[%s]:%d", host, port);
	else
		snprintf(out, cap, "%s:%d", host, port);
}

static int server_listen(struct server *srv)
{
	char rpc[300], http[300];
	srv->rpc_l =
	    listen_tcp(srv, srv->cfg.port, rpc_accept_cb, &srv->rpc_port);
	if (!srv->rpc_l)
		return -1;
	srv->http_l = listen_tcp(srv, srv->cfg.http_port, http_accept_cb,
				 &srv->http_port);
	if (!srv->http_l)
		return -1;
	if (srv->cfg.socket_path) {
		srv->unix_l = listen_unix(srv, srv->cfg.socket_path);
		if (!srv->unix_l)
			return -1;
	}
	host_port(srv->cfg.bind, srv->rpc_port, rpc, sizeof rpc);
	host_port(srv->cfg.bind, srv->http_port, http, sizeof http);
	if (srv->tls_ctx)
		printf("tls only on both ports, certificate %s\n",
		       srv->cfg.tls_cert);
	printf("rpc listening on %s\nhttp listening on %s\n", rpc, http);
	if (srv->cfg.socket_path)
		printf("rpc listening on unix:%s\n", srv->cfg.socket_path);
	printf("userdb ready rpc=%s http=%s\n", rpc, http);
	fflush(stdout);
	sd_notifyf(0, "READY=1\nSTATUS=serving rpc=%s http=%s", rpc, http);
	return 0;
}

/* ---- start, run, stop ------------------------------------------------------
 */

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct server *srv = arg;
	if (!srv->stopping) {
		fprintf(stderr, "userdb-server: signal %d, shutting down\n",
			(int)sig);
		sd_notify(0, "STOPPING=1\nSTATUS=shutting down");
	}
	srv->stopping = true;
}

static void sighup_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)sig, (void)what;
	server_reload_keys(arg);
	tls_reload(arg);
}

const char *server_decoy(struct server *srv)
{
	pthread_mutex_lock(&srv->decoy_lock);
	if (!srv->decoy[0] &&
	    ud_password_decoy(&srv->dbopt, srv->decoy, NULL) != 0)
		srv->decoy[0] = '\0';
	pthread_mutex_unlock(&srv->decoy_lock);
	return srv->decoy;
}

static void *decoy_thread_cb(void *arg)
{
	server_decoy(arg);
	return NULL;
}

static int open_store(struct server *srv)
{
	struct ud_error err = {0};
	srv->dbopt = ud_options_default;
	srv->dbopt.fsync = srv->cfg.fsync;
	srv->dbopt.snapshot_interval = srv->cfg.snapshot_interval;
	srv->dbopt.pw_opslimit = srv->cfg.argon2_ops;
	srv->dbopt.pw_memlimit = srv->cfg.argon2_mem;
	srv->dbopt.data_dir = srv->cfg.no_persist ? NULL : srv->cfg.data_dir;
	srv->dbopt.changes_keep = srv->cfg.changes_keep;
	pthread_mutex_init(&srv->decoy_lock, NULL);
	srv->decoy_started =
	    pthread_create(&srv->decoy_thread, NULL, decoy_thread_cb, srv) == 0;
	if (srv->cfg.postgres)
		return pgmode_open(srv);
	if (srv->dbopt.data_dir && mkdir(srv->dbopt.data_dir, 0700) &&
	    errno != EEXIST) {
		fprintf(stderr, "userdb-server: cannot create %s: %s\n",
			srv->dbopt.data_dir, strerror(errno));
		return -1;
	}
	struct stat st;
	if (srv->dbopt.data_dir && stat(srv->dbopt.data_dir, &st) == 0 &&
	    (st.st_mode & S_IWOTH)) {
		/* Anyone could replace the api-key file or the log. */
		fprintf(stderr,
			"userdb-server: data dir %s is writable by every user "
			"(mode %04o); refusing it (chmod o-w)\n",
			srv->dbopt.data_dir, (unsigned)(st.st_mode & 07777));
		return -1;
	}
	int rc = ud_open(&srv->dbopt, &srv->db, &err);
	if (rc == UD_ELOCKED) {
		fprintf(stderr,
			"userdb-server: data dir %s is in use by another "
			"server (lock held); refusing to share it\n",
			srv->dbopt.data_dir);
		return -1;
	}
	if (rc) {
		fprintf(stderr, "userdb-server: cannot open the store: %s\n",
			err.message[0] ? err.message : ud_code_name(rc));
		return -1;
	}
	const char *warn = ud_open_warnings(srv->db);
	if (warn && *warn)
		fprintf(stderr, "userdb-server: warning: %s\n", warn);
	return 0;
}

static int server_events(struct server *srv)
{
	struct timeval tick = {.tv_usec = TICK_US};
	srv->base = event_base_new();
	if (!srv->base)
		return -1;
	srv->sig_term = evsignal_new(srv->base, SIGTERM, signal_cb, srv);
	srv->sig_int = evsignal_new(srv->base, SIGINT, signal_cb, srv);
	srv->sig_hup = evsignal_new(srv->base, SIGHUP, sighup_cb, srv);
	srv->tick_ev = event_new(srv->base, -1, EV_PERSIST, tick_cb, srv);
	if (!srv->sig_term || !srv->sig_int || !srv->tick_ev || !srv->sig_hup ||
	    event_add(srv->sig_term, NULL) || event_add(srv->sig_int, NULL) ||
	    event_add(srv->sig_hup, NULL) || event_add(srv->tick_ev, &tick))
		return -1;
	int dfd = ud_durable_fd(srv->db);
	if (dfd >= 0 &&
	    (!(srv->durable_ev = event_new(srv->base, dfd, EV_READ | EV_PERSIST,
					   durable_cb, srv)) ||
	     event_add(srv->durable_ev, NULL)))
		return -1;
	srv->pool = pool_new(srv->base, srv->cfg.workers);
	return srv->pool ? 0 : -1;
}

int server_start(struct server *srv, const struct server_config *cfg)
{
	memset(srv, 0, sizeof(*srv));
	srv->cfg = *cfg;
	signal(SIGPIPE, SIG_IGN);
	if (server_check_bind(cfg, stderr))
		return -1;
	if (cfg->tls_cert &&
	    !(srv->tls_ctx = tls_ctx_new(cfg->tls_cert, cfg->tls_key, stderr)))
		return -1;
	if (sodium_init() < 0) {
		fprintf(stderr, "userdb-server: libsodium failed to start\n");
		return -1;
	}
	if (open_store(srv))
		return -1;
	if (apikey_setup(&srv->keys, &srv->cfg, stdout, stderr))
		return -1;
	server_keys_index(srv);
	if (server_events(srv)) {
		fprintf(stderr,
			"userdb-server: cannot set up the event loop\n");
		return -1;
	}
	if (srv->cfg.verify_backoff_ms &&
	    !(srv->backoff = backoff_new(srv->cfg.verify_backoff_ms,
					 srv->cfg.verify_backoff_max_ms))) {
		fprintf(stderr, "userdb-server: out of memory\n");
		return -1;
	}
	if (!(srv->changes = changes_new(srv)))
		return -1;
	if (srv->pg && pgmode_start(srv))
		return -1;
	return server_listen(srv);
}

static void server_stop_listening(struct server *srv)
{
	if (srv->rpc_l)
		evconnlistener_free(srv->rpc_l);
	if (srv->http_l)
		evconnlistener_free(srv->http_l);
	if (srv->unix_l) {
		evconnlistener_free(srv->unix_l);
		unlink(srv->cfg.socket_path);
	}
	srv->rpc_l = srv->http_l = srv->unix_l = NULL;
	for (struct conn *c = srv->conns; c; c = c->next)
		conn_read_set(c, false);
}

static bool outputs_pending(struct server *srv)
{
	for (struct conn *c = srv->conns; c; c = c->next)
		if (evbuffer_get_length(bufferevent_get_output(c->bev)))
			return true;
	return false;
}

void server_run(struct server *srv)
{
	while (!srv->stopping) {
		event_base_loop(srv->base, EVLOOP_ONCE);
		server_flush(srv);
		changes_pump(srv->changes);
	}
	server_stop_listening(srv);
	pwjob_release_delayed(srv); /* no back-off while we stop */
	/* Finish in-flight password jobs and snapshot waits, then let the
	 * replies drain, bounded so a stuck reader cannot hold us. */
	uint64_t deadline = metrics_now_ns() + 5000000000ull;
	while (metrics_now_ns() < deadline &&
	       (pool_inflight(srv->pool) || srv->snap_waiters ||
		srv->held_head || outputs_pending(srv))) {
		event_base_loop(srv->base, EVLOOP_ONCE);
		server_flush(srv);
	}
}

void server_destroy(struct server *srv)
{
	server_stop_listening(srv);
	if (srv->decoy_started) {
		pthread_join(srv->decoy_thread, NULL);
		srv->decoy_started = false;
	}
	if (srv->pool)
		pwjob_release_delayed(srv);
	pool_free(srv->pool); /* runs the last done callbacks */
	srv->pool = NULL;
	backoff_free(srv->backoff);
	srv->backoff = NULL;
	server_flush(srv);
	while (srv->snap_waiters) {
		struct snap_waiter *w = srv->snap_waiters;
		srv->snap_waiters = w->next;
		conn_unref(w->conn);
		free(w);
	}
	while (srv->conns)
		conn_close(srv->conns);
	server_release_held(srv, 0, UINT64_MAX); /* drops the references */
	changes_free(srv->changes);
	srv->changes = NULL;
	pagecache_destroy(&srv->pages);
	if (srv->sig_term)
		event_free(srv->sig_term);
	if (srv->sig_int)
		event_free(srv->sig_int);
	if (srv->sig_hup)
		event_free(srv->sig_hup);
	tls_ctx_free(srv->tls_ctx);
	srv->tls_ctx = NULL;
	if (srv->tick_ev)
		event_free(srv->tick_ev);
	if (srv->durable_ev)
		event_free(srv->durable_ev);
	if (srv->base)
		event_base_free(srv->base);
	pgmode_close(srv); /* before the store: it journals into it */
	if (srv->db)
		ud_close(srv->db);
	srv->db = NULL;
}
