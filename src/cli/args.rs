//! Typed argument values: checking one word against an [`ArgKind`], and the [`Args`]
//! a handler receives (values by placeholder or choice name, and the keywords typed).
//! A debug build stops at once when a handler asks for a name its commands do not
//! declare (a misspelt `args.host("HSOT")`), so the test that runs every command
//! catches it.

use std::collections::{BTreeMap, BTreeSet};

use crate::grammar::{ArgKind, List, Text};
use crate::host::{HostPort, StatusUrl, check_dns_name};

/// A checked argument value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// An integer within its range.
    Int(i64),
    /// A host with optional port.
    Host(HostPort),
    /// A time of day, hours and minutes.
    Time(u8, u8),
    /// Any other text: a name, an address, a keyword choice, the rest of a line.
    Text(String),
}

/// The arguments of a matched command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Args {
    /// Values by placeholder (`SECONDS`) or choice name (`role`).
    pub values: BTreeMap<String, Value>,
    /// Keywords that were typed (`no`, `last`, ...), by their full name.
    pub keywords: BTreeSet<String>,
    /// Index of the first word of a secret argument, which echoes and logs leave out.
    pub secret_at: Option<usize>,
    /// Every name the matched command's handler may ask for (from the grammar, sorted);
    /// `None` for arguments built by hand.
    pub declared: Option<List<Text>>,
}

impl Args {
    /// Whether `keyword` was part of the command (e.g. `no`).
    pub fn has(&self, keyword: &str) -> bool {
        self.declares(keyword);
        self.keywords.contains(keyword)
    }

    /// A text value (names, choices, lines).
    pub fn text(&self, name: &str) -> Option<&str> {
        match self.value(name) {
            Some(Value::Text(t)) => Some(t),
            _ => None,
        }
    }

    /// An integer value.
    pub fn int(&self, name: &str) -> Option<i64> {
        match self.value(name) {
            Some(Value::Int(n)) => Some(*n),
            _ => None,
        }
    }

    /// A host value.
    pub fn host(&self, name: &str) -> Option<&HostPort> {
        match self.value(name) {
            Some(Value::Host(h)) => Some(h),
            _ => None,
        }
    }

    /// A time-of-day value.
    pub fn time(&self, name: &str) -> Option<(u8, u8)> {
        match self.value(name) {
            Some(Value::Time(h, m)) => Some((*h, *m)),
            _ => None,
        }
    }

    fn value(&self, name: &str) -> Option<&Value> {
        self.declares(name);
        self.values.get(name)
    }

    /// In a debug build, stops when `name` is not declared by the matched command's
    /// handler: a misspelt name is a bug, found by the test that runs every command.
    fn declares(&self, name: &str) {
        if let Some(declared) = &self.declared {
            debug_assert!(
                declared.binary_search_by(|d| (**d).cmp(name)).is_ok(),
                "a handler asked for {name}, which none of its commands declares (declared: {declared:?})"
            );
        }
    }
}

/// Whether the kind takes the rest of the line rather than one word.
pub fn takes_rest(kind: &ArgKind) -> bool {
    matches!(kind, ArgKind::Secret | ArgKind::Regex | ArgKind::Exec(_) | ArgKind::SshKey)
}

/// Whether the kind accepts (almost) any word, so that it wins over keyword prefixes.
pub fn is_catch_all(kind: &ArgKind) -> bool {
    takes_rest(kind) || matches!(kind, ArgKind::Word)
}

/// Checks `text` against `kind`; the error says why it is refused.
pub fn check(kind: &ArgKind, text: &str) -> Result<Value, String> {
    match kind {
        ArgKind::Int { min, max } => match text.parse::<i64>() {
            Ok(n) if (*min..=*max).contains(&n) => Ok(Value::Int(n)),
            _ => Err(format!("expected a number from {min} to {max}")),
        },
        ArgKind::Host => text.parse::<HostPort>().map(Value::Host),
        ArgKind::Hostname => {
            let ok = text.len() <= 63
                && text.starts_with(|c: char| c.is_ascii_alphabetic())
                && !text.ends_with('-')
                && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
            if ok {
                Ok(Value::Text(text.to_string()))
            } else {
                Err("a host name starts with a letter and has up to 63 letters, digits or hyphens".into())
            }
        }
        ArgKind::Time => parse_time(text)
            .map(|(h, m)| Value::Time(h, m))
            .ok_or_else(|| "expected a time of day as HH:MM (00:00 to 23:59)".into()),
        ArgKind::Email => check_email(text).map(|()| Value::Text(text.to_string())),
        ArgKind::Url => text.parse::<StatusUrl>().map(|u| Value::Text(u.to_string())),
        ArgKind::Regex => regex::Regex::new(text)
            .map(|_| Value::Text(text.to_string()))
            .map_err(|_| "not a valid regular expression".to_string()),
        ArgKind::SshKey => crate::node::keys::parse_public(text).map(|_| Value::Text(text.to_string())),
        ArgKind::Word | ArgKind::Secret | ArgKind::Exec(_) => Ok(Value::Text(text.to_string())),
    }
}

fn parse_time(text: &str) -> Option<(u8, u8)> {
    let (h, m) = text.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m) = (h.parse::<u8>().ok()?, m.parse::<u8>().ok()?);
    (h < 24 && m < 60).then_some((h, m))
}

fn check_email(text: &str) -> Result<(), String> {
    let bad = || format!("'{text}' is not an email address (user@domain)");
    let (local, domain) = text.rsplit_once('@').ok_or_else(bad)?;
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && local.chars().all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c))
        && !local.starts_with('.')
        && !local.ends_with('.');
    if !local_ok || !domain.contains('.') || check_dns_name(domain).is_err() {
        return Err(bad());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "a handler asked for HSOT")]
    fn asking_for_an_undeclared_name_stops_a_debug_build() {
        let args = Args { declared: Some(vec![Text::from("HOST")].into()), ..Args::default() };
        assert_eq!(args.host("HOST"), None);
        let _ = args.host("HSOT");
    }

    #[test]
    fn ints_respect_their_range() {
        let kind = ArgKind::Int { min: 1, max: 10 };
        assert_eq!(check(&kind, "10"), Ok(Value::Int(10)));
        assert!(check(&kind, "0").is_err());
        assert!(check(&kind, "11").is_err());
        assert!(check(&kind, "1e3").is_err());
        assert!(check(&kind, "99999999999999999999999").is_err());
    }

    #[test]
    fn times_are_hh_mm() {
        assert_eq!(check(&ArgKind::Time, "00:00"), Ok(Value::Time(0, 0)));
        assert_eq!(check(&ArgKind::Time, "23:59"), Ok(Value::Time(23, 59)));
        for bad in ["24:00", "1:00", "12:60", "12-00", "ab:cd", "12:000"] {
            assert!(check(&ArgKind::Time, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn emails_and_hostnames() {
        assert!(check(&ArgKind::Email, "ops@example.com").is_ok());
        for bad in ["ops", "@example.com", "ops@localhost", "a b@x.com", "ops@-x.com", "ops@x..com"] {
            assert!(check(&ArgKind::Email, bad).is_err(), "{bad}");
        }
        assert!(check(&ArgKind::Hostname, "core-a").is_ok());
        for bad in ["1core", "core_a", "core-", &"a".repeat(64)] {
            assert!(check(&ArgKind::Hostname, bad).is_err(), "{bad}");
        }
    }
}
