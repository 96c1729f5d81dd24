//! The loaders on the two shipped data files and on bad files.

use std::path::{Path, PathBuf};

use admf::error::Error;
use admf::market::{BadRowPolicy, Frequency, load_csv};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(name)
}

#[test]
fn daily_file_loads_with_its_quirks() {
    let l = load_csv(&data("SPY_D.csv"), "SPY", BadRowPolicy::Error).unwrap();
    let b = &l.bars;
    assert_eq!(b.len(), 5241);
    assert_eq!((l.dropped, l.fixed), (0, 0));
    assert_eq!(b.ts_text[0], "1999-11-01");
    assert_eq!(b.ts_text[5240], "2020-08-28");
    assert_eq!(
        (b.open[0], b.high[0], b.low[0], b.close[0]),
        (136.5, 137.0, 135.5625, 135.5625)
    );
    assert_eq!(b.volume[0], 4_006_500.0);
    assert_eq!(b.close[5240], 350.58);
    assert_eq!(b.volume[5240], 48_588_940.0);
    assert_eq!(b.frequency(), Frequency::Daily);
    assert_eq!(b.frequency().periods_per_year(), 252.0);
}

#[test]
fn minute_file_loads_and_counts_sessions() {
    let l = load_csv(&data("nt-spy-minute-2011.csv"), "SPY", BadRowPolicy::Error).unwrap();
    let b = &l.bars;
    assert_eq!(b.len(), 14_180);
    assert_eq!(b.ts_text[0], "20110103 090100");
    assert_eq!(b.ts_text[14_179], "20110201 010000");
    let at = b
        .ts_text
        .iter()
        .position(|t| t == "20110103 140100")
        .unwrap();
    assert_eq!(
        (b.open[at], b.close[at], b.volume[at]),
        (126.66, 126.65, 7245.0)
    );
    // 20 New York sessions, although the UTC stamps span 25 dates.
    match b.frequency() {
        Frequency::Intraday {
            sessions,
            bars_per_session,
        } => {
            assert_eq!(sessions, 20);
            assert_eq!(bars_per_session, 709.0);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(b.frequency().periods_per_year(), 252.0 * 709.0);
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn bad_files_name_file_line_and_rule() {
    let dir = tempfile::tempdir().unwrap();
    let good = "20110103 090100;1;2;0.5;1.5;10\r\n";
    let cases = [
        (
            "unsorted",
            "20110103 090000;1;2;0.5;1.5;10\r\n",
            "not in time order",
        ),
        ("duplicate", good, "duplicate timestamp"),
        (
            "nonpositive",
            "20110103 090200;1;2;0;1.5;10\r\n",
            "non-positive price",
        ),
        (
            "high",
            "20110103 090200;1;1.4;0.5;1.5;10\r\n",
            "high 1.4 is below",
        ),
        (
            "low",
            "20110103 090200;1;2;1.2;1.5;10\r\n",
            "low 1.2 is above",
        ),
        (
            "unparsable",
            "20110103 090200;1;2;x;1.5;10\r\n",
            "unparsable `low`",
        ),
    ];
    for (name, bad, rule) in cases {
        let path = write(dir.path(), name, &format!("{good}{bad}"));
        match load_csv(&path, "X", BadRowPolicy::Error) {
            Err(Error::Data {
                location,
                rule: got,
            }) => {
                assert_eq!(location.file, path);
                assert_eq!(location.line, 2, "{name}");
                assert!(got.contains(rule), "{name}: {got}");
                let rendered = Error::Data {
                    location,
                    rule: got,
                }
                .render(false);
                assert!(rendered.contains(&format!("{name}:2:")), "{rendered}");
            }
            other => panic!("{name}: expected a data error, got {other:?}"),
        }
        let l = load_csv(&path, "X", BadRowPolicy::Drop).unwrap();
        assert_eq!((l.bars.len(), l.dropped), (1, 1), "{name}");
    }
}
