import CPlatform

/// glibc heap settings that keep an idle process small.
public enum ProcessMemory {
    /// Caps glibc's malloc arenas (by default eight per core): the threads here allocate little, and
    /// every arena keeps its own free memory resident. Call first in `main`, before threads exist.
    public static func limitArenas(_ count: Int32 = 2) {
        platform_limit_malloc_arenas(count)
    }

    /// Returns freed heap memory to the kernel.
    public static func trim() {
        platform_malloc_trim()
    }
}
