/*
 * frame.h -- the byte layout shared by log segments and snapshots.
 *
 * Both kinds of data file are a file header followed by framed records.  All
 * integers are little-endian.  Pure functions: no I/O, no allocation,
 * thread-safe.
 *
 * File header (FRAME_FILE_HDR = 32 bytes):
 *
 *     0   8  magic    "UDBLOG\0\1" (log segment) or "UDBSNP\0\1" (snapshot)
 *     8   4  version  1; 2 for a compressed snapshot (below)
 *    12   4  flags    0; FRAME_SNAP_ZSTD with version 2
 *    16   8  seq      log: sequence number of the segment's first record
 *                     snapshot: last log sequence number the snapshot covers
 *    24   8  check    XXH3-64 of bytes 0..23
 *
 * Record (FRAME_REC_HDR = 24 bytes, then the payload):
 *
 *     0   4  magic    FRAME_REC_MAGIC ("UREC"), or FRAME_END_MAGIC ("UEND")
 *                     for the end-of-snapshot marker
 *     4   4  len      payload bytes, at most FRAME_REC_MAX
 *     8   8  seq      log: global sequence number, +1 per record, across
 *                     segments; snapshot: 1, 2, ... within the file; the
 *                     end marker carries the record count
 *    16   8  check    XXH3-64 of the payload, seeded with the XXH3-64 of
 *                     header bytes 0..15: one value covers every header
 *                     field and every payload byte
 *    24 len  payload  one engine change record (opaque here)
 *
 * Validity rule.  A record at offset P of a file of size N is intact iff
 * P + 24 <= N, the magic is known, len <= FRAME_REC_MAX, P + 24 + len <= N
 * and check matches.  Readers stop at the first record that is not intact;
 * what that means (torn tail or corruption) is decided by the caller with
 * frame_find_next(): a damaged record after which no intact record starts
 * anywhere in the file is the remains of an interrupted write.
 *
 * Invariants (checked by readers, not by this module):
 *   1. In a log, the seq of each record is the previous one + 1, across
 *      segment boundaries; a segment's first record has the seq of its
 *      header.
 *   2. A snapshot is complete iff its records are intact and numbered
 *      1..n and an end marker with seq n ends the file exactly.
 *
 * Compressed snapshots (version 2, flags FRAME_SNAP_ZSTD).  After the file
 * header come blocks framed exactly like records but with magic
 * FRAME_ZBLK_MAGIC ("UZBK"), numbered 1..k in seq, then an end marker with
 * seq k ending the file.  Each block's payload is one zstd frame that
 * declares its content size and carries zstd's content checksum.  The
 * blocks' contents, concatenated, are the body of a version-1 snapshot
 * (records 1..n, end marker n) except that each inner record's check is 0:
 * the block check covers the compressed bytes and zstd's checksum the
 * decompressed ones, so a per-record hash (8 random bytes a user, a quarter
 * of the compressed size) would protect nothing more.  Block boundaries
 * fall anywhere, also inside a record.  The validity rule applies to the
 * blocks; inner records must pass it without the check.
 */
#ifndef UD_FRAME_H
#define UD_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FRAME_FILE_HDR	 32
#define FRAME_REC_HDR	 24
#define FRAME_REC_MAX	 (64u << 20) /* far above any engine record */
#define FRAME_REC_MAGIC	 0x43455255u /* "UREC" as little-endian bytes */
#define FRAME_END_MAGIC	 0x444e4555u /* "UEND" */
#define FRAME_ZBLK_MAGIC 0x4b425a55u /* "UZBK": a compressed block */
#define FRAME_SNAP_ZSTD	 1u	     /* snapshot header flag, version 2 */

enum frame_kind { FRAME_LOG = 0, FRAME_SNAP = 1 };

/* A decoded record header; payload points into the caller's buffer. */
struct frame_rec {
	uint32_t magic;
	uint32_t len;
	uint64_t seq;
	const void *payload;
};

/* Write a file header of the given kind and seq into out[32]. */
void frame_file_hdr_encode(void *out, enum frame_kind kind, uint64_t seq);
/* Check a file header.  Returns 0 and *seq, or -1 if n < 32, the magic is
 * not the kind's, the version unknown or the checksum wrong. */
int frame_file_hdr_decode(const void *buf, size_t n, enum frame_kind kind,
			  uint64_t *seq);

/* A snapshot's header: as above with kind FRAME_SNAP, and flags 0
 * (version 1) or FRAME_SNAP_ZSTD (version 2).  decode returns 0 and *seq,
 * *flags, or -1 (also for an unknown version or flags). */
void frame_snap_hdr_encode(void *out, uint64_t seq, uint32_t flags);
int frame_snap_hdr_decode(const void *buf, size_t n, uint64_t *seq,
			  uint32_t *flags);

/* Write a record header for payload into out[24]. */
void frame_rec_hdr_encode(void *out, uint32_t magic, uint64_t seq,
			  const void *payload, uint32_t len);

/* Is the record at buf[0..n) intact (see the validity rule)?  Returns the
 * record's total size (24 + len) and fills *rec, or 0 when it is not. */
size_t frame_rec_decode(const void *buf, size_t n, struct frame_rec *rec);
/* The same for a compressed snapshot's outer frames: a block
 * (FRAME_ZBLK_MAGIC) or the end marker. */
size_t frame_zblk_decode(const void *buf, size_t n, struct frame_rec *rec);
/* Inner records of a compressed snapshot: header with check 0, written
 * into out[24]; decoded by the validity rule less the check. */
void frame_rec_hdr_encode_unchecked(void *out, uint32_t magic, uint64_t seq,
				    uint32_t len);
size_t frame_rec_decode_unchecked(const void *buf, size_t n,
				  struct frame_rec *rec);

/* Offset of the first intact record starting strictly after `from` in
 * buf[0..n), or n when there is none.  Used to tell a torn tail (nothing
 * intact follows) from damage in the middle of a file.  O(n) in the worst
 * case; only called on the error path. */
size_t frame_find_next(const void *buf, size_t n, size_t from);

/* Little-endian helpers, shared with the writers. */
static inline void frame_put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16);
	p[3] = (unsigned char)(v >> 24);
}

static inline void frame_put64(unsigned char *p, uint64_t v)
{
	frame_put32(p, (uint32_t)v);
	frame_put32(p + 4, (uint32_t)(v >> 32));
}

static inline uint32_t frame_get32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static inline uint64_t frame_get64(const unsigned char *p)
{
	return (uint64_t)frame_get32(p) | (uint64_t)frame_get32(p + 4) << 32;
}

#endif
