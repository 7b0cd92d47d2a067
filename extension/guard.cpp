/*
 * extension/guard.cpp — raising what a guard caught (see guard.h).
 */
#include <cstring>

#include "extension/guard.h"

namespace pgfleet {

/* Keeps an error's parts, truncated to the fixed buffers. Cannot fail. */
void GuardFailure::set(int code, const char *msg, const char *det, const char *hnt) noexcept
{
    failed = true;
    sqlerrcode = code;
    strlcpy(message, msg ? msg : "", sizeof(message));
    strlcpy(detail, det ? det : "", sizeof(detail));
    strlcpy(hint, hnt ? hnt : "", sizeof(hint));
}

/* Raises the kept error; called only after the catch block has been left. */
void GuardFailure::raise() noexcept(false)
{
    if (pg_error != nullptr)
        ReThrowError(pg_error);
    ereport(ERROR, (errcode(sqlerrcode), errmsg_internal("%s", message),
                    detail[0] ? errdetail_internal("%s", detail) : 0, hint[0] ? errhint("%s", hint) : 0));
    pg_unreachable();
}

} // namespace pgfleet
