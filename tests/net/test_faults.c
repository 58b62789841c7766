/*
 * test_faults.c -- durability under disk faults, against the real server
 * (issue 6).  The server starts with USERDB_FAULT rules that fire while a
 * flag file exists (fault.h), one flag per (fault point, error); the test
 * creates a flag, checks the server, removes it, checks again.
 *
 * Log path (write, short write, PARTIAL write, ftruncate after a failed
 * write, fdatasync in --fsync always and everysec), for each error:
 *   - the write that meets the fault is applied in memory but its reply is
 *     held (RPC and HTTP) -- in everysec mode the write itself succeeds and
 *     is acknowledged, the failed background fdatasync follows;
 *   - later writes are refused with `unavailable` (503 on HTTP), reads are
 *     answered, server.snapshot fails (the log cannot be rotated);
 *   - a failed write is cut back (the segments on disk are exactly as long
 *     as the good records) unless ftruncate was made to fail too;
 *   - once the flag is gone the held reply leaves and writes work again;
 *   - kill -9 while a fault lasts, restart: every acknowledged write is
 *     there, no refused one is.
 * A short write (SHORT) is not a failure: the writer loops, everything is
 * acknowledged and survives the restart intact.
 *
 * Snapshot path (the snapshot's writes, its fdatasync, the rename, the
 * directory fsync; ENOSPC and EIO; short writes): server.snapshot reports
 * the error, server.stats and /metrics count it, no log segment is
 * removed, no file is left behind, writes and reads go on; after kill -9
 * the restart has every user; a snapshot with the flag gone succeeds (and
 * one made of short writes loads).
 *
 * Each scenario is one server (plus its restarts) running its cases one
 * after the other.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helper_server.h"

#define MAX_USERS 256

struct fx {
	struct tsrv s;
	struct rpcc c; /* authenticated: reads, stats, snapshots */
	char spec[2048];
	const char *const *args;
	char acked[MAX_USERS][40];
	char refused[MAX_USERS][40];
	int nacked, nrefused, seq;
};

static struct fx F;

static void fini(void)
{
	unsetenv("USERDB_FAULT");
	if (F.c.unpacker)
		rpcc_close(&F.c);
	cr_assert_eq(tsrv_cleanup(&F.s), 0, "server exit status");
}

TestSuite(faults, .fini = fini, .timeout = 60);

/* --changes-keep 0: no change-stream window, so a snapshot removes the
 * segments it covers at once, as the file checks below expect. */
static const char *const cheap[] = {
    "--argon2-ops", "1", "--argon2-mem", "8192", "--changes-keep", "0", NULL};
static const char *const always[] = {"--fsync",
				     "always",
				     "--argon2-ops",
				     "1",
				     "--argon2-mem",
				     "8192",
				     "--changes-keep",
				     "0",
				     NULL}; // clang-format: one line per pair

/* ---- setup ---------------------------------------------------------------
 */

static const char *flag(int i)
{
	static char p[8][400];
	snprintf(p[i], sizeof p[i], "%s/flag%d", F.s.dir, i);
	return p[i];
}

static void flag_on(int i)
{
	FILE *f = fopen(flag(i), "w");
	cr_assert_not_null(f);
	fclose(f);
}

static void flag_off(int i)
{
	cr_assert_eq(unlink(flag(i)), 0);
}

static void connect_rpc(void)
{
	cr_assert_eq(rpcc_open(&F.c, F.s.rpc_port), 0);
	cr_assert_eq(rpcc_auth(&F.c), 0);
}

/* A temp dir first (the flags live in it), then the server with rules:
 * each "%s" in fmt is flag(0), flag(1), ... in turn. */
static void fx_start(const char *const *args, const char *fmt, int nflags)
{
	const char *fl[8];
	memset(&F, 0, sizeof F);
	F.c.fd = -1;
	strcpy(F.s.dir, "/tmp/userdb-faults-XXXXXX");
	cr_assert_not_null(mkdtemp(F.s.dir));
	for (int i = 0; i < 8; i++)
		fl[i] = i < nflags ? flag(i) : "";
	snprintf(F.spec, sizeof F.spec, fmt, fl[0], fl[1], fl[2], fl[3], fl[4],
		 fl[5], fl[6], fl[7]);
	F.args = args;
	setenv("USERDB_FAULT", F.spec, 1);
	cr_assert_eq(tsrv_start(&F.s, true, true, args), 0);
	unsetenv("USERDB_FAULT");
	connect_rpc();
}

/* ---- writes and reads ----------------------------------------------------
 */

static const char *next_email(void)
{
	static char e[40];
	snprintf(e, sizeof e, "f%d@x.com", F.seq++);
	return e;
}

static void acked(const char *email)
{
	cr_assert_lt(F.nacked, MAX_USERS);
	snprintf(F.acked[F.nacked++], 40, "%s", email);
}

static void refused(const char *email)
{
	cr_assert_lt(F.nrefused, MAX_USERS);
	snprintf(F.refused[F.nrefused++], 40, "%s", email);
}

static json_t *call(const char *method, const char *params)
{
	json_t *r = rpcc_call(&F.c, method, params);
	cr_assert_not_null(r, "%s: no reply", method);
	return r;
}

static char *create_params(const char *email, char *buf, size_t cap)
{
	snprintf(buf, cap, "[{\"name\":\"F\",\"email\":\"%s\"}]", email);
	return buf;
}

/* user.create over RPC: ok (acknowledged) or unavailable (refused). */
static void rpc_create(bool want_ok)
{
	const char *e = next_email();
	char p[128];
	json_t *r = call("user.create", create_params(e, p, sizeof p));
	if (want_ok) {
		cr_assert_str_eq(rpc_err(r), "", "create %s", e);
		acked(e);
	} else {
		cr_assert_str_eq(rpc_err(r), "unavailable", "create %s", e);
		refused(e);
	}
	json_decref(r);
}

/* POST /v1/users: 201 or 503 unavailable. */
static void http_create(bool want_ok)
{
	const char *e = next_email();
	char body[128], code[64];
	struct hresp r;
	snprintf(body, sizeof body, "{\"name\":\"F\",\"email\":\"%s\"}", e);
	cr_assert_eq(http_do(&F.s, "POST", "/v1/users", body, true, NULL, &r),
		     0);
	if (want_ok) {
		cr_assert_eq(r.status, 201, "%d %s", r.status, r.body);
		acked(e);
	} else {
		cr_assert_eq(r.status, 503, "%d %s", r.status, r.body);
		cr_assert_str_eq(hresp_error_code(&r, code, sizeof code),
				 "unavailable");
		refused(e);
	}
	hresp_free(&r);
}

static json_t *stat_of(const char *name)
{
	json_t *r = call("server.stats", "[]");
	json_t *v = json_incref(json_object_get(rpc_res(r), name));
	json_decref(r);
	cr_assert_not_null(v, "stat %s", name);
	return v;
}

static bool unavailable(void)
{
	json_t *v = stat_of("unavailable");
	bool u = json_is_true(v);
	json_decref(v);
	return u;
}

static long stat_int(const char *name)
{
	json_t *v = stat_of(name);
	long n = (long)json_integer_value(v);
	json_decref(v);
	return n;
}

/* Poll server.stats (a read: answered throughout) until unavailable is
 * `want`, at most ms. */
static void wait_unavailable(bool want, int ms)
{
	for (int t = 0; t < ms; t += 10) {
		if (unavailable() == want)
			return;
		usleep(10000);
	}
	cr_assert_fail("unavailable never became %d", want);
}

/* Reads on both protocols are answered. */
static void reads_answered(void)
{
	char p[80], path[120];
	struct hresp r;
	cr_assert_gt(F.nacked, 0);
	snprintf(p, sizeof p, "[\"%s\"]", F.acked[0]);
	json_t *j = call("user.get_by_email", p);
	cr_assert_str_eq(rpc_err(j), "");
	json_decref(j);
	snprintf(path, sizeof path, "/v1/users?email=%s",
		 F.acked[F.nacked - 1]);
	cr_assert_eq(http_do(&F.s, "GET", path, NULL, true, NULL, &r), 0);
	cr_assert_eq(r.status, 200);
	cr_assert(strstr(r.body, F.acked[F.nacked - 1]), "%s", r.body);
	hresp_free(&r);
}

/* ---- held writes ---------------------------------------------------------
 */

/* A write whose reply must wait: an HTTP create on its own connection, or
 * an RPC create on its own RPC connection. */
struct held {
	bool http;
	int fd;
	struct rpcc rc;
	char email[40];
};

static void held_send(struct held *h, bool http)
{
	char p[128];
	memset(h, 0, sizeof *h);
	h->http = http;
	snprintf(h->email, sizeof h->email, "%s", next_email());
	if (http) {
		char body[128], req[512];
		snprintf(body, sizeof body, "{\"name\":\"H\",\"email\":\"%s\"}",
			 h->email);
		snprintf(
		    req, sizeof req,
		    "POST /v1/users HTTP/1.1\r\nAuthorization: Bearer " TSRV_KEY
		    "\r\nContent-Length: %zu\r\n"
		    "Connection: close\r\n\r\n%s",
		    strlen(body), body);
		h->fd = tcp_connect(F.s.http_port);
		cr_assert_geq(h->fd, 0);
		cr_assert_eq(send_all(h->fd, req, strlen(req)), 0);
	} else {
		cr_assert_eq(rpcc_open(&h->rc, F.s.rpc_port), 0);
		cr_assert_eq(rpcc_auth(&h->rc), 0);
		h->fd = h->rc.fd;
		rpcc_send(&h->rc, "user.create",
			  create_params(h->email, p, sizeof p));
	}
}

/* Nothing arrives on the held connection for ms. */
static void held_silent(struct held *h, int ms)
{
	struct pollfd pfd = {.fd = h->fd, .events = POLLIN};
	cr_assert_eq(poll(&pfd, 1, ms), 0,
		     "the reply of %s left before the log had it", h->email);
}

/* The held reply arrives and reports success: acknowledged. */
static void held_answered(struct held *h)
{
	if (h->http) {
		char buf[4096];
		ssize_t n = read(h->fd, buf, sizeof buf - 1);
		cr_assert_gt(n, 0, "held reply of %s", h->email);
		buf[n] = 0;
		cr_assert(strstr(buf, "HTTP/1.1 201"), "%s", buf);
		close(h->fd);
	} else {
		json_t *r = rpcc_recv(&h->rc);
		cr_assert_not_null(r, "held reply of %s", h->email);
		cr_assert_str_eq(rpc_err(r), "");
		json_decref(r);
		rpcc_close(&h->rc);
	}
	acked(h->email);
}

static void held_drop(struct held *h)
{
	if (h->http)
		close(h->fd);
	else
		rpcc_close(&h->rc);
}

/* ---- files -----------------------------------------------------------------
 */

struct files {
	char log[64][40];
	int nlog, nsnap, ninprogress;
	long log_bytes; /* sum of the log segments' sizes */
};

static void files_list(struct files *fs)
{
	DIR *d = opendir(F.s.data);
	struct dirent *e;
	struct stat st;
	char path[700];
	memset(fs, 0, sizeof *fs);
	cr_assert_not_null(d);
	while ((e = readdir(d))) {
		if (strstr(e->d_name, ".inprogress"))
			fs->ninprogress++;
		else if (!strncmp(e->d_name, "snap-", 5))
			fs->nsnap++;
		else if (!strncmp(e->d_name, "log-", 4) && fs->nlog < 64) {
			snprintf(fs->log[fs->nlog++], 40, "%.39s", e->d_name);
			snprintf(path, sizeof path, "%s/%s", F.s.data,
				 e->d_name);
			cr_assert_eq(stat(path, &st), 0);
			fs->log_bytes += (long)st.st_size;
		}
	}
	closedir(d);
}

static bool has_log(const struct files *fs, const char *name)
{
	for (int i = 0; i < fs->nlog; i++)
		if (!strcmp(fs->log[i], name))
			return true;
	return false;
}

/* ---- crash and restart ---------------------------------------------------
 */

/* kill -9 (faults possibly still on), remove every flag, restart with the
 * same rules, and check: every acknowledged write is there, no refused
 * one is. */
static void crash_restart(void)
{
	char p[80];
	kill(F.s.pid, SIGKILL);
	waitpid(F.s.pid, NULL, 0);
	F.s.pid = 0;
	rpcc_close(&F.c);
	for (int i = 0; i < 8; i++)
		unlink(flag(i));
	setenv("USERDB_FAULT", F.spec, 1);
	cr_assert_eq(tsrv_start(&F.s, true, true, F.args), 0,
		     "restart after kill -9");
	unsetenv("USERDB_FAULT");
	connect_rpc();
	for (int i = 0; i < F.nacked; i++) {
		snprintf(p, sizeof p, "[\"%s\"]", F.acked[i]);
		json_t *r = call("user.get_by_email", p);
		cr_assert_str_eq(rpc_err(r), "",
				 "acknowledged %s lost after kill -9",
				 F.acked[i]);
		json_decref(r);
	}
	for (int i = 0; i < F.nrefused; i++) {
		snprintf(p, sizeof p, "[\"%s\"]", F.refused[i]);
		json_t *r = call("user.get_by_email", p);
		cr_assert_str_eq(rpc_err(r), "not_found",
				 "refused %s was stored", F.refused[i]);
		json_decref(r);
	}
}

/* ---- log faults ------------------------------------------------------------
 */

enum cut { CUT_BACK, CUT_FAILS, CUT_ANY };

/* Flag i makes log writes (or syncs) fail.  held: the write that meets
 * the fault has its reply held (else it is acknowledged and the fault comes
 * from the background fsync).  cut: whether the failed bytes must be gone
 * from the segment while the fault lasts. */
static void log_fault_case(int i, bool held, bool http, enum cut cut)
{
	struct held h;
	struct files fs;
	http_create(true);
	flag_on(i);
	if (held) {
		held_send(&h, http);
		wait_unavailable(true, 3000);
		held_silent(&h, 150);
	} else {
		rpc_create(true); /* written: acknowledged, fsync pending */
		wait_unavailable(true, 3000);
	}
	rpc_create(false);
	http_create(false);
	reads_answered();
	json_t *r = call("server.snapshot", "[]");
	cr_assert_str_neq(rpc_err(r), "", "a snapshot cannot rotate the log");
	json_decref(r);
	files_list(&fs);
	if (cut == CUT_BACK)
		cr_assert_eq(fs.log_bytes, stat_int("log_bytes"),
			     "the failed write was not cut back");
	else if (cut == CUT_FAILS)
		cr_assert_gt(fs.log_bytes, stat_int("log_bytes"),
			     "ftruncate did not fail");
	cr_assert_geq(tsrv_metric(&F.s, "userdb_unavailable"), 1);
	flag_off(i);
	if (held)
		held_answered(&h);
	wait_unavailable(false, 2000);
	rpc_create(true);
	http_create(true);
	reads_answered();
}

/* kill -9 while flag i makes the log fail, with a write held. */
static void log_fault_crash(int i, bool held)
{
	struct held h;
	http_create(true);
	flag_on(i);
	if (held)
		held_send(&h, true);
	else
		rpc_create(true);
	wait_unavailable(true, 3000);
	rpc_create(false);
	crash_restart();
	if (held)
		held_drop(&h);
	rpc_create(true);
	http_create(true);
}

Test(faults, log_write_enospc_eio_short_partial_and_failed_truncate)
{
	double t0 = mono_ms();
	fx_start(
	    cheap,
	    "write:ENOSPC:file=%s,write:EIO:file=%s,write:SHORT:file=%s,"
	    "write:PARTIAL:file=%s,write:PARTIAL:file=%s,trunc:EIO:file=%s,"
	    "write:PARTIAL:file=%s,trunc:ENOSPC:file=%s",
	    8);
	/* Flags: 0 ENOSPC, 1 EIO, 2 SHORT, 3 PARTIAL; 4 PARTIAL with 5 (the
	 * ftruncate after it fails with EIO); 6 PARTIAL with 7 (ftruncate
	 * ENOSPC). */
	log_fault_case(0, true, true, CUT_BACK);
	log_fault_case(1, true, false, CUT_BACK);
	/* Short writes: looped over, nothing refused. */
	flag_on(2);
	for (int k = 0; k < 5; k++) {
		rpc_create(true);
		http_create(true);
	}
	cr_assert_not(unavailable());
	flag_off(2);
	log_fault_case(3, true, true, CUT_BACK);
	flag_on(5); /* its ftruncate fails too */
	log_fault_case(4, true, false, CUT_FAILS);
	flag_off(5);
	flag_on(7);
	log_fault_case(6, true, true, CUT_FAILS);
	/* kill -9 with the torn half of a write on disk and the truncate
	 * failing; the restart cuts it off. */
	log_fault_crash(6, true);
	/* The short-written records read back intact: their users are
	 * among the acknowledged ones crash_restart found. */
	cr_log_info("log write matrix: %.0f ms", mono_ms() - t0);
}

Test(faults, log_fdatasync_with_fsync_always)
{
	double t0 = mono_ms();
	fx_start(always, "fsync:ENOSPC:file=%s,fsync:EIO:file=%s", 2);
	log_fault_case(0, true, true, CUT_BACK);
	log_fault_case(1, true, false, CUT_BACK);
	log_fault_crash(1, true);
	cr_log_info("fsync always: %.0f ms", mono_ms() - t0);
}

#define SLOW_MS 1000 /* FAULT_SLOW_MS (persistence/fault.h) */

/* A read answered within ms (a get_by_email on the RPC connection and a
 * GET on a fresh HTTP one). */
static void reads_answered_within(double ms)
{
	double t0 = mono_ms();
	reads_answered();
	cr_assert_lt(mono_ms() - t0, ms,
		     "reads waited %.0f ms behind a slow fdatasync",
		     mono_ms() - t0);
}

/* --fsync always on a slow disk (every fdatasync FAULT_SLOW_MS long while
 * flag 0 exists): the syncer holds the write replies (RPC and HTTP) and the
 * change stream until their fdatasync returned, while reads on other
 * connections are answered at once; kill -9 then loses no acknowledged
 * write. */
Test(faults, slow_fdatasync_holds_writes_not_reads)
{
	struct held h[2];
	struct rpcc w;
	fx_start(always, "fsync:SLOW:file=%s", 1);
	http_create(true);
	cr_assert_eq(rpcc_open(&w, F.s.rpc_port), 0);
	cr_assert_eq(rpcc_auth(&w), 0);
	json_t *r = rpcc_call(&w, "changes.watch", "[null]");
	cr_assert_str_eq(rpc_err(r), "");
	json_decref(r);
	flag_on(0);
	held_send(&h[0], false);
	held_send(&h[1], true);
	reads_answered_within(SLOW_MS / 2);
	held_silent(&h[0], 100);
	held_silent(&h[1], 1);
	struct pollfd pfd = {.fd = w.fd, .events = POLLIN};
	cr_assert_eq(poll(&pfd, 1, 0), 0, "a change left before its fsync");
	reads_answered_within(SLOW_MS / 2);
	held_answered(&h[0]);
	held_answered(&h[1]);
	/* Both creates are on the watcher's connection now, in order. */
	for (int i = 0; i < 2; i++) {
		json_t *n = rpcc_recv(&w);
		cr_assert_not_null(n, "change %d never arrived", i);
		cr_assert_str_eq(json_string_value(json_array_get(n, 1)),
				 "change");
		json_decref(n);
	}
	rpcc_close(&w);
	rpc_create(true); /* acknowledged once synced, a second later */
	held_send(&h[0], false);
	held_silent(&h[0], 100);
	crash_restart(); /* h[0] may or may not be there */
	held_drop(&h[0]);
	rpc_create(true);
	http_create(true);
}

Test(faults, log_fdatasync_with_fsync_everysec)
{
	double t0 = mono_ms();
	fx_start(cheap, "fsync:ENOSPC:file=%s,fsync:EIO:file=%s", 2);
	log_fault_case(0, false, false, CUT_ANY);
	log_fault_case(1, false, false, CUT_ANY);
	log_fault_crash(0, false);
	cr_log_info("fsync everysec: %.0f ms", mono_ms() - t0);
}

/* ---- snapshot faults -------------------------------------------------------
 */

/* Flag i makes one step of the snapshot fail with message part `why`. */
static void snap_fault_case(int i, const char *why)
{
	struct files before, after;
	long fails = stat_int("snapshot_failures");
	long done = stat_int("snapshots");
	rpc_create(true);
	http_create(true);
	files_list(&before);
	flag_on(i);
	json_t *r = call("server.snapshot", "[]");
	cr_assert_str_eq(rpc_err(r), "unavailable", "snapshot under flag %d",
			 i);
	const char *msg =
	    json_string_value(json_object_get(json_array_get(r, 2), "message"));
	cr_assert(msg && strstr(msg, why), "flag %d: %s", i, msg);
	json_decref(r);
	cr_assert_eq(stat_int("snapshot_failures"), fails + 1);
	cr_assert_eq(stat_int("snapshots"), done);
	cr_assert_eq(tsrv_metric(&F.s, "userdb_snapshot_failures_total"),
		     fails + 1);
	files_list(&after);
	for (int k = 0; k < before.nlog; k++)
		cr_assert(has_log(&after, before.log[k]),
			  "flag %d: %s removed by a failed snapshot", i,
			  before.log[k]);
	cr_assert_eq(after.nsnap, before.nsnap, "flag %d: snapshot left", i);
	cr_assert_eq(after.ninprogress, 0, "flag %d: .inprogress left", i);
	/* Service goes on. */
	cr_assert_not(unavailable());
	rpc_create(true);
	http_create(true);
	reads_answered();
	flag_off(i);
}

static void snapshot_ok(void)
{
	struct files fs;
	long done = stat_int("snapshots");
	json_t *r = call("server.snapshot", "[]");
	cr_assert_str_eq(rpc_err(r), "", "snapshot with no fault");
	cr_assert(json_is_true(rpc_res(r)));
	json_decref(r);
	cr_assert_eq(stat_int("snapshots"), done + 1);
	files_list(&fs);
	cr_assert_eq(fs.nsnap, 1);
	cr_assert_eq(fs.nlog, 1, "the covered segments are gone");
}

Test(faults, snapshot_write_sync_rename_dirsync)
{
	static const char *const nospace = "No space left",
				 *const eio = "Input/output error";
	double t0 = mono_ms();
	fx_start(cheap,
		 "snap:EIO:file=%s,snapwrite:ENOSPC:file=%s,"
		 "snapwrite:EIO:file=%s,snapsync:ENOSPC:file=%s,"
		 "snapsync:EIO:file=%s,snaprename:ENOSPC:file=%s,"
		 "snaprename:EIO:file=%s,snapdirsync:EIO:file=%s",
		 8);
	snap_fault_case(0, eio);
	snap_fault_case(1, nospace);
	snap_fault_case(2, eio);
	snap_fault_case(3, nospace);
	snap_fault_case(4, eio);
	snap_fault_case(5, nospace);
	snap_fault_case(6, eio);
	snap_fault_case(7, eio);
	/* No failed snapshot took a log segment: all there after kill -9. */
	crash_restart();
	rpc_create(true);
	snapshot_ok();
	rpc_create(true);
	crash_restart();
	cr_log_info("snapshot matrix: %.0f ms", mono_ms() - t0);
}

Test(faults, snapshot_dirsync_enospc_and_short_writes)
{
	double t0 = mono_ms();
	fx_start(cheap, "snapdirsync:ENOSPC:file=%s,snapwrite:SHORT:file=%s",
		 2);
	snap_fault_case(0, "No space left");
	crash_restart();
	/* A snapshot written in short pieces is whole: the restart loads it
	 * (its covered segments are gone) and finds every user. */
	for (int k = 0; k < 20; k++)
		rpc_create(true);
	flag_on(1);
	snapshot_ok();
	flag_off(1);
	crash_restart();
	struct files fs;
	files_list(&fs);
	cr_assert_eq(fs.nsnap, 1);
	cr_log_info("snapshot dirsync/short: %.0f ms", mono_ms() - t0);
}
