/*
 * mpframe.h -- find where one MessagePack object ends in a byte stream.
 *
 * The RPC layer reads a TCP stream that carries back-to-back MessagePack
 * objects.  Before any object is decoded, this scanner walks the type bytes
 * and length prefixes only, so that the server knows (1) the exact length of
 * each frame, (2) that a frame is complete, well formed and no larger than
 * the limit, and (3) that every array or map count in it is backed by bytes
 * actually present.  Only then is the frame decoded (msgpack_unpack), so a
 * hostile count such as "array of 4 billion" can never make the decoder
 * allocate; it is rejected here as over the limit.
 *
 * The scan is incremental: state carries the position and a stack of items
 * still expected per nesting level, so feeding a frame one byte at a time
 * costs O(length) in total, not O(length^2).
 *
 * Return protocol of mpframe_scan: > 0 frame length, 0 need more bytes,
 * MPFRAME_ETOOBIG over the limit, MPFRAME_EBAD malformed (0xc1 or nesting
 * deeper than MPFRAME_MAX_DEPTH).  After a non-zero return call
 * mpframe_reset() before scanning the next frame.  Pure; no allocation.
 */
#ifndef UD_MPFRAME_H
#define UD_MPFRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MPFRAME_MAX_DEPTH 64
#define MPFRAME_ETOOBIG	  (-1)
#define MPFRAME_EBAD	  (-2)

struct mpframe {
	size_t pos;	/* bytes of the current frame already walked */
	unsigned depth; /* current nesting level */
	uint64_t left[MPFRAME_MAX_DEPTH + 1]; /* items still expected */
};

void mpframe_reset(struct mpframe *f);
/* buf holds the frame's first len bytes (the same start on every call, len
 * growing).  max is the largest acceptable frame. */
long mpframe_scan(struct mpframe *f, const uint8_t *buf, size_t len,
		  size_t max);
/* If buf starts like an RPC request [0, msgid, ...] (array of 4, type 0,
 * unsigned msgid), store the msgid and return true.  Used to answer a frame
 * that cannot be decoded. */
bool mpframe_peek_msgid(const uint8_t *buf, size_t len, uint64_t *msgid);

#endif
