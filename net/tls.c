/*
 * tls.c -- OpenSSL contexts and TLS bufferevents; see tls.h.
 */
#include "tls.h"

#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server.h"

/* OpenSSL's last error as text (or what), and clear its queue. */
static const char *ssl_reason(char *buf, size_t n, const char *what)
{
	unsigned long e = ERR_get_error();

	if (e)
		ERR_error_string_n(e, buf, n);
	else
		snprintf(buf, n, "%s", what);
	ERR_clear_error();
	return buf;
}

struct ssl_ctx_st *tls_ctx_new(const char *cert, const char *key, FILE *err)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	char why[256];

	if (!ctx) {
		fprintf(err, "userdb-server: TLS: %s\n",
			ssl_reason(why, sizeof why, "out of memory"));
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
				     SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		fprintf(err,
			"userdb-server: TLS: cannot use certificate %s: %s\n",
			cert, ssl_reason(why, sizeof why, "unreadable"));
	} else if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) !=
		   1) {
		fprintf(err, "userdb-server: TLS: cannot use key %s: %s\n", key,
			ssl_reason(why, sizeof why, "unreadable"));
	} else if (SSL_CTX_check_private_key(ctx) != 1) {
		fprintf(err,
			"userdb-server: TLS: key %s does not match certificate "
			"%s\n",
			key, cert);
		ERR_clear_error();
	} else {
		return ctx;
	}
	SSL_CTX_free(ctx);
	return NULL;
}

void tls_ctx_free(struct ssl_ctx_st *ctx)
{
	SSL_CTX_free(ctx);
}

struct bufferevent *tls_bev_new(struct server *srv, evutil_socket_t fd)
{
	SSL *ssl = SSL_new(srv->tls_ctx);
	struct bufferevent *bev;

	if (!ssl) {
		ERR_clear_error();
		close(fd);
		return NULL;
	}
	bev = bufferevent_openssl_socket_new(srv->base, fd, ssl,
					     BUFFEREVENT_SSL_ACCEPTING,
					     BEV_OPT_CLOSE_ON_FREE);
	if (!bev) {
		SSL_free(ssl);
		close(fd);
		return NULL;
	}
	/* a client that closes without close_notify is an EOF, not an
	 * error: its replies were written */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

struct gate {
	struct server *srv;
	evutil_socket_t fd;
	const struct conn_proto *proto;
	tls_open_fn open;
	struct event *ev;
	size_t discarded; /* refusing: bytes read and dropped so far */
};

static void gate_end(struct gate *g, bool close_fd)
{
	event_free(g->ev);
	if (close_fd)
		close(g->fd);
	free(g);
}

/* Refusing a client that is not speaking TLS: its write side was shut (a
 * FIN), now read and drop what it sends until it closes, errs, goes quiet
 * for CONN_LINGER_S or sent CONN_LINGER_MAX (server.h's lingering close):
 * closing with its bytes unread would make the kernel send a reset. */
static void gate_discard_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gate *g = arg;
	char buf[4096];
	ssize_t n = (what & EV_READ) ? read(fd, buf, sizeof buf) : 0;

	if (n < 0 &&
	    (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n > 0 && (g->discarded += (size_t)n) <= CONN_LINGER_MAX)
		return; /* persistent: each read restarts the timeout */
	gate_end(g, true);
}

static void gate_refuse(struct gate *g)
{
	struct timeval tv = {.tv_sec = CONN_LINGER_S};

	event_free(g->ev);
	g->ev = NULL;
	if (shutdown(g->fd, SHUT_WR) == 0)
		g->ev = event_new(g->srv->base, g->fd, EV_READ | EV_PERSIST,
				  gate_discard_cb, g);
	if (!g->ev || event_add(g->ev, &tv)) {
		if (g->ev)
			event_free(g->ev);
		close(g->fd);
		free(g);
	}
}

static void gate_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gate *g = arg;
	unsigned char first = 0;
	ssize_t n = (what & EV_READ) ? recv(fd, &first, 1, MSG_PEEK) : -1;

	if (n < 0 && (what & EV_READ) && (errno == EAGAIN || errno == EINTR)) {
		struct timeval tv = {.tv_sec = TLS_GATE_S};
		if (event_add(g->ev, &tv) == 0)
			return; /* spurious: wait on */
	}
	if (n == 1 && first == 0x16) {
		g->open(g->srv, fd, g->proto);
		gate_end(g, false);
	} else if (n == 1) {
		gate_refuse(g);
	} else {
		gate_end(g, true); /* EOF, an error or the gate's timeout */
	}
}

void tls_gate(struct server *srv, evutil_socket_t fd,
	      const struct conn_proto *proto, tls_open_fn open)
{
	struct timeval tv = {.tv_sec = TLS_GATE_S};
	struct gate *g = calloc(1, sizeof(*g));

	if (g)
		g->ev = event_new(srv->base, fd, EV_READ, gate_cb, g);
	if (!g || !g->ev || event_add(g->ev, &tv)) {
		if (g && g->ev)
			event_free(g->ev);
		free(g);
		close(fd);
		return;
	}
	*g = (struct gate){srv, fd, proto, open, g->ev, 0};
}

void tls_close_notify(struct bufferevent *bev)
{
	SSL *ssl = bufferevent_openssl_get_ssl(bev);

	if (ssl && SSL_is_init_finished(ssl))
		SSL_shutdown(
		    ssl); /* sends close_notify; no wait for the peer's */
	ERR_clear_error();
}

void tls_reload(struct server *srv)
{
	SSL_CTX *ctx;

	if (!srv->tls_ctx)
		return;
	ctx = tls_ctx_new(srv->cfg.tls_cert, srv->cfg.tls_key, stderr);
	if (!ctx) {
		fprintf(stderr, "userdb-server: SIGHUP: certificate not "
				"reloaded; the old one stays in use\n");
		return;
	}
	SSL_CTX_free(srv->tls_ctx);
	srv->tls_ctx = ctx;
	printf("tls certificate reloaded from %s\n", srv->cfg.tls_cert);
	fflush(stdout);
}
