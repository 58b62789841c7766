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

#include "datadir.h"
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

/* A row change from the stream (pg_apply.h). */
static int apply_cb(void *ctx, const struct pg_row_change *c)
{
	struct server *srv = ctx;
	struct ud_error err = {0};
	int rc = pg_apply_change(srv->db, c, wall_ms(), &err);

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

/* A write PostgreSQL refused or lost: close the connections waiting for
 * it; a refused create leaves memory again. */
static void write_failed(void *ctx, uint64_t serial, int code, const char *msg)
{
	struct server *srv = ctx;

	for (struct conn *c = srv->held_head; c; c = c->held_next)
		if (c->held_write && c->pg_first <= serial &&
		    serial <= c->pg_last)
			c->pg_failed = true;
	srv->pg->refused_closes++;
	fprintf(stderr, "userdb-server: postgres refused write %llu (%s): %s\n",
		(unsigned long long)serial, ud_code_name(code),
		msg && *msg ? msg : "-");
}

static void fd_cb(evutil_socket_t fd, short what, void *arg);

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
	}
}

int pgmode_start(struct server *srv)
{
	struct pgmode *pm = srv->pg;
	int64_t deadline = now_ms() + 5000;

	char origin[64];

	pg_repl_origin_name(origin, sizeof origin, pm->node_id);
	pm->w = pg_writer_new(srv->cfg.postgres, origin, write_failed, srv);
	pm->repl_ev = event_new(srv->base, pg_repl_fd(pm->repl),
				EV_READ | EV_PERSIST, repl_cb, srv);
	if (!pm->w || !pm->repl_ev || event_add(pm->repl_ev, NULL))
		return -1;
	pg_writer_attach(pm->w, srv->db);
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

	if (s <= c->srv->pg_seen) /* the write journaled nothing */
		return;
	if (!c->pg_first || c->pg_first > c->pg_last)
		c->pg_first = c->srv->pg_seen + 1;
	c->pg_last = s;
	c->srv->pg_seen = s;
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
	    "userdb_pg_replication_lag_bytes %llu\n",
	    pg_writer_state(srv->pg->w) == PG_READY,
	    (unsigned long long)st.committed, (unsigned long long)st.refused,
	    (unsigned long long)st.lost, (unsigned long long)st.inflight,
	    (unsigned long long)st.reconnects,
	    (unsigned long long)(srv->pg->load.rows_skipped +
				 srv->pg->refused_rows),
	    srv->pg->repl_ev != NULL, (unsigned long long)srv->pg->applied,
	    (unsigned long long)srv->pg->skipped,
	    (unsigned long long)(lag > 0 ? lag : 0));
	return ud_buf_append(b, t, (size_t)n) ? -1 : 0;
}
