// mimalloc: the engine allocates many small, short-lived values (YAML and
// JSON trees, paths) and glibc's malloc showed up as a third of a no-op build.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::IsTerminal;

use clap::Parser;

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
