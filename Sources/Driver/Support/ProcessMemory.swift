internal import Storage

/// Heap settings for the executables: two malloc arenas instead of eight per core. The threads
/// here allocate little, and every arena keeps its own free memory resident. Call first in `main`.
public func limitMallocArenas() {
    ProcessMemory.limitArenas(2)
}
