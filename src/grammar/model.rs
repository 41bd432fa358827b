//! The grammar's model: modes, typed arguments, command specs, the whole [`Grammar`],
//! and the checks that it hangs together. Shared with the build script (build.rs), which
//! parses `grammar/` with the same code at compile time and writes the result out as
//! static data: every text and list is owned when parsed, a span of the binary's pools
//! when built in ([`super::pool`]). Word help and arguments are lists sorted by name.

use std::collections::BTreeMap;

pub use super::pool::{List, Text};

/// The grammar files, in the order their contents are merged.
pub const FILES: &[(&str, &str)] = &[
    ("modes.grammar", include_str!("../../grammar/modes.grammar")),
    ("show.grammar", include_str!("../../grammar/show.grammar")),
    ("ha_status.grammar", include_str!("../../grammar/ha_status.grammar")),
    ("replication.grammar", include_str!("../../grammar/replication.grammar")),
    ("switchover.grammar", include_str!("../../grammar/switchover.grammar")),
    ("failover.grammar", include_str!("../../grammar/failover.grammar")),
    ("sync.grammar", include_str!("../../grammar/sync.grammar")),
    ("mate.grammar", include_str!("../../grammar/mate.grammar")),
    ("validate.grammar", include_str!("../../grammar/validate.grammar")),
    ("config_sync.grammar", include_str!("../../grammar/config_sync.grammar")),
    ("system.grammar", include_str!("../../grammar/system.grammar")),
    ("ha.grammar", include_str!("../../grammar/ha.grammar")),
    ("core.grammar", include_str!("../../grammar/core.grammar")),
    ("trust.grammar", include_str!("../../grammar/trust.grammar")),
    ("notify.grammar", include_str!("../../grammar/notify.grammar")),
    ("logging.grammar", include_str!("../../grammar/logging.grammar")),
    ("hooks.grammar", include_str!("../../grammar/hooks.grammar")),
    ("users.grammar", include_str!("../../grammar/users.grammar")),
    ("console.grammar", include_str!("../../grammar/console.grammar")),
    ("support.grammar", include_str!("../../grammar/support.grammar")),
    ("pipes.grammar", include_str!("../../grammar/pipes.grammar")),
];

/// A mode of the shell (FRR calls them nodes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModeDef {
    /// Name used in the grammar, e.g. `config-ha`.
    pub name: Text,
    /// Where `exit` leads; `None` means `exit` ends the session.
    pub parent: Option<Text>,
    /// A mode whose commands are also accepted here (enable accepts user commands).
    pub inherits: Option<Text>,
    /// The command that enters it (`None` for the mode a session starts in).
    pub via: Option<Text>,
    /// What follows the host name in the prompt.
    pub prompt: Text,
    /// One-line description for the docs.
    pub help: Text,
}

/// The value kinds an argument can take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgKind {
    /// An integer in an inclusive range.
    Int { min: i64, max: i64 },
    /// Host name or address with optional `:PORT`.
    Host,
    /// A host name for this node.
    Hostname,
    /// `HH:MM`, 24-hour clock.
    Time,
    /// An email address.
    Email,
    /// The URL of a node's status page.
    Url,
    /// One free word.
    Word,
    /// The rest of the line, kept out of audit logs and transcripts.
    Secret,
    /// The rest of the line, compiled as a regular expression.
    Regex,
    /// The rest of the line, itself a command of the named mode.
    Exec(Text),
    /// The rest of the line, an OpenSSH public key (`ssh-ed25519 AAAA... comment`).
    SshKey,
}

/// A named, typed argument placeholder (`SECONDS`, `HOST`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDef {
    /// Placeholder as written in specs.
    pub name: Text,
    /// What values it accepts.
    pub kind: ArgKind,
    /// Help shown by `?`.
    pub help: Text,
}

/// One element of a command spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpecToken {
    /// A literal word, matched by unique prefix.
    Keyword(Text),
    /// A typed argument (an `arg` declaration).
    Arg(Text),
    /// One of several keywords; the chosen one is stored under `name`.
    Choice { name: Text, options: List<Text> },
    /// Tokens that may be left out.
    Optional(List<SpecToken>),
}

/// A command (or an output filter) as declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandDef {
    /// Modes it is available in (empty for filters).
    pub modes: List<Text>,
    /// The spec as written, for docs.
    pub spec_text: Text,
    /// The parsed spec.
    pub spec: List<SpecToken>,
    /// Name of the handler (or filter) it reaches.
    pub handler: Text,
    /// Declared `readonly`: it changes nothing and shows nothing privileged, so a mate
    /// runs it without the enable secret and `failover exec` from user mode may send it.
    pub readonly: bool,
    /// What the command does, for docs.
    pub doc: Text,
    /// Help for words that means something else in this command than elsewhere, by word.
    pub help: List<(Text, Text)>,
    /// `file:line` of the declaration, for error messages.
    pub origin: Text,
}

/// Everything declared in `grammar/`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grammar {
    /// Modes, in declaration order.
    pub modes: List<ModeDef>,
    /// Help for every keyword, by word.
    pub words: List<(Text, Text)>,
    /// Typed argument placeholders, by name.
    pub args: List<ArgDef>,
    /// Commands, in declaration order.
    pub commands: List<CommandDef>,
    /// Output filters that may follow `|`.
    pub filters: List<CommandDef>,
}

/// A grammar file that does not parse or does not hang together.
#[derive(Debug, thiserror::Error)]
#[error("grammar {origin}: {message}")]
pub struct GrammarError {
    /// `file:line` of the offending declaration.
    pub origin: String,
    /// What is wrong.
    pub message: String,
}

impl Grammar {
    /// Parses grammar sources and checks that every name they use is declared.
    pub fn from_sources(files: &[(&str, &str)]) -> Result<Grammar, GrammarError> {
        let mut draft = Draft::default();
        for (name, text) in files {
            super::parse::parse_file(name, text, &mut draft)?;
        }
        let grammar = draft.finish();
        grammar.check()?;
        Ok(grammar)
    }

    /// The mode called `name`.
    pub fn mode(&self, name: &str) -> Option<&ModeDef> {
        self.modes.iter().find(|m| m.name == name)
    }

    /// The shared help of `word`.
    pub fn word(&self, word: &str) -> Option<&str> {
        lookup(&self.words, word)
    }

    /// The argument placeholder called `name`.
    pub fn arg(&self, name: &str) -> Option<&ArgDef> {
        self.args.binary_search_by(|a| (*a.name).cmp(name)).ok().and_then(|i| self.args.get(i))
    }

    /// Help for `word` inside `command`: the command's own help, else the shared one.
    pub fn word_help<'a>(&'a self, command: &'a CommandDef, word: &str) -> &'a str {
        lookup(&command.help, word).or_else(|| self.word(word)).unwrap_or("")
    }

    fn check(&self) -> Result<(), GrammarError> {
        let err = |origin: &str, message: String| GrammarError { origin: origin.to_string(), message };
        for mode in &self.modes {
            for target in [&mode.parent, &mode.inherits].into_iter().flatten() {
                if self.mode(target).is_none() {
                    return Err(err("modes", format!("mode {} names unknown mode {target}", mode.name)));
                }
            }
        }
        for arg in &self.args {
            if let ArgKind::Exec(target) = &arg.kind
                && self.mode(target).is_none()
            {
                return Err(err("args", format!("{} runs in unknown mode {target}", arg.name)));
            }
        }
        let first = self.modes.iter().find(|m| m.via.is_none()).map(|m| &*m.name);
        for cmd in self.commands.iter().chain(&self.filters) {
            if cmd.readonly && !cmd.modes.iter().any(|m| Some(&**m) == first) {
                let message = "only a command of the mode a session starts in can be readonly (a mate runs it there)";
                return Err(err(&cmd.origin, message.to_string()));
            }
            for mode in &cmd.modes {
                if self.mode(mode).is_none() {
                    return Err(err(&cmd.origin, format!("unknown mode {mode}")));
                }
            }
            let mut missing = None;
            visit_spec(&cmd.spec, &mut |token| match token {
                SpecToken::Keyword(w) if self.word_help(cmd, w).is_empty() => {
                    missing.get_or_insert(format!("word {w} has no help"));
                }
                SpecToken::Choice { options, .. } => {
                    for w in options.iter().filter(|w| self.word_help(cmd, w).is_empty()) {
                        missing.get_or_insert(format!("word {w} has no help"));
                    }
                }
                SpecToken::Arg(a) if self.arg(a).is_none() => {
                    missing.get_or_insert(format!("argument {a} is not declared"));
                }
                _ => {}
            });
            if let Some(message) = missing {
                return Err(err(&cmd.origin, message));
            }
        }
        Ok(())
    }
}

/// The value of `key` in a list of pairs sorted by key.
fn lookup<'a>(pairs: &'a [(Text, Text)], key: &str) -> Option<&'a str> {
    pairs.binary_search_by(|(k, _)| (**k).cmp(key)).ok().and_then(|i| pairs.get(i)).map(|(_, v)| &**v)
}

/// A grammar being parsed: what the files declared so far, in maps while names are
/// still being checked for repeats.
#[derive(Debug, Default)]
pub struct Draft {
    /// Modes, in declaration order.
    pub modes: Vec<ModeDef>,
    /// Help by word: a word declared twice must say the same.
    pub words: BTreeMap<String, String>,
    /// Arguments by placeholder: one declaration each.
    pub args: BTreeMap<String, ArgDef>,
    /// Commands, in declaration order.
    pub commands: Vec<CommandDef>,
    /// Output filters, in declaration order.
    pub filters: Vec<CommandDef>,
}

impl Draft {
    /// The grammar drafted, its maps as sorted lists.
    fn finish(self) -> Grammar {
        Grammar {
            modes: self.modes.into(),
            words: self.words.into_iter().map(|(k, v)| (k.into(), v.into())).collect(),
            args: self.args.into_values().collect(),
            commands: self.commands.into(),
            filters: self.filters.into(),
        }
    }
}

/// Calls `f` on every token of a spec, inside optional groups too.
pub fn visit_spec(spec: &[SpecToken], f: &mut dyn FnMut(&SpecToken)) {
    for token in spec {
        f(token);
        if let SpecToken::Optional(inner) = token {
            visit_spec(inner, f);
        }
    }
}

/// Every concrete form of a spec: each optional group either taken or left out.
pub fn expand(spec: &[SpecToken]) -> Vec<Vec<SpecToken>> {
    let mut forms: Vec<Vec<SpecToken>> = vec![Vec::new()];
    for token in spec {
        match token {
            SpecToken::Optional(inner) => {
                let mut next = Vec::new();
                for form in &forms {
                    next.push(form.clone());
                    for tail in expand(inner) {
                        let mut taken = form.clone();
                        taken.extend(tail);
                        next.push(taken);
                    }
                }
                forms = next;
            }
            other => forms.iter_mut().for_each(|f| f.push(other.clone())),
        }
    }
    forms
}

impl std::fmt::Display for ArgKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ArgKind::Int { min, max } => write!(f, "<{min}-{max}>"),
            ArgKind::Host => f.write_str("HOST[:PORT]"),
            ArgKind::Hostname => f.write_str("WORD"),
            ArgKind::Time => f.write_str("HH:MM"),
            ArgKind::Email => f.write_str("USER@DOMAIN"),
            ArgKind::Url => f.write_str("URL"),
            ArgKind::Word => f.write_str("WORD"),
            ArgKind::Secret | ArgKind::Regex => f.write_str("LINE"),
            ArgKind::Exec(_) | ArgKind::SshKey => f.write_str("LINE"),
        }
    }
}
