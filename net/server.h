/*
 * server.h -- userdb-server: listeners, connections, the event loop and the
 * durability hook that orders disk writes before replies.
 *
 * Threads.  One loop thread owns the store (ud_db), every connection and
 * every counter; no lock guards the read path.  Only Argon2id work leaves
 * the loop, on the worker pool (pool.h), and its results are applied back
 * on the loop thread.
 *
 * Durability hook (SPEC §5: a write is in the log file before its reply
 * leaves).  Replies are never written into a socket's output buffer
 * directly.  A protocol handler appends its reply to the connection's
 * `held` buffer (conn_reply_begin/conn_reply_end), which puts the
 * connection on the server's held list.  The loop is
 *
 *     while (!stop) {
 *             event_base_loop(base, EVLOOP_ONCE);  -- read, execute, hold
 *             rc = ud_flush_async(db);             -- one write(2)
 *             server_release_held(rc, ud_durable_seq(db));
 *     }
 *
 * A connection holding a write's reply notes ud_log_seq() after the
 * write (conn->log_need) and stays held until ud_durable_seq() reaches
 * it.  With --fsync everysec and no that is at once (written is durable
 * enough); with --fsync always the log's syncer thread fdatasyncs while
 * the loop goes on, and its eventfd (ud_durable_fd(), srv->durable_ev)
 * wakes the loop when it is done, so reads on other connections are never
 * queued behind the disk (oplog.h).  A reply that follows a held write's
 * reply on the same connection waits with it (replies keep their order).
 *
 * and ud_tick() runs from a 100 ms timer (10 ms while a client waits for a
 * snapshot).  Releasing writes each held buffer to its socket with one
 * writev(2) when nothing is queued before it, and moves what is left into
 * the bufferevent's output with evbuffer_add_buffer (no copy), so a reply
 * can reach the socket only after the log write of every mutation it
 * reports.  Sockets are read through each connection's own event with
 * read(2) (server.c, conn_read_set); the bufferevent only writes.  If
 * ud_flush fails, replies of writes stay held (and the flush is retried on
 * every tick) while replies of reads are released; the engine then refuses
 * new writes with `unavailable` (ud_unavailable()).
 *
 * Connection lifetime.  A struct conn is reference counted: one reference
 * for the open socket, one per password job in flight, one while a protocol
 * handler runs.  conn_close() frees the socket at once; the struct (and the
 * protocol state) lives until the last reference goes, so a worker result
 * for a client that has gone is applied to the store and then dropped.
 *
 * Back-pressure.  A connection stops being read while its queued replies
 * (held + output) exceed CONN_HIGH_WATER, and resumes when the socket drains
 * below half of it.  A client that queues more than --max-output bytes, or
 * reads nothing for --write-timeout seconds while replies wait, is
 * disconnected.  --idle-timeout closes silent connections.
 *
 * systemd (Type=notify, packaging/userdb.service): READY=1 through
 * sd_notify once both listeners accept, right after the ready line;
 * STOPPING=1 when a shutdown signal arrives.  Without NOTIFY_SOCKET in the
 * environment both are no-ops.
 *
 * Shutdown (SIGTERM/SIGINT): listeners close; connections stop being read;
 * the loop runs until password jobs in flight are done and their replies
 * flushed and written (at most 5 s for slow readers); then ud_close()
 * flushes and fsyncs the log; exit status 0.
 */
#ifndef UD_NET_SERVER_H
#define UD_NET_SERVER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <event2/bufferevent.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "apikey.h"
#include "config.h"
#include "metrics.h"
#include "pagecache.h"
#include "pool.h"
#include "userdb.h"

#define CONN_HIGH_WATER (1u << 20)
#define CONN_READ_MAX	(64u << 10) /* bytes read from a socket at a time */
#define CONN_RPC_JOBS	64

struct conn;

/* What a protocol plugs into a connection. */
struct conn_proto {
	const char *name;
	int (*init)(struct conn *c);	 /* allocate c->state; 0 or -1 */
	void (*on_read)(struct conn *c); /* consume input, queue replies */
	void (*on_free)(struct conn *c); /* free c->state (last reference) */
	/* PostgreSQL mode: append to out the error reply (err: PostgreSQL's
	 * verdict) that replaces a write reply queued with reply_tag tag. */
	void (*refused)(struct conn *c, uint64_t tag,
			const struct ud_error *err, struct evbuffer *out);
};
extern const struct conn_proto rpc_proto;
extern const struct conn_proto http_proto;

struct conn {
	struct server *srv;
	const struct conn_proto *proto;
	void *state;		  /* protocol's per-connection state */
	struct bufferevent *bev;  /* NULL once closed; writes only */
	struct event *rev;	  /* readable socket (conn_read_set) */
	bool reading;		  /* rev is added */
	struct evbuffer *held;	  /* replies waiting for ud_flush */
	struct conn *prev, *next; /* all open connections */
	struct conn *held_next;	  /* server's held list */
	bool on_held, held_write; /* on the list; holds a write's reply */
	uint64_t log_need;    /* its write replies wait for this durable seq */
	bool closed;	      /* socket gone */
	bool close_when_done; /* close once replies are written */
	bool linger;	      /* ... after a lingering close (below) */
	bool lingering;	      /* reading only to discard, writes shut */
	size_t linger_bytes;  /* discarded so far */
	bool paused;	      /* reading stopped for back-pressure */
	bool tls;	      /* bev is an OpenSSL filter (tls.h) */
	bool authed;	      /* RPC: auth succeeded, with key_hash */
	unsigned key_idx;     /* its entry in srv->keys while key_gen */
	uint64_t key_gen;
	uint8_t key_hash[32];
	/* PostgreSQL mode: the serials of the held write replies (pgmode.h) */
	uint64_t pg_first, pg_last;
	bool pg_failed;
	size_t reply_start;	  /* held's length when the reply began */
	uint64_t reply_tag;	  /* the protocol's note for proto->refused */
	struct pg_mark *pg_marks; /* the held write replies (pgmode.h) */
	size_t pg_nmarks, pg_capmarks;
	unsigned jobs, max_jobs; /* password jobs in flight, and the cap */
	int refs;
	struct watcher *watch; /* a change-stream watcher (changes.h) */
};

struct snap_waiter;
struct changes;
struct pwjob;
struct backoff;

struct server {
	struct server_config cfg;
	struct ud_options dbopt; /* also the Argon2 costs for the pool */
	/* Verified against when a user has no password: a hash at dbopt's
	 * cost, so that both rejections take as long.  Made on its own
	 * thread at start (it costs what a login costs and must not delay
	 * `ready`); read it through server_decoy(). */
	char decoy[UD_PWHASH_MAX];
	pthread_mutex_t decoy_lock;
	pthread_t decoy_thread;
	bool decoy_started;
	ud_db *db;
	struct keyset keys;
	uint64_t actor_gen; /* ud_set_actor holds keys.e[actor_idx] of this */
	unsigned actor_idx; /* gen (0: unknown, set it again) */
	struct event *sig_hup;
	struct ssl_ctx_st *tls_ctx; /* --tls-cert: new connections' context */
	struct event_base *base;
	struct pool *pool;
	struct metrics metrics;
	struct evconnlistener *rpc_l, *http_l, *unix_l;
	struct event *sig_term, *sig_int, *tick_ev;
	struct event *durable_ev; /* ud_durable_fd() readable, or NULL */
	char rbuf[CONN_READ_MAX]; /* every socket read lands here first */
	bool tick_fast; /* ticking every TICK_FAST_US: a snapshot is awaited */
	struct conn *conns;	/* open connections */
	struct conn *held_head; /* connections with held replies */
	struct snap_waiter *snap_waiters;
	struct backoff *backoff; /* --verify-backoff-ms, else NULL */
	struct changes *changes; /* the change stream (changes.h) */
	struct pagecache pages;	 /* user.list replies (pagecache.h) */
	struct pwjob *delayed;	 /* verifications waiting out a back-off */
	bool stopping;
	int exit_status;	 /* main exits with it after server_run (0) */
	struct pgmode *pg;	 /* --postgres, else NULL (pgmode.h) */
	uint64_t pg_seen;	 /* last write serial a reply was noted for */
	int rpc_port, http_port; /* as bound */
};

/* Parse nothing, open everything: store, key, listeners; print the ports
 * and the ready line on stdout, and tell systemd READY=1.  Returns 0 or -1
 * (message on stderr). */
int server_start(struct server *srv, const struct server_config *cfg);
/* Run until SIGTERM/SIGINT, then shut down gracefully. */
void server_run(struct server *srv);
/* Free everything (after server_run or a failed server_start). */
void server_destroy(struct server *srv);

/* Replies: append to the returned buffer, then call conn_reply_end.  `write`
 * tells whether the reply reports a mutation (it must wait for ud_flush). */
struct evbuffer *conn_reply_begin(struct conn *c);
void conn_reply_end(struct conn *c, bool write);
/* True while the handler may take more requests from this connection. */
bool conn_may_read(const struct conn *c);
/* Close the socket now (held replies are dropped). */
void conn_close(struct conn *c);
/* Close after every queued reply has been written. */
void conn_close_when_done(struct conn *c);
/* The same for a connection refused mid-request (a body over the limit, a
 * frame that cannot be framed): once the reply is written, shut the write
 * side and read and discard what the client is still sending, until it
 * closes, goes quiet for CONN_LINGER_S seconds or sent CONN_LINGER_MAX
 * bytes, before closing.  Closing with its bytes unread would make the
 * kernel reset the connection, and a client still sending a large body
 * would get a reset in place of the reply (nginx's lingering_close). */
void conn_close_lingering(struct conn *c);
#define CONN_LINGER_S	2
#define CONN_LINGER_MAX (64u << 20)
/* c now streams (a change-stream watcher): the idle timeout no longer
 * applies to it. */
void conn_set_streaming(struct conn *c);
void conn_ref(struct conn *c);
void conn_unref(struct conn *c);
/* Run the protocol's on_read again (after a password job finished). */
void conn_resume(struct conn *c);
/* A password job starts/ends for c.  Reading stops while c->max_jobs are
 * in flight (1 for HTTP, which answers in order; CONN_RPC_JOBS for RPC), so
 * a client cannot queue unbounded Argon2 work or input meanwhile. */
void conn_job_begin(struct conn *c);
void conn_job_end(struct conn *c);

/* server.snapshot: reply through cb once a snapshot started now is on disk
 * (ok) or failed.  Returns 0, or a ud_code when one cannot start. */
typedef void (*snap_done_fn)(struct conn *c, uint64_t msgid, int rc);
int server_snapshot_wait(struct server *srv, struct conn *c, uint64_t msgid,
			 snap_done_fn cb, struct ud_error *err);

/* Keys.  conn_key: the key an RPC connection authenticated with, found
 * again after a reload; NULL when it has not or its key was removed (then
 * it is no longer authenticated).  conn_key_set: remember key index i of
 * srv->keys for c.  server_key_use: a request of key k starts: count it
 * and make k's name the store's actor.  server_actor_forget: the actor was
 * set by someone else (a password job), set it again next time. */
const struct key_entry *conn_key(struct conn *c);
void conn_key_set(struct conn *c, unsigned i, const uint8_t hash[32]);
void server_key_use(struct server *srv, const struct key_entry *k);
void server_actor_forget(struct server *srv);
/* After srv->keys changed: give each key its counter slot. */
void server_keys_index(struct server *srv);
/* Refuse a non-loopback bind without TLS (unless --allow-plaintext), and
 * one of --tls-cert/--tls-key without the other.  0 or -1 (message). */
int server_check_bind(const struct server_config *cfg, FILE *err);
/* SIGHUP: re-read --api-key-file; a file that fails keeps the old keys. */
void server_reload_keys(struct server *srv);

/* The decoy hash (made on first call if the start-up thread has not made
 * it yet; "" if hashing failed, which ud_password_verify() answers with its
 * default-cost decoy).  Thread-safe: the password workers call it. */
const char *server_decoy(struct server *srv);

#endif
