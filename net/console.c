/*
 * console.c -- path lookup and header parsing for the packed console files;
 * see console.h.
 */
#include "console.h"

#include <string.h>
#include <strings.h>

bool console_path(const char *p, size_t n)
{
	size_t k = sizeof CONSOLE_PREFIX - 1;
	return n >= k && !memcmp(p, CONSOLE_PREFIX, k) &&
	       (n == k || p[k] == '/');
}

const struct console_file *console_find(const char *p, size_t n)
{
	size_t k = sizeof CONSOLE_PREFIX; /* with the slash */
	if (!console_path(p, n) || n < k)
		return NULL;
	const char *name = p + k;
	size_t nl = n - k;
	if (nl == 0)
		name = "index.html", nl = 10;
	for (size_t i = 0; i < console_nfiles; i++) {
		const struct console_file *f = &console_files[i];
		if (strlen(f->name) == nl && !memcmp(f->name, name, nl))
			return f;
	}
	return NULL;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t';
}

/* The next comma-separated element of v[*i..n), trimmed. */
static bool list_next(const char *v, size_t n, size_t *i, const char **e,
		      size_t *el)
{
	while (*i < n && (is_space(v[*i]) || v[*i] == ','))
		(*i)++;
	if (*i >= n)
		return false;
	size_t s = *i;
	while (*i < n && v[*i] != ',')
		(*i)++;
	size_t t = *i;
	while (t > s && is_space(v[t - 1]))
		t--;
	*e = v + s;
	*el = t - s;
	return true;
}

/* q=0, q=0.0, q=0.00, q=0.000 after the coding's ';' */
static bool q_zero(const char *s, size_t n)
{
	while (n && (is_space(*s) || *s == ';'))
		s++, n--;
	if (n < 3 || strncasecmp(s, "q=0", 3))
		return false;
	for (size_t i = 3; i < n; i++)
		if (s[i] != '.' && s[i] != '0' && !is_space(s[i]))
			return false;
	return true;
}

bool console_accepts_gzip(const char *v, size_t n)
{
	size_t i = 0, el;
	const char *e;
	while (list_next(v, n, &i, &e, &el)) {
		const char *semi = memchr(e, ';', el);
		size_t tl = semi ? (size_t)(semi - e) : el;
		while (tl && is_space(e[tl - 1]))
			tl--;
		if (tl == 4 && !strncasecmp(e, "gzip", 4))
			return !semi || !q_zero(semi, el - (size_t)(semi - e));
	}
	return false;
}

bool console_etag_matches(const char *v, size_t n, const char *etag)
{
	size_t i = 0, el, tl = strlen(etag);
	const char *e;
	while (list_next(v, n, &i, &e, &el)) {
		if (el == 1 && *e == '*')
			return true;
		if (el > 2 && e[0] == 'W' && e[1] == '/')
			e += 2, el -= 2;
		if (el == tl && !memcmp(e, etag, tl))
			return true;
	}
	return false;
}
