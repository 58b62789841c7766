/*
 * tls.h -- TLS on the RPC and HTTP ports (--tls-cert / --tls-key, SPEC
 * §11), with OpenSSL through libevent's bufferevent_openssl.
 *
 * Design.  The plaintext path is untouched: its sockets are still read with
 * the connection's own read event and written with one writev(2) per
 * release (server.h).  A TLS connection instead gets an OpenSSL filtering
 * bufferevent that does both directions: the handshake, reading records
 * into the bufferevent's input (where the protocols take their bytes as
 * before) and encrypting the output that held replies are moved into.  So
 * the server branches on conn->tls in four places (open, start/stop
 * reading, release of held replies, lingering close), never per byte.
 * A lingering close (server.h) works as for plaintext once the output is
 * written: close_notify, the bufferevent disabled, the write side shut and
 * the socket read with the connection's own read event to drop the rest.
 *
 * Policy: TLS 1.2 or newer, OpenSSL's default ("recommended") cipher
 * lists and groups, no renegotiation, no session tickets across reloads
 * needed (a reload starts a new context).  A client that speaks anything
 * but TLS fails the handshake and is closed; nothing is answered in
 * plaintext.  The Unix socket stays plaintext (it is local by nature).
 *
 * Reload (SIGHUP): a new context is built from the same files; on success
 * it serves every later connection (open ones keep theirs; OpenSSL
 * reference-counts contexts), on failure the old one stays and stderr says
 * why.  Loop thread only.
 */
#ifndef UD_NET_TLS_H
#define UD_NET_TLS_H

#include <stdio.h>

#include <event2/bufferevent.h>

struct server;
struct ssl_ctx_st;

/* A server context for cert (PEM chain) and key (PEM).  NULL after a
 * message to err naming the file and OpenSSL's reason. */
struct ssl_ctx_st *tls_ctx_new(const char *cert, const char *key, FILE *err);
void tls_ctx_free(struct ssl_ctx_st *ctx);
/* A bufferevent accepting TLS on fd with srv's context (owns fd: closed on
 * free).  NULL when out of memory (fd is then closed). */
struct bufferevent *tls_bev_new(struct server *srv, evutil_socket_t fd);
/* A new TCP connection on a TLS port waits here until its first byte: a
 * TLS client starts with a handshake record (0x16) and goes on to
 * open(srv, fd, proto); anything else (a plaintext HTTP or RPC client,
 * which would otherwise leave OpenSSL waiting for the rest of a "record"
 * its first bytes seem to announce) gets no answer and a lingering close
 * (server.h: the write side shut, what it sends read and dropped, so it
 * sees a clean EOF, not a reset); a client that sends nothing within
 * TLS_GATE_S seconds is closed. */
#define TLS_GATE_S 10
struct conn_proto;
typedef void (*tls_open_fn)(struct server *srv, evutil_socket_t fd,
			    const struct conn_proto *proto);
void tls_gate(struct server *srv, evutil_socket_t fd,
	      const struct conn_proto *proto, tls_open_fn open);
/* A lingering close of a TLS connection, its output written: send
 * close_notify (if the handshake is done) before the write side is shut;
 * the server then reads and drops the raw bytes that still come. */
void tls_close_notify(struct bufferevent *bev);
/* SIGHUP: load the certificate and key again. */
void tls_reload(struct server *srv);

#endif
