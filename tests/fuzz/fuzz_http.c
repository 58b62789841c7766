/*
 * fuzz_http.c -- the HTTP/1.1 layer (net/http.c): http-parser glue, limits,
 * routing, percent-decoding, query strings, JSON bodies and every handler,
 * on the real code without sockets (fake_conn.h).
 *
 * Input: the bytes a client sends on one connection (the api key is "k":
 * "Authorization: Bearer k").
 *
 * Properties: no crash or sanitizer report; what the server sends is a
 * sequence of well-formed responses: "HTTP/1.1 NNN ...", a header block,
 * a Content-Length that the body matches, and a JSON body (valid UTF-8)
 * whenever the type is application/json.  Inputs containing HEAD are only
 * checked for the status line (their replies carry no body).  The store's
 * invariants hold.
 */
#define _GNU_SOURCE /* memmem */
#include <stdlib.h>
#include <string.h>

#include "fake_conn.h"
#include "fuzz_util.h"

struct out {
	struct ud_buf b;
};

static void on_out(void *ctx, const uint8_t *p, size_t n)
{
	struct out *o = ctx;
	FUZZ_CHECK(ud_buf_append(&o->b, p, n) == 0, "append");
}

/* Check one response at p; returns its length. */
static size_t check_response(const char *p, size_t n, bool head)
{
	const char *end = memmem(p, n, "\r\n\r\n", 4);
	FUZZ_CHECK(n >= 12 && !memcmp(p, "HTTP/1.1 ", 9), "bad status line");
	int status = atoi(p + 9);
	FUZZ_CHECK(status >= 100 && status <= 599, "status %d", status);
	FUZZ_CHECK(end != NULL, "header block not terminated");
	size_t hlen = (size_t)(end - p) + 4;
	if (status == 100)
		return hlen;
	const char *cl = memmem(p, hlen, "\r\nContent-Length: ", 18);
	FUZZ_CHECK(cl != NULL, "no Content-Length");
	size_t blen = strtoul(cl + 18, NULL, 10);
	if (head)
		return hlen; /* the body may or may not follow */
	FUZZ_CHECK(hlen + blen <= n, "body shorter than Content-Length");
	if (memmem(p, hlen, "Content-Type: application/json", 30))
		FUZZ_CHECK(fuzz_json_ok(p + hlen, blen),
			   "body is not JSON: %.*s", (int)blen, p + hlen);
	return hlen + blen;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct out o = {{0}};
	bool head = memmem(data, size, "HEAD", 4) != NULL;
	fake_conn_run(&http_proto, false, data, size, on_out, &o);
	size_t off = 0;
	while (off < o.b.len && !head)
		off += check_response(o.b.data + off, o.b.len - off, head);
	if (head && o.b.len)
		check_response(o.b.data, o.b.len, head);
	ud_buf_free(&o.b);
	return 0;
}
