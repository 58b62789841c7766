/*
 * bulk.h -- bulk export and import of users over HTTP (SPEC §9).
 *
 * Export (GET /v1/users/export).  One point in time, streamed without
 * stalling the loop: the loop forks a child, which sees the store frozen at
 * the fork through copy-on-write pages (as the snapshot writer does,
 * persistence/snapshot.h), walks it in creation order and writes NDJSON,
 * already framed as HTTP/1.1 chunks, into a pipe.  The loop only moves
 * bytes: it reads the pipe straight into the connection's reply buffer
 * (evbuffer_read, no parsing) while the client keeps up, and stops reading
 * it while the connection holds more than CONN_HIGH_WATER unsent bytes (so
 * a slow client slows only its child, which blocks on the full pipe).  The
 * last chunk (size 0) is written by the child only once every user is out:
 * a child that dies early leaves the response without it, and the loop then
 * closes the connection, so a client can always tell a cut export from a
 * whole one.  The child holds only the pipe (every other inherited fd is
 * closed at once: a client socket it kept open would not see its close)
 * and dies with the server (PR_SET_PDEATHSIG).  Why fork rather than a
 * chunked walk of the live store: a walk would need a copy-on-write view
 * of every record the loop changes meanwhile (the engine swaps records in
 * place), while fork gives that view from the kernel for the price of the
 * page tables (measured: bench/bulk.sh).
 *
 * Line format: the user's JSON as the API writes it, plus "password_hash"
 * (the encoded Argon2 string or null), one per line.
 *
 * Import (POST /v1/users/import).  The body is never held whole: http.c
 * feeds each piece the parser delivers to bulk_import_feed(), which cuts
 * lines and applies each complete one at once, in order, through
 * ud_user_import() (import.h): one journaled create per line, so a crash
 * leaves a prefix of the lines applied.  The work per call is bounded by
 * what one socket read delivered (CONN_READ_MAX), so other clients are
 * served between reads.  A line over BULK_LINE_MAX bytes is discarded as
 * it arrives and fails; every failure is counted, the first BULK_ERRORS_MAX
 * are reported with their line numbers (from 1).  Password hashes are only
 * parsed and checked (libsodium reads the encoded string), never computed;
 * a plain `password` on a line is refused.  on_conflict (a line whose id or
 * email belongs to a user): fail (409 for that line), skip, or update (the
 * line's name, email, role, status, avatar, custom_data and password_hash
 * are set on that user; a line whose id and email belong to two different
 * users fails with 409 duplicate_email).
 *
 * Threads: everything on the loop thread (the export writer in its child).
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

/* A new import into srv's store with the raw query string (on_conflict);
 * NULL when out of memory.  A bad query is reported by bulk_import_finish
 * (lines fed meanwhile are discarded unread). */
struct bulk_import *bulk_import_new(struct server *srv, const char *query,
				    size_t query_len);
/* Feed the next n bytes of the body; complete lines are applied now. */
void bulk_import_feed(struct bulk_import *im, const char *p, size_t n);
/* The body is complete: apply a last unterminated line, then write the
 * result object ({"created",...,"errors":[...]}) to out.  Returns 0, or a
 * ud_code with err set (bad query, out of memory). */
int bulk_import_finish(struct bulk_import *im, struct ud_buf *out,
		       struct ud_error *err);
void bulk_import_free(struct bulk_import *im);

#endif
