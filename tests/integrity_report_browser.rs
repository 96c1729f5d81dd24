//! The shipped report loads in a real headless browser (Chromium's
//! headless shell, installed by `scripts/test.sh`) without a console
//! message, and the browser's DOM holds every chart. The checker itself
//! is shown to catch a script error and a malformed SVG path.

mod common;
mod research;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use research::{project, reports, workflow};

/// The browser: `ADMF_CHROMIUM`, or the first of the headless shell and
/// the full browser found on PATH. Fails loudly when there is none.
fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("ADMF_CHROMIUM") {
        return PathBuf::from(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in ["chromium-headless-shell", "chromium"] {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "no chromium-headless-shell or chromium on PATH: scripts/test.sh installs it \
         (apt-get install chromium-headless-shell), or set ADMF_CHROMIUM"
    );
}

/// What the browser made of a page: the DOM after loading it, and every
/// console message it logged (script errors, SVG attributes it could not
/// parse).
struct Load {
    dom: String,
    console: Vec<String>,
}

fn load(page: &Path) -> Load {
    let profile = tempfile::tempdir().unwrap();
    let url = format!("file://{}", page.canonicalize().unwrap().display());
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(&url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromium().display()));
    // Read both pipes while waiting, so that a full pipe cannot stall it.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        stdout.read_to_string(&mut s).map(|_| s)
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        stderr.read_to_string(&mut s).map(|_| s)
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the browser did not finish loading {url} within 90 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let dom = out.join().unwrap().unwrap();
    let log = err.join().unwrap().unwrap();
    assert!(
        status.success(),
        "the browser failed ({status}) on {url}:\n{log}"
    );
    assert!(
        dom.contains("</html>"),
        "the browser printed no DOM for {url}:\n{log}"
    );
    let console = log
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_string)
        .collect();
    Load { dom, console }
}

#[test]
fn the_checker_sees_script_errors_and_broken_svg() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("broken.html");
    std::fs::write(
        &page,
        "<!DOCTYPE html><html><body><script>undefined_function();</script>\
         <svg width=\"10\" height=\"10\"><path d=\"M 0 0 L x\"/></svg></body></html>",
    )
    .unwrap();
    let loaded = load(&page);
    assert_eq!(loaded.console.len(), 2, "{:?}", loaded.console);
    assert!(loaded.console[0].contains("undefined_function is not defined"));
    assert!(loaded.console[1].contains("<path> attribute d"));
}

#[test]
fn the_shipped_reports_load_without_a_console_message() {
    let p = project();
    for name in ["parameter_optimization", "walk_forward", "simple_backtest"] {
        let (out, _) = p.build(&[&workflow(name)]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        for page in reports(&out) {
            let source = std::fs::read_to_string(&page).unwrap();
            let charts = source.matches("<svg").count();
            let loaded = load(&page);
            assert!(
                loaded.console.is_empty(),
                "{}: {:?}",
                page.display(),
                loaded.console
            );
            // Every chart is in the browser's DOM, drawn (it holds
            // paths or shapes), and the header came through.
            assert_eq!(
                loaded.dom.matches("<svg").count(),
                charts,
                "{}",
                page.display()
            );
            for svg in loaded.dom.split("<svg").skip(1) {
                let body = &svg[..svg.find("</svg>").expect("a closed <svg>")];
                assert!(
                    body.contains("<path") || body.contains("<rect") || body.contains("<polyline"),
                    "{}: an empty chart",
                    page.display()
                );
            }
            assert!(loaded.dom.contains("<h1>"), "{}", page.display());
        }
    }
}
