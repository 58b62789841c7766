/*
 * test_crash.c -- kill -9 while writes are in flight (SPEC §5): no
 * acknowledged write may be lost, in any fsync mode, with or without a
 * snapshot being written at the moment of the kill.
 *
 * Each round starts the real server on a data dir, runs WRITERS client
 * threads on their own RPC connections, each pipelining batches of 1..16
 * creates/updates/deletes on its own users (ids usr_c<thread>_<n>), and
 * records, per user, what was sent and what was acknowledged.  The test
 * kills the server with SIGKILL at a random moment, restarts it on the same
 * data and reads every user back with user.get_many:
 *
 *   create acked, no delete sent  -> present, version in [acked, sent]
 *   delete acked                  -> absent
 *   anything unacknowledged       -> either outcome, version <= sent
 *
 * (an update's version is in the name and in custom_data.v).  What a round
 * observed becomes the exact expectation of later rounds on the same dir,
 * so a recovery that loses earlier recovered state fails too.
 * USERDB_CRASH_SEED fixes the random choices; the seed is printed.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helper_server.h"

#define WRITERS	  4
#define MAX_USERS 3000
#define BATCH	  16

struct urec {
	int sent;  /* last version sent (0 = the create) */
	int acked; /* last version acknowledged, -1 none */
	bool del_sent, del_acked;
	int fixed; /* after a check: -2 unknown, -1 absent, else version */
};

struct writer {
	pthread_t th;
	int tid, port;
	unsigned seed;
	int n; /* users created so far */
	struct urec u[MAX_USERS];
	long sent_ops, acked_ops;
	char error[256];     /* first unexpected reply */
	atomic_bool started; /* connected and authenticated, or failed */
};

static struct tsrv S;
static unsigned Seed;

static void fini(void)
{
	cr_assert_eq(tsrv_cleanup(&S), 0);
}

TestSuite(crash, .fini = fini, .timeout = 120);

struct op {
	int user, ver; /* ver -1: delete */
	unsigned msgid;
};

/* Pick and send one operation of w's batch. */
static void send_op(struct writer *w, struct rpcc *c, struct op *op)
{
	char p[512];
	int live[BATCH * 4], nlive = 0;
	for (int k = 0; k < 64 && nlive < (int)(sizeof live / sizeof *live);
	     k++) {
		int i = w->n ? (int)(rand_r(&w->seed) % (unsigned)w->n) : 0;
		if (w->n && !w->u[i].del_sent)
			live[nlive++] = i;
	}
	unsigned r = rand_r(&w->seed) % 10;
	if (w->n < MAX_USERS && (r < 4 || nlive == 0)) {
		int i = w->n++;
		w->u[i] = (struct urec){.sent = 0, .acked = -1, .fixed = -2};
		snprintf(
		    p, sizeof p,
		    "[{\"id\":\"usr_c%d_%d\",\"name\":\"n%d-%d-v0\","
		    "\"email\":\"c%d.%d@x.com\",\"custom_data\":{\"v\":0}}]",
		    w->tid, i, w->tid, i, w->tid, i);
		*op = (struct op){i, 0, rpcc_send(c, "user.create", p)};
	} else if (nlive && r < 8) {
		int i = live[rand_r(&w->seed) % (unsigned)nlive];
		int v = ++w->u[i].sent;
		snprintf(p, sizeof p,
			 "[\"usr_c%d_%d\",{\"name\":\"n%d-%d-v%d\","
			 "\"custom_data\":{\"v\":%d}}]",
			 w->tid, i, w->tid, i, v, v);
		*op = (struct op){i, v, rpcc_send(c, "user.update", p)};
	} else if (nlive) {
		int i = live[rand_r(&w->seed) % (unsigned)nlive];
		w->u[i].del_sent = true;
		snprintf(p, sizeof p, "[\"usr_c%d_%d\"]", w->tid, i);
		*op = (struct op){i, -1, rpcc_send(c, "user.delete", p)};
	} else {
		*op = (struct op){-1, 0, rpcc_send(c, "ping", "[]")};
	}
	w->sent_ops++;
}

/* Record one acknowledgement; false on an unexpected reply. */
static bool ack(struct writer *w, const struct op *op, json_t *r)
{
	if (json_integer_value(json_array_get(r, 1)) != (json_int_t)op->msgid ||
	    rpc_err(r)[0]) {
		char *t = json_dumps(r, 0);
		snprintf(w->error, sizeof w->error, "msgid %u: %s", op->msgid,
			 t ? t : "?");
		free(t);
		return false;
	}
	w->acked_ops++;
	if (op->user < 0)
		return true;
	struct urec *u = &w->u[op->user];
	if (op->ver < 0)
		u->del_acked = true;
	else if (op->ver > u->acked)
		u->acked = op->ver;
	return true;
}

/* Pipeline batches until the connection dies (the kill). */
static void *writer_run(void *arg)
{
	struct writer *w = arg;
	struct rpcc c;
	struct op ops[BATCH];
	int rc = rpcc_open(&c, w->port);
	if (rc == 0 && rpcc_auth(&c) != 0) {
		rpcc_close(&c);
		rc = -1;
	}
	if (rc) {
		snprintf(w->error, sizeof w->error, "cannot connect");
		atomic_store(&w->started, true);
		return NULL;
	}
	atomic_store(&w->started, true);
	for (;;) {
		int k = 1 + (int)(rand_r(&w->seed) % BATCH);
		for (int i = 0; i < k; i++)
			send_op(w, &c, &ops[i]);
		for (int i = 0; i < k; i++) {
			json_t *r = rpcc_recv(&c);
			if (!r)
				goto out;
			bool ok = ack(w, &ops[i], r);
			json_decref(r);
			if (!ok)
				goto out;
		}
	}
out:
	rpcc_close(&c);
	return NULL;
}

/* Version in a user's custom_data.v (checked against the name), -3 when
 * they disagree. */
static int user_version(json_t *u, const char *id)
{
	int v = (int)json_integer_value(
	    json_object_get(json_object_get(u, "custom_data"), "v"));
	char name[96];
	int t, i;
	if (sscanf(id, "usr_c%d_%d", &t, &i) != 2)
		return -3;
	snprintf(name, sizeof name, "n%d-%d-v%d", t, i, v);
	const char *got = json_string_value(json_object_get(u, "name"));
	return got && !strcmp(got, name) ? v : -3;
}

/* Check one user against what was acknowledged; returns the version seen
 * (-1 absent). */
static int check_user(struct urec *u, json_t *got, const char *id)
{
	int seen = json_is_null(got) ? -1 : user_version(got, id);
	cr_assert_neq(seen, -3, "%s: name and custom_data disagree", id);
	if (u->fixed != -2) {
		cr_assert_eq(seen, u->fixed,
			     "%s: was %d after the last "
			     "recovery, now %d",
			     id, u->fixed, seen);
	} else if (u->del_acked) {
		cr_assert_eq(seen, -1, "%s: acknowledged delete undone", id);
	} else if (u->acked >= 0 && !u->del_sent) {
		cr_assert_geq(seen, u->acked,
			      "%s: acknowledged version %d lost (seen %d)", id,
			      u->acked, seen);
	}
	if (seen >= 0)
		cr_assert(seen <= u->sent && seen >= u->acked,
			  "%s: version %d outside [%d, %d]", id, seen, u->acked,
			  u->sent);
	u->fixed = seen;
	return seen;
}

/* Read every user of w back in chunks; returns how many are present. */
static int verify_writer(struct rpcc *c, struct writer *w)
{
	int present = 0;
	size_t cap = 40 * 1000 + 16;
	char *p = malloc(cap);
	for (int base = 0; base < w->n; base += 1000) {
		int end = base + 1000 < w->n ? base + 1000 : w->n;
		size_t len = (size_t)snprintf(p, cap, "[[");
		for (int i = base; i < end; i++)
			len += (size_t)snprintf(p + len, cap - len,
						"%s\"usr_c%d_%d\"",
						i > base ? "," : "", w->tid, i);
		snprintf(p + len, cap - len, "]]");
		json_t *r = rpcc_call(c, "user.get_many", p);
		cr_assert_not_null(r);
		cr_assert_str_eq(rpc_err(r), "");
		json_t *arr = rpc_res(r);
		cr_assert_eq(json_array_size(arr), (size_t)(end - base));
		for (int i = base; i < end; i++) {
			char id[64];
			snprintf(id, sizeof id, "usr_c%d_%d", w->tid, i);
			present +=
			    check_user(&w->u[i], json_array_get(arr, i - base),
				       id) >= 0;
		}
		json_decref(r);
	}
	free(p);
	return present;
}

/* Pid of a child process of parent (the snapshot writer), or 0. */
static pid_t find_child(pid_t parent)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	pid_t found = 0;
	while (d && !found && (e = readdir(d))) {
		char path[300], buf[512];
		pid_t pid = (pid_t)atoi(e->d_name), ppid;
		if (pid <= 0)
			continue;
		snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		size_t n = fread(buf, 1, sizeof buf - 1, f);
		fclose(f);
		buf[n] = 0;
		char *rp = strrchr(buf, ')'), st;
		if (rp && sscanf(rp + 1, " %c %d", &st, &ppid) == 2 &&
		    ppid == parent && st != 'Z')
			found = pid;
	}
	if (d)
		closedir(d);
	return found;
}

/* True once pid is gone or a zombie. */
/* True when dir holds a snapshot being written (*.inprogress). */
static bool has_inprogress(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	bool found = false;
	while (d && !found && (e = readdir(d)))
		found = strstr(e->d_name, ".inprogress") != NULL;
	if (d)
		closedir(d);
	return found;
}

static bool process_gone(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return true;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	char *rp = strrchr(buf, ')');
	return rp && rp[1] && rp[2] == 'Z';
}

static int count_inprogress(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;
	while (d && (e = readdir(d)))
		n += strstr(e->d_name, ".inprogress") != NULL;
	if (d)
		closedir(d);
	return n;
}

static void userdb_check_ok(void)
{
	char cmd[800];
	snprintf(cmd, sizeof cmd, "'%s/userdb-check' '%s' >/dev/null 2>&1",
		 getenv("USERDB_BIN_DIR"), S.data);
	int st = system(cmd);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		  "userdb-check after kill -9: status %d", st);
}

static void ms_sleep(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static struct writer *W[16][WRITERS];

/* One round: writers run, the server dies by SIGKILL after kill_ms (with
 * the snapshot child stopped first when snap), restart, verify this round's
 * and every earlier round's users. */
static void round_run(int round, const char *const *args, unsigned kill_ms,
		      bool snap, long *inflight)
{
	unsigned rs = Seed + (unsigned)round * 7919u;
	for (int t = 0; t < WRITERS; t++) {
		struct writer *w = calloc(1, sizeof(*w));
		w->tid = round * WRITERS + t;
		w->port = S.rpc_port;
		w->seed = rs + (unsigned)t;
		W[round][t] = w;
		pthread_create(&w->th, NULL, writer_run, w);
	}
	/* The kill comes kill_ms after every writer is connected: on a
	 * loaded machine (ASan, two cores) a thread may otherwise not have
	 * connected yet when the server dies. */
	for (int t = 0; t < WRITERS; t++)
		for (int i = 0; i < 3000 && !atomic_load(&W[round][t]->started);
		     i++)
			ms_sleep(1);
	pid_t child = 0;
	if (snap) {
		/* --snapshot-interval 1 starts one within a second of the
		 * first write; stop its writer so it is mid-file at the kill,
		 * while the clients keep writing. */
		/* Only once its .inprogress file exists: the child sets its
		 * parent-death signal before creating it, and a child stopped
		 * before that point would (rightly) outlive a killed server. */
		for (int i = 0; i < 500 && !child; i++) {
			ms_sleep(10);
			child = find_child(S.pid);
			if (child && !has_inprogress(S.data))
				child = 0;
		}
		cr_assert_neq(child, 0, "no snapshot process appeared");
		kill(child, SIGSTOP);
	}
	ms_sleep(kill_ms);
	kill(S.pid, SIGKILL);
	waitpid(S.pid, NULL, 0);
	S.pid = 0;
	for (int t = 0; t < WRITERS; t++) {
		struct writer *w = W[round][t];
		pthread_join(w->th, NULL);
		cr_assert_str_eq(w->error, "", "writer %d: %s", t, w->error);
		cr_assert_gt(w->acked_ops, 0, "writer %d got no reply", t);
		*inflight += w->sent_ops - w->acked_ops;
	}
	if (snap) {
		/* The orphaned snapshot writer must not outlive the server:
		 * it would hold the data dir's lock (and the listening
		 * sockets) and keep a restart from happening. */
		for (int i = 0; i < 200 && !process_gone(child); i++)
			ms_sleep(10);
		bool gone = process_gone(child);
		if (!gone)
			kill(child, SIGKILL);
		cr_assert(gone, "snapshot process %d survived the server",
			  (int)child);
	}
	userdb_check_ok();
	cr_assert_eq(tsrv_start(&S, true, true, args), 0, "restart, round %d",
		     round);
	cr_assert_eq(count_inprogress(S.data), 0, "stray .inprogress kept");
	struct rpcc c;
	cr_assert_eq(rpcc_open(&c, S.rpc_port), 0);
	cr_assert_eq(rpcc_auth(&c), 0);
	for (int r = 0; r <= round; r++)
		for (int t = 0; t < WRITERS; t++)
			verify_writer(&c, W[r][t]);
	rpcc_close(&c);
}

static void run_mode(const char *const *args, int rounds, bool snap)
{
	const char *e = getenv("USERDB_CRASH_SEED");
	Seed = e ? (unsigned)strtoul(e, NULL, 10) : (unsigned)time(NULL);
	fprintf(stderr, "crash: %s seed %u\n", args[1], Seed);
	srand(Seed);
	memset(&S, 0, sizeof S);
	cr_assert_eq(tsrv_start(&S, true, true, args), 0);
	long inflight = 0, acked = 0;
	for (int r = 0; r < rounds; r++) {
		unsigned kill_ms = 100 + (unsigned)(rand() % 300);
		round_run(r, args, kill_ms, snap, &inflight);
	}
	for (int r = 0; r < rounds; r++)
		for (int t = 0; t < WRITERS; t++) {
			acked += W[r][t]->acked_ops;
			free(W[r][t]);
			W[r][t] = NULL;
		}
	fprintf(stderr,
		"crash: %s: %ld acknowledged ops, %ld in flight at "
		"the kills\n",
		args[1], acked, inflight);
	cr_assert_gt(inflight, 0, "no write was in flight at any kill");
}

Test(crash, fsync_always_loses_no_acknowledged_write)
{
	const char *args[] = {"--fsync", "always", "--snapshot-interval", "0",
			      NULL};
	run_mode(args, 3, false);
}

Test(crash, fsync_everysec_loses_no_acknowledged_write)
{
	const char *args[] = {"--fsync", "everysec", "--snapshot-interval", "0",
			      NULL};
	run_mode(args, 3, false);
}

Test(crash, kill_during_a_snapshot)
{
	const char *args[] = {"--fsync", "everysec", "--snapshot-interval", "1",
			      NULL};
	run_mode(args, 2, true);
}
