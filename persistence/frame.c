/*
 * frame.c -- encode and check the file headers and records of frame.h.
 */
#include <string.h>
#include <xxhash.h>

#include "frame.h"

static const unsigned char magic_log[8] = {'U', 'D', 'B', 'L', 'O', 'G', 0, 1};
static const unsigned char magic_snap[8] = {'U', 'D', 'B', 'S', 'N', 'P', 0, 1};

#define FRAME_VERSION 1

static void hdr_encode(unsigned char *p, const unsigned char *magic,
		       uint32_t version, uint32_t flags, uint64_t seq)
{
	memcpy(p, magic, 8);
	frame_put32(p + 8, version);
	frame_put32(p + 12, flags);
	frame_put64(p + 16, seq);
	frame_put64(p + 24, XXH3_64bits(p, 24));
}

void frame_file_hdr_encode(void *out, enum frame_kind kind, uint64_t seq)
{
	hdr_encode(out, kind == FRAME_LOG ? magic_log : magic_snap,
		   FRAME_VERSION, 0, seq);
}

void frame_snap_hdr_encode(void *out, uint64_t seq, uint32_t flags)
{
	hdr_encode(out, magic_snap, flags ? 2 : FRAME_VERSION, flags, seq);
}

int frame_snap_hdr_decode(const void *buf, size_t n, uint64_t *seq,
			  uint32_t *flags)
{
	const unsigned char *p = buf;
	uint32_t v, fl;

	if (n < FRAME_FILE_HDR || memcmp(p, magic_snap, 8) != 0 ||
	    frame_get64(p + 24) != XXH3_64bits(p, 24))
		return -1;
	v = frame_get32(p + 8);
	fl = frame_get32(p + 12);
	if (!(v == 1 && fl == 0) && !(v == 2 && fl == FRAME_SNAP_ZSTD))
		return -1;
	*seq = frame_get64(p + 16);
	*flags = fl;
	return 0;
}

int frame_file_hdr_decode(const void *buf, size_t n, enum frame_kind kind,
			  uint64_t *seq)
{
	const unsigned char *p = buf;

	if (n < FRAME_FILE_HDR)
		return -1;
	if (memcmp(p, kind == FRAME_LOG ? magic_log : magic_snap, 8) != 0)
		return -1;
	if (frame_get32(p + 8) != FRAME_VERSION)
		return -1;
	if (frame_get64(p + 24) != XXH3_64bits(p, 24))
		return -1;
	*seq = frame_get64(p + 16);
	return 0;
}

static uint64_t rec_check(const unsigned char *hdr, const void *payload,
			  uint32_t len)
{
	return XXH3_64bits_withSeed(payload, len, XXH3_64bits(hdr, 16));
}

void frame_rec_hdr_encode(void *out, uint32_t magic, uint64_t seq,
			  const void *payload, uint32_t len)
{
	unsigned char *p = out;

	frame_put32(p, magic);
	frame_put32(p + 4, len);
	frame_put64(p + 8, seq);
	frame_put64(p + 16, rec_check(p, payload, len));
}

void frame_rec_hdr_encode_unchecked(void *out, uint32_t magic, uint64_t seq,
				    uint32_t len)
{
	unsigned char *p = out;

	frame_put32(p, magic);
	frame_put32(p + 4, len);
	frame_put64(p + 8, seq);
	frame_put64(p + 16, 0);
}

/* The validity rule, with `first` as the accepted non-end magic and the
 * check tested only when `checked`. */
static size_t decode(const void *buf, size_t n, uint32_t first, bool checked,
		     struct frame_rec *rec)
{
	const unsigned char *p = buf;
	uint32_t magic, len;

	if (n < FRAME_REC_HDR)
		return 0;
	magic = frame_get32(p);
	if (magic != first && magic != FRAME_END_MAGIC)
		return 0;
	len = frame_get32(p + 4);
	if (len > FRAME_REC_MAX || len > n - FRAME_REC_HDR)
		return 0;
	if (checked
		? frame_get64(p + 16) != rec_check(p, p + FRAME_REC_HDR, len)
		: frame_get64(p + 16) != 0)
		return 0;
	rec->magic = magic;
	rec->len = len;
	rec->seq = frame_get64(p + 8);
	rec->payload = p + FRAME_REC_HDR;
	return FRAME_REC_HDR + (size_t)len;
}

size_t frame_rec_decode(const void *buf, size_t n, struct frame_rec *rec)
{
	return decode(buf, n, FRAME_REC_MAGIC, true, rec);
}

size_t frame_zblk_decode(const void *buf, size_t n, struct frame_rec *rec)
{
	return decode(buf, n, FRAME_ZBLK_MAGIC, true, rec);
}

size_t frame_rec_decode_unchecked(const void *buf, size_t n,
				  struct frame_rec *rec)
{
	return decode(buf, n, FRAME_REC_MAGIC, false, rec);
}

size_t frame_find_next(const void *buf, size_t n, size_t from)
{
	const unsigned char *p = buf;
	struct frame_rec rec;
	size_t off;

	/* Both magics start with 'U'; memchr skips the rest quickly. */
	for (off = from + 1; off + FRAME_REC_HDR <= n; off++) {
		const unsigned char *u = memchr(p + off, 'U', n - off);

		if (!u)
			break;
		off = (size_t)(u - p);
		if (off + FRAME_REC_HDR > n)
			break;
		if (frame_rec_decode(p + off, n - off, &rec))
			return off;
	}
	return n;
}
