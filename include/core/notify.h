/* notify: tells the service manager how the daemon is doing, with systemd's
 * sd_notify(3) datagram protocol but without libsystemd. Under a unit with
 * Type=notify, systemd sets $NOTIFY_SOCKET; the daemon sends "READY=1" once
 * every shard listens, "RELOADING=1" then "READY=1" around a SIGHUP reload
 * and "STOPPING=1" on shutdown. Without $NOTIFY_SOCKET every call is a no-op,
 * so the daemon behaves the same outside systemd.
 *
 * Each message is one datagram on a fresh AF_UNIX SOCK_DGRAM socket, sent
 * without blocking (a full receive queue is an error, never a stall). A
 * socket name starting with '@' is an abstract socket (the '@' stands for
 * the leading NUL byte). Any thread may call these; main.c calls them from
 * the main thread. */
#ifndef LLMROUTER_NOTIFY_H
#define LLMROUTER_NOTIFY_H

/* Largest message notify_sendf formats; longer ones fail with -EMSGSIZE. */
#define NOTIFY_MAX_MESSAGE 1024

/* Sends state (newline-separated "KEY=value" assignments, e.g.
 * "READY=1\nSTATUS=listening") as one datagram to the socket named by
 * socket_name ("/path" or "@abstract"). state and socket_name are borrowed.
 * Returns 0 once sent, or a negative errno value: -EINVAL for a name that is
 * neither absolute nor abstract, -ENAMETOOLONG for one that does not fit a
 * sockaddr_un, or the error of socket(2)/sendto(2) (-EAGAIN when the
 * receiver's queue is full). */
int notify_send_to(const char *socket_name, const char *state);

/* Sends state to $NOTIFY_SOCKET. Returns 1 when the variable is unset or
 * empty (nothing to do), otherwise what notify_send_to returns. */
int notify_send(const char *state);

/* notify_send with a printf-style message of at most NOTIFY_MAX_MESSAGE - 1
 * bytes. */
int notify_sendf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
