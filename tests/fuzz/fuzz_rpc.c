/*
 * fuzz_rpc.c -- MessagePack-RPC framing and method dispatch (net/rpc.c) on
 * the real handlers, without sockets (fake_conn.h).
 *
 * Input: the bytes a client sends on one connection.  The connection starts
 * authenticated unless the input begins with 0xc0 (a nil frame, which the
 * server ignores), so both the auth gate and every method are reachable.
 *
 * Properties: no crash or sanitizer report; every reply is exactly
 * [1, msgid, error, result] with error nil or a map holding the string keys
 * "code" and "message" (and then result nil); the store's invariants hold.
 */
#include <msgpack.h>
#include <string.h>

#include "fake_conn.h"
#include "fuzz_util.h"

struct out {
	msgpack_unpacker up;
};

static bool map_has_str(const msgpack_object *m, const char *key)
{
	size_t n = strlen(key);
	for (uint32_t i = 0; i < m->via.map.size; i++) {
		const msgpack_object *k = &m->via.map.ptr[i].key;
		const msgpack_object *v = &m->via.map.ptr[i].val;
		if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
		    !memcmp(k->via.str.ptr, key, n))
			return v->type == MSGPACK_OBJECT_STR;
	}
	return false;
}

static void check_reply(const msgpack_object *o)
{
	FUZZ_CHECK(o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == 4,
		   "reply is not an array of 4");
	const msgpack_object *a = o->via.array.ptr;
	FUZZ_CHECK(a[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
		       a[0].via.u64 == 1,
		   "reply type is not 1");
	FUZZ_CHECK(a[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER,
		   "reply msgid is not an unsigned integer");
	if (a[2].type == MSGPACK_OBJECT_NIL)
		return;
	FUZZ_CHECK(a[2].type == MSGPACK_OBJECT_MAP, "error is not a map");
	FUZZ_CHECK(map_has_str(&a[2], "code") && map_has_str(&a[2], "message"),
		   "error map lacks code/message");
	FUZZ_CHECK(a[3].type == MSGPACK_OBJECT_NIL,
		   "result not nil beside an error");
}

static void on_out(void *ctx, const uint8_t *p, size_t n)
{
	struct out *o = ctx;
	msgpack_unpacked r;
	FUZZ_CHECK(msgpack_unpacker_reserve_buffer(&o->up, n), "reserve");
	memcpy(msgpack_unpacker_buffer(&o->up), p, n);
	msgpack_unpacker_buffer_consumed(&o->up, n);
	msgpack_unpacked_init(&r);
	msgpack_unpack_return ur;
	while ((ur = msgpack_unpacker_next(&o->up, &r)) ==
	       MSGPACK_UNPACK_SUCCESS)
		check_reply(&r.data);
	FUZZ_CHECK(ur == MSGPACK_UNPACK_CONTINUE, "reply stream malformed");
	msgpack_unpacked_destroy(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct out o;
	FUZZ_CHECK(msgpack_unpacker_init(&o.up, 1 << 16), "unpacker");
	bool authed = !(size > 0 && data[0] == 0xc0);
	fake_conn_run(&rpc_proto, authed, data, size, on_out, &o);
	FUZZ_CHECK(msgpack_unpacker_message_size(&o.up) == 0,
		   "a reply was cut short");
	msgpack_unpacker_destroy(&o.up);
	return 0;
}
