/*
 * test_frame.c -- the byte layout: round trips, every flipped byte caught,
 * every cut caught, resynchronisation after damage.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "frame.h"

static size_t build(unsigned char *buf, uint64_t seq0, int n)
{
	size_t off = 0;

	for (int i = 0; i < n; i++) {
		char payload[40];
		size_t len = (size_t)snprintf(payload, sizeof(payload),
					      "payload number %d", i);

		memcpy(buf + off + FRAME_REC_HDR, payload, len);
		frame_rec_hdr_encode(buf + off, FRAME_REC_MAGIC, seq0 + i,
				     buf + off + FRAME_REC_HDR, (uint32_t)len);
		off += FRAME_REC_HDR + len;
	}
	return off;
}

Test(frame, file_header_round_trip)
{
	unsigned char h[FRAME_FILE_HDR];
	uint64_t seq = 0;

	frame_file_hdr_encode(h, FRAME_LOG, 0x1234567890ull);
	cr_assert_eq(frame_file_hdr_decode(h, sizeof(h), FRAME_LOG, &seq), 0);
	cr_assert_eq(seq, 0x1234567890ull);
	cr_assert_eq(frame_file_hdr_decode(h, sizeof(h), FRAME_SNAP, &seq), -1);
	cr_assert_eq(frame_file_hdr_decode(h, sizeof(h) - 1, FRAME_LOG, &seq),
		     -1);
	for (size_t i = 0; i < sizeof(h); i++) {
		h[i] ^= 0x10;
		cr_assert_eq(
		    frame_file_hdr_decode(h, sizeof(h), FRAME_LOG, &seq), -1,
		    "flip at %zu", i);
		h[i] ^= 0x10;
	}
}

Test(frame, record_round_trip)
{
	unsigned char buf[512];
	struct frame_rec rec;
	size_t n = build(buf, 7, 3), off = 0;

	for (int i = 0; i < 3; i++) {
		size_t sz = frame_rec_decode(buf + off, n - off, &rec);

		cr_assert_gt(sz, 0);
		cr_assert_eq(rec.seq, 7u + (unsigned)i);
		cr_assert_eq(rec.magic, FRAME_REC_MAGIC);
		cr_assert_eq(memcmp(rec.payload, "payload number", 14), 0);
		off += sz;
	}
	cr_assert_eq(off, n);
}

Test(frame, every_flipped_bit_is_caught)
{
	unsigned char buf[512];
	struct frame_rec rec;
	size_t n = build(buf, 1, 1);

	for (size_t i = 0; i < n; i++)
		for (int bit = 0; bit < 8; bit++) {
			buf[i] ^= (unsigned char)(1u << bit);
			cr_assert_eq(frame_rec_decode(buf, n, &rec), 0,
				     "byte %zu bit %d", i, bit);
			buf[i] ^= (unsigned char)(1u << bit);
		}
	cr_assert_gt(frame_rec_decode(buf, n, &rec), 0);
}

Test(frame, every_cut_is_caught)
{
	unsigned char buf[512];
	struct frame_rec rec;
	size_t n = build(buf, 1, 1);

	for (size_t cut = 0; cut < n; cut++)
		cr_assert_eq(frame_rec_decode(buf, cut, &rec), 0, "cut %zu",
			     cut);
}

Test(frame, find_next_resynchronises)
{
	unsigned char buf[512];
	struct frame_rec rec;
	size_t n = build(buf, 1, 3);
	size_t second = frame_rec_decode(buf, n, &rec);

	buf[5] ^= 1; /* damage the first record's length */
	cr_assert_eq(frame_find_next(buf, n, 0), second);
	cr_assert_eq(frame_find_next(buf, second + 10, 0), second + 10,
		     "nothing intact in a cut file");
	cr_assert_eq(frame_find_next(buf, n, n - 1), n);
}
