/*
 * bulk.c -- NDJSON export through a forked writer, streaming import; see
 * bulk.h.
 */
#define _GNU_SOURCE
#include "bulk.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <jansson.h>
#include <msgpack.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "codec.h"
#include "http.h"
#include "import.h"
#include "record.h"
#include "valid.h"

/* ---- export: the child ---------------------------------------------------
 */

#define EXPORT_CHUNK   (256u << 10) /* bytes per HTTP chunk the child writes */
#define EXPORT_HEAD    10	    /* "%08zx\r\n" */
#define EXPORT_READ    (256u << 10) /* bytes moved from the pipe at a time */
#define EXPORT_POLL_US 1000	    /* recheck a full connection this often */

struct export_walk {
	int fd;		  /* the client's socket, or the pipe to the loop */
	int timeout_ms;	  /* a reader stalled this long ends it; -1: never */
	int role, status; /* -1: any */
	struct ud_buf b;
};

/* Write all n bytes to fd, which may be non-blocking (the client's socket
 * is the loop's, flags shared): wait for room, at most timeout_ms. */
static int write_all(int fd, const char *p, size_t n, int timeout_ms)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			struct pollfd pf = {.fd = fd, .events = POLLOUT};
			if (poll(&pf, 1, timeout_ms) <= 0 && errno != EINTR)
				return -1;
			continue;
		}
		if (w <= 0)
			return -1;
		p += w, n -= (size_t)w;
	}
	return 0;
}

/* Frame b's payload (after the reserved head) as one chunk and write it. */
static int walk_flush(struct export_walk *w)
{
	size_t len = w->b.len - EXPORT_HEAD;
	char head[32];
	if (len == 0)
		return 0;
	snprintf(head, sizeof head, "%08x\r\n", (unsigned)len); /* < 2^32 */
	memcpy(w->b.data, head, EXPORT_HEAD);
	if (ud_buf_append(&w->b, "\r\n", 2) ||
	    write_all(w->fd, w->b.data, w->b.len, w->timeout_ms))
		return -1;
	w->b.len = EXPORT_HEAD;
	return 0;
}

static int walk_user_cb(const ud_user *u, void *ctx)
{
	struct export_walk *w = ctx;
	const struct record *r = (const struct record *)u;
	struct record_parts p;
	char pwbuf[UD_PWHASH_MAX];
	const char *pw;
	size_t pw_len;
	if ((w->role >= 0 && (int)r->role != w->role) ||
	    (w->status >= 0 && (int)r->status != w->status))
		return 0;
	if (ud_user_write_json(u, &w->b))
		return -1;
	record_parts(r, &p);
	pw = record_parts_pw_text(&p, pwbuf, &pw_len); /* may be packed */
	w->b.len--;				       /* the closing brace */
	if (ud_buf_append(&w->b, ",\"password_hash\":", 17))
		return -1;
	if (pw_len ? codec_json_string(&w->b, pw, pw_len)
		   : ud_buf_append(&w->b, "null", 4))
		return -1;
	if (ud_buf_append(&w->b, "}\n", 2))
		return -1;
	return w->b.len >= EXPORT_CHUNK ? walk_flush(w) : 0;
}

/* Close every inherited descriptor but a and b: a client socket kept open
 * here would not see the loop close it. */
static void close_others(int a, int b)
{
	int lo = a < b ? a : b, hi = a < b ? b : a;
	if (lo > 3)
		close_range(3, (unsigned)lo - 1, 0);
	if (hi > lo + 1)
		close_range((unsigned)lo + 1, (unsigned)hi - 1, 0);
	close_range((unsigned)hi + 1, ~0u, 0);
}

/* Write the export to out (head first when head is not NULL); keep is
 * held open until the end, when the loop sees it close. */
static void __attribute__((noreturn))
export_child(ud_db *db, int out, int keep, const char *head, int timeout_ms,
	     int role, int status)
{
	struct export_walk w = {.fd = out,
				.timeout_ms = timeout_ms,
				.role = role,
				.status = status};
	close_others(out, keep);
	if (ud_buf_reserve(&w.b, EXPORT_CHUNK + (64u << 10)))
		_exit(1);
	if (head && write_all(out, head, strlen(head), timeout_ms))
		_exit(1);
	w.b.len = EXPORT_HEAD;
	if (ud_user_foreach(db, walk_user_cb, &w) || walk_flush(&w) ||
	    write_all(out, "0\r\n\r\n", 5, timeout_ms))
		_exit(1);
	_exit(0);
}

/* ---- export: the loop side ----------------------------------------------- */

struct bulk_export {
	struct conn *c;
	bulk_export_done_fn done;
	int fd;
	pid_t pid;
	bool eof, ok;
	struct event *rev, *timer;
	uint64_t start_ns;
};

static size_t conn_unsent(const struct conn *c)
{
	return evbuffer_get_length(c->held) +
	       evbuffer_get_length(bufferevent_get_output(c->bev));
}

static void export_free(struct bulk_export *ex)
{
	if (ex->pid > 0) {
		kill(ex->pid, SIGKILL);
		while (waitpid(ex->pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	if (ex->fd >= 0)
		close(ex->fd);
	event_free(ex->rev);
	event_free(ex->timer);
	conn_unref(ex->c);
	free(ex);
}

/* Finish: the child's exit status says whether the stream is whole. */
static void export_end(struct bulk_export *ex)
{
	struct conn *c = ex->c;
	bool ok = ex->ok && !c->closed;
	metrics_observe(&c->srv->metrics, MR_HTTP_EXPORT, !ok, ex->start_ns);
	if (!c->closed) {
		if (!ok)
			conn_close_when_done(c);
		ex->done(c, ok);
	}
	export_free(ex);
}

static void export_wait(struct bulk_export *ex)
{
	struct timeval tv = {0, EXPORT_POLL_US};
	int st;
	pid_t r = waitpid(ex->pid, &st, WNOHANG);
	if (r == 0) {
		evtimer_add(ex->timer, &tv);
		return;
	}
	ex->ok = r == ex->pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
	ex->pid = 0;
	export_end(ex);
}

static void export_pump(struct bulk_export *ex)
{
	struct conn *c = ex->c;
	struct timeval tv = {0, EXPORT_POLL_US};
	if (c->closed) {
		ex->ok = false;
		export_end(ex);
		return;
	}
	if (ex->eof) {
		export_wait(ex);
		return;
	}
	while (conn_unsent(c) < CONN_HIGH_WATER) {
		struct evbuffer *out = conn_reply_begin(c);
		int n = evbuffer_read(out, ex->fd, EXPORT_READ);
		conn_reply_end(c, false);
		if (n > 0)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			event_add(ex->rev, NULL);
			return;
		}
		ex->eof = true; /* EOF, or the pipe broke: the status tells */
		event_del(ex->rev);
		export_wait(ex);
		return;
	}
	/* The client is behind: leave the child blocked on the full pipe. */
	event_del(ex->rev);
	evtimer_add(ex->timer, &tv);
}

static void export_event_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	export_pump(arg);
}

/* role=/status= of the export; anything else is a bad query. */
static int export_query(const char *q, size_t n, int *role, int *status,
			struct ud_error *err)
{
	const char *p = q, *end = q + n;
	*role = *status = -1;
	while (p < end) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *stop = amp ? amp : end;
		const char *eq = memchr(p, '=', (size_t)(stop - p));
		char k[16], v[32];
		long kl, vl;
		if (stop == p) {
			p++;
			continue;
		}
		kl = eq && eq - p < (long)sizeof k
			 ? http_pct_decode(p, (size_t)(eq - p), k, true)
			 : -1;
		vl = eq && stop - eq - 1 < (long)sizeof v
			 ? http_pct_decode(eq + 1, (size_t)(stop - eq - 1), v,
					   true)
			 : -1;
		p = stop;
		if (kl == 4 && !memcmp(k, "role", 4) &&
		    (*role = vl < 0 ? -1 : ud_role_parse(v, (size_t)vl)) >= 0)
			continue;
		if (kl == 6 && !memcmp(k, "status", 6) &&
		    (*status = vl < 0 ? -1 : ud_status_parse(v, (size_t)vl)) >=
			0)
			continue;
		if (kl == 4 && !memcmp(k, "role", 4))
			return ud_error_set(err, UD_EINVAL, "role",
					    "role must be admin, user or "
					    "viewer");
		if (kl == 6 && !memcmp(k, "status", 6))
			return ud_error_set(err, UD_EINVAL, "status",
					    "status must be active, inactive "
					    "or suspended");
		return ud_error_set(err, UD_EINVAL, NULL,
				    "an export takes only role and status");
	}
	return 0;
}

/* The writer runs only on CPU time nobody else wants (SCHED_IDLE, else
 * the lowest nice): on a machine with as many busy threads as cores it
 * would otherwise take a core from the loop and halve what the loop
 * serves meanwhile.  An export on an idle machine runs at full speed; on a
 * busy one it waits, holding nothing the loop needs (the loop only
 * relays what the pipe has).  Best effort. */
static void export_yield(void)
{
	struct sched_param sp = {0};
	if (sched_setscheduler(0, SCHED_IDLE, &sp) != 0)
		(void)setpriority(PRIO_PROCESS, 0, 19);
}

/* sock >= 0: the child writes head and body to the client's socket
 * itself and the pipe only tells the loop when it is done; else it writes
 * the body into the pipe for the loop to relay. */
static int export_fork(struct bulk_export *ex, ud_db *db, int sock,
		       const char *head, int timeout_ms, int role, int status,
		       struct ud_error *err)
{
	int p[2];
	pid_t parent = getpid();
	if (pipe2(p, O_CLOEXEC) != 0)
		return ud_error_set(err, UD_EINTERNAL, NULL, "pipe: %s",
				    strerror(errno));
	fcntl(p[0], F_SETPIPE_SZ, 1 << 20); /* fewer wake-ups; best effort */
	ex->pid = fork();
	if (ex->pid < 0) {
		close(p[0]);
		close(p[1]);
		ex->pid = 0;
		return ud_error_set(err, UD_EINTERNAL, NULL, "fork: %s",
				    strerror(errno));
	}
	if (ex->pid == 0) {
		close(p[0]);
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 ||
		    getppid() != parent)
			_exit(1);
		signal(SIGPIPE, SIG_DFL);
		export_yield();
		if (sock >= 0)
			export_child(db, sock, p[1], head, timeout_ms, role,
				     status);
		export_child(db, p[1], p[1], NULL, timeout_ms, role, status);
	}
	close(p[1]);
	ex->fd = p[0];
	fcntl(ex->fd, F_SETFL, O_NONBLOCK);
	return 0;
}

int bulk_export_start(struct conn *c, const char *query, size_t query_len,
		      bool keep_alive, bulk_export_done_fn done,
		      struct ud_error *err)
{
	struct server *srv = c->srv;
	struct bulk_export *ex;
	char head[160];
	int role, status, rc, sock, timeout_ms;
	if ((rc = export_query(query, query_len, &role, &status, err)) != 0)
		return rc;
	if (!(ex = calloc(1, sizeof(*ex))))
		return ud_error_set(err, UD_ENOMEM, NULL, "out of memory");
	ex->c = c;
	ex->done = done;
	ex->fd = -1;
	ex->start_ns = metrics_now_ns();
	conn_ref(c);
	snprintf(head, sizeof head,
		 "HTTP/1.1 200 OK\r\n"
		 "Content-Type: application/x-ndjson\r\n"
		 "Transfer-Encoding: chunked\r\n%s\r\n",
		 keep_alive ? "" : "Connection: close\r\n");
	/* Plaintext with nothing queued before it: the child may write to
	 * the socket itself (TLS state lives in the loop's OpenSSL). */
	sock = !c->tls && c->rev && conn_unsent(c) == 0 ? event_get_fd(c->rev)
							: -1;
	timeout_ms =
	    srv->cfg.write_timeout ? (int)srv->cfg.write_timeout * 1000 : -1;
	if ((rc = export_fork(ex, srv->db, sock, head, timeout_ms, role, status,
			      err)) != 0)
		goto fail;
	ex->rev = event_new(srv->base, ex->fd, EV_READ, export_event_cb, ex);
	ex->timer = evtimer_new(srv->base, export_event_cb, ex);
	if (!ex->rev || !ex->timer) {
		rc = ud_error_set(err, UD_ENOMEM, NULL, "out of memory");
		goto fail;
	}
	if (sock < 0) {
		evbuffer_add(conn_reply_begin(c), head, strlen(head));
		conn_reply_end(c, false);
	}
	event_add(ex->rev, NULL);
	return 0;
fail:
	export_free(ex);
	return rc;
}
