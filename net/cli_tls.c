/*
 * cli_tls.c -- userdb-cli's plain, TLS and Unix-socket connections; see
 * cli_tls.h.
 */
#include "cli_tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

static int tcp_connect(const char *host, const char *port)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai, *a;
	int fd = -1, rc = getaddrinfo(host, port, &hints, &ai);
	if (rc) {
		fprintf(stderr, "userdb-cli: %s: %s\n", host, gai_strerror(rc));
		return -1;
	}
	for (a = ai; a && fd < 0; a = a->ai_next) {
		fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
		if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
			rc = errno;
			close(fd);
			fd = -1;
			errno = rc;
		}
	}
	freeaddrinfo(ai);
	if (fd < 0)
		fprintf(stderr, "userdb-cli: cannot connect to %s:%s: %s\n",
			host, port, strerror(errno));
	return fd;
}

/* OpenSSL's reason for the last failure, or the verification's. */
static void tls_failed(struct cli_conn *cc, const char *host, const char *port)
{
	long v = cc->ssl ? SSL_get_verify_result(cc->ssl) : X509_V_OK;
	unsigned long e = ERR_get_error();
	char buf[256] = "no TLS answer (is the server's TLS on?)";
	if (v != X509_V_OK)
		snprintf(buf, sizeof buf, "certificate verify failed: %s",
			 X509_verify_cert_error_string(v));
	else if (e)
		ERR_error_string_n(e, buf, sizeof buf);
	fprintf(stderr, "userdb-cli: TLS with %s:%s failed: %s\n", host, port,
		buf);
	ERR_clear_error();
}

static SSL_CTX *tls_ctx(const struct cli_tls *t)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx)
		return NULL;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	/* A server closing without close_notify ends the stream; the HTTP
	 * and RPC parsers still tell a cut answer from a whole one. */
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	if (t->cacert ? SSL_CTX_load_verify_locations(ctx, t->cacert, NULL)
		      : SSL_CTX_set_default_verify_paths(ctx))
		return ctx;
	fprintf(stderr, "userdb-cli: --cacert %s: %s\n",
		t->cacert ? t->cacert : "(system)",
		ERR_reason_error_string(ERR_get_error()));
	SSL_CTX_free(ctx);
	return NULL;
}

/* The name the certificate must carry: host as an IP address or a DNS
 * name (then also sent as SNI). */
static int tls_expect(SSL *ssl, const char *host)
{
	unsigned char addr[16];
	if (inet_pton(AF_INET, host, addr) == 1 ||
	    inet_pton(AF_INET6, host, addr) == 1)
		return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl),
						     host) == 1
			   ? 0
			   : -1;
	return SSL_set_tlsext_host_name(ssl, host) == 1 &&
		       SSL_set1_host(ssl, host) == 1
		   ? 0
		   : -1;
}

/* Bound a blocking socket's reads and writes (0: no bound). */
static void sock_timeout(int fd, int seconds)
{
	struct timeval tv = {.tv_sec = seconds};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

int cli_conn_tcp(struct cli_conn *cc, const char *host, const char *port,
		 const struct cli_tls *t)
{
	memset(cc, 0, sizeof(*cc));
	cc->fd = -1;
	if (t && t->on && !(cc->ctx = tls_ctx(t)))
		return -1;
	if ((cc->fd = tcp_connect(host, port)) < 0)
		goto fail;
	if (!cc->ctx)
		return 0;
	/* A plaintext server would wait for a request forever */
	sock_timeout(cc->fd, CLI_TLS_HANDSHAKE_S);
	if (!(cc->ssl = SSL_new(cc->ctx)) || tls_expect(cc->ssl, host) ||
	    SSL_set_fd(cc->ssl, cc->fd) != 1 || SSL_connect(cc->ssl) != 1) {
		tls_failed(cc, host, port);
		goto fail;
	}
	sock_timeout(cc->fd, 0);
	return 0;
fail:
	cli_conn_close(cc);
	return -1;
}

int cli_conn_unix(struct cli_conn *cc, const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	memset(cc, 0, sizeof(*cc));
	snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
	cc->fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (cc->fd >= 0 &&
	    connect(cc->fd, (struct sockaddr *)&sun, sizeof sun) == 0)
		return 0;
	int e = errno;
	cli_conn_close(cc);
	errno = e;
	return -1;
}

int cli_conn_send(struct cli_conn *cc, const void *buf, size_t n)
{
	const char *p = buf;
	while (n) {
		ssize_t w;
		if (cc->ssl) {
			size_t done = 0;
			w = SSL_write_ex(cc->ssl, p, n, &done) == 1
				? (ssize_t)done
				: -1;
		} else {
			w = send(cc->fd, p, n, MSG_NOSIGNAL);
			if (w < 0 && errno == EINTR)
				continue;
		}
		if (w <= 0)
			return -1;
		p += w, n -= (size_t)w;
	}
	return 0;
}

ssize_t cli_conn_recv(struct cli_conn *cc, void *p, size_t n)
{
	size_t got = 0;
	if (!cc->ssl)
		return recv(cc->fd, p, n, 0);
	if (SSL_read_ex(cc->ssl, p, n, &got) == 1)
		return (ssize_t)got;
	int e = SSL_get_error(cc->ssl, 0);
	ERR_clear_error();
	if (e == SSL_ERROR_ZERO_RETURN || e == SSL_ERROR_SYSCALL)
		return 0;
	errno = EIO;
	return -1;
}

void cli_conn_close(struct cli_conn *cc)
{
	if (cc->ssl) {
		SSL_shutdown(cc->ssl);
		SSL_free(cc->ssl);
	}
	if (cc->fd >= 0)
		close(cc->fd);
	SSL_CTX_free(cc->ctx);
	cc->ssl = NULL;
	cc->ctx = NULL;
	cc->fd = -1;
}
