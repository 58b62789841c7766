/*
 * chwin.h -- the change stream's window: every change a watcher may still
 * ask for, kept in a form that costs little memory (SPEC §8).
 *
 * What is kept.  A change is numbered twice: its seq (the event id, given
 * by the engine or by PostgreSQL mode's commit order, only increasing) and
 * its ordinal (1, 2, ... in the order noted since start, counting those
 * rebuilt from the log).  Resuming after seq S is allowed iff S >= base
 * (nothing after base was lost) and at most `keep` changes follow S:
 * ord(S) + keep >= total, where ord(S) is the ordinal of the last change
 * with seq <= S (0 for S = base).
 *
 * Two forms, chosen at start:
 *
 *   Log-backed (a store with a log).  The log already holds every change
 *   (persistence/retain.h keeps its segments for the last `keep` records),
 *   so memory holds only an index: a mark {seq, ord, log position just
 *   past its record} every CHWIN_MARK_EVERY changes (about 40 bytes per
 *   CHWIN_MARK_EVERY changes).  Older changes are read back with
 *   retain_read() from the mark at or before a cursor and encoded then.
 *   While someone watches, new changes are also encoded once as they are
 *   noted, into blocks (below) that form an in-memory tail of at most
 *   CHWIN_TAIL_BLOCKS blocks past what was delivered; with no watcher
 *   nothing is encoded and the tail is dropped, so the write path costs
 *   one position read per change and a mark now and then.
 *
 *   In memory (--no-persist, PostgreSQL mode).  Every change is encoded
 *   into blocks; a full block is compressed with zstd (level
 *   CHWIN_ZSTD_LEVEL) and its raw bytes freed; the oldest blocks go once
 *   every change in them is older than the last `keep`.  Memory:
 *   compressed bytes, reported by chwin_bytes().
 *
 * Blocks.  One malloc of CHWIN_BLOCK_BYTES (above malloc's mmap threshold,
 * so it never interleaves with users on the heap) holding entries back to
 * back: a 16-byte header {seq u64, len u32, uid_off u16, uid_len u8,
 * event u8} (host order, unaligned) and the change's msgpack map
 * {"seq","event","user_id","at","actor","user"} of len bytes, its user_id
 * at uid_off.  A change larger than a block gets a block of its own.
 *
 * Published.  Noted changes are readable only once published: a reader
 * stops there.  A change noted with log seq L (ud_log_seq() right after
 * the engine journaled it) is published by chwin_publish(w, durable) once
 * durable >= L (ud_durable_seq(): with --fsync always, once the log's
 * syncer fdatasynced it), so changes leave only as durable as replies.
 * The changes waiting for that sit in a small queue reused from call to
 * call (about one loop iteration's writes).
 *
 * Threads: the loop thread only.
 */
#ifndef UD_NET_CHWIN_H
#define UD_NET_CHWIN_H

#include <stdbool.h>
#include <stdint.h>

#include "journal.h"
#include "retain.h"
#include "userdb.h"

#define CHWIN_BLOCK_BYTES (256u << 10)
#define CHWIN_MARK_EVERY  256
#define CHWIN_TAIL_BLOCKS 8
#define CHWIN_ZSTD_LEVEL  1

struct chwin;

/* One change as read from the window: borrowed until the next chwin call. */
struct chwin_ent {
	uint64_t seq;
	const char *mp; /* the msgpack map */
	uint32_t len;
	const char *uid;
	uint8_t uid_len;
	uint8_t event;
};

/* Where a reader is: after change seq (ordinal ord); pos is a log
 * position at or before that change's record (log-backed form), blk and
 * off a hint into the tail. */
struct chwin_cur {
	uint64_t seq, ord;
	struct retain_pos pos;
	uint64_t blk; /* first seq of the block off is valid in, 0: none */
	size_t off;
};

/* A window over db's changes; log-backed when db has a log.  Rebuilds the
 * index from the log (a warning on stderr when it cannot: resumes then
 * start from now).  NULL on out of memory. */
struct chwin *chwin_new(ud_db *db, uint64_t keep);
void chwin_free(struct chwin *w);

/* Take change c (borrowed), whose log record has log seq log_seq (0
 * without a log).  `watched`: someone may read it soon (the log-backed
 * form encodes it now only then). */
void chwin_note(struct chwin *w, const struct ud_change *c, uint64_t log_seq,
		bool watched);
/* Nothing after this seq may be resumed (a change could not be kept). */
void chwin_lose(struct chwin *w, uint64_t seq);
/* Nothing is known up to seq, and a resume from seq is served (nothing
 * noted yet: PostgreSQL mode's stream starts after seq). */
void chwin_rebase(struct chwin *w, uint64_t seq);
/* The changes noted whose log seq <= durable may be read. */
void chwin_publish(struct chwin *w, uint64_t durable);
/* True while noted changes wait for chwin_publish(). */
bool chwin_pending(const struct chwin *w);
/* Drop tail blocks wholly at or before seq `done` (delivered to every
 * live watcher) beyond what the form keeps. */
void chwin_trim(struct chwin *w, uint64_t done);

uint64_t chwin_published(const struct chwin *w); /* its seq (or base) */
/* Average bytes of an encoded change (an estimate for lag). */
uint64_t chwin_avg_bytes(const struct chwin *w);
/* Memory held by blocks and marks. */
uint64_t chwin_bytes(const struct chwin *w);

/* Put *cur just after seq since.  0, UD_EGONE when since is before what
 * is kept, UD_EINVAL when it is after the last published change, or
 * UD_EIO / UD_ENOMEM (err filled). */
int chwin_seek(struct chwin *w, uint64_t since, struct chwin_cur *cur,
	       struct ud_error *err);
/* *cur at the last published change. */
void chwin_seek_end(struct chwin *w, struct chwin_cur *cur);

/* Called for each change read. */
typedef int (*chwin_fn)(void *ctx, const struct chwin_ent *e);

/* Read the changes after *cur up to seq `upto` (published ones only),
 * calling fn with each, until about `max` bytes of maps went by or fn
 * returns non-zero (that change counts as read).  0, UD_EGONE when the
 * window no longer holds the next change, or fn's / a read's code. */
int chwin_read(struct chwin *w, struct chwin_cur *cur, uint64_t upto,
	       size_t max, chwin_fn fn, void *ctx);

#endif
