/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gfpool_volume_priv.h: what the files behind gfpool_volume.h share among
 * themselves and nobody else calls, by the file that defines it.
 */
#pragma once

#include "gfpool_volume.h"

/* gfpool_probe_cache.c */

/* Drops the entries of files a complete listing did not see (seen: the
 * guint64 inode numbers it did): deleted volumes leave no entry behind. */
void gfpool_probe_cache_forget_missing(GfpoolProbeCache *cache, GHashTable *seen);

/* gfpool_refresh.c */

/* A temp file this process created and failed to remove: nobody writes it
 * any more, so the next sweep of its directory removes it at once. */
void gfpool_sweep_note_orphan(GfpoolConn *conn, const char *path);
