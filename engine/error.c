/*
 * error.c -- the project's one error table: enum ud_code to wire name and
 * HTTP status, and ud_error_set().
 */
#include <stdarg.h>
#include <stdio.h>

#include "userdb.h"

static const struct {
	const char *name;
	int http;
} code_table[] = {
    [0] = {"ok", 200},
    [-UD_EINVAL] = {"invalid_request", 400},
    [-UD_EUNAUTHORIZED] = {"unauthorized", 401},
    [-UD_ENOTFOUND] = {"not_found", 404},
    [-UD_EMETHOD] = {"method_not_allowed", 405},
    [-UD_EDUPEMAIL] = {"duplicate_email", 409},
    [-UD_EDUPID] = {"duplicate_id", 409},
    [-UD_EPRECONDITION] = {"precondition_failed", 412},
    [-UD_ETOOLARGE] = {"payload_too_large", 413},
    [-UD_EUNAVAILABLE] = {"unavailable", 503},
    [-UD_ENOMEM] = {"internal_error", 500},
    [-UD_EIO] = {"internal_error", 500},
    [-UD_ECORRUPT] = {"internal_error", 500},
    [-UD_ELOCKED] = {"internal_error", 500},
    [-UD_EINTERNAL] = {"internal_error", 500},
    [-UD_EGONE] = {"gone", 410},
    [-UD_EFORBIDDEN] = {"forbidden", 403},
};

#define CODE_COUNT (sizeof(code_table) / sizeof(code_table[0]))

const char *ud_code_name(int code)
{
	if (code > 0 || (size_t)-code >= CODE_COUNT)
		return "internal_error";
	return code_table[-code].name;
}

int ud_code_http_status(int code)
{
	if (code > 0 || (size_t)-code >= CODE_COUNT)
		return 500;
	return code_table[-code].http;
}

int ud_error_set(struct ud_error *err, int code, const char *field,
		 const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return code;
	err->code = code;
	err->field = field;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	return code;
}
