// mimalloc: the engine allocates many small, short-lived values (YAML and
// JSON trees, paths) and glibc's malloc showed up as a third of a no-op build.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::IsTerminal;

use clap::Parser;

/// mimalloc commits its arenas eagerly on Linux and then asks for
/// transparent huge pages on them (`MADV_HUGEPAGE`). Where the kernel
/// grants those on request (THP mode `madvise`), every first touch of an
/// arena's 2 MiB region faults in and zeroes a whole huge page, with
/// direct compaction: a quarter of a cold sweep's CPU time went there.
/// Committing on demand leaves the arenas without the request (mimalloc
/// only asks for huge pages on committed memory). Its own switch,
/// `MIMALLOC_ALLOW_THP=0`, would instead turn THP off with
/// `PR_SET_THP_DISABLE`, which every command admf starts would inherit.
/// Runs before `main`, ahead of the first allocation that reserves an
/// arena; an explicit `MIMALLOC_ARENA_EAGER_COMMIT` is left to rule.
#[cfg(target_os = "linux")]
mod allocator_options {
    use std::ffi::{c_int, c_long};

    /// `mi_option_arena_eager_commit` in mimalloc's `mi_option_t` (the
    /// fifth option in both the v2 and v3 headers `libmimalloc-sys`
    /// builds; that crate's Rust bindings do not name it).
    const ARENA_EAGER_COMMIT: c_int = 4;

    unsafe extern "C" {
        fn mi_option_set(option: c_int, value: c_long);
    }

    extern "C" fn commit_arenas_on_demand() {
        // SAFETY: both are plain C calls on static data; getenv reads a
        // NUL-terminated literal, and nothing else runs yet to race with.
        unsafe {
            if libc::getenv(c"MIMALLOC_ARENA_EAGER_COMMIT".as_ptr()).is_null() {
                mi_option_set(ARENA_EAGER_COMMIT, 0);
            }
        }
    }

    #[used]
    #[unsafe(link_section = ".init_array")]
    static SET_BEFORE_MAIN: extern "C" fn() = commit_arenas_on_demand;
}

fn main() {
    let cli = admf::cli::Cli::parse();
    match admf::commands::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            // A closed stderr must not turn an error into a panic.
            let _ = std::io::Write::write_all(&mut std::io::stderr(), e.render(color).as_bytes());
            std::process::exit(e.exit_code());
        }
    }
}
