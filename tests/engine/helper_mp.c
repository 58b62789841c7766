/*
 * helper_mp.c -- see helper_mp.h.
 */
#include <string.h>

#include "codec.h"
#include "helper_mp.h"

void mp_init(struct mp *m)
{
	memset(m, 0, sizeof(*m));
	msgpack_packer_init(&m->pk, &m->b, codec_buf_write_cb);
}

void mp_str(struct mp *m, const char *s)
{
	msgpack_pack_str_with_body(&m->pk, s, strlen(s));
}
