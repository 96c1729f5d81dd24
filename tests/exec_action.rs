//! `admf exec-action`: an action decided by one process runs in another
//! and leaves the same outputs a local execution would.

use std::path::Path;

use assert_cmd::Command;
use serde_json::{Value, json};

fn action(dir: &Path, version: &str) -> Value {
    json!({
        "node": "greet",
        "key": "ab".repeat(32),
        "mode": "command",
        "version": version,
        "role": {"role": "single"},
        "config": {"run": "printf 'hello %s\\n' \"$WHO\" > greeting.txt; echo said it", "outputs": ["greeting.txt"], "env": {"WHO": "world"}},
        "base_dir": dir,
        "inputs": [],
        "upstream": [],
        "out_dir": dir.join("out"),
        "retries": 0
    })
}

fn exec(dir: &Path, action: &Value) -> (i32, Value) {
    std::fs::create_dir_all(dir.join("out")).unwrap();
    let action_path = dir.join("action.json");
    std::fs::write(&action_path, serde_json::to_vec(action).unwrap()).unwrap();
    let out = Command::cargo_bin("admf")
        .unwrap()
        .arg("exec-action")
        .arg(&action_path)
        .arg("--output")
        .arg(dir.join("output.json"))
        .output()
        .unwrap();
    let text = std::fs::read(dir.join("output.json")).unwrap_or_else(|e| {
        panic!(
            "no output file ({e}); stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (
        out.status.code().unwrap(),
        serde_json::from_slice(&text).unwrap(),
    )
}

#[test]
fn an_action_runs_in_another_process_and_hands_its_outputs_back() {
    let dir = tempfile::tempdir().unwrap();
    let (code, output) = exec(dir.path(), &action(dir.path(), "command-2"));
    assert_eq!(code, 0, "{output}");
    assert_eq!(output["result"], json!({"Ok": null}));
    let log: Vec<u8> = serde_json::from_value(output["log"].clone()).unwrap();
    assert_eq!(String::from_utf8(log).unwrap(), "said it\n");
    // The output is handed back by path (the coordinator stores a copy);
    // the action's own output directory is never made.
    let greeting = dir.path().join("greeting.txt");
    assert_eq!(
        output["memory"]["greeting.txt"],
        json!({"file": greeting.to_str().unwrap()})
    );
    assert_eq!(std::fs::read_to_string(&greeting).unwrap(), "hello world\n");
    assert_eq!(
        std::fs::read_dir(dir.path().join("out")).unwrap().count(),
        0
    );
}

#[test]
fn an_action_keyed_by_another_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (code, output) = exec(dir.path(), &action(dir.path(), "command-0"));
    assert_eq!(code, 1);
    let message = output["result"]["Err"]["message"].as_str().unwrap();
    assert!(message.contains("keyed with command-0"), "{message}");
    assert!(!dir.path().join("out/greeting.txt").exists());
}

#[test]
fn an_unreadable_action_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("action.json"), "{not json").unwrap();
    Command::cargo_bin("admf")
        .unwrap()
        .arg("exec-action")
        .arg(dir.path().join("action.json"))
        .arg("--output")
        .arg(dir.path().join("output.json"))
        .assert()
        .code(2);
    assert!(!dir.path().join("output.json").exists());
}

/// Polls `done` until it holds, for at most a minute.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// The outputs a batch worker appended, by action index.
fn batch_outputs(job: &Path) -> std::collections::BTreeMap<u64, Value> {
    std::fs::read_to_string(job.join("outputs.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|line| {
            let record: Value = serde_json::from_str(line).unwrap();
            (record["index"].as_u64().unwrap(), record["output"].clone())
        })
        .collect()
}

#[test]
fn a_batch_worker_takes_actions_added_while_it_lingers_and_stops_on_close() {
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("job");
    std::fs::create_dir_all(&job).unwrap();
    // What the coordinator does: each hand-over of actions `first..`
    // written whole, by a rename.
    let hand_over = |first: usize, names: &[&str]| {
        let mut text = String::new();
        for who in names {
            let mut action = action(dir.path(), "command-2");
            action["config"]["run"] = json!(format!("echo {who} > {who}.txt"));
            action["config"]["outputs"] = json!([format!("{who}.txt")]);
            text += &format!("{action}\n");
        }
        let part = job.join(format!("{first}.part"));
        std::fs::write(&part, text).unwrap();
        std::fs::rename(&part, job.join(format!("{first}.actions.jsonl"))).unwrap();
    };
    hand_over(0, &["first", "second"]);
    let mut worker = std::process::Command::new(env!("CARGO_BIN_EXE_admf"))
        .arg("exec-action")
        .arg("--batch")
        .arg(&job)
        .args(["--linger-ms", "600000"])
        .spawn()
        .unwrap();
    wait_for("the first outputs", || batch_outputs(&job).len() == 2);
    hand_over(2, &["third"]);
    wait_for("the third output", || batch_outputs(&job).len() == 3);
    assert!(
        worker.try_wait().unwrap().is_none(),
        "the worker left early"
    );
    std::fs::write(job.join("close"), "").unwrap();
    wait_for("the worker's exit", || worker.try_wait().unwrap().is_some());
    assert_eq!(worker.wait().unwrap().code(), Some(0));
    assert_eq!(
        std::fs::read_to_string(job.join("progress")).unwrap(),
        "closed\n"
    );
    // Claimed by renaming: the coordinator can no longer take them back.
    for first in [0, 2] {
        assert!(!job.join(format!("{first}.actions.jsonl")).exists());
        assert!(job.join(format!("{first}.claimed.jsonl")).exists());
    }
    let outputs = batch_outputs(&job);
    for (i, who) in [(0, "first"), (1, "second"), (2, "third")] {
        assert_eq!(outputs[&i]["result"], json!({"Ok": null}), "{outputs:?}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join(format!("{who}.txt"))).unwrap(),
            format!("{who}\n")
        );
    }
}

#[test]
fn a_trial_hands_its_outputs_back_in_the_output_file_and_writes_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let action = json!({
        "node": "sweep[0]",
        "key": "cd".repeat(32),
        "mode": "signal_generation",
        "version": admf::phases::Phase::version(&admf::phases::signal_generation::SignalGeneration),
        "role": {"role": "trial", "index": 0, "name": "momentum_lookback=20"},
        "config": {
            "data": {"source": "csv", "symbols": ["SPY"], "path": "data/SPY_D.csv"},
            "strategy": {"type": "momentum", "parameters": {"lookback": 20, "threshold": 0.0}}
        },
        "base_dir": repo,
        "inputs": [],
        "upstream": [],
        "out_dir": dir.path().join("never-made/out"),
        "retries": 0
    });
    let (code, output) = exec(dir.path(), &action);
    assert_eq!(code, 0, "{output}");
    assert!(!dir.path().join("never-made").exists());
    let memory = output["memory"].as_object().expect("outputs in memory");
    assert_eq!(
        memory.keys().collect::<Vec<_>>(),
        ["metrics.json", "signal.jsonl"]
    );
    use base64::Engine;
    let metrics = base64::engine::general_purpose::STANDARD
        .decode(memory["metrics.json"]["bytes"].as_str().unwrap())
        .unwrap();
    let metrics: Value = serde_json::from_slice(&metrics).unwrap();
    assert_eq!(metrics["params"]["lookback"], json!(20));
    assert!(metrics["sharpe"].is_number(), "{metrics}");
}
