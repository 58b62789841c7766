/*
 * fuzz_import.c -- the import body's line splitter and line parser
 * (net/bulk.c: bulk_import_feed / bulk_import_finish) on the fake server's
 * in-memory store (fake_conn.h), with no HTTP around it.
 *
 * Input: byte 0 picks on_conflict (bits 0-1: fail, skip, update, or a bad
 * query) and whether the body starts with BULK_LINE_MAX - 128 + byte 1
 * spaces (bits 2-7 are 000111: the first line then crosses the line limit
 * or not; rare, as it is slow); byte 1 also seeds how the body is cut; the
 * rest is the body.
 *
 * Properties:
 *   1. The result does not depend on how the body arrives: fed whole and
 *      fed in pieces of 1 to 32 bytes (4 KiB multiples through most of the
 *      padding), two fresh stores give the same
 *      result object, byte for byte.
 *   2. The result is JSON and agrees with a reference splitter: created +
 *      updated + skipped + failed is the number of lines that are not
 *      blank (a line over BULK_LINE_MAX is never blank), the errors are
 *      min(failed, BULK_ERRORS_MAX) with increasing line numbers within
 *      the body, and every line over the limit is reported as
 *      payload_too_large when none was left unreported.
 *   3. A bad query is refused with invalid_request whatever the body.
 *   4. The store's invariants hold after each run.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "bulk.h"
#include "fake_conn.h"
#include "fuzz_util.h"
#include "pool.h"

static const char *const queries[] = {"", "on_conflict=skip",
				      "on_conflict=update", "on_conflict=no"};

struct wait {
	int woken; /* -1, or the last BULK_IMPORT_MORE / _DONE */
};

static void wake_cb(void *ctx, int what)
{
	((struct wait *)ctx)->woken = what;
}

/* Run the loop (the pool's batches) until the import wakes with what. */
static void wait_for(struct server *srv, struct wait *w, int what)
{
	for (unsigned spins = 0; w->woken != what; spins++) {
		FUZZ_CHECK(spins < 1000000, "the import never woke (%d)", what);
		event_base_loop(srv->base, EVLOOP_ONCE);
	}
	w->woken = -1;
}

static void feed(struct server *srv, struct bulk_import *im, struct wait *w,
		 const char *p, size_t n)
{
	if (!bulk_import_feed(im, "fuzz", 4, p, n))
		wait_for(srv, w, BULK_IMPORT_MORE);
}

/* Import body[0..n) into a fresh store, in pieces when seed is non-zero;
 * the result (or the error code) into out. */
static int run(const char *q, const char *body, size_t n, size_t pad,
	       unsigned seed, struct ud_buf *out)
{
	struct server *srv = fake_server_open();
	struct wait w = {-1};
	struct bulk_import *im =
	    bulk_import_new(srv, q, strlen(q), wake_cb, &w);
	struct ud_error err = {0};
	int rc;

	FUZZ_CHECK(im != NULL, "bulk_import_new");
	if (!seed) {
		feed(srv, im, &w, body, n);
	} else {
		for (size_t off = 0; off < n;) {
			size_t k =
			    1 + (seed = seed * 1103515245u + 12345u) % 32u;
			if (off + 64 < pad) /* big pieces through the padding */
				k <<= 12;
			k = k < n - off ? k : n - off;
			feed(srv, im, &w, body + off, k);
			off += k;
		}
	}
	if (bulk_import_end(im) == 1)
		wait_for(srv, &w, BULK_IMPORT_DONE);
	rc = bulk_import_finish(im, out, &err);
	FUZZ_CHECK(rc == 0 || err.message[0], "an error without a reason");
	bulk_import_free(im);
	FUZZ_CHECK(!pool_inflight(srv->pool), "jobs left in the pool");
	fake_server_close();
	return rc;
}

struct ref {
	unsigned lines, nonblank, overlong[64], noverlong;
};

static void ref_split(const char *b, size_t n, struct ref *r)
{
	for (size_t off = 0; off < n;) {
		const char *nl = memchr(b + off, '\n', n - off);
		size_t len = nl ? (size_t)(nl - (b + off)) : n - off, k = len;
		bool blank = true;

		r->lines++;
		if (len > BULK_LINE_MAX) {
			if (r->noverlong < 64)
				r->overlong[r->noverlong++] = r->lines;
			r->nonblank++;
		} else {
			if (k && b[off + k - 1] == '\r')
				k--;
			for (size_t i = 0; i < k; i++)
				blank &=
				    b[off + i] == ' ' || b[off + i] == '\t';
			r->nonblank += !blank;
		}
		off += len + 1;
	}
}

static json_int_t count(json_t *data, const char *key)
{
	json_t *v = json_object_get(data, key);
	FUZZ_CHECK(json_is_integer(v), "no %s", key);
	return json_integer_value(v);
}

static void check_result(const struct ud_buf *out, const struct ref *r)
{
	json_error_t jerr;
	json_t *root = json_loadb(out->data, out->len, 0, &jerr);
	json_t *data = json_object_get(root, "data"), *errors, *e;
	json_int_t failed, total, last = 0;
	size_t i;

	FUZZ_CHECK(root && json_is_object(data), "result %.*s", (int)out->len,
		   out->data);
	failed = count(data, "failed");
	total = count(data, "created") + count(data, "updated") +
		count(data, "skipped") + failed;
	FUZZ_CHECK(total == r->nonblank, "%lld lines counted, %u not blank",
		   (long long)total, r->nonblank);
	errors = json_object_get(data, "errors");
	FUZZ_CHECK(
	    json_is_array(errors) &&
		(json_int_t)json_array_size(errors) ==
		    (failed < BULK_ERRORS_MAX ? failed : BULK_ERRORS_MAX),
	    "%zu errors for %lld failed", json_array_size(errors),
	    (long long)failed);
	json_array_foreach(errors, i, e)
	{
		json_int_t line =
		    json_integer_value(json_object_get(e, "line"));
		FUZZ_CHECK(line > last && line <= r->lines,
			   "error line %lld after %lld (%u lines)",
			   (long long)line, (long long)last, r->lines);
		last = line;
	}
	for (unsigned k = 0; k < r->noverlong && failed <= BULK_ERRORS_MAX;
	     k++) {
		bool seen = false;
		json_array_foreach(errors, i, e)
		{
			seen |=
			    json_integer_value(json_object_get(e, "line")) ==
				r->overlong[k] &&
			    !strcmp(
				json_string_value(json_object_get(e, "code"))
				    ?: "",
				"payload_too_large");
		}
		FUZZ_CHECK(seen, "line %u over the limit not reported",
			   r->overlong[k]);
	}
	json_decref(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ud_buf whole = {0}, cut = {0};
	struct ref r = {0};
	static char *body;
	static size_t cap;
	size_t pad, n;
	const char *q;
	int rc1, rc2;

	if (size < 2)
		return 0;
	q = queries[data[0] & 3];
	pad = (data[0] & 0xfc) == 0x1c ? BULK_LINE_MAX - 128 + data[1] : 0;
	n = pad + size - 2;
	/* one buffer kept across inputs: a fresh megabyte each time costs
	 * more in page faults than the import itself */
	if (n > cap) {
		free(body);
		body = malloc(cap = n);
		FUZZ_CHECK(body != NULL, "malloc");
	}
	memset(body, ' ', pad);
	memcpy(body + pad, data + 2, size - 2);

	rc1 = run(q, body, n, pad, 0, &whole);
	rc2 = run(q, body, n, pad, 1u + data[1], &cut);
	FUZZ_CHECK(rc1 == rc2, "whole %d, in pieces %d", rc1, rc2);
	if ((data[0] & 3) == 3) {
		FUZZ_CHECK(rc1 == UD_EINVAL, "bad query: %d", rc1);
	} else {
		FUZZ_CHECK(rc1 == 0, "import failed: %d", rc1);
		FUZZ_CHECK(whole.len == cut.len &&
			       !memcmp(whole.data, cut.data, whole.len),
			   "whole: %.*s\nin pieces: %.*s", (int)whole.len,
			   whole.data, (int)cut.len, cut.data);
		ref_split(body, n, &r);
		check_result(&whole, &r);
	}
	ud_buf_free(&whole);
	ud_buf_free(&cut);
	return 0;
}
