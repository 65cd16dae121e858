/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gfpool_volinfo_xml.h: what `gluster --xml volume info all` says, as pool
 * sources (find-storage-pool-sources). Pure code.
 */
#pragma once

#include "gfpool_source.h"

/*
 * One GfpoolSource per gluster volume: its name, dir "/", and hosts: the
 * queried host first (it answered), then every other host that holds a
 * brick, in brick order. GPtrArray of GfpoolSource*; errors name what is
 * wrong with the document or the CLI's opErrstr.
 */
GPtrArray *gfpool_volinfo_parse(const char *xml, gsize len, const GfpoolHost *queried,
                                GError **error);

/* <sources><source><host name=.../>...<dir path='/'/><name>VOL</name></source>...</sources>
 * as libvirt's find-storage-pool-sources prints it. */
char *gfpool_sources_format(const GPtrArray *sources);
