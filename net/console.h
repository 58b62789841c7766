/*
 * console.h -- the admin console's static files (SPEC §10), served from
 * bytes compiled into the server.
 *
 * The console is a small web program of its own under net/console/
 * (index.html, ES modules, one stylesheet).  At build time the packer
 * (net/console_pack.c, run by CMake) turns each file into a C array in the
 * generated console_files.c: the bytes as written, a gzip copy when that is
 * smaller, the content type chosen from the file's extension and a strong
 * ETag computed from the bytes.  The C side knows nothing of views: it maps
 * a request path to one packed file and chooses the headers.
 *
 * Paths: "/console/" is index.html; "/console/NAME" is the file NAME;
 * "/console" itself is redirected to "/console/" so that relative module URLs
 * resolve. The files need no API key (SPEC §2); every call the page makes does.
 *
 * Every reply carries the console's security headers (CONSOLE_HEADERS): a
 * Content-Security-Policy without 'unsafe-inline' or 'unsafe-eval' that
 * allows scripts, styles and fetches from the page's own origin only and
 * forbids framing, plus nosniff and no-referrer.  Files are sent with
 * Cache-Control: no-cache, so a browser revalidates with If-None-Match and
 * gets 304 while the build is unchanged.
 *
 * Everything here is immutable data and pure functions: thread-safe.
 */
#ifndef UD_NET_CONSOLE_H
#define UD_NET_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>

/* One packed file; all pointers are to static data. */
struct console_file {
	const char *name;	  /* "index.html", "app.js", ... */
	const char *ctype;	  /* "text/javascript; charset=utf-8" ... */
	const char *etag;	  /* "\"<16 hex>\"", quotes included */
	const unsigned char *raw; /* the file as written */
	size_t raw_len;
	const unsigned char *gz; /* gzip copy, or NULL when not smaller */
	size_t gz_len;
};

/* Defined in the generated console_files.c. */
extern const struct console_file console_files[];
extern const size_t console_nfiles;

#define CONSOLE_PREFIX "/console"

#define CONSOLE_HEADERS                                                        \
	"Content-Security-Policy: default-src 'none'; script-src 'self'; "     \
	"style-src 'self'; connect-src 'self'; "                               \
	"img-src 'self' https: http: data:; base-uri 'none'; "                 \
	"form-action 'none'; frame-ancestors 'none'\r\n"                       \
	"X-Content-Type-Options: nosniff\r\n"                                  \
	"Referrer-Policy: no-referrer\r\n"                                     \
	"X-Frame-Options: DENY\r\n"

/* True when the request path p[0..n) (no query) is the console's:
 * "/console" or anything under "/console/". */
bool console_path(const char *p, size_t n);

/* The file for the path p[0..n) ("/console/" gives index.html), or NULL
 * when the path names none (the caller answers 404; "/console" alone is
 * the caller's redirect). */
const struct console_file *console_find(const char *p, size_t n);

/* True when an Accept-Encoding value v[0..n) accepts gzip (a "gzip" token
 * without q=0). */
bool console_accepts_gzip(const char *v, size_t n);

/* True when an If-None-Match value v[0..n) names etag (a comma-separated
 * list of tags, weak ones compared weakly, or "*"). */
bool console_etag_matches(const char *v, size_t n, const char *etag);

#endif
