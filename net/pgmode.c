/*
 * pgmode.c -- PostgreSQL mode in the server; see pgmode.h.
 */
#include "pgmode.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "changes.h"
#include "datadir.h"
#include "journal.h"
#include "pg.h"
#include "pg_apply.h"
#include "pg_repl.h"
#include "pg_write.h"
#include "server.h"

#define NODE_ID_LEN 16

struct pgmode {
	struct pg_writer *w;
	struct event *ev;
	int ev_fd, ev_want;
	int lock_fd;
	char node_id[NODE_ID_LEN + 1];
	struct pg_load_stats load;
	uint64_t refused_closes;
	struct pg_repl *repl;
	struct event *repl_ev;
	uint64_t applied, skipped, refused_rows;
	enum pg_state last_state;
	/* The change stream (pgmode.h, Change stream): the users change
	 * waiting for its transaction's event row or commit. */
	struct {
		bool on;
		uint64_t seq, lsn;
		int event;
		int64_t at_ms;
		struct ud_buf rec, details;
		size_t details_off, details_len;
		char id[UD_ID_MAX + 1];
		size_t id_len;
	} held;
	uint64_t seq_lsn, seq_last, seq_done_lsn;
	int64_t repl_next_ms, repl_backoff_ms; /* reconnecting the stream */
	uint64_t repl_reconnects;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* DATA_DIR/node-id: read it, or make it (16 random [0-9a-z]). */
static int node_id(const char *dir, char *out)
{
	static const char abc[] = "0123456789abcdefghijklmnopqrstuvwxyz";
	char path[4096];
	ssize_t n;
	int fd;

	snprintf(path, sizeof path, "%s/node-id", dir);
	fd = open(path, O_RDONLY);
	if (fd >= 0) {
		n = read(fd, out, NODE_ID_LEN);
		close(fd);
		out[n > 0 ? n : 0] = 0;
		if (n == NODE_ID_LEN && strspn(out, abc) == (size_t)NODE_ID_LEN)
			return 0;
		fprintf(stderr, "userdb-server: %s is damaged\n", path);
		return -1;
	}
	for (int i = 0; i < NODE_ID_LEN; i++)
		out[i] = abc[randombytes_uniform(36)];
	out[NODE_ID_LEN] = 0;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (fd < 0 || write(fd, out, NODE_ID_LEN) != NODE_ID_LEN || fsync(fd)) {
		fprintf(stderr, "userdb-server: cannot write %s: %s\n", path,
			strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static void on_skip(void *ctx, const char *what, const char *reason)
{
	fprintf(stderr, "userdb-server: postgres: skipped %s: %s\n", what,
		reason ? reason : "refused");
}

/* The data dir: created, not world-writable, locked; the node id. */
static int open_dir(struct server *srv, struct pgmode *pm)
{
	struct ud_error err = {0};
	const char *dir = srv->cfg.data_dir;
	struct stat st;

	if (datadir_create(dir, &err) || stat(dir, &st)) {
		fprintf(stderr, "userdb-server: cannot create %s\n", dir);
		return -1;
	}
	if (st.st_mode & S_IWOTH) {
		fprintf(stderr,
			"userdb-server: data dir %s is writable by every user; "
			"refusing it (chmod o-w)\n",
			dir);
		return -1;
	}
	if (datadir_lock(dir, &pm->lock_fd, &err)) {
		fprintf(stderr,
			"userdb-server: data dir %s is in use by another "
			"server (lock held); refusing to share it\n",
			dir);
		return -1;
	}
	return node_id(dir, pm->node_id);
}

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A row with this email and id did not fit memory: when memory's holder
 * of that email is another user with a write of this node in flight, its
 * state is an optimistic one PostgreSQL is refusing (the unique index let
 * the row's writer have the email): take it out of memory until its own
 * row is read back, and say so (the caller applies the row again). */
static bool make_room(struct server *srv, const struct pg_val *email,
		      const struct pg_val *id)
{
	const ud_user *u;
	struct ud_user_view v;
	struct ud_error err;

	if (!email->s || !id->s ||
	    !(u = ud_user_get_by_email(srv->db, email->s, email->n)))
		return false;
	ud_user_view(u, &v);
	if ((v.id_len == id->n && memcmp(v.id, id->s, id->n) == 0) ||
	    !pg_writer_pending(srv->pg->w, v.id, v.id_len))
		return false;
	char hold[UD_ID_MAX];
	size_t n = v.id_len;
	memcpy(hold, v.id, n);
	if (pg_apply_restore(srv->db, hold, n, NULL, &err) < 0)
		return false;
	pg_writer_reread(srv->pg->w, hold, n);
	return true;
}

/* The seq of the next users change of the transaction that commits at
 * lsn, or 0 when that transaction was published already (a resend). */
static uint64_t next_seq(struct pgmode *pm, uint64_t lsn)
{
	uint64_t s;

	if (lsn <= pm->seq_done_lsn)
		return 0;
	if (lsn == pm->seq_lsn) {
		s = pm->seq_last + 1;
	} else {
		s = lsn << PG_SEQ_INDEX_BITS;
		if (s <= pm->seq_last)
			s = pm->seq_last + 1;
		pm->seq_lsn = lsn;
	}
	pm->seq_last = s;
	return s;
}

/* Hand the held change to the change stream. */
static void stream_flush(struct server *srv)
{
	struct pgmode *pm = srv->pg;
	struct ud_change ch;
	void *own = NULL;

	if (!pm->held.on)
		return;
	pm->held.on = false;
	if (ud_change_decode(srv->db, pm->held.rec.data, pm->held.rec.len, &ch,
			     &own) != 0)
		return;
	ch.seq = pm->held.seq;
	ch.event = pm->held.event;
	ch.at_ms = pm->held.at_ms;
	ch.details = "\x80";
	ch.details_len = 1;
	if (pm->held.details_len) {
		ch.details = pm->held.details.data + pm->held.details_off;
		ch.details_len = pm->held.details_len;
	}
	changes_note(srv->changes, &ch);
	ud_change_release(own);
}

/* A users row change (applied, or this node's own): hold it for its
 * event row. */
static void stream_hold(struct server *srv, const struct pg_row_change *c)
{
	struct pgmode *pm = srv->pg;
	struct ud_error err = {0};
	const struct pg_val *id = &c->v[PGU_ID];
	uint64_t seq;

	stream_flush(srv);
	if (!srv->changes || !id->s || id->n > UD_ID_MAX ||
	    !(seq = next_seq(pm, c->commit_lsn)))
		return;
	pm->held.rec.len = 0;
	pm->held.details_len = 0;
	pm->held.at_ms = wall_ms();
	if (pg_apply_describe(srv->db, c, &pm->held.rec, &pm->held.at_ms,
			      &err)) {
		fprintf(stderr,
			"userdb-server: postgres: change %llu is not in the "
			"change stream: %s\n",
			(unsigned long long)seq, err.message);
		return;
	}
	pm->held.on = true;
	pm->held.seq = seq;
	pm->held.lsn = c->commit_lsn;
	pm->held.event = c->op == PGO_INSERT   ? UD_EV_CREATED
			 : c->op == PGO_DELETE ? UD_EV_DELETED
					       : UD_EV_UPDATED;
	memcpy(pm->held.id, id->s, id->n);
	pm->held.id_len = id->n;
}

/* An events row: the held change's own event (name, time, details with
 * the actor) when it is of the same user and transaction. */
static void stream_event(struct server *srv, const struct pg_row_change *c)
{
	struct pgmode *pm = srv->pg;
	struct pg_val v[PGE__COUNT];
	const struct pg_val *uid = &c->v[PGE_USER_ID];
	struct pg_event e;
	struct ud_error err;
	int64_t ms;
	char t[24];

	if (!pm->held.on || pm->held.lsn != c->commit_lsn || !uid->s ||
	    uid->n != pm->held.id_len ||
	    memcmp(uid->s, pm->held.id, uid->n) != 0)
		return;
	memcpy(v, c->v, sizeof v);
	if (!v[PGE_MS].s || pg_row_time(v[PGE_MS].s, v[PGE_MS].n, &ms))
		return;
	v[PGE_MS] = (struct pg_val){
	    t, (size_t)snprintf(t, sizeof t, "%lld", (long long)ms)};
	if (!v[PGE_ID].s)
		v[PGE_ID] = (struct pg_val){"1", 1};
	pm->held.details.len = 0;
	if (pg_row_event(v, &e, &pm->held.details, &err))
		return;
	pm->held.event = e.type;
	pm->held.at_ms = e.ms;
	pm->held.details_off = e.details_off;
	pm->held.details_len = e.details_len;
	stream_flush(srv);
}

static void commit_cb(void *ctx, uint64_t lsn, bool own)
{
	struct server *srv = ctx;

	(void)own;
	stream_flush(srv);
	srv->pg->seq_done_lsn = lsn;
}

/* A row change from the stream (pg_apply.h). */
static int apply_cb(void *ctx, const struct pg_row_change *c)
{
	struct server *srv = ctx;
	struct ud_error err = {0};
	int rc;

	if (c->table == PGT_EVENTS) {
		stream_event(srv, c);
		return 0;
	}
	rc = pg_apply_change(srv->db, c, wall_ms(), &err);
	if (rc < 0 && make_room(srv, &c->v[PGU_EMAIL], &c->v[PGU_ID]))
		rc = pg_apply_change(srv->db, c, wall_ms(), &err);
	if (c->table == PGT_USERS && rc >= 0)
		stream_hold(srv, c);

	if (rc == 0)
		srv->pg->applied++;
	else if (rc > 0)
		srv->pg->skipped++;
	else {
		srv->pg->refused_rows++;
		fprintf(stderr,
			"userdb-server: postgres: skipped a change of %.*s: "
			"%s\n",
			c->v[PGU_ID].s ? (int)c->v[PGU_ID].n : 4,
			c->v[PGU_ID].s ? c->v[PGU_ID].s : "NULL", err.message);
	}
	return 0;
}

/* Migrate, create the slot, load at its snapshot, start the stream. */
static int load_all(struct server *srv, struct pgmode *pm)
{
	struct ud_error err = {0};
	PGconn *c = pg_connect(srv->cfg.postgres, &err);
	char snap[64];
	int rc = c ? pg_migrate(c, PG_SCHEMA_VERSION, &err) : -1;

	if (rc == 0 && !(pm->repl = pg_repl_create_slot(
			     srv->cfg.postgres, pm->node_id, snap, &err)))
		rc = -1;
	if (rc == 0)
		rc = pg_load(c, srv->db, snap, on_skip, NULL, &pm->load, &err);
	if (rc == 0)
		rc = pg_repl_start(pm->repl, apply_cb, srv, &err);
	PQfinish(c);
	if (rc) {
		fprintf(stderr, "userdb-server: %s\n", err.message);
		return -1;
	}
	printf("postgres: loaded %llu users, %llu events (%llu rows "
	       "skipped), node %s\n",
	       (unsigned long long)pm->load.users,
	       (unsigned long long)pm->load.events,
	       (unsigned long long)pm->load.rows_skipped, pm->node_id);
	return 0;
}

int pgmode_drop_node(const struct server_config *cfg)
{
	struct ud_error err = {0};
	int rc;

	if (!cfg->postgres) {
		fprintf(stderr,
			"userdb-server: --drop-node needs --postgres\n");
		return 2;
	}
	rc = pg_repl_drop_slot(cfg->postgres, cfg->drop_node, &err);
	if (rc == 0)
		printf("dropped the replication slot and origin of node %s\n",
		       cfg->drop_node);
	else
		fprintf(stderr, "userdb-server: %s\n", err.message);
	return rc == 0 ? 0 : rc == UD_EINVAL ? 2 : 1;
}

int pgmode_open(struct server *srv)
{
	struct ud_error err = {0};
	struct pgmode *pm = calloc(1, sizeof(*pm));

	if (!pm)
		return -1;
	pm->lock_fd = -1;
	pm->ev_fd = -1;
	srv->pg = pm;
	if (open_dir(srv, pm))
		return -1;
	srv->dbopt.data_dir = NULL; /* memory only: PostgreSQL keeps it */
	if (ud_open(&srv->dbopt, &srv->db, &err)) {
		fprintf(stderr, "userdb-server: cannot open the store: %s\n",
			err.message);
		return -1;
	}
	return load_all(srv, pm);
}

/* A write PostgreSQL refused or lost: its reply becomes PostgreSQL's
 * verdict, or (lost, or no mark to redo) its connection is closed. */
static void write_failed(void *ctx, uint64_t serial, int code, const char *msg)
{
	struct server *srv = ctx;

	for (struct conn *c = srv->held_head; c; c = c->held_next) {
		bool marked = false;
		if (!c->held_write || serial < c->pg_first ||
		    serial > c->pg_last)
			continue;
		for (size_t i = 0; i < c->pg_nmarks; i++) {
			struct pg_mark *m = &c->pg_marks[i];
			if (serial < m->first || serial > m->last)
				continue;
			marked = true;
			if (!m->code)
				m->code = code;
		}
		if (!marked || code == UD_EUNAVAILABLE)
			c->pg_failed = true;
	}
	if (code == UD_EUNAVAILABLE)
		srv->pg->refused_closes++;
	fprintf(stderr, "userdb-server: postgres refused write %llu (%s): %s\n",
		(unsigned long long)serial, ud_code_name(code),
		msg && *msg ? msg : "-");
}

static void fd_cb(evutil_socket_t fd, short what, void *arg);
static void restore_cb(void *ctx, const char *id, size_t n,
		       const struct pg_val *row);

/* Watch the writer's socket for what it wants now. */
static void watch(struct server *srv)
{
	struct pgmode *pm = srv->pg;
	int fd = pg_writer_fd(pm->w), want = pg_writer_want(pm->w);

	if (fd == pm->ev_fd && want == pm->ev_want)
		return;
	if (pm->ev) {
		event_free(pm->ev);
		pm->ev = NULL;
	}
	pm->ev_fd = fd;
	pm->ev_want = want;
	if (fd < 0 || !want)
		return;
	pm->ev = event_new(srv->base, fd,
			   EV_PERSIST | ((want & PG_WANT_READ) ? EV_READ : 0) |
			       ((want & PG_WANT_WRITE) ? EV_WRITE : 0),
			   fd_cb, srv);
	if (pm->ev)
		event_add(pm->ev, NULL);
}

static void fd_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;

	pg_writer_io(srv->pg->w, now_ms());
	watch(srv);
}

static void repl_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;

	pg_repl_io(srv->pg->repl, now_ms());
	if (!pg_repl_streaming(srv->pg->repl) && srv->pg->repl_ev) {
		fprintf(stderr,
			"userdb-server: postgres: replication stream ended "
			"(%s)%s\n",
			pg_repl_error(srv->pg->repl),
			pg_repl_lost(srv->pg->repl) ? "; the slot is gone"
						    : "");
		event_free(srv->pg->repl_ev);
		srv->pg->repl_ev = NULL;
		srv->pg->repl_backoff_ms = 100;
		srv->pg->repl_next_ms = now_ms() + 100;
	}
}

/* The slot is gone: memory can no longer be kept coherent, and only a
 * full load at a new slot's snapshot makes it so.  Stop (exit status 3,
 * replies in flight drained as on SIGTERM) so that the start-up load runs
 * before this node serves again (systemd: Restart=on-failure). */
static void slot_lost(struct server *srv)
{
	fprintf(stderr,
		"userdb-server: postgres: replication slot lost (%s); stopping "
		"so that a restart reloads every user\n",
		pg_repl_error(srv->pg->repl));
	srv->exit_status = 3;
	srv->stopping = true;
	event_base_loopbreak(srv->base);
}

/* The stream ended: connect again with back-off (100 ms .. 5 s). */
static void repl_retry(struct server *srv)
{
	struct pgmode *pm = srv->pg;
	struct ud_error err = {0};

	if (srv->stopping || pm->repl_ev || now_ms() < pm->repl_next_ms)
		return;
	if (pg_repl_lost(pm->repl)) {
		slot_lost(srv);
		return;
	}
	if (pg_repl_restart(pm->repl, srv->cfg.postgres, &err) == 0 &&
	    (pm->repl_ev = event_new(srv->base, pg_repl_fd(pm->repl),
				     EV_READ | EV_PERSIST, repl_cb, srv)) &&
	    event_add(pm->repl_ev, NULL) == 0) {
		fprintf(stderr, "userdb-server: postgres: replication stream "
				"resumed from the slot\n");
		pm->repl_reconnects++;
		return;
	}
	if (pg_repl_lost(pm->repl)) {
		slot_lost(srv);
		return;
	}
	pm->repl_next_ms = now_ms() + pm->repl_backoff_ms;
	pm->repl_backoff_ms =
	    pm->repl_backoff_ms * 2 > 5000 ? 5000 : pm->repl_backoff_ms * 2;
}

int pgmode_start(struct server *srv)
{
	struct pgmode *pm = srv->pg;
	int64_t deadline = now_ms() + 5000;

	char origin[64];

	pg_repl_origin_name(origin, sizeof origin, pm->node_id);
	pm->w = pg_writer_new(srv->cfg.postgres, origin, write_failed,
			      restore_cb, srv);
	pm->repl_ev = event_new(srv->base, pg_repl_fd(pm->repl),
				EV_READ | EV_PERSIST, repl_cb, srv);
	if (!pm->w || !pm->repl_ev || event_add(pm->repl_ev, NULL))
		return -1;
	pg_writer_attach(pm->w, srv->db);
	pg_repl_on_commit(pm->repl, commit_cb);
	if (srv->changes) {
		uint64_t start = pg_repl_start_lsn(pm->repl);
		changes_take_over(srv->changes,
				  start ? (start << PG_SEQ_INDEX_BITS) - 1 : 0);
	}
	/* Before `ready`, nothing else runs: wait here for the connection
	 * (bounded) so the first writes are not refused. */
	pg_writer_tick(pm->w, now_ms());
	while (pg_writer_state(pm->w) == PG_CONNECTING && now_ms() < deadline) {
		struct pollfd p = {
		    pg_writer_fd(pm->w),
		    (pg_writer_want(pm->w) & PG_WANT_WRITE) ? POLLOUT : POLLIN,
		    0};
		poll(&p, 1, 100);
		pg_writer_io(pm->w, now_ms());
	}
	if (pg_writer_state(pm->w) != PG_READY)
		fprintf(stderr,
			"userdb-server: postgres write connection not up yet "
			"(%s); writes get 503 until it is\n",
			pg_writer_error(pm->w));
	pm->last_state = pg_writer_state(pm->w);
	watch(srv);
	return 0;
}

void pgmode_close(struct server *srv)
{
	struct pgmode *pm = srv->pg;

	if (!pm)
		return;
	if (pm->ev)
		event_free(pm->ev);
	if (pm->repl_ev)
		event_free(pm->repl_ev);
	pg_repl_free(pm->repl);
	pg_writer_free(pm->w);
	ud_buf_free(&pm->held.rec);
	ud_buf_free(&pm->held.details);
	if (pm->lock_fd >= 0)
		close(pm->lock_fd);
	free(pm);
	srv->pg = NULL;
}

void pgmode_flush(struct server *srv)
{
	if (!srv->pg || !srv->pg->w)
		return;
	pg_writer_io(srv->pg->w, now_ms());
	watch(srv);
}

void pgmode_tick(struct server *srv)
{
	struct pgmode *pm = srv->pg;

	if (!pm || !pm->w)
		return;
	pg_writer_tick(pm->w, now_ms());
	pg_writer_io(pm->w, now_ms());
	watch(srv);
	if (pm->repl_ev)
		pg_repl_tick(pm->repl, now_ms());
	else
		repl_retry(srv);
	if (pg_writer_state(pm->w) != pm->last_state) {
		if (pg_writer_state(pm->w) == PG_READY)
			fprintf(stderr, "userdb-server: postgres: connected\n");
		else if (pm->last_state == PG_READY)
			fprintf(stderr,
				"userdb-server: postgres: down (%s); writes "
				"get 503 until it is back\n",
				pg_writer_error(pm->w));
		pm->last_state = pg_writer_state(pm->w);
	}
}

void pgmode_note_reply(struct conn *c)
{
	struct pgmode *pm = c->srv->pg;
	uint64_t s = pg_writer_serial(pm->w);
	uint64_t first = c->srv->pg_seen + 1;

	if (s <= c->srv->pg_seen) /* the write journaled nothing */
		return;
	if (!c->pg_first || c->pg_first > c->pg_last)
		c->pg_first = first;
	c->pg_last = s;
	c->srv->pg_seen = s;
	if (c->pg_nmarks == c->pg_capmarks) {
		size_t cap = c->pg_capmarks ? 2 * c->pg_capmarks : 8;
		struct pg_mark *m = realloc(c->pg_marks, cap * sizeof(*m));
		if (!m)
			return; /* unmarked: a refusal closes (write_failed) */
		c->pg_marks = m;
		c->pg_capmarks = cap;
	}
	c->pg_marks[c->pg_nmarks++] =
	    (struct pg_mark){c->reply_start, evbuffer_get_length(c->held),
			     first,	     s,
			     c->reply_tag,   0};
}

/* The error a refused write answers, as the default mode words it. */
static void refusal(int code, struct ud_error *err)
{
	if (code == UD_EDUPEMAIL)
		ud_error_set(err, code, "email",
			     "a user with this email exists");
	else if (code == UD_EDUPID)
		ud_error_set(err, code, "id", "a user with this id exists");
	else
		ud_error_set(err, code, NULL,
			     "the user changed (another writer committed "
			     "first)");
}

void pgmode_redo_refused(struct conn *c)
{
	struct evbuffer *nb = NULL;
	size_t at = 0;

	for (size_t i = 0; i < c->pg_nmarks; i++) {
		struct pg_mark *m = &c->pg_marks[i];
		struct ud_error err;
		if (!m->code || !c->proto->refused)
			continue;
		if (!nb && !(nb = evbuffer_new())) {
			conn_close(c);
			return;
		}
		evbuffer_remove_buffer(c->held, nb, m->start - at);
		evbuffer_drain(c->held, m->end - m->start);
		at = m->end;
		refusal(m->code, &err);
		c->proto->refused(c, m->tag, &err, nb);
	}
	if (!nb)
		return;
	evbuffer_add_buffer(nb, c->held);
	evbuffer_add_buffer(c->held, nb);
	evbuffer_free(nb);
}

/* The row PostgreSQL holds for a user whose write it refused or lost. */
static void restore_cb(void *ctx, const char *id, size_t n,
		       const struct pg_val *row)
{
	struct server *srv = ctx;
	struct ud_error err = {0};
	int rc = pg_apply_restore(srv->db, id, n, row, &err);

	if (rc < 0 && row &&
	    make_room(srv, &row[PGU_EMAIL], &(struct pg_val){id, n}))
		rc = pg_apply_restore(srv->db, id, n, row, &err);
	if (rc < 0)
		fprintf(stderr,
			"userdb-server: postgres: cannot restore %.*s from its "
			"row: %s\n",
			(int)n, id, err.message);
}

int pgmode_may_release(const struct conn *c)
{
	if (c->pg_failed)
		return -1;
	return c->pg_last <= pg_writer_durable(c->srv->pg->w);
}

int pgmode_metrics(struct server *srv, struct ud_buf *b)
{
	struct pg_writer_stats st;
	char t[2048];
	int n;

	if (!srv->pg || !srv->pg->w)
		return 0;
	pg_writer_stats(srv->pg->w, &st);
	int64_t lag = (int64_t)(pg_repl_wal_end(srv->pg->repl) -
				pg_repl_applied_lsn(srv->pg->repl));
	n = snprintf(
	    t, sizeof t,
	    "# TYPE userdb_pg_up gauge\nuserdb_pg_up %d\n"
	    "# TYPE userdb_pg_writes_committed_total counter\n"
	    "userdb_pg_writes_committed_total %llu\n"
	    "# TYPE userdb_pg_writes_refused_total counter\n"
	    "userdb_pg_writes_refused_total %llu\n"
	    "# TYPE userdb_pg_writes_lost_total counter\n"
	    "userdb_pg_writes_lost_total %llu\n"
	    "# TYPE userdb_pg_writes_inflight gauge\n"
	    "userdb_pg_writes_inflight %llu\n"
	    "# TYPE userdb_pg_reconnects_total counter\n"
	    "userdb_pg_reconnects_total %llu\n"
	    "# TYPE userdb_pg_rows_skipped_total counter\n"
	    "userdb_pg_rows_skipped_total %llu\n"
	    "# TYPE userdb_pg_replication_up gauge\n"
	    "userdb_pg_replication_up %d\n"
	    "# TYPE userdb_pg_changes_applied_total counter\n"
	    "userdb_pg_changes_applied_total %llu\n"
	    "# TYPE userdb_pg_changes_deduped_total counter\n"
	    "userdb_pg_changes_deduped_total %llu\n"
	    "# TYPE userdb_pg_replication_lag_bytes gauge\n"
	    "userdb_pg_replication_lag_bytes %llu\n"
	    "# TYPE userdb_pg_replication_reconnects_total counter\n"
	    "userdb_pg_replication_reconnects_total %llu\n",
	    pg_writer_state(srv->pg->w) == PG_READY,
	    (unsigned long long)st.committed, (unsigned long long)st.refused,
	    (unsigned long long)st.lost, (unsigned long long)st.inflight,
	    (unsigned long long)st.reconnects,
	    (unsigned long long)(srv->pg->load.rows_skipped +
				 srv->pg->refused_rows),
	    srv->pg->repl_ev != NULL, (unsigned long long)srv->pg->applied,
	    (unsigned long long)srv->pg->skipped,
	    (unsigned long long)(lag > 0 ? lag : 0),
	    (unsigned long long)srv->pg->repl_reconnects);
	return ud_buf_append(b, t, (size_t)n) ? -1 : 0;
}
