//! What of a line may be shown and recorded: a secret argument never is. A line that
//! matches has its secret replaced by `<removed>`; one that does not lex or match is
//! read leniently against every mode's grammar to find where a secret starts, and cut
//! there; a line refused at a bad word is cut after it, as the rest may be a secret.

use crate::cli::{Line, Matched, Matcher, Tree};
use crate::grammar::Grammar;

/// Where a secret starts in `input` (a byte offset), read leniently from the line's own
/// words in any mode (`mode` first): quotes and control characters are taken for blanks
/// and the line is cut at its longest, so that a line that does not lex still keeps
/// its secret to itself.
pub fn secret_start(grammar: &Grammar, tree: &Tree, mode: &str, input: &str) -> Option<usize> {
    let mut words = String::with_capacity(input.len());
    for c in input.chars().take(crate::cli::lexer::MAX_LINE) {
        match c {
            '"' => words.push(' '),
            c if c.is_control() => words.extend(std::iter::repeat_n(' ', c.len_utf8())),
            c => words.push(c),
        }
    }
    let line = Line::lex(&words).ok()?;
    let matcher = Matcher { tree };
    let here = grammar.modes.iter().filter(|m| m.name == mode);
    let others = grammar.modes.iter().filter(|m| m.name != mode);
    here.chain(others).find_map(|m| {
        let matched = matcher.matches(tree.root(&m.name)?, &line, &line.command).ok()?;
        matched.args.secret_at.and_then(|i| line.command.tokens.get(i)).map(|t| t.start)
    })
}

/// The line up to the end of the word at `column` (the rest may hold a secret); with
/// the byte offset where a secret starts, the line up to it and `<removed>`.
pub fn cut(input: &str, column: Option<usize>, secret: Option<usize>) -> String {
    if let Some(before) = secret.and_then(|at| input.get(..at)) {
        return format!("{} <removed>", before.trim());
    }
    let Some(column) = column else {
        return input.trim().to_string();
    };
    let chars: Vec<char> = input.chars().collect();
    let end = (column..chars.len()).find(|&i| chars[i] == ' ' || chars[i] == '\t').unwrap_or(chars.len());
    let kept: String = chars[..end].iter().collect();
    if end < chars.len() && !input[kept.len()..].trim().is_empty() {
        format!("{} ...", kept.trim())
    } else {
        kept.trim().to_string()
    }
}

/// The line with any secret argument replaced, as echoes and logs show it.
pub fn redact(line: &Line, matched: &Matched) -> String {
    let Some(secret_at) = matched.args.secret_at else { return line.input.trim().to_string() };
    let words: Vec<&str> = line.command.tokens.iter().map(|t| t.text.as_str()).collect();
    format!("{} <removed>", words[..secret_at.min(words.len())].join(" "))
}
