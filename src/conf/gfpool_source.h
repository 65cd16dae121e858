/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gfpool_source.h: where a pool's images live: the gluster volume, the
 * directory inside it, and every server that can hand out its volfile.
 *
 * Pure data, shared by the XML/URI code (src/conf), the gfapi core
 * (src/storage) and the CLI. No I/O here.
 */
#pragma once

#include <glib.h>

#define GFPOOL_DEFAULT_PORT 24007

typedef enum {
    GFPOOL_TRANSPORT_TCP = 0,
    GFPOOL_TRANSPORT_UNIX,
    GFPOOL_TRANSPORT_RDMA,
    GFPOOL_TRANSPORT_LAST
} GfpoolTransport;

const char *gfpool_transport_to_string(GfpoolTransport t);
/* Returns -1 for an unknown name. */
int gfpool_transport_from_string(const char *s);

typedef struct {
    GfpoolTransport transport;
    char *name;     /* hostname, IPv4 or IPv6 (no brackets); NULL for unix */
    int port;       /* 0 = not given (gfapi's default 24007) */
    char *socket;   /* unix only */
} GfpoolHost;

typedef struct {
    char *volume;   /* gluster volume name */
    char *dir;      /* directory inside the volume, always starts with '/'; "/" for the root */
    GPtrArray *hosts;  /* of GfpoolHost*, in the order gfapi should try them */
} GfpoolSource;

GfpoolHost *gfpool_host_new(GfpoolTransport transport, const char *name,
                            int port, const char *socket);
GfpoolHost *gfpool_host_copy(const GfpoolHost *h);
void gfpool_host_free(GfpoolHost *h);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(GfpoolHost, gfpool_host_free)

GfpoolSource *gfpool_source_new(void);
GfpoolSource *gfpool_source_copy(const GfpoolSource *src);
void gfpool_source_free(GfpoolSource *src);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(GfpoolSource, gfpool_source_free)

/* "host1:24007,host2,unix:/run/x.sock" style summary for error messages. */
char *gfpool_source_hosts_string(const GfpoolSource *src);

/* Error domain for everything in src/conf. */
#define GFPOOL_CONF_ERROR (gfpool_conf_error_quark())
GQuark gfpool_conf_error_quark(void);
typedef enum {
    GFPOOL_CONF_ERROR_INVALID,   /* malformed input: the message names the value and the rule */
} GfpoolConfError;
