/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gfpool_uri.h: QEMU's gluster URI grammar, parse and format.
 *
 *   gluster[+transport]://[server[:port]]/volname/image[?socket=...]
 *
 * transport: tcp (default), unix (no server; socket= required), rdma.
 * server: hostname, IPv4, or IPv6 in brackets. Pure code.
 */
#pragma once

#include "gfpool_source.h"

typedef struct {
    GfpoolHost *host;   /* transport, name (NULL for unix), port (0 = none), socket */
    char *volume;       /* gluster volume name */
    char *path;         /* image path inside the volume, no leading '/' */
} GfpoolUri;

void gfpool_uri_free(GfpoolUri *uri);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(GfpoolUri, gfpool_uri_free)

/* NULL with GFPOOL_CONF_ERROR_INVALID naming the URI and what is wrong. */
GfpoolUri *gfpool_uri_parse(const char *str, GError **error);

/* Canonical text: "gluster://h:p/vol/path", "gluster+unix:///vol/path?socket=/s",
 * "gluster+rdma://[::1]/vol/path". tcp is written without "+tcp". Characters
 * outside RFC 3986's unreserved/sub-delims/":@/" in path are %-escaped. */
char *gfpool_uri_format(const GfpoolUri *uri);

/* The URI of image `name` of a pool through its host h (used for volume
 * keys/paths and vol-path). dir is the pool's directory ("/" or "/a/b"). */
char *gfpool_uri_for_volume(const GfpoolHost *h, const char *volume,
                            const char *dir, const char *name);

/*
 * The name of the pool volume a backing path refers to: a plain name (what
 * QEMU resolves in the overlay's directory, the pool dir), the volume's key
 * through any host of the pool, a gluster:// URI of it, or the
 * "json:{...gluster...}" name QEMU and libvirt write for an image reached
 * through several servers (an external snapshot's overlay on a pool with
 * every host). NULL for anything else: a path of another volume,
 * directory or cluster, a local path, a name with '/'.
 */
char *gfpool_uri_pool_volume_name(const GfpoolSource *src, const char *path);
