//! Giving memory back to the operating system once a burst of work is over.
//!
//! glibc's malloc keeps what a program frees for reuse, in one arena per
//! thread that allocated it, and returns little of it: after 40 concurrent
//! exports the server held 127 MB where it had held 15 MB, and still did
//! when idle (bench/export-load.sh). Two settings bring it back down: large
//! blocks (an export's pages of encoded rows) are mapped on their own and
//! unmapped when freed, and the free pages inside the arenas are handed back
//! when an export ends. Elsewhere than Linux with glibc both do nothing.

/// Blocks of at least this many bytes are mapped on their own. glibc's
/// default starts at 128 KiB but rises to the largest block freed so far
/// (up to 32 MiB), after which an export's pages come from, and stay in, the
/// arenas; fixing the threshold keeps them out.
const MMAP_THRESHOLD_BYTES: i32 = 128 * 1024;

/// Sets the allocator up for the server (once, at start).
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes glibc's allocation parameters; it is
    // thread-safe and takes no pointers.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES);
    }
}

/// Hands the whole free pages of every arena back to the system (after a
/// large piece of work, such as an export, has freed its memory).
pub fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim walks glibc's own arenas under their locks and
    // takes no pointers.
    unsafe {
        libc::malloc_trim(0);
    }
}
