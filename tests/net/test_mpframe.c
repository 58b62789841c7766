/*
 * test_mpframe.c -- the incremental MessagePack frame scanner: every frame
 * cut at every byte, limits, malformed input, msgid peeking.
 */
#include <criterion/criterion.h>
#include <msgpack.h>
#include <string.h>

#include "mpframe.h"

/* A request with nested containers and every length prefix width. */
static size_t sample(char *out, size_t cap)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 4);
	msgpack_pack_uint8(&pk, 0);
	msgpack_pack_uint32(&pk, 70000);
	msgpack_pack_str_with_body(&pk, "user.create", 11);
	msgpack_pack_array(&pk, 1);
	msgpack_pack_map(&pk, 5);
	msgpack_pack_str_with_body(&pk, "name", 4);
	char big[300];
	memset(big, 'x', sizeof big);
	msgpack_pack_str_with_body(&pk, big, sizeof big); /* str16 */
	msgpack_pack_str_with_body(&pk, "n", 1);
	msgpack_pack_double(&pk, 1.5);
	msgpack_pack_str_with_body(&pk, "b", 1);
	msgpack_pack_bin_with_body(&pk, "abc", 3);
	msgpack_pack_str_with_body(&pk, "e", 1);
	msgpack_pack_ext_with_body(&pk, "abcd", 4, 7); /* fixext4 */
	msgpack_pack_str_with_body(&pk, "a", 1);
	msgpack_pack_array(&pk, 20); /* array16 */
	for (int i = 0; i < 20; i++)
		msgpack_pack_int64(&pk, -i * 100000);
	cr_assert_leq(sb.size, cap);
	memcpy(out, sb.data, sb.size);
	size_t n = sb.size;
	msgpack_sbuffer_destroy(&sb);
	return n;
}

Test(mpframe, whole_frame_is_found)
{
	char buf[2048];
	size_t n = sample(buf, sizeof buf);
	struct mpframe f;
	mpframe_reset(&f);
	cr_assert_eq(mpframe_scan(&f, (uint8_t *)buf, n, 1 << 20), (long)n);
}

Test(mpframe, cut_at_every_byte)
{
	char buf[2048];
	size_t n = sample(buf, sizeof buf);
	for (size_t cut = 0; cut < n; cut++) {
		struct mpframe f;
		mpframe_reset(&f);
		cr_assert_eq(mpframe_scan(&f, (uint8_t *)buf, cut, 1 << 20), 0,
			     "cut %zu", cut);
		cr_assert_eq(mpframe_scan(&f, (uint8_t *)buf, n, 1 << 20),
			     (long)n, "cut %zu", cut);
	}
}

Test(mpframe, fed_one_byte_at_a_time)
{
	char buf[2048];
	size_t n = sample(buf, sizeof buf);
	struct mpframe f;
	mpframe_reset(&f);
	for (size_t len = 1; len < n; len++)
		cr_assert_eq(mpframe_scan(&f, (uint8_t *)buf, len, 1 << 20), 0);
	cr_assert_eq(mpframe_scan(&f, (uint8_t *)buf, n, 1 << 20), (long)n);
}

Test(mpframe, back_to_back_frames)
{
	char buf[4096];
	size_t n = sample(buf, sizeof buf);
	memcpy(buf + n, buf, n);
	struct mpframe f;
	mpframe_reset(&f);
	cr_assert_eq(mpframe_scan(&f, (uint8_t *)buf, 2 * n, 1 << 20), (long)n);
	mpframe_reset(&f);
	cr_assert_eq(mpframe_scan(&f, (uint8_t *)buf + n, n, 1 << 20), (long)n);
}

Test(mpframe, scalars_are_frames)
{
	struct mpframe f;
	uint8_t one[] = {0x05}, nil[] = {0xc0}, empty_arr[] = {0x90};
	mpframe_reset(&f);
	cr_assert_eq(mpframe_scan(&f, one, 1, 100), 1);
	mpframe_reset(&f);
	cr_assert_eq(mpframe_scan(&f, nil, 1, 100), 1);
	mpframe_reset(&f);
	cr_assert_eq(mpframe_scan(&f, empty_arr, 1, 100), 1);
}

Test(mpframe, over_the_limit)
{
	char buf[2048];
	size_t n = sample(buf, sizeof buf);
	struct mpframe f;
	mpframe_reset(&f);
	cr_assert_eq(mpframe_scan(&f, (uint8_t *)buf, n, n - 1),
		     MPFRAME_ETOOBIG);
	mpframe_reset(&f);
	cr_assert_eq(mpframe_scan(&f, (uint8_t *)buf, n, n), (long)n);
}

Test(mpframe, huge_counts_are_refused_before_their_bytes)
{
	/* array32 of 4 billion, map32, str32 of 4 GiB: only headers sent. */
	uint8_t arr[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
	uint8_t map[] = {0xdf, 0x7f, 0xff, 0xff, 0xff};
	uint8_t str[] = {0xdb, 0xff, 0xff, 0xff, 0xff};
	struct mpframe f;
	mpframe_reset(&f);
	cr_assert_eq(mpframe_scan(&f, arr, 5, 1 << 20), MPFRAME_ETOOBIG);
	mpframe_reset(&f);
	cr_assert_eq(mpframe_scan(&f, map, 5, 1 << 20), MPFRAME_ETOOBIG);
	mpframe_reset(&f);
	cr_assert_eq(mpframe_scan(&f, str, 5, 1 << 20), MPFRAME_ETOOBIG);
}

Test(mpframe, malformed)
{
	uint8_t c1[] = {0x92, 0x01, 0xc1};
	struct mpframe f;
	mpframe_reset(&f);
	cr_assert_eq(mpframe_scan(&f, c1, 3, 100), MPFRAME_EBAD);
	uint8_t deep[200];
	memset(deep, 0x91, sizeof deep); /* [[[[...]]]] */
	mpframe_reset(&f);
	cr_assert_eq(mpframe_scan(&f, deep, sizeof deep, 1000), MPFRAME_EBAD);
}

Test(mpframe, peek_msgid)
{
	uint64_t id;
	uint8_t a[] = {0x94, 0x00, 0x2a, 0xa1};
	uint8_t b[] = {0x94, 0x00, 0xce, 0x00, 0x01, 0x11, 0x70};
	uint8_t c[] = {0x93, 0x02, 0xa1};
	uint8_t d[] = {0xdc, 0x00, 0x04, 0x00, 0xcc, 0xff};
	uint8_t e[] = {0x94, 0x00, 0xcf, 0x00};
	cr_assert(mpframe_peek_msgid(a, sizeof a, &id) && id == 42);
	cr_assert(mpframe_peek_msgid(b, sizeof b, &id) && id == 70000);
	cr_assert_not(mpframe_peek_msgid(c, sizeof c, &id));
	cr_assert(mpframe_peek_msgid(d, sizeof d, &id) && id == 255);
	cr_assert_not(mpframe_peek_msgid(e, sizeof e, &id)); /* truncated */
}

/* Found by fuzz_mpframe: a frame unfinished at exactly the limit followed
 * by 0xc1 was "malformed" when scanned whole but "too big" when its bytes
 * arrived one by one.  The verdict must not depend on the segmentation. */
Test(mpframe, verdict_at_the_limit_independent_of_arrival)
{
	/* [str6 "abcdef", 0xc1]: 8 bytes reach the limit with an item left */
	const uint8_t in[] = {0x92, 0xa6, 'a', 'b', 'c', 'd', 'e', 'f', 0xc1};
	struct mpframe f;
	long r = 0;

	mpframe_reset(&f);
	cr_assert_eq(mpframe_scan(&f, in, sizeof in, 8), MPFRAME_ETOOBIG);
	mpframe_reset(&f);
	for (size_t len = 1; len <= sizeof in && r == 0; len++)
		r = mpframe_scan(&f, in, len, 8);
	cr_assert_eq(r, MPFRAME_ETOOBIG);
	mpframe_reset(&f); /* one byte more of room: now it is malformed */
	cr_assert_eq(mpframe_scan(&f, in, sizeof in, 9), MPFRAME_EBAD);
}
