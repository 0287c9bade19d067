/* notify: sd_notify(3)'s wire protocol without libsystemd. A message is one
 * datagram of "KEY=value" lines on an AF_UNIX socket whose name comes from
 * $NOTIFY_SOCKET; systemd reads the sender's credentials from the socket, so
 * no handshake or reply is involved. A fresh socket per message keeps the
 * module stateless: messages are rare (start, reload, stop). */
#include "core/notify.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int notify_send_to(const char *socket_name, const char *state)
{
    struct sockaddr_un sa;
    size_t name_len = strlen(socket_name), state_len = strlen(state);
    socklen_t sa_len;
    ssize_t n;
    int fd, rc = 0;

    if (socket_name[0] != '/' && socket_name[0] != '@')
        return -EINVAL;
    /* abstract names are not NUL-terminated; paths need room for the NUL */
    if (name_len < 2 || name_len > sizeof sa.sun_path - (socket_name[0] == '/'))
        return name_len < 2 ? -EINVAL : -ENAMETOOLONG;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, socket_name, name_len);
    if (sa.sun_path[0] == '@') {
        sa.sun_path[0] = '\0';
        sa_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + name_len);
    } else {
        sa_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + name_len + 1);
    }

    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    n = sendto(fd, state, state_len, MSG_NOSIGNAL | MSG_DONTWAIT, (struct sockaddr *)&sa, sa_len);
    if (n < 0)
        rc = -errno;
    else if ((size_t)n != state_len)
        rc = -EMSGSIZE; /* a datagram is all or nothing; be safe anyway */
    close(fd);
    return rc;
}

int notify_send(const char *state)
{
    const char *name = getenv("NOTIFY_SOCKET");
    if (name == NULL || name[0] == '\0')
        return 1;
    return notify_send_to(name, state);
}

int notify_sendf(const char *fmt, ...)
{
    char msg[NOTIFY_MAX_MESSAGE];
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof msg)
        return -EMSGSIZE;
    return notify_send(msg);
}
