//! The modes that ship with admf, as one [`Factory`].

use super::analysis::Analysis;
use super::backtest::Backtest;
use super::command::Command;
use super::holdout::Holdout;
use super::report::Report;
use super::signal_generation::SignalGeneration;
use super::signal_replay::SignalReplay;
use super::walk_forward::WalkForward;
use super::{Factory, MODES, Phase};

pub struct Builtin {
    command: Command,
    backtest: Backtest,
    signal_generation: SignalGeneration,
    analysis: Analysis,
    signal_replay: SignalReplay,
    report: Report,
    walk_forward: WalkForward,
    holdout: Holdout,
}

impl Default for Builtin {
    fn default() -> Self {
        Builtin {
            command: Command,
            backtest: Backtest,
            signal_generation: SignalGeneration,
            analysis: Analysis,
            signal_replay: SignalReplay,
            report: Report,
            walk_forward: WalkForward,
            holdout: Holdout,
        }
    }
}

impl Factory for Builtin {
    fn get(&self, mode: &str) -> Option<&dyn Phase> {
        Some(match mode {
            "command" => &self.command,
            "backtest" => &self.backtest,
            "signal_generation" => &self.signal_generation,
            "analysis" => &self.analysis,
            "signal_replay" => &self.signal_replay,
            "report" => &self.report,
            "walk_forward" => &self.walk_forward,
            "holdout" => &self.holdout,
            _ => return None,
        })
    }

    fn modes(&self) -> Vec<&str> {
        MODES.to_vec()
    }
}
