#ifndef CZLIB_SHIM_H
#define CZLIB_SHIM_H
/* The one place the package includes zlib. ZLIB_CONST makes next_in and msg const, so Swift sees
   the input as UnsafePointer. deflateInit2 and inflateInit2 are macros that pass zlib's version
   and the size of z_stream, which Swift cannot call: the wrappers below do. */
#define ZLIB_CONST
#include <zlib.h>

/* deflateInit2 with DEFLATE (Z_DEFLATED), the only method there is. windowBits 8..15 for zlib
   framing, 24..31 for gzip framing. */
static inline int CZlib_deflateInit2(z_stream *strm, int level, int windowBits, int memLevel, int strategy) {
    return deflateInit2(strm, level, Z_DEFLATED, windowBits, memLevel, strategy);
}

/* inflateInit2: windowBits 8..15 for zlib framing, 24..31 for gzip framing. */
static inline int CZlib_inflateInit2(z_stream *strm, int windowBits) {
    return inflateInit2(strm, windowBits);
}
#endif
