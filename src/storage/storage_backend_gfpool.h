/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * storage_backend_gfpool.h: the pool backend module's one entry point.
 * The guard that libvirtd loads as libvirt_storage_backend_gluster.so
 * (src/guard/gfpool_module_guard.c) finds it by name in
 * gfpool_storage_backend.so; module.syms exports it and nothing else of
 * the adapter.
 */
#pragma once

int gfpoolStorageBackendRegister(void);
