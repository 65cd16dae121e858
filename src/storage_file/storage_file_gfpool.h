/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * storage_file_gfpool.h: the storage-file backend module's one entry
 * point. The guard that libvirt loads as libvirt_storage_file_gluster.so
 * (src/guard/gfpool_module_guard.c) finds it by name in
 * gfpool_storage_file.so; file_module.syms exports it.
 */
#pragma once

int gfpoolStorageFileRegister(void);
