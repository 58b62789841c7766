/*
 * test_console.c -- the console's path lookup and header parsing
 * (console.h), and the packed files themselves.
 */
#define _GNU_SOURCE /* memmem */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "console.h"

#define S(lit) lit, sizeof lit - 1

Test(console, paths)
{
	cr_assert(console_path(S("/console")));
	cr_assert(console_path(S("/console/")));
	cr_assert(console_path(S("/console/app.js")));
	cr_assert(!console_path(S("/consoles")));
	cr_assert(!console_path(S("/consol")));
	cr_assert(!console_path(S("/v1/console/")));
	cr_assert_null(console_find(S("/console")));
	const struct console_file *f = console_find(S("/console/"));
	cr_assert_not_null(f);
	cr_assert_str_eq(f->name, "index.html");
	cr_assert_eq(console_find(S("/console/index.html")), f);
	f = console_find(S("/console/app.js"));
	cr_assert_not_null(f);
	cr_assert_str_eq(f->ctype, "text/javascript; charset=utf-8");
	cr_assert_null(console_find(S("/console/app.j")));
	cr_assert_null(console_find(S("/console/app.jsx")));
	cr_assert_null(console_find(S("/console/../app.js")));
	cr_assert_null(console_find(S("/console//app.js")));
}

Test(console, packed_files)
{
	static const char *const need[] = {"index.html", "app.js",   "api.js",
					   "dom.js",	 "list.js",  "user.js",
					   "dialogs.js", "style.css"};
	for (size_t i = 0; i < sizeof need / sizeof need[0]; i++) {
		char path[64];
		snprintf(path, sizeof path, "/console/%s", need[i]);
		const struct console_file *f = console_find(path, strlen(path));
		cr_assert_not_null(f, "%s", need[i]);
		cr_assert_gt(f->raw_len, 0);
		cr_assert_eq(strlen(f->etag), 18);
		cr_assert(!f->gz || f->gz_len < f->raw_len);
		if (f->gz) /* gzip magic */
			cr_assert(f->gz[0] == 0x1f && f->gz[1] == 0x8b);
	}
	const struct console_file *idx = console_find(S("/console/"));
	cr_assert_null(memmem(idx->raw, idx->raw_len, "<script>", 8),
		       "no inline script");
	cr_assert_null(memmem(idx->raw, idx->raw_len, "style=", 6),
		       "no inline style");
}

Test(console, accept_encoding)
{
	cr_assert(console_accepts_gzip(S("gzip")));
	cr_assert(console_accepts_gzip(S("gzip, deflate, br")));
	cr_assert(console_accepts_gzip(S("br;q=1.0, GZIP;q=0.5")));
	cr_assert(console_accepts_gzip(S(" deflate ,gzip ")));
	cr_assert(!console_accepts_gzip(S("")));
	cr_assert(!console_accepts_gzip(S("identity")));
	cr_assert(!console_accepts_gzip(S("gzip;q=0")));
	cr_assert(!console_accepts_gzip(S("gzip; q=0.000")));
	cr_assert(!console_accepts_gzip(S("x-gzip")));
	cr_assert(!console_accepts_gzip(S("gzipped")));
	cr_assert(!console_accepts_gzip(NULL, 0));
}

Test(console, if_none_match)
{
	const char *tag = "\"0123456789abcdef\"";
	cr_assert(console_etag_matches(S("\"0123456789abcdef\""), tag));
	cr_assert(console_etag_matches(S("W/\"0123456789abcdef\""), tag));
	cr_assert(console_etag_matches(S("\"x\", \"0123456789abcdef\""), tag));
	cr_assert(console_etag_matches(S("*"), tag));
	cr_assert(!console_etag_matches(S("\"0123456789abcdee\""), tag));
	cr_assert(!console_etag_matches(S("0123456789abcdef"), tag));
	cr_assert(!console_etag_matches(S(""), tag));
	cr_assert(!console_etag_matches(NULL, 0, tag));
	cr_assert(!console_etag_matches(S("\"0123456789abcdef"), tag));
}
