//! Artifacts are byte-identical whatever the number of jobs.

mod common;
mod research;

use research::{outputs, project, workflow};

#[test]
fn outputs_are_byte_identical_for_j1_and_j2() {
    let p = project();
    for name in ["parameter_optimization", "composite_research"] {
        let mut stores = Vec::new();
        for jobs in ["1", "2"] {
            let cache = p.path(&format!("cache-j{jobs}"));
            let (out, _) = p.build(&[
                &workflow(name),
                "-j",
                jobs,
                "--cache-dir",
                cache.to_str().unwrap(),
            ]);
            assert_eq!(out.code, 0, "{name} -j{jobs}:\n{}", out.stderr);
            stores.push(outputs(&cache));
        }
        assert!(!stores[0].is_empty());
        let names = |s: &[(String, Vec<u8>)]| s.iter().map(|f| f.0.clone()).collect::<Vec<_>>();
        assert_eq!(names(&stores[0]), names(&stores[1]), "{name}");
        for (a, b) in stores[0].iter().zip(&stores[1]) {
            assert!(a.1 == b.1, "{name}: {} differs between -j1 and -j2", a.0);
        }
    }
}
