//! Rendering a reply: the report as text or JSON, then the `|` filters
//! (include, exclude, begin, count) in the order given.

use regex::Regex;

use crate::report::{CmdError, Note, Reply};

/// Filter names the grammar may declare; a test checks the grammar against this list.
pub const FILTERS: &[&str] = &["include", "exclude", "begin", "count", "json"];

/// A filter with its argument, as matched after `|`.
pub struct Filter {
    /// Its name (a grammar filter handler).
    pub name: String,
    /// Its regular expression, if it takes one.
    pub regex: Option<String>,
}

/// The text to print (ending in a newline unless empty) and the notes.
pub fn render(reply: Reply, filters: &[Filter]) -> Result<(String, Vec<Note>), CmdError> {
    let Some(report) = reply.report else {
        if !filters.is_empty() {
            return Err(CmdError::Failed("This command prints no output to filter".into()));
        }
        return Ok((String::new(), reply.notes));
    };
    let json = filters.first().is_some_and(|f| f.name == "json");
    if filters.iter().skip(1).any(|f| f.name == "json") {
        return Err(CmdError::Failed("| json must be the first output modifier".into()));
    }
    let mut text = if json {
        serde_json::to_string_pretty(&report.json()).map_err(|e| CmdError::Failed(format!("json: {e}")))?
    } else {
        report.text()
    };
    for filter in filters.iter().skip(usize::from(json)) {
        text = apply(filter, &text)?;
    }
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    Ok((text, reply.notes))
}

fn apply(filter: &Filter, text: &str) -> Result<String, CmdError> {
    let regex = match &filter.regex {
        Some(r) => Some(Regex::new(r).map_err(|e| CmdError::Failed(format!("regular expression: {e}")))?),
        None => None,
    };
    let hit = |line: &str| regex.as_ref().is_some_and(|r| r.is_match(line));
    let lines = text.lines();
    let kept: Vec<&str> = match filter.name.as_str() {
        "include" => lines.filter(|l| hit(l)).collect(),
        "exclude" => lines.filter(|l| !hit(l)).collect(),
        "begin" => lines.skip_while(|l| !hit(l)).collect(),
        "count" => return Ok(format!("Number of lines which match: {}", text.lines().count())),
        other => return Err(CmdError::Failed(format!("unknown output modifier {other}"))),
    };
    Ok(kept.join("\n"))
}
