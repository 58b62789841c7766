/*
 * recover.h -- crash recovery: pick the snapshot, replay the log after it.
 *
 * The recovery rule (SPEC §5):
 *
 *   1. Snapshots are tried newest first; the first one whose every record
 *      and end marker check out is the base (seq B = what it covers).  A
 *      damaged newer snapshot is reported as a warning.  No valid snapshot:
 *      B = 0 (the log must then start at seq 1).
 *   2. Log records are replayed from seq B+1 on, across segments, and must
 *      be numbered B+1, B+2, ... without a gap; records <= B (segments a
 *      snapshot covers that were not yet deleted) are checked and skipped.
 *   3. A damaged record in the LAST segment after which no intact record
 *      starts anywhere in that file is a torn tail: the remains of a write
 *      cut short by a crash.  It is reported as a warning and everything
 *      from its offset on is dropped (oplog_open() truncates the file).
 *      The same holds for a last segment whose header is torn.
 *   4. Any other damage -- a bad record with an intact one after it, a bad
 *      record in an earlier segment, a sequence gap, a record the engine
 *      cannot apply -- stops recovery with UD_ECORRUPT and a message naming
 *      the file and the byte offset.  Nothing is silently dropped.
 *
 * The snapshot chosen by rule 1 is checked once and applied from the same
 * mapping (snap_open, snap_apply); recover_run_staged() applies it on two
 * threads (snapshot.h) with the same result.
 *
 * Nothing here writes to the data directory.
 */
#ifndef UD_RECOVER_H
#define UD_RECOVER_H

#include <stdbool.h>
#include <stdint.h>

#include "oplog.h"
#include "snapshot.h"
#include "userdb.h"

/* What a scan of one log segment found. */
enum seg_status {
	SEG_OK = 0,
	SEG_EMPTY,	/* 0 bytes */
	SEG_BAD_HEADER, /* at offset 0 */
	SEG_BAD_RECORD, /* not intact at bad_off */
	SEG_BAD_SEQ,	/* intact record with the wrong seq at bad_off */
};

struct seg_scan {
	enum seg_status status;
	uint64_t header_seq;
	uint64_t records;	/* intact records before bad_off */
	uint64_t first, last;	/* their seqs (0 when none) */
	size_t size;		/* file size */
	size_t good;		/* end of the intact prefix (bad_off) */
	bool tail_only;		/* no intact record after bad_off */
	uint64_t records_after; /* intact records found after bad_off */
};

/* Called for each intact record in order; non-zero stops the scan and is
 * returned by recover_scan_segment. */
typedef int (*seg_rec_fn)(void *ctx, uint64_t seq, const void *payload,
			  size_t len, size_t offset);

/* Scan the segment at path whose name says it starts at name_seq.  Returns
 * 0 (see out->status), the callback's code, or UD_EIO. */
int recover_scan_segment(const char *path, uint64_t name_seq, seg_rec_fn fn,
			 void *ctx, struct seg_scan *out, struct ud_error *err);

struct recover_result {
	bool have_snap;
	uint64_t snap_covered; /* B */
	uint64_t snap_records;
	uint64_t log_records;	/* replayed (seq > B) */
	struct oplog_seg *segs; /* every segment, in order; bytes of the
				   last one = its intact prefix */
	size_t nseg;
	uint64_t next_seq;
	bool torn;		/* rule 3 applied */
	uint64_t torn_bytes;	/* dropped by it */
	struct ud_buf warnings; /* "\n"-separated, NUL-terminated, or empty */
};

/* Run the rule over dir, applying every record with apply(ctx, ...).
 * Returns 0 and fills r (free it with recover_result_free, also after a
 * failure), or UD_ECORRUPT / UD_EIO / UD_ENOMEM with err. */
int recover_run(const char *dir, snap_apply_fn apply, void *ctx,
		struct recover_result *r, struct ud_error *err);
/* recover_run() that loads the snapshot and replays the log segments
 * through stage (snapshot.h: two threads, same result, same first failure)
 * when stage is non-NULL. */
int recover_run_staged(const char *dir, snap_apply_fn apply,
		       const struct snap_stage *stage, void *ctx,
		       struct recover_result *r, struct ud_error *err);
void recover_result_free(struct recover_result *r);

#endif
