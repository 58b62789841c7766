/*
 * fake_conn.h -- the real RPC and HTTP protocol handlers (rpc_proto,
 * http_proto) on a server with no sockets, for the network harnesses.
 *
 * One process-wide struct server (event base, password pool with the
 * cheapest Argon2id cost, api key "k", small limits) is made on first use.
 * For each input: a fresh in-memory store with two known users (usr_a with
 * no password, usr_b with password "password1"), one connection whose
 * bufferevent is one side of a pair (no file descriptor), the input put in
 * its input buffer, the protocol's on_read run; then the loop runs until
 * every password job is done.  Replies are checked by the harness's
 * callback as they are released (what server_release_held would send),
 * back-pressure is relieved like a fast reader, and the store's invariants
 * (ud_db_check) must hold at the end.
 */
#ifndef UD_FUZZ_FAKE_CONN_H
#define UD_FUZZ_FAKE_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server.h"

#define FAKE_KEY "k"

/* Called with every chunk of bytes the connection sends, in order. */
typedef void (*fake_out_fn)(void *ctx, const uint8_t *p, size_t n);

/* Feed data to a new connection of proto; authed skips RPC auth. */
void fake_conn_run(const struct conn_proto *proto, bool authed,
		   const uint8_t *data, size_t size, fake_out_fn out,
		   void *ctx);

/* The server alone, for a harness that drives a module directly: made on
 * first use as above, with a fresh seeded store; fake_server_close checks
 * the store's invariants and closes it. */
struct server *fake_server_open(void);
void fake_server_close(void);

#endif
