/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gfpool_vol_xml.h: the <volume> document that `virsh vol-create` takes and
 * `virsh vol-dumpxml` prints, and libvirt's size units. Pure code.
 */
#pragma once

#include "gfpool_source.h"

typedef struct {
    char *name;
    char *key;              /* output only */
    char *type;             /* "network", "netdir"; output only */
    guint64 capacity;
    gboolean has_capacity;
    guint64 allocation;
    gboolean has_allocation;
    char *format;           /* <target><format type=''/>, or NULL */
    char *path;             /* <target><path>, output only */
    gint64 mode;            /* -1 = not given */
    gint64 uid;
    gint64 gid;
    char *backing_path;     /* <backingStore><path> */
    char *backing_format;
    guint32 cluster_size;   /* <target><clusterSize> (libvirt >= 7.4), 0 = none */
    gboolean format_probed; /* output only: the volume has no format record,
                             * said in a comment (libvirt's schema has no
                             * element for it) */
} GfpoolVolDef;

GfpoolVolDef *gfpool_vol_def_new(void);
void gfpool_vol_def_free(GfpoolVolDef *def);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(GfpoolVolDef, gfpool_vol_def_free)

GfpoolVolDef *gfpool_vol_def_parse(const char *xml, gsize len, GError **error);
char *gfpool_vol_def_format(const GfpoolVolDef *def);

/*
 * A size with libvirt's units, as virsh and <capacity unit=''> take them:
 * b/bytes; k/K/KiB/kib = 1024, KB = 1000; same for M, G, T, P, E. A bare
 * number is bytes (default_unit NULL) or in default_unit. Fails on
 * overflow, negative numbers and unknown units, naming the value.
 */
gboolean gfpool_parse_size(const char *num, const char *unit, const char *default_unit,
                           guint64 *out, GError **error);
/* "10G" style: number immediately followed by an optional unit. */
gboolean gfpool_parse_scaled(const char *str, guint64 *out, GError **error);
