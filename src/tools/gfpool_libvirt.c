/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gfpool_libvirt.c: reading a pool and a volume's backing chain from any
 * libvirt daemon, remote ones too, through libvirt's public client API only
 * (disk-xml --connect, virt-install-disk).
 */
#include <string.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "gfpool_disk_xml.h"
#include "gfpool_pool_xml.h"
#include "gfpool_uri.h"
#include "gfpool_vol_xml.h"

#include "gfpool_tools.h"

static void
libvirt_silent(void *opaque G_GNUC_UNUSED, virErrorPtr err G_GNUC_UNUSED)
{
    /* Errors are fetched and reported by us, once. */
}

static int
libvirt_fail(const char *what)
{
    virErrorPtr e = virGetLastError();
    g_printerr("gfpool: error: %s: %s\n", what, e && e->message ? e->message : "unknown libvirt error");
    return e && e->code == VIR_ERR_NO_STORAGE_VOL ? EXIT_NOT_FOUND : EXIT_FAILED;
}

/*
 * The image and its backing chain as libvirt reports them: the pool's
 * source from its XML, each volume's format from its XML (our module, or
 * any backend, probed it), backing stores resolved to volumes of the pool
 * by key. No gfapi: works against remote daemons.
 */
int
libvirt_chain(const char *uri, const char *poolname, const char *volname,
              GfpoolSource **srcp, GPtrArray **layersp)
{
    g_autoptr(GPtrArray) layers = g_ptr_array_new_with_free_func((GDestroyNotify)gfpool_disk_layer_free);
    g_autoptr(GfpoolPoolDef) def = NULL;
    g_autoptr(GError) err = NULL;
    g_autofree char *cur = g_strdup(volname);
    g_autofree char *xml = NULL;
    virConnectPtr conn;
    virStoragePoolPtr pool = NULL;
    int rc = EXIT_FAILED;

    virSetErrorFunc(NULL, libvirt_silent);
    if (!(conn = virConnectOpenReadOnly(uri)))
        return libvirt_fail("cannot connect to libvirt");
    if (!(pool = virStoragePoolLookupByName(conn, poolname))) {
        rc = libvirt_fail("cannot find the storage pool");
        goto out;
    }
    if (!(xml = virStoragePoolGetXMLDesc(pool, 0))) {
        rc = libvirt_fail("cannot read the pool's XML");
        goto out;
    }
    if (!(def = gfpool_pool_def_parse(xml, strlen(xml), &err))) {
        g_printerr("gfpool: error: pool '%s': %s\n", poolname, err->message);
        rc = EXIT_USAGE;
        goto out;
    }
    while (cur) {
        g_autoptr(GfpoolVolDef) vdef = NULL;
        g_autofree char *vxml = NULL;
        virStorageVolPtr vol;

        if (layers->len >= GFPOOL_BACKING_DEPTH_MAX) {
            g_printerr("gfpool: error: backing chain of '%s' is longer than %d images\n",
                       volname, GFPOOL_BACKING_DEPTH_MAX);
            goto out;
        }
        for (guint i = 0; i < layers->len; i++) {
            if (g_str_equal(((GfpoolDiskLayer *)g_ptr_array_index(layers, i))->name, cur)) {
                g_printerr("gfpool: error: backing chain of '%s' loops back to '%s'\n", volname, cur);
                goto out;
            }
        }
        if (!(vol = virStorageVolLookupByName(pool, cur))) {
            rc = libvirt_fail(cur);
            goto out;
        }
        vxml = virStorageVolGetXMLDesc(vol, 0);
        virStorageVolFree(vol);
        if (!vxml) {
            rc = libvirt_fail("cannot read the volume's XML");
            goto out;
        }
        if (!(vdef = gfpool_vol_def_parse(vxml, strlen(vxml), &err))) {
            g_printerr("gfpool: error: volume '%s': %s\n", cur, err->message);
            goto out;
        }
        g_ptr_array_add(layers, gfpool_disk_layer_new(cur, vdef->format ? vdef->format : "raw"));
        g_clear_pointer(&cur, g_free);
        if (vdef->backing_path &&
            !(cur = gfpool_uri_pool_volume_name(def->source, vdef->backing_path))) {
            g_printerr("gfpool: error: backing store '%s' of '%s' is not a volume of pool '%s'\n",
                       vdef->backing_path, vdef->name, poolname);
            goto out;
        }
    }
    *srcp = g_steal_pointer(&def->source);
    *layersp = g_steal_pointer(&layers);
    rc = EXIT_OK;
 out:
    if (pool)
        virStoragePoolFree(pool);
    virConnectClose(conn);
    return rc;
}
