/* privdrop: server.user / server.group — the process gives up root once
 * its sockets are bound (and its log files open), before any thread starts.
 * Main thread only, before the shard threads exist: setgroups, setgid and
 * setuid change the calling thread's credentials, and glibc's broadcast to
 * other threads is not something to rely on. */
#ifndef LLMROUTER_CORE_PRIVDROP_H
#define LLMROUTER_CORE_PRIVDROP_H

#include <stddef.h>
#include <sys/types.h>

/* Looks up a user (its uid and primary group) or a group by name. Returns
 * 0, ENOENT when there is no such name, or another errno value. Any
 * thread. */
int privdrop_find_user(const char *name, uid_t *uid, gid_t *gid);
int privdrop_find_group(const char *name, gid_t *gid);

/* Becomes user (its primary group, or group when not NULL, and the user's
 * supplementary groups from the group database). user NULL: nothing to
 * do, returns 0. Running unprivileged as that very user already: returns 0.
 * Otherwise every step must succeed, and afterwards regaining root must
 * fail; on any failure returns -1 with a message in err (the process may
 * then have dropped part of its privileges: the caller exits). */
int privdrop_apply(const char *user, const char *group, char *err, size_t errlen);

#endif
