//! Rendering a reply: the report as text or JSON, then the `|` filters
//! (include, exclude, begin, count) in the order given.

use regex::Regex;

use crate::cli::Args;
use crate::report::{CmdError, Note, Reply};

/// Filter names the grammar may declare; a test checks the grammar against this list.
pub const FILTERS: &[&str] = &["include", "exclude", "begin", "count", "json"];

/// An output modifier, as matched after `|`.
pub enum Filter {
    /// Only lines matching.
    Include(Regex),
    /// Lines not matching.
    Exclude(Regex),
    /// From the first line matching.
    Begin(Regex),
    /// The number of lines.
    Count,
    /// The typed result as JSON.
    Json,
}

impl Filter {
    /// The filter a grammar filter handler `name` names, with its arguments.
    pub fn of(name: &str, args: &Args) -> Result<Filter, CmdError> {
        let regex = || {
            let text = args.text("REGEX").unwrap_or_default();
            Regex::new(text).map_err(|e| CmdError::Failed(format!("regular expression: {e}")))
        };
        Ok(match name {
            "include" => Filter::Include(regex()?),
            "exclude" => Filter::Exclude(regex()?),
            "begin" => Filter::Begin(regex()?),
            "count" => Filter::Count,
            "json" => Filter::Json,
            other => return Err(CmdError::Failed(format!("unknown output modifier {other}"))),
        })
    }
}

/// The text to print (ending in a newline unless empty) and the notes.
pub fn render(reply: Reply, filters: &[Filter]) -> Result<(String, Vec<Note>), CmdError> {
    let Some(report) = reply.report else {
        if !filters.is_empty() {
            return Err(CmdError::Failed("This command prints no output to filter".into()));
        }
        return Ok((String::new(), reply.notes));
    };
    let json = matches!(filters.first(), Some(Filter::Json));
    if filters.iter().skip(1).any(|f| matches!(f, Filter::Json)) {
        return Err(CmdError::Failed("| json must be the first output modifier".into()));
    }
    let mut text = if json {
        serde_json::to_string_pretty(&report.json()).map_err(|e| CmdError::Failed(format!("json: {e}")))?
    } else {
        report.text()
    };
    for filter in filters.iter().skip(usize::from(json)) {
        text = apply(filter, &text);
    }
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    Ok((text, reply.notes))
}

fn apply(filter: &Filter, text: &str) -> String {
    let lines = text.lines();
    let kept: Vec<&str> = match filter {
        Filter::Include(r) => lines.filter(|l| r.is_match(l)).collect(),
        Filter::Exclude(r) => lines.filter(|l| !r.is_match(l)).collect(),
        Filter::Begin(r) => lines.skip_while(|l| !r.is_match(l)).collect(),
        Filter::Count => return format!("Number of lines which match: {}", text.lines().count()),
        Filter::Json => return text.to_string(),
    };
    kept.join("\n")
}
