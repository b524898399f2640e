#ifndef CNGHTTP2_SHIM_H
#define CNGHTTP2_SHIM_H
/* The one place the package includes libnghttp2. Macros Swift cannot see are
   wrapped here as static inline functions. */
#include <nghttp2/nghttp2.h>
#endif
