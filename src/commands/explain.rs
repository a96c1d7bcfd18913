//! `anklume explain CODE`: the manual's entry for a diagnostic code (from
//! `docs/errors.md`, embedded in the binary): what it means, a failing
//! example, a fixed one, and what anklume prints.

use crate::Exit;

/// The manual page of the diagnostic codes.
const ERRORS_MD: &str = include_str!("../../docs/errors.md");

/// Explain a diagnostic code.
#[derive(clap::Args)]
pub struct Args {
    /// The code (`E0404`, `w0101`) or its name (`unknown-key`); none: the
    /// list of every code.
    pub code: Option<String>,
}

/// One section: its heading's code and name, and its whole text.
struct Entry {
    code: &'static str,
    name: &'static str,
    text: &'static str,
}

/// The `## CODE name` sections of the page (headings inside fenced code
/// blocks are YAML comments, not headings).
fn entries() -> Vec<Entry> {
    let mut starts = Vec::new();
    let mut fenced = false;
    let mut offset = 0;
    for line in ERRORS_MD.split_inclusive('\n') {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced && line.starts_with("## ") {
            starts.push(offset);
        }
        offset += line.len();
    }
    starts
        .iter()
        .enumerate()
        .filter_map(|(i, &start)| {
            let end = starts.get(i + 1).copied().unwrap_or(ERRORS_MD.len());
            let text = &ERRORS_MD[start..end];
            let heading = text.lines().next()?.strip_prefix("## ")?;
            let (code, name) = heading.split_once(' ').unwrap_or((heading, ""));
            Some(Entry {
                code,
                name: name.trim(),
                text: text.trim_end(),
            })
        })
        .collect()
}

/// The table of codes at the top of the page.
fn table() -> &'static str {
    let start = ERRORS_MD.find("| code | name | summary |").unwrap_or(0);
    let end = ERRORS_MD[start..]
        .find("\n\n")
        .map_or(ERRORS_MD.len(), |e| start + e);
    &ERRORS_MD[start..end]
}

/// Run it.
pub fn run(args: Args) -> Exit {
    let Some(code) = args.code else {
        println!("{}", table());
        println!("\n`anklume explain CODE` shows one of them in full.");
        return Exit::Ok;
    };
    let all = entries();
    let wanted = code.trim();
    if let Some(e) = all
        .iter()
        .find(|e| e.code.eq_ignore_ascii_case(wanted) || e.name.eq_ignore_ascii_case(wanted))
    {
        println!("{}", e.text);
        return Exit::Ok;
    }
    let names = all.iter().flat_map(|e| [e.code, e.name]);
    let upper = wanted.to_ascii_uppercase();
    let hint = anklume_schema::diag::did_you_mean(&upper, names.clone())
        .or_else(|| anklume_schema::diag::did_you_mean(wanted, names))
        .map(|c| format!("\nhint: did you mean `anklume explain {c}`?"))
        .unwrap_or_else(|| "\nhint: `anklume explain` lists every code".into());
    eprintln!(
        "error: no diagnostic code '{}'{hint}",
        anklume_term::display(wanted)
    );
    Exit::Invalid
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_of_the_table_has_its_section() {
        let all = entries();
        assert!(all.len() > 40, "{}", all.len());
        let codes: Vec<&str> = table()
            .lines()
            .skip(2)
            .filter_map(|l| l.split('|').nth(1))
            .filter_map(|c| c.trim().strip_prefix('[')?.split(']').next())
            .collect();
        assert_eq!(codes.len(), all.len(), "{codes:?}");
        for c in &codes {
            let e = all
                .iter()
                .find(|e| e.code == *c)
                .unwrap_or_else(|| panic!("no section {c}"));
            assert!(e.text.starts_with(&format!("## {c} ")), "{}", e.text);
            assert!(!e.text[3..].contains("\n## "), "one section only: {c}");
        }
    }
}
