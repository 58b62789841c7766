/*
 * names.c -- wire names of roles, statuses and activity-log events, and
 * their parsers.  The tables are the one place these strings are spelled.
 */
#include <string.h>

#include "userdb.h"

static const char *const role_names[UD_ROLES] = {
    [UD_ROLE_ADMIN] = "admin",
    [UD_ROLE_USER] = "user",
    [UD_ROLE_VIEWER] = "viewer",
};

static const char *const status_names[UD_STATUSES] = {
    [UD_STATUS_ACTIVE] = "active",
    [UD_STATUS_INACTIVE] = "inactive",
    [UD_STATUS_SUSPENDED] = "suspended",
};

static const char *const event_names[UD_EV__COUNT] = {
    [UD_EV_CREATED] = "user.created",
    [UD_EV_UPDATED] = "user.updated",
    [UD_EV_DELETED] = "user.deleted",
    [UD_EV_PASSWORD_CHANGED] = "user.password_changed",
    [UD_EV_PASSWORD_VERIFIED] = "user.password_verified",
    [UD_EV_SUSPENDED] = "user.suspended",
    [UD_EV_UNSUSPENDED] = "user.unsuspended",
    [UD_EV_IDENTITY_LINKED] = "user.identity_linked",
    [UD_EV_IDENTITY_REMOVED] = "user.identity_removed",
};

/* Index of s in names[0..count), exact match, or -1. */
static int names_find(const char *const *names, int count, const char *s,
		      size_t len)
{
	int i;

	if (!s)
		return -1;
	for (i = 0; i < count; i++)
		if (strlen(names[i]) == len && memcmp(names[i], s, len) == 0)
			return i;
	return -1;
}

const char *ud_role_name(int role)
{
	return role >= 0 && role < UD_ROLES ? role_names[role] : NULL;
}

const char *ud_status_name(int status)
{
	return status >= 0 && status < UD_STATUSES ? status_names[status]
						   : NULL;
}

int ud_role_parse(const char *s, size_t len)
{
	return names_find(role_names, UD_ROLES, s, len);
}

int ud_status_parse(const char *s, size_t len)
{
	return names_find(status_names, UD_STATUSES, s, len);
}

/* "user.created", ...; NULL when ev is not an enum ud_event. */
const char *ud_event_name(int ev)
{
	return ev >= 0 && ev < UD_EV__COUNT ? event_names[ev] : NULL;
}
