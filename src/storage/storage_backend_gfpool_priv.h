/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * storage_backend_gfpool_priv.h: what the adapter's two files share (the
 * pool callbacks in storage_backend_gfpool.c, the streams in
 * storage_backend_gfpool_stream.c). Only these two files include it, with
 * libvirt's internal headers; every symbol stays inside the module (its
 * version script exports the register function alone, declared in
 * storage_backend_gfpool.h).
 */
#pragma once

#include "internal.h"
#include "storage_backend.h"
#include "virstorageobj.h"

#include "gfpool_data.h"

/*
 * One state per started pool, found by the pool's UUID: libvirt gives
 * backends no per-pool private data. It outlives nothing but the pool's
 * active period, except the probe cache, which is also on disk.
 */
typedef struct {
    gint refs;          /* the table's, plus one per callback using it */
    GfpoolConn *conn;
    GfpoolProbeCache *cache;
    char *cache_path;
    gint unreachable;   /* a call failed with ENOTCONN: reconnect next time */
    guint probed;       /* volumes without a format record at the last refresh */
    gint sweeping;      /* a sweep of temp names runs (gfpoolRefreshPool) */
} GfpoolPoolState;

GfpoolPoolState *gfpoolPoolStateGet(virStoragePoolObj *pool);
void gfpoolPoolStateUnref(GfpoolPoolState *state);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(GfpoolPoolState, gfpoolPoolStateUnref)
void gfpoolPoolStateNoteError(GfpoolPoolState *state, const GError *err);

const char *gfpoolErrorText(const GError *err);
void gfpoolReportError(const GError *err, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

/* storage_backend_gfpool_stream.c */
void gfpoolStreamInit(void);
bool gfpoolStreamUploadsSettle(const unsigned char *uuid);
int gfpoolUploadVol(virStoragePoolObj *pool, virStorageVolDef *vol, virStreamPtr stream,
                    unsigned long long offset, unsigned long long length, unsigned int flags);
int gfpoolDownloadVol(virStoragePoolObj *pool, virStorageVolDef *vol, virStreamPtr stream,
                      unsigned long long offset, unsigned long long length,
                      unsigned int flags);
