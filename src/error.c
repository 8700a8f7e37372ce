/* The error model: codes, their names and texts, and the thread-local last error. */
#include "internal.h"

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <string.h>

const char *sockit_version(void) { return SOCKIT_VERSION_STRING; }

int sockit_version_number(void) { return SOCKIT_VERSION_NUMBER; }

/* The system errno values a socket program meets, by name. POSIX names them all;
 * a code outside this list is reported as EUNKNOWN with strerror's text. */
#define SOCKIT_SYSERR_NAMES(X)                                                                     \
    X(EPERM)                                                                                       \
    X(ENOENT)                                                                                      \
    X(EINTR)                                                                                       \
    X(EIO)                                                                                         \
    X(ENXIO)                                                                                       \
    X(ENODEV)                                                                                      \
    X(EBADF)                                                                                       \
    X(EAGAIN)                                                                                      \
    X(ENOMEM)                                                                                      \
    X(EACCES)                                                                                      \
    X(EFAULT)                                                                                      \
    X(EBUSY)                                                                                       \
    X(EEXIST)                                                                                      \
    X(ENOTDIR)                                                                                     \
    X(EISDIR)                                                                                      \
    X(EINVAL)                                                                                      \
    X(ENFILE)                                                                                      \
    X(EMFILE)                                                                                      \
    X(ENOSPC)                                                                                      \
    X(EPIPE)                                                                                       \
    X(ERANGE)                                                                                      \
    X(ENAMETOOLONG)                                                                                \
    X(ENOSYS)                                                                                      \
    X(ENOTSOCK)                                                                                    \
    X(EDESTADDRREQ)                                                                                \
    X(EMSGSIZE)                                                                                    \
    X(EPROTOTYPE)                                                                                  \
    X(ENOPROTOOPT)                                                                                 \
    X(EPROTONOSUPPORT)                                                                             \
    X(ESOCKTNOSUPPORT)                                                                             \
    X(EOPNOTSUPP)                                                                                  \
    X(EPFNOSUPPORT)                                                                                \
    X(EAFNOSUPPORT)                                                                                \
    X(EADDRINUSE)                                                                                  \
    X(EADDRNOTAVAIL)                                                                               \
    X(ENETDOWN)                                                                                    \
    X(ENETUNREACH)                                                                                 \
    X(ENETRESET)                                                                                   \
    X(ECONNABORTED)                                                                                \
    X(ECONNRESET)                                                                                  \
    X(ENOBUFS)                                                                                     \
    X(EISCONN)                                                                                     \
    X(ENOTCONN)                                                                                    \
    X(ESHUTDOWN)                                                                                   \
    X(ETIMEDOUT)                                                                                   \
    X(ECONNREFUSED)                                                                                \
    X(EHOSTDOWN)                                                                                   \
    X(EHOSTUNREACH)                                                                                \
    X(EALREADY)                                                                                    \
    X(EINPROGRESS)                                                                                 \
    X(ECANCELED)

const char *sockit_errname(int code)
{
    switch (code) {
#define SOCKIT_OWN_NAME_(name, value, msg)                                                         \
    case value:                                                                                    \
        return #name;
        SOCKIT_ERRNO_MAP(SOCKIT_OWN_NAME_)
#undef SOCKIT_OWN_NAME_
    default:
        break;
    }
    /* EWOULDBLOCK and ENOTSUP share values with EAGAIN and EOPNOTSUPP on Linux, so
     * this is a chain of ifs rather than a switch that would reject duplicates. */
#define SOCKIT_SYS_NAME_(name)                                                                     \
    if (code == -(name))                                                                           \
        return #name;
    SOCKIT_SYSERR_NAMES(SOCKIT_SYS_NAME_)
#undef SOCKIT_SYS_NAME_
    return "EUNKNOWN";
}

const char *sockit_strerror(int code)
{
    switch (code) {
#define SOCKIT_OWN_TEXT_(name, value, msg)                                                         \
    case value:                                                                                    \
        return msg;
        SOCKIT_ERRNO_MAP(SOCKIT_OWN_TEXT_)
#undef SOCKIT_OWN_TEXT_
    default:
        break;
    }
    if (code == 0)
        return "Success";
    if (code < 0 && code > -4096) {
        /* strerrordesc_np returns static text and is thread-safe, unlike strerror. */
        const char *text = strerrordesc_np(-code);
        if (text != NULL)
            return text;
    }
    return "Unknown error";
}

int sockit__from_eai(int eai, int saved_errno)
{
    switch (eai) {
    case EAI_AGAIN:
        return SOCKIT_EAI_AGAIN;
    case EAI_BADFLAGS:
        return SOCKIT_EAI_BADFLAGS;
    case EAI_FAIL:
        return SOCKIT_EAI_FAIL;
    case EAI_FAMILY:
        return SOCKIT_EAI_FAMILY;
    case EAI_MEMORY:
        return SOCKIT_EAI_MEMORY;
    case EAI_NONAME:
        return SOCKIT_EAI_NONAME;
    case EAI_SERVICE:
        return SOCKIT_EAI_SERVICE;
    case EAI_SOCKTYPE:
        return SOCKIT_EAI_SOCKTYPE;
#ifdef EAI_NODATA
    case EAI_NODATA:
        return SOCKIT_EAI_NODATA;
#endif
#ifdef EAI_ADDRFAMILY
    case EAI_ADDRFAMILY:
        return SOCKIT_EAI_ADDRFAMILY;
#endif
    case EAI_SYSTEM:
        return saved_errno > 0 ? -saved_errno : SOCKIT_EAI_OTHER;
    default:
        return SOCKIT_EAI_OTHER;
    }
}

/* The last failure of this thread. The message is formatted lazily when the failure
 * came from sockit__fail, so a would-block in a hot loop costs two stores. */
static _Thread_local struct {
    int code;
    const char *op;
    bool formatted;
    char msg[1024];
} last;

int sockit__fail(int code, const char *op_static)
{
    last.code = code;
    last.op = op_static;
    last.formatted = false;
    return code;
}

int sockit__failf(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(last.msg, sizeof last.msg, fmt, ap);
    va_end(ap);
    /* Callers write only the context ("connect to localhost:80"); the reason is
     * appended here, and always survives: an over-long context is cut with "...". */
    const char *reason = sockit_strerror(code);
    size_t reason_len = strlen(reason);
    size_t used = n < 0 ? 0 : (size_t)n;
    if (used + 2 + reason_len + 1 > sizeof last.msg) {
        used = sizeof last.msg - (2 + reason_len + 1) - 3;
        memcpy(last.msg + used, "...", 3);
        used += 3;
    }
    memcpy(last.msg + used, ": ", 2);
    memcpy(last.msg + used + 2, reason, reason_len + 1);
    last.code = code;
    last.op = NULL;
    last.formatted = true;
    return code;
}

int sockit_errcode(void) { return last.code; }

const char *sockit_errmsg(void)
{
    if (!last.formatted) {
        if (last.code == 0)
            snprintf(last.msg, sizeof last.msg, "no error");
        else
            snprintf(last.msg, sizeof last.msg, "%s: %s", last.op ? last.op : "sockit",
                     sockit_strerror(last.code));
        last.formatted = true;
    }
    return last.msg;
}
