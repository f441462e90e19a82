//! `concierge validate`: the configuration and every data file checked without serving.

use std::process::ExitCode;

use super::Global;
use crate::config::Settings;

/// Prints `ok: …` with what was loaded, or each problem as `file:line: message` and exit 1.
pub(super) fn run(global: &Global) -> anyhow::Result<ExitCode> {
    let settings = match Settings::load(&global.overrides(None)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(1));
        }
    };
    match crate::validate::check_all(&settings, &crate::actions::Registry::standard()) {
        Ok(crate::validate::Checked {
            content: c,
            rules: r,
            branch: b,
        }) => {
            println!(
                "ok: configuration valid; {} intents, {} responses, {} articles, {} voices, {} ticket types in {} queues, {} queue lines",
                c.dialogs.nlu.intents.len(),
                c.dialogs.responses.len(),
                c.articles.len(),
                c.voices.len(),
                r.types.len(),
                r.queues.len(),
                b.lines.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            eprintln!("{} problem(s) found", errors.len());
            Ok(ExitCode::from(1))
        }
    }
}
