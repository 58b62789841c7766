/*
 * cli_tls.h -- userdb-cli's connection to the server: plain TCP, TCP with
 * TLS (--tls, --cacert FILE; SPEC §11), or a Unix socket.
 *
 * Both of the CLI's clients (the RPC commands of cli.c, the HTTP export
 * and import of cli_bulk.c) send and receive through one struct cli_conn,
 * so TLS is decided once, at connect time.  With TLS the server's
 * certificate must chain to --cacert (else to the system's trusted CAs)
 * and name the host the CLI was told to connect to (--host: a DNS name is
 * checked against the certificate's names, an IP address against its IP
 * addresses); TLS 1.2 or newer, OpenSSL's default ciphers.  A failed
 * handshake or verification is reported with OpenSSL's reason and the
 * connection is not used.  The handshake must end within
 * CLI_TLS_HANDSHAKE_S seconds (a plaintext RPC server would otherwise wait
 * for a request forever); after it, reads and writes have no time limit.
 *
 * Blocking sockets, one thread; nothing here outlives the process.
 */
#ifndef UD_NET_CLI_TLS_H
#define UD_NET_CLI_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define CLI_TLS_HANDSHAKE_S 5

struct cli_tls {
	bool on;
	const char *cacert; /* PEM file of trusted CAs, NULL: the system's */
};

struct cli_conn {
	int fd;
	struct ssl_st *ssl; /* NULL: plaintext */
	struct ssl_ctx_st *ctx;
};

/* Connect to host:port over TCP, with TLS when t->on.  Returns 0, or -1
 * after a message on stderr ("userdb-cli: ..."): no such host, refused,
 * a failed handshake or a certificate that does not verify. */
int cli_conn_tcp(struct cli_conn *cc, const char *host, const char *port,
		 const struct cli_tls *t);
/* Connect to the Unix socket at path (never TLS).  0 or -1 (errno set). */
int cli_conn_unix(struct cli_conn *cc, const char *path);
/* Send all n bytes: 0, or -1 when the connection failed. */
int cli_conn_send(struct cli_conn *cc, const void *p, size_t n);
/* Receive up to n bytes: the count, 0 at the end of the stream, -1 on an
 * error (errno EINTR: try again). */
ssize_t cli_conn_recv(struct cli_conn *cc, void *p, size_t n);
/* Close (a TLS close_notify first); cc may be closed twice. */
void cli_conn_close(struct cli_conn *cc);

#endif
