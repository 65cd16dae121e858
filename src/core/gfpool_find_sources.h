/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gfpool_find_sources.h: find-storage-pool-sources (gfpool_find_sources.c).
 */
#pragma once

#include "gfpool_source.h"

/*
 * find-storage-pool-sources: the gluster volumes the glusterd of one of
 * hosts serves, asking each host in turn (`gluster --remote-host`, with a
 * deadline of timeout_s seconds each) until one answers. GPtrArray of
 * GfpoolSource*.
 */
GPtrArray *gfpool_find_pool_sources(const GPtrArray *hosts, guint timeout_s, GError **error);
