/*
 * changes.h -- the change stream (SPEC §8): watchers over SSE and RPC, the
 * window of resumable changes, and sharing one encoding among watchers.
 *
 * Source.  The engine tells us of every applied change (journal.h,
 * ud_db_set_changes); its seq is the event id.  Another source (PostgreSQL
 * mode) may hand changes in with changes_note().  Each goes into the
 * window (chwin.h), which encodes it -- once, as the msgpack map
 * {"seq","event","user_id","at","actor","user"}, actor being the event's
 * details.actor or nil -- only when it must keep it in memory or someone
 * watches, with the log seq of its record (ud_log_seq() right after the
 * engine journaled it).  Nothing reaches a watcher until
 * changes_publish(ch, durable) with durable >= that log seq: the server
 * passes ud_durable_seq() after each flush, so changes leave only once
 * they are as durable as replies (server.h; with --fsync always, once
 * fdatasynced by the log's syncer).
 *
 * Window.  chwin.h keeps what may be resumed: a resume from since misses
 * nothing while since is among the last `--changes-keep` changes, else
 * UD_EGONE (410 `gone`).  With a data dir the changes are read back from
 * the log segments that persistence keeps (persistence/retain.h), so a
 * resume works across a restart or a kill -9 (a watcher was only ever
 * sent changes already in the log file), and memory holds only an index
 * and, while someone watches, a short tail of encoded changes.  Without
 * one they are kept zstd-compressed in blocks.  Measured (VmRSS growth per
 * user of `userdb-bench --op load --users 300000 --pipeline 16`, busy
 * shared 2-core VM): before the change stream 260 B/user (no hashes) /
 * 380 (hashes); with the earlier window of one malloc'd map per change
 * 511 / 581 with a data dir and 734 / 580 with --no-persist; now 269 /
 * 328 with a data dir and 303 / 361 with --no-persist
 * (bench/changes_mem.py).
 *
 * Sharing and batching.  Published changes are delivered to watchers at
 * most once per CHANGES_BATCH_US, and after a pause of at least four
 * times the last delivery's own CPU time (at most CHANGES_PAUSE_MAX_US):
 * at once when that time has passed, else from a timer.  So delivering
 * takes at most about a fifth of the loop thread however many watchers
 * there are; under load a delivery carries more changes instead.  The
 * changes since the last delivery are framed once per protocol (SSE
 * events "id: SEQ\nevent: NAME\ndata: JSON\n\n", RPC notifications
 * [2, "change", [map]]) into one reference-counted chunk that is added to
 * each live watcher's output with evbuffer_add_reference (or written to
 * its socket at once when nothing is queued before it).  200 watchers
 * cost 200 pointer appends or writes per delivery, not per change, and no
 * encoding each; a watcher with a user_id filter gets its own copies of
 * what matches.
 *
 * Watchers.  A watcher is live when it has been sent everything delivered
 * so far and its output holds less than the pump limit
 * (CHANGES_PUMP_BYTES, at most a quarter of --max-output); only live
 * watchers get the shared chunks.  Others are behind: changes_pump()
 * (after every loop iteration) frames the next changes of the window
 * (read back from the log or the blocks) into a behind watcher's output
 * while that output is under the pump limit, so a burst of writes or a
 * catch-up of a million changes is paced by the socket.
 * What a watcher owes is its output plus the changes after its cursor
 * (their count times the window's average encoded size); past
 * --max-output it is closed (and counted as dropped), as is one so far
 * behind that the window dropped its next change (it reconnects and gets
 * 410).  Nothing a watcher does blocks writers or other watchers.  A
 * connection's watcher waits while the connection has held replies, so the
 * reply to changes.watch (and the SSE headers) leave first.  SSE watchers get a
 * comment line every CHANGES_HEARTBEAT_S seconds.
 *
 * Threads: the loop thread only.
 */
#ifndef UD_NET_CHANGES_H
#define UD_NET_CHANGES_H

#include <stdbool.h>
#include <stdint.h>

#include "userdb.h"

#define CHANGES_PUMP_BYTES   (256u << 10)
#define CHANGES_BATCH_US     1000  /* deliveries at most this often */
#define CHANGES_PAUSE_MAX_US 20000 /* the longest pause between deliveries */
#define CHANGES_HEARTBEAT_S  10

struct server;
struct conn;
struct ud_change;
struct changes;

enum changes_proto { CHANGES_SSE, CHANGES_RPC };

/* Hook the stream into srv's store and rebuild the window from the log
 * (with a data dir).  NULL and a message on stderr on failure. */
struct changes *changes_new(struct server *srv);
void changes_free(struct changes *ch);

/* Send the pending changes whose log records are durable, log seq <=
 * durable (ud_durable_seq()), to the watchers; the others stay pending. */
void changes_publish(struct changes *ch, uint64_t durable);
/* True while changes wait for changes_publish(). */
bool changes_pending(const struct changes *ch);
/* Feed behind watchers, drop closed ones (after each loop iteration). */
void changes_pump(struct changes *ch);

/* Make c a watcher (replacing its earlier watch) from `since` (has_since
 * false: from now), only of user_id when uid_len > 0 (borrowed, copied).
 * *last gets the seq of the last change so far.  0, UD_EGONE when since
 * is older than the window, UD_EINVAL when since is after the last
 * change, UD_ENOMEM; err filled. */
int changes_watch(struct changes *ch, struct conn *c, enum changes_proto p,
		  bool has_since, uint64_t since, const char *uid,
		  size_t uid_len, uint64_t *last, struct ud_error *err);
/* c stops being a watcher (no-op when it is not one). */
void changes_unwatch(struct changes *ch, struct conn *c);

/* Take change c (borrowed) from a source other than the store's listener
 * (PostgreSQL mode's replication stream: c->seq given, only increasing).
 * It leaves with the next changes_publish(). */
void changes_note(struct changes *ch, const struct ud_change *c);
/* Such a source takes over: the store's own changes no longer come in,
 * nothing up to seq is known and a resume from seq on is served. */
void changes_take_over(struct changes *ch, uint64_t seq);

/* For stats and tests: watchers, the last published seq, the memory the
 * window holds (chwin.h). */
size_t changes_watchers(const struct changes *ch);
uint64_t changes_last_seq(const struct changes *ch);
uint64_t changes_window_bytes(const struct changes *ch);

#endif
