/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gfpool_conn.h: one gfapi connection per started pool.
 *
 * gfapi has no connect timeout (glfs_init blocks forever against a host that
 * accepts TCP and never answers) and glfs_fini takes up to 10 s (it waits for
 * gfapi's call-bail timer). So: connects run in a worker thread and the
 * caller waits only up to a deadline; closes hand glfs_fini to a background
 * thread. Callers never block on either.
 */
#pragma once

#include <glusterfs/api/glfs.h>

#include "gfpool_source.h"

/* Deadline for glfs_init when the caller passes 0. Refused ports fail in
 * about 1 s and a healthy connect takes 7-30 ms, but on a loaded 2-core
 * box (bricks, QEMU TCG guests) 5 s was seen to cut off a healthy one; a
 * host that never answers is cut off here, within the 10 s users accept. */
#define GFPOOL_CONNECT_TIMEOUT_MS_DEFAULT 7000

typedef struct _GfpoolConn GfpoolConn;

/* Error domain of the gfapi core. Messages name the operation, the object
 * (volume, path, hosts) and gfapi's reason. */
#define GFPOOL_ERROR (gfpool_error_quark())
GQuark gfpool_error_quark(void);
typedef enum {
    GFPOOL_ERROR_FAILED,
    GFPOOL_ERROR_TIMEOUT,
    GFPOOL_ERROR_EXISTS,
    GFPOOL_ERROR_NOT_FOUND,
    GFPOOL_ERROR_INVALID,
    GFPOOL_ERROR_NOT_EMPTY,
    GFPOOL_ERROR_UNSUPPORTED,
    GFPOOL_ERROR_UNREACHABLE,   /* the servers are gone (ENOTCONN & co.) */
    GFPOOL_ERROR_DENIED,        /* a connect refused: TLS or the volume's auth */
} GfpoolErrorCode;

/* How long a server may stay silent before gfapi calls it dead (gluster's
 * network.ping-timeout, 42 s by default: a call on a hung server blocked 84 s
 * on the test bed; with 4 s it fails in 8 s). GFPOOL_PING_TIMEOUT overrides. */
#define GFPOOL_PING_TIMEOUT_S 4

/* Map an errno from gfapi to our codes. */
GfpoolErrorCode gfpool_error_from_errno(int err);

/* What a front end shows for a failed core call: err's message, or, for a
 * call that failed without setting one (a bug of ours), a sentence saying
 * so instead of a NULL dereference. */
const char *gfpool_error_text(const GError *err);

/*
 * Connect to src->volume through every host of src (in order: gfapi fails
 * over to the next volfile server), and check that src->dir exists.
 * timeout_ms 0 = GFPOOL_CONNECT_TIMEOUT_MS_DEFAULT, overridable with the
 * environment variable GFPOOL_CONNECT_TIMEOUT_MS.
 * On timeout the half-made connection is left to its worker thread, which
 * finalizes it if glfs_init ever returns.
 */
typedef enum {
    /* Don't insist that src->dir exists (pool-build creates it). */
    GFPOOL_CONN_OPEN_NO_DIR = 1 << 0,
} GfpoolConnOpenFlags;

GfpoolConn *gfpool_conn_open(const GfpoolSource *src, guint timeout_ms,
                             GError **error);
GfpoolConn *gfpool_conn_open_flags(const GfpoolSource *src, guint timeout_ms,
                                   unsigned int flags, GError **error);

/*
 * Connections shared by every caller that names the same volume through
 * the same hosts (in order), for callers that open often and briefly:
 * libvirt's storage-file layer opens one per image of a backing chain at
 * every guest start, where a connection of its own costs glfs_init plus a
 * 10 s glfs_fini. A put keeps the connection for GFPOOL_CONN_IDLE_S (60 s)
 * after its last user, then closes it in the background. The connection
 * is to the whole volume (src->dir is not looked at).
 */
GfpoolConn *gfpool_conn_cache_get(const GfpoolSource *src, GError **error);
void gfpool_conn_cache_put(GfpoolConn *conn);

/*
 * A started pool's connection: a fresh one to src's volume and hosts, seen
 * through src->dir (which must exist unless GFPOOL_CONN_OPEN_NO_DIR). It
 * becomes the cached connection of its key (an older one closes after its
 * last put), and gfpool_conn_close of it is a put. So a running pool and
 * libvirt's checks of the chains of its guests' disks use one connection;
 * when both of gfpool's modules are in one daemon they share one cache
 * too (gfpool_conn_cache.c).
 */
GfpoolConn *gfpool_conn_cache_open(const GfpoolSource *src, unsigned int flags,
                                   GError **error);

/*
 * Whether the volume's settings changed since conn was made (its volfile
 * differs), or management TLS was switched (/var/lib/glusterd/secure-access
 * appeared or went). gfapi applies an option change to a running client in
 * place, and protocol/client's reconfigure() never reaches its transports:
 * they keep the TLS and source-port settings they were built with, so
 * after a volume locked down with client.ssl and client.bind-insecure off
 * is restarted its bricks refuse such a client for good; and gfapi reads
 * secure-access only in glfs_init. A fresh connection has the new
 * settings; callers that keep connections replace an outdated one once a
 * fresh connect works.
 */
gboolean gfpool_conn_outdated(GfpoolConn *conn);

/* The servers were seen gone through conn (ENOTCONN: gfapi repairs that
 * only at its next reconnect tick): later gets open a fresh connection and
 * this one is closed after its last put. */
void gfpool_conn_cache_discard(GfpoolConn *conn);

/* For the cache only: a connection using shared's glfs_t, and the
 * connection a view uses (NULL for one that owns its glfs_t). */
GfpoolConn *gfpool_conn_view_new(GfpoolConn *shared, const GfpoolSource *src,
                                 unsigned int flags, GError **error);
GfpoolConn *gfpool_conn_view_shared(GfpoolConn *conn);

/* Returns at once; glfs_fini runs in a background thread. NULL is fine. */
void gfpool_conn_close(GfpoolConn *conn);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(GfpoolConn, gfpool_conn_close)

/* For short-lived processes (the CLI): drop the connection without
 * finalizing it; the caller is about to exit and all its fds are closed. */
void gfpool_conn_abandon(GfpoolConn *conn);

glfs_t *gfpool_conn_glfs(GfpoolConn *conn);
const GfpoolSource *gfpool_conn_source(GfpoolConn *conn);

/* Whether glfs_copy_file_range can be trusted on this volume (see
 * gfpool_conn.c: only single-brick volumes with glusterfs 10.3). */
gboolean gfpool_conn_server_copy_safe(GfpoolConn *conn);

/* The pool dir as gfapi must be given it: "/." for the root. gfapi does
 * not check its lookup of exactly "/" (glfs_resolve_at ignores what
 * glfs_resolve_root returns): with the bricks unreachable glfs_stat("/")
 * succeeds with a zeroed stat and glfs_opendir("/") fails with ENOTDIR,
 * where "/." reports the lookup's own error (ENOTCONN). */
const char *gfpool_conn_dir(GfpoolConn *conn);

/* Path of name inside the pool dir, as gfapi wants it ("/dir/name"). */
char *gfpool_conn_path(GfpoolConn *conn, const char *name);

/* glfs_open of a path of the pool, once more if the first one met a stale
 * inode; NULL with errno set (ESTALE only if the second met one too). */
glfs_fd_t *gfpool_conn_open_file(GfpoolConn *conn, const char *path, int flags);

/* The one way the core turns an errno into *error: the code from
 * gfpool_error_from_errno, the message "WHAT on gluster volume 'VOL':
 * strerror", or "WHAT: strerror" with conn NULL (a caller that names the
 * volume itself, or prefixes the message later). Returns FALSE. */
gboolean gfpool_set_error_errno(GError **error, int err, GfpoolConn *conn, const char *fmt,
                                ...) G_GNUC_PRINTF(4, 5);

/* Refuses (GFPOOL_ERROR_INVALID) a range gfapi's off_t cannot hold. */
gboolean gfpool_range_check(const char *what, guint64 off, guint64 len, GError **error);

/* GfpoolReadFunc / GfpoolWriteFunc (gfpool_image.h) over a glfs_fd_t*
 * passed as the opaque pointer: the read returns less than asked only at
 * the end of the file; the write writes everything or fails. */
gssize gfpool_glfs_fd_read(void *fd, guint64 off, void *buf, gsize len, GError **error);
gboolean gfpool_glfs_fd_write(void *fd, guint64 off, const void *buf, gsize len,
                              GError **error);
/* Zeros over [off, off + len): written by the bricks themselves where the
 * volume can (zerofill), else sent. */
gboolean gfpool_glfs_fd_zero(glfs_fd_t *fd, guint64 off, guint64 len, GError **error);
/* The next data extent of fd at or after off, before end: [*data, *data +
 * *len); FALSE when there is none (only a hole up to end). Where gfapi
 * cannot tell holes from data, everything is data. */
gboolean gfpool_glfs_fd_next_data(glfs_fd_t *fd, guint64 off, guint64 end,
                                  guint64 *data, guint64 *len);
