internal import CLVM2Cmd

/// glibc heap settings that keep an idle process small.
public enum ProcessMemory {
    /// Caps glibc's malloc arenas (default: eight per core); call at start, before threads exist.
    public static func limitArenas(_ count: Int32) {
        _ = mallopt(M_ARENA_MAX, count)
    }

    /// Returns freed heap memory to the kernel.
    public static func trim() {
        _ = malloc_trim(0)
    }
}
