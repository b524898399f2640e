#ifndef CLVM2CMD_SHIM_H
#define CLVM2CMD_SHIM_H
/* The one place the package includes liblvm2cmd (Debian liblvm2-dev). */
#include <lvm2cmd.h>
#endif
