/*
 * bulk.h -- bulk export and import of users over HTTP (SPEC §9).
 *
 * Export (GET /v1/users/export).  One point in time, streamed without
 * stalling the loop: the loop forks a child, which sees the store frozen at
 * the fork through copy-on-write pages (as the snapshot writer does,
 * persistence/snapshot.h), walks it in creation order and writes NDJSON,
 * already framed as HTTP/1.1 chunks.  Two ways out:
 *
 *   direct (a plaintext connection with nothing queued before the export,
 *     the usual case): the child writes the response head and body to the
 *     client's socket itself, waiting for room with poll(2) (a reader that
 *     stalls longer than --write-timeout ends it).  The loop moves no byte;
 *     it only waits for the child's end, which it sees as EOF on a pipe
 *     the child holds open and never writes.
 *   relay (TLS, whose state lives in the loop's OpenSSL, or replies still
 *     queued): the child writes the body into the pipe; the loop reads it
 *     straight into the connection's reply buffer (evbuffer_read, no
 *     parsing) while the client keeps up, and stops reading it while the
 *     connection holds more than CONN_HIGH_WATER unsent bytes (a slow
 *     client slows only its child, which blocks on the full pipe).
 *
 * The child runs SCHED_IDLE (else nice 19): it gets only CPU time nobody
 * else wants, so on a busy machine an export slows down rather than take a
 * core from the loop.  Measured (bench/bulk.sh, 300k users, shared 2-core
 * VM): get_by_id P=16 during back-to-back exports 0.47-0.56x of alone with
 * the relay at normal priority, 0.76-0.85x with SCHED_IDLE, 0.83-0.91x
 * direct; what is left is the fork (page tables of the whole store) and the
 * exporting client's own CPU on the same two cores.
 *
 * The last chunk (size 0) is written by the child only once every user is
 * out: a child that dies early leaves the response without it, and the
 * loop then closes the connection, so a client can always tell a cut
 * export from a whole one.  The child holds only the pipe and, direct, the
 * client's socket (every other inherited fd is closed at once: a client
 * socket it kept open would not see its close) and dies with the server
 * (PR_SET_PDEATHSIG).  Why fork rather than a chunked walk of the live
 * store: a walk would need a copy-on-write view of every record the loop
 * changes meanwhile (the engine swaps records in place), while fork gives
 * that view from the kernel for the price of the page tables.
 *
 * Line format: the user's JSON as the API writes it, plus "password_hash"
 * (the encoded Argon2 string or null), one per line.
 *
 * Import (POST /v1/users/import).  The body is never held whole, and the
 * loop does only what needs the store.  http.c feeds each piece the parser
 * delivers to bulk_import_feed(), which cuts lines (numbered from 1, blank
 * ones counted and skipped) and copies them into a batch; a full batch
 * goes to the worker pool (pool.h), where each line is parsed and checked
 * (import_line.h: JSON, fields, times, identities) and a plain `password`
 * is hashed with Argon2id; the parsed batch comes back to the loop, which
 * applies its lines in order through ud_user_import() (import.h): one
 * journaled create per line, so a crash leaves a prefix of the lines
 * applied.  Batches may come back out of order (two workers); they wait
 * for their turn, so lines always apply in file order.
 *
 *   cut (loop) -> parse + hash (worker) -> apply in order (loop)
 *
 * Flow: at most IMPORT_INFLIGHT batches of one import are in the pool;
 * bulk_import_feed() then returns false and the caller stops reading until
 * wake(BULK_IMPORT_MORE).  Batches start at 16 lines and double up to 512
 * (or 256 KiB of text) while no line carries a plain password; after a
 * batch that hashed, batches are one line each, so that an import of
 * plain passwords holds a worker for one hash at a time and other
 * clients' password work queues between its lines.  Why a pool and not
 * the loop: parsing was 60-70% of an import's CPU (jansson), and Argon2 is
 * tens of milliseconds a line; on the loop both stalled every client.
 *
 * Measured (1M users with Argon2id hashes, the export of bench/bulk.sh,
 * --fsync everysec, shared 2-core VM with load average 6-9 from other
 * builds): before, all on the loop, 12.6 us of loop CPU per line, half of
 * it jansson's parse, the fields validated twice and the id and email
 * looked up twice; 21-55k users/s.  After: loop thread 3.0 us per line
 * (3.03 s), workers 7.0 us per line (3.56 + 3.48 s), 10.1 s CPU in all;
 * wall 17.1-17.7 s = 57-58k users/s because the server got about half of
 * the two busy cores.  On two idle cores the CPU bounds a 1M import near
 * 5 s (~200k users/s, the workers' parse being the limit); that was not
 * measured here, and the 150k/s goal is so far only a projection.
 *
 * A line over BULK_LINE_MAX bytes is discarded as it arrives and fails;
 * every failure is counted, the first BULK_ERRORS_MAX are reported with
 * their line numbers.  on_conflict (a line whose id or email belongs to a
 * user): fail (409 for that line), skip, or update (what the line gives,
 * times and identities included, is set on that user in one change by
 * ud_user_import_update(), import.h; a line whose id and email belong to
 * two different users fails with 409 duplicate_email).  A line's created_at may
 * not be before the newest user's (import.h: users are kept in creation order,
 * and the order index is an append-only array, order.h, so a line placed
 * earlier would cost a move of every later slot).
 *
 * An import freed while batches are in the pool (the client went away)
 * still applies them, in order, and the last one frees it: every line
 * received and cut into a submitted batch is applied, as if the client
 * had stopped sending after it.
 *
 * Threads: the loop thread, except the export writer (its child) and an
 * import's batch parsing (the pool's workers, touching only the batch).
 */
#ifndef UD_NET_BULK_H
#define UD_NET_BULK_H

#include <stdbool.h>
#include <stddef.h>

#include "server.h"

#define BULK_LINE_MAX	(1u << 20) /* bytes of one import line */
#define BULK_ERRORS_MAX 100

/* Called once when an export ends: ok when the whole response was queued
 * (the connection may take its next request), false when it was cut (the
 * connection is being closed).  Not called if the connection closed. */
typedef void (*bulk_export_done_fn)(struct conn *c, bool ok);

/* Start exporting to c: parse the query (role, status; anything else is
 * UD_EINVAL), fork the writer and queue the response head.  Returns 0 (the
 * rest is asynchronous; done follows) or a ud_code with err set, nothing
 * queued. */
int bulk_export_start(struct conn *c, const char *query, size_t query_len,
		      bool keep_alive, bulk_export_done_fn done,
		      struct ud_error *err);

struct bulk_import;

enum { BULK_IMPORT_MORE, BULK_IMPORT_DONE };
/* An import that said wait can go on: MORE, feed again; DONE, every line
 * is applied (after bulk_import_end returned 1): call bulk_import_finish.
 * The callback may free the import. */
typedef void (*bulk_import_wake_fn)(void *ctx, int what);

/* A new import into srv's store with the raw query string (on_conflict);
 * wake(ctx, ...) as above.  NULL when out of memory.  A bad query is
 * reported by bulk_import_finish (lines fed meanwhile are discarded
 * unread). */
struct bulk_import *bulk_import_new(struct server *srv, const char *query,
				    size_t query_len, bulk_import_wake_fn wake,
				    void *ctx);
/* Feed the next n bytes of the body, sent by the key named actor (the
 * actor of the lines cut now).  Returns true when it takes more now, false
 * when the caller should feed nothing more until wake(MORE). */
bool bulk_import_feed(struct bulk_import *im, const char *actor,
		      size_t actor_len, const char *p, size_t n);
/* The body is complete: cut a last unterminated line and send what is
 * left to the pool.  0: every line is applied; 1: lines are in flight,
 * wake(DONE) follows. */
int bulk_import_end(struct bulk_import *im);
/* Write the result object ({"created",...,"errors":[...]}) to out.  Returns
 * 0, or a ud_code with err set (bad query, out of memory). */
int bulk_import_finish(struct bulk_import *im, struct ud_buf *out,
		       struct ud_error *err);
/* Free it; with batches in flight they still apply and then free it, and
 * wake is not called again. */
void bulk_import_free(struct bulk_import *im);

#endif
