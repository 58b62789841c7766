/*
 * fuzz_mpframe.c -- the incremental MessagePack frame scanner
 * (net/mpframe.c) against two independent decoders.
 *
 * Input: a byte stream as a client would send it.
 *
 * Properties:
 *   1. Scanning the whole input at once and scanning it as it grows one
 *      byte at a time (the same state carried over) give the same result.
 *   2. A frame the scanner accepts (length n) is exactly one value for the
 *      engine's reader: codec_mp_skip at the same depth bound (64) consumes
 *      exactly n bytes.  msgpack_unpack (what rpc.c runs on it) either
 *      decodes exactly n bytes or fails cleanly (its own depth bound is
 *      lower), and then no crash.
 *   3. A result over the limit or malformed never comes from a frame that
 *      fits: with the limit at the input size, a value that codec_mp_skip
 *      reads whole (depth <= 64) is accepted with its length.
 *   4. mpframe_peek_msgid agrees with the decoded request's msgid.
 */
#include <msgpack.h>

#include "codec.h"
#include "fuzz_util.h"
#include "mpframe.h"

static long scan_whole(const uint8_t *data, size_t size, size_t max)
{
	struct mpframe f;
	mpframe_reset(&f);
	return mpframe_scan(&f, data, size, max);
}

static void check_incremental(const uint8_t *data, size_t size, size_t max,
			      long whole)
{
	struct mpframe f;
	long r = 0;
	size_t len;
	mpframe_reset(&f);
	for (len = 1; len <= size && r == 0; len++)
		r = mpframe_scan(&f, data, len, max);
	FUZZ_CHECK(r == whole, "byte-at-a-time %ld, whole %ld", r, whole);
}

static void check_decoders(const uint8_t *data, long n)
{
	struct codec_mp_cur cur = {data, data + n};
	FUZZ_CHECK(codec_mp_skip(&cur, MPFRAME_MAX_DEPTH) == 0 &&
		       cur.p == data + n,
		   "codec_mp_skip disagrees on a %ld-byte frame", n);

	msgpack_zone z;
	msgpack_object o;
	size_t off = 0;
	FUZZ_CHECK(msgpack_zone_init(&z, 2048), "zone");
	msgpack_unpack_return ur =
	    msgpack_unpack((const char *)data, (size_t)n, &off, &z, &o);
	if (ur == MSGPACK_UNPACK_SUCCESS) {
		FUZZ_CHECK(off == (size_t)n, "msgpack_unpack used %zu of %ld",
			   off, n);
		uint64_t id;
		if (mpframe_peek_msgid(data, (size_t)n, &id)) {
			FUZZ_CHECK(o.type == MSGPACK_OBJECT_ARRAY &&
				       o.via.array.size == 4 &&
				       o.via.array.ptr[1].via.u64 == id,
				   "peek_msgid disagrees");
		}
	}
	msgpack_zone_destroy(&z);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const size_t limits[] = {1u << 20, 64};
	for (unsigned i = 0; i < 2; i++) {
		long r = scan_whole(data, size, limits[i]);
		if (size <= 4096)
			check_incremental(data, size, limits[i], r);
		if (r > 0) {
			FUZZ_CHECK((size_t)r <= size && (size_t)r <= limits[i],
				   "frame length %ld", r);
			check_decoders(data, r);
		}
	}
	/* 3: a whole value that fits is never refused. */
	struct codec_mp_cur cur = {data, data + size};
	if (size > 0 && codec_mp_skip(&cur, MPFRAME_MAX_DEPTH) == 0) {
		size_t n = (size_t)(cur.p - data);
		long r = scan_whole(data, size, n);
		FUZZ_CHECK(r == (long)n, "a %zu-byte value scanned as %ld", n,
			   r);
	}
	return 0;
}
