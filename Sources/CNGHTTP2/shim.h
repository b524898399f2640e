#ifndef CNGHTTP2_SHIM_H
#define CNGHTTP2_SHIM_H
/* The one place the package includes libnghttp2. Only nghttp2's own header is
   included here: system calls live in CH2Sys, whose header has no system includes,
   so Glibc's module and this one never disagree about a system type. */
#include <nghttp2/nghttp2.h>
#endif
