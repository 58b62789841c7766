/*
 * helper_mp.h -- build msgpack test inputs with msgpack-c's packer into a
 * struct ud_buf.  The caller frees m->b with ud_buf_free().
 */
#ifndef UD_HELPER_MP_H
#define UD_HELPER_MP_H

#include <msgpack.h>

#include "userdb.h"

struct mp {
	struct ud_buf b;
	msgpack_packer pk;
};

void mp_init(struct mp *m);
void mp_str(struct mp *m, const char *s);

#endif
