//! Execute: one cache miss as a plain value, and running it.
//!
//! The coordinator decides that a node must run ([`crate::decide`]) and
//! turns it into an [`Action`]: everything the phase needs, with no handle
//! on the graph, the store or the build. An executor runs it
//! ([`execute`]) and returns an [`ActionOutput`]; the coordinator commits
//! the outputs ([`crate::commit`]). Because an action is plain,
//! serialisable data, an executor may run it in another process, also on
//! another machine that sees the same file system (`admf exec-action`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::phases::{Factory, Handoff, MemoryOutputs, PhaseContext, PhaseError, Role, Upstream};

/// One node execution, ready to run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Action {
    /// The node's id, for logs and errors.
    pub node: String,
    /// The key the outputs will be committed under.
    pub key: String,
    pub mode: String,
    /// The mode's implementation version the key was computed with.
    pub version: String,
    pub role: Role,
    /// The resolved config the key was computed from.
    pub config: std::sync::Arc<Value>,
    /// The directory relative paths in `config` resolve against.
    pub base_dir: PathBuf,
    /// The input files that went into the key, with their blake3 digests.
    pub inputs: Vec<(String, String)>,
    /// The stored artifacts of each upstream node.
    pub upstream: Vec<Upstream>,
    /// A private, empty directory the phase writes its outputs into; it
    /// exists only when the phase writes files (see
    /// [`crate::phases::Phase::writes_files`]).
    pub out_dir: PathBuf,
    /// Further attempts after a failure.
    pub retries: u32,
    /// For a trial: the config of the node that gathers it
    /// ([`PhaseContext::gather_config`]). Not part of the key, and not
    /// sent to another process: a trial run elsewhere hands nothing over.
    #[serde(skip)]
    pub gather_config: Option<std::sync::Arc<Value>>,
}

/// What executing an action produced: outputs handed over in `memory`,
/// and the files in its `out_dir`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ActionOutput {
    /// `Ok` when the last attempt succeeded.
    pub result: Result<(), PhaseError>,
    /// The artifacts the last attempt handed over as bytes.
    #[serde(default)]
    pub memory: MemoryOutputs,
    /// The phase's captured output, attempt notes included.
    pub log: Vec<u8>,
    /// Wall time of the last attempt.
    pub duration_ms: u64,
    /// What the last attempt handed to nodes downstream
    /// ([`crate::phases::Handoff`]); only from a phase run in this process.
    #[serde(skip)]
    pub handoff: Option<Handoff>,
}

/// [`crate::phases::Phase::finish_handoffs`] of `outputs`, outputs of
/// actions of mode `mode` that ran one after the other, where they ran.
pub fn finish_handoffs<'o>(
    factory: &dyn Factory,
    mode: &str,
    outputs: impl Iterator<Item = &'o mut ActionOutput>,
) {
    let Some(phase) = factory.get(mode) else {
        return;
    };
    let mut outputs: Vec<&mut ActionOutput> = outputs.collect();
    if outputs.iter().all(|o| o.handoff.is_none()) {
        return;
    }
    let mut handoffs: Vec<Option<Handoff>> = outputs.iter_mut().map(|o| o.handoff.take()).collect();
    phase.finish_handoffs(&mut handoffs);
    for (output, handoff) in outputs.into_iter().zip(handoffs) {
        output.handoff = handoff;
    }
}

/// Runs `action` with the phase `factory` knows for its mode, retrying as
/// the action allows. A failed attempt's partial outputs are removed
/// before the next one, so a success never carries files of a failure.
pub fn execute(factory: &dyn Factory, action: &Action) -> ActionOutput {
    let mut log = Vec::new();
    let Some(phase) = factory.get(&action.mode) else {
        return ActionOutput {
            result: Err(PhaseError::new(format!("unknown mode `{}`", action.mode))),
            memory: MemoryOutputs::default(),
            log,
            duration_ms: 0,
            handoff: None,
        };
    };
    if phase.version() != action.version {
        // The action was decided by another admf build than this one.
        return ActionOutput {
            result: Err(PhaseError::new(format!(
                "mode `{}` is version {} here, but the action was keyed with {}",
                action.mode,
                phase.version(),
                action.version
            ))),
            memory: MemoryOutputs::default(),
            log,
            duration_ms: 0,
            handoff: None,
        };
    }
    let mut result = Err(PhaseError::new("not attempted"));
    let mut duration_ms = 0;
    let mut memory = MemoryOutputs::default();
    let mut handoff = None;
    for attempt in 0..=action.retries {
        if attempt > 0 {
            // Only the last attempt's output is kept: a node retried many
            // times would otherwise hold every attempt's log at once.
            let failure = match &result {
                Err(e) => e.message.as_str(),
                Ok(()) => "",
            };
            log.clear();
            log.extend_from_slice(
                format!(
                    "admf: attempt {} of {} (attempt {attempt} failed: {failure}; its output is left out)\n",
                    attempt + 1,
                    action.retries + 1
                )
                .as_bytes(),
            );
            if let Err(e) = empty_dir(&action.out_dir) {
                result = Err(PhaseError::new(format!(
                    "cannot clear {} for a new attempt: {e}",
                    action.out_dir.display()
                )));
                break;
            }
        }
        memory = MemoryOutputs::default();
        handoff = None;
        let started = Instant::now();
        let mut ctx = PhaseContext {
            node: &action.node,
            config: &action.config,
            role: &action.role,
            base_dir: &action.base_dir,
            upstream: &action.upstream,
            out_dir: &action.out_dir,
            memory: &mut memory,
            log: &mut log,
            gather_config: action.gather_config.as_deref(),
            handoff: &mut handoff,
        };
        result = phase.execute(&mut ctx);
        duration_ms = started.elapsed().as_millis() as u64;
        if result.is_ok() {
            break;
        }
    }
    ActionOutput {
        result,
        memory,
        log,
        duration_ms,
        handoff,
    }
}

/// Removes everything inside `dir`, keeping `dir` itself; nothing to do
/// when the phase has no directory.
fn empty_dir(dir: &Path) -> std::io::Result<()> {
    let items = match std::fs::read_dir(dir) {
        Ok(items) => items,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for item in items {
        let item = item?;
        if item.file_type()?.is_dir() {
            std::fs::remove_dir_all(item.path())?;
        } else {
            std::fs::remove_file(item.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_action_survives_a_json_round_trip() {
        let action = Action {
            node: "sweep[2]".into(),
            key: "ab".repeat(32),
            mode: "signal_generation".into(),
            version: "3".into(),
            role: Role::Trial {
                index: 2,
                name: "momentum_lookback=20".into(),
            },
            config: serde_json::json!({"strategy": {"type": "momentum"}}).into(),
            base_dir: PathBuf::from("/project/workflows"),
            inputs: vec![("data/SPY_D.csv".into(), "cd".repeat(32))],
            upstream: Vec::new(),
            out_dir: PathBuf::from("/project/cache/tmp/x/out"),
            retries: 1,
            gather_config: None,
        };
        let text = serde_json::to_string(&action).unwrap();
        let back: Action = serde_json::from_str(&text).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), text);
        assert_eq!(back.role, action.role);
    }

    #[test]
    fn outputs_in_memory_cross_a_process_boundary_as_base64_and_come_back_byte_exact() {
        let mut memory = MemoryOutputs::default();
        memory.put("signal.jsonl", vec![0u8, 255, 10, 13, b'"']);
        memory.put("sub/metrics.json", "{}\n");
        memory.put_file("out/model.bin", PathBuf::from("/project/out/model.bin"));
        let output = ActionOutput {
            result: Ok(()),
            memory,
            log: b"log".to_vec(),
            duration_ms: 3,
            handoff: None,
        };
        let text = serde_json::to_string(&output).unwrap();
        assert!(
            text.contains(r#""signal.jsonl":{"bytes":"AP8KDSI="}"#),
            "{text}"
        );
        let back: ActionOutput = serde_json::from_str(&text).unwrap();
        assert_eq!(back.memory, output.memory);
        // An output file of an older admf, without the field, still reads.
        let old: ActionOutput =
            serde_json::from_str(r#"{"result":{"Ok":null},"log":[],"duration_ms":1}"#).unwrap();
        assert!(old.memory.is_empty());
    }

    #[test]
    fn empty_dir_of_a_phase_without_a_directory_is_nothing_to_do() {
        let dir = tempfile::tempdir().unwrap();
        empty_dir(&dir.path().join("never-made")).unwrap();
    }

    #[test]
    fn empty_dir_removes_files_and_folders_but_keeps_the_dir() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/a"), "a").unwrap();
        std::fs::write(dir.path().join("b"), "b").unwrap();
        empty_dir(dir.path()).unwrap();
        assert!(dir.path().is_dir());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
